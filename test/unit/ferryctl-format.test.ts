import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { migrationsTable, render, showTable, watchLines } from '../../src/cli/format.js';
import { migrationView, type MigrationView } from '../../src/nova/migration-view.js';
import { MigrationRegistry } from '../../src/record/registry.js';
import { MigrationStatus } from '../../src/record/status.js';

const MiB = 2 ** 20;

function running(): MigrationView {
  const registry = new MigrationRegistry();
  const r = registry.create({
    uuid: '0e6f5b2c-5a0e-4c1f-9d51-2b7a3f0c9e11',
    id: 7,
    instanceUuid: '4a1b2c3d-0000-4000-8000-000000000001',
    instanceName: 'instance-00000001',
    sourceCompute: 'compute-a',
    destCompute: 'compute-b',
    status: MigrationStatus.queued,
  });
  const started = registry.update(registry.update(r, { status: MigrationStatus.preparing }), { status: MigrationStatus.running });
  return migrationView(registry.update(started, { counters: { ...started.counters, memory_total: 256 * MiB, memory_processed: 64 * MiB, memory_remaining: 192 * MiB } }));
}

describe('ferryctl --format', () => {
  it('json and yaml carry the same data; table is the command\'s own', () => {
    const views = [running()];
    const json = render('json', views, () => 'TABLE');
    const yaml = render('yaml', views, () => 'TABLE');
    expect(JSON.parse(json)).toEqual(views);
    expect(parse(yaml)).toEqual(views);
    expect(yaml).toMatch(/^- id: 7\n {2}uuid: 0e6f5b2c-/);
    expect(render('table', views, () => migrationsTable(views)).split('\n')[0]).toMatch(/^MIGRATION\s+INSTANCE\s+SOURCE\s+DEST\s+STATUS/);
  });

  it('show: every field of the view as a row, in order, null as "-", lists as JSON', () => {
    const v = running();
    const rows = showTable(v).split('\n');
    expect(rows[0]).toMatch(/^FIELD\s+VALUE$/);
    expect(rows.slice(1).map((r) => r.split(/\s+/)[0])).toEqual(Object.keys(v));
    const row = (field: string) => rows.find((r) => r.startsWith(`${field} `))!.replace(/^\S+\s+/, '');
    expect(row('uuid')).toBe(v.uuid);
    expect(row('memory_remaining')).toBe(String(192 * MiB));
    expect(row('convergence_verdict')).toBe('-');
    expect(row('port_bindings')).toBe('[]');
  });

  it('migrations --watch: a line per migration, the instance first, then its bar', () => {
    const v = running();
    const [line] = watchLines([v], Date.parse(v.started_at ?? v.created_at) + 65_000);
    expect(line).toMatch(/^4a1b2c3d {2}\[#{8}\.{22}\] {2}25% {2}running\s+sent 64\.0 MiB {2}left 192\.0 MiB .* 1m05s/);
  });
});
