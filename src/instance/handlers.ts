// A guest's own life on this host, with Nova's compute RPC names: spawn
// (build_and_run_instance), hard reboot, terminate, rescue and unrescue.
// Every domain XML is written from the instance record the caller sends
// (nova/guest-definition.ts, domain/guest-xml.ts): nothing is kept on the
// host but the instance folder, so a rescued guest migrated elsewhere is
// unrescued there from its record. What a step made is removed when it fails.

import type { FerryConfig } from '../config/index.js';
import { guestXml, QEMU_TCG_DIRTY_BITMAP_FIXED } from '../domain/guest-xml.js';
import type { HostStorage } from '../domain/host-storage.js';
import { findDomain } from '../domain/lookup.js';
import { tcpSerialPorts } from '../domain/serial-ports.js';
import { DomainState, JobType, type Connection, type Domain } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import { isIncomingHalf, pausedInPostcopy } from '../monitor/policy.js';
import { InstanceExists, InstanceInvalidState, InstanceNotFound, InstanceNotRescuable, InvalidInput } from '../nova/errors.js';
import { configDriveFiles } from '../nova/config-drive.js';
import { consoleListenAddress, type SerialConsolePorts } from '../nova/serial-console.js';
import { hasRescueDisk, INSTANCE_FILES, readGuestDefinition, RESCUE_FILES, type HostGuestSettings, type RescueBoot } from '../nova/guest-definition.js';
import type { MigrationNotifier } from '../nova/notifications.js';
import { readInstance, type InstanceRef } from '../nova/objects.js';
import type { MigrationRegistry } from '../record/registry.js';
import type { RequestContext } from '../rpc/types.js';
import type { CachedImage, ImageCache } from './images.js';

export interface InstanceDeps {
  config: FerryConfig;
  libvirt: Connection;
  storage: HostStorage;
  images: ImageCache;
  /** The host's serial console ports, shared with the destination side. */
  serialPorts: SerialConsolePorts;
  /** Migrations on this host: a guest migrating is neither rescued nor unrescued. */
  registry: MigrationRegistry;
  notifications: MigrationNotifier;
  log: Logger;
}

const GiB = 2 ** 30;
const POLL_MS = 250;

export class InstanceHandlers {
  /** QEMU's version on this host, once libvirt told it. */
  private qemuVersion: number | null = null;

  constructor(private readonly deps: InstanceDeps) {}

  /** build_and_run_instance: the instance folder, its root disk from the image, its config drive and kernel files, then the guest started (its serial console on a port of its own). */
  async buildAndRunInstance(ctx: RequestContext, raw: Record<string, unknown>): Promise<void> {
    const inst = readInstance(raw);
    await this.deps.notifications.around(ctx, 'create', inst, () => this.withConsolePort(null, (port) => this.build(raw, inst, port)));
  }

  private async build(raw: Record<string, unknown>, inst: InstanceRef, consolePort: number | null): Promise<void> {
    const { storage, images, libvirt, config } = this.deps;
    const def = await this.definition(raw, consolePort);
    const driveFiles = def.configDrive ? configDriveFiles(raw, def.interfaces) : null;
    if (await findDomain(libvirt, inst.uuid)) throw new InstanceExists(inst.name ?? inst.uuid);
    if (await storage.instanceDirExists(inst.uuid)) throw new InstanceExists(`${inst.name ?? inst.uuid} (its folder ${storage.instanceDir(inst.uuid)} is here)`);
    // Every image is looked up before anything is made.
    const root = typeof raw.image_ref === 'string' && raw.image_ref !== '' ? await images.find(raw.image_ref, 'instance.image_ref') : null;
    const kernel = def.boot.kind === 'kernel' ? await images.find(String(raw.kernel_id), 'instance.kernel_id') : null;
    const ramdisk = def.boot.kind === 'kernel' && def.boot.initrd ? await images.find(String(raw.ramdisk_id), 'instance.ramdisk_id') : null;
    await storage.createInstanceDir(inst.uuid);
    try {
      const [rootDisk] = def.disks;
      if (rootDisk && root) await this.createImageDisk(rootDisk.path, root, (inst.rootGb ?? 0) * GiB);
      else if (rootDisk) await storage.createEmptyDisk(rootDisk.path, 'qcow2', (inst.rootGb ?? 0) * GiB);
      if (def.configDrive && driveFiles) await storage.createConfigDrive(def.configDrive, driveFiles, config.mkisofs_cmd);
      if (def.boot.kind === 'kernel' && kernel) await storage.copyNewFile(kernel.path, def.boot.kernel);
      if (def.boot.kind === 'kernel' && def.boot.initrd && ramdisk) await storage.copyNewFile(ramdisk.path, def.boot.initrd);
      const dom = await libvirt.defineXML(guestXml(def));
      try {
        await dom.create();
      } catch (err) {
        await dom.undefine().catch(() => undefined);
        throw err;
      }
    } catch (err) {
      // The folder is this call's own: made above, for this instance.
      await storage.removeInstanceDir(inst.uuid);
      throw err;
    }
  }

