// Builds (once, cached) the lab guest: the Debian cloud kernel plus a tiny
// busybox initramfs whose /init prints a heartbeat on the serial console and
// can run a memory-dirtying workload and disk marker checks (see guest/init).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { run } from './exec.js';

export const LAB_CACHE_DIR = process.env.FERRY_LAB_CACHE ?? '/var/cache/ferry-lab';
const GUEST_SRC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'guest');
const KERNEL_META_PKG = 'linux-image-cloud-amd64';
const BUSYBOX = '/bin/busybox';
/** Loaded by /init in this order (dependencies first) when present. */
const GUEST_MODULES = [
  'drivers/virtio/virtio_ring.ko',
  'drivers/virtio/virtio.ko',
  'drivers/virtio/virtio_pci_modern_dev.ko',
  'drivers/virtio/virtio_pci_legacy_dev.ko',
  'drivers/virtio/virtio_pci.ko',
  'drivers/block/virtio_blk.ko',
];

export interface GuestImage {
  kernel: string;
  initrd: string;
}

let pending: Promise<GuestImage> | undefined;

/** Builds the guest kernel + initramfs once per source hash; later calls hit the cache. */
export function ensureGuestImage(): Promise<GuestImage> {
  pending ??= build().catch((e: unknown) => {
    pending = undefined;
    throw e;
  });
  return pending;
}

async function resolveKernelPackage(): Promise<string> {
  const parse = (out: string): string | undefined =>
    /Depends:\s*(linux-image-\S+)/.exec(out)?.[1];
  let res = await run('apt-cache', ['depends', KERNEL_META_PKG], { check: false });
  let pkg = parse(res.stdout);
  if (!pkg) {
    await run('apt-get', ['update', '-qq'], { check: false });
    res = await run('apt-cache', ['depends', KERNEL_META_PKG], { check: false });
    pkg = parse(res.stdout);
  }
  if (!pkg) throw new Error(`cannot resolve the kernel behind ${KERNEL_META_PKG}: ${res.stderr || res.stdout}`);
  return pkg;
}

async function fetchKernelDeb(pkg: string): Promise<string> {
  const debDir = join(LAB_CACHE_DIR, 'debs');
  const deb = join(debDir, `${pkg}.deb`);
  if (existsSync(deb)) return deb;
  await mkdir(debDir, { recursive: true });
  const tmp = join(debDir, `dl-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    await run('apt-get', ['download', '-qq', pkg], { cwd: tmp });
    const files = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
    if (files.length !== 1) throw new Error(`apt-get download ${pkg} produced ${files.join(', ') || 'nothing'}`);
    await rename(join(tmp, files[0]!), deb);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return deb;
}

async function build(): Promise<GuestImage> {
  const pkg = await resolveKernelPackage();
  const initScript = await readFile(join(GUEST_SRC_DIR, 'init'));
  const dirtySrc = await readFile(join(GUEST_SRC_DIR, 'dirty.c'));
  const self = await readFile(fileURLToPath(import.meta.url));
  const hash = createHash('sha256')
    .update(pkg)
    .update('\0')
    .update(initScript)
    .update('\0')
    .update(dirtySrc)
    .update('\0')
    .update(self)
    .digest('hex')
    .slice(0, 16);
  const dir = join(LAB_CACHE_DIR, `guest-${hash}`);
  const image: GuestImage = { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz') };
  if (existsSync(image.kernel) && existsSync(image.initrd)) return image;

  const deb = await fetchKernelDeb(pkg);
  const tmp = join(LAB_CACHE_DIR, `build-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { recursive: true });
  try {
    const x = join(tmp, 'x');
    await run('dpkg-deb', ['-x', deb, x]);
    const boot = await readdir(join(x, 'boot'));
    const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`no vmlinuz in ${deb}`);
    const kver = vmlinuz.slice('vmlinuz-'.length);
    const modDir = join(x, 'lib', 'modules', kver, 'kernel');

    const dirtyBin = join(tmp, 'dirty');
    await run('gcc', ['-static', '-O2', '-Wall', '-o', dirtyBin, join(GUEST_SRC_DIR, 'dirty.c')]);

    const cpio = new CpioWriter();
    for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'lib', 'lib/modules']) cpio.dir(d);
    cpio.charDev('dev/console', 5, 1);
    cpio.charDev('dev/ttyS0', 4, 64);
    cpio.charDev('dev/null', 1, 3);
    cpio.file('init', initScript, 0o755);
    cpio.file('bin/busybox', await readFile(BUSYBOX), 0o755);
    cpio.symlink('bin/sh', 'busybox');
    cpio.file('bin/dirty', await readFile(dirtyBin), 0o755);
    for (const m of GUEST_MODULES) {
      const p = join(modDir, m);
      if (existsSync(p)) cpio.file(`lib/modules/${m.split('/').pop()!}`, await readFile(p), 0o644);
    }
    const out = join(tmp, 'out');
    await mkdir(out);
    await copyFile(join(x, 'boot', vmlinuz), join(out, 'vmlinuz'));
    await writeFile(join(out, 'initrd.gz'), gzipSync(cpio.finish(), { level: 6 }));
    try {
      await rename(out, dir);
    } catch (e) {
      // Another process finished the same build first: use its result.
      if (!(existsSync(image.kernel) && existsSync(image.initrd))) throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return image;
}

/** Minimal writer for the "newc" cpio format the kernel unpacks as initramfs. */
class CpioWriter {
  private chunks: Buffer[] = [];
  private ino = 1;

  dir(name: string): void {
    this.entry(name, 0o040755, Buffer.alloc(0));
  }
  file(name: string, data: Buffer, perm: number): void {
    this.entry(name, 0o100000 | perm, data);
  }
  symlink(name: string, target: string): void {
    this.entry(name, 0o120777, Buffer.from(target));
  }
  charDev(name: string, major: number, minor: number): void {
    this.entry(name, 0o020600, Buffer.alloc(0), major, minor);
  }
  finish(): Buffer {
    this.entry('TRAILER!!!', 0, Buffer.alloc(0));
    return Buffer.concat(this.chunks);
  }

  private entry(name: string, mode: number, data: Buffer, rmaj = 0, rmin = 0): void {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const nameBuf = Buffer.from(`${name}\0`);
    const header =
      '070701' +
      [this.ino++, mode, 0, 0, mode & 0o040000 ? 2 : 1, 0, data.length, 0, 0, rmaj, rmin, nameBuf.length, 0]
        .map(hex)
        .join('');
    this.push(Buffer.concat([Buffer.from(header, 'ascii'), nameBuf]));
    this.push(data);
  }

  private push(b: Buffer): void {
    this.chunks.push(b);
    const pad = (4 - (b.length % 4)) % 4;
    if (pad) this.chunks.push(Buffer.alloc(pad));
  }
}
