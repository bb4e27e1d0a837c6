// A guest's libvirt domain XML built from what its instance record says
// (nova/guest-definition.ts reads it): nothing of it is kept on the host, so
// any host holding the record and the instance folder can define the guest
// again (a hard reboot, an unrescue after a migration). Deterministic: the
// same definition gives the same bytes.

import { parseXml, serializeXml, type XmlDocument } from './xml.js';
import type { DestinationInterface } from './destination-xml.js';

/** How the guest boots: from its first disk, or from a kernel and initrd in its instance folder. */
export type GuestBoot = { kind: 'disk' } | { kind: 'kernel'; kernel: string; initrd: string | null; cmdline: string };

export interface GuestDisk {
  /** Target dev, e.g. vda */
  dev: string;
  path: string;
  format: 'qcow2' | 'raw';
}

export interface GuestDefinition {
  uuid: string;
  /** libvirt's domain name (Nova's instance.name, e.g. instance-0000002a) */
  name: string;
  memoryMib: number;
  vcpus: number;
  /** libvirt domain type: kvm, or qemu (TCG) */
  virtType: 'kvm' | 'qemu';
  /** A CPU model to present (custom mode), or null for the hypervisor's default (host-model under kvm). */
  cpuModel: string | null;
  boot: GuestBoot;
  /** Local disks in the instance folder, in bus order. */
  disks: GuestDisk[];
  /** A read-only config drive (Nova's disk.config), or null. */
  configDrive: string | null;
  /** Block volumes: the device on this host and the <serial> (the volume id) the destination XML matches. */
  volumes: Array<{ dev: string; path: string; serial: string }>;
  interfaces: DestinationInterface[];
  /** The serial console's log (Nova's console.log in the instance folder). */
  consoleLog: string;
  /** A TCP serial console (Nova's serial console: raw TCP, the second serial port), or none. */
  serialConsole: { host: string; port: number } | null;
  /** A VNC server on this address, or none. */
  vncListen: string | null;
  /** Pad the RAM block for QEMU < 9.0 under TCG (tcgRamWorkaroundArgs); never under kvm. */
  tcgRamWorkaround: boolean;
}

/** The first QEMU with the TCG dirty-bitmap fix (03bfc2188f), in libvirt's version form. */
export const QEMU_TCG_DIRTY_BITMAP_FIXED = 9_000_000;

/**
 * QEMU before 9.0 under TCG loses guest stores after a migration dirty-bitmap
 * sync: the fast path of cpu_physical_memory_sync_dirty_bitmap() clears a
 * RAM block's dirty bits word by word but does not re-arm the vCPUs' TLB
 * entries, so later writes through cached entries are never marked dirty and
 * reach the destination stale: a migrated guest hangs or corrupts itself
 * (fixed upstream by 03bfc2188f, "physmem: Fix migration dirty bitmap
 * coherency with TCG memory access"). That path is taken only for a block
 * whose length is a multiple of 64 pages (256 KiB), and libvirt rounds guest
 * memory to whole MiB; so the guest's RAM comes from its own backend 64 KiB
 * longer than its memory, which makes QEMU take the per-page path. KVM never
 * takes either TCG path.
 *
 *     tcgRamWorkaroundArgs(256) -> ['-object', '{"qom-type":"memory-backend-ram","id":"ferry.ram","size":268500992}',
 *                                   '-machine', 'memory-backend=ferry.ram', '-m', '262208k']
 */
export function tcgRamWorkaroundArgs(memoryMib: number): string[] {
  const bytes = memoryMib * 2 ** 20 + 64 * 1024;
  return ['-object', JSON.stringify({ 'qom-type': 'memory-backend-ram', id: 'ferry.ram', size: bytes }), '-machine', 'memory-backend=ferry.ram', '-m', `${bytes / 1024}k`];
}

const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';

type Attrs = Record<string, string>;
interface XmlNode {
  name: string;
  attrs?: Attrs;
  children?: XmlNode[];
  text?: string;
}

const n = (name: string, attrs?: Attrs, children?: XmlNode[]): XmlNode => ({ name, ...(attrs ? { attrs } : {}), ...(children ? { children } : {}) });
const t = (name: string, text: string, attrs?: Attrs): XmlNode => ({ name, text, ...(attrs ? { attrs } : {}) });

/**
 * The domain XML of a definition.
 *
 *   guestXml({ name: 'instance-0000002a', memoryMib: 256, vcpus: 1, virtType: 'qemu', cpuModel: 'qemu64',
 *              boot: { kind: 'kernel', kernel: '/i/u/kernel', initrd: '/i/u/ramdisk', cmdline: 'console=ttyS0' }, ... })
 *   // <domain type="qemu"> ... <os><type arch="x86_64" machine="pc">hvm</type><kernel>/i/u/kernel</kernel> ...
 */
