// The source side's entry points: the source pre-check, and each outgoing
// migration from queued through preparing and running to its final status.
// Operator abort and force-complete act on the migrations held here. At
// start, the unfinished migrations an earlier ferryd left are carried on
// (reconcile.ts decides how, from what libvirt says now).

import { randomUUID } from 'node:crypto';
import { findDomain } from '../domain/lookup.js';
import { JobType, type Domain } from '../libvirt/types.js';
import { MigrationControl } from '../monitor/control.js';
import { finishedJobFigures } from '../monitor/progress.js';
import type { MonitorOutcome } from '../monitor/loop.js';
import {
  InstanceNotFound,
  InvalidMigrationState,
  LiveMigrationNotSubmitted,
  MigrationError,
  MigrationNotFound,
  NoActiveMigrationForInstance,
  rescuedNotMigratable,
} from '../nova/errors.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import { instanceArg, type InstanceRef } from '../nova/objects.js';
import { pluggedPorts } from '../nova/vifs.js';
import type { MigrationRecord } from '../record/registry.js';
import { migrationLogger } from '../log/logger.js';
import { isFinal, MigrationStatus } from '../record/status.js';
import { contextFromDict } from '../rpc/context.js';
import { MessagingTimeout, RpcError } from '../rpc/errors.js';
import type { RequestContext } from '../rpc/types.js';
import type { SourceDeps } from './deps.js';
import { finishMigration, probeDestination } from './finish.js';
import { layoutMigration, planMigration, preflight, preflightLine } from './plan.js';
import { copyReadOnlyDisks } from './read-only-disks.js';
import { checkCanLiveMigrateSource, isRescued } from './precheck.js';
import { keepJournal, newJournal, readJournal, type LiveMigrationRequest, type SourceJournal } from './request.js';
import { rollBackDestination, rollbackMigration } from './rollback.js';
import { SlotQueue } from './slots.js';
import { migrateCall, transfer, type MigrateCall } from './transfer.js';
import { recoverPostcopy, ResumeSignal } from './postcopy-recovery.js';
import { carryOnFrom, reattachTransfer, type SourceFinding } from './reconcile.js';
import { connectionUri, validateHostname } from './uris.js';

/** A destination that cannot show where the guest is yet is asked again this often. */
const CONFIRM_RETRY_MS = 10_000;