  /** reboot_instance, HARD: the guest powered off and booted again from its record, disks kept. */
  async rebootInstance(ctx: RequestContext, raw: Record<string, unknown>, rebootType: string): Promise<void> {
    const inst = readInstance(raw);
    await this.deps.notifications.around(ctx, 'reboot', inst, async () => {
      if (rebootType !== 'HARD') throw new InvalidInput(`reboot_type: '${rebootType}'; ferry reboots HARD only`);
      const dom = await this.ownDomain(inst, 'reboot');
      if (await hasRescueDisk(this.deps.storage, inst.uuid)) throw new InstanceInvalidState(inst.uuid, 'vm_state', 'rescued', 'reboot');
      await this.bootFromRecord(dom, raw);
    });
  }

  /** terminate_instance: the guest stopped and undefined, its folder removed unless `keepDisks`. */
  async terminateInstance(ctx: RequestContext, raw: Record<string, unknown>, keepDisks: boolean): Promise<void> {
    const { storage, log } = this.deps;
    const inst = readInstance(raw);
    await this.deps.notifications.around(ctx, 'delete', inst, async () => {
      const dom = await this.ownDomain(inst, 'delete');
      if (await dom.isActive()) await dom.destroy();
      await dom.undefine();
      // The guest was defined here: its folder is this host's copy of its disks.
      if (!keepDisks) await storage.removeInstanceDir(inst.uuid);
      else log.info({ instance: inst.uuid }, 'instance terminated; its folder kept as asked');
    });
  }

  /**
   * rescue_instance: the guest stopped (asked to power off first when
   * `cleanShutdown`, for at most shutdown_timeout), then booted from
   * disk.rescue, a copy of the rescue image, with its root disk second. The
   * rescue image's kernel and ramdisk, when it names them, boot it.
   */
  async rescueInstance(ctx: RequestContext, raw: Record<string, unknown>, rescueImageRef: string | null, cleanShutdown: boolean): Promise<void> {
    const { storage, images, notifications, log } = this.deps;
    const inst = readInstance(raw);
    await notifications.around(ctx, 'rescue', inst, async () => {
      const dom = await this.ownDomain(inst, 'rescue');
      if (inst.vmState === 'rescued' || (await hasRescueDisk(this.deps.storage, inst.uuid))) throw new InstanceInvalidState(inst.uuid, 'vm_state', 'rescued', 'rescue');
      const imageRef = rescueImageRef ?? (typeof raw.image_ref === 'string' ? raw.image_ref : '');
      const image = await images.find(imageRef, rescueImageRef ? 'rescue_image_ref' : 'instance.image_ref');
      const kernel = image.kernelId ? await images.find(image.kernelId, `kernel_id of image ${image.id}`) : null;
      const ramdisk = image.ramdiskId ? await images.find(image.ramdiskId, `ramdisk_id of image ${image.id}`) : null;
      const rescue: RescueBoot = { kernel: kernel !== null, ramdisk: ramdisk !== null, cmdline: image.osCommandLine };
      await this.withConsolePort(dom, async (port) => {
        const def = await this.definition(raw, port, rescue);
        await this.powerOff(dom, cleanShutdown);
        const file = (name: string) => `${storage.instanceDir(inst.uuid)}/${name}`;
        try {
          await this.createImageDisk(file(INSTANCE_FILES.rescueDisk), image, 0);
          if (kernel) await storage.copyNewFile(kernel.path, file(INSTANCE_FILES.rescueKernel));
          if (ramdisk) await storage.copyNewFile(ramdisk.path, file(INSTANCE_FILES.rescueRamdisk));
          await this.deps.libvirt.defineXML(guestXml(def));
          await dom.create();
        } catch (err) {
          log.error({ err, instance: inst.uuid }, 'rescue failed: booting the guest as it was');
          await this.removeRescueFiles(inst);
          await this.bootFromRecord(dom, raw).catch((e: unknown) => log.error({ err: e, instance: inst.uuid }, 'the guest did not boot again after the failed rescue'));
          throw new InstanceNotRescuable(inst.uuid, err instanceof Error ? err.message : String(err));
        }
      });
    });
  }

