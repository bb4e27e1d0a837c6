// What Nova's conductor does to start a live migration, for ferryctl and the
// test conductor: the destination check (which calls the source's), then the
// live_migration cast to the source with the migrate data it returned.

import { randomUUID } from 'node:crypto';
import type { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { VifMigrateData } from '../nova/vifs.js';
import type { TimeoutAction } from '../record/status.js';
import type { RequestContext } from '../rpc/types.js';

export interface StartMigrationRequest {
  instance: Record<string, unknown> & { uuid: string };
  source: string;
  dest: string;
  /** null lets the source decide from the storage it finds (Nova's "auto"). */
  blockMigration: boolean | null;
  timeoutSeconds?: number | null;
  onTimeout?: TimeoutAction | null;
  actOnStall?: boolean | null;
  migrationId?: number | null;
  /** The ports' bindings on the destination (migrate_data.vifs), as Nova's conductor adds them after the checks. */
  vifs?: VifMigrateData[];
}

export interface StartedMigration {
  migrationUuid: string;
  migrateData: LiveMigrateData;
}

export async function startLiveMigration(api: ComputeRpcApi, ctx: RequestContext, req: StartMigrationRequest): Promise<StartedMigration> {
  const instance = { ...req.instance, host: req.source };
  const checked = await api.checkCanLiveMigrateDestination(ctx, req.dest, instance, req.blockMigration, false);
  const migrateData = req.vifs ? { ...checked, vifs: req.vifs } : checked;
  const migrationUuid = randomUUID();
  await api.liveMigration(ctx, req.source, {
    instance,
    dest: req.dest,
    block_migration: migrateData.block_migration ?? req.blockMigration,
    migrate_data: migrateData,
    migration: { id: req.migrationId ?? null, uuid: migrationUuid },
    timeout_seconds: req.timeoutSeconds ?? null,
    on_timeout: req.onTimeout ?? null,
    act_on_stall: req.actOnStall ?? null,
  });
  return { migrationUuid, migrateData };
}

export function operatorContext(roles: string[] = ['admin']): RequestContext {
  const request_id = `req-${randomUUID()}`;
  const is_admin = roles.includes('admin');
  return { request_id, roles, is_admin, user_id: 'ferryctl', raw: { request_id, roles, is_admin, user_id: 'ferryctl' } };
}
