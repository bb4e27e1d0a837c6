// Nova's _rollback_live_migration: the guest stays on this host (resumed if
// we paused it) and the destination removes what it prepared. Never once
// post-copy started: the destination has run the guest since.

import type { MigrationControl } from '../monitor/control.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import { instanceArg } from '../nova/objects.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import { MessagingTimeout } from '../rpc/errors.js';
import type { RequestContext } from '../rpc/types.js';
import type { SourceDeps } from './deps.js';
import type { LiveMigrationRequest } from './request.js';

/** Asks the destination to remove what it prepared (it removes only what it made itself). */
export function rollBackDestination(computeApi: SourceDeps['computeApi'], ctx: RequestContext, req: LiveMigrationRequest, prepared: LiveMigrateData): Promise<null> {
  const destroyDisks = !(prepared.is_shared_block_storage || prepared.is_shared_instance_path);
  return computeApi.rollbackLiveMigrationAtDestination(ctx, req.dest, instanceArg(req.instance), destroyDisks, prepared);
}

/**
 * Ends the migration in `status` (failed or cancelled), or in error when the
 * destination could not be cleaned. `prepared` is null when the destination
 * holds nothing to undo.
 */
export async function rollbackMigration(
  deps: Pick<SourceDeps, 'computeApi' | 'registry' | 'notifications' | 'log'>,
  ctx: RequestContext,
  record: MigrationRecord,
  control: MigrationControl | null,
  req: LiveMigrationRequest,
  prepared: LiveMigrateData | null,
  status: typeof MigrationStatus.failed | typeof MigrationStatus.cancelled,
): Promise<void> {
  const { computeApi, registry, notifications, log } = deps;
  if (record.status === MigrationStatus.postcopy) {
    // The guest ran on the destination and wrote to its disks there: nothing is rolled back on either side.
    const error = `post-copy failed and the source is not paused for a resume (${record.error ?? 'no error given'}); nothing rolled back: the guest's domains and files on both hosts are left for an operator`;
    log.error(error);
    registry.update(record, { status: MigrationStatus.error, error });
    return;
  }
  await control?.resumeIfPaused();
  let final: MigrationStatus = status;
  try {
    await notifications.around(ctx, 'live_migration_rollback', req.instance, async () => {
      if (prepared) await rollBackDestination(computeApi, ctx, req, prepared);
    });
  } catch (err) {
    log.error({ err, reason: record.error }, 'rollback on the destination failed');
    // Unreachable (its ferryd is down): the destination rolls back by itself when it is back (destination/reconcile.ts).
    // Refused: something there needs an operator.
    const unreachable = err instanceof MessagingTimeout;
    if (!unreachable) final = MigrationStatus.error;
    const why = unreachable ? `${req.dest} did not answer the rollback (${(err as Error).message}); it rolls back by itself when its ferryd is back` : `rollback failed: ${(err as Error).message}`;
    registry.update(record, { error: record.error ? `${record.error}; ${why}` : why });
  }
  registry.update(record, { status: final });
}
