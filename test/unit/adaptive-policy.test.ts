import { describe, expect, it } from 'vitest';
import { JobType, type JobStats } from '../../src/libvirt/types.js';
import {
  adaptiveDowntime,
  assess,
  atLocalMinimum,
  etaSeconds,
  linkHealthy,
  neededDowntimeMs,
  outlastsPostcopy,
  shouldStartPostcopy,
  willNotConvergeDetail,
} from '../../src/monitor/adaptive-policy.js';
import { initialModel, observe, type ConvergenceModel } from '../../src/monitor/convergence-model.js';
import { decide, initialMonitorState, type EndGame, type MonitorAction, type MonitorSettings, type MonitorState } from '../../src/monitor/policy.js';
import { updateDowntime } from '../../src/monitor/nova-policy.js';
import { MigrationStatus } from '../../src/record/status.js';
import { monitorSettings } from './fakes/monitor-settings.js';

const MiB = 2 ** 20;
const STALL = { windowSeconds: 10, progressFraction: 0.04 };
const LIMITS = { maxDowntimeMs: 500, initialDowntimeMs: 50, postCopyPermitted: false, autoConvergePermitted: false, stall: STALL, measuredDirtyRateBps: null as number | null };
/** A model from marks [seconds, iteration, remaining MiB] at 30 MiB/s. */
const model = (rows: readonly (readonly [number, number, number])[], bpsMiB = 30): ConvergenceModel =>
  rows.reduce(
    (m, [t, iteration, r]) => observe(m, { type: JobType.UNBOUNDED, memory_iteration: iteration, data_remaining: r * MiB, memory_bps: bpsMiB * MiB }, t, STALL),
    initialModel(),
  );
/** Remaining 100 → 99 → 98 → 97 MiB four seconds apart: stalled at the last mark (22 s). */
const STALLED = model([[10, 2, 100], [14, 3, 99], [18, 4, 98], [22, 5, 97]]);
/** Stalled since 22 s, the newest pass 10 % above the one before it. */
const ABOVE_MINIMUM = model([[10, 2, 100], [14, 3, 99], [18, 4, 90], [22, 5, 99]]);
/** One pass that did not shrink (113 → 129 MiB): stalled, not yet confident by the passes alone. */
const ONE_FLAT = model([[10, 2, 113], [14, 3, 129]]);
/** Stalled with little left: 12 MiB at 30 MiB/s is 400 ms, 500 ms with the margin. */
const STALLED_SMALL = model([[10, 2, 12.5], [14, 3, 12.4], [18, 4, 12.3], [22, 5, 12]]);

describe('assess', () => {
  it.each<[string, ConvergenceModel, Partial<typeof LIMITS>, number, string]>([
    ['not stalled', model([[10, 2, 100], [14, 3, 50]]), {}, 0, 'converging'],
    ['stalled, post-copy armed', STALLED, { postCopyPermitted: true }, 0, 'stalled'],
    ['stalled, the downtime may still rise to what is needed', STALLED_SMALL, {}, 0, 'stalled'],
    ['stalled, auto-converge throttling below 99 %', STALLED, { autoConvergePermitted: true }, 60, 'throttling'],
    ['stalled, auto-converge at 99 %', STALLED, { autoConvergePermitted: true }, 99, 'will_not_converge'],
    ['stalled, nothing armed, needs more than the maximum', STALLED, {}, 0, 'will_not_converge'],
    ['one flat pass, nothing armed, not measured: not sure yet', ONE_FLAT, {}, 0, 'stalled'],
    ['one flat pass, nothing armed, measured below the link: not sure yet', ONE_FLAT, { measuredDirtyRateBps: 20 * MiB }, 0, 'stalled'],
    ['one flat pass, nothing armed, measured beyond the link', ONE_FLAT, { measuredDirtyRateBps: 45 * MiB }, 0, 'will_not_converge'],
    ['one flat pass, auto-converge throttling, measured beyond the link', ONE_FLAT, { autoConvergePermitted: true, measuredDirtyRateBps: 45 * MiB }, 60, 'throttling'],
  ])('%s', (_name, m, over, throttle, verdict) => {
    expect(assess(m, { ...LIMITS, ...over }, throttle)).toBe(verdict);
  });
});

