// The effectful half of the monitor: polls job stats, feeds each sample to the
// pure policy (policy.ts) and performs the actions it returns. The outcome is
// decided when migrateToURI3 returns, the only point at which libvirt has
// finished with both hosts.

import type { DomainEventHub } from '../libvirt/domain-events.js';
import { isVirError, JobType, VirErrorCode, type Domain, type JobStats } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import type { MigrationControl } from './control.js';
import {
  classifyJobStatsError,
  decide,
  findJobType,
  restoredMonitorState,
  MAX_TIMEOUT_ATTEMPTS,
  pausedInPostcopy,
  timeoutGaveUp,
  type MonitorSettings,
  type FinishOutcome,
  type MonitorAction,
  type MonitorState,
} from './policy.js';
import { STALL_PROGRESS_FRACTION } from './adaptive-policy.js';
import { dirtyRateBps } from './convergence-model.js';
import type { DowntimeStep } from './nova-policy.js';
import { countersFromStats, finishedJobFigures, progressPercent, statsFromJobInfo } from './progress.js';
import type { MigrationRecord, MigrationRegistry, RecordPatch } from '../record/registry.js';
import { inPostcopy, MigrationStatus } from '../record/status.js';

export type MonitorOutcome = FinishOutcome;

export interface MonitorOptions {
  domain: Domain;
  record: MigrationRecord;
  registry: MigrationRegistry;
  control: MigrationControl;
  /** The pending migrateToURI3 call. */
  worker: Promise<void>;
  steps: readonly DowntimeStep[];
  log: Logger;
  pollMs: number;
  /** save_stats every N polls (Nova: monitor_interval / 0.5). */
  statsEvery: number;
  events?: DomainEventHub;
  /** `[libvirt] convergence_stall_window`: the adaptive policy's stall test. */
  stallWindowSeconds: number;
  /** Seconds the migration had already run (a monitor re-attached after a restart): the ramp and the timeout go on from there. */
  elapsedBeforeSeconds?: number;
}

type Settled = { ok: true } | { ok: false; err: unknown };

/**
 * Job stats that fail this many polls in a row (0.5 s apart) mean the
 * monitor has lost sight of the job; fewer are a hiccup, polled through.
 */
export const MAX_POLL_ERRORS = 5;
/** How long a migration that libvirt says succeeded waits for its job-completed event (downtime, post-copy requests). */
const COMPLETED_EVENT_WAIT_MS = 2_000;
/** Attempts at aborting a job the monitor lost sight of. */
const BLIND_ABORT_ATTEMPTS = 3;

