// Public surface of the RPC layer.
export * from './types.js';
export * from './errors.js';
export { AmqpConnection, ConnectionClosedError } from '../broker/amqp-connection.js';
export type { AmqpConnectionOptions, TlsOptions, SetupFn, Declaration } from '../broker/amqp-connection.js';
export { parseTransportUrl, redactUrl } from '../broker/transport-url.js';
export type { TransportUrl, BrokerHost } from '../broker/transport-url.js';
export { RpcServer } from './server.js';
export type { RpcServerOptions } from './server.js';
export { AmqpRpcClient } from './client.js';
export type { RpcClientOptions } from './client.js';
export { AmqpNotifier, pythonUtcNow } from './notifier.js';
export type { NotifierOptions } from './notifier.js';
export { contextFromMessage, contextFromDict, contextToDict, redact, loggableContext, isSecretKey } from './context.js';
export { rpcMethod, parseArgs, argsProblem, describeIssue, failsAs, isPlainObject } from './args.js';
export { serializeFailure, deserializeFailure } from './failure.js';
export { wrap, unwrap, isCompatible } from './envelope.js';