describe('adaptiveDowntime', () => {
  it.each<[string, number | null, ConvergenceModel, boolean, number | null]>([
    ['the first poll sets the initial value', null, initialModel(), false, 50],
    ['no new mark: left alone', 50, STALLED, false, null],
    // 100 MiB at 30 MiB/s: 3334 ms with the margin, more than the maximum.
    ['the first mark: straight to what is needed, capped at the maximum', 50, model([[10, 2, 100]]), true, 500],
    ['a mark that kept 99 %: raised', 50, STALLED, true, 500],
    ['a mark that kept 40 %: converging by itself, left alone', 50, model([[10, 2, 100], [14, 3, 40]]), true, null],
    // 12 MiB: 400 ms, 500 with the margin; 6 MiB: 200 → 250 ms.
    ['what is needed, when below the maximum', 50, model([[10, 2, 6.1], [14, 3, 6]]), true, 250],
    ['never lowered', 400, model([[10, 2, 6.1], [14, 3, 6]]), true, null],
  ])('%s', (_name, current, m, newMark, expected) => {
    expect(adaptiveDowntime(current, m, newMark, LIMITS)).toBe(expected);
  });
  it.each<[string, number | null, number | null, number | null]>([
    // 113 MiB left after the bulk pass; QEMU saw 12 MiB/s dirtied (0.4 of 30): converging, by its figure alone.
    ['QEMU\'s figure alone: left alone', 12, null, null],
    ['the preflight measured 90 MiB/s: straight to what is needed, capped', 12, 90, 500],
    ['the preflight measured 5 MiB/s: QEMU\'s higher figure decides', 12, 5, null],
    ['no figure from QEMU yet, measured 90', null, 90, 500],
  ])('the first mark after the bulk pass, %s', (_name, qemuMiBs, measuredMiBs, expected) => {
    const m = { ...model([[10, 2, 113]]), dirtyRateBps: qemuMiBs === null ? null : qemuMiBs * MiB };
    expect(adaptiveDowntime(50, m, true, { ...LIMITS, measuredDirtyRateBps: measuredMiBs === null ? null : measuredMiBs * MiB })).toBe(expected);
  });
  it('the initial value never exceeds the maximum', () => {
    expect(adaptiveDowntime(null, initialModel(), false, { maxDowntimeMs: 30, initialDowntimeMs: 50, measuredDirtyRateBps: null })).toBe(30);
  });
  it('needed downtime is the implied one with a 25 % margin', () => {
    expect(neededDowntimeMs(model([[10, 2, 30]]))).toBe(1250);
    expect(neededDowntimeMs(initialModel())).toBeNull();
  });
});

