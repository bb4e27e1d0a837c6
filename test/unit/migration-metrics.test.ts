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
