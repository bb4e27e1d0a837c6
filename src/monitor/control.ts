// The end-game actions on a running migration: abort, or force completion by
// post-copy or by pausing the guest. The operator and the timeout both come
// through here; the first to claim a migration acts, every later claim is
// refused, so a manual action racing the timeout never does both. The claim
// and whether we paused the guest live on the migration record.

import type { Domain } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import { InvalidMigrationState } from '../nova/errors.js';
import type { MigrationRecord, MigrationRegistry } from '../record/registry.js';
import { inPostcopy, isFinal, MigrationStatus } from '../record/status.js';

/** Who asked: an operator, the completion timeout, or the adaptive convergence policy before it. */
export type ActionSource = 'operator' | 'timeout' | 'convergence';
export type ForceCompleteMode = 'postcopy' | 'pause';

export interface ActionResult {
  acted: boolean;
  /** Why nothing was done, when acted is false. */
  reason?: string;
  mode?: ForceCompleteMode;
}

export class MigrationControl {
  constructor(
    private readonly record: MigrationRecord,
    private readonly registry: MigrationRegistry,
    private readonly domain: Domain,
    private readonly log: Logger,
  ) {}

  /** Operator-facing check for abort: only a pre-copy transfer can be cancelled. */
  async abort(source: ActionSource): Promise<ActionResult> {
    const r = this.record;
    if (inPostcopy(r.status)) {
      throw new InvalidMigrationState(r.id ?? r.uuid, r.instanceUuid, r.status, 'abort live migration');
    }
    if (!this.registry.claim(r, 'abort')) return { acted: false, reason: `already claimed by ${r.claimedAction}` };
    this.registry.noteAction(r, 'abort', source);
    this.log.info({ source }, 'aborting migration job');
    await this.timed('abortJob', source, this.domain.abortJob());
    return { acted: true };
  }

  /** Force completion the way the migration allows: post-copy when permitted, else pause. */
  async forceComplete(source: ActionSource): Promise<ActionResult> {
    return this.finishBy(this.record.settings?.postCopyPermitted ? 'postcopy' : 'pause', source);
  }

  async finishBy(mode: ForceCompleteMode, source: ActionSource): Promise<ActionResult> {
    const r = this.record;
    if (r.status !== MigrationStatus.running) {
      throw new InvalidMigrationState(r.id ?? r.uuid, r.instanceUuid, r.status, 'force complete live migration');
    }
    if (!this.registry.claim(r, 'force_complete')) return { acted: false, reason: `already claimed by ${r.claimedAction}` };
    this.registry.noteAction(r, mode === 'postcopy' ? 'start_postcopy' : 'pause', source);
    // Where the migration stood: the pass (libvirt's iteration) and the model's stall verdict.
    this.log.info({ source, mode, iteration: r.iteration, stalled: r.convergence?.stalled ?? null }, 'forcing migration to complete');
    if (mode === 'postcopy') {
      await this.timed('migrateStartPostCopy', source, this.domain.migrateStartPostCopy());
      this.registry.update(r, { status: MigrationStatus.postcopy });
    } else {
      await this.timed('suspend', source, this.domain.suspend());
      this.registry.update(r, { pausedByUs: true });
      // The migration ended (and was rolled back) while the pause was on its way: undo it now.
      if (isFinal(r.status)) await this.resumeIfPaused();
    }
    return { acted: true, mode };
  }

  /** Undo our pause on the source after a failed or cancelled migration. */
  async resumeIfPaused(): Promise<void> {
    if (!this.record.pausedByUs) return;
    this.registry.update(this.record, { pausedByUs: false });
    try {
      await this.domain.resume();
    } catch (err) {
      this.log.error({ err }, 'could not resume the guest on the source');
    }
  }

  /**
   * Awaits the libvirt call and logs when it returned (operators and the
   * latency benchmark read this). If libvirt refused, nothing was done: the
   * claim is freed for a retry or the timeout.
   */
  private async timed(call: string, source: ActionSource, action: Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await action;
    } catch (err) {
      this.registry.release(this.record);
      throw err;
    }
    this.log.info({ source, call, ms: Math.round((performance.now() - started) * 10) / 10 }, 'migration action returned');
  }
}
