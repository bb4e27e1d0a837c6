// What a destination's pre_live_migration made is kept in a file (issue 10),
// so a ferryd that restarted before the roll back still removes exactly that.
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Preparations } from '../../src/destination/preparations.js';
import { pino } from 'pino';
import { silentLogger } from '../../src/log/logger.js';
import { instanceArg } from '../../src/nova/objects.js';
import { callDestination, makeCluster, makeGuest, startMigration, waitStatus, S, type Cluster } from './fakes/cluster.js';

let dir: string;
let c: Cluster | null = null;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'ferry-prep-'));
});
afterEach(async () => {
  await c?.cleanup();
  c = null;
  await fs.rm(dir, { recursive: true, force: true });
});

describe('preparations record', () => {
  it('survives a restart: what was noted is known to the next instance, what was forgotten is not', () => {
    const file = join(dir, 'state', 'preparations.json');
    const first = new Preparations(file, silentLogger);
    first.note('a', 'src', true);
    first.note('b', 'src', true);
    first.note('c', 'src', false);
    first.forget('a');
    const again = new Preparations(file, silentLogger);
    expect([again.madeDir('a'), again.madeDir('b'), again.madeDir('c')]).toEqual([false, true, false]);
    expect(again.list().map((p) => [p.instanceUuid, p.source, p.madeDir])).toEqual([
      ['b', 'src', true],
      ['c', 'src', false],
    ]);
  });

  it('an unreadable record is set aside, not overwritten, and counts as nothing made (remove nothing)', async () => {
    const file = join(dir, 'preparations.json');
    await fs.writeFile(file, '{"version": 1, "createdDirs": [');
    const lines: string[] = [];
    const log = pino({ level: 'error' }, { write: (l: string) => lines.push(l) });
    const p = new Preparations(file, log);
    expect(p.madeDir('anything')).toBe(false);
    const entries = await fs.readdir(dir);
    expect(entries.filter((e) => e.startsWith('preparations.json.unreadable-'))).toHaveLength(1);
    expect(entries).not.toContain('preparations.json');
    expect(lines.join('')).toContain('preparations record unreadable');
  });

  it('an entry left from an earlier migration does not survive a migration onto a shared instance path: its rollback keeps the folder', async () => {
    const uuid = randomUUID();
    await fs.writeFile(join(dir, 'preparations.json'), JSON.stringify({ version: 1, createdDirs: [uuid] }));
    c = await makeCluster({ sharedStorage: true, dst: { config: { state_path: dir } } });
    const g = await makeGuest(c, { uuid, disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const m = await startMigration(c, g);
    await waitStatus(c.src, m.uuid, S.running);
    await g.dom.whenMigrating();
    g.dom.failMigration();
    await waitStatus(c.src, m.uuid, S.failed);
    // The folder is the running guest's, shared by both hosts: still there with its disk.
    expect(await c.src.storage.instanceDirExists(uuid)).toBe(true);
    await fs.access(c.src.storage.toReal(g.diskPaths[0]!));
  });

  it('a destination restarted after pre_live_migration still knows it made the instance folder', async () => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const { uuid } = await startMigration(c, g);
    await waitStatus(c.src, uuid, S.running);
    const file = join(c.dst.config.state_path, 'preparations.json');
    // A new process reads the record as the restarted ferryd would.
    expect(new Preparations(file, silentLogger).madeDir(g.uuid)).toBe(true);
    // Running is recorded just before migrateToURI3 is called.
    await g.dom.whenMigrating();
    g.dom.failMigration();
    await waitStatus(c.src, uuid, S.failed);
    expect(new Preparations(file, silentLogger).madeDir(g.uuid)).toBe(false);
    expect(await callDestination(c, 'rollback_live_migration_at_destination', { instance: instanceArg(g.instance) })).toBeNull();
  });
});

describe('settling what an earlier destination ferryd prepared (reconcile at start)', () => {
  /** A destination restarted with one preparation left for `instance`, prepared `ageSeconds` ago by compute-a. */
  async function restartedDestination(instance: string, ageSeconds: number) {
    const at = new Date(Date.now() - ageSeconds * 1000).toISOString();
    await fs.writeFile(join(dir, 'preparations.json'), JSON.stringify({ version: 2, prepared: [{ instanceUuid: instance, source: 'compute-a', at, madeDir: true }] }));
    c = await makeCluster({ dst: { config: { state_path: dir, incoming_migration_grace_seconds: 600 } } });
    await c.dst.storage.createInstanceDir(instance);
    return c;
  }
  const sourceRecord = (cl: Cluster, instance: string) =>
    cl.src.registry.create({ uuid: randomUUID(), id: null, instanceUuid: instance, instanceName: null, sourceCompute: 'compute-a', destCompute: 'compute-b', status: S.queued });

  it('the source says the migration ended cancelled: the folder made here is removed and the preparation forgotten', async () => {
    const instance = randomUUID();
    const cl = await restartedDestination(instance, 10);
    cl.src.registry.update(sourceRecord(cl, instance), { status: S.cancelled });
    await cl.dst.dest.reconcile();
    expect(await cl.dst.storage.instanceDirExists(instance)).toBe(false);
    expect(new Preparations(join(dir, 'preparations.json'), silentLogger).list()).toEqual([]);
  });

  it('the source says the migration is under way: everything is kept', async () => {
    const instance = randomUUID();
    const cl = await restartedDestination(instance, 10);
    sourceRecord(cl, instance);
    await cl.dst.dest.reconcile();
    cl.dst.dest.stop();
    expect(await cl.dst.storage.instanceDirExists(instance)).toBe(true);
    expect(new Preparations(join(dir, 'preparations.json'), silentLogger).list().map((p) => p.instanceUuid)).toEqual([instance]);
  });

  it('a source that cannot say, within the grace: everything is kept', async () => {
    const instance = randomUUID();
    const cl = await restartedDestination(instance, 10);
    await cl.dst.dest.reconcile();
    cl.dst.dest.stop();
    expect(await cl.dst.storage.instanceDirExists(instance)).toBe(true);
  });

  it('past the grace with a source that cannot say: rolled back', async () => {
    const instance = randomUUID();
    const cl = await restartedDestination(instance, 601);
    await cl.dst.dest.reconcile();
    expect(await cl.dst.storage.instanceDirExists(instance)).toBe(false);
  });
});
