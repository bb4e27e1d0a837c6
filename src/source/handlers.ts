// Source side of a live migration: the source pre-check, and each migration
// from queued through preparing and running to completed, failed or cancelled.
// Operator abort and force-complete act on the migrations held here.

import { randomUUID } from 'node:crypto';
import { DomainState, isVirError, MigrateFlag, VirErrorCode, XmlFlag, type Domain, type MigrateParams } from '../libvirt/types.js';
import { MessagingTimeout, RpcError } from '../rpc/errors.js';
import type { RequestContext } from '../rpc/types.js';
import type { ComputeDeps } from './deps.js';
import { MigrationControl } from '../monitor/control.js';
import { instanceArg } from '../destination/handlers.js';
import { selectMigrateDisks } from '../domain/disks.js';
import { guestCpu, guestFacts } from '../domain/facts.js';
import { destinationXml } from '../domain/destination-xml.js';
import {
  Forbidden,
  InstanceNotFound,
  InvalidLocalStorage,
  InvalidMigrationState,
  InvalidSharedStorage,
  LiveMigrationNotSubmitted,
  MigrationError,
  MigrationNotFound,
  MigrationPreCheckError,
  NoActiveMigrationForInstance,
} from '../nova/errors.js';
import { hasFlag, migrationFlags } from './flags.js';
import type { InstanceDiskInfo, LiveMigrateData } from '../nova/migrate-data.js';
import { runMonitor, type MonitorOutcome } from '../monitor/loop.js';
import type { InstanceRef, MigrationRef } from '../nova/objects.js';
import { downtimeSteps, timedDowntimeSteps } from '../monitor/policy.js';
import { dataGb } from '../monitor/progress.js';
import type { MigrationRecord, MigrationSettings } from '../record/registry.js';
import { SlotQueue } from './slots.js';
import { MigrationStatus, type TimeoutAction } from '../record/status.js';
import { connectionUri, dataUri, validateHostname } from './uris.js';

const MiB = 1024 * 1024;

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

/** A migration this host is running, with what abort needs at each stage. */
interface Flight {
  record: MigrationRecord;
  instance: InstanceRef;
  /** Set once the transfer started; abort and force-complete go through it. */
  control: MigrationControl | null;
  /** Abort requested before the transfer started. */
  abortRequested: boolean;
}

class Cancelled extends Error {}

export class SourceHandlers {
  private readonly slots: SlotQueue;
  private readonly flights = new Map<string, Flight>();
  private draining = false;

  constructor(private readonly deps: ComputeDeps) {
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

  /** Nova's check_can_live_migrate_source: shared storage detection and the impossible combinations. */
  async checkCanLiveMigrateSource(instance: InstanceRef, destCheck: LiveMigrateData): Promise<LiveMigrateData> {
    const { storage } = this.deps;
    const dom = await this.lookup(instance.uuid);
    const xml = await dom.getXMLDesc(XmlFlag.MIGRATABLE);
    this.assertGuestSupported(xml, destCheck);
    const isSharedInstancePath = destCheck.filename ? await storage.probeVisible(destCheck.filename) : false;
    const local = selectMigrateDisks(xml, instance.volumes.map((v) => v.dev));
    const isVolumeBacked = local.devs.length === 0;
    const isSharedBlockStorage = isVolumeBacked || isSharedInstancePath;
    const blockMigration = destCheck.block_migration ?? !isSharedBlockStorage;
    const where = storage.instanceDir(instance.uuid);
    if (blockMigration && isSharedBlockStorage) {
      throw new InvalidLocalStorage(where, 'Block migration can not be used with shared storage.');
    }
    if (!blockMigration && !isSharedBlockStorage) {
      throw new InvalidSharedStorage(
        where,
        'Shared storage live-migration requires either shared storage or boot-from-volume with no local disks.',
      );
    }
    if (blockMigration) {
      const disks = await Promise.all(local.devs.map((dev, i) => storage.describeDisk(dev, local.paths[i] ?? '')));
      const needed = disks.reduce((sum, d) => sum + (destCheck.disk_over_commit ? d.actualSize : d.virtualSize), 0);
      const availableMb = destCheck.disk_available_mb ?? 0;
      if (needed > availableMb * MiB) {
        throw new MigrationPreCheckError(
          `Unable to migrate ${instance.uuid}: Disk of instance is too large (available on destination host: ${availableMb} MiB < need: ${Math.ceil(needed / MiB)} MiB)`,
        );
      }
    }
    return {
      ...destCheck,
      block_migration: blockMigration,
      is_shared_instance_path: isSharedInstancePath,
      is_shared_block_storage: isSharedBlockStorage,
      is_volume_backed: isVolumeBacked,
      instance_relative_path: instance.uuid,
    };
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
      dom = await this.lookup(req.instance.uuid);
    } catch (err) {
      return reject(err as Error);
    }
    // Checked after the await, with nothing async before create(): a concurrent cast cannot slip in between.
    if (registry.get(uuid)) reject(new MigrationError(`migration ${uuid} already exists`));
    const active = registry.active(req.instance.uuid);
    if (active) reject(new MigrationError(`instance ${req.instance.uuid} is already migrating (migration ${active.uuid}, ${active.status})`));
    const record = registry.create({ ...this.recordInit(uuid, req), status: MigrationStatus.queued });
    const flight: Flight = { record, instance: req.instance, control: null, abortRequested: false };
    this.flights.set(uuid, flight);
    this.run(ctx, flight, dom, req)
      .catch((err: unknown) => this.deps.log.error({ err, migration: uuid }, 'migration bookkeeping failed'))
      .finally(() => this.flights.delete(uuid));
  }

