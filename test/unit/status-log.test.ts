import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MigrationRegistry } from '../../src/record/registry.js';
import { MigrationStatus as S } from '../../src/record/status.js';
import { logStatusChanges } from '../../src/compute/status-log.js';
import { migrationLogger } from '../../src/log/logger.js';

describe('the log of an outgoing migration', () => {
  it('one INFO line per status change, naming the migration, its instance and its request; none for progress', () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const registry = new MigrationRegistry();
    logStatusChanges(registry, log);
    const journal = { context: { request_id: 'req-7f3a' }, request: { dest: 'compute-b', instance: { uuid: 'inst-1' } } };
    let r = registry.create({ uuid: 'mig-1', id: null, instanceUuid: 'inst-1', instanceName: null, sourceCompute: 'compute-a', destCompute: 'compute-b', status: S.queued, journal });
    r = registry.update(r, { status: S.preparing });
    r = registry.update(r, { status: S.running });
    r = registry.update(r, { progress: 40 });
    r = registry.update(r, { status: S.failed, error: 'operation failed: migration job: unexpectedly failed' });
    expect(lines.map((l) => [l.level, l.msg, l.previous, l.status])).toEqual([
      [30, 'migration queued', 'accepted', 'queued'],
      [30, 'migration preparing', 'queued', 'preparing'],
      [30, 'migration running', 'preparing', 'running'],
      [30, 'migration failed', 'running', 'failed'],
    ]);
    expect(lines.every((l) => l.migration === 'mig-1' && l.instance === 'inst-1' && l.request_id === 'req-7f3a')).toBe(true);
    expect(lines.at(-1)!.error).toBe('operation failed: migration job: unexpectedly failed');
  });

  it("a migration's logger puts its three ids on every line, once each", () => {
    const out: string[] = [];
    const log = migrationLogger(pino({}, { write: (l: string) => out.push(l) }), { migration: 'mig-2', instance: 'inst-2', requestId: 'req-2' });
    log.warn({ attempt: 2 }, 'asking again');
    expect(JSON.parse(out[0]!)).toMatchObject({ migration: 'mig-2', instance: 'inst-2', request_id: 'req-2', attempt: 2, msg: 'asking again' });
    expect(out[0]!.match(/"migration":/g)).toHaveLength(1);
  });
});
