// migration_update casts to the conductor: one per status change and one per
// save_stats moment, carrying Nova's six progress counters.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { MigrationRegistry } from '../../src/record/registry.js';
import { MigrationReporter } from '../../src/nova/reporter.js';
import { RecordingRpcClient } from './fakes/rpc.js';
import { makeCluster, makeGuest, startMigration, statusesOf, waitDone, S } from './fakes/cluster.js';

const COUNTERS = ['memory_total', 'memory_processed', 'memory_remaining', 'disk_total', 'disk_processed', 'disk_remaining'] as const;
const GiB = 1024 ** 3;

function sample(registry: MigrationRegistry) {
  return registry.create({ uuid: 'a6f0c1a2-0000-4000-8000-000000000001', id: 3, instanceUuid: 'b6f0c1a2-0000-4000-8000-000000000002', instanceName: 'vm', sourceCompute: 'compute-a', destCompute: 'compute-b', status: S.queued });
}

describe('MigrationReporter', () => {
  it('casts migration_update on status changes only, and on every progress report', async () => {
    const registry = new MigrationRegistry();
    const rpc = new RecordingRpcClient();
    new MigrationReporter(registry, rpc, 'conductor', silentLogger);
    const r = sample(registry);
    registry.update(r, { status: S.preparing });
    registry.update(r, { error: 'noise' }); // not a status change
    registry.update(r, { status: S.preparing }); // same status
    registry.update(r, { status: S.running, counters: { memory_total: 10, memory_processed: 4, memory_remaining: 6, disk_total: 20, disk_processed: 5, disk_remaining: 15 }, progress: 40 });
    registry.reportProgress(r);
    registry.update(r, { status: S.completed });
    await new Promise((res) => setImmediate(res));
    expect(rpc.sent.map((s) => [s.kind, s.target.topic, s.target.server, s.method])).toEqual(Array(5).fill(['cast', 'conductor', undefined, 'migration_update']));
    expect(rpc.sent.map((s) => (s.args.migration as { status: string }).status)).toEqual([S.queued, S.preparing, S.running, S.running, S.completed]);
    const progress = rpc.sent[3]!.args;
    expect(progress).toMatchObject({ instance_uuid: r.instanceUuid, progress: 40 });
    expect(progress.migration).toMatchObject({ id: 3, uuid: r.uuid, migration_type: 'live-migration', memory_total: 10, memory_processed: 4, memory_remaining: 6, disk_total: 20, disk_processed: 5, disk_remaining: 15 });
  });

  it('a broker failure is swallowed: the registry and the migration go on', async () => {
    const registry = new MigrationRegistry();
    const rpc = new RecordingRpcClient();
    rpc.failWith = new Error('connection reset');
    new MigrationReporter(registry, rpc, 'conductor', silentLogger);
    const r = sample(registry);
    expect(() => registry.update(r, { status: S.preparing })).not.toThrow();
    await new Promise((res) => setImmediate(res));
    expect(rpc.sent).toHaveLength(2);
    expect(r.status).toBe(S.preparing);
  });

  it('during a real migration: every status and every save_stats (monitor_interval 1 s = every 2 polls) with live counters', async () => {
    const c = await makeCluster({ sharedStorage: true, src: { config: { conductor_topic: 'conductor-x', libvirt: { live_migration_monitor_interval: 1 } } } });
    try {
      const rpc = new RecordingRpcClient();
      new MigrationReporter(c.src.registry, rpc, c.src.config.conductor_topic, silentLogger);
      let progressEvents = 0;
      c.src.registry.on('progress', () => progressEvents++);
      const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
      g.dom.behaviour.autoCompleteMs = 1200; // polls at 0, 0.5, 1.0 s: saves at the 1st and 3rd
      const { uuid } = await startMigration(c, g);
      await waitDone(c, uuid);
      expect(progressEvents).toBe(2);
      const updates = rpc.sent.filter((s) => s.method === 'migration_update');
      expect(updates.every((s) => s.kind === 'cast' && s.target.topic === 'conductor-x')).toBe(true);
      expect(updates).toHaveLength(statusesOf(c.src, uuid).length + progressEvents);
      const views = updates.map((s) => s.args.migration as Record<string, number | string>);
      expect(views.map((v) => v.status)).toEqual([S.queued, S.preparing, S.running, S.running, S.running, S.completed]);
      // The two save_stats casts carry the fake's job counters of the 1st and 3rd poll.
      const [first, third] = [views[3]!, views[4]!];
      for (const k of COUNTERS) expect(typeof first[k]).toBe('number');
      expect(first).toMatchObject({ memory_total: 2 * GiB, memory_processed: 256 * 2 ** 20, memory_remaining: 2 * GiB - 256 * 2 ** 20, disk_total: GiB, disk_processed: 128 * 2 ** 20, disk_remaining: GiB - 128 * 2 ** 20 });
      expect(third).toMatchObject({ memory_total: 2 * GiB, memory_processed: 3 * 256 * 2 ** 20, disk_processed: 3 * 128 * 2 ** 20 });
      // remaining 62.5 %: Python's round() gives 62 (to even), so progress is 38, not JS's 37.
      expect(updates[4]!.args.progress).toBe(38);
      expect(updates.every((s) => s.args.instance_uuid === g.uuid)).toBe(true);
    } finally {
      await c.cleanup();
    }
  });
});
