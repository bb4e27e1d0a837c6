// Nova's check_can_live_migrate_destination: what this host offers (room,
// guest types, CPU models, a probe for shared storage), then the source's
// own check over RPC.

import { hostArch, supportedGuests, usableCpuModels } from '../domain/facts.js';
import { MigrationPreCheckError } from '../nova/errors.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import { instanceArg, type InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';

const MiB = 1024 * 1024;

/** Errors of the source's check that Nova passes on as they are; anything else becomes MigrationPreCheckError. */
const SOURCE_CHECK_ERRORS = ['InvalidSharedStorage', 'InvalidLocalStorage', 'MigrationPreCheckError', 'InstanceNotFound'];

export async function checkCanLiveMigrateDestination(
  deps: DestinationDeps,
  ctx: RequestContext,
  instance: InstanceRef,
  blockMigration: boolean | null,
  diskOverCommit: boolean | null,
): Promise<LiveMigrateData> {
  const { libvirt, storage, computeApi } = deps;
  if (instance.host === deps.host) {
    throw new MigrationPreCheckError(`instance ${instance.uuid} already runs on destination host ${deps.host}`);
  }
  const caps = await libvirt.getCapabilities();
  const probe = await storage.writeProbe();
  try {
    const destCheckData: LiveMigrateData = {
      filename: probe,
      image_type: 'default',
      block_migration: blockMigration,
      disk_over_commit: diskOverCommit,
      disk_available_mb: Math.floor((await storage.freeBytes()) / MiB),
      graphics_listen_addr_vnc: null,
      graphics_listen_addr_spice: null,
      serial_listen_addr: null,
      dst_supported_guests: supportedGuests(caps),
      dst_cpu_models: await cpuModels(deps, caps),
    };
    const source = instance.host;
    if (!source) throw new MigrationPreCheckError(`instance ${instance.uuid} has no source host`);
    try {
      return await computeApi.checkCanLiveMigrateSource(ctx, source, instanceArg(instance), destCheckData);
    } catch (err) {
      if (err instanceof Error && SOURCE_CHECK_ERRORS.includes(err.name)) throw err;
      throw new MigrationPreCheckError(`source check failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  } finally {
    await storage.removeProbe(probe);
  }
}

/** Usable custom CPU models for each virt type of this host's own arch (other arches are emulated anyway). */
async function cpuModels(deps: Pick<DestinationDeps, 'libvirt' | 'log'>, caps: string): Promise<Record<string, string[]>> {
  const arch = hostArch(caps);
  const out: Record<string, string[]> = {};
  for (const guest of supportedGuests(caps).filter((g) => g.startsWith(`${arch}/`))) {
    const virtType = guest.slice(guest.indexOf('/') + 1);
    try {
      out[guest] = usableCpuModels(await deps.libvirt.getDomainCapabilities({ arch, virtType }));
    } catch (err) {
      deps.log.warn({ err, guest }, 'no domain capabilities; CPU model not checked for it');
    }
  }
  return out;
}