  /** unrescue_instance: a hard reboot from the record, then the rescue files removed. */
  async unrescueInstance(ctx: RequestContext, raw: Record<string, unknown>): Promise<void> {
    const inst = readInstance(raw);
    await this.deps.notifications.around(ctx, 'unrescue', inst, async () => {
      const dom = await this.ownDomain(inst, 'unrescue');
      if (!(await hasRescueDisk(this.deps.storage, inst.uuid))) throw new InstanceInvalidState(inst.uuid, 'vm_state', inst.vmState ?? 'active', 'unrescue');
      await this.bootFromRecord(dom, raw);
      await this.removeRescueFiles(inst);
    });
  }

  /** The guest's definition on this host, its serial console (when enabled here) on `consolePort`. */
  private async definition(raw: Record<string, unknown>, consolePort: number | null, rescue?: RescueBoot) {
    const { config, storage, libvirt } = this.deps;
    const virtType = config.libvirt.virt_type;
    this.qemuVersion ??= await libvirt.getVersion();
    const host: HostGuestSettings = {
      instanceDir: storage.instanceDir(readInstance(raw).uuid),
      virtType,
      cpuModel: config.libvirt.cpu_models[0] ?? null,
      vncListen: config.vnc.server_listen,
      serialConsole: consolePort === null ? null : { host: consoleListenAddress(this.deps.config), port: consolePort },
      tcgRamWorkaround: virtType === 'qemu' && this.qemuVersion < QEMU_TCG_DIRTY_BITMAP_FIXED,
    };
    return readGuestDefinition(raw, host, rescue);
  }

  /**
   * The guest's domain on this host, not migrating either way; `method`
   * names the refused action. An incoming guest, or one split in post-copy,
   * is never touched: its other half may be the one that runs.
   */
  private async ownDomain(inst: InstanceRef, method: string): Promise<Domain> {
    const migrating = () => new InstanceInvalidState(inst.uuid, 'task_state', 'migrating', method);
    if (this.deps.registry.active(inst.uuid)) throw migrating();
    const dom = await findDomain(this.deps.libvirt, inst.uuid);
    if (!dom) throw new InstanceNotFound(inst.uuid);
    const state = await dom.getState();
    const job = await dom.getJobStats().catch(() => ({ type: JobType.NONE }));
    if (isIncomingHalf(state) || pausedInPostcopy(state) || job.type === JobType.BOUNDED || job.type === JobType.UNBOUNDED) throw migrating();
    return dom;
  }

  private async removeRescueFiles(inst: InstanceRef): Promise<void> {
    const dir = this.deps.storage.instanceDir(inst.uuid);
    for (const f of RESCUE_FILES) await this.deps.storage.removeFile(`${dir}/${f}`);
  }

  /** Off, defined again from the record, started. */
  private async bootFromRecord(dom: Domain, raw: Record<string, unknown>): Promise<void> {
    await this.withConsolePort(dom, async (port) => {
      const xml = guestXml(await this.definition(raw, port));
      if (await dom.isActive()) await dom.destroy();
      await this.deps.libvirt.defineXML(xml);
      await dom.create();
    });
  }

  /**
   * Runs `use` with the guest's serial console port: null when serial
   * consoles are off here, else the port `dom` (the guest as it is) has, so
   * a console keeps its port across reboots, or a free one.
   */
  private async withConsolePort<T>(dom: Domain | null, use: (port: number | null) => Promise<T>): Promise<T> {
    if (!this.deps.config.serial_console.enabled) return use(null);
    const [kept] = dom ? tcpSerialPorts(await dom.getXMLDesc()) : [];
    return kept !== undefined ? use(kept) : this.deps.serialPorts.withFreePort(consoleListenAddress(this.deps.config), use);
  }

  /** A disk made from an image: a qcow2 overlay on its base in _base (use_cow_images), else a flat copy. */
  private async createImageDisk(path: string, image: CachedImage, minBytes: number): Promise<void> {
    const { storage, config } = this.deps;
    if (!config.use_cow_images) return storage.createDiskFromImage(path, image.path, image.diskFormat, minBytes);
    const base = await storage.ensureBaseImage(image.id, image.path, image.diskFormat, config.force_raw_images);
    await storage.createOverlay(path, base, minBytes);
  }

  private async powerOff(dom: Domain, clean: boolean): Promise<void> {
    if (!(await dom.isActive())) return;
    if (clean) {
      await dom.shutdown();
      for (const deadline = Date.now() + this.deps.config.shutdown_timeout * 1000; Date.now() < deadline; await sleep(POLL_MS)) {
        if ((await dom.getState()).state === DomainState.SHUTOFF) return;
      }
      this.deps.log.warn({ timeout_s: this.deps.config.shutdown_timeout }, 'the guest did not power off in time; stopping it');
    }
    if (await dom.isActive()) await dom.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
