// Nova's rollback_live_migration_at_destination: remove what
// pre_live_migration made, but never a guest that is running here.

import { findDomain } from '../domain/lookup.js';
import { DomainState, isVirError, VirErrorCode } from '../libvirt/types.js';
import { MigrationPreCheckError } from '../nova/errors.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';

export async function rollbackLiveMigrationAtDestination(
  deps: DestinationDeps,
  ctx: RequestContext,
  instance: InstanceRef,
  destroyDisks: boolean,
  migrateData: LiveMigrateData,
): Promise<null> {
  const { storage, log, notifications } = deps;
  return notifications.around(ctx, 'live_migration_rollback_dest', instance, async () => {
    const dom = await findDomain(deps.libvirt, instance.uuid);
    if (dom) {
      const { state } = await dom.getState();
      // A running guest here means the migration in fact finished: never destroy it.
      if (state === DomainState.RUNNING) {
        log.error({ instance: instance.uuid }, 'rollback refused: the instance is running on this host');
        throw new MigrationPreCheckError(`instance ${instance.uuid} is running on ${deps.host}; not rolled back`);
      }
      await ignoreGone(dom.destroy());
      await ignoreGone(dom.undefine());
    }
    // pre_live_migration made the folder unless the instance path is shared: take it away again.
    if (destroyDisks || !migrateData.is_shared_instance_path) await storage.removeInstanceDir(instance.uuid);
    return null;
  });
}

/** The domain went away (or stopped) meanwhile: what we wanted anyway. */
async function ignoreGone(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!(isVirError(err) && (err.code === VirErrorCode.NO_DOMAIN || err.code === VirErrorCode.OPERATION_INVALID))) throw err;
  }
}
