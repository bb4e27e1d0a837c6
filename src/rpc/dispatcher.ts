// Picks the endpoint method for (namespace, version, method) the way oslo's RPCDispatcher does.
import { parseArgs } from './args.js';
import { NoSuchMethod, UnsupportedVersion } from './errors.js';
import { isCompatible } from './envelope.js';
import type { RequestContext, RpcEndpoint, RpcMethod } from './types.js';

/** The method a request goes to, and the endpoint that owns it (its errors, e.g. for bad args). */
export interface Dispatch {
  endpoint: RpcEndpoint;
  method: RpcMethod;
}

export function findMethod(
  endpoints: readonly RpcEndpoint[],
  namespace: string | null | undefined,
  version: string | null | undefined,
  method: string,
): Dispatch {
  const requested = version ?? '1.0';
  let compatible = false;
  for (const ep of endpoints) {
    if ((ep.namespace ?? null) !== (namespace ?? null)) continue;
    if (!isCompatible(ep.version, requested)) continue;
    compatible = true;
    // Private methods are never exposed (oslo DefaultRPCAccessPolicy).
    if (!method.startsWith('_') && Object.hasOwn(ep.methods, method)) return { endpoint: ep, method: ep.methods[method]! };
  }
  if (compatible) throw new NoSuchMethod(method);
  throw new UnsupportedVersion(requested, method);
}

/** Runs a found method: the endpoint's authorization first, then the args parsed by its schema, then the handler. */
export function invoke({ endpoint, method }: Dispatch, name: string, ctx: RequestContext, args: unknown): Promise<unknown> {
  endpoint.authorize?.(ctx, name);
  // The handler gets what the schema parsed, not the raw args.
  return method.handler(ctx, parseArgs(endpoint, method, args));
}
