// Contracts between the RPC layer (oslo.messaging over AMQP) and the code it
// serves. Handlers see a RequestContext and schema-parsed args; they never
// see AMQP.
import type { z } from 'zod';

/** The caller's request context, rebuilt from the `_context_*` keys. */
export interface RequestContext {
  request_id: string;
  global_request_id?: string | null;
  user_id?: string | null;
  project_id?: string | null;
  roles: string[];
  is_admin: boolean;
  /** Every `_context_*` key as received (secrets included): forward, never log. */
  raw: Record<string, unknown>;
}

/**
 * One RPC method: the zod schema of its whole args object and the handler
 * that gets the parsed value. Build it with rpcMethod() (args.ts) so `A` is
 * inferred from the schema.
 */
export interface RpcMethod<A = unknown> {
  args: z.ZodType<A>;
  // Method syntax on purpose: it lets an RpcMethod<A> stand in for the
  // RpcMethod<unknown> an endpoint holds; rpcMethod() keeps schema and handler paired.
  handler(ctx: RequestContext, args: A): Promise<unknown>;
}

/** One oslo endpoint: a namespace/version pair and its methods. */
export interface RpcEndpoint {
  namespace?: string | null;
  /** "major.minor" this endpoint implements, e.g. "6.5". */
  version: string;
  methods: Record<string, RpcMethod>;
  /**
   * The error sent back when args fail their schema, given the problem
   * ("args.instance.uuid: required"). Default: ArgsTypeError.
   */
  invalidArgs?: (problem: string) => Error;
  /** Called with every request before its args are parsed; throws to refuse it. Default: all allowed. */
  authorize?: (ctx: RequestContext, method: string) => void;
}

/** Where a message goes, as oslo's Target. */
export interface Target {
  topic: string;
  server?: string;
  fanout?: boolean;
  namespace?: string | null;
  version?: string;
}

export interface CallOptions {
  /** Overall timeout in seconds (oslo `timeout`). Default: rpc_response_timeout. */
  timeout?: number;
  /** Call-monitor interval in seconds (oslo `call_monitor_timeout`), sent as `_timeout`. */
  callMonitorTimeout?: number;
}

export interface RpcClient {
  call<T = unknown>(
    ctx: RequestContext,
    target: Target,
    method: string,
    args: Record<string, unknown>,
    opts?: CallOptions,
  ): Promise<T>;
  cast(ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>, opts?: CastOptions): Promise<void>;
}

export interface CastOptions {
  /**
   * Declare the target's topic queue first, as its server does: the message
   * then waits in RabbitMQ while no server consumes it (one restarting, or a
   * broker restarted before the server declared its queue again) instead of
   * being dropped unroutable.
   */
  declareQueue?: boolean;
}

export type NotificationPriority = 'INFO' | 'ERROR';

export interface Notifier {
  notify(
    ctx: RequestContext,
    eventType: string,
    payload: Record<string, unknown>,
    priority?: NotificationPriority,
  ): Promise<void>;
}
