// One record per migration, shared by the RPC handlers, the monitor and the
// reporter. Every change goes through the registry so listeners (reporter,
// metrics) see it, so status changes are checked against the table in
// status.ts, and so records are persisted in one place (store.ts): every
// change but the live figures of each poll is on disk before the next step.

import { EventEmitter } from 'node:events';
import { canTransition, IllegalTransition, isFinal, MigrationStatus, type TimeoutAction } from './status.js';
import type { RecordStore } from './store.js';

/** The six counters Nova copies into the Migration object. */
export interface MigrationCounters {
  memory_total: number;
  memory_processed: number;
  memory_remaining: number;
  disk_total: number;
  disk_processed: number;
  disk_remaining: number;
}

/** The actions that end a migration early; the first to claim it is the only one to act. */
export type EndAction = 'abort' | 'force_complete';

const ZERO_COUNTERS: Readonly<MigrationCounters> = Object.freeze({
  memory_total: 0,
  memory_processed: 0,
  memory_remaining: 0,
  disk_total: 0,
  disk_processed: 0,
  disk_remaining: 0,
});

/** How a migration's prospects look to the convergence model (monitor/adaptive-policy.ts). */
export type ConvergenceVerdict = 'converging' | 'stalled' | 'throttling' | 'will_not_converge';

/** The convergence model's figures, refreshed every poll, for operators and the conductor. */
export interface ConvergenceFigures {
  policy: ConvergencePolicy;
  /** smoothed transfer rate, bytes/s */
  bandwidthBps: number | null;
  /** smoothed dirty rate, bytes/s */
  dirtyRateBps: number | null;
  /** downtime a switch-over would take now, ms */
  impliedDowntimeMs: number | null;
  stalled: boolean;
  verdict: ConvergenceVerdict;
  /** predicted seconds to completion; null when the model cannot say or pre-copy alone will not end it */
  etaSeconds: number | null;
  /** "will not converge: dirty rate X MiB/s vs bandwidth Y MiB/s", once that is the verdict */
  detail: string | null;
}

/** `[libvirt] convergence_policy`: Nova's fixed ramp, or ferry's model-driven policy. */
export type ConvergencePolicy = 'nova' | 'adaptive';

/** A port's allocation key: its resource provider, or (one per request group) an object of them. */
export type Allocation = string | Record<string, string>;

/** The vif types ferry plugs: a Linux bridge, an Open vSwitch bridge. */
export type ServedVifType = 'bridge' | 'ovs';

/** ferry: a port the destination plugged, from its pre_live_migration reply (plugged_vifs); reported to the conductor. */
export interface PluggedVif {
  port_id: string;
  /** The destination host of the binding. */
  host: string;
  vnic_type: string;
  vif_type: ServedVifType;
  /** lower case */
  mac: string;
  bridge: string;
  /** The network's MTU from the binding, when it has one. */
  mtu: number | null;
  /** The resource provider(s) on the destination the port's allocation moves to; null: the port has no resource request. */
  allocation: Allocation | null;
}

export interface MigrationSettings {
  blockMigration: boolean;
  /** Effective completion timeout in seconds, 0 = none. */
  timeoutSeconds: number;
  timeoutAction: TimeoutAction;
  /** True when the timeout came from the request (`timeout_seconds`), not the size-scaled config. */
  perMigrationTimeout: boolean;
  postCopyPermitted: boolean;
  /** The migration runs with VIR_MIGRATE_AUTO_CONVERGE. */
  autoConvergePermitted: boolean;
  /** How block migration copies the local disks (null: none copied). */
  diskCopy: 'top_layer' | 'full' | null;
  bandwidthMiBs: number;
  maxDowntimeMs: number;
  flags: number;
  dataGb: number;
  convergencePolicy: ConvergencePolicy;
  /**
   * What the adaptive policy measured before the start of a running guest's
   * migration: the guest's dirty rate, the link's speed, what was armed
   * (post-copy or auto-converge, chosen when both were permitted; null when
   * neither was), where the throttle starts (null: QEMU's 20 %), and why a
   * figure is missing.
   */
  preflight: {
    dirtyRateBps: number | null;
    linkBps: number | null;
    armed: 'postcopy' | 'auto_converge' | null;
    throttleStartPercent: number | null;
    why: string | null;
  } | null;
  /** Act at the first confident "will not converge" rather than at the deadline (adaptive policy only). */
  actOnStall: boolean;
  /** The ports the destination plugged, in migrate_data.vifs order; absent in records of earlier versions. */
  portBindings?: PluggedVif[];
}