export async function runMonitor(o: MonitorOptions): Promise<MonitorOutcome> {
  const { record, registry, log } = o;
  const settings = record.settings;
  if (!settings) throw new Error(`migration ${record.uuid} has no settings`);
  const policySettings: MonitorSettings = {
    policy: settings.convergencePolicy,
    downtimeSteps: o.steps,
    convergence: {
      maxDowntimeMs: settings.maxDowntimeMs,
      // The ramp's first value: as low as Nova starts, for guests that converge by themselves.
      initialDowntimeMs: o.steps[0]?.[1] ?? settings.maxDowntimeMs,
      stall: { windowSeconds: o.stallWindowSeconds, progressFraction: STALL_PROGRESS_FRACTION },
      postCopyPermitted: settings.postCopyPermitted,
      autoConvergePermitted: settings.autoConvergePermitted,
      measuredDirtyRateBps: settings.preflight?.dirtyRateBps ?? null,
      actOnStall: settings.actOnStall,
    },
    completionTimeout: settings.timeoutSeconds,
    timeoutAction: settings.timeoutAction,
    statsEvery: o.statsEvery,
  };
  // Monotonic: a wall-clock step (NTP, an operator) must not fire or delay the timeout.
  const started = performance.now() - (o.elapsedBeforeSeconds ?? 0) * 1000;
  // A holder, not a let: the callbacks set it behind TypeScript's back.
  const worker: { settled: Settled | null } = { settled: null };
  let wake: () => void = () => {};
  o.worker.then(
    () => {
      worker.settled = { ok: true };
      wake();
    },
    (err: unknown) => {
      worker.settled = { ok: false, err };
      wake();
    },
  );
  // The job-completed event carries the final downtime; polling cannot see it once the domain is gone.
  // It also has the final counters, which the last poll (up to pollMs old) undercounts.
  let jobCompleted: () => void = () => {};
  const completedEvent = new Promise<void>((resolve) => (jobCompleted = resolve));
  const unsubscribe = o.events?.on(record.instanceUuid, 'jobCompleted', (e) => {
    registry.update(record, finishedJobFigures(e.stats));
    jobCompleted();
    wake();
  });

  // A monitor re-attached after a restart goes on from the state its record kept.
  let state: MonitorState = restoredMonitorState(record.policyState);
  let jobOver = false;
  let pollErrors = 0;
  /** Until the next poll, or until migrateToURI3 returns or the job-completed event comes. */
  const sleep = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, o.pollMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  try {
    for (;;) {
      const elapsedSeconds = (performance.now() - started) / 1000;
      const settled = worker.settled;
      if (settled) {
        // libvirt may deliver the event just after the API returned: the conductor's final update should carry its figures.
        if (settled.ok && o.events) await withinMs(completedEvent, COMPLETED_EVENT_WAIT_MS);
        const foundJobType = await finalJobType(settled, o);
        const postcopyFailed = await sourceHeldForResume(settled, o);
        const decision = decide({ sample: { type: JobType.NONE }, elapsedSeconds, workerFinished: true, foundJobType, postcopyFailed, settings: policySettings, endGame: record, state });
        let outcome: MonitorOutcome = 'failed';
        for (const action of decision.actions) {
          if (action.kind === 'finish') outcome = action.outcome;
          else await perform(action, o, decision.state);
        }
        if (!settled.ok) registry.update(record, { error: errorMessage(settled.err) });
        return outcome;
      }
      if (!jobOver) {
        let sample: JobStats;
        try {
          sample = await poll(o.domain);
          pollErrors = 0;
        } catch (err) {
          pollErrors += 1;
          if (pollErrors < MAX_POLL_ERRORS) {
            log.warn({ err, errors: pollErrors }, 'cannot read migration job stats; polling on');
            await sleep();
            continue;
          }
          if (inPostcopy(record.status)) {
            // Post-copy cannot be aborted (the destination runs the guest): its end is migrateToURI3's.
            log.error({ err, errors: pollErrors }, 'cannot read migration job stats in post-copy; waiting for the migration to end');
          } else {
            // Nova: a monitor that cannot read the job aborts it rather than leaving it unattended.
            log.error({ err, errors: pollErrors }, 'cannot read migration job stats; aborting the job');
            await abortBlind(o);
          }
          const result = await o.worker.then(
            (): Settled => ({ ok: true }),
            (e: unknown): Settled => ({ ok: false, err: e }),
          );
          // migrateToURI3 may still have finished the move: then the guest runs on the destination.
          if (result.ok) return 'completed';
          if (await sourceHeldForResume(result, o)) {
            registry.update(record, { error: errorMessage(result.err) });
            return 'postcopy_paused';
          }
          throw err;
        }
        const decision = decide({ sample, elapsedSeconds, workerFinished: false, settings: policySettings, endGame: record, state });
        state = decision.state;
        // One update a poll: listeners (metrics) see the sample, the model's figures and the state together.
        registry.update(record, {
          ...liveFigures(sample),
          ...(decision.convergence ? { convergence: decision.convergence } : {}),
          policyState: state as unknown as Record<string, unknown>,
        });
        if (decision.announce) {
          log.warn({ ...decision.convergence, elapsed_ms: Math.round(elapsedSeconds * 1000) }, decision.announce);
          registry.noteAction(record, 'will_not_converge', 'convergence');
        }
        for (const action of decision.actions) {
          if (action.kind === 'finish') continue;
          try {
            await perform(action, o, state);
          } catch (err) {
            // libvirt refused: the record is unchanged and a refused claim is freed (control.ts),
            // so the timeout asks again later, until it gives up.
            log.error({ err, action: action.kind, attempt: state.timeoutAttempts }, 'monitor action failed');
            if ('reason' in action && action.reason === 'timeout' && timeoutGaveUp(state)) {
              registry.update(record, { error: `the completion timeout's ${action.kind} failed ${MAX_TIMEOUT_ATTEMPTS} times: ${errorMessage(err)}` });
              registry.noteAction(record, `${action.kind}_failed`, 'timeout');
            }
            // The adaptive policy asks once; the deadline still acts.
            if ('reason' in action && action.reason === 'convergence') registry.noteAction(record, `${action.kind}_failed`, 'convergence');
          }
        }
        // The job is over per libvirt: wait for migrateToURI3 to return before judging.
        jobOver = decision.done;
      }
      // migrateToURI3 may have returned while we were polling (its wake-up went to the last sleep).
      if (worker.settled) continue;
      await sleep();
    }
  } finally {
    unsubscribe?.();
  }
}

