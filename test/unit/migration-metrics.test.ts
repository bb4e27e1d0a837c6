// The convergence model's figures as Prometheus gauges: set while a migration
// runs, taken away when the model cannot give one any more, and when it ends.
import { describe, expect, it } from 'vitest';
import { FerryMetrics } from '../../src/metrics/metrics.js';
import { observeMigrations } from '../../src/metrics/migration-metrics.js';
import { MigrationRegistry, type ConvergenceFigures } from '../../src/record/registry.js';
import { MigrationStatus as S } from '../../src/record/status.js';

const FIGURES: ConvergenceFigures = {
  policy: 'adaptive',
  bandwidthBps: 30 * 2 ** 20,
  dirtyRateBps: 45 * 2 ** 20,
  impliedDowntimeMs: 4300,
  stalled: true,
  verdict: 'will_not_converge',
  etaSeconds: 12.5,
  detail: 'will not converge: dirty rate 45.0 MiB/s vs bandwidth 30.0 MiB/s',
};

async function scrape(m: FerryMetrics): Promise<string> {
  return (await m.registry.metrics()).split('\n').filter((l) => /^ferry_migration_(bandwidth|implied|eta|convergence)/.test(l)).join('\n');
}

describe('convergence metrics', () => {
  it('follow the record while it runs and go with it', async () => {
    const registry = new MigrationRegistry();
    const metrics = new FerryMetrics();
    observeMigrations(registry, metrics);
    const r = registry.create({ uuid: 'a6f0c1a2-0000-4000-8000-000000000001', id: 1, instanceUuid: 'a6f0c1a2-0000-4000-8000-000000000101', instanceName: 'vm', sourceCompute: 'a', destCompute: 'b', status: S.queued });
    registry.update(r, { status: S.preparing });
    registry.update(r, { status: S.running });
    registry.update(r, { convergence: FIGURES });
    const running = await scrape(metrics);
    expect(running).toMatch(/^ferry_migration_bandwidth_bytes_per_second\{[^}]*\} 31457280$/m);
    expect(running).toMatch(/^ferry_migration_implied_downtime_seconds\{[^}]*\} 4\.3$/m);
    expect(running).toMatch(/^ferry_migration_eta_seconds\{[^}]*\} 12\.5$/m);
    expect(running).toMatch(/^ferry_migration_convergence_verdict\{[^}]*verdict="will_not_converge"\} 1$/m);
    expect(running).toMatch(/^ferry_migration_convergence_verdict\{[^}]*verdict="converging"\} 0$/m);
    registry.update(r, { convergence: { ...FIGURES, etaSeconds: null, impliedDowntimeMs: null } });
    const unknown = await scrape(metrics);
    expect(unknown).not.toMatch(/^ferry_migration_eta_seconds\{/m);
    expect(unknown).not.toMatch(/^ferry_migration_implied_downtime_seconds\{/m);
    registry.update(r, { status: S.cancelled });
    expect(await scrape(metrics)).not.toMatch(/\{/);
  });
});

describe('progress metrics per migration', () => {
  it('labelled by migration and instance while under way, its status the one at 1; all gone when it ends', async () => {
    const registry = new MigrationRegistry();
    const metrics = new FerryMetrics();
    observeMigrations(registry, metrics);
    const r = registry.create({ uuid: 'a6f0c1a2-0000-4000-8000-000000000002', id: 2, instanceUuid: 'a6f0c1a2-0000-4000-8000-000000000102', instanceName: 'vm', sourceCompute: 'a', destCompute: 'b', status: S.queued });
    const lines = async (re: RegExp) => (await metrics.registry.metrics()).split('\n').filter((l) => re.test(l));
    expect(await lines(/^ferry_migration_status\{/)).toEqual([`ferry_migration_status{migration="${r.uuid}",instance_uuid="${r.instanceUuid}",status="queued"} 1`]);
    registry.update(r, { status: S.preparing });
    registry.update(r, { status: S.running, startedAt: new Date(Date.now() - 5_000).toISOString() });
    registry.update(r, { counters: { memory_total: 1000, memory_processed: 400, memory_remaining: 600, disk_total: 50, disk_processed: 50, disk_remaining: 0 }, iteration: 2, currentDowntimeMs: 250 });
    const running = (await lines(/^ferry_migration_(status|processed|total|iteration|max_downtime|elapsed)/)).join('\n');
    expect(running).toMatch(/^ferry_migration_status\{[^}]*status="running"\} 1$/m);
    expect(running).not.toMatch(/status="(queued|preparing)"/);
    expect(running).toMatch(/^ferry_migration_processed_bytes\{[^}]*kind="memory"\} 400$/m);
    expect(running).toMatch(/^ferry_migration_total_bytes\{[^}]*kind="disk"\} 50$/m);
    expect(running).toMatch(/^ferry_migration_iteration\{[^}]*\} 2$/m);
    expect(running).toMatch(/^ferry_migration_max_downtime_seconds\{[^}]*\} 0\.25$/m);
    const elapsed = Number(/^ferry_migration_elapsed_seconds\{[^}]*\} (\S+)$/m.exec(running)?.[1]);
    expect(elapsed).toBeGreaterThanOrEqual(5);
    registry.update(r, { status: S.completed });
    expect(await lines(/^ferry_migration_(status|processed|total|iteration|max_downtime|elapsed)\{/)).toEqual([]);
  });
});

describe('totals', () => {
  it('every final status is exposed at 0 before any migration ended: the first failure shows as an increase', async () => {
    const metrics = new FerryMetrics();
    observeMigrations(new MigrationRegistry(), metrics);
    const finished = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('ferry_migrations_finished_total{')).sort();
    expect(finished).toEqual(['cancelled', 'completed', 'error', 'failed'].map((s) => `ferry_migrations_finished_total{status="${s}"} 0`));
    const sent = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('ferry_migration_data_processed_bytes_total{')).sort();
    expect(sent).toEqual(['ferry_migration_data_processed_bytes_total{kind="disk"} 0', 'ferry_migration_data_processed_bytes_total{kind="memory"} 0']);
  });
});
