// The adaptive policy's picture of a running pre-copy migration, as pure
// functions: how fast the link carries and the guest dirties memory (both
// smoothed), how much is left at the start of each iteration, whether that has
// stopped falling (a stall: KubeVirt VEP 248's rule over a window, or a
// single pass that did not shrink), the downtime QEMU would need to switch
// over now, and when the migration would end at this pace.
//
// Remaining bytes are read at iteration starts only: within an iteration
// QEMU's remaining count falls towards zero as the pass is sent and jumps back
// up at the next dirty-bitmap sync, so only its value just after a sync says
// how much a switch-over would have to move. A poll comes some time after
// that sync, maybe several syncs later; the bytes sent since are added back
// (iterationStartBytes).
import type { JobStats } from '../libvirt/types.js';

export interface StallSettings {
  /** Seconds over which the remaining bytes must fall (VEP 248's progressTimeout). */
  windowSeconds: number;
  /** The fraction they must fall by over the window (VEP 248: 0.04). */
  progressFraction: number;
}

/** The remaining bytes at the start of an iteration, as the first poll in it saw them. */
export interface IterationMark {
  iteration: number;
  /** seconds on the monitor's clock */
  at: number;
  bytes: number;
}

export interface PollFigures {
  iteration: number;
  remaining: number;
  processed: number;
}

export interface ConvergenceModel {
  /** Smoothed `memory_bps`, bytes/s; null before the first sample that has it. */
  bandwidthBps: number | null;
  /** Smoothed dirty rate, bytes/s; null before the first sample that has it. */
  dirtyRateBps: number | null;
  /** The newest sample's transfer rate, bytes/s, for the link-health guard. */
  lastBandwidthBps: number | null;
  /** Marks of the iterations after the first (bulk) pass, oldest first: the newest two, and any within a window of the newest. */
  marks: IterationMark[];
  /** The least bytes among the marks a window or more older than the newest (they are folded into it); null while none is. */
  leastOlderBytes: number | null;
  /** The previous poll's iteration, remaining and processed bytes, to place a mark at its iteration's true start. */
  previousPoll: PollFigures | null;
  /** Passes in a row, up to the newest mark, that did not shrink (flatPass). */
  flatPasses: number;
  /** The stall test's verdict at the newest mark: one flat pass, or VEP 248's window. */
  stalled: boolean;
  /** A stall to act on unasked-for: two flat passes in a row, or VEP 248's window. */
  confident: boolean;
  /** When the current stall was first seen (monitor seconds), null while not stalled. */
  stalledSince: number | null;
}

/** VEP 248 smooths the transfer rate with α = 0.4; the dirty rate gets the same. */
export const SMOOTHING = 0.4;

export function initialModel(): ConvergenceModel {
  return { bandwidthBps: null, dirtyRateBps: null, lastBandwidthBps: null, marks: [], leastOlderBytes: null, previousPoll: null, flatPasses: 0, stalled: false, confident: false, stalledSince: null };
}

/**
 * An exponentially weighted moving average step.
 *
 *     ewma(null, 10) = 10        (the first value is taken as it is)
 *     ewma(10, 20)   = 14        (0.4 × 20 + 0.6 × 10)
 */
export function ewma(previous: number | null, value: number, alpha = SMOOTHING): number {
  return previous === null ? value : alpha * value + (1 - alpha) * previous;
}

/** What a switch-over would move: data_remaining (memory and disks), else memory_remaining. */
export function remainingBytes(sample: JobStats): number {
  return sample.data_remaining ?? sample.memory_remaining ?? 0;
}

/** What has been sent, counted like remainingBytes. */
export function processedBytes(sample: JobStats): number {
  return sample.data_remaining !== undefined ? (sample.data_processed ?? 0) : (sample.memory_processed ?? 0);
}

/**
 * The remaining bytes at the start of the iteration a poll is the first to
 * see. Between the two polls, `processed` grew by the end of the old pass (the
 * previous poll's remaining), any whole passes after it, and what the new pass
 * had sent; with k syncs between the polls that is k − 1 whole passes and the
 * start of the k-th. Taking the passes alike, one started with
 * (what the poll saw + what was sent beyond the old pass) ÷ k — never less
 * than what the poll saw. A guest whose small working set is re-sent several
 * times a second is seen mid-pass by every poll; its passes are this average,
 * not the tail a poll happened to catch.
 *
 *     previous poll (iteration 2) 5 MiB left, 100 MiB processed; this one
 *     (iteration 3) 110 MiB left, 115 MiB processed -> 10 MiB of the new pass sent: 120 MiB
 *     previous (iteration 2) 3 MiB left, 100 processed; this one (iteration 6)
 *     2 MiB left, 130 processed -> (2 + 27) ÷ 4: 7.25 MiB a pass
 */
export function iterationStartBytes(previous: PollFigures | null, now: PollFigures): number {
  const syncs = previous ? now.iteration - previous.iteration : 0;
  if (!previous || syncs < 1) return now.remaining;
  const sentBeyondOldPass = Math.max(0, now.processed - previous.processed - previous.remaining);
  return Math.max(now.remaining, (now.remaining + sentBeyondOldPass) / syncs);
}

/** libvirt gives the dirty rate in pages per second. */
export function dirtyRateBps(sample: JobStats): number | undefined {
  if (sample.memory_dirty_rate === undefined) return undefined;
  return sample.memory_dirty_rate * (sample.memory_page_size ?? 4096);
}

/**
 * VEP 248's stall test at the newest mark: the remaining bytes have not
 * fallen by `progressFraction` below the least seen at marks a window or more
 * older. With no mark that old there is no verdict yet (false).
 *
 *     least older 100 MiB, newest 97 MiB, fraction 0.04 -> 97 >= 96: stalled
 *     least older 100 MiB, newest 40 MiB                -> not stalled
 */
