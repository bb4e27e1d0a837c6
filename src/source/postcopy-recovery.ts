// A post-copy migration that stopped half way (its link broke, or someone
// paused it with virDomainAbortJobFlags(VIR_DOMAIN_ABORT_JOB_POSTCOPY)) has
// the guest's memory split between the hosts: the destination runs it, the
// source still holds the pages not yet sent. Nothing may be destroyed or
// rolled back. libvirt keeps the job for a resume: migrateToURI3 again, with
// the same params plus VIR_MIGRATE_POSTCOPY_RESUME. We retry that with
// backoff while the source half waits for it, and an operator can ask for an
// attempt at once (`ferryctl resume`).

import { FeatureUnavailableError } from '../libvirt/features.js';
import { DomainState, isVirError, MigrateFlag, VirErrorCode, type Domain, type DomainStateInfo } from '../libvirt/types.js';
import type { MigrationControl } from '../monitor/control.js';
import { heldForPostcopyResume, pausedInPostcopy } from '../monitor/policy.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import type { SourceDeps } from './deps.js';
import { watchTransfer, type MigrateCall } from './transfer.js';

/**
 * The first resume is tried this soon after the pause, each later one twice
 * as late, up to RESUME_MAX_DELAY_MS. Not at once: libvirt marks the source
 * failed before QEMU has given up on the broken stream, and a resume then is
 * refused ("QEMU reports migration is still running"); in the lab the resume
 * after such a refusal once never returned.
 */
export const RESUME_FIRST_DELAY_MS = 1000;
export const RESUME_MAX_DELAY_MS = 30_000;

/**
 * How long to wait before resume attempt `attempt` (1-based).
 *
 *   resumeDelayMs(1) === 1000
 *   resumeDelayMs(3) === 4000
 *   resumeDelayMs(9) === 30000   // capped
 */
export function resumeDelayMs(attempt: number): number {
  return Math.min(RESUME_MAX_DELAY_MS, RESUME_FIRST_DELAY_MS * 2 ** Math.max(0, attempt - 1));
}

/** The source domain's state, or the libvirt error code that stopped us reading it. */
export type SourceProbe = { state: DomainStateInfo } | { errorCode: number };

export type ResumeVerdict =
  | { kind: 'resume' }
  /** Cannot tell now (the state read failed, or libvirt has not marked the failure yet): ask again at the next attempt. */
  | { kind: 'wait'; why: string }
  /** There is no source half to resume: stop, touch nothing, report. */
  | { kind: 'stop'; error: string };

/**
 * Whether a resume can be tried, from the source domain alone.
 *
 *   resumeVerdict({ state: { state: PAUSED, reason: POSTCOPY_FAILED } })  // resume
 *   resumeVerdict({ errorCode: VirErrorCode.NO_DOMAIN })                  // stop: the source domain is gone
 *   resumeVerdict({ errorCode: VirErrorCode.INTERNAL_ERROR })             // wait
 */
export function resumeVerdict(probe: SourceProbe): ResumeVerdict {
  if ('errorCode' in probe) {
    return probe.errorCode === VirErrorCode.NO_DOMAIN
      ? { kind: 'stop', error: 'post-copy recovery stopped: the source domain is gone; the guest may run on the destination, check it there' }
      : { kind: 'wait', why: `cannot read the source domain state (libvirt error ${probe.errorCode})` };
  }
  if (heldForPostcopyResume(probe.state)) return { kind: 'resume' };
  // Still paused in post-copy proper: libvirt has not (yet) marked it failed.
  if (pausedInPostcopy(probe.state)) return { kind: 'wait', why: 'the source is still paused in post-copy, not yet failed' };
  const { state, reason } = probe.state;
  return {
    kind: 'stop',
    error: `post-copy recovery stopped: the source domain is ${DomainState[state]?.toLowerCase() ?? state} (reason ${reason}), not paused for a resume; neither side was touched`,
  };
}

/** Wakes a backoff wait early: the operator's "resume now". */
export class ResumeSignal {
  private wakeUp: (() => void) | null = null;

  /** Resolves after `ms`, or as soon as kick() is called; true when kicked. */
  wait(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = null;
        resolve(false);
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve(true);
      };
    });
  }

  /** Ends the current wait; false when nothing is waiting (a resume is already under way). */
  kick(): boolean {
    if (!this.wakeUp) return false;
    this.wakeUp();
    return true;
  }
}

/**
 * Resumes the paused post-copy migration until it completes, or until there
 * is no source half left to resume: then the migration ends in `error` with
 * the reason and nothing is cleaned. Never gives up while both halves live.
 */
export async function recoverPostcopy(
  deps: Pick<SourceDeps, 'config' | 'registry' | 'events' | 'log'>,
  record: MigrationRecord,
  dom: Domain,
  control: MigrationControl,
  call: MigrateCall,
  signal: ResumeSignal,
): Promise<'completed' | 'error'> {
  const { registry, log } = deps;
  const flags = (record.settings?.flags ?? 0) | MigrateFlag.POSTCOPY_RESUME;
  const stop = (error: string): 'error' => {
    log.error(error);
    registry.update(record, { status: MigrationStatus.error, error });
    return 'error';
  };
  for (let attempt = 1; ; attempt++) {
    const delayMs = resumeDelayMs(attempt);
    registry.update(record, { status: MigrationStatus.postcopyPaused });
    registry.reportProgress(record);
    log.warn({ error: record.error, attempt, delayMs }, 'post-copy migration paused; resuming');
    const kicked = await signal.wait(delayMs);
    const verdict = resumeVerdict(await probe(dom));
    if (verdict.kind === 'stop') return stop(verdict.error);
    if (verdict.kind === 'wait') {
      registry.update(record, { error: `resume attempt ${attempt} not tried: ${verdict.why}` });
      continue;
    }
    const source = kicked ? 'operator' : 'backoff';
    registry.noteAction(record, 'postcopy_resume', source);
    registry.update(record, { status: MigrationStatus.postcopy });
    log.info({ attempt, source }, 'resuming post-copy migration');
    // Refused before libvirt is called (a version without resume, or one it crashes): no attempt will ever take.
    // A holder, not a let: the callback sets it behind TypeScript's back.
    const refused: { err: FeatureUnavailableError | null } = { err: null };
    const worker = dom.migrateToURI3(call.uri, call.params, flags).catch((err: unknown) => {
      if (err instanceof FeatureUnavailableError) refused.err = err;
      throw err;
    });
    // The ramp is over: post-copy sends each page once, downtime no longer applies.
    const outcome = await watchTransfer(deps, record, dom, control, worker, []);
    if (outcome === 'completed') {
      registry.update(record, { error: null });
      return 'completed';
    }
    if (refused.err) return stop(`post-copy recovery impossible on this host: ${refused.err.message}; the guest is split between the hosts, neither side was touched`);
    // Paused again, or the source is no longer paused for a resume: the next probe tells which.
  }
}

async function probe(dom: Domain): Promise<SourceProbe> {
  try {
    return { state: await dom.getState() };
  } catch (err) {
    return { errorCode: isVirError(err) ? err.code : VirErrorCode.INTERNAL_ERROR };
  }
}
