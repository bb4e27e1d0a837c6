// One reconnecting AMQP connection with one confirm channel.
// Users register topology/consumer setup functions, re-run after every
// (re)connect, and publish through it; publishes made while disconnected
// wait and go out after the next connect.
import amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { parseTransportUrl, type BrokerHost, type TransportUrl } from './transport-url.js';

export interface TlsOptions {
  /** Paths of PEM files. */
  ca?: string;
  cert?: string;
  key?: string;
  /** Verify the broker certificate (default true). */
  verify?: boolean;
}

export interface AmqpConnectionOptions {
  /** oslo transport_url, e.g. rabbit://guest:guest@127.0.0.1:5672/ */
  transportUrl: string;
  /** Shown by `rabbitmqctl list_connections client_properties` as connection_name. */
  connectionName: string;
  /** oslo heartbeat_timeout_threshold in seconds (0 disables); AMQP heartbeat is half of it. */
  heartbeatThreshold?: number;
  tls?: TlsOptions;
  /** Backoff: first delay, multiplier, cap (seconds); oslo rabbit_retry_interval/backoff/interval_max. */
  retryInterval?: number;
  retryBackoff?: number;
  retryMax?: number;
  logger?: pino.Logger;
}

/** Runs on each new channel; declare exchanges/queues and start consumers here. */
export type SetupFn = (ch: ConfirmChannel) => Promise<void>;

/** A declaration done once per channel before a publish (e.g. assertExchange). */
export interface Declaration {
  key: string;
  fn: (ch: ConfirmChannel) => Promise<unknown>;
}

interface Session {
  conn: ChannelModel;
  ch: ConfirmChannel;
  declared: Set<string>;
  alive: boolean;
}

interface PendingPublish {
  exchange: string;
  routingKey: string;
  body: Buffer;
  options: Options.Publish;
  declare?: Declaration | undefined;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class ConnectionClosedError extends Error {
  constructor() {
    super('AMQP connection closed');
    this.name = 'ConnectionClosedError';
  }
}

export class AmqpConnection extends EventEmitter {
  private readonly url: TransportUrl;
  private readonly log: pino.Logger;
  private readonly setups = new Set<SetupFn>();
  private pending: PendingPublish[] = [];
  private session: Session | null = null;
  private closed = false;
  private started = false;
  private everConnected = false;
  private wakeLoop: (() => void) | null = null;
  private sleepTimer: NodeJS.Timeout | null = null;
  private loopDone: Promise<void> | null = null;
  private readonly connectWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(private readonly opts: AmqpConnectionOptions) {
    super();
    this.url = parseTransportUrl(opts.transportUrl);
    this.log = (opts.logger ?? pino({ level: 'warn' })).child({ component: 'amqp', connection: opts.connectionName });
  }

  get connected(): boolean {
    return this.session?.alive === true;
  }

  /** Starts connecting (retrying forever); resolves once connected. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    if (!this.started) {
      this.started = true;
      this.loopDone = this.runLoop();
    }
    return this.waitConnected();
  }

  waitConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    return new Promise((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
  }

  /** Registers a setup; runs it now if connected (errors propagate), and after every reconnect. */
  async addSetup(fn: SetupFn): Promise<void> {
    this.setups.add(fn);
    const s = this.session;
    if (s?.alive) await fn(s.ch);
  }

  removeSetup(fn: SetupFn): void {
    this.setups.delete(fn);
  }

  /** The live channel, if any (for cancel/delete on shutdown). */
  get channel(): ConfirmChannel | null {
    return this.session?.alive ? this.session.ch : null;
  }

