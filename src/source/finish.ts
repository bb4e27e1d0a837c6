// Nova's _post_live_migration: the guest runs on the destination; finish it
// there, then clean this host.

import { instanceArg } from '../nova/objects.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import type { RequestContext } from '../rpc/types.js';
import type { SourceDeps } from './deps.js';
import type { LiveMigrationRequest } from './request.js';

export async function finishMigration(
  deps: Pick<SourceDeps, 'computeApi' | 'storage' | 'registry' | 'notifications' | 'log'>,
  ctx: RequestContext,
  record: MigrationRecord,
  req: LiveMigrationRequest,
  prepared: LiveMigrateData,
): Promise<void> {
  const { computeApi, storage, registry, notifications, log } = deps;
  await notifications.around(ctx, 'live_migration_post', req.instance, async () => {
    try {
      await computeApi.postLiveMigrationAtDestination(ctx, req.dest, instanceArg(req.instance), prepared.block_migration ?? false);
    } catch (err) {
      // The guest already runs on the destination; report but do not roll back.
      log.error({ err, migration: record.uuid }, 'post_live_migration_at_destination failed');
    }
    if (!prepared.is_shared_instance_path) await storage.removeInstanceDir(req.instance.uuid);
  });
  registry.update(record, { status: MigrationStatus.completed });
}