  /** Operator abort (Nova's live_migration_abort), valid while queued, preparing or running. */
  async abort(ctx: RequestContext, instanceUuid: string, migrationId: number | string): Promise<void> {
    this.authorize(ctx, 'os_compute_api:servers:migrations:delete');
    const flight = this.findFlight(instanceUuid, migrationId);
    const { record } = flight;
    await this.deps.notifications.around(ctx, 'live_migration_abort', flight.instance, async () => {
      switch (record.status) {
        case MigrationStatus.queued:
          this.slots.withdraw(record.uuid, new Cancelled('aborted while queued'));
          flight.abortRequested = true;
          return;
        case MigrationStatus.preparing:
          flight.abortRequested = true;
          return;
        case MigrationStatus.running:
        case MigrationStatus.postcopy: {
          if (!flight.control) {
            flight.abortRequested = true;
            return;
          }
          const result = await flight.control.abort('operator');
          if (!result.acted) throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, `abort live migration (${result.reason})`);
          return;
        }
        default:
          throw new InvalidMigrationState(record.id ?? record.uuid, instanceUuid, record.status, 'abort live migration');
      }
    });
  }

  /** Operator force-complete (Nova's live_migration_force_complete), valid only while running. */
  async forceComplete(ctx: RequestContext, instanceUuid: string): Promise<void> {
    this.authorize(ctx, 'os_compute_api:servers:migrations:force_complete');
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

  private async run(ctx: RequestContext, flight: Flight, dom: Domain, req: LiveMigrationRequest): Promise<void> {
    const { registry, log } = this.deps;
    const { record } = flight;
    let release: (() => void) | null = null;
    // Set once the destination holds something to undo; a destination that refused undid its own work.
    let destState: LiveMigrateData | null = null;
    let outcome: MonitorOutcome;
    try {
      release = await this.slots.acquire(record.uuid);
      if (flight.abortRequested) throw new Cancelled('aborted while queued');
      registry.update(record, { status: MigrationStatus.preparing });
      const plan = await this.plan(dom, req);
      const asked: LiveMigrateData = { ...req.migrateData, block_migration: plan.blockMigration };
      try {
        destState = await this.deps.computeApi.preLiveMigration(ctx, req.dest, instanceArg(req.instance), plan.disks, asked);
      } catch (err) {
        // A lost reply may hide a prepared destination: clean it unless it answered with a refusal.
        if (!(err instanceof RpcError) || err instanceof MessagingTimeout) destState = asked;
        throw err;
      }
      if (flight.abortRequested) throw new Cancelled('aborted while preparing');
      outcome = await this.transfer(flight, dom, req, plan, destState);
    } catch (err) {
      const cancelled = err instanceof Cancelled;
      if (!cancelled) log.error({ err, migration: record.uuid, instance: record.instanceUuid }, 'live migration failed');
      registry.update(record, { error: cancelled ? null : (err as Error).message });
      outcome = cancelled ? 'cancelled' : 'failed';
    }
    try {
      if (record.status === MigrationStatus.queued) registry.update(record, { status: MigrationStatus.cancelled });
      else if (outcome === 'completed' && destState) await this.finish(ctx, flight, req, destState);
      else await this.rollback(ctx, flight, req, destState, outcome === 'cancelled' ? MigrationStatus.cancelled : MigrationStatus.failed);
    } catch (err) {
      // The guest runs on the destination already: never roll back, report.
      log.error({ err, migration: record.uuid }, 'clean-up after the transfer failed');
      registry.update(record, { status: MigrationStatus.error, error: (err as Error).message });
    } finally {
      release?.();
    }
  }

  /** What to copy and how: disks, size, flags, timeout and downtime schedule. */
  private async plan(dom: Domain, req: LiveMigrationRequest) {
    const { config, storage } = this.deps;
    const lv = config.libvirt;
    const xml = await dom.getXMLDesc(XmlFlag.MIGRATABLE);
    const blockMigration = req.blockMigration ?? req.migrateData.block_migration ?? false;
    const selected = blockMigration ? selectMigrateDisks(xml, req.instance.volumes.map((v) => v.dev)) : { paths: [], devs: [] };
    const described = await Promise.all(selected.devs.map((dev, i) => storage.describeDisk(dev, selected.paths[i] ?? '')));
    const disks: InstanceDiskInfo[] = described.map((d) => ({
      path: d.path,
      type: d.format,
      virt_disk_size: d.virtualSize,
      disk_size: d.actualSize,
      dev: d.dev,
    }));
    const memoryMb = req.instance.memoryMb ?? guestFacts(xml).memoryMb;
    const gb = dataGb(memoryMb, described.map((d) => d.actualSize));
    const state = await dom.getState();
    const flags = migrationFlags({
      blockMigration,
      nativeTls: lv.live_migration_with_native_tls,
      permitPostCopy: lv.live_migration_permit_post_copy,
      permitAutoConverge: lv.live_migration_permit_auto_converge,
      parallelConnections: lv.live_migration_parallel_connections,
      instancePaused: state.state === DomainState.PAUSED,
      migrateDisksEmpty: selected.devs.length === 0,
    });
    const perMigration = req.timeoutSeconds !== null;
    const timeoutSeconds = perMigration ? (req.timeoutSeconds ?? 0) : Math.trunc(lv.live_migration_completion_timeout * gb);
    const downtime = { downtime: lv.live_migration_downtime, steps: lv.live_migration_downtime_steps, delay: lv.live_migration_downtime_delay };
    const steps = perMigration && timeoutSeconds > 0 ? timedDowntimeSteps(timeoutSeconds, downtime) : downtimeSteps(gb, downtime);
    const settings: MigrationSettings = {
      blockMigration,
      timeoutSeconds,
      timeoutAction: req.onTimeout ?? lv.live_migration_timeout_action,
      perMigrationTimeout: perMigration,
      postCopyPermitted: hasFlag(flags, MigrateFlag.POSTCOPY),
      bandwidthMiBs: lv.live_migration_bandwidth,
      maxDowntimeMs: lv.live_migration_downtime,
      flags,
      dataGb: gb,
    };
    return { xml, blockMigration, devs: selected.devs, disks, settings, steps };
  }

  private async transfer(
    flight: Flight,
    dom: Domain,
    req: LiveMigrationRequest,
    plan: Awaited<ReturnType<SourceHandlers['plan']>>,
    prepared: LiveMigrateData,
  ): Promise<MonitorOutcome> {
    const { registry, config, log } = this.deps;
    const lv = config.libvirt;
    const volumePaths = new Map(req.instance.volumes.map((v) => [v.serial ?? v.dev, v.devicePath ?? '']));
    const destXml = destinationXml(plan.xml, {
      graphicsListen: { vnc: prepared.graphics_listen_addr_vnc ?? null, spice: prepared.graphics_listen_addr_spice ?? null },
      serialListenAddr: prepared.serial_listen_addr ?? null,
      volumes: (prepared.bdms ?? []).map((b) => ({ serial: b.serial, dev: b.dev, path: volumePaths.get(b.serial) ?? '' })),
    });
    const target = prepared.target_connect_addr ?? req.dest;
    const params: MigrateParams = { destination_xml: destXml, persistent_xml: destXml, bandwidth: lv.live_migration_bandwidth };
    if (prepared.target_connect_addr) params.migrate_uri = dataUri(prepared.target_connect_addr);
    if (plan.devs.length > 0) params.migrate_disks = plan.devs;
    if (lv.live_migration_parallel_connections > 1) params['parallel.connections'] = lv.live_migration_parallel_connections;
    const uri = connectionUri(target, lv.live_migration_scheme);

    const { record } = flight;
    registry.update(record, { settings: plan.settings, status: MigrationStatus.running });
    const control = new MigrationControl(record, registry, dom, log);
    flight.control = control;
    log.info({ migration: record.uuid, instance: record.instanceUuid, uri, flags: plan.settings.flags, disks: plan.devs }, 'migration transfer started');
    const worker = dom.migrateToURI3(uri, params, plan.settings.flags);
    return runMonitor({ domain: dom, events: this.deps.events, record, registry, control, worker, steps: plan.steps, log, pollMs: 500, statsEvery: Math.max(1, Math.trunc(lv.live_migration_monitor_interval / 0.5)) });
  }

  /** Nova's _post_live_migration: finish on the destination, clean the source. */
  private async finish(ctx: RequestContext, flight: Flight, req: LiveMigrationRequest, prepared: LiveMigrateData): Promise<void> {
    const { computeApi, storage, registry, notifications, log } = this.deps;
    await notifications.around(ctx, 'live_migration_post', req.instance, async () => {
      try {
        await computeApi.postLiveMigrationAtDestination(ctx, req.dest, instanceArg(req.instance), prepared.block_migration ?? false);
      } catch (err) {
        // The guest already runs on the destination; report but do not roll back.
        log.error({ err, migration: flight.record.uuid }, 'post_live_migration_at_destination failed');
      }
      if (!prepared.is_shared_instance_path) await storage.removeInstanceDir(req.instance.uuid);
    });
    registry.update(flight.record, { status: MigrationStatus.completed });
  }

  /** Nova's _rollback_live_migration: the guest stays (or is resumed) on the source, the destination is cleaned. */
  private async rollback(ctx: RequestContext, flight: Flight, req: LiveMigrationRequest, prepared: LiveMigrateData | null, status: MigrationStatus): Promise<void> {
    const { computeApi, registry, notifications, log } = this.deps;
    await flight.control?.resumeIfPaused();
    try {
      await notifications.around(ctx, 'live_migration_rollback', req.instance, async () => {
        if (!prepared) return;
        const destroyDisks = !(prepared.is_shared_block_storage || prepared.is_shared_instance_path);
        await computeApi.rollbackLiveMigrationAtDestination(ctx, req.dest, instanceArg(req.instance), destroyDisks, prepared);
      });
    } catch (err) {
      log.error({ err, migration: flight.record.uuid }, 'rollback on the destination failed');
      status = MigrationStatus.error;
      registry.update(flight.record, { error: `rollback failed: ${(err as Error).message}` });
    }
    registry.update(flight.record, { status });
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

  private authorize(ctx: RequestContext, action: string): void {
    const roles = new Set(this.deps.config.management_roles);
    if (ctx.is_admin || ctx.roles.some((r) => roles.has(r))) return;
    this.deps.log.warn({ action, user: ctx.user_id, project: ctx.project_id, request_id: ctx.request_id }, 'request refused by policy');
    throw new Forbidden(action);
  }

  private assertGuestSupported(xml: string, destCheck: LiveMigrateData): void {
    const supported = destCheck.dst_supported_guests;
    if (!supported) return;
    const { arch, virtType } = guestFacts(xml);
    const guest = `${arch}/${virtType}`;
    if (!supported.includes(guest)) {
      throw new MigrationPreCheckError(`destination cannot run ${arch} guests with virt type ${virtType} (supports ${supported.join(', ')})`);
    }
    const { model } = guestCpu(xml);
    const models = destCheck.dst_cpu_models?.[guest];
    if (model && models && !models.includes(model)) {
      throw new MigrationPreCheckError(`destination cannot run CPU model ${model} for ${guest}`);
    }
  }

  private async lookup(uuid: string): Promise<Domain> {
    try {
      return await this.deps.libvirt.lookupByUUID(uuid);
    } catch (err) {
      if (isVirError(err) && err.code === VirErrorCode.NO_DOMAIN) throw new InstanceNotFound(uuid);
      throw err;
    }
  }
}
