// "Volumes": loop devices over files in the lab's shared folder. Every host sees
// the same /dev/loopN, so with <driver cache='none'> libvirt treats the disk as
// shared storage and leaves it out of a block migration (a stand-in for iSCSI/RBD).
import { randomBytes } from 'node:crypto';
import { rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';
import type { Lab } from './lab.js';

export interface Volume {
  /** The loop device, e.g. /dev/loop3: use as <disk type='block'><source dev=.../>. */
  path: string;
  /** Its backing file in lab.sharedDir. */
  file: string;
  /** Detaches the loop device and removes the file; idempotent. */
  detach(): Promise<void>;
}

export async function createVolume(lab: Pick<Lab, 'sharedDir'>, sizeMiB: number, name?: string): Promise<Volume> {
  const file = join(lab.sharedDir, `${name ?? `vol-${randomBytes(4).toString('hex')}`}.img`);
  await writeFile(file, '', { flag: 'wx' });
  await truncate(file, sizeMiB * 1024 * 1024);
  let path: string;
  try {
    path = (await run('losetup', ['--find', '--show', file])).stdout.trim();
  } catch (e) {
    await rm(file, { force: true });
    throw e;
  }
  let detached = false;
  return {
    path,
    file,
    async detach() {
      if (detached) return;
      detached = true;
      await run('losetup', ['-d', path], { check: false });
      await rm(file, { force: true });
    },
  };
}
