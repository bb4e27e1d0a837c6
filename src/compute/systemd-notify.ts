// systemd's notify protocol (sd_notify(3)) for Type=notify: READY=1 once
// ferryd serves, STATUS= with the migrations under way, WATCHDOG=1 at half of
// WatchdogSec from the event loop (a blocked loop sends none, and systemd
// restarts ferryd), STOPPING=1 when it stops. Node has no Unix datagram
// sockets, so each message goes through systemd-notify, one at a time and in
// order; systemd-notify waits until systemd has taken each one in.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../log/logger.js';
import type { MigrationRecord } from '../record/registry.js';
import { isFinal, MigrationStatus } from '../record/status.js';

const run = promisify(execFile);

export class SystemdNotifier {
  private chain: Promise<void> = Promise.resolve();
  private watchdog: NodeJS.Timeout | null = null;

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly log: Logger,
  ) {}

  /** Under a Type=notify unit (NOTIFY_SOCKET set); otherwise every call does nothing. */
  get enabled(): boolean {
    return Boolean(this.env.NOTIFY_SOCKET);
  }

  /** Sends one message of `assignments` (e.g. "READY=1", "STATUS=idle") after those before it; never throws. */
  send(...assignments: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    this.chain = this.chain
      .then(() => run('systemd-notify', [`--pid=${process.pid}`, ...assignments], { env: this.env, timeout: 10_000 }))
      .then(
        () => undefined,
        (err: unknown) => this.log.warn({ err, assignments }, 'systemd notification not sent'),
      );
    return this.chain;
  }

  /** WATCHDOG=1 every half of WATCHDOG_USEC, when systemd asks for it for this process. */
  startWatchdog(): void {
    const usec = Number(this.env.WATCHDOG_USEC);
    const pid = this.env.WATCHDOG_PID;
    if (!this.enabled || !(usec > 0) || (pid && Number(pid) !== process.pid)) return;
    this.watchdog = setInterval(() => void this.send('WATCHDOG=1'), Math.max(1, Math.floor(usec / 2000)));
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}

/**
 * The STATUS= line: the migrations this host runs or has queued.
 *
 *   statusLine([])                          // "idle: no migration under way"
 *   statusLine([running, running, queued])  // "2 migrations running, 1 queued"
 */
export function statusLine(records: readonly Pick<MigrationRecord, 'status'>[]): string {
  const open = records.filter((r) => !isFinal(r.status));
  const queued = open.filter((r) => r.status === MigrationStatus.queued).length;
  const running = open.length - queued;
  if (open.length === 0) return 'idle: no migration under way';
  return `${running} migration${running === 1 ? '' : 's'} running, ${queued} queued`;
}
