import { describe, expect, it } from 'vitest';
import { JobType, VirErrorCode, type JobStats } from '../../src/libvirt/types.js';
import {
  classifyJobStatsError,
  decide,
  findJobType,
  initialMonitorState,
  MAX_TIMEOUT_ATTEMPTS,
  restoredMonitorState,
  shouldTriggerTimeoutAction,
  TIMEOUT_RETRY_SECONDS,
  timeoutGaveUp,
  type EndGame,
  type MonitorAction,
  type MonitorSettings,
  type MonitorState,
} from '../../src/monitor/policy.js';
import { completionTimeoutSeconds, downtimeSteps, timedDowntimeSteps, updateDowntime, type DowntimeStep } from '../../src/monitor/nova-policy.js';
import { MigrationStatus } from '../../src/record/status.js';
import { monitorSettings, type SettingsOverrides } from './fakes/monitor-settings.js';

describe('downtimeSteps (Nova downtime_steps)', () => {
  it('data_gb 3.0, downtime 400, steps 10, delay 30', () => {
    expect(downtimeSteps(3.0, { downtime: 400, steps: 10, delay: 30 })).toEqual([
      [0, 40], [90, 76], [180, 112], [270, 148], [360, 184], [450, 220], [540, 256], [630, 292], [720, 328], [810, 364], [900, 400],
    ]);
  });
  it('defaults (500, 10, 75) with data_gb 2', () => {
    const s = downtimeSteps(2, { downtime: 500, steps: 10, delay: 75 });
    expect(s).toHaveLength(11);
    expect(s[0]).toEqual([0, 50]);
    expect(s[1]).toEqual([150, 95]);
    expect(s[2]).toEqual([300, 140]);
    expect(s[9]).toEqual([1350, 455]);
    expect(s[10]).toEqual([1500, 500]);
  });
  it('truncates delay*data_gb like int()', () => {
    // int(75 * 2.5) = 187; int(187 * 1) = 187
    expect(downtimeSteps(2.5, { downtime: 500, steps: 10, delay: 75 })[1]).toEqual([187, 95]);
  });
});

describe('timedDowntimeSteps (ferry per-migration ramp)', () => {
  it('reaches the downtime at exactly timeout/2', () => {
    const s = timedDowntimeSteps(600, { downtime: 500, steps: 10 });
    expect(s).toHaveLength(11);
    expect(s[0]).toEqual([0, 50]);
    expect(s[1]).toEqual([30, 95]);
    expect(s[10]).toEqual([300, 500]);
    for (let i = 1; i < s.length; i++) expect(s[i]![0]).toBeGreaterThan(s[i - 1]![0]);
  });
  it('odd timeouts keep the exact half', () => {
    const s = timedDowntimeSteps(7, { downtime: 400, steps: 4 });
    expect(s.at(-1)).toEqual([3.5, 400]);
    expect(s.map((x) => x[1])).toEqual([100, 175, 250, 325, 400]);
  });
  it('holds the final value after timeout/2', () => {
    const s = timedDowntimeSteps(100, { downtime: 500, steps: 10 });
    expect(updateDowntime(null, s, 99).value).toBe(500);
    expect(updateDowntime(500, s, 1e6)).toEqual({ value: 500, set: false });
  });
  it('rejects a non-positive timeout', () => {
    expect(() => timedDowntimeSteps(0, { downtime: 500, steps: 10 })).toThrow(RangeError);
  });
});