export function stalledAt(newestBytes: number, leastOlderBytes: number | null, s: Pick<StallSettings, 'progressFraction'>): boolean {
  return leastOlderBytes !== null && newestBytes >= (1 - s.progressFraction) * leastOlderBytes;
}

/**
 * The newest pass kept at least (1 − progressFraction) of the one before: a
 * pre-copy that did not shrink in a whole pass, as when the guest's working
 * set is dirtied again faster than the link sends it. Known after two marks,
 * long before a window of them. (The guest's dirty rate cannot tell this:
 * pages dirtied twice between syncs count once, so the rate libvirt reports
 * for a saturated working set stays below the link's.)
 *
 *     113 MiB then 129 MiB -> true
 *     128 MiB then 123 MiB -> true (4 % or less)
 *     128 MiB then 103 MiB -> false
 */
export function flatPass(before: IterationMark | undefined, newest: IterationMark, s: Pick<StallSettings, 'progressFraction'>): boolean {
  return before !== undefined && newest.bytes >= (1 - s.progressFraction) * before.bytes;
}

/**
 * The model after one UNBOUNDED sample. A new iteration number (after the
 * first pass) adds a mark; marks a window or more older than it are folded
 * into `leastOlderBytes` (the newest two stay, for the shrink ratio), so the
 * model stays small however long the migration runs.
 *
 *     window 10; marks at 10 s and 14 s, a new one at 22 s
 *       -> the 10 s mark folds in (10 <= 22 − 10); marks 14, 22
 */
export function observe(model: ConvergenceModel, sample: JobStats, elapsedSeconds: number, s: StallSettings): ConvergenceModel {
  const next: ConvergenceModel = { ...model };
  if (sample.memory_bps !== undefined && sample.memory_bps > 0) {
    next.bandwidthBps = ewma(model.bandwidthBps, sample.memory_bps);
    next.lastBandwidthBps = sample.memory_bps;
  }
  const dirty = dirtyRateBps(sample);
  if (dirty !== undefined) next.dirtyRateBps = ewma(model.dirtyRateBps, dirty);
  const iteration = sample.memory_iteration ?? 0;
  const poll: PollFigures = { iteration, remaining: remainingBytes(sample), processed: processedBytes(sample) };
  if (iteration >= 2 && iteration !== model.marks.at(-1)?.iteration) {
    const mark = { iteration, at: elapsedSeconds, bytes: iterationStartBytes(model.previousPoll, poll) };
    let least = model.leastOlderBytes;
    for (const m of model.marks) if (m.at <= mark.at - s.windowSeconds) least = Math.min(least ?? m.bytes, m.bytes);
    const kept = model.marks.filter((m, i) => m.at > mark.at - s.windowSeconds || i === model.marks.length - 1);
    next.marks = [...kept, mark];
    next.leastOlderBytes = least;
    next.flatPasses = flatPass(model.marks.at(-1), mark, s) ? model.flatPasses + 1 : 0;
    const windowed = stalledAt(mark.bytes, least, s);
    next.stalled = windowed || next.flatPasses >= 1;
    next.confident = windowed || next.flatPasses >= 2;
    next.stalledSince = next.stalled ? (model.stalledSince ?? elapsedSeconds) : null;
  }
  next.previousPoll = poll;
  return next;
}

/**
 * The downtime QEMU needs to switch over with what the newest iteration
 * started with: remaining ÷ bandwidth, in ms, rounded up. The bandwidth is the
 * lower of the smoothed and the newest rate: QEMU weighs its threshold with
 * its newest estimate, and a link that just slowed would otherwise leave the
 * downtime short by the dip. Null until both are known.
 *
 *     30 MiB left at 60 MiB/s -> 500 ms
 *     30 MiB left, smoothed 60 MiB/s, newest 40 MiB/s -> 750 ms
 */
export function impliedDowntimeMs(model: ConvergenceModel): number | null {
  const mark = model.marks.at(-1);
  const bandwidth = Math.min(model.bandwidthBps ?? 0, model.lastBandwidthBps ?? Infinity);
  if (!mark || !bandwidth) return null;
  return Math.ceil((mark.bytes / bandwidth) * 1000);
}

/**
 * The fraction of the remaining bytes the newest iteration kept: its mark ÷
 * the one before. Below 1 the pre-copy is converging by itself, the lower the
 * faster. Null with fewer than two marks.
 *
 *     marks 100 MiB then 40 MiB -> 0.4
 */
export function shrinkRatio(model: ConvergenceModel): number | null {
  const [before, newest] = model.marks.slice(-2);
  if (!before || !newest || before.bytes === 0) return null;
  return newest.bytes / before.bytes;
}

/**
 * Seconds from the newest iteration start until pre-copy can switch over at `downtimeMs`, at the present
 * pace: what is left beyond what the downtime covers, drained at bandwidth −
 * dirty rate. Null when that is not positive (pre-copy alone does not end)
 * or nothing is known yet.
 *
 *     100 MiB left, 30 MiB/s link, 10 MiB/s dirtied, 500 ms
 *       -> (100 − 15) ÷ 20 = 4.25 s
 */
export function precopyEtaSeconds(model: ConvergenceModel, downtimeMs: number): number | null {
  const mark = model.marks.at(-1);
  const b = model.bandwidthBps;
  if (!mark || !b) return null;
  const drain = b - (model.dirtyRateBps ?? 0);
  if (drain <= 0) return null;
  return Math.max(0, mark.bytes - (b * downtimeMs) / 1000) / drain;
}
