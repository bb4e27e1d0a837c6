// Picks the endpoint method for (namespace, version, method) the way oslo's RPCDispatcher does.
import { NoSuchMethod, UnsupportedVersion } from './errors.js';
import { isCompatible } from './envelope.js';
import type { RpcEndpoint, RpcMethod } from './types.js';

export function findMethod(
  endpoints: readonly RpcEndpoint[],
  namespace: string | null | undefined,
  version: string | null | undefined,
  method: string,
): RpcMethod {
  const requested = version ?? '1.0';
  let compatible = false;
  for (const ep of endpoints) {
    if ((ep.namespace ?? null) !== (namespace ?? null)) continue;
    if (!isCompatible(ep.version, requested)) continue;
    compatible = true;
    // Private methods are never exposed (oslo DefaultRPCAccessPolicy).
    if (!method.startsWith('_') && Object.hasOwn(ep.methods, method)) return ep.methods[method]!;
  }
  if (compatible) throw new NoSuchMethod(method);
  throw new UnsupportedVersion(requested, method);
}