  /** Publishes with a broker confirm; waits across reconnects if needed. */
  publish(exchange: string, routingKey: string, body: Buffer, options: Options.Publish, declare?: Declaration): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    return new Promise((resolve, reject) => {
      const item: PendingPublish = { exchange, routingKey, body, options, declare, resolve, reject };
      const s = this.session;
      if (s?.alive) void this.send(s, item);
      else this.pending.push(item);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wakeLoop?.();
    for (const w of this.connectWaiters.splice(0)) w.reject(new ConnectionClosedError());
    for (const p of this.pending.splice(0)) p.reject(new ConnectionClosedError());
    const s = this.session;
    this.session = null;
    if (s) {
      s.alive = false;
      try {
        await s.ch.close();
      } catch {
        /* already closed */
      }
      try {
        await s.conn.close();
      } catch {
        /* already closed */
      }
    }
    await this.loopDone;
    this.log.info('closed');
  }

  private async send(s: Session, item: PendingPublish): Promise<void> {
    try {
      if (item.declare && !s.declared.has(item.declare.key)) {
        await item.declare.fn(s.ch);
        s.declared.add(item.declare.key);
      }
      s.ch.publish(item.exchange, item.routingKey, item.body, item.options, (err) => {
        if (!err) item.resolve();
        else this.retryOrFail(s, item, err);
      });
    } catch (err) {
      // A refused declaration (access, precondition) would fail again after reconnect.
      if (isRefusal(err)) item.reject(err as Error);
      else this.retryOrFail(s, item, err as Error);
    }
  }

  /** A publish lost with its channel goes out again after reconnect; a nack or bad declare fails. */
  private retryOrFail(s: Session, item: PendingPublish, err: Error): void {
    // Give the close event a moment to mark the session dead before deciding.
    setImmediate(() => {
      if (this.closed) item.reject(new ConnectionClosedError());
      else if (!s.alive || this.session !== s) {
        const cur = this.session;
        if (cur?.alive) void this.send(cur, item);
        else this.pending.push(item);
      } else item.reject(err);
    });
  }

  private async runLoop(): Promise<void> {
    let delay = this.opts.retryInterval ?? 1;
    const backoff = this.opts.retryBackoff ?? 2;
    const max = this.opts.retryMax ?? 30;
    while (!this.closed) {
      const session = await this.connectOnce();
      if (this.closed) break;
      if (session) {
        // Connected then lost: retry at once, then back off; a session that died
        // right away keeps the backoff so a broken setup cannot spin.
        const since = Date.now();
        await session.lost;
        if (this.closed) break;
        this.log.warn('connection lost; reconnecting');
        if (Date.now() - since > 5000) delay = this.opts.retryInterval ?? 1;
        else {
          await this.sleep(delay * 1000);
          delay = Math.min(delay * backoff, max);
        }
        continue;
      }
      await this.sleep(delay * 1000);
      delay = Math.min(delay * backoff, max);
    }
  }

  /** One attempt over all hosts; on success, `lost` settles when the session dies. */
  private async connectOnce(): Promise<{ lost: Promise<void> } | null> {
    for (const host of this.url.hosts) {
      if (this.closed) return null;
      let conn: ChannelModel | null = null;
      try {
        conn = await amqp.connect(this.connectOptions(host), this.socketOptions(host));
        const ch = await conn.createConfirmChannel();
        const session: Session = { conn, ch, declared: new Set(), alive: true };
        const lost = this.watch(session);
        for (const fn of this.setups) await fn(ch);
        if (this.closed) {
          await conn.close().catch(() => {});
          return null;
        }
        this.session = session;
        this.log.info({ host: `${host.hostname}:${host.port}` }, this.everConnected ? 'reconnected' : 'connected');
        const wasReconnect = this.everConnected;
        this.everConnected = true;
        this.emit(wasReconnect ? 'reconnected' : 'connected');
        for (const p of this.pending.splice(0)) void this.send(session, p);
        for (const w of this.connectWaiters.splice(0)) w.resolve();
        return { lost };
      } catch (err) {
        if (conn) {
          // Connected but setup failed (e.g. a declaration refused): not a plain retry.
          this.log.error({ err: (err as Error).message, host: host.hostname }, 'channel setup failed');
        } else if (!this.everConnected && !this.loggedFirstFailure) {
          this.loggedFirstFailure = true;
          this.log.warn({ err: (err as Error).message }, 'cannot connect to broker; retrying');
        } else {
          this.log.debug({ err: (err as Error).message, host: host.hostname }, 'connect attempt failed');
        }
        if (conn) await conn.close().catch(() => {});
      }
    }
    return null;
  }

  private loggedFirstFailure = false;

  private watch(s: Session): Promise<void> {
    return new Promise((resolve) => {
      let ended = false;
      const die = (why: string) => (err?: Error) => {
        if (ended) return;
        ended = true;
        s.alive = false;
        if (this.session === s) this.session = null;
        if (!this.closed) this.emit('lost', err);
        this.log.debug({ why, err: err?.message }, 'session ended');
        // A dead channel on a live connection: drop the connection, reconnect cleanly.
        s.conn.close().catch(() => {});
        resolve();
      };
      s.conn.on('error', () => {}); // 'close' follows
      s.conn.on('close', die('connection closed'));
      s.ch.on('error', () => {});
      s.ch.on('close', die('channel closed'));
      s.ch.on('return', (msg: { fields: { routingKey: string; exchange: string } }) => {
        // Mandatory publishes (replies) whose queue is gone, e.g. the caller exited.
        this.log.warn({ exchange: msg.fields.exchange, routing_key: msg.fields.routingKey }, 'unroutable message returned');
        this.emit('return', msg);
      });
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeLoop = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }

  private connectOptions(host: BrokerHost): Options.Connect {
    const threshold = this.opts.heartbeatThreshold ?? 60;
    return {
      protocol: this.url.ssl ? 'amqps' : 'amqp',
      hostname: host.hostname,
      port: host.port,
      username: host.username,
      password: host.password,
      vhost: this.url.vhost,
      heartbeat: threshold > 0 ? Math.max(1, Math.floor(threshold / 2)) : 0,
    };
  }

  private socketOptions(host: BrokerHost): Record<string, unknown> {
    const so: Record<string, unknown> = {
      clientProperties: { connection_name: this.opts.connectionName, product: 'ferry' },
      timeout: 10_000,
      // Small RPC frames: without this, Nagle + delayed ACK add ~40 ms per reply.
      noDelay: true,
    };
    if (this.url.ssl) {
      const tls = this.opts.tls ?? {};
      if (tls.ca) so.ca = [readFileSync(tls.ca)];
      if (tls.cert) so.cert = readFileSync(tls.cert);
      if (tls.key) so.key = readFileSync(tls.key);
      so.rejectUnauthorized = tls.verify ?? true;
      so.servername = host.hostname;
    }
    return so;
  }
}

function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 403 || code === 404 || code === 405 || code === 406;
}
