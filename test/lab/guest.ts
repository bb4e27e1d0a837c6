// Domain XML and disks for the lab guest where no ferryd defines it: the lab's own tests and
// the binding's (test/lab); ferryd spawns the end-to-end guests (test/e2e/spawn.ts).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tcgRamWorkaroundArgs } from '../../src/domain/guest-xml.js';
import { run } from './exec.js';
import { ensureGuestImage, type GuestImage } from './guest-image.js';
import { LAB_INSTANCES_PATH, type LabHost } from './lab.js';

export interface LocalDiskSpec {
  /** e.g. 'vda' */
  dev: string;
  /** Path as the host sees it (under instancesPath). */
  path: string;
  format?: 'qcow2' | 'raw';
}

export interface VolumeDiskSpec {
  /** e.g. 'vdb' */
  dev: string;
  /** A block device (see createVolume). */
  path: string;
  serial?: string;
}

export interface DirtySpec {
  mib: number;
  rateMBs: number;
  cpuBound?: boolean;
  /** Seconds between the dirtier's start line and its first write. */
  afterSeconds?: number;
}

/** What the lab guest does, told on its kernel command line (guestCmdline). */
export interface GuestWorkload {
  /** Memory-dirtying workload: `mib` MiB dirtied at `rateMBs` MiB/s; `cpuBound`: each write comes with work (guest/dirty.c). */
  dirty?: DirtySpec;
  /** Written once at boot to the first sector of vda as "ferry-marker:<word>"; vda is then printed each second. */
  diskMarker?: string;
  /** Same for vdb. */
  volumeMarker?: string;
  extraCmdline?: string;
}

