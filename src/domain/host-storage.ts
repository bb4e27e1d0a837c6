// The instance folder and local disks on this host: the only filesystem
// effects of a migration. Paths are as this host sees them.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalDiskInfo {
  dev: string;
  path: string;
  format: string;
  virtualSize: number;
  /** Bytes the image occupies on disk now. */
  actualSize: number;
}

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

  /** An empty image of the same format and virtual size, for block migration to fill. */
  async createEmptyDisk(path: string, format: string, virtualSize: number): Promise<void> {
    if (await exists(path)) throw new Error(`disk ${path} already exists`);
    await run('qemu-img', ['create', '-q', '-f', format, path, String(virtualSize)]);
  }

  async describeDisk(dev: string, path: string): Promise<LocalDiskInfo> {
    // -U: the image is open by the running guest.
    const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
    const info = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size'?: number };
    return { dev, path, format: info.format, virtualSize: info['virtual-size'], actualSize: info['actual-size'] ?? 0 };
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