describe('updateDowntime (Nova update_downtime)', () => {
  const S: DowntimeStep[] = [[9000, 50], [18000, 200]];
  it.each<[number | null, DowntimeStep[], number, number | null, boolean]>([
    [null, [], 5000, null, false],
    [null, S, 5000, null, false],
    [null, S, 11000, 50, true],
    [50, S, 11000, 50, false],
    [50, S, 22000, 200, true],
  ])('(%s, steps, %i) -> %s, set %s', (old, steps, elapsed, value, set) => {
    expect(updateDowntime(old, steps, elapsed)).toEqual({ value, set });
  });
  it('the step boundary is strict', () => {
    expect(updateDowntime(null, S, 9000)).toEqual({ value: null, set: false });
    expect(updateDowntime(null, S, 9000.001)).toEqual({ value: 50, set: true });
  });
  it('a set is remembered as decided, whether libvirt took it or not (Nova keeps the new value)', () => {
    const d = decide({ sample: { type: JobType.UNBOUNDED }, elapsedSeconds: 1, workerFinished: false, endGame: RUNNING, settings: monitorSettings({ downtimeSteps: [[0, 200]] }), state: initialMonitorState() });
    expect(d.actions).toContainEqual({ kind: 'set_downtime', ms: 200 });
    expect(d.state.currentDowntime).toBe(200);
  });
});

describe('shouldTriggerTimeoutAction', () => {
  it.each<[number, number, MigrationStatus, boolean]>([
    [4500, 2000, 'running', true],
    [4500, 0, 'running', false],
    [4500, 9000, 'running', false],
    [4500, 2000, 'running (post-copy)', false],
    [4500, 2000, 'post-copy paused', false],
    [2000, 2000, 'running', false],
  ])('(%i, %i, %s) -> %s', (elapsed, timeout, status, want) => {
    expect(shouldTriggerTimeoutAction(elapsed, timeout, status)).toBe(want);
  });
  it('completion timeout = int(per-GiB × data_gb)', () => {
    expect(completionTimeoutSeconds(100, 2)).toBe(200);
    expect(completionTimeoutSeconds(800, 2.7)).toBe(2160);
    expect(completionTimeoutSeconds(0, 5)).toBe(0);
  });
});

describe('findJobType', () => {
  it('guest active -> FAILED', () => expect(findJobType({ active: true })).toBe(JobType.FAILED));
  it('guest inactive -> COMPLETED', () => expect(findJobType({ active: false })).toBe(JobType.COMPLETED));
  it('NO_DOMAIN -> COMPLETED', () => expect(findJobType({ errorCode: VirErrorCode.NO_DOMAIN })).toBe(JobType.COMPLETED));
  it('INTERNAL_ERROR -> FAILED', () => expect(findJobType({ errorCode: VirErrorCode.INTERNAL_ERROR })).toBe(JobType.FAILED));
});

describe('classifyJobStatsError', () => {
  it('NO_DOMAIN and OPERATION_INVALID -> COMPLETED', () => {
    expect(classifyJobStatsError(VirErrorCode.NO_DOMAIN, 'gone')).toEqual({ kind: 'job_type', type: JobType.COMPLETED });
    expect(classifyJobStatsError(VirErrorCode.OPERATION_INVALID, 'not running')).toEqual({ kind: 'job_type', type: JobType.COMPLETED });
  });
  it('INTERNAL_ERROR "no RAM info was set" -> NONE', () => {
    expect(
      classifyJobStatsError(VirErrorCode.INTERNAL_ERROR, 'internal error: migration was active, but no RAM info was set'),
    ).toEqual({ kind: 'job_type', type: JobType.NONE });
  });
  it('any other INTERNAL_ERROR is raised', () => {
    expect(classifyJobStatsError(VirErrorCode.INTERNAL_ERROR, 'something else')).toEqual({ kind: 'raise' });
  });
  it('NO_SUPPORT -> fall back to jobInfo', () => {
    expect(classifyJobStatsError(VirErrorCode.NO_SUPPORT, 'unsupported')).toEqual({ kind: 'use_job_info' });
  });
  it('others are raised', () => {
    expect(classifyJobStatsError(VirErrorCode.OPERATION_FAILED, 'x')).toEqual({ kind: 'raise' });
  });
});

// ------------------------------------------------------------ decide()

const HUGE = 1_000_000;
const settings = monitorSettings;
const unb = (extra: Partial<JobStats> = {}): JobStats => ({ type: JobType.UNBOUNDED, ...extra });
const kinds = (actions: MonitorAction[]) => actions.filter((a) => a.kind !== 'save_stats');
/** A running migration whose end nobody claimed. */
const RUNNING: EndGame = { status: MigrationStatus.running, claimedAction: null, pausedByUs: false };

