// Migration statuses exactly as Nova writes them into the Migration object.

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

const FINAL: ReadonlySet<MigrationStatus> = new Set([
  MigrationStatus.completed,
  MigrationStatus.failed,
  MigrationStatus.cancelled,
  MigrationStatus.error,
]);

export function isFinal(status: MigrationStatus): boolean {
  return FINAL.has(status);
}

export type TimeoutAction = 'abort' | 'force_complete';
