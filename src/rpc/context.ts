// RequestContext <-> `_context_*` keys, and redaction of secrets for logs and notifications.
import { randomUUID } from 'node:crypto';
import type { RequestContext } from './types.js';
import { isPlainObject } from './args.js';

const PREFIX = '_context_';
const SECRET_KEY = /token|password|secret|credential/i;

/** Collects the `_context_*` keys of an inner message into a RequestContext. */
export function contextFromMessage(msg: Record<string, unknown>): RequestContext {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(msg)) {
    if (key.startsWith(PREFIX)) raw[key.slice(PREFIX.length)] = value;
  }
  return contextFromDict(raw);
}

export function contextFromDict(raw: Record<string, unknown>): RequestContext {
  const roles = Array.isArray(raw.roles) ? raw.roles.filter((r): r is string => typeof r === 'string') : [];
  return {
    request_id: str(raw.request_id) ?? `req-${randomUUID()}`,
    global_request_id: str(raw.global_request_id),
    user_id: str(raw.user_id) ?? str(raw.user),
    project_id: str(raw.project_id) ?? str(raw.project) ?? str(raw.tenant),
    roles,
    is_admin: raw.is_admin === true,
    raw,
  };
}

/** The context as a flat dict (ctx.raw overlaid with the typed fields), oslo.context style. */
export function contextToDict(ctx: RequestContext): Record<string, unknown> {
  const out: Record<string, unknown> = { ...ctx.raw };
  out.request_id = ctx.request_id;
  out.global_request_id = ctx.global_request_id ?? null;
  out.user_id = ctx.user_id ?? null;
  out.user = ctx.user_id ?? null;
  out.project_id = ctx.project_id ?? null;
  out.project = ctx.project_id ?? null;
  out.roles = [...ctx.roles];
  out.is_admin = ctx.is_admin;
  return out;
}

/** Adds `_context_<key>` entries to an outgoing message. */
export function packContext(msg: Record<string, unknown>, dict: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(dict)) msg[PREFIX + key] = value;
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Deep copy without any key that looks like a secret (auth_token, *password*, ...). */
export function redact<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redact(v)) as T;
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!isSecretKey(key)) out[key] = redact(v);
  }
  return out as T;
}

/** What a log line may show of a context. */
export function loggableContext(ctx: RequestContext): Record<string, unknown> {
  return redact(contextToDict(ctx));
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}