export interface MigrationRecord {
  uuid: string;
  id: number | null;
  instanceUuid: string;
  instanceName: string | null;
  sourceCompute: string;
  destCompute: string;
  status: MigrationStatus;
  counters: MigrationCounters;
  /** 0-100, Nova's instance.progress. */
  progress: number;
  /** Latest extras from job stats, for operators. */
  dirtyRateBytesPerSec: number;
  memoryBps: number;
  iteration: number;
  /** The convergence model's latest figures; null before the first sample. */
  convergence: ConvergenceFigures | null;
  /**
   * The monitor policy's own state after its latest sample (the model, the
   * downtime it set, the timeout's attempts), so a restarted ferryd's monitor
   * goes on from it. Plain JSON; its shape belongs to monitor/policy.ts.
   */
  policyState: Record<string, unknown> | null;
  currentDowntimeMs: number | null;
  /** Final downtime reported by libvirt when the migration completed. */
  downtimeMs: number | null;
  /** Pages the destination asked for in post-copy (memory_postcopy_requests), from libvirt's completed-job stats. */
  postcopyRequests: number | null;
  settings: MigrationSettings | null;
  /** Which action (timeout or operator) has claimed the migration's end game, if any. */
  claimedAction: EndAction | null;
  /** We suspended the guest on the source to force completion: resume it there if the migration fails. */
  pausedByUs: boolean;
  error: string | null;
  /**
   * What the host running the migration needs to carry it on after a
   * restart (request, context, what the destination prepared, libvirt's
   * call). Plain JSON; its shape belongs to source/journal.ts.
   */
  journal: Record<string, unknown> | null;
  /**
   * Number of this record's latest reportable moment (each status change and
   * progress report, 1, 2, ...): what the reporter sends as `seq`. Counted and
   * saved with the moment itself, so a restart never reuses one.
   */
  seq: number;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export type RecordPatch = Partial<Omit<MigrationRecord, 'uuid' | 'createdAt' | 'seq'>>;

/** Figures every poll refreshes: saved with the next durable change or progress report, not on their own. */
const LIVE_FIELDS: ReadonlySet<string> = new Set(['counters', 'progress', 'dirtyRateBytesPerSec', 'memoryBps', 'iteration', 'convergence', 'policyState']);

export interface RegistryEvents {
  /** Emitted for every update; `previous` is the status before it. */
  change: [record: MigrationRecord, previous: MigrationStatus];
  /** Periodic progress worth reporting upstream (Nova's save_stats moments). */
  progress: [record: MigrationRecord];
  /** An action taken on a running migration, and who asked for it. */
  action: [record: MigrationRecord, action: string, source: string];
}

export interface RegistryOptions {
  /** Finished records stay listable this long. Default 24 h. */
  keepFinishedMs?: number;
  /**
   * At most this many finished records are kept, the oldest to finish going
   * first, so a flood of refused requests cannot grow memory. Default 1000.
   */
  maxFinished?: number;
  /**
   * Called with an illegal status change, which is then not applied (the
   * rest of the patch is). Default: throw, so tests fail on it; the daemon logs.
   */
  onIllegalTransition?: (err: IllegalTransition) => void;
  /** Where records are kept across restarts; none: in memory only. Records found there are loaded. */
  store?: RecordStore;
}

export class MigrationRegistry extends EventEmitter<RegistryEvents> {
  /** In creation order, which is the order list() gives. */
  private readonly records = new Map<string, MigrationRecord>();
  /** uuids of finished records, in the order they finished. */
  private readonly finished: string[] = [];
  private readonly keepFinishedMs: number;
  private readonly maxFinished: number;
  private readonly onIllegalTransition: (err: IllegalTransition) => void;
  private readonly store: RecordStore | null;

  constructor(opts: RegistryOptions = {}) {
    super();
    this.keepFinishedMs = opts.keepFinishedMs ?? 24 * 3600 * 1000;
    this.maxFinished = opts.maxFinished ?? 1000;
    this.onIllegalTransition =
      opts.onIllegalTransition ??
      ((err) => {
        throw err;
      });
    this.store = opts.store ?? null;
    if (this.store) this.restore(this.store.load());
  }

  /** Records kept by an earlier ferryd, in creation order; the finished ones in the order they finished. */
  private restore(saved: MigrationRecord[]): void {
    for (const r of saved.sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
      this.records.set(r.uuid, { ...r, journal: r.journal ?? null, seq: r.seq ?? 0, policyState: r.policyState ?? null, convergence: r.convergence ?? null });
    }
    const finished = [...this.records.values()].filter((r) => r.finishedAt).sort((a, b) => a.finishedAt!.localeCompare(b.finishedAt!));
    for (const r of finished) this.noteFinished(r);
    this.prune();
  }