async function perform(action: Exclude<MonitorAction, { kind: 'finish' }>, o: MonitorOptions, state: MonitorState): Promise<void> {
  const { record, registry, control, log } = o;
  switch (action.kind) {
    case 'set_downtime':
      registry.update(record, { currentDowntimeMs: action.ms });
      registry.noteAction(record, 'set_downtime', 'policy');
      log.info({ ms: action.ms, policy: record.settings?.convergencePolicy }, 'migration max downtime set');
      await o.domain.migrateSetMaxDowntime(action.ms);
      return;
    case 'abort':
      await control.abort(action.reason);
      return;
    case 'start_postcopy':
      await control.finishBy('postcopy', action.reason);
      return;
    case 'pause':
      await control.finishBy('pause', action.reason);
      return;
    case 'resume_source':
      await control.resumeIfPaused();
      return;
    case 'save_stats':
      registry.update(record, { counters: action.counters, progress: action.progress });
      registry.reportProgress(record);
      (action.logInfo ? log.info : log.debug).call(log, { ...action.counters, progress: action.progress, auto_converge_throttle: action.throttlePercent, downtime: state.currentDowntime, elapsed_ms: Math.round(action.elapsedSeconds * 1000) }, 'migration progress');
      return;
  }
}

/** abortJob, retried a poll apart: a job nobody can watch must not run on unattended. */
async function abortBlind(o: MonitorOptions): Promise<void> {
  for (let attempt = 1; attempt <= BLIND_ABORT_ATTEMPTS; attempt++) {
    try {
      await o.domain.abortJob();
      return;
    } catch (err) {
      o.log.error({ err, attempt }, 'abortJob failed');
      if (attempt < BLIND_ABORT_ATTEMPTS) await new Promise((r) => setTimeout(r, o.pollMs));
    }
  }
}

async function poll(domain: Domain): Promise<JobStats> {
  try {
    return await domain.getJobStats();
  } catch (err) {
    if (!isVirError(err)) throw err;
    const resolution = classifyJobStatsError(err.code, err.message);
    if (resolution.kind === 'job_type') return { type: resolution.type };
    if (resolution.kind === 'use_job_info') return statsFromJobInfo(await domain.getJobInfo());
    throw err;
  }
}

/** A running job's live figures for its record at every poll, so list_migrations is never stale; none from other samples. */
function liveFigures(sample: JobStats): RecordPatch {
  if (sample.type !== JobType.UNBOUNDED) return {};
  return {
    counters: countersFromStats(sample),
    progress: progressPercent(sample),
    dirtyRateBytesPerSec: dirtyRateBps(sample) ?? 0,
    memoryBps: sample.memory_bps ?? 0,
    iteration: sample.memory_iteration ?? 0,
  };
}

/** The job type once migrateToURI3 has returned: success, a cancel, or Nova's find_job_type probe. */
async function finalJobType(settled: Settled, o: MonitorOptions): Promise<JobType> {
  if (settled.ok) return JobType.COMPLETED;
  const err = settled.err;
  if (o.record.claimedAction === 'abort' || (isVirError(err) && err.code === VirErrorCode.OPERATION_ABORTED)) return JobType.CANCELLED;
  try {
    return findJobType({ active: await o.domain.isActive() });
  } catch (probeErr) {
    return findJobType({ errorCode: isVirError(probeErr) ? probeErr.code : VirErrorCode.INTERNAL_ERROR });
  }
}

/**
 * Once migrateToURI3 failed in post-copy: whether the source domain waits,
 * paused, for a resume. A state we cannot read counts as yes, since the
 * other answer would roll back a guest whose memory is split.
 */
async function sourceHeldForResume(settled: Settled, o: MonitorOptions): Promise<boolean> {
  if (settled.ok || o.record.status !== MigrationStatus.postcopy) return false;
  try {
    return pausedInPostcopy(await o.domain.getState());
  } catch (err) {
    o.log.error({ err }, 'cannot read the source domain state after post-copy failed; holding it for a resume');
    return true;
  }
}

/** Resolves when `p` does or after `ms`, whichever is first; the timer does not outlive it. */
async function withinMs(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
