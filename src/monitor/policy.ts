// The live-migration monitor policy, as pure functions. Nova's
// _live_migration_monitor interleaves these decisions with libvirt calls; here
// the caller polls libvirt, feeds each sample to decide() and performs the
// returned actions in order.
import { DomainState, JobType, PausedReason, VirErrorCode, type DomainStateInfo, type JobStats } from '../libvirt/types.js';
import type { ConvergenceFigures, ConvergencePolicy, ConvergenceVerdict, MigrationCounters, MigrationRecord } from '../record/registry.js';
import { inPostcopy, MigrationStatus, type TimeoutAction } from '../record/status.js';
import {
  adaptiveDowntime,
  assess,
  etaSeconds,
  shouldStartPostcopy,
  throttlePercent,
  willNotConvergeDetail,
  type ConvergenceSettings,
} from './adaptive-policy.js';
import { impliedDowntimeMs, initialModel, observe, type ConvergenceModel } from './convergence-model.js';
import { updateDowntime, type DowntimeStep } from './nova-policy.js';
import { countersFromStats, progressPercent } from './progress.js';

/** Nova's should_trigger_timeout_action: never when off (0) or already in post-copy. */
export function shouldTriggerTimeoutAction(elapsed: number, timeout: number, status: MigrationStatus): boolean {
  if (timeout <= 0) return false;
  if (inPostcopy(status)) return false;
  return elapsed > timeout;
}

/**
 * A source domain that libvirt holds for a post-copy resume: paused with
 * VIR_DOMAIN_PAUSED_POSTCOPY_FAILED, the half of a split guest that waits.
 */
export function heldForPostcopyResume({ state, reason }: DomainStateInfo): boolean {
  return state === DomainState.PAUSED && reason === PausedReason.POSTCOPY_FAILED;
}

/**
 * An incoming migration's domain that has not run yet: paused with
 * VIR_DOMAIN_PAUSED_MIGRATION. The only one a destination may take away.
 */
export function isIncomingHalf({ state, reason }: DomainStateInfo): boolean {
  return state === DomainState.PAUSED && reason === PausedReason.MIGRATION;
}

/**
 * A source domain still paused in post-copy, failed or not yet marked so:
 * once migrateToURI3 failed, the half of a split guest. (The API's failure
 * can come before libvirt changes the reason.)
 */
