// Messages to the conductor (migration_update casts, notifications) go out
// through this outbox: each is written to a file under <state_path>/outbox
// before it is sent and removed once RabbitMQ confirmed it, so a broker
// outage or a restart delays messages but loses none. One sender, oldest
// first, one at a time: messages arrive in the order they were made, at
// least once (a crash between the confirm and the removal sends one again).

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { removeFileDurably, setAside, writeFileDurably } from '../record/durable-file.js';

/** A failed send is tried again this long after, each later one twice as late, up to OUTBOX_MAX_RETRY_MS. */
export const OUTBOX_FIRST_RETRY_MS = 500;
export const OUTBOX_MAX_RETRY_MS = 30_000;

/** Zero-padded so that file names sort in the order the messages were made. */
const NAME = /^(\d{16})\.json$/;

interface Saved<T> {
  order: number;
  message: T;
}

export class Outbox<T> {
  private readonly queue: Saved<T>[] = [];
  private nextOrder = 0;
  private sending: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryWake: (() => void) | null = null;

  /** Loads what an earlier ferryd left unsent; nothing is sent before start(). */
  constructor(
    private readonly dir: string,
    private readonly deliver: (message: T) => Promise<void>,
    private readonly log: Logger,
  ) {
    for (const saved of this.load()) {
      this.queue.push(saved);
      this.nextOrder = Math.max(this.nextOrder, saved.order + 1);
    }
  }

  /** Messages written and not yet confirmed. */
  get pending(): number {
    return this.queue.length;
  }

  /** Starts sending (what was left from before first). */
  start(): void {
    if (this.queue.length > 0) this.log.info({ pending: this.queue.length }, 'outbox: sending messages left by an earlier run');
    this.started = true;
    this.kick();
  }

  /** Written to disk now, sent in turn. */
  push(message: T): void {
    const saved: Saved<T> = { order: this.nextOrder++, message };
    writeFileDurably(this.file(saved.order), `${JSON.stringify(saved)}\n`);
    this.queue.push(saved);
    this.kick();
  }

  /** Waits up to `ms` for the queue to empty, then stops sending; what is left stays on disk for the next start. */
  async stop(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (this.queue.length > 0 && performance.now() < deadline) {
      this.retryWake?.();
      await new Promise((r) => setTimeout(r, 50));
    }
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryWake?.();
    // A send still waiting on the broker is not waited for past the deadline: its file stays.
    await Promise.race([this.sending, new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())))]);
    if (this.queue.length > 0) this.log.warn({ pending: this.queue.length }, 'outbox: messages left for the next start');
  }

  private kick(): void {
    if (this.started && !this.stopped && !this.sending && this.queue.length > 0) this.sending = this.drain().finally(() => (this.sending = null));
  }

  private async drain(): Promise<void> {
    let failures = 0;
    while (!this.stopped && this.queue.length > 0) {
      const head = this.queue[0]!;
      try {
        await this.deliver(head.message);
      } catch (err) {
        failures += 1;
        const delayMs = Math.min(OUTBOX_MAX_RETRY_MS, OUTBOX_FIRST_RETRY_MS * 2 ** (failures - 1));
        this.log.warn({ err, attempt: failures, delayMs, pending: this.queue.length }, 'outbox: message not sent; trying again');
        await new Promise<void>((resolve) => {
          this.retryWake = resolve;
          this.retryTimer = setTimeout(resolve, delayMs);
        });
        this.retryWake = null;
        continue;
      }
      failures = 0;
      this.queue.shift();
      removeFileDurably(this.file(head.order));
    }
  }

  private file(order: number): string {
    return join(this.dir, `${String(order).padStart(16, '0')}.json`);
  }

  private load(): Saved<T>[] {
    if (!existsSync(this.dir)) return [];
    const out: Saved<T>[] = [];
    for (const name of readdirSync(this.dir).sort()) {
      const m = NAME.exec(name);
      if (!m) continue;
      const file = join(this.dir, name);
      try {
        const saved = JSON.parse(readFileSync(file, 'utf8')) as Saved<T>;
        if (saved.order !== Number(m[1]) || saved.message === undefined) throw new Error('not an outbox message');
        out.push(saved);
      } catch (err) {
        this.log.error({ err, file, aside: setAside(file) }, 'outbox message unreadable: set aside, not sent');
      }
    }
    return out;
  }
}
