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
  // No cancel once post-copy started: the destination already runs the guest.
  [S.postcopy]: [S.completed, S.failed, S.error],
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

/** Statuses of a migration still under way, in the order they are passed. */
export const IN_PROGRESS: readonly MigrationStatus[] = [S.queued, S.preparing, S.running, S.postcopy];

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