describe('decide: one UNBOUNDED step (run_tasks equivalents)', () => {
  const state = (over: Partial<MonitorState> = {}): MonitorState => ({ ...initialMonitorState(), ...over });
  const step = (st: MonitorState, s: MonitorSettings, elapsed = 1, endGame: EndGame = RUNNING) =>
    decide({ sample: unb(), elapsedSeconds: elapsed, workerFinished: false, endGame, settings: s, state: st });

  it('no tasks -> nothing but stats', () => {
    expect(kinds(step(state(), settings()).actions)).toEqual([]);
  });
  it('the timeout with force_complete: post-copy when permitted, else a pause', () => {
    const timeout = { completionTimeout: 10, timeoutAction: 'force_complete' as const };
    expect(kinds(step(state(), settings({ ...timeout, postCopyPermitted: true }), 11).actions)).toEqual([{ kind: 'start_postcopy', reason: 'timeout' }]);
    expect(kinds(step(state(), settings(timeout), 11).actions)).toEqual([{ kind: 'pause', reason: 'timeout' }]);
  });
  it('the policy never marks post-copy or the pause itself: the record does, once libvirt took it', () => {
    const d = step(state(), settings({ completionTimeout: 10, timeoutAction: 'force_complete', postCopyPermitted: true }), 11);
    expect(Object.keys(d.state).sort()).toEqual(['convergenceActed', 'currentDowntime', 'lastTimeoutAttemptAt', 'model', 'named', 'pollCount', 'timeoutAttempts', 'verdict']);
  });
  it('a timeout action libvirt refused is asked for again every TIMEOUT_RETRY_SECONDS, MAX_TIMEOUT_ATTEMPTS times, then given up', () => {
    const s = settings({ completionTimeout: 10, timeoutAction: 'abort' });
    // The record is unchanged after each refusal: still running, unclaimed.
    let st = state();
    const askedAt: number[] = [];
    for (let t = 11; t < 11 + 60; t += 0.5) {
      const d = step(st, s, t);
      if (kinds(d.actions).some((a) => a.kind === 'abort')) askedAt.push(t);
      st = d.state;
    }
    expect(askedAt).toEqual(Array.from({ length: MAX_TIMEOUT_ATTEMPTS }, (_, i) => 11 + i * TIMEOUT_RETRY_SECONDS));
    expect(timeoutGaveUp(st)).toBe(true);
  });
  it('a timeout action that took holds the claim: it is not asked for again', () => {
    const s = settings({ completionTimeout: 10, timeoutAction: 'abort' });
    const first = step(state(), s, 11);
    const claimed: EndGame = { ...RUNNING, claimedAction: 'abort' };
    expect(kinds(step(first.state, s, 11 + TIMEOUT_RETRY_SECONDS, claimed).actions)).toEqual([]);
  });
  it('order: timeout, downtime, stats', () => {
    const d = step(state(), settings({ completionTimeout: 10, timeoutAction: 'abort', downtimeSteps: [[0, 50]] }), 11);
    expect(d.actions.map((a) => a.kind)).toEqual(['abort', 'set_downtime', 'save_stats']);
  });
  it('the state passed in is not mutated', () => {
    const st = state();
    const copy = { ...st };
    const endGame = { ...RUNNING };
    step(st, settings({ downtimeSteps: [[0, 50]], completionTimeout: 1 }), 2, endGame);
    expect(st).toEqual(copy);
    expect(endGame).toEqual(RUNNING);
  });
});

