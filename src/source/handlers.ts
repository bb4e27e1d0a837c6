// The source side's entry points: the source pre-check, and each outgoing
// migration from queued through preparing and running to its final status.
// Operator abort and force-complete act on the migrations held here.

import { randomUUID } from 'node:crypto';
import { findDomain } from '../domain/lookup.js';
import type { Domain } from '../libvirt/types.js';
import type { MigrationControl } from '../monitor/control.js';
import type { MonitorOutcome } from '../monitor/loop.js';
import {
  InstanceNotFound,
  InvalidMigrationState,
  LiveMigrationNotSubmitted,
  MigrationError,
  MigrationNotFound,
  NoActiveMigrationForInstance,
} from '../nova/errors.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import { instanceArg, type InstanceRef } from '../nova/objects.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import { MessagingTimeout, RpcError } from '../rpc/errors.js';
import type { RequestContext } from '../rpc/types.js';
import type { SourceDeps } from './deps.js';
import { finishMigration } from './finish.js';
import { planMigration } from './plan.js';
import { copyReadOnlyDisks } from './read-only-disks.js';
import { checkCanLiveMigrateSource } from './precheck.js';
import type { LiveMigrationRequest } from './request.js';
import { rollbackMigration } from './rollback.js';
import { SlotQueue } from './slots.js';
import { migrateCall, transfer, type MigrateCall } from './transfer.js';
import { recoverPostcopy, ResumeSignal } from './postcopy-recovery.js';
import { validateHostname } from './uris.js';

/** A migration this host is running: its record, and the end-game control once the transfer started. */
interface Flight {
  record: MigrationRecord;
  instance: InstanceRef;
  control: MigrationControl | null;
  /** Cuts a paused post-copy migration's backoff short (operator resume). */
  resume: ResumeSignal;
}

class Cancelled extends Error {}

export class SourceHandlers {
  private readonly slots: SlotQueue;
  private readonly flights = new Map<string, Flight>();
  private draining = false;

  constructor(private readonly deps: SourceDeps) {
    this.slots = new SlotQueue(deps.config.compute.max_concurrent_live_migrations);
  }

  /** Migrations this host is running (queued to rolled back). */
  get inFlight(): number {
    return this.flights.size;
  }

  /** From now on new migrations are refused (shutdown); running ones carry on. */
  drain(): void {
    this.draining = true;
  }

  async checkCanLiveMigrateSource(instance: InstanceRef, destCheck: LiveMigrateData): Promise<LiveMigrateData> {
    const dom = await this.guest(instance.uuid);
    return checkCanLiveMigrateSource(this.deps.storage, dom, instance, destCheck);
  }

  /** Nova's live_migration cast: validates, queues, then runs the migration in the background. */
  async liveMigration(ctx: RequestContext, req: LiveMigrationRequest): Promise<void> {
    const { registry } = this.deps;
    const uuid = req.migration.uuid ?? randomUUID();
    const reject = (err: Error): never => {
      // The refusal is recorded under the new migration only; a running one is never touched.
      if (!registry.get(uuid)) registry.create({ ...this.recordInit(uuid, req), status: MigrationStatus.error, error: err.message });
      throw err;
    };
    if (this.draining) reject(new LiveMigrationNotSubmitted(uuid, req.instance.uuid));
    try {
      validateHostname(req.dest);
    } catch (err) {
      reject(err as Error);
    }
    let dom: Domain;
    try {
      dom = await this.guest(req.instance.uuid);
    } catch (err) {
      return reject(err as Error);
    }
    // Checked after the await, with nothing async before create(): a concurrent cast cannot slip in between.
    if (registry.get(uuid)) reject(new MigrationError(`migration ${uuid} already exists`));
    const active = registry.active(req.instance.uuid);
    if (active) reject(new MigrationError(`instance ${req.instance.uuid} is already migrating (migration ${active.uuid}, ${active.status})`));
    const record = registry.create({ ...this.recordInit(uuid, req), status: MigrationStatus.queued });
    const flight: Flight = { record, instance: req.instance, control: null, resume: new ResumeSignal() };
    this.flights.set(uuid, flight);
    this.run(ctx, flight, dom, req)
      .catch((err: unknown) => this.deps.log.error({ err, migration: uuid }, 'migration bookkeeping failed'))
      .finally(() => this.flights.delete(uuid));
  }