export function pausedInPostcopy({ state, reason }: DomainStateInfo): boolean {
  return state === DomainState.PAUSED && (reason === PausedReason.POSTCOPY_FAILED || reason === PausedReason.POSTCOPY);
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

/** `postcopy_paused`: post-copy stopped half way; the guest waits, split between the hosts, for a resume. */
export type FinishOutcome = 'completed' | 'failed' | 'cancelled' | 'postcopy_paused';

/** Who asked for an end-game action: the completion timeout, or the adaptive policy before it. */
export type EndGameReason = 'timeout' | 'convergence';

export type MonitorAction =
  | { kind: 'set_downtime'; ms: number }
  | { kind: 'abort'; reason: EndGameReason }
  | { kind: 'start_postcopy'; reason: EndGameReason }
  | { kind: 'pause'; reason: EndGameReason }
  | { kind: 'save_stats'; counters: MigrationCounters; progress: number; throttlePercent: number; logInfo: boolean; elapsedSeconds: number }
  | { kind: 'resume_source' }
  | { kind: 'finish'; outcome: FinishOutcome };

export interface MonitorSettings {
  /** which policy decides before the deadline; both keep the model's figures */
  policy: ConvergencePolicy;
  /** Nova's ramp (policy `nova`) */
  downtimeSteps: readonly DowntimeStep[];
  /** what the migration may do to converge (post-copy, auto-converge, the downtime's limits) and the model's stall test */
  convergence: ConvergenceSettings;
  /** seconds since the monitor started; 0 = off */
  completionTimeout: number;
  timeoutAction: TimeoutAction;
  /** save stats every N UNBOUNDED polls; Nova: int(monitor_interval / 0.5) = 10 */
  statsEvery?: number;
}

/**
 * The migration's end game as its record holds it. The control (operator or
 * timeout) writes it once an action took effect; the policy only reads it.
 */
export type EndGame = Pick<MigrationRecord, 'status' | 'claimedAction' | 'pausedByUs'>;

/** What the policy itself remembers between polls. */
export interface MonitorState {
  currentDowntime: number | null;
  /** times the completion timeout's action was asked for */
  timeoutAttempts: number;
  /** elapsed seconds at the last of them */
  lastTimeoutAttemptAt: number | null;
  /** UNBOUNDED polls seen so far */
  pollCount: number;
  model: ConvergenceModel;
  verdict: ConvergenceVerdict;
  /** the adaptive policy has asked for its end-game action (start post-copy, or the stall action) */
  convergenceActed: boolean;
  /** "will not converge" was said: once per migration, however often the verdict flips */
  named: boolean;
}

export interface MonitorInput {
  sample: JobStats;
  elapsedSeconds: number;
  /** migrateToURI3 has returned (or thrown) */
  workerFinished: boolean;
  /** findJobType() result; required when the sample is NONE and the worker finished */
  foundJobType?: JobType;
  /**
   * Once migrateToURI3 failed in post-copy: the source domain is still paused
   * in post-copy (see pausedInPostcopy), or its state could not be read; the
   * guest is split and waits for a resume.
   */
  postcopyFailed?: boolean;
  settings: MonitorSettings;
  endGame: EndGame;
  state: MonitorState;
}

export interface MonitorDecision {
  actions: MonitorAction[];
  state: MonitorState;
  /** the job type acted on (after resolving NONE) */
  jobType: JobType;
  /** a finish action was emitted: stop polling */
  done: boolean;
  /** the convergence model's figures after an UNBOUNDED sample, for the record */
  convergence: ConvergenceFigures | null;
  /** the line to log when the verdict has just become "will not converge" */
  announce: string | null;
}

export const DEFAULT_STATS_EVERY = 10;
/**
 * A timeout action libvirt refused frees its claim (control.ts); the timeout
 * owns the end until its action took: it asks again this often, this many
 * times in all, then the migration is reported as failing to end.
 */
export const TIMEOUT_RETRY_SECONDS = 5;
export const MAX_TIMEOUT_ATTEMPTS = 5;
/** Nova logs progress at INFO every 60 polls (30 s), DEBUG otherwise. */
const INFO_LOG_EVERY_SAVES = 6;

/**
 * The state a record kept (MigrationRecord.policyState), or a fresh one when
 * it kept none or one of another shape (an older ferryd's).
 */
export function restoredMonitorState(saved: Record<string, unknown> | null): MonitorState {
  const fresh = initialMonitorState();
  if (!saved || Object.keys(fresh).some((k) => !(k in saved))) return fresh;
  return saved as unknown as MonitorState;
}

export function initialMonitorState(): MonitorState {
  return { currentDowntime: null, timeoutAttempts: 0, lastTimeoutAttemptAt: null, pollCount: 0, model: initialModel(), verdict: 'converging', convergenceActed: false, named: false };
}

/** Nova's force-complete: switch to post-copy if permitted, else pause the source. */
function forceComplete(settings: MonitorSettings, reason: EndGameReason): MonitorAction {
  return settings.convergence.postCopyPermitted ? { kind: 'start_postcopy', reason } : { kind: 'pause', reason };
}

function finish(endGame: EndGame, outcome: FinishOutcome): MonitorAction[] {
  // Nova's recover task: undo our pause so a failed migration leaves the guest running.
  const resume: MonitorAction[] = outcome !== 'completed' && endGame.pausedByUs ? [{ kind: 'resume_source' }] : [];
  return [...resume, { kind: 'finish', outcome }];
}

function timeoutMayTry(s: MonitorState, elapsed: number): boolean {
  if (s.timeoutAttempts >= MAX_TIMEOUT_ATTEMPTS) return false;
  return s.lastTimeoutAttemptAt === null || elapsed - s.lastTimeoutAttemptAt >= TIMEOUT_RETRY_SECONDS;
}

/** The timeout has asked for its action as often as it may: it will not ask again. */
export function timeoutGaveUp(s: MonitorState): boolean {
  return s.timeoutAttempts >= MAX_TIMEOUT_ATTEMPTS;
}

function unbounded(input: MonitorInput, s: MonitorState): { actions: MonitorAction[]; seen: Seen } {
  const { settings, endGame, elapsedSeconds: elapsed } = input;
  const actions: MonitorAction[] = [];

  // 1. Completion timeout. An end already claimed (by the operator, or by an
  //    earlier attempt that took) is left alone; while nobody holds it, the
  //    timeout asks again every TIMEOUT_RETRY_SECONDS, MAX_TIMEOUT_ATTEMPTS times.
  if (endGame.claimedAction === null && shouldTriggerTimeoutAction(elapsed, settings.completionTimeout, endGame.status) && timeoutMayTry(s, elapsed)) {
    s.timeoutAttempts += 1;
    s.lastTimeoutAttemptAt = elapsed;
    actions.push(settings.timeoutAction === 'abort' ? { kind: 'abort', reason: 'timeout' } : forceComplete(settings, 'timeout'));
  }

  // 2. Convergence: the model sees every sample; the policy decides the downtime (and, adaptive, more).
  const step = convergence(input, s);
  actions.push(...step.actions);

  // 3. Stats, on the first UNBOUNDED poll and every statsEvery-th after it.
  const every = Math.max(1, settings.statsEvery ?? DEFAULT_STATS_EVERY);
  if (s.pollCount % every === 0) {
    actions.push({
      kind: 'save_stats',
      counters: countersFromStats(input.sample),
      progress: progressPercent(input.sample),
      throttlePercent: throttlePercent(input.sample),
      logInfo: s.pollCount % (every * INFO_LOG_EVERY_SAVES) === 0,
      // the sample's time on the monitor's clock, which the downtime ramp and the timeout run on
      elapsedSeconds: input.elapsedSeconds,
    });
  }
  s.pollCount += 1;
  return { actions, seen: step.seen };
}

/** The end game is free for the adaptive policy: nobody claimed it and the transfer is still pre-copy. */
function endGameFree(endGame: EndGame): boolean {
  return endGame.claimedAction === null && endGame.status === MigrationStatus.running;
}

/** What the model made of a sample: its figures, and the line to log if the verdict just turned hopeless. */
interface Seen {
  figures: ConvergenceFigures;
  announce: string | null;
}

/**
 * Step 2 of an UNBOUNDED poll: the model takes the sample, the verdict is
 * renewed, and the configured policy sets the downtime; the adaptive policy
 * may also start post-copy at a stall, or act on a confident "will not
 * converge" when the operator opted in. It asks for such an action once: a
 * refusal leaves the deadline to act. Mutates `s` (decide's own copy).
 */
function convergence(input: MonitorInput, s: MonitorState): { actions: MonitorAction[]; seen: Seen } {
  const { settings, endGame, elapsedSeconds: elapsed, sample } = input;
  const c = settings.convergence;
  const before = s.model.marks.at(-1);
  s.model = observe(s.model, sample, elapsed, c.stall);
  const newMark = s.model.marks.at(-1) !== before;
  s.verdict = assess(s.model, c, throttlePercent(sample));
  const actions: MonitorAction[] = [];

  // Anything but 'adaptive' (a record of an older ferryd has no policy) is Nova's.
  const adaptive = settings.policy === 'adaptive';
  let downtime: number | null;
  if (!adaptive) {
    downtime = updateDowntime(s.currentDowntime, settings.downtimeSteps, elapsed).value;
  } else if (endGame.status === MigrationStatus.running) {
    downtime = adaptiveDowntime(s.currentDowntime, s.model, newMark, c) ?? s.currentDowntime;
  } else {
    // In post-copy (a resume) the downtime means nothing any more.
    downtime = s.currentDowntime;
  }
  const raised = downtime !== null && downtime !== s.currentDowntime;
  if (raised) actions.push({ kind: 'set_downtime', ms: downtime! });
  // QEMU gets a pass at a new downtime before post-copy is judged against it.
  const downtimeBefore = s.currentDowntime;
  s.currentDowntime = downtime;

  if (adaptive && !s.convergenceActed && endGameFree(endGame)) {
    if (!raised && shouldStartPostcopy(s.model, downtimeBefore, elapsed, c)) {
      s.convergenceActed = true;
      actions.push({ kind: 'start_postcopy', reason: 'convergence' });
    } else if (s.verdict === 'will_not_converge' && c.actOnStall) {
      s.convergenceActed = true;
      actions.push(settings.timeoutAction === 'abort' ? { kind: 'abort', reason: 'convergence' } : forceComplete(settings, 'convergence'));
    }
  }

  const hopeless = s.verdict === 'will_not_converge';
  const detail = hopeless ? willNotConvergeDetail(s.model) : null;
  const seen: Seen = {
    figures: {
      policy: adaptive ? 'adaptive' : 'nova',
      bandwidthBps: s.model.bandwidthBps,
      dirtyRateBps: s.model.dirtyRateBps,
      impliedDowntimeMs: impliedDowntimeMs(s.model),
      stalled: s.model.stalled,
      verdict: s.verdict,
      etaSeconds: etaSeconds(s.model, s.verdict, s.currentDowntime ?? 0, elapsed, c.postCopyPermitted),
      detail,
    },
    announce: hopeless && !s.named ? detail : null,
  };
  if (hopeless) s.named = true;
  return { actions, seen };
}

/**
 * One monitor step. Pure: the returned state is a new object. An action the
 * caller could not perform changes nothing here: the record only changes once
 * libvirt took it (Nova marks post-copy only once the switch succeeded), and a
 * failed downtime change keeps the new value, as in Nova.
 */
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
  let seen: Seen | null = null;
  if (input.workerFinished && input.postcopyFailed && jobType !== JobType.COMPLETED && input.endGame.status === MigrationStatus.postcopy) {
    // Neither a failure nor a cancel: both halves of the guest live and must be joined again.
    return { actions: [{ kind: 'finish', outcome: 'postcopy_paused' }], state: s, jobType, done: true, convergence: null, announce: null };
  }
  switch (jobType) {
    case JobType.UNBOUNDED:
      ({ actions, seen } = unbounded(input, s));
      break;
    case JobType.COMPLETED:
      actions = finish(input.endGame, 'completed');
      break;
    case JobType.FAILED:
      actions = finish(input.endGame, 'failed');
      break;
    case JobType.CANCELLED:
      actions = finish(input.endGame, 'cancelled');
      break;
    default:
      // NONE before the worker finished (not started yet), or BOUNDED: keep polling.
      actions = [];
  }
  return { actions, state: s, jobType, done: actions.some((a) => a.kind === 'finish'), convergence: seen?.figures ?? null, announce: seen?.announce ?? null };
}