export function guestXml(d: GuestDefinition): string {
  const os: XmlNode[] = [t('type', 'hvm', { arch: 'x86_64', machine: 'pc' })];
  if (d.boot.kind === 'kernel') {
    os.push(t('kernel', d.boot.kernel));
    if (d.boot.initrd) os.push(t('initrd', d.boot.initrd));
    os.push(t('cmdline', d.boot.cmdline));
  } else {
    os.push(n('boot', { dev: 'hd' }));
  }
  const devices: XmlNode[] = [
    ...d.disks.map((k) =>
      n('disk', { type: 'file', device: 'disk' }, [n('driver', { name: 'qemu', type: k.format }), n('source', { file: k.path }), n('target', { dev: k.dev, bus: 'virtio' })]),
    ),
    ...(d.configDrive
      ? [n('disk', { type: 'file', device: 'cdrom' }, [n('driver', { name: 'qemu', type: 'raw' }), n('source', { file: d.configDrive }), n('target', { dev: 'hdd', bus: 'ide' }), n('readonly')])]
      : []),
    ...d.volumes.map((v) =>
      n('disk', { type: 'block', device: 'disk' }, [
        n('driver', { name: 'qemu', type: 'raw', cache: 'none', io: 'native' }),
        n('source', { dev: v.path }),
        n('target', { dev: v.dev, bus: 'virtio' }),
        t('serial', v.serial),
      ]),
    ),
    ...d.interfaces.map((i) =>
      n('interface', { type: 'bridge' }, [
        n('mac', { address: i.mac }),
        n('source', { bridge: i.bridge }),
        ...(i.vifType === 'ovs' ? [n('virtualport', { type: 'openvswitch' }, [n('parameters', { interfaceid: i.portId })])] : []),
        n('model', { type: 'virtio' }),
        ...(i.mtu !== null ? [n('mtu', { size: String(i.mtu) })] : []),
      ]),
    ),
    n('serial', { type: 'file' }, [n('source', { path: d.consoleLog }), n('target', { port: '0' })]),
    ...(d.serialConsole
      ? [n('serial', { type: 'tcp' }, [n('source', { mode: 'bind', host: d.serialConsole.host, service: String(d.serialConsole.port) }), n('protocol', { type: 'raw' }), n('target', { port: '1' })])]
      : []),
    ...(d.vncListen ? [n('graphics', { type: 'vnc', port: '-1', autoport: 'yes', listen: d.vncListen })] : []),
    n('memballoon', { model: 'none' }),
  ];
  const workaround = d.tcgRamWorkaround && d.virtType === 'qemu';
  const domain = n('domain', { type: d.virtType, ...(workaround ? { 'xmlns:qemu': QEMU_NS } : {}) }, [
    t('name', d.name),
    t('uuid', d.uuid),
    t('memory', String(d.memoryMib), { unit: 'MiB' }),
    t('vcpu', String(d.vcpus)),
    n('os', undefined, os),
    ...(d.cpuModel ? [n('cpu', { mode: 'custom', match: 'exact', check: 'none' }, [t('model', d.cpuModel, { fallback: 'forbid' })])] : []),
    n('clock', { offset: 'utc' }),
    t('on_poweroff', 'destroy'),
    t('on_reboot', 'restart'),
    t('on_crash', 'destroy'),
    n('devices', undefined, devices),
    ...(workaround ? [n('qemu:commandline', undefined, tcgRamWorkaroundArgs(d.memoryMib).map((value) => n('qemu:arg', { value })))] : []),
  ]);
  const doc = parseXml('<domain/>');
  const root = build(doc, domain, 0);
  return `${serializeXml(root)}\n`;
}

/** The element for `node`, children on their own lines, indented two spaces a level. */
function build(doc: XmlDocument, node: XmlNode, depth: number) {
  const el = doc.createElement(node.name);
  for (const [k, v] of Object.entries(node.attrs ?? {})) el.setAttribute(k, v);
  if (node.text !== undefined) el.appendChild(doc.createTextNode(node.text));
  const children = node.children ?? [];
  for (const child of children) {
    el.appendChild(doc.createTextNode(`\n${'  '.repeat(depth + 1)}`));
    el.appendChild(build(doc, child, depth + 1));
  }
  if (children.length > 0) el.appendChild(doc.createTextNode(`\n${'  '.repeat(depth)}`));
  return el;
}
