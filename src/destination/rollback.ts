// Nova's rollback_live_migration_at_destination: remove what this host's
// pre_live_migration made for the instance, and nothing else. What to remove
// is this host's own record, never the caller's word (destroy_disks,
// migrate_data): a call with missing or wrong arguments cannot delete a
// guest's disks. A guest that runs here, or holds half its memory here in
// post-copy, is never touched.

import { findDomain } from '../domain/lookup.js';
import { DomainState, isVirError, VirErrorCode } from '../libvirt/types.js';
import { isIncomingHalf } from '../monitor/policy.js';
import { MigrationPreCheckError } from '../nova/errors.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';
import type { Preparations } from './preparations.js';

export async function rollbackLiveMigrationAtDestination(
  deps: DestinationDeps,
  preparations: Preparations,
  ctx: RequestContext,
  instance: InstanceRef,
): Promise<null> {
  const { storage, log, notifications } = deps;
  return notifications.around(ctx, 'live_migration_rollback_dest', instance, async () => {
    const dom = await findDomain(deps.libvirt, instance.uuid);
    if (dom) {
      const state = await dom.getState();
      if (!isIncomingHalf(state)) {
        log.error({ state: DomainState[state.state], reason: state.reason }, 'rollback refused: the guest lives on this host');
        throw new MigrationPreCheckError(`instance ${instance.uuid} is ${DomainState[state.state]?.toLowerCase()} on ${deps.host}; not rolled back`);
      }
      await ignoreGone(dom.destroy());
      await ignoreGone(dom.undefine());
    }
    if (preparations.madeDir(instance.uuid)) await storage.removeInstanceDir(instance.uuid);
    else log.info('rollback: this host made no instance folder for the migration; nothing removed');
    // The taps went with the incoming domain; the bridges were the host's before and stay.
    const ports = preparations.ports(instance.uuid);
    if (ports.length > 0) log.info({ ports }, 'rollback: ports unplugged (their taps went with the incoming guest; the bridges stay)');
    if (preparations.forget(instance.uuid)) deps.onIncomingEnd?.('rolled_back');
    deps.serialPorts.release(instance.uuid);
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
