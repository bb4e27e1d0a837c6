// RpcClient over AMQP: call (with call monitor), cast and fanout cast, oslo wire format.
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import pino from 'pino';
import type { AmqpConnection, Declaration, SetupFn } from '../broker/amqp-connection.js';
import { contextToDict, packContext } from './context.js';
import { UniqueIdCache } from './dedup.js';
import { unwrap, wrap } from './envelope.js';
import { MessagingTimeout, RpcError } from './errors.js';
import { deserializeFailure } from './failure.js';
import { MESSAGE_PROPERTIES, newUniqueId } from './reply.js';
import type { CallOptions, CastOptions, RequestContext, RpcClient, Target } from './types.js';

export interface RpcClientOptions {
  connection: AmqpConnection;
  /** oslo control_exchange. Default 'nova'. */
  exchange?: string;
  /** oslo rpc_response_timeout in seconds. Default 60. */
  defaultTimeout?: number;
  /** Control exchange durability (amqp_durable_queues). Default false. */
  durable?: boolean;
  /** Reply queue x-expires in ms. Default 1800000. */
  transientQueueTtlMs?: number;
  logger?: pino.Logger;
}

interface Waiter {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  result: unknown;
  overall: NodeJS.Timeout;
  monitor: NodeJS.Timeout | null;
}

export class AmqpRpcClient implements RpcClient {
  /** `reply_<uuid4hex>`; one per client, so a process should share one client. */
  readonly replyQueue = `reply_${newUniqueId()}`;
  private readonly log: pino.Logger;
  private readonly exchange: string;
  private readonly waiters = new Map<string, Waiter>();
  private readonly replyDedup = new UniqueIdCache(16);
  private setup: SetupFn | null = null;
  private starting: Promise<void> | null = null;
  private consumer: { ch: ConfirmChannel; tag: string } | null = null;
  private closed = false;

  constructor(private readonly opts: RpcClientOptions) {
    this.log = (opts.logger ?? pino({ level: 'warn' })).child({ component: 'rpc-client' });
    this.exchange = opts.exchange ?? 'nova';
  }

