// The adaptive convergence policy (`[libvirt] convergence_policy = adaptive`):
// what to do before the deadline, decided from the convergence model
// (convergence-model.ts) rather than a clock. Always within the operator's
// limits: the downtime never above the migration's maximum, post-copy only
// when the migration was started with it, auto-converge only when armed. The
// completion timeout and its action stay the operator's (policy.ts).
//
// In order of preference:
//   1. raise the allowed downtime at once to what the model says is enough,
//      when the pre-copy is not shrinking fast by itself;
//   2. post-copy armed, once the downtime can do no more and the link is
//      healthy: at a stall, switch at a local minimum of the remaining bytes;
//      converging, switch when pre-copy is predicted to take over twice what
//      post-copy would, or, right after the bulk pass, when the dirty rate
//      measured before the start is already beyond the link;
//   3. stalled with auto-converge armed: let QEMU's throttling work, and watch it;
//   4. nothing armed can finish it: say so, and act at the deadline, or now
//      when the operator opted into acting at a confident stall.
import type { JobStats } from '../libvirt/types.js';
import type { ConvergenceVerdict } from '../record/registry.js';
import {
  impliedDowntimeMs,
  precopyEtaSeconds,
  shrinkRatio,
  type ConvergenceModel,
  type StallSettings,
} from './convergence-model.js';

export interface ConvergenceSettings {
  /** The migration's maximum downtime, ms (live_migration_downtime or its own). */
  maxDowntimeMs: number;
  /** The first downtime, set at the first poll: low, for guests that converge by themselves. */
  initialDowntimeMs: number;
  stall: StallSettings;
  /** the migration runs with VIR_MIGRATE_POSTCOPY (also what the timeout's force_complete uses) */
  postCopyPermitted: boolean;
  autoConvergePermitted: boolean;
  /** The guest's dirty rate as the preflight measured it (page sampling), bytes/s; null: not measured. */
  measuredDirtyRateBps: number | null;
  /** Act at the first confident "will not converge" rather than at the deadline. */
  actOnStall: boolean;
}

/** An iteration that keeps more than this fraction of the one before is not converging fast by itself. */
export const FAST_SHRINK = 0.5;
/** Downtime asked for above what the newest iteration implies: the next sync finds more than the model saw. */
export const DOWNTIME_MARGIN = 1.25;
/** A mark within this fraction above the least remaining in the window is a local minimum (VEP 248: 1.04). */
export const LOCAL_MINIMUM = 1.04;
/** A link whose newest rate fell below this fraction of its smoothed rate is not healthy enough to start post-copy on. */
export const HEALTHY_LINK = 0.5;
/** The stall test's required fall over a window (VEP 248's published default). */
export const STALL_PROGRESS_FRACTION = 0.04;
/** QEMU's default cpu-throttle-max: auto-converge can do no more. */
export const MAX_THROTTLE_PERCENT = 99;

/** The downtime the model says is enough, ms, before the operator's maximum: the newest implication with its margin. */
export function neededDowntimeMs(model: ConvergenceModel): number | null {
  const implied = impliedDowntimeMs(model);
  return implied === null ? null : Math.ceil(implied * DOWNTIME_MARGIN);
}

/**
 * What the migration's prospects are at the newest mark.
 *
 *     not stalled                                        -> converging
 *     stalled, post-copy armed                           -> stalled (post-copy ends it)
 *     stalled, downtime can still rise to what is needed -> stalled
 *     stalled, auto-converge armed, throttle below 99 %  -> throttling
 *     stalled otherwise, confidently                     -> will_not_converge
 *     stalled otherwise, one flat pass, the preflight measured
 *       a dirty rate at or beyond the link               -> will_not_converge
 *     stalled otherwise, one flat pass so far            -> stalled (said only when sure)
 *
 * One flat pass and the preflight's rate are two signs that agree: the pass
 * did not shrink, and the guest writes faster than the link sends. Waiting
 * for a second flat pass as well would name it a whole pass later (4–5 s for
 * a 128 MiB working set at 30 MiB/s).
 */
