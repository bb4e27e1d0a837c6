// The live-migration monitor policy, as pure functions. Nova's
// _live_migration_monitor interleaves these decisions with libvirt calls; here
// the caller polls libvirt, feeds each sample to decide() and performs the
// returned actions in order.
import { JobType, VirErrorCode, type JobStats } from '../libvirt/types.js';
import { countersFromStats, progressPercent, type MigrationCounters } from './progress.js';
import { MigrationStatus, type TimeoutAction } from '../record/status.js';

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

/** Nova's downtime_steps: S+1 steps, `delay*data_gb` seconds apart, from D/S up to D. */
export function downtimeSteps(dataGb: number, cfg: DowntimeSettings): DowntimeStep[] {
  const delay = Math.trunc(cfg.delay * dataGb);
  const base = cfg.downtime / cfg.steps;
  const offset = (cfg.downtime - base) / cfg.steps;
  const out: DowntimeStep[] = [];
  for (let i = 0; i <= cfg.steps; i++) out.push([Math.trunc(delay * i), Math.trunc(base + offset * i)]);
  return out;
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
  const base = cfg.downtime / cfg.steps;
  const offset = (cfg.downtime - base) / cfg.steps;
  const out: DowntimeStep[] = [];
  for (let i = 0; i <= cfg.steps; i++) {
    const at = (timeoutSeconds * i) / (2 * cfg.steps);
    // The last step is exactly the configured downtime, whatever the float error.
    out.push([at, i === cfg.steps ? cfg.downtime : Math.trunc(base + offset * i)]);
  }
  return out;
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

/** Nova's should_trigger_timeout_action: never when off (0) or already in post-copy. */
export function shouldTriggerTimeoutAction(elapsed: number, timeout: number, status: MigrationStatus | string): boolean {
  if (timeout <= 0) return false;
  if (status === MigrationStatus.postcopy) return false;
  return elapsed > timeout;
}

/** What the guest looked like when the job went NONE after migrateToURI3 returned. */
export type GuestProbe = { active: boolean } | { errorCode: number };

/** Nova's find_job_type: a guest still running here means the migration failed. */
export function findJobType(probe: GuestProbe): JobType.COMPLETED | JobType.FAILED {
  if ('active' in probe) return probe.active ? JobType.FAILED : JobType.COMPLETED;
  return probe.errorCode === VirErrorCode.NO_DOMAIN ? JobType.COMPLETED : JobType.FAILED;
}

export type JobStatsErrorResolution =
  | { kind: 'job_type'; type: JobType }
  | { kind: 'use_job_info' }
  | { kind: 'raise' };

/** How Nova's get_job_info treats a virDomainGetJobStats error. */
export function classifyJobStatsError(code: number, message: string): JobStatsErrorResolution {
  switch (code) {
    case VirErrorCode.NO_DOMAIN:
    case VirErrorCode.OPERATION_INVALID:
      // The domain is gone or no longer running here: the migration finished.
      return { kind: 'job_type', type: JobType.COMPLETED };
    case VirErrorCode.INTERNAL_ERROR:
      // QEMU race right after the job starts.
      return message.includes('no RAM info was set') ? { kind: 'job_type', type: JobType.NONE } : { kind: 'raise' };
    case VirErrorCode.NO_SUPPORT:
      return { kind: 'use_job_info' };
    default:
      return { kind: 'raise' };
  }
}

// ---------------------------------------------------------------- decide()

export type ForceCompleteReason = 'timeout' | 'operator';
export type FinishOutcome = 'completed' | 'failed' | 'cancelled';

export type MonitorAction =
  | { kind: 'set_downtime'; ms: number }
  | { kind: 'abort'; reason: 'timeout' }
  | { kind: 'start_postcopy'; reason: ForceCompleteReason }
  | { kind: 'pause'; reason: ForceCompleteReason }
  | { kind: 'save_stats'; counters: MigrationCounters; progress: number; logInfo: boolean }
  | { kind: 'resume_source' }
  | { kind: 'finish'; outcome: FinishOutcome };

export interface MonitorSettings {
  downtimeSteps: readonly DowntimeStep[];
  /** seconds since the monitor started; 0 = off */
  completionTimeout: number;
  timeoutAction: TimeoutAction;
  /** the migration runs with VIR_MIGRATE_POSTCOPY */
  postCopyPermitted: boolean;
  /** save stats every N UNBOUNDED polls; Nova: int(monitor_interval / 0.5) = 10 */
  statsEvery?: number;
}

export interface MonitorState {
  status: MigrationStatus;
  currentDowntime: number | null;
  /** we suspended the source guest (force-complete without post-copy) */
  pausedByUs: boolean;
  /** an operator force-complete is queued and not yet run */
  forceCompleteRequested: boolean;
  timeoutFired: boolean;
  /** UNBOUNDED polls seen so far */
  pollCount: number;
}

export interface MonitorInput {
  sample: JobStats;
  elapsedSeconds: number;
  /** migrateToURI3 has returned (or thrown) */
  workerFinished: boolean;
  /** findJobType() result; required when the sample is NONE and the worker finished */
  foundJobType?: JobType;
  settings: MonitorSettings;
  state: MonitorState;
}

export interface MonitorDecision {
  actions: MonitorAction[];
  state: MonitorState;
  /** the job type acted on (after resolving NONE) */
  jobType: JobType;
  /** a finish action was emitted: stop polling */
  done: boolean;
}

export const DEFAULT_STATS_EVERY = 10;
/** Nova logs progress at INFO every 60 polls (30 s), DEBUG otherwise. */
const INFO_LOG_EVERY_SAVES = 6;

export function initialMonitorState(status: MigrationStatus = MigrationStatus.running): MonitorState {
  return {
    status,
    currentDowntime: null,
    pausedByUs: false,
    forceCompleteRequested: false,
    timeoutFired: false,
    pollCount: 0,
  };
}

/** A force-complete (from either source) has already taken effect. */
function forceCompleted(s: MonitorState): boolean {
  return s.status === MigrationStatus.postcopy || s.pausedByUs;
}

/** Nova's force-complete task: switch to post-copy if permitted, else pause the source. */
function forceComplete(s: MonitorState, settings: MonitorSettings, reason: ForceCompleteReason): MonitorAction {
  if (settings.postCopyPermitted) {
    s.status = MigrationStatus.postcopy;
    return { kind: 'start_postcopy', reason };
  }
  s.pausedByUs = true;
  return { kind: 'pause', reason };
}

function finish(s: MonitorState, outcome: FinishOutcome): MonitorAction[] {
  const actions: MonitorAction[] = [];
  // Nova's recover task: undo our pause so a failed migration leaves the guest running.
  if (outcome !== 'completed' && s.pausedByUs) {
    actions.push({ kind: 'resume_source' });
    s.pausedByUs = false;
  }
  // A queued force-complete is dropped once the job is over.
  s.forceCompleteRequested = false;
  actions.push({ kind: 'finish', outcome });
  return actions;
}

function unbounded(input: MonitorInput, s: MonitorState): MonitorAction[] {
  const { settings, elapsedSeconds: elapsed } = input;
  const actions: MonitorAction[] = [];

  // 1. Operator force-complete. Nothing to do in post-copy; never on top of a
  //    timeout action or an earlier force-complete.
  if (s.forceCompleteRequested) {
    s.forceCompleteRequested = false;
    if (!forceCompleted(s) && !s.timeoutFired) actions.push(forceComplete(s, settings, 'operator'));
  }

  // 2. Completion timeout, acted on once.
  if (!s.timeoutFired && shouldTriggerTimeoutAction(elapsed, settings.completionTimeout, s.status)) {
    s.timeoutFired = true;
    if (settings.timeoutAction === 'abort') actions.push({ kind: 'abort', reason: 'timeout' });
    else if (!forceCompleted(s)) actions.push(forceComplete(s, settings, 'timeout'));
  }

  // 3. Downtime ramp.
  const dt = updateDowntime(s.currentDowntime, settings.downtimeSteps, elapsed);
  if (dt.set && dt.value !== null) actions.push({ kind: 'set_downtime', ms: dt.value });
  s.currentDowntime = dt.value;

  // 4. Stats, on the first UNBOUNDED poll and every statsEvery-th after it.
  const every = Math.max(1, settings.statsEvery ?? DEFAULT_STATS_EVERY);
  if (s.pollCount % every === 0) {
    actions.push({
      kind: 'save_stats',
      counters: countersFromStats(input.sample),
      progress: progressPercent(input.sample),
      logInfo: s.pollCount % (every * INFO_LOG_EVERY_SAVES) === 0,
    });
  }
  s.pollCount += 1;
  return actions;
}

/** One monitor step. Pure: the returned state is a new object. */
export function decide(input: MonitorInput): MonitorDecision {
  const s: MonitorState = { ...input.state };
  let jobType = input.sample.type;
  if (jobType === JobType.NONE && input.workerFinished) {
    if (input.foundJobType === undefined) {
      throw new TypeError('decide: a NONE job after the worker finished needs foundJobType (see findJobType)');
    }
    jobType = input.foundJobType;
  }

  let actions: MonitorAction[];
  switch (jobType) {
    case JobType.UNBOUNDED:
      actions = unbounded(input, s);
      break;
    case JobType.COMPLETED:
      actions = finish(s, 'completed');
      break;
    case JobType.FAILED:
      actions = finish(s, 'failed');
      break;
    case JobType.CANCELLED:
      actions = finish(s, 'cancelled');
      break;
    default:
      // NONE before the worker finished (not started yet), or BOUNDED: keep polling.
      actions = [];
  }
  return { actions, state: s, jobType, done: actions.some((a) => a.kind === 'finish') };
}

/**
 * State after an action the caller could not perform. Nova only marks
 * post-copy once the switch succeeded, and only queues the unpause once the
 * pause did. Other failures leave the state as decided (Nova keeps the new
 * downtime even if setting it failed; a failed abort is raised by the caller).
 */
export function revertFailedAction(state: MonitorState, action: MonitorAction): MonitorState {
  switch (action.kind) {
    case 'start_postcopy':
      return { ...state, status: MigrationStatus.running };
    case 'pause':
      return { ...state, pausedByUs: false };
    default:
      return state;
  }
}
