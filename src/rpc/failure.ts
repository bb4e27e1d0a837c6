// oslo failure payloads: a JSON string {class, module, message, tb, args, kwargs}.
import { RpcError } from './errors.js';
import { isPlainObject } from './args.js';

const REMOTE_SUFFIX = '_Remote';

export function serializeFailure(err: unknown): string {
  const e = err instanceof Error ? err : new Error(String(err));
  let cls = e instanceof RpcError ? e.name : e.name || 'Exception';
  let mod = e instanceof RpcError ? e.module : 'builtins';
  // As oslo: a re-raised remote error goes back under its original name.
  if (cls.endsWith(REMOTE_SUFFIX) && mod.endsWith(REMOTE_SUFFIX)) {
    cls = cls.slice(0, -REMOTE_SUFFIX.length);
    mod = mod.slice(0, -REMOTE_SUFFIX.length);
  }
  const kwargs = e instanceof RpcError ? e.kwargs : {};
  return JSON.stringify({
    class: cls,
    module: mod,
    message: e.message,
    tb: (e.stack ?? '').split('\n').map((l) => `${l}\n`),
    // Python rebuilds with klass(*args, **kwargs): kwargs-style classes get no args.
    args: Object.keys(kwargs).length > 0 ? [] : [e.message],
    kwargs,
  });
}

/** Rebuilds a remote failure; never throws (a garbled failure becomes RemoteError). */
export function deserializeFailure(data: unknown): RpcError {
  let f: unknown = data;
  if (typeof data === 'string') {
    try {
      f = JSON.parse(data);
    } catch {
      return new RpcError('RemoteError', 'oslo_messaging.rpc.client', data);
    }
  }
  if (!isPlainObject(f)) return new RpcError('RemoteError', 'oslo_messaging.rpc.client', String(data));
  const cls = typeof f.class === 'string' ? f.class : 'RemoteError';
  const mod = typeof f.module === 'string' ? f.module : 'oslo_messaging.rpc.client';
  const message = typeof f.message === 'string' ? f.message : '';
  const kwargs = isPlainObject(f.kwargs) ? f.kwargs : {};
  const err = new RpcError(cls, mod, message, kwargs);
  if (Array.isArray(f.tb) && f.tb.length > 0) {
    err.stack = `${cls}: ${message}\n    [remote traceback]\n${f.tb.join('')}`;
  }
  return err;
}