  /** Declares and consumes the reply queue; call() does this on first use. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('RPC client closed'));
    this.starting ??= (async () => {
      this.setup = async (ch) => {
        const ttl = this.opts.transientQueueTtlMs ?? 1_800_000;
        await ch.assertQueue(this.replyQueue, { durable: false, autoDelete: false, arguments: { 'x-expires': ttl } });
        const { consumerTag } = await ch.consume(this.replyQueue, (m) => this.onReply(m), { noAck: true });
        this.consumer = { ch, tag: consumerTag };
      };
      await this.opts.connection.start();
      await this.opts.connection.addSetup(this.setup);
    })();
    return this.starting;
  }

  async call<T = unknown>(
    ctx: RequestContext,
    target: Target,
    method: string,
    args: Record<string, unknown>,
    opts: CallOptions = {},
  ): Promise<T> {
    await this.start();
    const timeout = opts.timeout ?? this.opts.defaultTimeout ?? 60;
    const msgId = newUniqueId();
    const msg = this.buildMessage(ctx, target, method, args);
    msg._msg_id = msgId;
    msg._reply_q = this.replyQueue;
    msg._timeout = opts.callMonitorTimeout ?? null;
    const expired = () => this.fail(msgId, new MessagingTimeout(`Timed out waiting for a reply to message ID ${msgId}.`));
    const result = new Promise<unknown>((resolve, reject) => {
      const monitorMs = (opts.callMonitorTimeout ?? 0) * 1000;
      this.waiters.set(msgId, {
        method,
        resolve,
        reject,
        result: null,
        overall: setTimeout(expired, timeout * 1000),
        monitor: monitorMs > 0 ? setTimeout(expired, monitorMs) : null,
      });
    });
    const props = { ...MESSAGE_PROPERTIES, expiration: String(Math.trunc(timeout * 1000)) };
    this.publish(target, msg, props).catch((err: Error) => this.fail(msgId, err));
    this.log.debug({ msg_id: msgId, method, topic: target.topic, server: target.server }, 'call');
    return result as Promise<T>;
  }

  async cast(ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>, opts: CastOptions = {}): Promise<void> {
    if (this.closed) throw new Error('RPC client closed');
    await this.opts.connection.start();
    await this.publish(target, this.buildMessage(ctx, target, method, args), MESSAGE_PROPERTIES, opts.declareQueue ?? false);
  }

  /** Fails pending calls, stops consuming and deletes the reply queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const id of [...this.waiters.keys()]) this.fail(id, new Error('RPC client closed'));
    if (this.setup) this.opts.connection.removeSetup(this.setup);
    const ch = this.opts.connection.channel;
    if (ch && this.consumer?.ch === ch) {
      await ch.cancel(this.consumer.tag).catch(() => {});
      await ch.deleteQueue(this.replyQueue).catch(() => {});
    }
  }

  private buildMessage(ctx: RequestContext, target: Target, method: string, args: Record<string, unknown>) {
    const msg: Record<string, unknown> = { method, args };
    if (target.namespace) msg.namespace = target.namespace;
    if (target.version) msg.version = target.version;
    msg._unique_id = newUniqueId();
    packContext(msg, contextToDict(ctx));
    return msg;
  }

  private publish(target: Target, msg: Record<string, unknown>, props: typeof MESSAGE_PROPERTIES, declareQueue = false): Promise<void> {
    const body = wrap(msg);
    if (target.fanout) {
      const ex = `${target.topic}_fanout`;
      return this.opts.connection.publish(ex, '', body, props, declare(ex, 'fanout', false, true));
    }
    const key = target.server ? `${target.topic}.${target.server}` : target.topic;
    const durable = this.opts.durable ?? false;
    const exchange = declare(this.exchange, 'topic', durable, false);
    if (!declareQueue) return this.opts.connection.publish(this.exchange, key, body, props, exchange);
    // The queue as the server declares it (server.ts): same name, durability and binding.
    return this.opts.connection.publish(this.exchange, key, body, props, {
      key: `${exchange.key} queue:${key}`,
      fn: async (ch) => {
        await exchange.fn(ch);
        await ch.assertQueue(key, { durable, autoDelete: false });
        await ch.bindQueue(key, this.exchange, key);
      },
    });
  }

  private onReply(m: ConsumeMessage | null): void {
    if (!m) {
      this.log.warn('reply consumer cancelled by the broker');
      return;
    }
    let data: Record<string, unknown>;
    try {
      data = unwrap(m.content);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'undecodable reply dropped');
      return;
    }
    if (this.replyDedup.checkAndAdd(data._unique_id)) return;
    const msgId = typeof data._msg_id === 'string' ? data._msg_id : '';
    const w = this.waiters.get(msgId);
    if (!w) {
      this.log.debug({ msg_id: msgId }, 'reply for unknown or expired call');
      return;
    }
    const ending = data.ending === true;
    if (data.failure) w.result = deserializeFailure(data.failure);
    else if (data.result !== null && data.result !== undefined) w.result = data.result;
    else if (!ending && w.monitor) {
      // Call-monitor heartbeat: the method is still running.
      w.monitor.refresh();
    }
    if (!ending) return;
    this.finish(msgId);
    if (w.result instanceof RpcError) w.reject(w.result);
    else w.resolve(w.result);
  }

  private fail(msgId: string, err: Error): void {
    const w = this.waiters.get(msgId);
    if (!w) return;
    this.finish(msgId);
    if (err instanceof MessagingTimeout) this.log.warn({ msg_id: msgId, method: w.method }, 'rpc call timed out');
    w.reject(err);
  }

  private finish(msgId: string): void {
    const w = this.waiters.get(msgId);
    if (!w) return;
    clearTimeout(w.overall);
    if (w.monitor) clearTimeout(w.monitor);
    this.waiters.delete(msgId);
  }
}

function declare(name: string, type: 'topic' | 'fanout', durable: boolean, autoDelete: boolean): Declaration {
  return { key: `exchange:${name}`, fn: (ch) => ch.assertExchange(name, type, { durable, autoDelete }) };
}
