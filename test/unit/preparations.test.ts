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
    g.dom.failMigration();
    await waitStatus(c.src, uuid, S.failed);
    expect(new Preparations(file, silentLogger).madeDir(g.uuid)).toBe(false);
    expect(await callDestination(c, 'rollback_live_migration_at_destination', { instance: instanceArg(g.instance) })).toBeNull();
  });
});
