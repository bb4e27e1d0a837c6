// Guests made by ferryd itself (build_and_run_instance) on lab hosts: an
// image cache per host with the lab guest's kernel and initramfs and raw
// images, and the instance record a conductor sends for such a guest.

import { copyFile, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lab/exec.js';
import { ensureGuestImage } from '../lab/guest-image.js';
import type { LabHost } from '../lab/lab.js';

/** The host's image_cache_path in the lab. */
export const imageCache = (h: LabHost): string => join(h.root, 'images');

/** A raw image whose first sector reads "ferry-marker:<word>", as the lab guest prints its disks. */
async function markedImage(path: string, word: string): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'raw', path, '16M']);
  const f = await open(path, 'r+');
  try {
    await f.write(`ferry-marker:${word}\n`, 0);
  } finally {
    await f.close();
  }
}

/**
 * Fills the host's image cache: the lab kernel and initramfs (lab-kernel,
 * lab-initrd), and a marked raw image per entry of `images` (id -> marker
 * word), with the properties given for it (<id>.json).
 */
export async function fillImageCache(h: LabHost, images: Record<string, { marker: string; properties?: Record<string, unknown> }>): Promise<void> {
  const guest = await ensureGuestImage();
  const dir = imageCache(h);
  await mkdir(dir, { recursive: true });
  await copyFile(guest.kernel, join(dir, 'lab-kernel'));
  await copyFile(guest.initrd, join(dir, 'lab-initrd'));
  for (const [id, image] of Object.entries(images)) {
    await markedImage(join(dir, id), image.marker);
    if (image.properties) await writeFile(join(dir, `${id}.json`), JSON.stringify(image.properties));
  }
}

/** The instance record for a guest booted from `image` with the lab kernel and this command line. */
export function instanceRecord(uuid: string, host: LabHost, o: { image: string; cmdline: string; memoryMiB?: number; vmState?: string }): Record<string, unknown> & { uuid: string } {
  return {
    uuid,
    name: `instance-${uuid.slice(0, 8)}`,
    host: host.hostname,
    vm_state: o.vmState ?? 'active',
    flavor: { memory_mb: o.memoryMiB ?? 192, vcpus: 1, root_gb: 0 },
    image_ref: o.image,
    kernel_id: 'lab-kernel',
    ramdisk_id: 'lab-initrd',
    system_metadata: { image_os_command_line: o.cmdline },
  };
}
