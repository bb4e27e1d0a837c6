// RpcServer: consumes oslo RPC requests for one or more topics and dispatches them to endpoints.
import { randomUUID } from 'node:crypto';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import pino from 'pino';
import type { AmqpConnection, SetupFn } from '../broker/amqp-connection.js';
import { contextFromMessage, loggableContext } from './context.js';
import { UniqueIdCache } from './dedup.js';
import { findMethod, invoke } from './dispatcher.js';
import { salvage, unwrap } from './envelope.js';
import { InvalidMessage, RpcError } from './errors.js';
import { encodeReply, sendReply, type ReplyAddress } from './reply.js';
import { isPlainObject } from './args.js';
import type { RpcEndpoint } from './types.js';

export interface RpcServerOptions {
  connection: AmqpConnection;
  /** Topics served with the same endpoints, e.g. ['compute', 'compute-alt']. */
  topics: readonly string[];
  /** Server name (the host); queue `<topic>.<server>`. */
  server: string;
  endpoints: readonly RpcEndpoint[];
  /** oslo control_exchange. Default 'nova'. */
  exchange?: string;
  /** Exchange/topic-queue durability (oslo amqp_durable_queues). Default false. */
  durable?: boolean;
  /** Larger messages are refused. Default 1 MiB. */
  maxMessageBytes?: number;
  /**
   * Messages handled at once (oslo executor_thread_pool_size). Default 64.
   * More wait unacked, at most this many per queue (basic.qos), so a flood
   * stays in RabbitMQ instead of this process.
   */
  maxInFlight?: number;
  /**
   * Bytes of message bodies handled at once; a message that would go past it
   * waits, unless nothing else is being handled. Default 4 x maxMessageBytes:
   * a flood of large messages is handled a few at a time, as memory allows.
   */
  maxInFlightBytes?: number;
  /** How many recent `_unique_id`s are remembered. Default 16 (oslo). */
  dedupSize?: number;
  /** TTL of the fanout queue in ms (rabbit_transient_queues_ttl). Default 1800000. */
  transientQueueTtlMs?: number;
  /** Rebuilds objects from their wire form before the args are parsed (oslo's serializer). */
  deserializeArgs?: (args: Record<string, unknown>) => Record<string, unknown>;
  /** Called once per dispatched request with its outcome: 'ok' or the failure's class name. */
  /** After each method ran: its name, `ok` or the failure's class name, and how long it took. */
  onDispatch?: (method: string, outcome: string, seconds: number) => void;
  logger?: pino.Logger;
}

const DEFAULT_MAX_BYTES = 1024 * 1024;

/** The longest caller timeout the call monitor honours: a heartbeat at least every 12 h. */
export const MAX_CALL_MONITOR_SECONDS = 86_400;

/**
 * oslo's call monitor: a heartbeat reply every half of the caller's
 * `_timeout`, which is clamped (a huge one overflows the timer, which Node
 * then fires every millisecond); null when there is no sane interval.
 *
 *   callMonitorIntervalMs(60)     // 30000
 *   callMonitorIntervalMs(1e300)  // 43200000
 *   callMonitorIntervalMs('x')    // null
 */
export function callMonitorIntervalMs(clientTimeout: unknown): number | null {
  const seconds = Math.min(MAX_CALL_MONITOR_SECONDS, Math.trunc(Number(clientTimeout)));
  if (!Number.isFinite(seconds) || seconds / 2 < 1) return null;
  return (seconds / 2) * 1000;
}

export class RpcServer {
  private readonly log: pino.Logger;
  private readonly exchange: string;
  private readonly maxBytes: number;
  private readonly dedup: UniqueIdCache;
  /** Fanout queue per topic; the name survives reconnects. */
  private readonly fanoutQueues = new Map<string, string>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxInFlight: number;
  private readonly maxInFlightBytes: number;
  private inFlightBytes = 0;
  /** Delivered but not yet acked: they wait for a free slot. */
  private waiting: Array<[ConfirmChannel, ConsumeMessage]> = [];
  private consumerTags: string[] = [];
  private consumerChannel: ConfirmChannel | null = null;
  private setup: SetupFn | null = null;

