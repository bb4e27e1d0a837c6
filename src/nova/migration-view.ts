// How a migration record looks on the wire: Nova's Migration field names,
// plus ferry's live figures, for list_migrations and migration_update.

import type { MigrationCounters, MigrationRecord, PluggedVif } from '../record/registry.js';
import type { MigrationStatus } from '../record/status.js';

export interface MigrationView extends MigrationCounters {
  id: number | null;
  uuid: string;
  instance_uuid: string;
  source_compute: string;
  dest_compute: string;
  migration_type: 'live-migration';
  status: MigrationStatus;
  progress: number;
  dirty_rate_bytes_per_second: number;
  transfer_rate_bytes_per_second: number;
  iteration: number;
  current_max_downtime_ms: number | null;
  /** the convergence model's figures (null before the first sample): smoothed rates, what a switch-over would take now, the verdict and the predicted time left */
  convergence_policy: string | null;
  bandwidth_bytes_per_second: number | null;
  smoothed_dirty_rate_bytes_per_second: number | null;
  implied_downtime_ms: number | null;
  stalled: boolean | null;
  convergence_verdict: string | null;
  convergence_detail: string | null;
  eta_seconds: number | null;
  downtime_ms: number | null;
  postcopy_requests: number | null;
  /** what the migration runs with to help it converge */
  armed: 'postcopy' | 'auto_converge' | null;
  /** with post-copy or auto-converge permitted, the dirty rate the adaptive policy measured before the start, to choose by */
  preflight_dirty_rate_bytes_per_second: number | null;
  /** The ports the destination plugged, with the allocations to move there (empty before pre_live_migration answered). */
  port_bindings: PluggedVif[];
  /** where auto-converge's throttle starts, percent, chosen by that dirty rate; null: QEMU's 20 % */
  throttle_start_percent: number | null;
  block_migration: boolean | null;
  timeout_seconds: number | null;
  on_timeout: string | null;
  action_taken: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export function migrationView(r: MigrationRecord): MigrationView {
  return {
    id: r.id,
    uuid: r.uuid,
    instance_uuid: r.instanceUuid,
    source_compute: r.sourceCompute,
    dest_compute: r.destCompute,
    migration_type: 'live-migration',
    status: r.status,
    ...r.counters,
    progress: r.progress,
    dirty_rate_bytes_per_second: r.dirtyRateBytesPerSec,
    transfer_rate_bytes_per_second: r.memoryBps,
    iteration: r.iteration,
    current_max_downtime_ms: r.currentDowntimeMs,
    convergence_policy: r.settings?.convergencePolicy ?? null,
    bandwidth_bytes_per_second: r.convergence?.bandwidthBps ?? null,
    smoothed_dirty_rate_bytes_per_second: r.convergence?.dirtyRateBps ?? null,
    implied_downtime_ms: r.convergence?.impliedDowntimeMs ?? null,
    stalled: r.convergence?.stalled ?? null,
    convergence_verdict: r.convergence?.verdict ?? null,
    convergence_detail: r.convergence?.detail ?? null,
    eta_seconds: r.convergence ? roundedEta(r.convergence.etaSeconds) : null,
    downtime_ms: r.downtimeMs,
    postcopy_requests: r.postcopyRequests,
    armed: r.settings ? (r.settings.postCopyPermitted ? 'postcopy' : r.settings.autoConvergePermitted ? 'auto_converge' : null) : null,
    preflight_dirty_rate_bytes_per_second: r.settings?.preflight?.dirtyRateBps ?? null,
    port_bindings: r.settings?.portBindings ?? [],
    throttle_start_percent: r.settings?.preflight?.throttleStartPercent ?? null,
    block_migration: r.settings?.blockMigration ?? null,
    timeout_seconds: r.settings?.timeoutSeconds ?? null,
    on_timeout: r.settings?.timeoutAction ?? null,
    action_taken: r.claimedAction,
    error: r.error,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
  };
}

/** Tenths of a second are all an ETA can promise. */
function roundedEta(seconds: number | null): number | null {
  return seconds === null ? null : Math.round(seconds * 10) / 10;
}
