// A guest's definition read from its Nova instance record: what ferry needs
// to write its domain XML (domain/guest-xml.ts) on whichever host holds the
// record and the instance folder. Nova's layout of that folder: `disk` (the
// root disk), `disk.config`, `kernel` and `ramdisk` for a kernel boot; in
// rescue `disk.rescue`, `kernel.rescue` and `ramdisk.rescue`. A field that
// cannot be used is refused as InvalidInput naming it.

import type { GuestDefinition, GuestDisk } from '../domain/guest-xml.js';
import type { HostStorage } from '../domain/host-storage.js';
import type { DestinationInterface } from '../domain/destination-xml.js';
import { isPlainObject } from '../rpc/args.js';
import { isInterfaceName, isMacAddress } from '../validate/netdev.js';
import { InvalidInput } from './errors.js';
import { readInstance } from './objects.js';

/** Nova's names for the files of the instance folder. */
export const INSTANCE_FILES = {
  root: 'disk',
  configDrive: 'disk.config',
  kernel: 'kernel',
  ramdisk: 'ramdisk',
  console: 'console.log',
  rescueDisk: 'disk.rescue',
  rescueKernel: 'kernel.rescue',
  rescueRamdisk: 'ramdisk.rescue',
} as const;

/** What a rescue adds to the folder, and an unrescue takes away. */
export const RESCUE_FILES: readonly string[] = [INSTANCE_FILES.rescueDisk, INSTANCE_FILES.rescueKernel, INSTANCE_FILES.rescueRamdisk];

/** The kernel files a kernel-boot guest keeps in its folder, its rescue boot's too. */
export const BOOT_FILES: readonly string[] = [INSTANCE_FILES.kernel, INSTANCE_FILES.ramdisk, INSTANCE_FILES.rescueKernel, INSTANCE_FILES.rescueRamdisk];

/** Whether the instance folder holds a rescue disk: the one thing a rescue leaves on the host, carried by a migration. */
export function hasRescueDisk(storage: Pick<HostStorage, 'instanceDir' | 'fileExists'>, uuid: string): Promise<boolean> {
  return storage.fileExists(`${storage.instanceDir(uuid)}/${INSTANCE_FILES.rescueDisk}`);
}

/** Nova's kernel command line when the image names none (libvirt driver: root disk and both consoles). */
export const DEFAULT_CMDLINE = 'root=/dev/vda console=tty0 console=ttyS0';

/** What the host adds to the record: where the instance folder is, and its hypervisor settings. */
export interface HostGuestSettings {
  instanceDir: string;
  virtType: 'kvm' | 'qemu';
  cpuModel: string | null;
  vncListen: string | null;
  /** The guest's TCP serial console, when serial consoles are enabled here (its port chosen by the caller). */
  serialConsole: { host: string; port: number } | null;
  /** The hypervisor is QEMU < 9.0 and the guests run under TCG: their RAM block is padded (guest-xml.ts). */
  tcgRamWorkaround: boolean;
}

/** A rescue boot: from disk.rescue, the original root disk second; the rescue image's kernel and ramdisk when it has them. */
export interface RescueBoot {
  kernel: boolean;
  ramdisk: boolean;
  cmdline: string | null;
}

type Obj = Record<string, unknown>;

/**
 * The definition of the instance `raw` (an unwrapped Nova Instance), normal
 * or, with `rescue`, as Nova's rescue boots it.
 *
 *   readGuestDefinition({ uuid, name: 'instance-0000002a', flavor: { memory_mb: 256, vcpus: 1 },
 *                         image_ref: 'img', kernel_id: 'k', ramdisk_id: 'r' }, host)
 *   // boot: { kind: 'kernel', kernel: '<dir>/kernel', initrd: '<dir>/ramdisk', cmdline: DEFAULT_CMDLINE },
 *   // disks: [{ dev: 'vda', path: '<dir>/disk', format: 'qcow2' }]
 */