describe('switching to post-copy at a stall', () => {
  const armed = { ...LIMITS, postCopyPermitted: true };
  it('a mark within 4 % above the least remaining of the recent full passes is a local minimum', () => {
    expect(atLocalMinimum(model([[10, 2, 113], [14, 3, 129]]))).toBe(true);
    expect(atLocalMinimum(model([[10, 2, 113], [14, 3, 129], [16, 4, 100], [18, 5, 103.9]]))).toBe(true);
    expect(atLocalMinimum(model([[10, 2, 113], [14, 3, 129], [16, 4, 100], [18, 5, 104.1]]))).toBe(false);
  });
  it('the link is healthy while its newest rate is at least half the smoothed one', () => {
    expect(linkHealthy(model([[10, 2, 100]]))).toBe(true);
    expect(linkHealthy({ ...STALLED, lastBandwidthBps: 14 * MiB })).toBe(false);
    expect(linkHealthy(initialModel())).toBe(false);
  });
  it.each<[string, ConvergenceModel, number | null, number, Partial<typeof armed>, boolean]>([
    ['stalled at a local minimum, downtime at the maximum', STALLED, 500, 22, {}, true],
    ['not armed', STALLED, 500, 22, { postCopyPermitted: false }, false],
    ['not stalled, converging fast', model([[10, 2, 100], [14, 3, 50]]), 500, 14, {}, false],
    ['not stalled, converging slower than post-copy would end it', { ...model([[10, 2, 128], [14, 3, 103]]), dirtyRateBps: 24 * MiB }, 500, 14, {}, true],
    ['the downtime can still rise to what is needed', STALLED, 50, 22, {}, false],
    ['an unhealthy link', { ...STALLED, lastBandwidthBps: 1 * MiB }, 500, 22, {}, false],
    ['above the local minimum, stalled for less than a window', ABOVE_MINIMUM, 500, 22, {}, false],
    ['above the local minimum, stalled for a window: patience is over', ABOVE_MINIMUM, 500, 32, {}, true],
    ['right after the bulk pass, measured beyond the link', model([[10, 2, 113]]), 500, 11, { measuredDirtyRateBps: 90 * MiB }, true],
    ['right after the bulk pass, nothing measured: passes must show it', model([[10, 2, 113]]), 500, 11, {}, false],
  ])('%s', (_name, m, downtime, elapsed, over, expected) => {
    expect(shouldStartPostcopy(m, downtime, elapsed, { ...armed, ...over })).toBe(expected);
  });
});

describe('outlastsPostcopy', () => {
  it.each<[string, ConvergenceModel, number | null, boolean]>([
    // (103 − 15) ÷ (30 − 24) = 14.7 s of pre-copy against 103 ÷ 30 = 3.4 s of post-copy
    ['slow convergence', { ...model([[10, 2, 128], [14, 3, 103]]), dirtyRateBps: 24 * MiB }, null, true],
    // (40 − 15) ÷ 20 = 1.25 s against 1.3 s
    ['fast convergence', { ...model([[10, 2, 100], [14, 3, 40]]), dirtyRateBps: 10 * MiB }, null, false],
    ['pre-copy does not end', { ...model([[10, 2, 128], [14, 3, 103]]), dirtyRateBps: 30 * MiB }, null, true],
    ['only the first mark after the bulk pass, nothing measured: no full pass to judge by', { ...model([[10, 2, 128]]), dirtyRateBps: 30 * MiB }, null, false],
    // QEMU's figure after a 6 s bulk pass over a 128 MiB set is at most 21 MiB/s, whatever the guest does.
    ['the first mark after the bulk pass, measured 90 MiB/s over 30', { ...model([[10, 2, 113]]), dirtyRateBps: 19 * MiB }, 90 * MiB, true],
    ['the first mark after the bulk pass, measured 30 MiB/s: as fast as the link', model([[10, 2, 113]]), 30 * MiB, true],
    ['the first mark after the bulk pass, measured below the link', model([[10, 2, 113]]), 24 * MiB, false],
    ['the first mark after the bulk pass, the downtime covers what is left (10 of 15 MiB)', model([[10, 2, 10]]), 90 * MiB, false],
    ['a full pass shows fast convergence: the measure no longer decides', { ...model([[10, 2, 100], [14, 3, 40]]), dirtyRateBps: 10 * MiB }, 90 * MiB, false],
  ])('%s', (_name, m, measured, expected) => {
    expect(outlastsPostcopy(m, 500, measured)).toBe(expected);
  });
});

describe('etaSeconds', () => {
  const converging = { ...model([[10, 2, 100], [14, 3, 40]]), dirtyRateBps: 10 * MiB };
  it.each<[string, ConvergenceModel, string, number, boolean, number | null]>([
    ['no mark yet', initialModel(), 'converging', 1, false, null],
    // (40 − 15) ÷ 20 = 1.25 s from the mark at 14 s, asked at 14.5 s
    ['converging: from the newest mark, less the time since', converging, 'converging', 14.5, false, 0.75],
    ['stalled with post-copy armed: the time to send what is left', STALLED, 'stalled', 22, true, 97 / 30],
    ['will not converge', STALLED, 'will_not_converge', 22, false, null],
    ['throttling', STALLED, 'throttling', 22, false, null],
  ])('%s', (_name, m, verdict, elapsed, postCopy, expected) => {
    const got = etaSeconds(m, verdict as never, 500, elapsed, postCopy);
    if (expected === null) expect(got).toBeNull();
    else expect(got).toBeCloseTo(expected);
  });
});

