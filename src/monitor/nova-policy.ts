// Nova's convergence policy: the allowed downtime climbs a fixed ramp, and
// nothing else happens before the completion timeout
// (nova/virt/libvirt/migration.py: downtime_steps, update_downtime). Kept bit
// for bit as `[libvirt] convergence_policy = nova`, and as the baseline the
// adaptive policy is measured against.

/** [seconds after the monitor started, max downtime in ms] */
export type DowntimeStep = readonly [seconds: number, ms: number];

export interface DowntimeSettings {
  /** live_migration_downtime, ms */
  downtime: number;
  /** live_migration_downtime_steps */
  steps: number;
  /** live_migration_downtime_delay, seconds per GiB */
  delay: number;
}

/**
 * The downtime values of a ramp: S+1 steps from D/S up to D, truncated as
 * Nova's int(). D=400, S=4 -> 100, 175, 250, 325, 400.
 */
function rampMs(cfg: Pick<DowntimeSettings, 'downtime' | 'steps'>): number[] {
  const base = cfg.downtime / cfg.steps;
  const offset = (cfg.downtime - base) / cfg.steps;
  const out: number[] = [];
  for (let i = 0; i <= cfg.steps; i++) out.push(Math.trunc(base + offset * i));
  return out;
}

/** Nova's downtime_steps: the ramp's values `delay*data_gb` seconds apart. */
export function downtimeSteps(dataGb: number, cfg: DowntimeSettings): DowntimeStep[] {
  const delay = Math.trunc(cfg.delay * dataGb);
  return rampMs(cfg).map((ms, i) => [Math.trunc(delay * i), ms]);
}

/**
 * ferry's per-migration ramp (the never-implemented Nova per-instance timeout
 * spec): the same values as downtimeSteps, spread evenly over the first half of
 * the timeout so `downtime` is reached at exactly timeout/2 and then held.
 */
export function timedDowntimeSteps(
  timeoutSeconds: number,
  cfg: Pick<DowntimeSettings, 'downtime' | 'steps'>,
): DowntimeStep[] {
  if (!(timeoutSeconds > 0)) throw new RangeError(`timeout must be > 0 seconds, got ${timeoutSeconds}`);
  if (!(cfg.steps >= 1)) throw new RangeError(`steps must be >= 1, got ${cfg.steps}`);
  return rampMs(cfg).map((ms, i) => [
    (timeoutSeconds * i) / (2 * cfg.steps),
    // The last step is exactly the configured downtime, whatever the float error.
    i === cfg.steps ? cfg.downtime : ms,
  ]);
}

/** Nova's completion timeout: live_migration_completion_timeout (s/GiB) × data_gb, truncated. */
export function completionTimeoutSeconds(perGb: number, dataGb: number): number {
  return Math.trunc(perGb * dataGb);
}

export interface DowntimeUpdate {
  value: number | null;
  /** true when migrateSetMaxDowntime(value) must be called */
  set: boolean;
}

/** Nova's update_downtime: the last step strictly passed; only a change is applied. */
export function updateDowntime(
  current: number | null,
  steps: readonly DowntimeStep[],
  elapsed: number,
): DowntimeUpdate {
  let step: DowntimeStep | undefined;
  for (const s of steps) if (elapsed > s[0]) step = s;
  if (step === undefined || step[1] === current) return { value: current, set: false };
  return { value: step[1], set: true };
}

