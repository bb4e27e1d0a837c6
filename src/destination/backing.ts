// Whether this host holds a disk's whole backing chain, as the source
// described it: the condition for copying only the disk's top layer.

import type { BackingImage, HostStorage } from '../domain/host-storage.js';
import { InvalidInput } from '../nova/errors.js';
import type { BackingFileInfo } from '../nova/migrate-data.js';
import { isNormalAbsolute } from '../validate/path.js';

/** The first image of the chain this host lacks (missing, or another format or size), or null when it has them all. */
export async function missingBacking(storage: HostStorage, chain: readonly BackingFileInfo[]): Promise<BackingFileInfo | null> {
  for (const b of chain) {
    // A path from the other host is only ever looked at, never written; still, nothing relative.
    if (!isNormalAbsolute(b.path)) throw new InvalidInput(`backing file path ${b.path} is not an absolute path without . or ..`);
    if (!(await storage.hasBacking(backingImage(b)))) return b;
  }
  return null;
}

/** The wire form of a backing image as host storage takes it. */
export function backingImage(b: BackingFileInfo): BackingImage {
  return { path: b.path, format: b.format, virtualSize: b.virtual_size };
}

export function describeBacking(b: BackingFileInfo): string {
  return `${b.path} (${b.format}, ${b.virtual_size} bytes)`;
}