describe('decide: save_stats cadence', () => {
  it('on the first UNBOUNDED poll and every statsEvery-th after', () => {
    let st = initialMonitorState();
    const saved: number[] = [];
    for (let i = 0; i < 25; i++) {
      const d = decide({ sample: unb({ memory_total: 100, memory_remaining: 75 }), elapsedSeconds: i, workerFinished: false, endGame: RUNNING, settings: settings(), state: st });
      if (d.actions.some((a) => a.kind === 'save_stats')) saved.push(i);
      st = d.state;
    }
    expect(saved).toEqual([0, 10, 20]);
  });
  it('NONE polls do not count', () => {
    let st = initialMonitorState();
    st = decide({ sample: { type: JobType.NONE }, elapsedSeconds: 0, workerFinished: false, endGame: RUNNING, settings: settings(), state: st }).state;
    expect(st.pollCount).toBe(0);
    const d = decide({ sample: unb(), elapsedSeconds: 1, workerFinished: false, endGame: RUNNING, settings: settings(), state: st });
    expect(d.actions.some((a) => a.kind === 'save_stats')).toBe(true);
  });
  it('carries counters, progress (Nova save_stats: remaining 75 -> progress 25) and the throttle', () => {
    const d = decide({
      sample: unb({ memory_total: 100, memory_processed: 500, memory_remaining: 75, disk_total: 15, disk_processed: 10, disk_remaining: 14, auto_converge_throttle: 67 }),
      elapsedSeconds: 0, workerFinished: false, endGame: RUNNING, settings: settings({ statsEvery: 3 }), state: initialMonitorState(),
    });
    expect(d.actions).toContainEqual({
      kind: 'save_stats',
      counters: { memory_total: 100, memory_processed: 500, memory_remaining: 75, disk_total: 15, disk_processed: 10, disk_remaining: 14 },
      progress: 25,
      throttlePercent: 67,
      logInfo: true,
      elapsedSeconds: 0,
    });
  });
  it('logs at info every 6th save (30 s with the defaults)', () => {
    let st = initialMonitorState();
    const info: number[] = [];
    for (let i = 0; i < 121; i++) {
      const d = decide({ sample: unb(), elapsedSeconds: i, workerFinished: false, endGame: RUNNING, settings: settings(), state: st });
      for (const a of d.actions) if (a.kind === 'save_stats' && a.logInfo) info.push(i);
      st = d.state;
    }
    expect(info).toEqual([0, 60, 120]);
  });
});

// A harness in the style of Nova's _test_live_migration_monitoring: job records
// consumed in order, with markers for the worker finishing, the domain going
// away and an operator force-complete. The end game is a record the harness
// updates as control.ts does once libvirt took an action.
type Rec = JobType | 'thread-finish' | 'domain-stop' | 'force_complete';

interface RunResult {
  actions: MonitorAction[];
  outcome: string | undefined;
  state: MonitorState;
  endGame: EndGame;
}

/** As MigrationControl: the first claim wins, and the effect shows on the record. */
function applyToRecord(e: EndGame, a: MonitorAction | { kind: 'operator_force_complete'; postCopy: boolean }): void {
  switch (a.kind) {
    case 'abort':
      if (!e.claimedAction) e.claimedAction = 'abort';
      return;
    case 'start_postcopy':
    case 'pause':
    case 'operator_force_complete': {
      if (e.claimedAction || e.status !== MigrationStatus.running) return;
      e.claimedAction = 'force_complete';
      const postCopy = a.kind === 'operator_force_complete' ? a.postCopy : a.kind === 'start_postcopy';
      if (postCopy) e.status = MigrationStatus.postcopy;
      else e.pausedByUs = true;
      return;
    }
    case 'resume_source':
      e.pausedByUs = false;
      return;
    default:
      return;
  }
}

