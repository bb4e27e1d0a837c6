// The destination side's entry points, one per compute RPC method it serves.

import type { LiveMigrateData, InstanceDiskInfo } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import { postLiveMigrationAtDestination } from './arrival.js';
import { checkCanLiveMigrateDestination } from './checks.js';
import type { DestinationDeps } from './deps.js';
import { preLiveMigration } from './prepare.js';
import { Preparations } from './preparations.js';
import { join } from 'node:path';
import { rollbackLiveMigrationAtDestination } from './rollback.js';

export class DestinationHandlers {
  private readonly preparations: Preparations;

  constructor(private readonly deps: DestinationDeps) {
    this.preparations = new Preparations(join(deps.config.state_path, 'preparations.json'), deps.log);
  }

  checkCanLiveMigrateDestination(ctx: RequestContext, instance: InstanceRef, blockMigration: boolean | null, diskOverCommit: boolean | null): Promise<LiveMigrateData> {
    return checkCanLiveMigrateDestination(this.deps, ctx, instance, blockMigration, diskOverCommit);
  }

  preLiveMigration(ctx: RequestContext, instance: InstanceRef, disks: InstanceDiskInfo[], migrateData: LiveMigrateData): Promise<LiveMigrateData> {
    return preLiveMigration(this.deps, this.preparations, ctx, instance, disks, migrateData);
  }

  postLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return postLiveMigrationAtDestination(this.deps, this.preparations, ctx, instance);
  }

  /** Removes what this host prepared for the instance; the caller's destroy_disks and migrate_data do not widen it. */
  rollbackLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return rollbackLiveMigrationAtDestination(this.deps, this.preparations, ctx, instance);
  }
}
