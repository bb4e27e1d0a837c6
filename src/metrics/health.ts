// ferryd's health for /healthz: AMQP and libvirt connected, and the event
// loop answering its own timer in time (a loop blocked for seconds can answer
// nothing, RPC heartbeats included). Each check names what is wrong.

/** A timer tick later than this means the event loop was blocked. */
export const LOOP_LAG_LIMIT_MS = 2_000;
const TICK_MS = 500;

export interface HealthChecks {
  amqpConnected: () => boolean;
  libvirtConnected: () => boolean;
}

export interface HealthStatus {
  healthy: boolean;
  /** What is wrong, one phrase each; empty when healthy. */
  problems: string[];
}

export class Health {
  private lastTick = performance.now();
  private worstLagMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly checks: HealthChecks) {
    this.timer = setInterval(() => {
      const now = performance.now();
      this.worstLagMs = Math.max(0, now - this.lastTick - TICK_MS);
      this.lastTick = now;
    }, TICK_MS);
    this.timer.unref();
  }

  status(): HealthStatus {
    const problems: string[] = [];
    if (!this.checks.amqpConnected()) problems.push('RabbitMQ disconnected');
    if (!this.checks.libvirtConnected()) problems.push('libvirt disconnected');
    // The tick itself is late when the loop is blocked now; the last lag when it was a moment ago.
    const lag = Math.max(this.worstLagMs, performance.now() - this.lastTick - TICK_MS);
    if (lag > LOOP_LAG_LIMIT_MS) problems.push(`event loop blocked for ${Math.round(lag)} ms`);
    return { healthy: problems.length === 0, problems };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
