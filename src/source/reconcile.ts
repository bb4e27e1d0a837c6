// At start, each outgoing migration a previous ferryd left unfinished is
// carried on from what libvirt says now: nothing ferry started is orphaned.
// carryOnFrom decides (pure); SourceHandlers.carryOn acts, re-attaching the
// monitor to a job libvirt carried on with through reattachTransfer.

import { DomainState, isVirError, JobStatsFlag, JobType, VirErrorCode, type Domain, type DomainStateInfo, type JobStats } from '../libvirt/types.js';
import { MigrationControl } from '../monitor/control.js';
import { MAX_POLL_ERRORS, type MonitorOutcome } from '../monitor/loop.js';
import type { DowntimeStep } from '../monitor/nova-policy.js';
import { heldForPostcopyResume, pausedInPostcopy } from '../monitor/policy.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import type { SourceDeps } from './deps.js';
import { POLL_MS, watchTransfer } from './transfer.js';

/** virDomainJobOperation VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT */
export const JOB_OPERATION_MIGRATION_OUT = 5;

/** The source domain as found at start: gone, or its state and job. */
export type SourceFinding = { domain: 'missing' } | { domain: 'present'; state: DomainStateInfo; job: Pick<JobStats, 'type' | 'operation'> };

export type CarryOn =
  /** Not started with libvirt: run it (again) from the start. */
  | { kind: 'restart' }
  /** libvirt's job still runs: watch it again. */
  | { kind: 'reattach' }
  /** Post-copy stopped half way: resume it. */
  | { kind: 'resume_postcopy' }
  /** The guest stayed here, whole: roll the destination back. */
  | { kind: 'roll_back' }
  /** The guest left this host: finish once the destination shows it running. */
  | { kind: 'confirm_at_destination' }
  /** Nothing safe to do: report, touch neither side. */
  | { kind: 'report'; error: string };

/**
 * What to do with an unfinished migration found at start.
 *
 *   carryOnFrom('queued', anything)                                         // restart
 *   carryOnFrom('running', { domain: 'present', state: RUNNING, job: { type: UNBOUNDED, operation: 5 } })  // reattach
 *   carryOnFrom('running (post-copy)', { domain: 'present', state: PAUSED/POSTCOPY_FAILED, job: any })     // resume_postcopy
 *   carryOnFrom('running', { domain: 'present', state: RUNNING, job: NONE })  // roll_back: the job ended, the guest stayed
 *   carryOnFrom('running', { domain: 'missing' })                            // confirm_at_destination
 */
export function carryOnFrom(status: MigrationStatus, found: SourceFinding): CarryOn {
  // No libvirt job was started before 'running' is kept (transfer.ts sets it first): run again.
  if (status === MigrationStatus.queued || status === MigrationStatus.preparing) return { kind: 'restart' };
  if (found.domain === 'missing') return { kind: 'confirm_at_destination' };
  const { state, job } = found;
  // First: libvirt keeps a paused post-copy job listed while it waits for the resume that only we send.
  if (heldForPostcopyResume(state)) return { kind: 'resume_postcopy' };
  if (job.type === JobType.UNBOUNDED && job.operation === JOB_OPERATION_MIGRATION_OUT) return { kind: 'reattach' };
  // Paused in post-copy and not yet marked failed: libvirt is about to; watching tells which way it goes.
  if (pausedInPostcopy(state)) return { kind: 'reattach' };
  if (state.state === DomainState.SHUTOFF) return { kind: 'confirm_at_destination' };
  if (status !== MigrationStatus.running) {
    return { kind: 'report', error: `ferryd restarted during post-copy and the source domain is ${DomainState[state.state]?.toLowerCase() ?? state.state} without a migration job; neither side was touched` };
  }
  return { kind: 'roll_back' };
}

class PostcopyPaused extends Error {
  constructor() {
    super('post-copy migration paused: the source waits for a resume');
  }
}

/**
 * Stands in for migrateToURI3 after a restart, when no call in this process
 * will return: settles when libvirt's job on the source domain is over, the
 * way the call would have (resolved: the guest left; rejected: it did not,
 * with libvirt's reason when it kept one).
 */
export async function outgoingJobEnd(dom: Domain, pollMs: number): Promise<void> {
  for (let errors = 0; ; ) {
    try {
      const stats = await dom.getJobStats();
      errors = 0;
      if (stats.type !== JobType.UNBOUNDED) break;
      // Post-copy paused half way: the job stays listed, waiting for a resume; migrateToURI3 would have failed here.
      if (heldForPostcopyResume(await dom.getState())) throw new PostcopyPaused();
    } catch (err) {
      if (err instanceof PostcopyPaused) throw err;
      // The domain left this host with the migration's end (VIR_MIGRATE_UNDEFINE_SOURCE).
      if (isVirError(err) && err.code === VirErrorCode.NO_DOMAIN) return;
      if (++errors >= MAX_POLL_ERRORS) throw err;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  try {
    if (!(await dom.isActive())) return;
  } catch (err) {
    if (isVirError(err) && err.code === VirErrorCode.NO_DOMAIN) return;
    throw err;
  }
  const done = await dom.getJobStats(JobStatsFlag.COMPLETED).catch(() => null);
  throw new Error(`the migration job ended without moving the guest${done?.errmsg ? `: ${done.errmsg}` : ''}`);
}

/**
 * The end-game control and the monitor again, on the job libvirt carried on
 * with while ferryd was down. The deadline and the ramp count from the
 * migration's first start, not from now.
 */
export function reattachTransfer(
  deps: Pick<SourceDeps, 'config' | 'registry' | 'events' | 'log'>,
  record: MigrationRecord,
  dom: Domain,
  steps: readonly DowntimeStep[],
  onControl: (control: MigrationControl) => void,
): Promise<MonitorOutcome> {
  const control = new MigrationControl(record, deps.registry, dom, deps.log);
  onControl(control);
  const elapsed = record.startedAt ? Math.max(0, (Date.now() - Date.parse(record.startedAt)) / 1000) : 0;
  deps.log.info({ elapsed_ms: Math.round(elapsed * 1000) }, 'migration re-attached: libvirt carried the job on while ferryd was down');
  return watchTransfer(deps, record, dom, control, outgoingJobEnd(dom, POLL_MS), steps, elapsed);
}
