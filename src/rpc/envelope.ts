// The oslo 2.0 message envelope: {"oslo.version":"2.0","oslo.message":"<json>"}.
import { InvalidMessage } from './errors.js';
import { isPlainObject } from './args.js';

export const ENVELOPE_VERSION = '2.0';
const VERSION_KEY = 'oslo.version';
const MESSAGE_KEY = 'oslo.message';

export function wrap(inner: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ [VERSION_KEY]: ENVELOPE_VERSION, [MESSAGE_KEY]: JSON.stringify(inner) }), 'utf8');
}

/**
 * Decodes a body into the inner message, or throws InvalidMessage.
 * Unlike oslo (which would treat an unwrapped dict as the 1.0 format) a body
 * without the envelope is refused: every peer we talk to sends 2.0.
 */
export function unwrap(body: Buffer): Record<string, unknown> {
  let outer: unknown;
  try {
    outer = JSON.parse(body.toString('utf8'));
  } catch {
    throw new InvalidMessage('message body is not JSON');
  }
  if (!isPlainObject(outer) || !(VERSION_KEY in outer) || !(MESSAGE_KEY in outer)) {
    throw new InvalidMessage('message has no oslo 2.0 envelope');
  }
  const version = outer[VERSION_KEY];
  if (typeof version !== 'string' || !isCompatible(ENVELOPE_VERSION, version)) {
    throw new InvalidMessage(`unsupported envelope version ${String(version)}`);
  }
  const raw = outer[MESSAGE_KEY];
  let inner: unknown;
  try {
    inner = typeof raw === 'string' ? JSON.parse(raw) : undefined;
  } catch {
    inner = undefined;
  }
  if (!isPlainObject(inner)) throw new InvalidMessage('oslo.message is not a JSON object');
  // Everything after this (redaction, Nova object unwrapping, schemas) walks the message recursively.
  if (nestedDeeperThan(inner, MAX_NESTING)) throw new InvalidMessage(`message nested deeper than ${MAX_NESTING} levels`);
  return inner;
}

/** No Nova or ferry message comes near this; a deeper one is refused before anything recurses into it. */
export const MAX_NESTING = 64;

/** Whether arrays and objects nest more than `max` levels deep, found without recursion. */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [v, depth] = item;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Best effort, for a body that failed to decode: the inner (or bare) message,
 * so a failure can still be sent to its reply queue.
 */
export function salvage(body: Buffer): Record<string, unknown> | null {
  try {
    const outer: unknown = JSON.parse(body.toString('utf8'));
    if (!isPlainObject(outer)) return null;
    const raw = outer[MESSAGE_KEY];
    if (typeof raw === 'string') {
      const inner: unknown = JSON.parse(raw);
      return isPlainObject(inner) ? inner : null;
    }
    return outer;
  } catch {
    return null;
  }
}

/** oslo version_is_compatible: same major, requested minor (and rev) not above implemented. */
export function isCompatible(implemented: string, requested: string): boolean {
  const imp = parseVersion(implemented);
  const req = parseVersion(requested);
  if (!imp || !req) return false;
  if (imp[0] !== req[0]) return false;
  if (req[1] > imp[1]) return false;
  if (req[1] === imp[1] && req[2] > imp[2]) return false;
  return true;
}

function parseVersion(v: string): [number, number, number] | null {
  const parts = v.split('.');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => /^\d+$/.test(p))) return null;
  return [Number(parts[0]), Number(parts[1]), Number(parts[2] ?? 0)];
}