export function readGuestDefinition(raw: unknown, host: HostGuestSettings, rescue?: RescueBoot): GuestDefinition {
  const inst = (isPlainObject(raw) ? raw : {}) as Obj;
  const ref = readInstance(inst);
  const dir = host.instanceDir;
  const f = (name: string) => `${dir}/${name}`;
  const name = typeof inst.name === 'string' ? inst.name : `instance-${ref.uuid}`;
  if (!/^[A-Za-z0-9_.-]{1,255}$/.test(name)) throw new InvalidInput(`instance.name: '${name}' is not a domain name (letters, digits, _ . -)`);
  const memoryMib = positive(ref.memoryMb, 'instance.flavor.memory_mb', 16);
  const vcpus = positive(ref.vcpus, 'instance.flavor.vcpus', 1);
  const sysmeta = (isPlainObject(inst.system_metadata) ? inst.system_metadata : {}) as Obj;
  const imageCmdline = typeof sysmeta.image_os_command_line === 'string' ? sysmeta.image_os_command_line : null;
  const hasRoot = nonEmpty(inst.image_ref) || (ref.rootGb ?? 0) > 0;
  const root: GuestDisk[] = hasRoot ? [{ dev: rescue ? 'vdb' : 'vda', path: f(INSTANCE_FILES.root), format: 'qcow2' }] : [];
  const normalBoot = nonEmpty(inst.kernel_id)
    ? { kind: 'kernel' as const, kernel: f(INSTANCE_FILES.kernel), initrd: nonEmpty(inst.ramdisk_id) ? f(INSTANCE_FILES.ramdisk) : null, cmdline: imageCmdline ?? DEFAULT_CMDLINE }
    : { kind: 'disk' as const };
  const boot = !rescue
    ? normalBoot
    : rescue.kernel
      ? { kind: 'kernel' as const, kernel: f(INSTANCE_FILES.rescueKernel), initrd: rescue.ramdisk ? f(INSTANCE_FILES.rescueRamdisk) : null, cmdline: rescue.cmdline ?? DEFAULT_CMDLINE }
      : // Nova's rescue keeps the instance's own kernel when the rescue image has none.
        normalBoot.kind === 'kernel'
        ? { ...normalBoot, cmdline: rescue.cmdline ?? normalBoot.cmdline }
        : normalBoot;
  return {
    uuid: ref.uuid,
    name,
    memoryMib,
    vcpus,
    virtType: host.virtType,
    cpuModel: host.cpuModel,
    boot,
    disks: rescue ? [{ dev: 'vda', path: f(INSTANCE_FILES.rescueDisk), format: 'qcow2' }, ...root] : root,
    configDrive: inst.config_drive === true || inst.config_drive === 'True' || inst.config_drive === 'true' ? f(INSTANCE_FILES.configDrive) : null,
    // A rescue boots the rescue disk and the root disk alone, as Nova's does.
    volumes: rescue
      ? []
      : ref.volumes.map((v, i) => {
          if (!v.devicePath) throw new InvalidInput(`instance.block_device_mappings[${i}].connection_info.data.device_path: required for volume ${v.volumeId ?? v.dev}`);
          return { dev: v.dev, path: v.devicePath, serial: v.serial ?? v.dev };
        }),
    interfaces: readNetworkInfo(inst),
    consoleLog: f(INSTANCE_FILES.console),
    serialConsole: host.serialConsole,
    vncListen: host.vncListen,
    tcgRamWorkaround: host.tcgRamWorkaround,
  };
}

function positive(v: number | null, field: string, min: number): number {
  if (v === null || !Number.isInteger(v) || v < min) throw new InvalidInput(`${field}: expected an integer >= ${min}, got ${v === null ? 'nothing' : String(v)}`);
  return v;
}

const nonEmpty = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** The interfaces of instance.info_cache.network_info (Nova's network model, a JSON string or the list). */
function readNetworkInfo(inst: Obj): DestinationInterface[] {
  const cache = (isPlainObject(inst.info_cache) ? inst.info_cache : {}) as Obj;
  let list: unknown = cache.network_info ?? [];
  if (typeof list === 'string') {
    try {
      list = JSON.parse(list);
    } catch {
      throw new InvalidInput('instance.info_cache.network_info: expected a JSON list, got malformed JSON');
    }
  }
  if (!Array.isArray(list)) throw new InvalidInput('instance.info_cache.network_info: expected a list');
  return list.map((raw, i) => {
    const field = `instance.info_cache.network_info[${i}]`;
    const vif = (isPlainObject(raw) ? raw : {}) as Obj;
    const details = (isPlainObject(vif.details) ? vif.details : {}) as Obj;
    const network = (isPlainObject(vif.network) ? vif.network : {}) as Obj;
    const meta = (isPlainObject(network.meta) ? network.meta : {}) as Obj;
    if (typeof vif.address !== 'string' || !isMacAddress(vif.address)) throw new InvalidInput(`${field}.address: expected a MAC address`);
    if (vif.type !== 'bridge' && vif.type !== 'ovs') throw new InvalidInput(`${field}.type: '${String(vif.type)}' is not one ferry plugs (bridge, ovs)`);
    const bridge = typeof details.bridge_name === 'string' ? details.bridge_name : network.bridge;
    if (typeof bridge !== 'string' || !isInterfaceName(bridge)) throw new InvalidInput(`${field}.details.bridge_name: expected a network device name`);
    // Open vSwitch names the port by its id (the virtualport's interfaceid).
    if (vif.type === 'ovs' && typeof vif.id !== 'string') throw new InvalidInput(`${field}.id: an ovs port needs its port id`);
    const mtu = typeof meta.mtu === 'number' && Number.isInteger(meta.mtu) && meta.mtu >= 68 && meta.mtu <= 65535 ? meta.mtu : null;
    return { mac: vif.address.toLowerCase(), vifType: vif.type, bridge, portId: typeof vif.id === 'string' ? vif.id : '', mtu };
  });
}
