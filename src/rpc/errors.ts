// Errors that cross the wire. oslo serialises a failure as class + module +
// message + args/kwargs; the caller rebuilds it by that class and module.

/** An error that keeps its oslo identity (class name and Python module). */
export class RpcError extends Error {
  /** Python module of the class, e.g. "nova.exception" or "oslo_messaging.rpc.dispatcher". */
  readonly module: string;
  readonly kwargs: Record<string, unknown>;

  constructor(className: string, module: string, message: string, kwargs: Record<string, unknown> = {}) {
    super(message);
    this.name = className;
    this.module = module;
    this.kwargs = kwargs;
  }
}

const DISPATCHER = 'oslo_messaging.rpc.dispatcher';
const EXCEPTIONS = 'oslo_messaging.exceptions';

export class NoSuchMethod extends RpcError {
  constructor(method: string) {
    super('NoSuchMethod', DISPATCHER, `Endpoint does not support RPC method ${method}`, { method });
  }
}

export class UnsupportedVersion extends RpcError {
  constructor(version: string, method?: string) {
    super('UnsupportedVersion', DISPATCHER, `Endpoint does not support RPC version ${version}. Attempted method: ${method ?? ''}`, {
      version,
      method: method ?? null,
    });
  }
}

/**
 * Args that fail their schema, for an endpoint that names no error of its
 * own. A Python oslo endpoint called with arguments it cannot take raises
 * TypeError, so that is what the caller gets.
 */
export class ArgsTypeError extends RpcError {
  constructor(problem: string) {
    super('TypeError', 'builtins', problem);
  }
}

/** A message that could not be decoded at all (not JSON, bad envelope, too large). */
export class InvalidMessage extends RpcError {
  constructor(message: string) {
    super('MessageDeliveryFailure', EXCEPTIONS, message);
  }
}

export class MessagingTimeout extends RpcError {
  constructor(message: string) {
    super('MessagingTimeout', EXCEPTIONS, message);
  }
}
