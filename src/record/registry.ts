// One record per migration, shared by the RPC handlers, the monitor and the
// reporter. Every change goes through the registry so listeners (reporter,
// metrics) see it, and so a later change can persist records in one place.

import { EventEmitter } from 'node:events';
import type { MigrationCounters } from '../monitor/progress.js';
import { isFinal, MigrationStatus, type TimeoutAction } from './status.js';

const ZERO_COUNTERS: Readonly<MigrationCounters> = Object.freeze({
  memory_total: 0,
  memory_processed: 0,
  memory_remaining: 0,
  disk_total: 0,
  disk_processed: 0,
  disk_remaining: 0,
});

export interface MigrationSettings {
  blockMigration: boolean;
  /** Effective completion timeout in seconds, 0 = none. */
  timeoutSeconds: number;
  timeoutAction: TimeoutAction;
  /** True when the timeout came from the request (`timeout_seconds`), not the size-scaled config. */
  perMigrationTimeout: boolean;
  postCopyPermitted: boolean;
  bandwidthMiBs: number;
  maxDowntimeMs: number;
  flags: number;
  dataGb: number;
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
  currentDowntimeMs: number | null;
  /** Final downtime reported by libvirt when the migration completed. */
  downtimeMs: number | null;
  settings: MigrationSettings | null;
  /** Which action (timeout or operator) has claimed the migration's end game, if any. */
  claimedAction: 'abort' | 'force_complete' | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export type RecordPatch = Partial<Omit<MigrationRecord, 'uuid' | 'createdAt'>>;

export interface RegistryEvents {
  /** Emitted for every update; `previous` is the status before it. */
  change: [record: MigrationRecord, previous: MigrationStatus];
  /** Periodic progress worth reporting upstream (Nova's save_stats moments). */
  progress: [record: MigrationRecord];
  /** An action taken on a running migration, and who asked for it. */
  action: [record: MigrationRecord, action: string, source: string];
}

export class MigrationRegistry extends EventEmitter<RegistryEvents> {
  private readonly records = new Map<string, MigrationRecord>();

  /** Finished records stay listable this long. */
  constructor(private readonly keepFinishedMs = 24 * 3600 * 1000) {
    super();
  }

  /** New records come from Nova's `accepted` (the conductor's status) to `status`. */
  create(init: Pick<MigrationRecord, 'uuid' | 'id' | 'instanceUuid' | 'instanceName' | 'sourceCompute' | 'destCompute'> & {
    status: MigrationStatus;
    error?: string | null;
  }): MigrationRecord {
    const now = new Date().toISOString();
    const record: MigrationRecord = {
      ...init,
      error: init.error ?? null,
      counters: { ...ZERO_COUNTERS },
      progress: 0,
      dirtyRateBytesPerSec: 0,
      memoryBps: 0,
      iteration: 0,
      currentDowntimeMs: null,
      downtimeMs: null,
      settings: null,
      claimedAction: null,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      finishedAt: isFinal(init.status) ? now : null,
    };
    this.prune();
    this.records.set(record.uuid, record);
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
    return [...this.records.values()]
      .filter((r) => !filter.instanceUuid || r.instanceUuid === filter.instanceUuid)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  update(record: MigrationRecord, patch: RecordPatch): MigrationRecord {
    const previous = record.status;
    Object.assign(record, patch, { updatedAt: new Date().toISOString() });
    if (patch.status && isFinal(patch.status) && !record.finishedAt) record.finishedAt = record.updatedAt;
    if (patch.status === MigrationStatus.running && !record.startedAt) record.startedAt = record.updatedAt;
    this.emit('change', record, previous);
    return record;
  }

  reportProgress(record: MigrationRecord): void {
    this.emit('progress', record);
  }

  noteAction(record: MigrationRecord, action: string, source: string): void {
    this.emit('action', record, action, source);
  }

  private prune(): void {
    const cutoff = Date.now() - this.keepFinishedMs;
    for (const [uuid, r] of this.records) {
      if (r.finishedAt && Date.parse(r.finishedAt) < cutoff) this.records.delete(uuid);
    }
  }
}
