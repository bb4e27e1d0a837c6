// The destination side's entry points, one per compute RPC method it serves.

import type { LiveMigrateData, InstanceDiskInfo } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import { postLiveMigrationAtDestination } from './arrival.js';
import { checkCanLiveMigrateDestination } from './checks.js';
import type { DestinationDeps } from './deps.js';
import { preLiveMigration } from './prepare.js';
import { rollbackLiveMigrationAtDestination } from './rollback.js';

export class DestinationHandlers {
  constructor(private readonly deps: DestinationDeps) {}

  checkCanLiveMigrateDestination(ctx: RequestContext, instance: InstanceRef, blockMigration: boolean | null, diskOverCommit: boolean | null): Promise<LiveMigrateData> {
    return checkCanLiveMigrateDestination(this.deps, ctx, instance, blockMigration, diskOverCommit);
  }

  preLiveMigration(ctx: RequestContext, instance: InstanceRef, disks: InstanceDiskInfo[], migrateData: LiveMigrateData): Promise<LiveMigrateData> {
    return preLiveMigration(this.deps, ctx, instance, disks, migrateData);
  }

  postLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return postLiveMigrationAtDestination(this.deps, ctx, instance);
  }

  rollbackLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef, destroyDisks: boolean, migrateData: LiveMigrateData): Promise<null> {
    return rollbackLiveMigrationAtDestination(this.deps, ctx, instance, destroyDisks, migrateData);
  }
}
