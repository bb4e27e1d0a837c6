import { describe, expect, it } from 'vitest';
import { contextFromMessage, contextToDict, isSecretKey, loggableContext, packContext, redact } from '../../src/rpc/context.js';
import { pythonUtcNow } from '../../src/rpc/notifier.js';

const message = {
  method: 'x',
  _context_request_id: 'req-1',
  _context_global_request_id: 'req-g',
  _context_user: 'u1',
  _context_tenant: 'p1',
  _context_roles: ['admin', 3],
  _context_is_admin: true,
  _context_auth_token: 'TOKEN-abc',
  _context_service_catalog: [{ type: 'image', endpoints: [{ url: 'x', admin_password: 'pw' }] }],
  _context_db_password: 'pw',
  _context_client_secret: 's',
  _context_user_credentials: { k: 1 },
};

describe('context', () => {
  it('builds a RequestContext with oslo fallbacks', () => {
    const ctx = contextFromMessage(message);
    expect(ctx).toMatchObject({ request_id: 'req-1', global_request_id: 'req-g', user_id: 'u1', project_id: 'p1', roles: ['admin'], is_admin: true });
    expect(ctx.raw.auth_token).toBe('TOKEN-abc');
  });
  it('invents a request id when missing', () => {
    expect(contextFromMessage({}).request_id).toMatch(/^req-[0-9a-f-]{36}$/);
  });
  it('packs raw keys plus typed fields', () => {
    const msg: Record<string, unknown> = {};
    packContext(msg, contextToDict(contextFromMessage(message)));
    expect(msg).toMatchObject({ _context_request_id: 'req-1', _context_user_id: 'u1', _context_project_id: 'p1', _context_auth_token: 'TOKEN-abc' });
  });
  it('redacts secrets at any depth', () => {
    expect(['auth_token', 'X-Auth-Token', 'password', 'client_secret', 'credentials'].every(isSecretKey)).toBe(true);
    expect(isSecretKey('request_id')).toBe(false);
    const shown = loggableContext(contextFromMessage(message));
    const text = JSON.stringify(shown);
    expect(text).not.toMatch(/TOKEN-abc|"pw"|token|password|secret|credential/i);
    expect(shown.request_id).toBe('req-1');
    expect(redact({ a: [{ token: 1, b: 2 }] })).toEqual({ a: [{ b: 2 }] });
  });
  it('formats timestamps like Python str(utcnow())', () => {
    expect(pythonUtcNow(new Date('2026-01-01T12:00:00.123Z'))).toBe('2026-01-01 12:00:00.123000');
  });
});
