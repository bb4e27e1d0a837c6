// A live_migration request as the source runs it, read from the RPC args.

import type { TimeoutAction } from '../record/status.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { InstanceRef, MigrationRef } from '../nova/objects.js';

export interface LiveMigrationRequest {
  instance: InstanceRef;
  dest: string;
  blockMigration: boolean | null;
  migrateData: LiveMigrateData;
  migration: MigrationRef;
  /** ferry's per-migration override of live_migration_completion_timeout (absolute seconds, 0 = none). */
  timeoutSeconds: number | null;
  onTimeout: TimeoutAction | null;
}