it('the "will not converge" line names the dirty rate and the bandwidth in MiB/s', () => {
  expect(willNotConvergeDetail({ ...STALLED, dirtyRateBps: 45 * MiB })).toBe('will not converge: dirty rate 45.0 MiB/s vs bandwidth 30.0 MiB/s');
});

// ------------------------------------------------------- through decide()

/**
 * A pre-copy as QEMU runs it, coarsely: the bulk pass sends all of RAM, each
 * later pass sends what the guest dirtied during the one before (at most its
 * working set), and the switch-over comes at a pass's end when what is left
 * fits in the downtime. Run in 10 ms steps and polled every 0.5 s; the
 * downtime the policy sets feeds back.
 */
function precopy(o: { ramMiB: number; bpsMiB: number; dirtyMiB: number; workingSetMiB: number }) {
  let t = 0;
  let iteration = 1;
  let passLeft = o.ramMiB;
  let dirtied = 0;
  let sent = 0;
  return {
    /** The next poll's sample, or 'completed' once the switch-over fits in `downtimeMs`. */
    next(downtimeMs: number): JobStats | 'completed' {
      // QEMU in 10 ms steps, the monitor every 0.5 s.
      for (let step = 0; step < 50; step++) {
        passLeft -= o.bpsMiB * 0.01;
        sent += o.bpsMiB * 0.01;
        dirtied = Math.min(o.workingSetMiB, dirtied + o.dirtyMiB * 0.01);
        if (passLeft <= 0) {
          if (dirtied <= (o.bpsMiB * downtimeMs) / 1000) return 'completed';
          iteration += 1;
          passLeft = dirtied;
          dirtied = 0;
        }
      }
      t += 0.5;
      return { type: JobType.UNBOUNDED, memory_iteration: iteration, data_remaining: passLeft * MiB, data_processed: sent * MiB, memory_bps: o.bpsMiB * MiB, memory_dirty_rate: (o.dirtyMiB * MiB) / 4096, memory_page_size: 4096 };
    },
    get t() {
      return t;
    },
  };
}

interface Run {
  outcome: 'completed' | 'postcopy' | 'timeout';
  at: number;
  actions: (MonitorAction & { at: number })[];
  announced: { at: number; line: string }[];
  finalDowntime: number;
}

/** decide() over a simulated pre-copy until it completes, switches to post-copy, or `limit` seconds pass. */
function run(sim: ReturnType<typeof precopy>, s: MonitorSettings, limit = 120, endGame: EndGame = { status: MigrationStatus.running, claimedAction: null, pausedByUs: false }): Run {
  let state: MonitorState = initialMonitorState();
  const actions: Run['actions'] = [];
  const announced: Run['announced'] = [];
  for (;;) {
    const sample = sim.next(state.currentDowntime ?? 0);
    if (sample === 'completed') return { outcome: 'completed', at: sim.t, actions, announced, finalDowntime: state.currentDowntime ?? 0 };
    if (sim.t > limit) return { outcome: 'timeout', at: sim.t, actions, announced, finalDowntime: state.currentDowntime ?? 0 };
    const d = decide({ sample, elapsedSeconds: sim.t, workerFinished: false, settings: s, endGame, state });
    state = d.state;
    if (d.announce) announced.push({ at: sim.t, line: d.announce });
    for (const a of d.actions) if (a.kind !== 'save_stats') actions.push({ ...a, at: sim.t });
    if (d.actions.some((a) => a.kind === 'start_postcopy' || a.kind === 'abort' || a.kind === 'pause')) {
      return { outcome: d.actions.some((a) => a.kind === 'start_postcopy') ? 'postcopy' : 'timeout', at: sim.t, actions, announced, finalDowntime: state.currentDowntime ?? 0 };
    }
  }
}

