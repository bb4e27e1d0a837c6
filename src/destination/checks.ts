// Nova's check_can_live_migrate_destination: what this host offers (room,
// guest types, CPU models, a probe for shared storage), then the source's
// own check over RPC.

import { hostArch, supportedGuests, usableCpuModels } from '../domain/facts.js';
import { MigrationPreCheckError, rescuedNotMigratable } from '../nova/errors.js';
import { diskName, type DiskCopy, type InstanceDiskInfo, type LiveMigrateData } from '../nova/migrate-data.js';
import { instanceArg, type InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import { describeBacking, missingBacking } from './backing.js';
import type { DestinationDeps } from './deps.js';

const MiB = 1024 * 1024;

/** Errors of the source's check that Nova passes on as they are; anything else becomes MigrationPreCheckError. */
const SOURCE_CHECK_ERRORS = ['InvalidSharedStorage', 'InvalidLocalStorage', 'MigrationPreCheckError', 'InstanceNotFound'];

export async function checkCanLiveMigrateDestination(
  deps: DestinationDeps,
  ctx: RequestContext,
  instance: InstanceRef,
  blockMigration: boolean | null,
  diskOverCommit: boolean | null,
): Promise<LiveMigrateData> {
  const { libvirt, storage, computeApi } = deps;
  if (instance.host === deps.host) {
    throw new MigrationPreCheckError(`instance ${instance.uuid} already runs on destination host ${deps.host}`);
  }
  const caps = await libvirt.getCapabilities();
  const probe = await storage.writeProbe();
  try {
    const destCheckData: LiveMigrateData = {
      filename: probe,
      image_type: 'default',
      block_migration: blockMigration,
      disk_over_commit: diskOverCommit,
      disk_available_mb: Math.floor((await storage.freeBytes()) / MiB),
      // The source writes them into the guest's XML: QEMU here cannot listen on the source's addresses.
      graphics_listen_addr_vnc: deps.config.vnc.server_listen,
      graphics_listen_addr_spice: deps.config.spice.server_listen,
      serial_listen_addr: deps.config.serial_console.proxyclient_address,
      dst_supports_live_migrate_rescued: deps.config.compute.live_migrate_rescued,
      dst_supported_guests: supportedGuests(caps),
      dst_cpu_models: await cpuModels(deps, caps),
    };
    const source = instance.host;
    if (!source) throw new MigrationPreCheckError(`instance ${instance.uuid} has no source host`);
    const rescuedRefusal = rescuedNotMigratable('destination', deps.host);
    if (instance.vmState === 'rescued' && !deps.config.compute.live_migrate_rescued) throw rescuedRefusal;
    let checked: LiveMigrateData;
    try {
      checked = await computeApi.checkCanLiveMigrateSource(ctx, source, instanceArg(instance), destCheckData);
    } catch (err) {
      if (err instanceof Error && SOURCE_CHECK_ERRORS.includes(err.name)) throw err;
      throw new MigrationPreCheckError(`source check failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (checked.instance_rescued && !deps.config.compute.live_migrate_rescued) throw rescuedRefusal;
    return checked.block_migration ? { ...checked, disk_copy: await diskCopy(deps, instance.uuid, checked.src_disks ?? []) } : checked;
  } finally {
    await storage.removeProbe(probe);
  }
}

/**
 * How block migration will copy each of the source's disks: the top layer
 * when this host has its whole backing chain, else whole (libvirt copies all
 * disks of a migration one way, so one whole copy makes them all whole), or
 * refused when whole copies are off here.
 */
async function diskCopy(deps: DestinationDeps, instanceUuid: string, disks: readonly InstanceDiskInfo[]): Promise<Record<string, DiskCopy>> {
  let mode: DiskCopy = 'top_layer';
  for (const d of disks) {
    const lacking = await missingBacking(deps.storage, d.backing_chain ?? []);
    if (!lacking) continue;
    if (!deps.config.libvirt.live_migration_allow_full_disk_copy) {
      throw new MigrationPreCheckError(
        `Unable to migrate ${instanceUuid}: disk ${diskName(d)} needs backing file ${describeBacking(lacking)}, which ${deps.host} does not have, and full disk copies are off (live_migration_allow_full_disk_copy)`,
      );
    }
    deps.log.info({ disk: diskName(d), backing: lacking.path }, 'a backing file is missing here: the disks will be copied whole');
    mode = 'full';
    break;
  }
  return Object.fromEntries(disks.map((d) => [diskName(d), mode]));
}

/** Usable custom CPU models for each virt type of this host's own arch (other arches are emulated anyway). */
async function cpuModels(deps: Pick<DestinationDeps, 'libvirt' | 'log'>, caps: string): Promise<Record<string, string[]>> {
  const arch = hostArch(caps);
  const out: Record<string, string[]> = {};
  for (const guest of supportedGuests(caps).filter((g) => g.startsWith(`${arch}/`))) {
    const virtType = guest.slice(guest.indexOf('/') + 1);
    try {
      out[guest] = usableCpuModels(await deps.libvirt.getDomainCapabilities({ arch, virtType }));
    } catch (err) {
      deps.log.warn({ err, guest }, 'no domain capabilities; CPU model not checked for it');
    }
  }
  return out;
}
