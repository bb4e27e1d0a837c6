// Destination side of a live migration: the checks, the preparation of the
// instance folder, disks and volumes, and the finish or roll back.

import { DomainState, isVirError, VirErrorCode, type Domain } from '../libvirt/types.js';
import type { RequestContext } from '../rpc/types.js';
import type { ComputeDeps } from '../source/deps.js';
import { hostArch, supportedGuests, usableCpuModels } from '../domain/facts.js';
import { DestinationDiskExists, InvalidInput, MigrationPreCheckError } from '../nova/errors.js';
import { isBlockDevice } from '../domain/host-storage.js';
import type { InstanceDiskInfo, LiveMigrateData, MigrateBdmInfo } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';

const MiB = 1024 * 1024;

export class DestinationHandlers {
  constructor(private readonly deps: ComputeDeps) {}

  /** Nova's check_can_live_migrate_destination: our checks, then the source's, via RPC. */
  async checkCanLiveMigrateDestination(
    ctx: RequestContext,
    instance: InstanceRef,
    blockMigration: boolean | null,
    diskOverCommit: boolean | null,
  ): Promise<LiveMigrateData> {
    const { libvirt, storage, computeApi } = this.deps;
    if (instance.host === this.deps.host) {
      throw new MigrationPreCheckError(`instance ${instance.uuid} already runs on destination host ${this.deps.host}`);
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
        graphics_listen_addr_vnc: null,
        graphics_listen_addr_spice: null,
        serial_listen_addr: null,
        dst_supported_guests: supportedGuests(caps),
        dst_cpu_models: await this.cpuModels(caps),
      };
      const source = instance.host;
      if (!source) throw new MigrationPreCheckError(`instance ${instance.uuid} has no source host`);
      try {
        return await computeApi.checkCanLiveMigrateSource(ctx, source, instanceArg(instance), destCheckData);
      } catch (err) {
        // Nova wraps everything the source says in MigrationPreCheckError, except its own check errors.
        if (err instanceof Error && ['InvalidSharedStorage', 'InvalidLocalStorage', 'MigrationPreCheckError', 'InstanceNotFound'].includes(err.name)) throw err;
        throw new MigrationPreCheckError(`source check failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    } finally {
      await storage.removeProbe(probe);
    }
  }

  /** Nova's pre_live_migration: instance folder, empty disks for block migration, volumes. */
  async preLiveMigration(
    ctx: RequestContext,
    instance: InstanceRef,
    disks: InstanceDiskInfo[],
    migrateData: LiveMigrateData,
  ): Promise<LiveMigrateData> {
    const { storage, notifications, config } = this.deps;
    return notifications.around(ctx, 'live_migration_pre', instance, async () => {
      const createdDir = !migrateData.is_shared_instance_path;
      if (createdDir) {
        if (await storage.instanceDirExists(instance.uuid)) throw new DestinationDiskExists(storage.instanceDir(instance.uuid));
        await storage.createInstanceDir(instance.uuid);
      }
      try {
        if (migrateData.block_migration && !migrateData.is_shared_instance_path) {
          for (const disk of disks) {
            this.assertInInstanceDir(instance.uuid, disk.path);
            await storage.createEmptyDisk(disk.path, disk.type, disk.virt_disk_size);
          }
        }
        const bdms = await this.connectVolumes(instance);
        return {
          ...migrateData,
          bdms,
          target_connect_addr: config.libvirt.live_migration_inbound_addr ?? null,
          serial_listen_addr: null,
          wait_for_vif_plugged: false,
        };
      } catch (err) {
        if (createdDir) await storage.removeInstanceDir(instance.uuid);
        throw err;
      }
    });
  }

  /** Nova's post_live_migration_at_destination: the guest must now run here, defined persistently. */
  async postLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return this.deps.notifications.around(ctx, 'live_migration_post_dest', instance, async () => {
      const dom = await this.deps.libvirt.lookupByUUID(instance.uuid);
      const { state } = await dom.getState();
      this.deps.log.info({ instance: instance.uuid, state: DomainState[state] }, 'instance arrived');
      return null;
    });
  }

  /** Nova's rollback_live_migration_at_destination: remove what pre_live_migration made. */
  async rollbackLiveMigrationAtDestination(
    ctx: RequestContext,
    instance: InstanceRef,
    destroyDisks: boolean,
    migrateData: LiveMigrateData,
  ): Promise<null> {
    const { storage, log, notifications } = this.deps;
    return notifications.around(ctx, 'live_migration_rollback_dest', instance, async () => {
      const dom = await this.lookup(instance.uuid);
      if (dom) {
        const { state } = await dom.getState();
        // A running guest here means the migration in fact finished: never destroy it.
        if (state === DomainState.RUNNING) {
          log.error({ instance: instance.uuid }, 'rollback refused: the instance is running on this host');
          throw new MigrationPreCheckError(`instance ${instance.uuid} is running on ${this.deps.host}; not rolled back`);
        }
        await ignoreNoDomain(dom.destroy());
        await ignoreNoDomain(dom.undefine());
      }
      // pre_live_migration made the folder unless the instance path is shared: take it away again.
      if (destroyDisks || !migrateData.is_shared_instance_path) await storage.removeInstanceDir(instance.uuid);
      return null;
    });
  }

  /** Usable custom CPU models for each virt type of this host's own arch (other arches are emulated anyway). */
  private async cpuModels(caps: string): Promise<Record<string, string[]>> {
    const arch = hostArch(caps);
    const out: Record<string, string[]> = {};
    for (const guest of supportedGuests(caps).filter((g) => g.startsWith(`${arch}/`))) {
      const virtType = guest.slice(guest.indexOf('/') + 1);
      try {
        out[guest] = usableCpuModels(await this.deps.libvirt.getDomainCapabilities({ arch, virtType }));
      } catch (err) {
        this.deps.log.warn({ err, guest }, 'no domain capabilities; CPU model not checked for it');
      }
    }
    return out;
  }

  private async lookup(uuid: string): Promise<Domain | null> {
    try {
      return await this.deps.libvirt.lookupByUUID(uuid);
    } catch (err) {
      if (isVirError(err) && err.code === VirErrorCode.NO_DOMAIN) return null;
      throw err;
    }
  }

  /** Block volumes are attached to both hosts (iSCSI/RBD-like): connecting means finding the device here. */
  private async connectVolumes(instance: InstanceRef): Promise<MigrateBdmInfo[]> {
    const bdms: MigrateBdmInfo[] = [];
    for (const v of instance.volumes) {
      if (!v.devicePath || !(await isBlockDevice(v.devicePath))) {
        throw new MigrationPreCheckError(`volume ${v.volumeId ?? v.dev}: block device ${v.devicePath ?? '(none)'} not present on ${this.deps.host}`);
      }
      bdms.push({ serial: v.serial ?? v.dev, dev: v.dev, type: 'disk', connection_info_json: JSON.stringify(v.connectionInfo) });
    }
    return bdms;
  }

  private assertInInstanceDir(uuid: string, path: string): void {
    const dir = this.deps.storage.instanceDir(uuid) + '/';
    if (!path.startsWith(dir) || path.includes('/../') || path.slice(dir.length).includes('/')) {
      throw new InvalidInput(`disk path ${path} is not inside the instance folder ${dir}`);
    }
  }
}

async function ignoreNoDomain(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!(isVirError(err) && (err.code === VirErrorCode.NO_DOMAIN || err.code === VirErrorCode.OPERATION_INVALID))) throw err;
  }
}

/** The instance as ferry passes it between hosts: plain JSON with the fields ferry reads. */
export function instanceArg(i: InstanceRef): Record<string, unknown> {
  return {
    uuid: i.uuid,
    name: i.name,
    host: i.host,
    node: i.node,
    vm_state: i.vmState,
    task_state: i.taskState,
    flavor: { memory_mb: i.memoryMb, vcpus: i.vcpus, root_gb: i.rootGb },
    block_device_mappings: i.volumes.map((v) => ({
      device_name: `/dev/${v.dev}`,
      destination_type: 'volume',
      volume_id: v.volumeId,
      connection_info: v.connectionInfo,
    })),
  };
}
