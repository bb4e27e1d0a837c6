// The destination side's entry points, one per compute RPC method it serves.

import { requestLogger } from '../log/logger.js';
import type { LiveMigrateData, InstanceDiskInfo } from '../nova/migrate-data.js';
import type { InstanceRef } from '../nova/objects.js';
import type { RequestContext } from '../rpc/types.js';
import { postLiveMigrationAtDestination } from './arrival.js';
import { checkCanLiveMigrateDestination } from './checks.js';
import type { DestinationDeps } from './deps.js';
import { preLiveMigration } from './prepare.js';
import { Preparations } from './preparations.js';
import { join } from 'node:path';
import { reconcileIncoming } from './reconcile.js';
import { rollbackLiveMigrationAtDestination } from './rollback.js';

/** Incoming migrations not settled at start are looked at again this often. */
const RECONCILE_EVERY_MS = 30_000;

export class DestinationHandlers {
  private readonly preparations: Preparations;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly startedAt = Date.now();

  constructor(private readonly deps: DestinationDeps) {
    this.preparations = new Preparations(join(deps.config.state_path, 'preparations.json'), deps.log);
  }

  /**
   * Incoming migrations this run prepared that have not arrived or been
   * rolled back. Those an earlier run left are the reconcile's, not waited for.
   */
  get inFlight(): number {
    return this.preparations.list().filter((p) => Date.parse(p.at) >= this.startedAt).length;
  }

  /**
   * Settles the incoming migrations an earlier ferryd prepared (reconcile.ts),
   * now and then every 30 s until none is left undecided.
   */
  async reconcile(): Promise<void> {
    const undecided = await reconcileIncoming(this.deps, this.preparations);
    if (undecided > 0 && !this.stopped && this.reconcileTimer === null) {
      this.reconcileTimer = setTimeout(() => {
        this.reconcileTimer = null;
        void this.reconcile();
      }, RECONCILE_EVERY_MS);
      this.reconcileTimer.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    this.reconcileTimer = null;
  }

  /**
   * The dependencies for one request about an incoming guest: lines logged
   * through them name the instance and the request id, which is the one the
   * source's lines about the migration carry (it passes its context on).
   */
  private forRequest(ctx: RequestContext, instance: InstanceRef): DestinationDeps {
    return { ...this.deps, log: requestLogger(this.deps.log, { instance: instance.uuid, requestId: ctx.request_id }) };
  }

  checkCanLiveMigrateDestination(ctx: RequestContext, instance: InstanceRef, blockMigration: boolean | null, diskOverCommit: boolean | null): Promise<LiveMigrateData> {
    return checkCanLiveMigrateDestination(this.forRequest(ctx, instance), ctx, instance, blockMigration, diskOverCommit);
  }

  preLiveMigration(ctx: RequestContext, instance: InstanceRef, disks: InstanceDiskInfo[], migrateData: LiveMigrateData): Promise<LiveMigrateData> {
    return preLiveMigration(this.forRequest(ctx, instance), this.preparations, ctx, instance, disks, migrateData);
  }

  postLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return postLiveMigrationAtDestination(this.forRequest(ctx, instance), this.preparations, ctx, instance);
  }

  /** Removes what this host prepared for the instance; the caller's destroy_disks and migrate_data do not widen it. */
  rollbackLiveMigrationAtDestination(ctx: RequestContext, instance: InstanceRef): Promise<null> {
    return rollbackLiveMigrationAtDestination(this.forRequest(ctx, instance), this.preparations, ctx, instance);
  }
}
