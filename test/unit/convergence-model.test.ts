import { describe, expect, it } from 'vitest';
import { JobType, type JobStats } from '../../src/libvirt/types.js';
import {
  ewma,
  impliedDowntimeMs,
  initialModel,
  iterationStartBytes,
  flatPass,
  observe,
  precopyEtaSeconds,
  remainingBytes,
  shrinkRatio,
  stalledAt,
  type ConvergenceModel,
} from '../../src/monitor/convergence-model.js';

const MiB = 2 ** 20;
const STALL = { windowSeconds: 10, progressFraction: 0.04 };
const sample = (iteration: number, remainingMiB: number, bpsMiB = 30, dirtyPages?: number): JobStats => ({
  type: JobType.UNBOUNDED,
  memory_iteration: iteration,
  data_remaining: remainingMiB * MiB,
  memory_bps: bpsMiB * MiB,
  ...(dirtyPages === undefined ? {} : { memory_dirty_rate: dirtyPages, memory_page_size: 4096 }),
});
/** The model after samples given as [seconds, iteration, remaining MiB]. */
const after = (rows: readonly (readonly [number, number, number])[]): ConvergenceModel =>
  rows.reduce((m, [t, it, r]) => observe(m, sample(it, r), t, STALL), initialModel());

describe('ewma', () => {
  it.each([
    [null, 10, 10],
    [10, 20, 14],
    [14, 14, 14],
  ])('ewma(%s, %s) = %s', (previous, value, expected) => {
    expect(ewma(previous, value)).toBeCloseTo(expected);
  });
});

describe('remainingBytes', () => {
  it('data_remaining (memory and disks) first, memory_remaining without it, 0 with neither', () => {
    expect(remainingBytes({ type: JobType.UNBOUNDED, data_remaining: 5, memory_remaining: 3 })).toBe(5);
    expect(remainingBytes({ type: JobType.UNBOUNDED, memory_remaining: 3 })).toBe(3);
    expect(remainingBytes({ type: JobType.UNBOUNDED })).toBe(0);
  });
});

describe('stalledAt (VEP 248)', () => {
  it.each<[string, number, number | null, boolean]>([
    ['no mark a window older: no verdict', 97, null, false],
    ['fell by less than 4 %', 97, 100, true],
    ['exactly 4 % less is still stalled', 96, 100, true],
    ['fell by more than 4 %', 95.9, 100, false],
    ['grew', 150, 100, true],
  ])('%s', (_name, newest, leastOlder, stalled) => {
    expect(stalledAt(newest, leastOlder, STALL)).toBe(stalled);
  });
});

describe('observe', () => {
  it('the bulk pass adds no mark; each new iteration after it adds one, at its first poll', () => {
    const m = after([[1, 1, 200], [2, 1, 100], [3, 2, 90], [3.5, 2, 60], [6, 3, 80]]);
    expect(m.marks.map((x) => [x.iteration, x.at, x.bytes / MiB])).toEqual([[2, 3, 90], [3, 6, 80]]);
  });
  it('marks a window or more older than the newest fold into the least older bytes; the newest two always stay', () => {
    const m = after([[10, 2, 100], [14, 3, 90], [22, 4, 97]]);
    expect(m.leastOlderBytes).toBe(100 * MiB);
    expect(m.marks.map((x) => x.at)).toEqual([14, 22]);
    const long = after([[10, 2, 100], [40, 3, 90], [70, 4, 97]]);
    expect(long.marks.map((x) => x.at)).toEqual([40, 70]);
    expect(long.leastOlderBytes).toBe(90 * MiB);
  });
  it('passes that each keep 95 %: no flat pass, and over the 10 s window more than 4 % fall: never stalled', () => {
    const slow: [number, number, number][] = [[10, 2, 100], [14, 3, 95], [18, 4, 90.25], [22, 5, 85.7]];
    expect(slow.map((_, i) => after(slow.slice(0, i + 1)).stalled)).toEqual([false, false, false, false]);
  });
  it('a flat pass stalls at once; the stall lasts from its first mark until a pass shrinks and the window shows a fall', () => {
    // 94 after 95 is flat; 97 is flat and within 4 % of the least a window older (100 at 10 s... 95 at 14 s is not yet older);
    // 50 is neither.
    const rows: [number, number, number][] = [[10, 2, 100], [14, 3, 95], [18, 4, 94], [22, 5, 97], [26, 6, 50]];
    const seen = rows.map((_, i) => after(rows.slice(0, i + 1))).map((m) => [m.stalled, m.stalledSince]);
    expect(seen).toEqual([[false, null], [false, null], [true, 18], [true, 18], [false, null]]);
  });
  it('one flat pass stalls; a confident stall takes two in a row (or the window)', () => {
    const rows: [number, number, number][] = [[10, 2, 113], [14, 3, 129], [18, 4, 129]];
    expect(rows.map((_, i) => after(rows.slice(0, i + 1))).map((m) => [m.stalled, m.confident])).toEqual([[false, false], [true, false], [true, true]]);
  });
  it('an oscillating pre-copy stays stalled once a window has passed: a shrinking pass alone does not end the stall', () => {
    const rows: [number, number, number][] = [[10, 2, 113], [14, 3, 129], [18, 4, 113], [22, 5, 129], [26, 6, 113], [30, 7, 129], [34, 8, 113]];
    expect(rows.map((_, i) => after(rows.slice(0, i + 1)).stalled)).toEqual([false, true, false, true, true, true, true]);
  });
  it('smooths the transfer and dirty rates with α = 0.4; keeps the newest transfer rate as it is', () => {
    let m = observe(initialModel(), sample(1, 100, 10, 256), 1, STALL);
    m = observe(m, sample(1, 90, 20, 512), 1.5, STALL);
    expect(m.bandwidthBps).toBeCloseTo(14 * MiB);
    expect(m.lastBandwidthBps).toBe(20 * MiB);
    // 256 then 512 pages of 4 KiB a second: 1 MiB/s, then 2 MiB/s.
    expect(m.dirtyRateBps).toBeCloseTo(1.4 * MiB);
  });
  it('a sample without a transfer rate (0 at the start) leaves the smoothed one alone', () => {
    const m = observe(observe(initialModel(), sample(1, 100, 30), 1, STALL), { type: JobType.UNBOUNDED, memory_bps: 0, memory_iteration: 1 }, 1.5, STALL);
    expect(m.bandwidthBps).toBe(30 * MiB);
  });
  it('returns a new model; the old one is unchanged', () => {
    const m0 = after([[10, 2, 100]]);
    const m1 = observe(m0, sample(3, 90), 14, STALL);
    expect(m0.marks).toHaveLength(1);
    expect(m1.marks).toHaveLength(2);
  });
});

