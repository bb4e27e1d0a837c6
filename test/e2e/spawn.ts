// Guests made by ferryd itself (build_and_run_instance) on lab hosts: an
// image cache per host with the lab guest's kernel and initramfs and raw
// images, and the instance record a conductor sends for such a guest.

import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lab/exec.js';
import { guestCmdline, type GuestWorkload, type VolumeDiskSpec } from '../lab/guest.js';
import { ensureGuestImage } from '../lab/guest-image.js';
import type { LabHost } from '../lab/lab.js';

/** The host's image_cache_path in the lab. */
export const imageCache = (h: LabHost): string => join(h.root, 'images');

/** The blank 64 MiB raw image every lab host's cache holds: a root disk for the guest to write its marker on. */
export const LAB_DISK_IMAGE = 'lab-disk';

/** A raw image of `size`, its first sector reading "ferry-marker:<word>" (as the lab guest prints its disks) when a word is given. */
async function rawImage(path: string, size: string, marker?: string): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'raw', path, size]);
  if (marker === undefined) return;
  const f = await open(path, 'r+');
  try {
    await f.write(`ferry-marker:${marker}\n`, 0);
  } finally {
    await f.close();
  }
}

/**
 * Fills the host's image cache: the lab kernel and initramfs (lab-kernel,
 * lab-initrd), the blank lab-disk, and a marked 16 MiB raw image per entry
 * of `images` (id -> marker word), with the properties given for it
 * (<id>.json).
 */
export async function fillImageCache(h: LabHost, images: Record<string, { marker: string; properties?: Record<string, unknown> }> = {}): Promise<void> {
  const guest = await ensureGuestImage();
  const dir = imageCache(h);
  await mkdir(dir, { recursive: true });
  await copyFile(guest.kernel, join(dir, 'lab-kernel'));
  await copyFile(guest.initrd, join(dir, 'lab-initrd'));
  await rawImage(join(dir, LAB_DISK_IMAGE), '64M');
  for (const [id, image] of Object.entries(images)) {
    await rawImage(join(dir, id), '16M', image.marker);
    if (image.properties) await writeFile(join(dir, `${id}.json`), JSON.stringify(image.properties));
  }
}

/** A lab guest as its instance record describes it. */
export interface SpawnSpec extends GuestWorkload {
  /** Default 256. */
  memoryMiB?: number;
  /** The image of the host's cache its root disk vda is made from; none: no local disk (a guest on shared block storage). */
  image?: string;
  /** The kernel command line; default: the lab guest's for the workload (guestCmdline). */
  cmdline?: string;
  configDrive?: boolean;
  /** Block devices of the lab, attached as Cinder volumes. */
  volumes?: VolumeDiskSpec[];
  /** Ports on Linux bridges (Neutron's linuxbridge binding). */
  nics?: Array<{ mac: string; bridge: string; portId?: string }>;
  vmState?: string;
}

/** The instance record of a guest booted with the lab kernel, on `host`. */
export function instanceRecord(uuid: string, host: LabHost, spec: SpawnSpec = {}): Record<string, unknown> & { uuid: string } {
  return {
    uuid,
    name: `instance-${uuid.slice(0, 8)}`,
    host: host.hostname,
    vm_state: spec.vmState ?? 'active',
    flavor: { memory_mb: spec.memoryMiB ?? 256, vcpus: 1, root_gb: 0 },
    ...(spec.image ? { image_ref: spec.image } : {}),
    kernel_id: 'lab-kernel',
    ramdisk_id: 'lab-initrd',
    system_metadata: { image_os_command_line: spec.cmdline ?? guestCmdline(spec) },
    ...(spec.configDrive ? { config_drive: true } : {}),
    block_device_mappings: (spec.volumes ?? []).map((v) => ({
      device_name: `/dev/${v.dev}`,
      destination_type: 'volume',
      volume_id: v.serial ?? v.dev,
      connection_info: { driver_volume_type: 'local', serial: v.serial ?? v.dev, data: { device_path: v.path } },
    })),
    info_cache: {
      network_info: (spec.nics ?? []).map((n) => ({ id: n.portId ?? randomUUID(), address: n.mac, type: 'bridge', details: { bridge_name: n.bridge }, network: { bridge: n.bridge } })),
    },
  };
}
