// Feeds the Prometheus metrics from migration registry events.

import type { ConvergenceVerdict, MigrationRecord, MigrationRegistry } from '../record/registry.js';
import { FINAL, IN_PROGRESS, isFinal, MigrationStatus } from '../record/status.js';
import type { FerryMetrics } from './metrics.js';

const VERDICTS: readonly ConvergenceVerdict[] = ['converging', 'stalled', 'throttling', 'will_not_converge'];
/** The kind label of the byte figures: guest memory, copied disks. */
const KINDS = ['memory', 'disk'] as const;

export function observeMigrations(registry: MigrationRegistry, metrics: FerryMetrics): void {
  // instance_uuid, not instance: Prometheus sets instance to the scrape target, and would rename ours to exported_instance.
  const labels = (r: MigrationRecord) => ({ migration: r.uuid, instance_uuid: r.instanceUuid });
  const countInProgress = () => {
    const all = registry.list();
    for (const status of IN_PROGRESS) metrics.migrationsInProgress.set({ status }, all.filter((m) => m.status === status).length);
  };
  // Records an earlier ferryd left are counted from the start, not from their next change.
  countInProgress();
  // Every final status from 0: a series that first appears at 1 shows Prometheus no increase, and the
  // first failure after a start would raise no alert (contrib/prometheus).
  for (const status of FINAL) metrics.migrationsFinished.inc({ status }, 0);
  for (const kind of KINDS) metrics.migrationDataBytes.inc({ kind }, 0);

  registry.on('change', (r, previous) => {
    if (r.status === previous) {
      if (r.status === MigrationStatus.running || r.status === MigrationStatus.postcopy) {
        metrics.migrationRemaining.set({ ...labels(r), kind: 'memory' }, r.counters.memory_remaining);
        metrics.migrationRemaining.set({ ...labels(r), kind: 'disk' }, r.counters.disk_remaining);
        metrics.migrationProcessed.set({ ...labels(r), kind: 'memory' }, r.counters.memory_processed);
        metrics.migrationProcessed.set({ ...labels(r), kind: 'disk' }, r.counters.disk_processed);
        metrics.migrationTotal.set({ ...labels(r), kind: 'memory' }, r.counters.memory_total);
        metrics.migrationTotal.set({ ...labels(r), kind: 'disk' }, r.counters.disk_total);
        metrics.migrationIteration.set(labels(r), r.iteration);
        if (r.currentDowntimeMs !== null) metrics.migrationMaxDowntime.set(labels(r), r.currentDowntimeMs / 1000);
        if (r.startedAt) metrics.migrationElapsed.set(labels(r), (Date.now() - Date.parse(r.startedAt)) / 1000);
        metrics.migrationDirtyRate.set(labels(r), r.dirtyRateBytesPerSec);
        const c = r.convergence;
        if (c) {
          // A figure the model cannot give any more is taken away, not left stale.
          if (c.bandwidthBps !== null) metrics.migrationBandwidth.set(labels(r), c.bandwidthBps);
          else metrics.migrationBandwidth.remove(labels(r));
          if (c.impliedDowntimeMs !== null) metrics.migrationImpliedDowntime.set(labels(r), c.impliedDowntimeMs / 1000);
          else metrics.migrationImpliedDowntime.remove(labels(r));
          if (c.etaSeconds !== null) metrics.migrationEta.set(labels(r), c.etaSeconds);
          else metrics.migrationEta.remove(labels(r));
          for (const verdict of VERDICTS) metrics.migrationVerdict.set({ ...labels(r), verdict }, verdict === c.verdict ? 1 : 0);
        }
      }
      return;
    }
    if (previous === MigrationStatus.accepted) metrics.migrationsStarted.inc();
    countInProgress();
    if (previous) metrics.migrationStatus.remove({ ...labels(r), status: previous });
    if (!isFinal(r.status)) {
      metrics.migrationStatus.set({ ...labels(r), status: r.status }, 1);
      return;
    }
    metrics.migrationsFinished.inc({ status: r.status });
    metrics.migrationDuration.observe({ status: r.status }, (Date.parse(r.finishedAt ?? r.updatedAt) - Date.parse(r.createdAt)) / 1000);
    if (r.status === MigrationStatus.completed) {
      if (r.downtimeMs !== null) metrics.migrationDowntime.observe(r.downtimeMs / 1000);
      metrics.migrationDataBytes.inc({ kind: 'memory' }, r.counters.memory_processed);
      metrics.migrationDataBytes.inc({ kind: 'disk' }, r.counters.disk_processed);
    }
    for (const kind of KINDS) {
      metrics.migrationRemaining.remove({ ...labels(r), kind });
      metrics.migrationProcessed.remove({ ...labels(r), kind });
      metrics.migrationTotal.remove({ ...labels(r), kind });
    }
    metrics.migrationIteration.remove(labels(r));
    metrics.migrationMaxDowntime.remove(labels(r));
    metrics.migrationElapsed.remove(labels(r));
    metrics.migrationDirtyRate.remove(labels(r));
    metrics.migrationBandwidth.remove(labels(r));
    metrics.migrationImpliedDowntime.remove(labels(r));
    metrics.migrationEta.remove(labels(r));
    for (const verdict of VERDICTS) metrics.migrationVerdict.remove({ ...labels(r), verdict });
  });
  registry.on('action', (_r, action, source) => metrics.monitorActions.inc({ action, reason: source }));
}