const adaptive = (over: Partial<MonitorSettings['convergence']> = {}, rest: Partial<MonitorSettings> = {}) =>
  monitorSettings({ policy: 'adaptive', ...rest, postCopyPermitted: over.postCopyPermitted ?? false, convergence: { ...LIMITS, actOnStall: false, ...over } });
const NOVA_120 = (postCopyPermitted = false) =>
  monitorSettings({ policy: 'nova', postCopyPermitted, completionTimeout: 120, timeoutAction: 'force_complete', downtimeSteps: [[0, 50], [6, 95], [12, 140], [18, 185], [24, 230], [30, 275], [36, 320], [42, 365], [48, 410], [54, 455], [60, 500]] });
const downtimes = (r: Run) => r.actions.filter((a) => a.kind === 'set_downtime').map((a) => (a as { ms: number }).ms);

describe('the adaptive policy through decide(), on a simulated pre-copy (256 MiB, 30 MiB/s)', () => {
  it('a guest that converges by itself keeps the initial low downtime', () => {
    const r = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 5, workingSetMiB: 64 }), adaptive());
    expect(r.outcome).toBe('completed');
    expect(downtimes(r)).toEqual([50]);
  });
  it('a slowly shrinking pre-copy gets the downtime raised at its first mark and completes no later than under Nova', () => {
    const sim = { ramMiB: 256, bpsMiB: 30, dirtyMiB: 24, workingSetMiB: 192 };
    const ours = run(precopy(sim), adaptive());
    const nova = run(precopy(sim), NOVA_120());
    expect(ours.outcome).toBe('completed');
    expect(downtimes(ours)).toEqual([50, 500]);
    expect(ours.actions[1]!.at).toBeLessThan(10);
    expect(nova.outcome).toBe('completed');
    expect(ours.at).toBeLessThanOrEqual(nova.at);
  });
  it('a small working set dirtied faster than the link: the downtime it needs at once, done in seconds where Nova ramps for most of a minute', () => {
    // 12 MiB left every pass: 400 ms at 30 MiB/s, reached by Nova's ramp at 48 s.
    const sim = { ramMiB: 256, bpsMiB: 30, dirtyMiB: 45, workingSetMiB: 12 };
    const ours = run(precopy(sim), adaptive());
    const nova = run(precopy(sim), NOVA_120());
    expect(ours.outcome).toBe('completed');
    expect(ours.finalDowntime).toBeLessThanOrEqual(500);
    expect(ours.at).toBeLessThan(15);
    expect(nova.outcome).toBe('completed');
    expect(nova.at).toBeGreaterThan(40);
  });
  it('a slow convergence with post-copy armed: post-copy once a full pass shows pre-copy would take over twice as long', () => {
    const r = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 24, workingSetMiB: 192 }), adaptive({ postCopyPermitted: true }));
    expect(r.outcome).toBe('postcopy');
    // Pre-copy alone ends at about 38 s (the test above); the switch comes at the first full pass.
    expect(r.at).toBeLessThan(20);
  });
  it('stalled with post-copy armed: post-copy at a stall, long before any deadline, asked for once', () => {
    const r = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 90, workingSetMiB: 128 }), adaptive({ postCopyPermitted: true }));
    expect(r.outcome).toBe('postcopy');
    expect(r.actions.filter((a) => a.kind === 'start_postcopy')).toEqual([{ kind: 'start_postcopy', reason: 'convergence', at: r.at }]);
    expect(r.at).toBeLessThan(30);
    // The downtime went to the maximum first: post-copy only once the downtime could do no more.
    expect(downtimes(r).at(-1)).toBe(500);
  });
  it('nothing armed: "will not converge" said once, within 20 s, naming the rates; no action before the deadline', () => {
    const r = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 45, workingSetMiB: 128 }), adaptive(), 60);
    expect(r.outcome).toBe('timeout');
    expect(r.announced).toHaveLength(1);
    expect(r.announced[0]!.at).toBeLessThanOrEqual(20);
    expect(r.announced[0]!.line).toMatch(/^will not converge: dirty rate 45\.0 MiB\/s vs bandwidth 30\.0 MiB\/s$/);
    expect(r.actions.filter((a) => a.kind !== 'set_downtime')).toEqual([]);
  });
  it('nothing armed, act_on_stall: the timeout action at the first confident stall', () => {
    const abort = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 45, workingSetMiB: 128 }), adaptive({ actOnStall: true }, { timeoutAction: 'abort' }), 60);
    expect(abort.actions.at(-1)).toMatchObject({ kind: 'abort', reason: 'convergence' });
    expect(abort.at).toBeLessThanOrEqual(20);
    const pause = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 45, workingSetMiB: 128 }), adaptive({ actOnStall: true }, { timeoutAction: 'force_complete' }), 60);
    expect(pause.actions.at(-1)).toMatchObject({ kind: 'pause', reason: 'convergence' });
  });
  it('auto-converge armed: throttling is watched, not acted on', () => {
    const sim = precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 45, workingSetMiB: 128 });
    const s = adaptive({ autoConvergePermitted: true, actOnStall: true });
    let state = initialMonitorState();
    const verdicts = new Set<string>();
    for (let i = 0; i < 80; i++) {
      const sample = sim.next(state.currentDowntime ?? 0) as JobStats;
      const d = decide({ sample: { ...sample, auto_converge_throttle: 40 }, elapsedSeconds: sim.t, workerFinished: false, settings: s, endGame: { status: MigrationStatus.running, claimedAction: null, pausedByUs: false }, state });
      state = d.state;
      verdicts.add(d.convergence!.verdict);
      expect(d.actions.filter((a) => a.kind === 'abort' || a.kind === 'pause' || a.kind === 'start_postcopy')).toEqual([]);
    }
    expect(verdicts).toContain('throttling');
    expect(verdicts).not.toContain('will_not_converge');
  });
  it('an end the operator claimed is left alone', () => {
    const r = run(precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 90, workingSetMiB: 128 }), adaptive({ postCopyPermitted: true, actOnStall: true }), 40, { status: MigrationStatus.running, claimedAction: 'abort', pausedByUs: false });
    expect(r.actions.filter((a) => a.kind !== 'set_downtime')).toEqual([]);
  });
});

