// Nova's post_live_migration_at_destination. libvirt has already defined the
// guest here persistently (VIR_MIGRATE_PERSIST_DEST); this confirms the
// domain exists, logs the state it arrived in, and from then on the guest's
// folder is no longer this migration's to roll back.

import { DomainState } from '../libvirt/types.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';
import type { Preparations } from './preparations.js';

export async function postLiveMigrationAtDestination(deps: DestinationDeps, preparations: Preparations, ctx: RequestContext, instance: InstanceRef): Promise<null> {
  return deps.notifications.around(ctx, 'live_migration_post_dest', instance, async () => {
    const dom = await deps.libvirt.lookupByUUID(instance.uuid);
    if (preparations.forget(instance.uuid)) deps.onIncomingEnd?.('completed');
    // Its domain names the console ports now.
    deps.serialPorts.release(instance.uuid);
    const { state } = await dom.getState();
    deps.log.info({ state: DomainState[state] }, 'instance arrived');
    return null;
  });
}
