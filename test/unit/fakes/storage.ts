// A host's instances path on a temp dir. Every host sees the same logical
// path (/var/lib/nova/instances, as Nova requires), but each has its own
// directory underneath, like a private mount; hosts with shared storage share
// one. All work is done by the real HostStorage (real files, real qemu-img).

import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HostStorage, type BackingImage, type LocalDiskInfo } from '../../../src/domain/host-storage.js';

const run = promisify(execFile);

export const LOGICAL_INSTANCES_PATH = '/var/lib/nova/instances';

export class MountedHostStorage extends HostStorage {
  readonly real: HostStorage;

  constructor(
    readonly realPath: string,
    logicalPath = LOGICAL_INSTANCES_PATH,
  ) {
    super(logicalPath);
    this.real = new HostStorage(realPath);
  }

  /** The file behind a logical path on this host. */
  toReal(path: string): string {
    if (path === this.instancesPath || path.startsWith(this.instancesPath + '/')) return this.realPath + path.slice(this.instancesPath.length);
    return path;
  }

  /** The logical path of a file of this host (image headers hold real paths here). */
  toLogical(path: string): string {
    if (path === this.realPath || path.startsWith(this.realPath + '/')) return this.instancesPath + path.slice(this.realPath.length);
    return path;
  }

  override instanceDirExists(uuid: string) {
    return this.real.instanceDirExists(uuid);
  }
  override createInstanceDir(uuid: string) {
    return this.real.createInstanceDir(uuid);
  }
  override removeInstanceDir(uuid: string) {
    return this.real.removeInstanceDir(uuid);
  }
  override createEmptyDisk(path: string, format: string, virtualSize: number, backing?: BackingImage) {
    return this.real.createEmptyDisk(this.toReal(path), format, virtualSize, backing && { ...backing, path: this.toReal(backing.path) });
  }
  override createDiskFromImage(path: string, image: string, imageFormat: string, minBytes: number) {
    return this.real.createDiskFromImage(this.toReal(path), image, imageFormat, minBytes);
  }
  override async ensureBaseImage(imageId: string, image: string, imageFormat: string, forceRaw: boolean): Promise<BackingImage> {
    const base = await this.real.ensureBaseImage(imageId, image, imageFormat, forceRaw);
    return { ...base, path: this.toLogical(base.path) };
  }
  override createConfigDrive(path: string, files: Record<string, string | Uint8Array>, mkisofs: string) {
    return this.real.createConfigDrive(this.toReal(path), files, mkisofs);
  }
  override copyNewFile(source: string, path: string) {
    return this.real.copyNewFile(source, this.toReal(path));
  }
  override fileExists(path: string) {
    return this.real.fileExists(this.toReal(path));
  }
  override removeFile(path: string) {
    return this.real.removeFile(this.toReal(path));
  }
  override async describeDisk(dev: string, path: string): Promise<LocalDiskInfo> {
    const d = await this.real.describeDisk(dev, this.toReal(path));
    return { ...d, path, backingChain: d.backingChain.map((b) => ({ ...b, path: this.toLogical(b.path) })) };
  }
  override hasBacking(b: BackingImage) {
    return this.real.hasBacking({ ...b, path: this.toReal(b.path) });
  }
  override fileBytes(path: string) {
    return this.real.fileBytes(this.toReal(path));
  }
  override readChunks(path: string, chunkBytes: number) {
    return this.real.readChunks(this.toReal(path), chunkBytes);
  }
  override freeBytes() {
    return this.real.freeBytes();
  }
  override writeProbe() {
    return this.real.writeProbe();
  }
  override probeVisible(name: string) {
    return this.real.probeVisible(name);
  }
  override removeProbe(name: string) {
    return this.real.removeProbe(name);
  }

  /** Entries of the real instances dir (instance folders, probe files). */
  async entries(): Promise<string[]> {
    return (await fs.readdir(this.realPath)).sort();
  }
}

/** A real qcow2/raw image for a guest's local disk, flat or an overlay on `backing` (a real path). */
export async function makeImage(path: string, format: 'qcow2' | 'raw', size: string, backing?: { path: string; format: string }): Promise<void> {
  const onBacking = backing ? ['-b', backing.path, '-F', backing.format] : [];
  await run('qemu-img', ['create', '-q', '-f', format, ...onBacking, path, size]);
}

export async function imageInfo(path: string): Promise<{ format: string; 'virtual-size': number; 'backing-filename'?: string }> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', path]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
}

/** A block device node for a volume (what a connected iSCSI/RBD disk looks like): mknod, else any /dev block device. */
export async function makeBlockDevice(dir: string): Promise<string | null> {
  const path = join(dir, 'volume-dev');
  try {
    await run('mknod', [path, 'b', '7', '250']);
    return path;
  } catch {
    for (const name of await fs.readdir('/dev')) {
      try {
        if ((await fs.stat(join('/dev', name))).isBlockDevice()) return join('/dev', name);
      } catch {
        /* next */
      }
    }
    return null;
  }
}