export function assess(
  model: ConvergenceModel,
  s: Pick<ConvergenceSettings, 'maxDowntimeMs' | 'postCopyPermitted' | 'autoConvergePermitted' | 'measuredDirtyRateBps'>,
  throttlePercent: number,
): ConvergenceVerdict {
  if (!model.stalled) return 'converging';
  if (s.postCopyPermitted) return 'stalled';
  const needed = neededDowntimeMs(model);
  if (needed !== null && needed <= s.maxDowntimeMs) return 'stalled';
  if (s.autoConvergePermitted && throttlePercent < MAX_THROTTLE_PERCENT) return 'throttling';
  return model.confident || measuredBeyondLink(model, s.measuredDirtyRateBps) ? 'will_not_converge' : 'stalled';
}

/**
 * The preflight measured the guest dirtying at least as fast as the link
 * carries (its smoothed rate).
 *
 *     measured 45 MiB/s, link 30 -> true;  measured 20 -> false;  not measured -> false
 */
export function measuredBeyondLink(model: ConvergenceModel, measuredDirtyRateBps: number | null): boolean {
  return measuredDirtyRateBps !== null && model.bandwidthBps !== null && measuredDirtyRateBps >= model.bandwidthBps;
}

/**
 * The downtime to set now, or null to leave it: the first poll sets the low
 * initial value; later, at a new mark that did not shrink fast (at the first
 * mark, judged by dirty rate ÷ bandwidth), the needed value, capped at the
 * maximum. It only ever rises. At the first mark the dirty rate is the larger
 * of QEMU's and the preflight's: QEMU counts a page once a pass, so after a
 * long bulk pass its figure is at most the working set ÷ that pass.
 *
 *     first poll, initial 50                         -> 50
 *     mark kept 80 % of the one before, needs 900 ms, max 500, current 50 -> 500
 *     mark kept 30 %                                 -> null (converging by itself)
 *     first mark, QEMU's rate 0.4 × bandwidth, measured 3 × -> 500
 */
export function adaptiveDowntime(
  current: number | null,
  model: ConvergenceModel,
  newMark: boolean,
  s: Pick<ConvergenceSettings, 'maxDowntimeMs' | 'initialDowntimeMs' | 'measuredDirtyRateBps'>,
): number | null {
  if (current === null) return Math.min(s.initialDowntimeMs, s.maxDowntimeMs);
  if (!newMark) return null;
  // Before two marks can say it, the rates do: a pass keeps about dirty rate ÷ bandwidth of the one before.
  const dirty = model.dirtyRateBps === null ? s.measuredDirtyRateBps : Math.max(model.dirtyRateBps, s.measuredDirtyRateBps ?? 0);
  const ratio = shrinkRatio(model) ?? (dirty !== null && model.bandwidthBps ? dirty / model.bandwidthBps : null);
  if (ratio !== null && ratio <= FAST_SHRINK) return null;
  const needed = neededDowntimeMs(model);
  if (needed === null) return null;
  const target = Math.min(needed, s.maxDowntimeMs);
  return target > current ? target : null;
}

/**
 * Whether the newest mark is within LOCAL_MINIMUM of the least remaining
 * among the recent passes that re-send what the guest dirtied during a pass
 * like them (iteration 3 on: iteration 2 holds what was dirtied during the
 * bulk pass, whose length is another matter). The first such mark is one.
 *
 *     marks 113 (iteration 2), 129                -> true (129 is the least of {129})
 *     marks 113, 129, 100, 103.9                  -> true; 104.1 -> false
 */
export function atLocalMinimum(model: ConvergenceModel): boolean {
  const newest = model.marks.at(-1);
  if (!newest) return false;
  const passes = model.marks.filter((m) => m.iteration >= 3).map((m) => m.bytes);
  return passes.length === 0 || newest.bytes <= LOCAL_MINIMUM * Math.min(...passes);
}

/** The newest transfer rate is at least HEALTHY_LINK of the smoothed one. */
export function linkHealthy(model: ConvergenceModel): boolean {
  return model.bandwidthBps !== null && model.lastBandwidthBps !== null && model.lastBandwidthBps >= HEALTHY_LINK * model.bandwidthBps;
}

/** Pre-copy predicted to take longer than this many times what post-copy would take now is not worth waiting for. */
export const POSTCOPY_PATIENCE = 2;