function runMonitor(records: Rec[], opts: { settings?: SettingsOverrides; status?: MigrationStatus; times?: number[] } = {}): RunResult {
  const s = settings(opts.settings);
  let state = initialMonitorState();
  const endGame: EndGame = { status: opts.status ?? MigrationStatus.running, claimedAction: null, pausedByUs: false };
  let workerFinished = false;
  let domainActive = true;
  const times = [...(opts.times ?? [])];
  const actions: MonitorAction[] = [];
  for (const rec of records) {
    if (rec === 'thread-finish') workerFinished = true;
    else if (rec === 'domain-stop') domainActive = false;
    else if (rec === 'force_complete') applyToRecord(endGame, { kind: 'operator_force_complete', postCopy: s.convergence.postCopyPermitted });
    else {
      const elapsed = times.length ? times.shift()! : 0;
      const foundJobType = rec === JobType.NONE && workerFinished ? findJobType({ active: domainActive }) : undefined;
      const d = decide({ sample: { type: rec }, elapsedSeconds: elapsed, workerFinished, foundJobType, endGame: { ...endGame }, settings: s, state });
      actions.push(...d.actions);
      for (const a of d.actions) applyToRecord(endGame, a);
      state = d.state;
      if (d.done) break;
    }
  }
  const fin = actions.find((a) => a.kind === 'finish');
  return { actions: kinds(actions), outcome: fin?.kind === 'finish' ? fin.outcome : undefined, state, endGame };
}

const { NONE, UNBOUNDED, COMPLETED, FAILED, CANCELLED } = JobType;

describe('decide: monitor outcomes (Nova test_driver)', () => {
  it('NONE, UNBOUNDED×3, thread-finish, domain-stop, COMPLETED -> completed; no abort, no recovery', () => {
    const r = runMonitor([NONE, UNBOUNDED, UNBOUNDED, UNBOUNDED, 'thread-finish', 'domain-stop', COMPLETED]);
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
  });
  it('final NONE after the domain is gone -> completed', () => {
    const r = runMonitor([NONE, UNBOUNDED, UNBOUNDED, 'thread-finish', 'domain-stop', NONE]);
    expect(r.outcome).toBe('completed');
  });
  it('thread-finish then FAILED -> failed, no resume (nothing paused)', () => {
    const r = runMonitor([NONE, UNBOUNDED, 'thread-finish', FAILED]);
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'failed' }]);
  });
  it('final NONE while the domain is still active -> failed', () => {
    const r = runMonitor([NONE, UNBOUNDED, 'thread-finish', NONE]);
    expect(r.outcome).toBe('failed');
  });
  it('CANCELLED -> cancelled', () => {
    const r = runMonitor([NONE, UNBOUNDED, UNBOUNDED, 'thread-finish', CANCELLED]);
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'cancelled' }]);
  });
  it('NONE before the worker finished -> keep polling', () => {
    const d = decide({ sample: { type: NONE }, elapsedSeconds: 0, workerFinished: false, endGame: RUNNING, settings: settings(), state: initialMonitorState() });
    expect(d).toMatchObject({ actions: [], done: false, jobType: NONE });
  });
  it('BOUNDED -> keep polling', () => {
    const d = decide({ sample: { type: JobType.BOUNDED }, elapsedSeconds: 0, workerFinished: false, endGame: RUNNING, settings: settings(), state: initialMonitorState() });
    expect(d.actions).toEqual([]);
  });
  it('NONE after the worker finished without foundJobType is a caller bug', () => {
    expect(() =>
      decide({ sample: { type: NONE }, elapsedSeconds: 0, workerFinished: true, endGame: RUNNING, settings: settings(), state: initialMonitorState() }),
    ).toThrow(/foundJobType/);
  });
});

describe('decide: after an operator force-complete (Nova test_driver recovery)', () => {
  it('paused by us, then FAILED -> resume_source before finish', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, 'thread-finish', FAILED]);
    expect(r.actions).toEqual([{ kind: 'resume_source' }, { kind: 'finish', outcome: 'failed' }]);
    expect(r.endGame.pausedByUs).toBe(false);
  });
  it('paused by us, then CANCELLED -> resume_source, cancelled', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, CANCELLED]);
    expect(r.actions).toEqual([{ kind: 'resume_source' }, { kind: 'finish', outcome: 'cancelled' }]);
  });
  it('paused by us, then COMPLETED -> no resume (the guest runs on the destination)', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, COMPLETED]);
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
  });
  it('switched to post-copy by the operator, then COMPLETED -> nothing to resume', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, 'thread-finish', 'domain-stop', COMPLETED], { settings: { postCopyPermitted: true } });
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
    expect(r.endGame.status).toBe(MigrationStatus.postcopy);
  });
});

