// Nova's check_can_live_migrate_source: shared storage detection, the
// impossible storage combinations, room on the destination, and whether the
// destination can run this guest at all.

import { guestCpu, guestFacts } from '../domain/facts.js';
import { selectMigrateDisks } from '../domain/disks.js';
import { XmlFlag, type Domain } from '../libvirt/types.js';
import { InvalidLocalStorage, InvalidSharedStorage, MigrationPreCheckError, rescuedNotMigratable } from '../nova/errors.js';
import type { InstanceDiskInfo, LiveMigrateData } from '../nova/migrate-data.js';
import { hasRescueDisk } from '../nova/guest-definition.js';
import type { InstanceRef } from '../nova/objects.js';
import type { SourceDeps } from './deps.js';
import { diskInfoArg } from './plan.js';

const MiB = 1024 * 1024;

export async function checkCanLiveMigrateSource(
  deps: Pick<SourceDeps, 'storage' | 'host' | 'config'>,
  dom: Domain,
  instance: InstanceRef,
  destCheck: LiveMigrateData,
): Promise<LiveMigrateData> {
  const { storage } = deps;
  const xml = await dom.getXMLDesc(XmlFlag.MIGRATABLE);
  assertGuestSupported(xml, destCheck);
  const rescued = await isRescued(storage, instance);
  const supportsRescued = deps.config.compute.live_migrate_rescued;
  if (rescued && !supportsRescued) throw rescuedNotMigratable('source', deps.host);
  if (rescued && destCheck.dst_supports_live_migrate_rescued !== true) throw rescuedNotMigratable('destination', 'the destination (its check did not say it can)');
  const isSharedInstancePath = destCheck.filename ? await storage.probeVisible(destCheck.filename) : false;
  const local = selectMigrateDisks(xml, instance.volumes.map((v) => v.dev));
  const isVolumeBacked = local.devs.length === 0;
  const isSharedBlockStorage = isVolumeBacked || isSharedInstancePath;
  const blockMigration = destCheck.block_migration ?? !isSharedBlockStorage;
  const where = storage.instanceDir(instance.uuid);
  if (blockMigration && isSharedBlockStorage) {
    throw new InvalidLocalStorage(where, 'Block migration can not be used with shared storage.');
  }
  if (!blockMigration && !isSharedBlockStorage) {
    throw new InvalidSharedStorage(
      where,
      'Shared storage live-migration requires either shared storage or boot-from-volume with no local disks.',
    );
  }
  let srcDisks: InstanceDiskInfo[] | undefined;
  if (blockMigration) {
    const disks = await Promise.all(local.devs.map((dev, i) => storage.describeDisk(dev, local.paths[i] ?? '')));
    // The destination's check decides, from these chains, how each disk is copied.
    srcDisks = disks.map((d) => diskInfoArg(d, true));
    const needed = disks.reduce((sum, d) => sum + (destCheck.disk_over_commit ? d.actualSize : d.virtualSize), 0);
    const availableMb = destCheck.disk_available_mb ?? 0;
    if (needed > availableMb * MiB) {
      throw new MigrationPreCheckError(
        `Unable to migrate ${instance.uuid}: Disk of instance is too large (available on destination host: ${availableMb} MiB < need: ${Math.ceil(needed / MiB)} MiB)`,
      );
    }
  }
  return {
    ...destCheck,
    block_migration: blockMigration,
    is_shared_instance_path: isSharedInstancePath,
    is_shared_block_storage: isSharedBlockStorage,
    is_volume_backed: isVolumeBacked,
    instance_relative_path: instance.uuid,
    src_supports_live_migrate_rescued: supportsRescued,
    instance_rescued: rescued,
    ...(srcDisks ? { src_disks: srcDisks } : {}),
  };
}

/** A rescued guest: its record says so, or its folder holds a rescue disk. */
export async function isRescued(storage: SourceDeps['storage'], instance: InstanceRef): Promise<boolean> {
  return instance.vmState === 'rescued' || (await hasRescueDisk(storage, instance.uuid));
}

/** The destination's answer says which guests and CPU models it runs; refuse early what it cannot. */
function assertGuestSupported(xml: string, destCheck: LiveMigrateData): void {
  const supported = destCheck.dst_supported_guests;
  if (!supported) return;
  const { arch, virtType } = guestFacts(xml);
  const guest = `${arch}/${virtType}`;
  if (!supported.includes(guest)) {
    throw new MigrationPreCheckError(`destination cannot run ${arch} guests with virt type ${virtType} (supports ${supported.join(', ')})`);
  }
  const { model } = guestCpu(xml);
  const models = destCheck.dst_cpu_models?.[guest];
  if (model && models && !models.includes(model)) {
    throw new MigrationPreCheckError(`destination cannot run CPU model ${model} for ${guest}`);
  }
}
