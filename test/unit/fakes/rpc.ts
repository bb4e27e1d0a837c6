// An in-process message bus standing in for RabbitMQ. A `call` or `cast` to
// target.server reaches that host's endpoints the way the real RpcServer
// dispatches: args and context cross as JSON, the method is picked by
// namespace and version (oslo's dispatcher; no version means '1.0'), the
// server's deserializeArgs runs, then the args are parsed with the method's schema, then the handler. Failures come
// back through oslo's serialize/deserialize, so the caller sees an RpcError
// named after the remote class, exactly as over AMQP.

import { MessagingTimeout } from '../../../src/rpc/errors.js';
import { contextFromDict, contextToDict } from '../../../src/rpc/context.js';
import { findMethod, invoke } from '../../../src/rpc/dispatcher.js';
import { deserializeFailure, serializeFailure } from '../../../src/rpc/failure.js';
import type { CallOptions, NotificationPriority, Notifier, RequestContext, RpcClient, RpcEndpoint, Target } from '../../../src/rpc/types.js';

export interface BusMessage {
  kind: 'call' | 'cast';
  from: string;
  topic: string;
  server: string | null;
  version: string | null;
  method: string;
  args: Record<string, unknown>;
  ctx: RequestContext;
  at: number;
}

export interface CastFailure {
  method: string;
  server: string | null;
  error: Error;
}

export interface FakeServerOptions {
  /** As RpcServerOptions.deserializeArgs. */
  deserializeArgs?: (args: Record<string, unknown>) => Record<string, unknown>;
}

interface FakeServer {
  endpoints: RpcEndpoint[];
  opts: FakeServerOptions;
}

const wire = <T>(v: T): T => (v === undefined ? (null as T) : (JSON.parse(JSON.stringify(v)) as T));

export class FakeBus {
  readonly messages: BusMessage[] = [];
  readonly castFailures: CastFailure[] = [];
  private readonly servers = new Map<string, FakeServer>();
  private readonly gates = new Map<string, { reached: () => void; released: Promise<void> }>();
  private readonly inFlight = new Set<Promise<unknown>>();

  register(server: string, endpoints: RpcEndpoint[], opts: FakeServerOptions = {}): void {
    this.servers.set(server, { endpoints, opts });
  }

  client(from: string): RpcClient {
    return {
      call: <T>(ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>, _opts?: CallOptions) =>
        this.track(this.deliver('call', from, ctx, target, method, args)) as Promise<T>,
      cast: async (ctx, target, method, args) => {
        const p = new Promise<void>((r) => setImmediate(r))
          .then(() => this.deliver('cast', from, ctx, target, method, args))
          .then(
            () => undefined,
            (error: Error) => void this.castFailures.push({ method, server: target.server ?? null, error }),
          );
        this.track(p);
      },
    };
  }

  /**
   * Holds the next delivery of `method` before its handler runs. Returns
   * `reached` (resolves when a message is held) and `release`.
   */
  hold(method: string): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedP = new Promise<void>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    this.gates.set(method, { reached, released });
    return { reached: reachedP, release };
  }

  sent(method: string, server?: string): BusMessage[] {
    return this.messages.filter((m) => m.method === method && (server === undefined || m.server === server));
  }

  /** Waits until no message is being handled. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  private async deliver(
    kind: 'call' | 'cast',
    from: string,
    ctx: RequestContext,
    target: Target,
    method: string,
    args: Record<string, unknown>,
  ): Promise<unknown> {
    const wireArgs = wire(args);
    const wireCtx = contextFromDict(wire(contextToDict(ctx)));
    this.messages.push({ kind, from, topic: target.topic, server: target.server ?? null, version: target.version ?? null, method, args: wireArgs, ctx: wireCtx, at: Date.now() });
    const srv = target.server ? this.servers.get(target.server) : undefined;
    if (!srv) {
      // Nobody consumes it: a cast is simply lost, a call times out.
      if (kind === 'cast') return null;
      throw new MessagingTimeout(`Timed out waiting for a reply to message to ${target.topic}.${target.server ?? ''}`);
    }
    const gate = this.gates.get(method);
    if (gate) {
      this.gates.delete(method);
      gate.reached();
      await gate.released;
    }
    try {
      const found = findMethod(srv.endpoints, target.namespace ?? null, target.version ?? '1.0', method);
      return wire(await invoke(found, method, wireCtx, srv.opts.deserializeArgs ? srv.opts.deserializeArgs(wireArgs) : wireArgs));
    } catch (err) {
      throw deserializeFailure(serializeFailure(err));
    }
  }
}

export interface RecordedNotification {
  eventType: string;
  payload: Record<string, unknown>;
  priority: NotificationPriority;
  at: number;
}

export class RecordingNotifier implements Notifier {
  readonly events: RecordedNotification[] = [];

  async notify(_ctx: RequestContext, eventType: string, payload: Record<string, unknown>, priority: NotificationPriority = 'INFO'): Promise<void> {
    this.events.push({ eventType, payload: wire(payload), priority, at: Date.now() });
  }

  types(): string[] {
    return this.events.map((e) => e.eventType);
  }
}

export interface RecordedRpc {
  kind: 'call' | 'cast';
  target: Target;
  method: string;
  args: Record<string, unknown>;
}

/** An RpcClient that only records (e.g. what the reporter casts to the conductor). */
export class RecordingRpcClient implements RpcClient {
  readonly sent: RecordedRpc[] = [];
  failWith: Error | null = null;

  async call<T>(_ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>): Promise<T> {
    this.sent.push({ kind: 'call', target, method, args: wire(args) });
    if (this.failWith) throw this.failWith;
    return null as T;
  }

  async cast(_ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>): Promise<void> {
    this.sent.push({ kind: 'cast', target, method, args: wire(args) });
    if (this.failWith) throw this.failWith;
  }
}

export function adminContext(extra: Partial<RequestContext> = {}): RequestContext {
  return { request_id: `req-${Math.random().toString(16).slice(2)}`, user_id: 'admin-user', project_id: 'admin-project', roles: ['admin'], is_admin: true, raw: {}, ...extra };
}
