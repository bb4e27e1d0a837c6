// Contracts between the RPC layer (oslo.messaging over AMQP) and the code it
// serves. Handlers see a RequestContext and schema-checked args; they never
// see AMQP.

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

/** A small schema language for RPC args; checked before any work starts. */
export type Schema =
  | { type: 'any' }
  | { type: 'string'; pattern?: RegExp; enum?: readonly string[]; nullable?: boolean }
  | { type: 'integer'; minimum?: number; maximum?: number; nullable?: boolean }
  | { type: 'number'; minimum?: number; nullable?: boolean }
  | { type: 'boolean'; nullable?: boolean }
  | { type: 'array'; items: Schema; nullable?: boolean }
  | {
      type: 'object';
      properties?: Record<string, Schema>;
      required?: readonly string[];
      nullable?: boolean;
    };

export type RpcHandler = (ctx: RequestContext, args: Record<string, unknown>) => Promise<unknown>;

export interface RpcMethod {
  /** Schema of the whole args object. */
  args: Schema & { type: 'object' };
  handler: RpcHandler;
}

/** One oslo endpoint: a namespace/version pair and its methods. */
export interface RpcEndpoint {
  namespace?: string | null;
  /** "major.minor" this endpoint implements, e.g. "6.5". */
  version: string;
  methods: Record<string, RpcMethod>;
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
  cast(ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>): Promise<void>;
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
