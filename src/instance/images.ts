// The image cache: ferry's stand-in for an image service. One file per image
// id in image_cache_path, with its properties beside it in <id>.json
// (disk_format; kernel_id, ramdisk_id and os_command_line for an image that
// boots a kernel). Each host holds its own copy, as a Glance cache would.

import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ImageNotFound, InvalidInput } from '../nova/errors.js';

export interface CachedImage {
  id: string;
  path: string;
  diskFormat: 'qcow2' | 'raw';
  kernelId: string | null;
  ramdiskId: string | null;
  osCommandLine: string | null;
}

/** An image id that names a file in the cache and nothing else: no slash, not "." or "..". */
const IMAGE_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$/;

export class ImageCache {
  constructor(private readonly dir: string) {}

  /** The image `id` (`field` names where it came from in a refusal); ImageNotFound when the cache has no such file. */
  async find(id: string, field: string): Promise<CachedImage> {
    if (!IMAGE_ID.test(id)) throw new InvalidInput(`${field}: '${id}' is not an image id`);
    const path = join(this.dir, id);
    const stat = await fs.stat(path).catch(() => null);
    if (!stat?.isFile()) throw new ImageNotFound(id);
    const text = await fs.readFile(`${path}.json`, 'utf8').catch(() => '{}');
    let props: Record<string, unknown>;
    try {
      props = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new InvalidInput(`${field}: the properties of image ${id} (${path}.json) are not JSON`);
    }
    const str = (k: string) => (typeof props[k] === 'string' && props[k] !== '' ? (props[k] as string) : null);
    const diskFormat = str('disk_format') ?? 'raw';
    if (diskFormat !== 'qcow2' && diskFormat !== 'raw') throw new InvalidInput(`${field}: image ${id} has disk_format ${diskFormat}; ferry takes qcow2 and raw`);
    return { id, path, diskFormat, kernelId: str('kernel_id'), ramdiskId: str('ramdisk_id'), osCommandLine: str('os_command_line') };
  }
}