  /** New records come from Nova's `accepted` (the conductor's status) to `status`. */
  create(init: Pick<MigrationRecord, 'uuid' | 'id' | 'instanceUuid' | 'instanceName' | 'sourceCompute' | 'destCompute'> & {
    status: MigrationStatus;
    error?: string | null;
    journal?: Record<string, unknown> | null;
  }): MigrationRecord {
    if (!canTransition(MigrationStatus.accepted, init.status)) {
      throw new IllegalTransition(init.uuid, MigrationStatus.accepted, init.status);
    }
    const now = new Date().toISOString();
    const record: MigrationRecord = {
      ...init,
      error: boundedError(init.error ?? null),
      journal: init.journal ?? null,
      counters: { ...ZERO_COUNTERS },
      progress: 0,
      dirtyRateBytesPerSec: 0,
      memoryBps: 0,
      iteration: 0,
      convergence: null,
      policyState: null,
      currentDowntimeMs: null,
      downtimeMs: null,
      postcopyRequests: null,
      settings: null,
      claimedAction: null,
      pausedByUs: false,
      // Its first status is its first reportable moment.
      seq: 1,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: isFinal(init.status) ? now : null,
    };
    this.prune();
    this.records.set(record.uuid, record);
    this.store?.save(record);
    if (record.finishedAt) this.noteFinished(record);
    this.emit('change', record, MigrationStatus.accepted);
    return record;
  }

  get(uuid: string): MigrationRecord | undefined {
    return this.records.get(uuid);
  }

  findById(id: number): MigrationRecord | undefined {
    for (const r of this.records.values()) if (r.id === id) return r;
    return undefined;
  }

  /** The unfinished migration of an instance, if one is in flight. */
  active(instanceUuid: string): MigrationRecord | undefined {
    for (const r of this.records.values()) if (r.instanceUuid === instanceUuid && !isFinal(r.status)) return r;
    return undefined;
  }

  list(filter: { instanceUuid?: string } = {}): MigrationRecord[] {
    this.prune();
    return [...this.records.values()].filter((r) => !filter.instanceUuid || r.instanceUuid === filter.instanceUuid);
  }

  update(record: MigrationRecord, patch: RecordPatch): MigrationRecord {
    const previous = record.status;
    if (patch.status !== undefined && patch.status !== previous && !canTransition(previous, patch.status)) {
      const { status: refused, ...rest } = patch;
      patch = rest;
      this.onIllegalTransition(new IllegalTransition(record.uuid, previous, refused));
    }
    Object.assign(record, patch, { updatedAt: new Date().toISOString() });
    if (record.status !== previous) record.seq += 1;
    if (patch.error !== undefined) record.error = boundedError(patch.error);
    if (patch.status && isFinal(patch.status) && !record.finishedAt) {
      record.finishedAt = record.updatedAt;
      this.noteFinished(record);
    }
    if (patch.status === MigrationStatus.running && !record.startedAt) record.startedAt = record.updatedAt;
    if (Object.keys(patch).some((k) => !LIVE_FIELDS.has(k))) this.store?.save(record);
    this.emit('change', record, previous);
    return record;
  }

  /**
   * Claims the migration's end for `action`: true for the first claim, false
   * while another holds it. A synchronous check-and-set on the shared record
   * (one JS thread), so racing claims need no lock.
   */
  claim(record: MigrationRecord, action: EndAction): boolean {
    if (record.claimedAction) return false;
    this.update(record, { claimedAction: action });
    return true;
  }

  /** Frees a claim whose action libvirt refused: nothing was done, another may act. */
  release(record: MigrationRecord): void {
    this.update(record, { claimedAction: null });
  }

  reportProgress(record: MigrationRecord): void {
    record.seq += 1;
    this.store?.save(record);
    this.emit('progress', record);
  }

  noteAction(record: MigrationRecord, action: string, source: string): void {
    this.emit('action', record, action, source);
  }

  private noteFinished(record: MigrationRecord): void {
    this.finished.push(record.uuid);
    while (this.finished.length > this.maxFinished) this.drop(this.finished.shift()!);
  }

  private drop(uuid: string): void {
    this.records.delete(uuid);
    this.store?.remove(uuid);
  }

  /** Drops finished records past their time: the oldest to finish are at the front. */
  private prune(): void {
    const cutoff = Date.now() - this.keepFinishedMs;
    while (this.finished.length > 0) {
      const oldest = this.records.get(this.finished[0]!);
      if (oldest?.finishedAt && Date.parse(oldest.finishedAt) >= cutoff) return;
      const uuid = this.finished.shift()!;
      this.drop(uuid);
    }
  }
}

/** An error is kept for the operator to read, not as a copy of whatever payload caused it. */
export const MAX_ERROR_CHARS = 2000;

function boundedError(error: string | null): string | null {
  return error !== null && error.length > MAX_ERROR_CHARS ? `${error.slice(0, MAX_ERROR_CHARS)}… (${error.length} characters)` : error;
}
