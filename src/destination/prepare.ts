// Nova's pre_live_migration: the ports' bindings checked (ports.ts), the
// instance folder, empty disks for a block migration or an upload to fill, and the volumes
// found on this host. What it made is removed again if any step fails.

import { isBlockDevice } from '../domain/host-storage.js';
import { DestinationDiskExists, InvalidInput, MigrationPreCheckError } from '../nova/errors.js';
import { consoleListenAddress, SERIAL_PORTS_PER_GUEST } from '../nova/serial-console.js';
import { diskName, type InstanceDiskInfo, type LiveMigrateData, type MigrateBdmInfo } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import { isDirectlyInside } from '../validate/path.js';
import { backingImage, describeBacking, missingBacking } from './backing.js';
import type { DestinationDeps } from './deps.js';
import { plugPorts } from './ports.js';
import type { Preparations } from './preparations.js';

export async function preLiveMigration(
  deps: DestinationDeps,
  preparations: Preparations,
  ctx: RequestContext,
  instance: InstanceRef,
  disks: InstanceDiskInfo[],
  migrateData: LiveMigrateData,
): Promise<LiveMigrateData> {
  const { storage, notifications, config } = deps;
  return notifications.around(ctx, 'live_migration_pre', instance, async () => {
    // First: a port this host cannot serve refuses the migration with nothing made.
    const plugged = await plugPorts(deps.host, deps.network, migrateData.vifs ?? []);
    const createdDir = !migrateData.is_shared_instance_path;
    if (createdDir) {
      if (await storage.instanceDirExists(instance.uuid)) throw new DestinationDiskExists(storage.instanceDir(instance.uuid));
      await storage.createInstanceDir(instance.uuid);
    }
    try {
      // Ports of this host for the guest's serial consoles, by serial port (Nova's serial_listen_ports): its own may be taken here.
      const consolePorts = config.serial_console.enabled ? await deps.serialPorts.holdFor(instance.uuid, consoleListenAddress(config), SERIAL_PORTS_PER_GUEST) : null;
      // The disks go in the folder made here; on a shared instance path they are there already.
      // Without block migration the source lists only the files it uploads (a kernel-boot guest's kernel files).
      if (createdDir) {
        for (const disk of disks) {
          assertInInstanceDir(storage.instanceDir(instance.uuid), disk.path);
          // The top layer only comes: the overlay needs the whole chain here, checked again now.
          const chain = disk.backing_chain ?? [];
          const lacking = await missingBacking(storage, chain);
          if (lacking) throw new MigrationPreCheckError(`disk ${diskName(disk)}: backing file ${describeBacking(lacking)} is not on ${deps.host}`);
          const [backing] = chain;
          await storage.createEmptyDisk(disk.path, disk.type, disk.virt_disk_size, backing && backingImage(backing));
        }
      }
      const bdms = await connectVolumes(deps.host, instance);
      // A folder this host did not make (shared instance path) must never count as made here, even from an earlier migration.
      preparations.note(instance.uuid, instance.host, createdDir, plugged.map((p) => p.port_id));
      if (plugged.length > 0) deps.log.info({ ports: plugged }, 'ports plugged for the incoming migration');
      return {
        ...migrateData,
        bdms,
        target_connect_addr: config.libvirt.live_migration_inbound_addr ?? null,
        wait_for_vif_plugged: false,
        plugged_vifs: plugged,
        ...(consolePorts ? { serial_listen_ports: consolePorts } : {}),
      };
    } catch (err) {
      if (createdDir) await storage.removeInstanceDir(instance.uuid);
      deps.serialPorts.release(instance.uuid);
      throw err;
    }
  });
}

/** Block volumes are attached to both hosts (iSCSI/RBD-like): connecting means finding the device here. */
async function connectVolumes(host: string, instance: InstanceRef): Promise<MigrateBdmInfo[]> {
  const bdms: MigrateBdmInfo[] = [];
  for (const v of instance.volumes) {
    if (!v.devicePath || !(await isBlockDevice(v.devicePath))) {
      throw new MigrationPreCheckError(`volume ${v.volumeId ?? v.dev}: block device ${v.devicePath ?? '(none)'} not present on ${host}`);
    }
    bdms.push({ serial: v.serial ?? v.dev, dev: v.dev, type: 'disk', connection_info_json: JSON.stringify(v.connectionInfo) });
  }
  return bdms;
}

/** A disk path from the source must name a file directly inside the instance folder, nowhere else. */
function assertInInstanceDir(instanceDir: string, path: string): void {
  if (!isDirectlyInside(instanceDir, path)) throw new InvalidInput(`disk path ${path} is not inside the instance folder ${instanceDir}`);
}
