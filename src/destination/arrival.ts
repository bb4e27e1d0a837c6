// Nova's post_live_migration_at_destination. libvirt has already defined the
// guest here persistently (VIR_MIGRATE_PERSIST_DEST); this confirms the
// domain exists and logs the state it arrived in.

import { DomainState } from '../libvirt/types.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';

export async function postLiveMigrationAtDestination(deps: DestinationDeps, ctx: RequestContext, instance: InstanceRef): Promise<null> {
  return deps.notifications.around(ctx, 'live_migration_post_dest', instance, async () => {
    const dom = await deps.libvirt.lookupByUUID(instance.uuid);
    const { state } = await dom.getState();
    deps.log.info({ instance: instance.uuid, state: DomainState[state] }, 'instance arrived');
    return null;
  });
}
