// The instance folder and local disks on this host: the only filesystem
// effects of a migration. Paths are as this host sees them.

import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One image below a disk's top layer (Nova keeps its base images in _base). */
export interface BackingImage {
  path: string;
  format: string;
  virtualSize: number;
}

export interface LocalDiskInfo {
  dev: string;
  path: string;
  format: string;
  virtualSize: number;
  /** Bytes the image occupies on disk now. */
  actualSize: number;
  /** The images below this one, nearest first; empty for a flat image. */
  backingChain: BackingImage[];
}

interface QemuImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
}

/** Nova's folder of base images in instances_path. */
const BASE_DIR = '_base';

export class HostStorage {
  constructor(readonly instancesPath: string) {}

  instanceDir(uuid: string): string {
    return join(this.instancesPath, uuid);
  }

  async instanceDirExists(uuid: string): Promise<boolean> {
    return exists(this.instanceDir(uuid));
  }

  async createInstanceDir(uuid: string): Promise<void> {
    await fs.mkdir(this.instanceDir(uuid), { recursive: false, mode: 0o755 });
  }

  async removeInstanceDir(uuid: string): Promise<void> {
    await fs.rm(this.instanceDir(uuid), { recursive: true, force: true });
  }

  /**
   * An empty image of the same format and virtual size for block migration
   * to fill: flat, or an overlay on `backing` when only the top layer is copied.
   */
  async createEmptyDisk(path: string, format: string, virtualSize: number, backing?: BackingImage): Promise<void> {
    if (await exists(path)) throw new Error(`disk ${path} already exists`);
    if (format === 'raw' && !backing) {
      // A sparse file of exactly that length (qemu-img rounds up to 512 bytes): a byte copy's target must match.
      const file = await fs.open(path, 'wx');
      try {
        await file.truncate(virtualSize);
      } finally {
        await file.close();
      }
      return;
    }
    const onBacking = backing ? ['-b', backing.path, '-F', backing.format] : [];
    await run('qemu-img', ['create', '-q', '-f', format, ...onBacking, path, String(virtualSize)]);
  }

  /** A qcow2 disk at `path` holding a copy of the image (flat: no backing file to carry along), grown to `minBytes` when larger. */
  async createDiskFromImage(path: string, image: string, imageFormat: string, minBytes: number): Promise<void> {
    if (await exists(path)) throw new Error(`disk ${path} already exists`);
    await run('qemu-img', ['convert', '-q', '-f', imageFormat, '-O', 'qcow2', image, path]);
    const info = await imageInfo(path);
    if (info['virtual-size'] < minBytes) await run('qemu-img', ['resize', '-q', path, String(minBytes)]);
  }