describe('decide: timed scenarios (Nova test_driver)', () => {
  it('downtime steps [(90,10),(180,50),(270,200),(500,300)] at 0,1,30,95,150,200,300 -> 10, 50, 200', () => {
    const r = runMonitor([UNBOUNDED, UNBOUNDED, UNBOUNDED, UNBOUNDED, UNBOUNDED, UNBOUNDED, UNBOUNDED, 'thread-finish', 'domain-stop', COMPLETED], {
      settings: { downtimeSteps: [[90, 10], [180, 50], [270, 200], [500, 300]], completionTimeout: HUGE },
      times: [0, 1, 30, 95, 150, 200, 300],
    });
    expect(r.actions.filter((a) => a.kind === 'set_downtime')).toEqual([
      { kind: 'set_downtime', ms: 10 },
      { kind: 'set_downtime', ms: 50 },
      { kind: 'set_downtime', ms: 200 },
    ]);
    expect(r.actions.some((a) => a.kind === 'abort')).toBe(false);
    expect(r.outcome).toBe('completed');
  });

  it('completion_timeout 100 × data_gb 2 = 200, times 0..320 -> abort once, then CANCELLED -> cancelled', () => {
    const times = [0, 40, 80, 120, 160, 200, 240, 280, 320];
    const r = runMonitor([...times.map(() => UNBOUNDED), CANCELLED], {
      settings: { completionTimeout: completionTimeoutSeconds(100, 2), timeoutAction: 'abort' },
      times,
    });
    expect(r.actions).toEqual([{ kind: 'abort', reason: 'timeout' }, { kind: 'finish', outcome: 'cancelled' }]);
  });

  it('the abort fires at the first poll past the timeout', () => {
    let st = initialMonitorState();
    // As control.ts: the abort's claim holds once libvirt took it.
    const endGame: EndGame = { ...RUNNING };
    const at: number[] = [];
    for (const t of [0, 40, 80, 120, 160, 200, 240, 280, 320]) {
      const d = decide({ sample: unb(), elapsedSeconds: t, workerFinished: false, endGame: { ...endGame }, settings: settings({ completionTimeout: 200 }), state: st });
      if (d.actions.some((a) => a.kind === 'abort')) {
        at.push(t);
        endGame.claimedAction = 'abort';
      }
      st = d.state;
    }
    expect(at).toEqual([240]);
    expect(st.timeoutAttempts).toBe(1);
  });

  it('completion_timeout 40 with force_complete and post-copy on -> post-copy switch, success', () => {
    const times = [0, 40, 80, 120, 160];
    const r = runMonitor([...times.map(() => UNBOUNDED), 'thread-finish', 'domain-stop', COMPLETED], {
      settings: { completionTimeout: completionTimeoutSeconds(40, 2), timeoutAction: 'force_complete', postCopyPermitted: true },
      times,
    });
    expect(r.actions).toEqual([{ kind: 'start_postcopy', reason: 'timeout' }, { kind: 'finish', outcome: 'completed' }]);
  });

  it('timeout force_complete without post-copy pauses once; a later failure resumes', () => {
    const times = [0, 100, 200];
    const r = runMonitor([...times.map(() => UNBOUNDED), FAILED], {
      settings: { completionTimeout: 80, timeoutAction: 'force_complete' },
      times,
    });
    expect(r.actions).toEqual([{ kind: 'pause', reason: 'timeout' }, { kind: 'resume_source' }, { kind: 'finish', outcome: 'failed' }]);
  });

  it('no timeout action once in post-copy', () => {
    const r = runMonitor([UNBOUNDED, UNBOUNDED, COMPLETED], {
      settings: { completionTimeout: 10 },
      status: MigrationStatus.postcopy,
      times: [0, 100],
    });
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
  });

  it('completion timeout 0 never fires', () => {
    const r = runMonitor([UNBOUNDED, UNBOUNDED, COMPLETED], { settings: { completionTimeout: 0 }, times: [0, 1e9] });
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
  });
});

