// A first-come first-served limiter for concurrent outgoing migrations
// (`[compute] max_concurrent_live_migrations`, 0 = unlimited). A waiter can be
// withdrawn before its turn, which is how a queued migration is aborted.

export class SlotQueue {
  private running = 0;
  private readonly waiting: Array<{ key: string; grant: () => void; reject: (e: Error) => void }> = [];

  constructor(private readonly limit: number) {}

  /** Resolves with a release function when a slot is free. */
  acquire(key: string): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const grant = () => resolve(this.take());
      if (this.limit === 0 || this.running < this.limit) grant();
      else this.waiting.push({ key, grant, reject });
    });
  }

  /**
   * A slot now, over the limit if need be: for a migration libvirt already
   * runs (carried on after a restart), which held its slot before. Returns its release.
   */
  take(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.next();
    };
  }

  /** Withdraws a waiter; its acquire() rejects with `reason`. False if it is not waiting. */
  withdraw(key: string, reason: Error): boolean {
    const i = this.waiting.findIndex((w) => w.key === key);
    if (i < 0) return false;
    const [w] = this.waiting.splice(i, 1);
    w?.reject(reason);
    return true;
  }

  private next(): void {
    while (this.waiting.length > 0 && (this.limit === 0 || this.running < this.limit)) this.waiting.shift()?.grant();
  }
}