describe('iterationStartBytes', () => {
  it.each<[string, { iteration: number; remaining: number; processed: number } | null, number, number, number]>([
    ['no previous poll: what the poll saw', null, 110, 115, 110],
    ['the new pass had sent 10 by the poll', { iteration: 2, remaining: 5, processed: 100 }, 110, 115, 120],
    ['the poll came right at the sync', { iteration: 2, remaining: 5, processed: 100 }, 110, 105, 110],
    ['counters that went backwards are not believed', { iteration: 2, remaining: 5, processed: 100 }, 110, 90, 110],
    ['two syncs between the polls: what the poll saw, not a whole pass more', { iteration: 1, remaining: 5, processed: 100 }, 110, 135, 110],
    // 8 sent beyond the old pass and 2 left, over two syncs: passes of 5.
    ['two syncs between the polls, seen near the end of a pass: the passes\' average', { iteration: 1, remaining: 5, processed: 100 }, 2, 113, 5],
  ])('%s', (_name, previous, remaining, processed, expected) => {
    expect(iterationStartBytes(previous, { iteration: 3, remaining, processed })).toBe(expected);
  });
  it('observe places a mark at its true start', () => {
    const at = (remaining: number, processed: number, iteration: number) => ({ ...sample(iteration, remaining), data_processed: processed * MiB });
    let m = observe(initialModel(), at(5, 250, 1), 9, STALL);
    m = observe(m, at(110, 265, 2), 9.5, STALL);
    expect(m.marks.map((x) => x.bytes / MiB)).toEqual([120]);
  });
});

describe('flatPass', () => {
  const mark = (bytes: number) => ({ iteration: 3, at: 14, bytes: bytes * MiB });
  it.each<[string, number, number, boolean]>([
    ['grew', 113, 129, true],
    ['kept 96 %', 128, 122.88, true],
    ['kept 80 %', 128, 102.4, false],
  ])('%s', (_name, before, newest, expected) => {
    expect(flatPass(mark(before), mark(newest), STALL)).toBe(expected);
  });
  it('no mark before the newest: false', () => {
    expect(flatPass(undefined, mark(128), STALL)).toBe(false);
  });
});

describe('figures from the model', () => {
  const m = after([[10, 2, 100], [14, 3, 40]]);
  it('implied downtime: the newest mark at the smoothed rate, rounded up', () => {
    // 40 MiB at 30 MiB/s
    expect(impliedDowntimeMs(m)).toBe(1334);
    expect(impliedDowntimeMs(initialModel())).toBeNull();
  });
  it('implied downtime: at the newest rate when the link just slowed, never at a faster one', () => {
    // Smoothed 0.6 × 30 + 0.4 × 20 = 26 MiB/s; the newest 20 MiB/s carries 40 MiB in 2 s.
    const slowed = observe(m, sample(3, 40, 20), 15, STALL);
    expect(slowed.bandwidthBps).toBeCloseTo(26 * MiB);
    expect(impliedDowntimeMs(slowed)).toBe(2000);
    // Smoothed 0.6 × 30 + 0.4 × 60 = 42 MiB/s, the lower: 40 MiB in 953 ms.
    expect(impliedDowntimeMs(observe(m, sample(3, 40, 60), 15, STALL))).toBe(953);
  });
  it('shrink ratio: the newest mark over the one before', () => {
    expect(shrinkRatio(m)).toBeCloseTo(0.4);
    expect(shrinkRatio(after([[10, 2, 100]]))).toBeNull();
  });
  it.each<[string, number, number | null]>([
    // 40 MiB left, 30 MiB/s, 10 MiB/s dirtied: (40 − 15) ÷ 20
    ['drains at bandwidth − dirty rate', 10, 1.25],
    ['what the downtime covers is not waited for', 0, 40 / 30],
    ['a guest dirtying as fast as the link: no end in pre-copy', 30, null],
  ])('pre-copy ETA: %s', (_name, dirtyMiB, eta) => {
    const model = { ...m, dirtyRateBps: dirtyMiB * MiB };
    const got = precopyEtaSeconds(model, dirtyMiB === 10 ? 500 : 0);
    if (eta === null) expect(got).toBeNull();
    else expect(got).toBeCloseTo(eta);
  });
});
