// A live_migration request as the source runs it, read from the RPC args,
// and the journal the migration's record keeps of it so that a restarted
// ferryd can carry the migration on (reconcile.ts): the request and its
// context, what the destination may hold, and libvirt's call. The journal is
// written into the record at each step, before the step it makes undoable
// or resumable.

import type { DowntimeStep } from '../monitor/nova-policy.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { InstanceRef, MigrationRef } from '../nova/objects.js';
import type { MigrationRecord, MigrationRegistry } from '../record/registry.js';
import type { TimeoutAction } from '../record/status.js';
import { contextToDict, redact } from '../rpc/context.js';
import type { RequestContext } from '../rpc/types.js';
import type { MigrateCall } from './transfer.js';

export interface LiveMigrationRequest {
  instance: InstanceRef;
  dest: string;
  blockMigration: boolean | null;
  migrateData: LiveMigrateData;
  migration: MigrationRef;
  /** ferry's per-migration override of live_migration_completion_timeout (absolute seconds, 0 = none). */
  timeoutSeconds: number | null;
  onTimeout: TimeoutAction | null;
  /** ferry's per-migration override of convergence_act_on_stall. */
  actOnStall: boolean | null;
}

export interface SourceJournal {
  /** The request's context without secrets: enough for the peer calls and the notifications. */
  context: Record<string, unknown>;
  request: LiveMigrationRequest;
  /**
   * What the destination may hold for the migration: its pre_live_migration
   * reply, or what was asked while the reply was outstanding. Null: nothing.
   */
  prepared: LiveMigrateData | null;
  /** migrateToURI3's URI and params, once known; a post-copy resume repeats them. */
  call: MigrateCall | null;
  /** The downtime ramp, so a re-attached monitor goes on with it. */
  steps: DowntimeStep[];
}

export function newJournal(ctx: RequestContext, request: LiveMigrationRequest): SourceJournal {
  return { context: redact(contextToDict(ctx)), request, prepared: null, call: null, steps: [] };
}

/** Writes the journal's change into the record (and so to disk) before the caller goes on. */
export function keepJournal(registry: MigrationRegistry, record: MigrationRecord, journal: SourceJournal): void {
  registry.update(record, { journal: journal as unknown as Record<string, unknown> });
}

/** The record's journal; null when it has none a restarted ferryd can use (an old or damaged record). */
export function readJournal(record: MigrationRecord): SourceJournal | null {
  const j = record.journal as Partial<SourceJournal> | null;
  if (!j || typeof j.context !== 'object' || !j.request || typeof j.request.dest !== 'string' || typeof j.request.instance?.uuid !== 'string') return null;
  return { context: j.context ?? {}, request: j.request, prepared: j.prepared ?? null, call: j.call ?? null, steps: Array.isArray(j.steps) ? j.steps : [] };
}