  /**
   * The base image of image `imageId` in _base, which the instances of this
   * host share: named after the SHA-1 of the image id, as Nova names it, and
   * made from the image when missing (raw when `forceRaw`, else in the
   * image's own format). Written beside and linked into place, so a base is
   * whole or absent.
   */
  async ensureBaseImage(imageId: string, image: string, imageFormat: string, forceRaw: boolean): Promise<BackingImage> {
    const dir = join(this.instancesPath, BASE_DIR);
    const path = join(dir, createHash('sha1').update(imageId).digest('hex'));
    if (!(await exists(path))) {
      await fs.mkdir(dir, { recursive: true, mode: 0o755 });
      const partial = `${path}.part-${randomUUID()}`;
      try {
        await run('qemu-img', ['convert', '-q', '-f', imageFormat, '-O', forceRaw ? 'raw' : imageFormat, image, partial]);
        // A link, not a rename: a base another spawn made meanwhile, which guests may already stand on, is never replaced.
        await fs.link(partial, path).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err;
        });
      } finally {
        await fs.rm(partial, { force: true });
      }
    }
    const info = await imageInfo(path);
    return { path, format: info.format, virtualSize: info['virtual-size'] };
  }

  /** A qcow2 overlay at `path` on `base`: the base's size, or `minBytes` when larger (Nova's qcow2 image backend). */
  async createOverlay(path: string, base: BackingImage, minBytes: number): Promise<void> {
    await this.createEmptyDisk(path, 'qcow2', Math.max(base.virtualSize, minBytes), base);
  }

  /**
   * An iso9660 config drive at `path` holding `files` (path in the drive ->
   * contents), labelled config-2 as cloud-init looks for it, written by
   * `mkisofs` with the options Nova gives genisoimage. Its staging folder
   * lives in the instance folder and is removed again.
   */
  async createConfigDrive(path: string, files: Record<string, string | Uint8Array>, mkisofs: string): Promise<void> {
    if (await exists(path)) throw new Error(`config drive ${path} already exists`);
    const staging = `${path}.staging-${randomUUID()}`;
    try {
      for (const [name, content] of Object.entries(files)) {
        const file = join(staging, name);
        await fs.mkdir(join(file, '..'), { recursive: true });
        await fs.writeFile(file, content);
      }
      await run(mkisofs, ['-o', path, '-ldots', '-allow-lowercase', '-allow-multidot', '-l', '-publisher', 'ferry', '-quiet', '-J', '-r', '-V', 'config-2', staging]);
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
  }

  /** A byte copy of `source` at `path`, which must not exist yet (a kernel or ramdisk for the instance folder). */
  async copyNewFile(source: string, path: string): Promise<void> {
    await fs.copyFile(source, path, constants.COPYFILE_EXCL);
  }

  async fileExists(path: string): Promise<boolean> {
    return exists(path);
  }

  /** Removes a file of the instance folder; gone already is fine. */
  async removeFile(path: string): Promise<void> {
    await fs.rm(path, { force: true });
  }

  async describeDisk(dev: string, path: string): Promise<LocalDiskInfo> {
    // -U: the image is open by the running guest.
    const { stdout } = await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path]);
    const [top, ...below] = JSON.parse(stdout) as QemuImgInfo[];
    if (!top) throw new Error(`qemu-img info ${path}: no image`);
    return {
      dev,
      path,
      format: top.format,
      virtualSize: top['virtual-size'],
      actualSize: top['actual-size'] ?? 0,
      backingChain: below.map((b) => ({ path: b.filename, format: b.format, virtualSize: b['virtual-size'] })),
    };
  }

  /**
   * Whether this host has the same backing image: the file exists with the
   * same format and virtual size (a shared or pre-seeded image cache; Nova
   * names _base files after the image, so the name stands for the content).
   */
  async hasBacking(b: BackingImage): Promise<boolean> {
    if (!(await exists(b.path))) return false;
    const info = await imageInfo(b.path);
    return info.format === b.format && info['virtual-size'] === b.virtualSize;
  }

  /** The file's length in bytes. */
  async fileBytes(path: string): Promise<number> {
    return (await fs.stat(path)).size;
  }

  /** A local file's bytes in order, `chunkBytes` at a time (the last chunk may be shorter). */
  async *readChunks(path: string, chunkBytes: number): AsyncGenerator<Uint8Array> {
    const file = await fs.open(path, 'r');
    try {
      for (;;) {
        const buf = new Uint8Array(chunkBytes);
        const { bytesRead } = await file.read(buf, 0, chunkBytes, null);
        if (bytesRead === 0) return;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await file.close();
    }
  }

  async freeBytes(): Promise<number> {
    const st = await fs.statfs(this.instancesPath);
    return st.bavail * st.bsize;
  }

  /** Writes a probe file the other host looks for to detect a shared instance path. */
  async writeProbe(): Promise<string> {
    const name = `ferry-probe-${randomUUID()}`;
    await fs.writeFile(join(this.instancesPath, name), '');
    return name;
  }

  async probeVisible(name: string): Promise<boolean> {
    return /^ferry-probe-[0-9a-f-]+$/.test(name) && exists(join(this.instancesPath, name));
  }

  async removeProbe(name: string): Promise<void> {
    await fs.rm(join(this.instancesPath, name), { force: true });
  }
}

/** qemu-img's word on one image (-U: it may be open by a running guest). */
async function imageInfo(path: string): Promise<QemuImgInfo> {
  return JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', path])).stdout) as QemuImgInfo;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when the path is a block device (a connected volume). */
export async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}