describe('decide: timeout action vs operator force-complete (at most one end-game action)', () => {
  it('operator post-copy, then the timeout (force_complete) -> the claimed end is left alone', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, UNBOUNDED, COMPLETED], {
      settings: { completionTimeout: 50, timeoutAction: 'force_complete', postCopyPermitted: true },
      times: [0, 60, 70],
    });
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
  });
  it('operator pause, then the timeout (force_complete) -> no second pause; the timeout is not spent', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, UNBOUNDED, COMPLETED], {
      settings: { completionTimeout: 50, timeoutAction: 'force_complete' },
      times: [0, 10, 60],
    });
    expect(r.actions).toEqual([{ kind: 'finish', outcome: 'completed' }]);
    expect(r.state.timeoutAttempts).toBe(0);
  });
  it('an operator claim freed again (libvirt refused it) -> the timeout acts at the next poll past the deadline', () => {
    const s = settings({ completionTimeout: 50, timeoutAction: 'abort' });
    const claimed: EndGame = { ...RUNNING, claimedAction: 'force_complete' };
    const held = decide({ sample: unb(), elapsedSeconds: 60, workerFinished: false, endGame: claimed, settings: s, state: initialMonitorState() });
    expect(kinds(held.actions)).toEqual([]);
    const freed = decide({ sample: unb(), elapsedSeconds: 61, workerFinished: false, endGame: RUNNING, settings: s, state: held.state });
    expect(kinds(freed.actions)).toEqual([{ kind: 'abort', reason: 'timeout' }]);
  });
  it('timeout pause, then operator force-complete -> no second pause', () => {
    const r = runMonitor([UNBOUNDED, UNBOUNDED, 'force_complete', UNBOUNDED, COMPLETED], {
      settings: { completionTimeout: 50, timeoutAction: 'force_complete' },
      times: [0, 60, 70],
    });
    expect(r.actions).toEqual([{ kind: 'pause', reason: 'timeout' }, { kind: 'finish', outcome: 'completed' }]);
  });
  it('timeout abort, then operator force-complete -> not executed (the job is being cancelled)', () => {
    const r = runMonitor([UNBOUNDED, UNBOUNDED, 'force_complete', UNBOUNDED, CANCELLED], {
      settings: { completionTimeout: 50, timeoutAction: 'abort' },
      times: [0, 60, 70],
    });
    expect(r.actions).toEqual([{ kind: 'abort', reason: 'timeout' }, { kind: 'finish', outcome: 'cancelled' }]);
    expect(r.endGame.claimedAction).toBe('abort');
  });
  it('operator pause, then the timeout (abort) -> no abort over the claim; a cancelled job still resumes the guest', () => {
    const r = runMonitor([UNBOUNDED, 'force_complete', UNBOUNDED, UNBOUNDED, CANCELLED], {
      settings: { completionTimeout: 50, timeoutAction: 'abort' },
      times: [0, 10, 60],
    });
    expect(r.actions).toEqual([{ kind: 'resume_source' }, { kind: 'finish', outcome: 'cancelled' }]);
  });
});

describe('restoredMonitorState (a monitor re-attached after a restart)', () => {
  it('goes on from the state the record kept, through its JSON file', () => {
    const kept = { ...initialMonitorState(), currentDowntime: 500, timeoutAttempts: 2, pollCount: 40, named: true };
    expect(restoredMonitorState(JSON.parse(JSON.stringify(kept)))).toEqual(kept);
  });
  it('starts fresh from nothing, or from a state of another shape (an older ferryd)', () => {
    expect(restoredMonitorState(null)).toEqual(initialMonitorState());
    expect(restoredMonitorState({ currentDowntime: 500, timeoutAttempts: 0, lastTimeoutAttemptAt: null, pollCount: 3 })).toEqual(initialMonitorState());
  });
});