  constructor(private readonly opts: RpcServerOptions) {
    if (opts.topics.length === 0) throw new Error('RpcServer needs at least one topic');
    this.log = (opts.logger ?? pino({ level: 'warn' })).child({ component: 'rpc-server', server: opts.server });
    this.exchange = opts.exchange ?? 'nova';
    this.maxBytes = opts.maxMessageBytes ?? DEFAULT_MAX_BYTES;
    this.dedup = new UniqueIdCache(opts.dedupSize ?? 16);
    this.maxInFlight = opts.maxInFlight ?? 64;
    this.maxInFlightBytes = opts.maxInFlightBytes ?? 4 * this.maxBytes;
    for (const t of opts.topics) this.fanoutQueues.set(t, `${t}_fanout_${randomUUID().replace(/-/g, '')}`);
  }

  /** Queues this server consumes from. */
  get queues(): string[] {
    return this.opts.topics.flatMap((t) => [t, `${t}.${this.opts.server}`, this.fanoutQueues.get(t)!]);
  }

  async start(): Promise<void> {
    if (this.setup) return;
    this.setup = (ch) => this.declareAndConsume(ch);
    await this.opts.connection.start();
    await this.opts.connection.addSetup(this.setup);
    this.log.info({ topics: this.opts.topics, exchange: this.exchange }, 'rpc server started');
  }

  /** Stops consuming and waits (up to graceMs) for running handlers to reply. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.setup) return;
    this.opts.connection.removeSetup(this.setup);
    this.setup = null;
    const ch = this.consumerChannel;
    if (ch && ch === this.opts.connection.channel) {
      for (const tag of this.consumerTags) await ch.cancel(tag).catch(() => {});
    }
    this.consumerTags = [];
    // Never acked, so RabbitMQ delivers them again, to another server or to this one once restarted.
    this.waiting = [];
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((r) => (timer = setTimeout(r, graceMs))),
    ]);
    clearTimeout(timer);
    this.log.info('rpc server stopped');
  }

  private async declareAndConsume(ch: ConfirmChannel): Promise<void> {
    const durable = this.opts.durable ?? false;
    const ttl = this.opts.transientQueueTtlMs ?? 1_800_000;
    await ch.assertExchange(this.exchange, 'topic', { durable, autoDelete: false });
    const tags: string[] = [];
    await ch.prefetch(this.maxInFlight);
    // A reconnect leaves the old channel's deliveries unackable: the broker has them back.
    this.waiting = this.waiting.filter(([c]) => c === ch);
    const consume = async (queue: string) => {
      const { consumerTag } = await ch.consume(queue, (msg) => this.onDelivery(ch, msg), { noAck: false });
      tags.push(consumerTag);
    };
    for (const topic of this.opts.topics) {
      for (const key of [topic, `${topic}.${this.opts.server}`]) {
        await ch.assertQueue(key, { durable, autoDelete: false });
        await ch.bindQueue(key, this.exchange, key);
      }
      const fanoutEx = `${topic}_fanout`;
      const fanoutQ = this.fanoutQueues.get(topic)!;
      await ch.assertExchange(fanoutEx, 'fanout', { durable: false, autoDelete: true });
      await ch.assertQueue(fanoutQ, { durable: false, autoDelete: false, arguments: { 'x-expires': ttl } });
      await ch.bindQueue(fanoutQ, fanoutEx, topic);
      await consume(topic);
      await consume(`${topic}.${this.opts.server}`);
      await consume(fanoutQ);
    }
    this.consumerChannel = ch;
    this.consumerTags = tags;
  }

  private onDelivery(ch: ConfirmChannel, msg: ConsumeMessage | null): void {
    if (!msg) {
      this.log.warn('consumer cancelled by the broker');
      return;
    }
    this.waiting.push([ch, msg]);
    this.dispatchWaiting();
  }

  /** Dispatches waiting deliveries, in order, while there is room. */
  private dispatchWaiting(): void {
    for (let next = this.waiting[0]; next && this.hasRoomFor(next[1].content.length); next = this.waiting[0]) {
      this.waiting.shift();
      this.dispatch(...next);
    }
  }

  private hasRoomFor(bytes: number): boolean {
    if (this.inFlight.size === 0) return true;
    return this.inFlight.size < this.maxInFlight && this.inFlightBytes + bytes <= this.maxInFlightBytes;
  }