describe('the nova policy through decide(): the ramp only, the model watching', () => {
  it("the same stalled guest: the ramp's downtimes, no convergence action, but the verdict is reported", () => {
    const sim = precopy({ ramMiB: 256, bpsMiB: 30, dirtyMiB: 90, workingSetMiB: 128 });
    const s = { ...NOVA_120(true), completionTimeout: 0 };
    let state = initialMonitorState();
    const kinds = new Set<string>();
    const setAt: [number, number][] = [];
    let last = null;
    for (let i = 0; i < 125; i++) {
      const d = decide({ sample: sim.next(state.currentDowntime ?? 0) as JobStats, elapsedSeconds: sim.t, workerFinished: false, settings: s, endGame: { status: MigrationStatus.running, claimedAction: null, pausedByUs: false }, state });
      state = d.state;
      for (const a of d.actions) {
        kinds.add(a.kind);
        if (a.kind === 'set_downtime') setAt.push([sim.t, a.ms]);
      }
      last = d.convergence;
    }
    expect([...kinds].sort()).toEqual(['save_stats', 'set_downtime']);
    // Exactly Nova's ramp: the values updateDowntime gives for the same steps and times.
    expect(setAt.map(([, ms]) => ms)).toEqual(setAt.map(([t]) => updateDowntime(null, s.downtimeSteps, t).value));
    expect(state.currentDowntime).toBe(500);
    expect(last).toMatchObject({ policy: 'nova', stalled: true, verdict: 'stalled' });
  });
});
