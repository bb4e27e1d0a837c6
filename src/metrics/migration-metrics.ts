// Feeds the Prometheus metrics from migration registry events.

import type { MigrationRecord, MigrationRegistry } from '../record/registry.js';
import { IN_PROGRESS, isFinal, MigrationStatus } from '../record/status.js';
import type { FerryMetrics } from './metrics.js';

export function observeMigrations(registry: MigrationRegistry, metrics: FerryMetrics): void {
  const labels = (r: MigrationRecord) => ({ migration: r.uuid, instance: r.instanceUuid });
  const countInProgress = () => {
    const all = registry.list();
    for (const status of IN_PROGRESS) metrics.migrationsInProgress.set({ status }, all.filter((m) => m.status === status).length);
  };
  // Records an earlier ferryd left are counted from the start, not from their next change.
  countInProgress();

  registry.on('change', (r, previous) => {
    if (r.status === previous) {
      if (r.status === MigrationStatus.running || r.status === MigrationStatus.postcopy) {
        metrics.migrationRemaining.set({ ...labels(r), kind: 'memory' }, r.counters.memory_remaining);
        metrics.migrationRemaining.set({ ...labels(r), kind: 'disk' }, r.counters.disk_remaining);
        metrics.migrationDirtyRate.set(labels(r), r.dirtyRateBytesPerSec);
      }
      return;
    }
    if (previous === MigrationStatus.accepted) metrics.migrationsStarted.inc();
    countInProgress();
    if (!isFinal(r.status)) return;
    metrics.migrationsFinished.inc({ status: r.status });
    metrics.migrationDuration.observe({ status: r.status }, (Date.parse(r.finishedAt ?? r.updatedAt) - Date.parse(r.createdAt)) / 1000);
    if (r.status === MigrationStatus.completed) {
      if (r.downtimeMs !== null) metrics.migrationDowntime.observe(r.downtimeMs / 1000);
      metrics.migrationDataBytes.inc({ kind: 'memory' }, r.counters.memory_processed);
      metrics.migrationDataBytes.inc({ kind: 'disk' }, r.counters.disk_processed);
    }
    metrics.migrationRemaining.remove({ ...labels(r), kind: 'memory' });
    metrics.migrationRemaining.remove({ ...labels(r), kind: 'disk' });
    metrics.migrationDirtyRate.remove(labels(r));
  });
  registry.on('action', (_r, action, source) => metrics.monitorActions.inc({ action, reason: source }));
}
