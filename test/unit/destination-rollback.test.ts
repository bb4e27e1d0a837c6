// rollback_live_migration_at_destination removes what this host's
// pre_live_migration made for the instance and nothing else, whatever the
// caller's arguments say; a guest living here is never touched.
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DomainState, PausedReason } from '../../src/libvirt/types.js';
import { instanceArg } from '../../src/nova/objects.js';
import type { RequestContext } from '../../src/rpc/types.js';
import { adminContext } from './fakes/rpc.js';
import { callDestination, leftovers, makeCluster, makeGuest, startMigration, statusesOf, waitDone, waitStatus, S, type Cluster, type Guest } from './fakes/cluster.js';

let c: Cluster | null = null;
afterEach(async () => {
  await c?.cleanup();
  c = null;
});

/** The RPC as a caller may send it: only the instance unless more is given. */
async function rollback(cl: Cluster, g: Guest, args: Record<string, unknown> = {}, ctx: RequestContext = adminContext()) {
  const reply = await callDestination(cl, 'rollback_live_migration_at_destination', { instance: instanceArg(g.instance), ...args }, ctx);
  return reply instanceof Error ? reply : null;
}

/** A guest with a local disk whose migration runs (and waits) with the destination prepared. */
async function migrating(cl: Cluster): Promise<{ g: Guest; uuid: string }> {
  const g = await makeGuest(cl, { disks: [{ dev: 'vda', file: 'disk' }] });
  g.dom.behaviour.autoCompleteMs = null;
  const { uuid } = await startMigration(cl, g);
  await waitStatus(cl.src, uuid, S.running);
  await g.dom.whenMigrating();
  return { g, uuid };
}

const diskBytes = async (cl: Cluster, g: Guest) => fs.readFile(cl.src.storage.toReal(g.diskPaths[0]!));

describe('rollback at the destination', () => {
  it('shared storage, default arguments: the guest and its disks are left alone', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const before = await diskBytes(c, g);
    for (const args of [{}, { destroy_disks: true }, { destroy_disks: true, migrate_data: {} }, { destroy_disks: true, migrate_data: { is_shared_instance_path: false } }]) {
      expect(await rollback(c, g, args)).toBeNull();
    }
    expect(await diskBytes(c, g)).toEqual(before);
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(DomainState.RUNNING);
    expect(c.dst.conn.actions()).toEqual([]);
  });

  it('a folder this host did not make for a migration is kept', async () => {
    c = await makeCluster();
    const g = await makeGuest(c);
    await c.dst.storage.createInstanceDir(g.uuid);
    expect(await rollback(c, g, { destroy_disks: true, migrate_data: { is_shared_instance_path: false } })).toBeNull();
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: true });
  });

  it('after a failed migration: the folder pre_live_migration made is removed, once', async () => {
    c = await makeCluster();
    const { g, uuid } = await migrating(c);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: true, dir: true });
    g.dom.failMigration();
    await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.failed]);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    expect(c.dst.incomingEnds).toEqual(['rolled_back']);
    // A repeated roll back finds nothing of its own left to remove.
    await c.dst.storage.createInstanceDir(g.uuid);
    expect(await rollback(c, g)).toBeNull();
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: true });
    // Counted once: the repeat had nothing of this host's to roll back.
    expect(c.dst.incomingEnds).toEqual(['rolled_back']);
  });

  it('the paused, never-run incoming half of a pre-copy migration is taken away', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c);
    c.dst.conn.addDomain(g.uuid, 'incoming', g.dom.xml, { state: DomainState.PAUSED, persistent: false }).reason = PausedReason.MIGRATION;
    expect(await rollback(c, g)).toBeNull();
    expect(c.dst.conn.actions(g.uuid)).toEqual(['destroy', 'undefine']);
  });

  it.each<[string, DomainState, number]>([
    ['running', DomainState.RUNNING, 1],
    ['running in post-copy', DomainState.RUNNING, 10],
    ['paused after a failed post-copy', DomainState.PAUSED, PausedReason.POSTCOPY_FAILED],
    ['paused by a user', DomainState.PAUSED, 1],
    ['shut off', DomainState.SHUTOFF, 0],
  ])('a guest %s here is refused and kept, with its folder', async (_what, state, reason) => {
    c = await makeCluster();
    const { g, uuid } = await migrating(c);
    const here = c.dst.conn.domains.get(g.uuid)!;
    here.state = state;
    here.reason = reason;
    expect(await rollback(c, g)).toMatchObject({ name: 'MigrationPreCheckError' });
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: true, dir: true });
    expect(c.dst.conn.actions(g.uuid)).toEqual([]);
    g.dom.completeMigration();
    await waitDone(c, uuid);
  });

  it('is admin-only: a member is refused and nothing changes', async () => {
    c = await makeCluster();
    const { g, uuid } = await migrating(c);
    const member: RequestContext = { request_id: 'req-member', user_id: 'u', project_id: 'p', roles: ['member'], is_admin: false, raw: {} };
    expect(await rollback(c, g, {}, member)).toMatchObject({ name: 'PolicyNotAuthorized' });
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: true, dir: true });
    g.dom.completeMigration();
    await waitDone(c, uuid);
  });
});