/** A migration this host is running: its record, and the end-game control once the transfer started. */
interface Flight {
  record: MigrationRecord;
  instance: InstanceRef;
  /** This host's dependencies, with a logger whose every line names the migration, its instance and the request that started it. */
  deps: SourceDeps;
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
    return checkCanLiveMigrateSource(this.deps, dom, instance, destCheck);
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
      // A rescued guest goes only to a destination whose check said it takes one (an older one did not check).
      if (req.migrateData.dst_supports_live_migrate_rescued !== true && (await isRescued(this.deps.storage, req.instance))) throw rescuedNotMigratable('destination', req.dest);
    } catch (err) {
      return reject(err as Error);
    }
    // Checked after the await, with nothing async before create(): a concurrent cast cannot slip in between.
    if (registry.get(uuid)) reject(new MigrationError(`migration ${uuid} already exists`));
    const active = registry.active(req.instance.uuid);
    if (active) reject(new MigrationError(`instance ${req.instance.uuid} is already migrating (migration ${active.uuid}, ${active.status})`));
    const journal = newJournal(ctx, req);
    const record = registry.create({ ...this.recordInit(uuid, req), status: MigrationStatus.queued, journal: journal as unknown as Record<string, unknown> });
    this.launch(record, req.instance, ctx, (flight) => this.run(ctx, flight, dom, req, journal));
  }

  /**
   * Carries on every unfinished outgoing migration an earlier ferryd left.
   * Those libvirt still works on come first (they hold their slots), then
   * those queued or preparing, in the order they came. Each is in flight
   * when this returns: an operator's abort or force-complete reaches it as
   * soon as ferryd serves.
   */
  async reconcile(): Promise<void> {
    const { registry, log } = this.deps;
    const early = (s: MigrationStatus) => s === MigrationStatus.queued || s === MigrationStatus.preparing;
    const unfinished = registry.list().filter((r) => !isFinal(r.status));
    for (const record of [...unfinished.filter((r) => !early(r.status)), ...unfinished.filter((r) => early(r.status))]) {
      try {
        await this.carryOn(record);
      } catch (err) {
        // libvirt could not be asked: nothing is known, nothing is touched.
        log.error({ err, migration: record.uuid }, 'cannot carry on a migration left by an earlier ferryd');
        registry.update(record, { status: MigrationStatus.error, error: `ferryd restarted and could not carry the migration on: ${(err as Error).message}; neither host was touched` });
      }
    }
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
      // The transfer sets the control in the same step as the running status; a migration carried on
      // after a restart whose guest already left has none: there is no job left to abort.
      if (!flight.control) throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, 'abort live migration (the guest has left this host; finishing it)');
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
    flight.deps.log.info('operator asked to resume the post-copy migration');
  }

  /** The dependencies of one migration: the same, but lines logged through them name it. */
  private migrationDeps(record: MigrationRecord, ctx: RequestContext): SourceDeps {
    return { ...this.deps, log: migrationLogger(this.deps.log, { migration: record.uuid, instance: record.instanceUuid, requestId: ctx.request_id }) };
  }

  /** Holds the migration in flight while `body` runs it to its end. */
  private launch(record: MigrationRecord, instance: InstanceRef, ctx: RequestContext, body: (flight: Flight) => Promise<void>): void {
    const flight: Flight = { record, instance, deps: this.migrationDeps(record, ctx), control: null, resume: new ResumeSignal() };
    this.flights.set(record.uuid, flight);
    body(flight)
      .catch((err: unknown) => flight.deps.log.error({ err }, 'migration bookkeeping failed'))
      .finally(() => this.flights.delete(record.uuid));
  }

  private async run(ctx: RequestContext, flight: Flight, dom: Domain, req: LiveMigrationRequest, journal: SourceJournal): Promise<void> {
    const { deps } = flight;
    const { registry, log, config } = deps;
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
      const layout = await layoutMigration(deps.storage, dom, req);
      // The sample takes a second: taken while the destination prepares, it delays nothing. It never throws.
      const measuring = preflight(config.libvirt, dom, layout.running);
      const asked: LiveMigrateData = { ...req.migrateData, block_migration: layout.blockMigration };
      // Kept before the call: a restart while it is out finds a destination that may hold something.
      keepJournal(registry, record, { ...journal, prepared: asked });
      try {
        destState = await deps.computeApi.preLiveMigration(ctx, req.dest, instanceArg(req.instance), layout.disks, asked);
      } catch (err) {
        // A lost reply may hide a prepared destination: clean it unless it answered with a refusal.
        if (!(err instanceof RpcError) || err instanceof MessagingTimeout) destState = asked;
        else keepJournal(registry, record, { ...journal, prepared: null });
        throw err;
      }
      const plan = planMigration(config.libvirt, layout, req, await measuring, pluggedPorts(asked, destState, req.dest));
      if (plan.settings.preflight) log.info({ ...plan.settings.preflight }, preflightLine(plan.settings.preflight, { postCopy: config.libvirt.live_migration_permit_post_copy, autoConverge: config.libvirt.live_migration_permit_auto_converge }));
      call = migrateCall(config.libvirt, req, plan, destState, deps.libvirt.versions);
      keepJournal(registry, record, { ...journal, prepared: destState, call, steps: plan.steps });
      await copyReadOnlyDisks(deps, record, call.uri, plan.readOnlyDisks);
      if (abortClaimed()) throw new Cancelled('aborted while preparing');
      outcome = await transfer(deps, record, dom, plan, call, (control) => (flight.control = control));
    } catch (err) {
      const cancelled = err instanceof Cancelled;
      if (!cancelled) log.error({ err }, 'live migration failed');
      registry.update(record, { error: cancelled ? null : (err as Error).message });
      outcome = cancelled ? 'cancelled' : 'failed';
    }
    try {
      await this.conclude(ctx, flight, dom, req, destState, call, outcome);
    } finally {
      release?.();
    }
  }

  /** From the transfer's outcome to the final status: post-copy recovery, then finish or roll back. */
  private async conclude(
    ctx: RequestContext,
    flight: Flight,
    dom: Domain | null,
    req: LiveMigrationRequest,
    destState: LiveMigrateData | null,
    call: MigrateCall | null,
    outcome: MonitorOutcome | 'error',
  ): Promise<void> {
    const { deps, record } = flight;
    const { registry, log } = deps;
    try {
      if (outcome === 'postcopy_paused') {
        // The guest is split between the hosts: join it again, never roll it back.
        if (!call || !flight.control || !dom) throw new Error(`migration ${record.uuid} is post-copy paused without a transfer`);
        outcome = await recoverPostcopy(deps, record, dom, flight.control, call, flight.resume);
      }
      if (record.status === MigrationStatus.queued) registry.update(record, { status: MigrationStatus.cancelled });
      else if (outcome === 'error') return;
      else if (outcome === 'completed' && destState) await finishMigration(deps, ctx, record, req, destState, this.destinationUri(req, call));
      else await rollbackMigration(deps, ctx, record, flight.control, req, destState, outcome === 'cancelled' ? MigrationStatus.cancelled : MigrationStatus.failed);
    } catch (err) {
      // The guest runs on the destination already: never roll back, report.
      log.error({ err }, 'clean-up after the transfer failed');
      registry.update(record, { status: MigrationStatus.error, error: (err as Error).message });
    }
  }

  /** One unfinished migration found at start: carried on the way libvirt's state allows. */
  private async carryOn(record: MigrationRecord): Promise<void> {
    const { registry, libvirt } = this.deps;
    const journal = readJournal(record);
    if (!journal) {
      registry.update(record, { status: MigrationStatus.error, error: 'ferryd restarted and the record keeps nothing to carry the migration on with; neither host was touched' });
      return;
    }
    const req = journal.request;
    const ctx = contextFromDict(journal.context);
    const dom = await findDomain(libvirt, req.instance.uuid);
    const found: SourceFinding = dom
      ? { domain: 'present', state: await dom.getState(), job: await dom.getJobStats().catch(() => ({ type: JobType.NONE })) }
      : { domain: 'missing' };
    const next = carryOnFrom(record.status, found);
    this.migrationDeps(record, ctx).log.info({ status: record.status, carry_on: next.kind }, 'carrying on a migration left by an earlier ferryd');
    const { prepared, call } = journal;
    const withControl = (flight: Flight, d: Domain) => (flight.control = new MigrationControl(record, registry, d, flight.deps.log));
    switch (next.kind) {
      case 'report':
        registry.update(record, { status: MigrationStatus.error, error: next.error });
        return;
      case 'restart':
        if (!dom) {
          registry.update(record, { status: MigrationStatus.error, error: `${new InstanceNotFound(req.instance.uuid).message} after a restart` });
          return;
        }
        this.launch(record, req.instance, ctx, async (flight) => {
          // What an interrupted preparation left at the destination goes first: pre_live_migration refuses a folder that exists.
          if (prepared && !(await this.undoPreparation(ctx, flight, req, prepared))) return;
          await this.run(ctx, flight, dom, req, { ...journal, prepared: null, call: null });
        });
        return;
      case 'reattach':
        this.launch(record, req.instance, ctx, async (flight) => {
          const release = this.slots.take();
          try {
            const outcome = await reattachTransfer(flight.deps, record, dom!, journal.steps, (c) => (flight.control = c)).catch((err: unknown) => {
              registry.update(record, { error: (err as Error).message });
              return 'failed' as const;
            });
            await this.conclude(ctx, flight, dom!, req, prepared, call, outcome);
          } finally {
            release();
          }
        });
        return;
      case 'resume_postcopy':
      case 'roll_back':
        this.launch(record, req.instance, ctx, async (flight) => {
          const release = this.slots.take();
          try {
            withControl(flight, dom!);
            if (next.kind === 'roll_back') registry.update(record, { error: record.error ?? 'the migration job ended while ferryd was down; the guest stayed on this host' });
            await this.conclude(ctx, flight, dom!, req, prepared, call, next.kind === 'roll_back' ? 'failed' : 'postcopy_paused');
          } finally {
            release();
          }
        });
        return;
      case 'confirm_at_destination':
        this.launch(record, req.instance, ctx, async (flight) => {
          const arrived = await this.confirmArrival(flight, journal);
          if (!arrived) return;
          await this.conclude(ctx, flight, dom, req, prepared ?? req.migrateData, call, 'completed');
        });
        return;
    }
  }

  /**
   * Rolls back what an interrupted preparation left at the destination
   * (which removes only what it made itself). False when it could not: the
   * migration then ends failed, and the destination cleans up by itself.
   */
  private async undoPreparation(ctx: RequestContext, flight: Flight, req: LiveMigrationRequest, prepared: LiveMigrateData): Promise<boolean> {
    const { deps, record } = flight;
    try {
      await rollBackDestination(deps.computeApi, ctx, req, prepared);
      return true;
    } catch (err) {
      deps.log.error({ err }, 'restarted while preparing: the destination could not be rolled back');
      deps.registry.update(record, {
        status: MigrationStatus.failed,
        error: `ferryd restarted while preparing and ${req.dest} could not be rolled back (${(err as Error).message}); it removes what it prepared when its source says so`,
      });
      return false;
    }
  }

  /**
   * The source domain is gone: the guest left with the migration, but only
   * the destination's libvirt can show it runs there. Asked until it answers;
   * true once the guest runs there, false (migration in error, nothing
   * touched) when the destination has no running guest either.
   */
  private async confirmArrival(flight: Flight, journal: SourceJournal): Promise<boolean> {
    const { deps, record } = flight;
    const { registry, log } = deps;
    const { dest, instance } = journal.request;
    const uri = this.destinationUri(journal.request, journal.call);
    for (let attempt = 1; ; attempt++) {
      const there = await probeDestination(deps, uri, instance.uuid);
      if (there.kind === 'running') {
        log.info({ dest }, 'the guest runs on the destination: finishing the migration');
        // The source's figures went with its domain; the destination keeps the finished job's.
        registry.update(record, { ...(there.finished ? finishedJobFigures(there.finished) : {}), error: null });
        return true;
      }
      if (there.kind === 'absent') {
        const error = `ferryd restarted: the guest is no longer on this host and ${dest} has it ${there.shutOff ? 'shut off' : 'nowhere'}; neither host was touched`;
        log.error({ dest }, error);
        registry.update(record, { status: MigrationStatus.error, error });
        return false;
      }
      const why = there.kind === 'arriving' ? 'the guest is still arriving there' : there.why;
      log.warn({ dest, attempt, why }, 'cannot yet confirm where the guest runs; asking again');
      registry.update(record, { error: `waiting for ${dest} to show the guest running (attempt ${attempt}): ${why}` });
      await new Promise((r) => setTimeout(r, CONFIRM_RETRY_MS));
    }
  }

  /** The destination's libvirt: migrateToURI3's peer URI, or the one its name gives. */
  private destinationUri(req: LiveMigrationRequest, call: MigrateCall | null): string {
    return call?.uri ?? connectionUri(req.dest, this.deps.config.libvirt.live_migration_scheme, 'dest');
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