  private dispatch(ch: ConfirmChannel, msg: ConsumeMessage): void {
    // As oslo: ack before dispatch; a message that cannot be acked is not processed.
    try {
      ch.ack(msg);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot ack message; skipped');
      return;
    }
    const bytes = msg.content.length;
    this.inFlightBytes += bytes;
    const p = this.handle(msg.content).catch((err: Error) => {
      this.log.error({ err }, 'unexpected error while handling a message');
    });
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      this.inFlightBytes -= bytes;
      this.dispatchWaiting();
    });
  }

  private async handle(body: Buffer): Promise<void> {
    if (body.length > this.maxBytes) {
      // Only peek for a reply queue in messages of sane size.
      const peek = body.length <= 8 * this.maxBytes ? salvage(body) : null;
      return this.refuse(peek, new InvalidMessage(`message of ${body.length} bytes exceeds limit of ${this.maxBytes}`));
    }
    let msg: Record<string, unknown>;
    try {
      msg = unwrap(body);
    } catch (err) {
      return this.refuse(salvage(body), err as Error);
    }
    if (this.dedup.checkAndAdd(msg._unique_id)) {
      this.log.warn({ unique_id: msg._unique_id }, 'dropping duplicate message');
      return;
    }
    const to = replyAddress(msg);
    const method = msg.method;
    const args = msg.args ?? {};
    if (typeof method !== 'string' || method === '') return this.refuse(msg, new InvalidMessage('message has no method'));
    if (!isPlainObject(args)) return this.refuse(msg, new InvalidMessage('args must be an object'));
    const namespace = typeof msg.namespace === 'string' ? msg.namespace : null;
    const version = typeof msg.version === 'string' ? msg.version : '1.0';
    const ctx = contextFromMessage(msg);
    const log = this.log.child({ request_id: ctx.request_id, method });
    log.info({ ctx: loggableContext(ctx), version, namespace, call: to !== null }, 'dispatch');

    const stopMonitor = to ? this.startCallMonitor(to, msg._timeout, log) : () => {};
    const started = performance.now();
    let result: unknown = null;
    let failure: Error | null = null;
    try {
      const found = findMethod(this.opts.endpoints, namespace, version, method);
      result = await invoke(found, method, ctx, this.opts.deserializeArgs ? this.opts.deserializeArgs(args) : args);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      if (failure instanceof RpcError) log.warn({ error: failure.name, reason: failure.message }, 'rpc method failed');
      else log.error({ err: failure }, 'exception during message handling');
    } finally {
      stopMonitor();
    }
    this.opts.onDispatch?.(method, failure ? failure.name : 'ok', (performance.now() - started) / 1000);
    if (to) await this.reply(to, result, failure, log);
  }

  private async reply(to: ReplyAddress, result: unknown, failure: Error | null, log: pino.Logger): Promise<void> {
    let body: Buffer;
    try {
      body = encodeReply(to.msgId, failure ? null : result, failure, true);
    } catch (err) {
      // e.g. a result that is not JSON-serializable
      body = encodeReply(to.msgId, null, err, true);
    }
    try {
      await sendReply(this.opts.connection, to, body);
    } catch (err) {
      log.warn({ err: (err as Error).message, reply_q: to.replyQ }, 'cannot send reply');
    }
  }

  /** Bad input: log, answer with a failure if the caller can be found, keep serving. */
  private async refuse(msg: Record<string, unknown> | null, err: Error): Promise<void> {
    const to = msg ? replyAddress(msg) : null;
    this.log.warn({ reason: err.message, reply_q: to?.replyQ ?? null }, 'refusing bad message');
    if (to) await this.reply(to, null, err, this.log);
  }

  /** oslo call monitor: heartbeat replies every _timeout/2 s while the method runs. */
  private startCallMonitor(to: ReplyAddress, clientTimeout: unknown, log: pino.Logger): () => void {
    if (clientTimeout === null || clientTimeout === undefined) return () => {};
    const intervalMs = callMonitorIntervalMs(clientTimeout);
    if (intervalMs === null) {
      log.warn({ timeout: clientTimeout }, 'client provided an invalid call-monitor timeout');
      return () => {};
    }
    const timer = setInterval(() => {
      sendReply(this.opts.connection, to, encodeReply(to.msgId, null, null, false)).catch((err: Error) =>
        log.debug({ err: err.message }, 'call-monitor heartbeat failed'),
      );
    }, intervalMs);
    return () => clearInterval(timer);
  }
}

function replyAddress(msg: Record<string, unknown>): ReplyAddress | null {
  const replyQ = msg._reply_q;
  const msgId = msg._msg_id;
  if (typeof replyQ === 'string' && replyQ !== '' && typeof msgId === 'string' && msgId !== '') return { replyQ, msgId };
  return null;
}
