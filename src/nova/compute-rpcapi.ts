// The client side of the compute RPC API (Nova's compute/rpcapi.py): which
// topic, server, kind (call or cast) and timeout each method uses. ferry's
// agents, ferryctl and the test conductor all call hosts through this.

import type { TimeoutAction } from '../record/status.js';
import type { RequestContext, RpcClient } from '../rpc/types.js';
import type { InstanceDiskInfo, LiveMigrateData } from './migrate-data.js';
import type { MigrationView } from './migration-view.js';

/** The version every request is sent as: Nova's _ver() sends '6.0'; with none, oslo dispatches as 1.0 and a 6.x endpoint refuses it. */
export const COMPUTE_RPC_SEND_VERSION = '6.0';

export interface ComputeRpcTimeouts {
  /** rpc_response_timeout: plain calls, and the call-monitor interval of long ones. */
  rpcResponseTimeout: number;
  /** long_rpc_timeout: calls that may take minutes. */
  longRpcTimeout: number;
}

export interface LiveMigrationArgs {
  instance: Record<string, unknown>;
  dest: string;
  block_migration: boolean | null;
  migrate_data: LiveMigrateData;
  migration: { id?: number | null; uuid: string };
  timeout_seconds?: number | null;
  on_timeout?: TimeoutAction | null;
  act_on_stall?: boolean | null;
}

export class ComputeRpcApi {
  constructor(
    private readonly rpc: RpcClient,
    private readonly timeouts: ComputeRpcTimeouts,
  ) {}

  private target(topic: 'compute' | 'compute-alt', server: string) {
    return { topic, server, version: COMPUTE_RPC_SEND_VERSION };
  }

  private get long() {
    return { timeout: this.timeouts.longRpcTimeout, callMonitorTimeout: this.timeouts.rpcResponseTimeout };
  }

  checkCanLiveMigrateDestination(ctx: RequestContext, dest: string, instance: Record<string, unknown>, blockMigration: boolean | null, diskOverCommit: boolean | null): Promise<LiveMigrateData> {
    return this.rpc.call(ctx, this.target('compute', dest), 'check_can_live_migrate_destination',
      { instance, block_migration: blockMigration, disk_over_commit: diskOverCommit, migration: null, limits: null }, this.long);
  }

  checkCanLiveMigrateSource(ctx: RequestContext, source: string, instance: Record<string, unknown>, destCheckData: LiveMigrateData): Promise<LiveMigrateData> {
    return this.rpc.call(ctx, this.target('compute', source), 'check_can_live_migrate_source',
      { instance, dest_check_data: destCheckData }, { timeout: this.timeouts.rpcResponseTimeout });
  }

  preLiveMigration(ctx: RequestContext, dest: string, instance: Record<string, unknown>, disk: InstanceDiskInfo[], migrateData: LiveMigrateData): Promise<LiveMigrateData> {
    return this.rpc.call(ctx, this.target('compute-alt', dest), 'pre_live_migration',
      { instance, disk, migrate_data: migrateData }, this.long);
  }

  liveMigration(ctx: RequestContext, source: string, args: LiveMigrationArgs): Promise<void> {
    return this.rpc.cast(ctx, this.target('compute-alt', source), 'live_migration', { ...args });
  }

  postLiveMigrationAtDestination(ctx: RequestContext, dest: string, instance: Record<string, unknown>, blockMigration: boolean): Promise<null> {
    return this.rpc.call(ctx, this.target('compute-alt', dest), 'post_live_migration_at_destination',
      { instance, block_migration: blockMigration }, this.long);
  }

  /** Nova casts this; ferry's source calls it so it knows the destination is clean before it reports. */
  rollbackLiveMigrationAtDestination(ctx: RequestContext, dest: string, instance: Record<string, unknown>, destroyDisks: boolean, migrateData: LiveMigrateData): Promise<null> {
    return this.rpc.call(ctx, this.target('compute-alt', dest), 'rollback_live_migration_at_destination',
      { instance, destroy_disks: destroyDisks, migrate_data: migrateData }, this.long);
  }

  /** A cast as in Nova; `call` waits and surfaces the refusal (not found, invalid state, forbidden). */
  async liveMigrationAbort(ctx: RequestContext, source: string, instance: Record<string, unknown>, migrationId: number | string, kind: 'cast' | 'call' = 'cast'): Promise<void> {
    const target = this.target('compute', source);
    const args = { instance, migration_id: migrationId };
    if (kind === 'cast') return this.rpc.cast(ctx, target, 'live_migration_abort', args);
    await this.rpc.call(ctx, target, 'live_migration_abort', args, { timeout: this.timeouts.rpcResponseTimeout });
  }

  async liveMigrationForceComplete(ctx: RequestContext, source: string, instance: Record<string, unknown>, kind: 'cast' | 'call' = 'cast'): Promise<void> {
    const target = this.target('compute', source);
    if (kind === 'cast') return this.rpc.cast(ctx, target, 'live_migration_force_complete', { instance });
    await this.rpc.call(ctx, target, 'live_migration_force_complete', { instance }, { timeout: this.timeouts.rpcResponseTimeout });
  }

  /** ferry's operator resume of a paused post-copy migration; a call, so the refusal comes back. */
  async liveMigrationResume(ctx: RequestContext, source: string, instance: Record<string, unknown>): Promise<void> {
    await this.rpc.call(ctx, this.target('compute', source), 'live_migration_resume', { instance }, { timeout: this.timeouts.rpcResponseTimeout });
  }

  listMigrations(ctx: RequestContext, host: string, instanceUuid?: string): Promise<MigrationView[]> {
    return this.rpc.call(ctx, this.target('compute', host), 'list_migrations',
      { instance_uuid: instanceUuid ?? null }, { timeout: this.timeouts.rpcResponseTimeout });
  }
}