/**
 * After a full pass (iteration 3 on), pre-copy at this downtime is predicted
 * to end later than POSTCOPY_PATIENCE × the time post-copy would take to send
 * what is left (or not at all): a slow convergence that post-copy beats.
 * Right after the bulk pass (iteration 2) QEMU's dirty rate cannot tell yet:
 * it counts pages dirtied once per pass, so a working set rewritten many
 * times over a long bulk pass looks slow. The preflight's sampled rate can: at
 * or beyond the bandwidth, every pass re-sends the whole working set, and
 * waiting for passes to show it only delays post-copy.
 *
 *     103 MiB left, 30 MiB/s, 24 MiB/s dirtied, 500 ms -> pre-copy (103 − 15) ÷ 6 = 14.7 s
 *       vs post-copy 3.4 s -> true
 *     40 MiB left, 10 MiB/s dirtied -> (40 − 15) ÷ 20 = 1.25 s vs 1.3 s -> false
 *     iteration 2, 113 MiB left, measured 90 MiB/s over 30 -> true
 *     iteration 2, 10 MiB left (the downtime covers 15), measured 90 -> false
 */
export function outlastsPostcopy(model: ConvergenceModel, downtimeMs: number, measuredDirtyRateBps: number | null): boolean {
  const mark = model.marks.at(-1);
  const b = model.bandwidthBps;
  if (!mark || !b) return false;
  if (mark.iteration === 2) return measuredBeyondLink(model, measuredDirtyRateBps) && mark.bytes > (b * downtimeMs) / 1000;
  if (mark.iteration < 3) return false;
  const precopy = precopyEtaSeconds(model, downtimeMs);
  return precopy === null || precopy > POSTCOPY_PATIENCE * (mark.bytes / b);
}

/**
 * Post-copy armed, the downtime already as high as it helps, the link
 * healthy, and either stalled (then at a local minimum, or anyway once the
 * stall has lasted a window, as VEP 248 relaxes its minimum) or converging so
 * slowly that post-copy now ends sooner (outlastsPostcopy).
 */
export function shouldStartPostcopy(
  model: ConvergenceModel,
  currentDowntime: number | null,
  elapsed: number,
  s: Pick<ConvergenceSettings, 'maxDowntimeMs' | 'postCopyPermitted' | 'stall' | 'measuredDirtyRateBps'>,
): boolean {
  if (!s.postCopyPermitted) return false;
  const needed = neededDowntimeMs(model);
  if (needed !== null && (currentDowntime ?? 0) < Math.min(needed, s.maxDowntimeMs)) return false;
  if (!linkHealthy(model)) return false;
  if (!model.stalled) return outlastsPostcopy(model, currentDowntime ?? 0, s.measuredDirtyRateBps);
  const patienceOver = model.stalledSince !== null && elapsed - model.stalledSince >= s.stall.windowSeconds;
  return atLocalMinimum(model) || patienceOver;
}

/**
 * Seconds from now until the migration ends at the present pace, or null when
 * the model cannot say or pre-copy alone will not end it. With post-copy
 * about to start it is the time to send what is left.
 */
export function etaSeconds(model: ConvergenceModel, verdict: ConvergenceVerdict, downtimeMs: number, elapsed: number, postCopyPermitted: boolean): number | null {
  const mark = model.marks.at(-1);
  if (!mark) return null;
  if (verdict === 'will_not_converge' || verdict === 'throttling') return null;
  if (verdict === 'stalled' && postCopyPermitted && model.bandwidthBps) {
    return Math.max(0, mark.at + mark.bytes / model.bandwidthBps - elapsed);
  }
  const eta = precopyEtaSeconds(model, downtimeMs);
  return eta === null ? null : Math.max(0, mark.at + eta - elapsed);
}

/** The line an operator reads when nothing permitted can finish the migration. */
export function willNotConvergeDetail(model: ConvergenceModel): string {
  const mib = (bps: number | null) => ((bps ?? 0) / 2 ** 20).toFixed(1);
  return `will not converge: dirty rate ${mib(model.dirtyRateBps)} MiB/s vs bandwidth ${mib(model.bandwidthBps)} MiB/s`;
}

/** The auto-converge throttle libvirt reports, in percent (0 when none). */
export function throttlePercent(sample: JobStats): number {
  return sample.auto_converge_throttle ?? 0;
}