  /** Operator abort (Nova's live_migration_abort), valid while queued, preparing or running. */
  async abort(ctx: RequestContext, instanceUuid: string, migrationId: number | string): Promise<void> {
    const flight = this.findFlight(instanceUuid, migrationId);
    const { record } = flight;
    const { registry } = this.deps;
    await this.deps.notifications.around(ctx, 'live_migration_abort', flight.instance, async () => {
      switch (record.status) {
        case MigrationStatus.queued:
          this.slots.withdraw(record.uuid, new Cancelled('aborted while queued'));
          registry.claim(record, 'abort');
          return;
        case MigrationStatus.preparing:
          // Before the transfer the claim is the request: run() ends the migration at its next step.
          registry.claim(record, 'abort');
          return;
        case MigrationStatus.running:
        case MigrationStatus.postcopy:
          break;
        default:
          throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, 'abort live migration');
      }
      // The transfer sets the control in the same step as the running status.
      if (!flight.control) throw new Error(`migration ${record.uuid} is ${record.status} without a control`);
      const result = await flight.control.abort('operator');
      if (!result.acted) throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, `abort live migration (${result.reason})`);
    });
  }

  /** Operator force-complete (Nova's live_migration_force_complete), valid only while running. */
  async forceComplete(ctx: RequestContext, instanceUuid: string): Promise<void> {
    const active = this.deps.registry.active(instanceUuid);
    const flight = active ? this.flights.get(active.uuid) : undefined;
    if (!flight) throw new NoActiveMigrationForInstance(instanceUuid);
    await this.deps.notifications.around(ctx, 'live_migration_force_complete', flight.instance, async () => {
      const { record } = flight;
      if (!flight.control || record.status !== MigrationStatus.running) {
        throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, 'force complete live migration');
      }
      const result = await flight.control.forceComplete('operator');
      if (!result.acted) {
        throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, `force complete live migration (${result.reason})`);
      }
    });
  }

  /**
   * Operator resume of a paused post-copy migration (ferry's own method): the
   * next attempt now instead of at the end of its backoff.
   */
  async resumePostcopy(instanceUuid: string): Promise<void> {
    const active = this.deps.registry.active(instanceUuid);
    const flight = active ? this.flights.get(active.uuid) : undefined;
    if (!flight) throw new NoActiveMigrationForInstance(instanceUuid);
    const { record } = flight;
    const refuse = (why: string) => new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, `resume live migration (${why})`);
    if (record.status !== MigrationStatus.postcopyPaused) throw refuse('only a paused post-copy migration resumes');
    if (!flight.resume.kick()) throw refuse('a resume is already under way');
    this.deps.log.info({ migration: record.uuid, instance: instanceUuid }, 'operator asked to resume the post-copy migration');
  }

  private async run(ctx: RequestContext, flight: Flight, dom: Domain, req: LiveMigrationRequest): Promise<void> {
    const { registry, log, config } = this.deps;
    const { record } = flight;
    const abortClaimed = () => record.claimedAction === 'abort';
    let release: (() => void) | null = null;
    // Set once the destination holds something to undo; a destination that refused undid its own work.
    let destState: LiveMigrateData | null = null;
    let outcome: MonitorOutcome | 'error';
    let call: MigrateCall | null = null;
    try {
      release = await this.slots.acquire(record.uuid);
      if (abortClaimed()) throw new Cancelled('aborted while queued');
      registry.update(record, { status: MigrationStatus.preparing });
      const plan = await planMigration(config.libvirt, this.deps.storage, dom, req);
      const asked: LiveMigrateData = { ...req.migrateData, block_migration: plan.blockMigration };
      try {
        destState = await this.deps.computeApi.preLiveMigration(ctx, req.dest, instanceArg(req.instance), plan.disks, asked);
      } catch (err) {
        // A lost reply may hide a prepared destination: clean it unless it answered with a refusal.
        if (!(err instanceof RpcError) || err instanceof MessagingTimeout) destState = asked;
        throw err;
      }
      call = migrateCall(config.libvirt, req, plan, destState);
      await copyReadOnlyDisks(this.deps, record, call.uri, plan.readOnlyDisks);
      if (abortClaimed()) throw new Cancelled('aborted while preparing');
      outcome = await transfer(this.deps, record, dom, plan, call, (control) => (flight.control = control));
    } catch (err) {
      const cancelled = err instanceof Cancelled;
      if (!cancelled) log.error({ err, migration: record.uuid, instance: record.instanceUuid }, 'live migration failed');
      registry.update(record, { error: cancelled ? null : (err as Error).message });
      outcome = cancelled ? 'cancelled' : 'failed';
    }
    try {
      if (outcome === 'postcopy_paused') {
        // The guest is split between the hosts: join it again, never roll it back.
        if (!call || !flight.control) throw new Error(`migration ${record.uuid} is post-copy paused without a transfer`);
        outcome = await recoverPostcopy(this.deps, record, dom, flight.control, call, flight.resume);
      }
      if (record.status === MigrationStatus.queued) registry.update(record, { status: MigrationStatus.cancelled });
      else if (outcome === 'error') return;
      else if (outcome === 'completed' && destState) await finishMigration(this.deps, ctx, record, req, destState);
      else await rollbackMigration(this.deps, ctx, record, flight.control, req, destState, outcome === 'cancelled' ? MigrationStatus.cancelled : MigrationStatus.failed);
    } catch (err) {
      // The guest runs on the destination already: never roll back, report.
      log.error({ err, migration: record.uuid }, 'clean-up after the transfer failed');
      registry.update(record, { status: MigrationStatus.error, error: (err as Error).message });
    } finally {
      release?.();
    }
  }

  private recordInit(uuid: string, req: LiveMigrationRequest) {
    return {
      uuid,
      id: req.migration.id,
      instanceUuid: req.instance.uuid,
      instanceName: req.instance.name,
      sourceCompute: this.deps.host,
      destCompute: req.dest,
    };
  }

  private findFlight(instanceUuid: string, migrationId: number | string): Flight {
    const byId = typeof migrationId === 'number' ? this.deps.registry.findById(migrationId) : this.deps.registry.get(migrationId);
    if (!byId || byId.instanceUuid !== instanceUuid) throw new MigrationNotFound(migrationId);
    const flight = this.flights.get(byId.uuid);
    if (!flight) throw new InvalidMigrationState(byId.id ?? byId.uuid, instanceUuid, byId.status, 'abort live migration');
    return flight;
  }

  /** The instance's domain here; InstanceNotFound (Nova's error) when there is none. */
  private async guest(uuid: string): Promise<Domain> {
    const dom = await findDomain(this.deps.libvirt, uuid);
    if (!dom) throw new InstanceNotFound(uuid);
    return dom;
  }
}
