// Migration statuses exactly as Nova writes them into the Migration object,
// and the one table of legal moves between them. The registry enforces it.

import type { TimeoutAction } from '../config/types.js';

export type { TimeoutAction };

export const MigrationStatus = {
  accepted: 'accepted',
  queued: 'queued',
  preparing: 'preparing',
  running: 'running',
  postcopy: 'running (post-copy)',
  /** Post-copy stopped half way (link broken, job paused): the guest's memory is split, it waits for a resume. */
  postcopyPaused: 'post-copy paused',
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
  error: 'error',
} as const;

export type MigrationStatus = (typeof MigrationStatus)[keyof typeof MigrationStatus];

const S = MigrationStatus;

/**
 * Where each status may go next. `accepted` is the conductor's status, the
 * one every record starts from; `error` is reachable from every unfinished
 * status because a failed clean-up must still end the migration. A final
 * status goes nowhere: the first outcome is the one reported.
 */
const NEXT: Readonly<Record<MigrationStatus, readonly MigrationStatus[]>> = {
  [S.accepted]: [S.queued, S.error],
  [S.queued]: [S.preparing, S.cancelled, S.error],
  [S.preparing]: [S.running, S.failed, S.cancelled, S.error],
  [S.running]: [S.postcopy, S.completed, S.failed, S.cancelled, S.error],
  // No cancel, no roll back once post-copy started: the destination already runs the guest.
  [S.postcopy]: [S.postcopyPaused, S.completed, S.error],
  // Nothing is rolled back while the memory is split: a resume, or a report.
  [S.postcopyPaused]: [S.postcopy, S.completed, S.error],
  [S.completed]: [],
  [S.failed]: [],
  [S.cancelled]: [],
  [S.error]: [],
};

export function canTransition(from: MigrationStatus, to: MigrationStatus): boolean {
  return NEXT[from].includes(to);
}

export function isFinal(status: MigrationStatus): boolean {
  return NEXT[status].length === 0;
}

/** The statuses a migration ends in. */
export const FINAL: readonly MigrationStatus[] = (Object.values(S) as MigrationStatus[]).filter(isFinal);

/** Statuses of a migration still under way, in the order they are passed. */
export const IN_PROGRESS: readonly MigrationStatus[] = [S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused];

/** Post-copy started: the destination runs the guest, so it can no longer be cancelled or paused. */
export function inPostcopy(status: MigrationStatus): boolean {
  return status === S.postcopy || status === S.postcopyPaused;
}

/** A status transition the table does not allow: a bug in the caller. */
export class IllegalTransition extends Error {
  constructor(
    readonly migration: string,
    readonly from: MigrationStatus,
    readonly to: MigrationStatus,
  ) {
    super(`migration ${migration}: illegal status change ${from} -> ${to}`);
    this.name = 'IllegalTransition';
  }
}
