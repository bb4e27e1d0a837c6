// Read-only local disks (an iso9660 config drive) are left out of block
// migration by libvirt, so they reach the destination before the transfer:
// uploaded through the destination's libvirtd into the empty files its
// pre_live_migration made. They are read-only, so the copy stays current.

import { uploadFile } from '../domain/volume-upload.js';
import { diskName, type InstanceDiskInfo } from '../nova/migrate-data.js';
import type { MigrationRecord } from '../record/registry.js';
import type { SourceDeps } from './deps.js';

export async function copyReadOnlyDisks(
  deps: Pick<SourceDeps, 'openRemote' | 'storage' | 'log'>,
  record: MigrationRecord,
  destUri: string,
  disks: readonly InstanceDiskInfo[],
): Promise<void> {
  if (disks.length === 0) return;
  const remote = await deps.openRemote(destUri);
  try {
    for (const disk of disks) {
      const started = performance.now();
      // Named after the instance, so a pool an interrupted attempt left is found and destroyed by the next.
      const bytes = await uploadFile(deps.storage, remote, disk.path, disk.virt_disk_size, `ferry-upload-${record.instanceUuid}`, deps.log);
      deps.log.info({ disk: diskName(disk), path: disk.path, bytes, ms: Math.round(performance.now() - started) }, 'read-only disk uploaded to the destination');
    }
  } finally {
    await remote.close().catch((err: unknown) => deps.log.warn({ err, uri: destUri }, 'closing the connection to the destination libvirtd failed'));
  }
}