export interface GuestSpec extends GuestWorkload {
  name: string;
  uuid: string;
  memoryMiB?: number;
  vcpus?: number;
  /** Default <instancesPath>/<uuid>/console.log (each host writes its own copy). */
  consoleLog?: string;
  localDisks?: LocalDiskSpec[];
  volumes?: VolumeDiskSpec[];
  /** Defaults to ensureGuestImage(). */
  image?: GuestImage;
  /** Default true: see ramWorkaroundArgs. False only to show the QEMU fault (test/lab/soak.ts). */
  ramWorkaround?: boolean;
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

export function guestCmdline(spec: GuestWorkload): string {
  const parts = ['console=ttyS0', 'quiet'];
  if (spec.dirty) parts.push(`ferry.dirty_mib=${spec.dirty.mib}`, `ferry.dirty_rate_mbs=${spec.dirty.rateMBs}`);
  if (spec.dirty?.cpuBound) parts.push('ferry.dirty_cpu_bound=1');
  if (spec.dirty?.afterSeconds !== undefined) parts.push(`ferry.dirty_after_s=${spec.dirty.afterSeconds}`);
  if (spec.diskMarker !== undefined) parts.push(`ferry.disk_write=${spec.diskMarker}`, 'ferry.disk_check=1');
  if (spec.volumeMarker !== undefined) parts.push(`ferry.vol_write=${spec.volumeMarker}`, 'ferry.vol_check=1');
  if (spec.extraCmdline) parts.push(spec.extraCmdline);
  return parts.join(' ');
}

/** QEMU's version as [major, minor], read once from the binary the lab runs. */
let qemuVersion: [number, number] | undefined;
function installedQemuVersion(): [number, number] {
  if (!qemuVersion) {
    const out = execFileSync('/usr/bin/qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
    const m = /version (\d+)\.(\d+)/.exec(out);
    if (!m) throw new Error(`cannot read the QEMU version from: ${out}`);
    qemuVersion = [Number(m[1]), Number(m[2])];
  }
  return qemuVersion;
}

/** The RAM padding ferry gives guests under TCG on QEMU < 9.0 (src/domain/guest-xml.ts says why), for the lab's own guests. */
export function ramWorkaroundArgs(memoryMiB: number): string[] {
  const [major] = installedQemuVersion();
  return major >= 9 ? [] : tcgRamWorkaroundArgs(memoryMiB);
}

export async function guestXml(spec: GuestSpec): Promise<string> {
  const memoryMiB = spec.memoryMiB ?? 256;
  const qemuArgs = spec.ramWorkaround === false ? [] : ramWorkaroundArgs(memoryMiB);
  const image = spec.image ?? (await ensureGuestImage());
  const consoleLog = spec.consoleLog ?? join(LAB_INSTANCES_PATH, spec.uuid, 'console.log');
  const disks: string[] = [];
  for (const d of spec.localDisks ?? []) {
    disks.push(`    <disk type='file' device='disk'>
      <driver name='qemu' type='${d.format ?? 'qcow2'}'/>
      <source file='${xmlEscape(d.path)}'/>
      <target dev='${d.dev}' bus='virtio'/>
    </disk>`);
  }
  for (const v of spec.volumes ?? []) {
    disks.push(`    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='${xmlEscape(v.path)}'/>
      <target dev='${v.dev}' bus='virtio'/>${v.serial ? `\n      <serial>${xmlEscape(v.serial)}</serial>` : ''}
    </disk>`);
  }
  const commandline = qemuArgs.length
    ? `  <qemu:commandline>\n${qemuArgs.map((a) => `    <qemu:arg value='${xmlEscape(a)}'/>`).join('\n')}\n  </qemu:commandline>\n`
    : '';
  return `<domain type='qemu'${qemuArgs.length ? " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" : ''}>
  <name>${xmlEscape(spec.name)}</name>
  <uuid>${spec.uuid}</uuid>
  <memory unit='MiB'>${memoryMiB}</memory>
  <vcpu>${spec.vcpus ?? 1}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${xmlEscape(image.kernel)}</kernel>
    <initrd>${xmlEscape(image.initrd)}</initrd>
    <cmdline>${xmlEscape(guestCmdline(spec))}</cmdline>
  </os>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>qemu64</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks.join('\n')}
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='${xmlEscape(consoleLog)}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
${commandline}</domain>
`;
}

/** Creates <instancesPath>/<uuid> on a host (the console log lives there); returns the inside path. */
export async function prepareInstanceDir(host: LabHost, uuid: string): Promise<string> {
  await mkdir(join(host.hostInstancesDir, uuid), { recursive: true });
  return join(host.instancesPath, uuid);
}

export interface LocalDisk {
  /** Path inside the host (for the domain XML). */
  path: string;
  /** The same file from the test process. */
  hostPath: string;
}

/** Creates an empty qcow2 in the host's instance folder. */
export async function createLocalDisk(host: LabHost, uuid: string, sizeMiB: number, name = 'disk'): Promise<LocalDisk> {
  await prepareInstanceDir(host, uuid);
  const hostPath = join(host.hostInstancesDir, uuid, name);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', hostPath, `${sizeMiB}M`]);
  return { path: join(host.instancesPath, uuid, name), hostPath };
}

/**
 * Reads the first `bytes` of a disk image or block device as the test process
 * sees it (force-share, so it works while a guest has it open), as text up to
 * the first NUL.
 */
export async function readDiskHead(hostPath: string, format: 'qcow2' | 'raw' = 'qcow2', bytes = 512): Promise<string> {
  if (format === 'raw' && hostPath.startsWith('/dev/')) {
    const r = await run('dd', [`if=${hostPath}`, `bs=${bytes}`, 'count=1', 'iflag=direct', 'status=none'], {
      check: true,
    });
    return untilNul(Buffer.from(r.stdout, 'latin1'));
  }
  return headThrough((args) => run('qemu-img', args), hostPath, format, bytes);
}

/** The same for a qcow2 disk at a path as `host` sees it: qemu-img runs inside the host, where the disk's backing files are. */
export function readDiskHeadOn(host: LabHost, path: string, bytes = 512): Promise<string> {
  return headThrough((args) => host.exec(['qemu-img', ...args]), path, 'qcow2', bytes);
}

/** qemu-img dd of the head into a file of /tmp (which the lab hosts share with the test process). */
async function headThrough(qemuImg: (args: string[]) => Promise<unknown>, path: string, format: 'qcow2' | 'raw', bytes: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-lab-disk-'));
  try {
    const out = join(dir, 'head');
    await qemuImg(['dd', '-U', '-f', format, '-O', 'raw', `bs=${bytes}`, 'count=1', `if=${path}`, `of=${out}`]);
    return untilNul(await readFile(out));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const untilNul = (buf: Buffer): string => {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? buf.length : nul).toString('latin1');
};
