// Operator abort and force-complete, through the compute RPC as a conductor
// (or ferryctl) sends them, at every stage of a migration.
import { afterEach, describe, expect, it } from 'vitest';
import { DomainState, VirErrorCode } from '../../src/libvirt/types.js';
import { instanceArg } from '../../src/nova/objects.js';
import type { RequestContext } from '../../src/rpc/types.js';
import { virError } from './fakes/libvirt.js';
import { adminContext } from './fakes/rpc.js';
import { leftovers, makeCluster, makeGuest, startMigration, statusesOf, waitDone, waitFor, waitStatus, S, type Cluster, type Guest } from './fakes/cluster.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const abort = (g: Guest, id: number | string, ctx: RequestContext = adminContext()) =>
  c.api.liveMigrationAbort(ctx, c.src.name, instanceArg(g.instance), id, 'call');
const forceComplete = (g: Guest, ctx: RequestContext = adminContext()) =>
  c.api.liveMigrationForceComplete(ctx, c.src.name, instanceArg(g.instance), 'call');
const errorOf = (p: Promise<unknown>) => p.then(() => null, (e: Error) => e);

async function running(o: Parameters<typeof makeCluster>[0] = {}) {
  c = await makeCluster({ sharedStorage: false, ...o });
  const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
  g.dom.behaviour.autoCompleteMs = null;
  const m = await startMigration(c, g, { blockMigration: true });
  await waitStatus(c.src, m.uuid, S.running);
  await g.dom.whenMigrating();
  return { g, ...m };
}

describe('abort', () => {
  it('while queued (slot held by another migration): cancelled, the destination never touched, the slot still works', async () => {
    c = await makeCluster({ sharedStorage: true, src: { config: { compute: { max_concurrent_live_migrations: 1 } } } });
    const holder = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    holder.dom.behaviour.autoCompleteMs = null;
    const first = await startMigration(c, holder);
    await waitStatus(c.src, first.uuid, S.running);
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const queued = await startMigration(c, g, { migrationId: 5001 });
    expect(c.src.registry.get(queued.uuid)?.status).toBe(S.queued);
    const busBefore = c.bus.messages.filter((m) => m.server === c.dst.name).length;

    await abort(g, 5001);
    await waitDone(c, queued.uuid).catch(() => undefined);
    await waitStatus(c.src, queued.uuid, S.cancelled);
    expect(statusesOf(c.src, queued.uuid)).toEqual([S.queued, S.cancelled]);
    expect(c.src.registry.get(queued.uuid)?.error).toBeNull();
    // Nothing went to the destination for it, and libvirt only looked it up.
    expect(c.bus.messages.filter((m) => m.server === c.dst.name).length).toBe(busBefore);
    expect(c.src.conn.actions(g.uuid)).toEqual([]);
    expect(c.src.notifier.types()).toEqual(['instance.live_migration_abort.start', 'instance.live_migration_abort.end']);
    // The holder is untouched and finishes; then the slot serves the next migration.
    expect(c.src.registry.get(first.uuid)?.status).toBe(S.running);
    holder.dom.completeMigration();
    await waitDone(c, first.uuid);
    const again = await startMigration(c, g);
    expect((await waitDone(c, again.uuid)).status).toBe(S.completed);
  });

  it('while preparing (pre_live_migration slow): rolled back on the destination, cancelled, no transfer', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const gate = c.bus.hold('pre_live_migration');
    const m = await startMigration(c, g, { blockMigration: true, migrationId: 6001 }).catch((e) => {
      throw e;
    });
    await gate.reached;
    expect(c.src.registry.get(m.uuid)?.status).toBe(S.preparing);
    await abort(g, 6001);
    gate.release();
    const r = await waitDone(c, m.uuid);
    expect(statusesOf(c.src, m.uuid)).toEqual([S.queued, S.preparing, S.cancelled]);
    expect(r.error).toBeNull();
    expect(c.src.conn.callsOf('migrateToURI3')).toHaveLength(0);
    expect(c.bus.sent('rollback_live_migration_at_destination', c.dst.name)).toHaveLength(1);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(DomainState.RUNNING);
  });

  it('while running: abortJob, migrateToURI3 rejects with 78, cancelled, destination rolled back, guest kept on the source', async () => {
    const { g, uuid, id } = await running();
    await abort(g, id);
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.cancelled]);
    expect(r.claimedAction).toBe('abort');
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'abortJob']);
    expect(c.bus.sent('rollback_live_migration_at_destination', c.dst.name)).toHaveLength(1);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    const srcDom = c.src.conn.domains.get(g.uuid);
    expect(srcDom?.state).toBe(DomainState.RUNNING);
    expect(await c.src.storage.instanceDirExists(g.uuid)).toBe(true);
    expect(c.src.notifier.types()).toEqual([
      'instance.live_migration_abort.start',
      'instance.live_migration_abort.end',
      'instance.live_migration_rollback.start',
      'instance.live_migration_rollback.end',
    ]);
    expect(c.src.finals.get(uuid)).toBe(1);
  });

  it('by migration uuid as well as by id', async () => {
    const { g, uuid } = await running();
    await abort(g, uuid);
    expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
  });

  it('a failed abortJob does not use up the claim: the operator can retry', async () => {
    const { g, uuid, id } = await running();
    g.dom.abortJobError = virError(VirErrorCode.OPERATION_FAILED, 'operation failed: transient monitor error');
    const err = await errorOf(abort(g, id));
    expect(err?.message).toContain('transient monitor error');
    expect(c.src.registry.get(uuid)?.status).toBe(S.running);
    await abort(g, id);
    expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
    expect(c.src.conn.callsOf('abortJob')).toHaveLength(2);
  });

  it('in post-copy: InvalidMigrationState, and the migration goes on to complete', async () => {
    const { g, uuid, id } = await running({ src: { config: { libvirt: { live_migration_permit_post_copy: true } } } });
    g.dom.behaviour.postCopyCompleteMs = 300;
    await forceComplete(g);
    expect(c.src.registry.get(uuid)?.status).toBe(S.postcopy);
    const err = await errorOf(abort(g, id));
    expect(err).toMatchObject({ name: 'InvalidMigrationState' });
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.completed);
    expect(c.src.conn.callsOf('abortJob')).toHaveLength(0);
    expect(c.bus.sent('rollback_live_migration_at_destination')).toHaveLength(0);
  });

  it('of an unknown migration: MigrationNotFound (by id, by uuid, and for another instance)', async () => {
    const { g, uuid, id } = await running();
    expect(await errorOf(abort(g, 987654))).toMatchObject({ name: 'MigrationNotFound' });
    expect(await errorOf(abort(g, '0f0f0f0f-0000-4000-8000-000000000000'))).toMatchObject({ name: 'MigrationNotFound' });
    const other = await makeGuest(c);
    expect(await errorOf(abort(other, id))).toMatchObject({ name: 'MigrationNotFound' });
    expect(await errorOf(abort(g, 'not-an-id'))).toMatchObject({ name: 'InvalidInput' });
    expect(c.src.registry.get(uuid)?.status).toBe(S.running);
    expect(c.src.conn.callsOf('abortJob')).toHaveLength(0);
  });

  it('of a finished migration: InvalidMigrationState', async () => {
    const { g, uuid, id } = await running();
    g.dom.completeMigration();
    await waitDone(c, uuid);
    expect(await errorOf(abort(g, id))).toMatchObject({ name: 'InvalidMigrationState' });
  });
});

describe('policy', () => {
  const member: RequestContext = { request_id: 'req-member', user_id: 'u', project_id: 'p', roles: ['member'], is_admin: false, raw: {} };
  const adminRole: RequestContext = { ...member, request_id: 'req-adminrole', roles: ['reader', 'admin'] };

  it('abort and force-complete without admin: PolicyNotAuthorized, nothing changes', async () => {
    const { g, uuid, id } = await running();
    const notesBefore = c.src.notifier.events.length;
    expect(await errorOf(abort(g, id, member))).toMatchObject({ name: 'PolicyNotAuthorized' });
    expect(await errorOf(forceComplete(g, member))).toMatchObject({ name: 'PolicyNotAuthorized' });
    // Refused before the lookup: an unknown migration is not revealed either.
    expect(await errorOf(abort(g, 424242, member))).toMatchObject({ name: 'PolicyNotAuthorized' });
    const r = c.src.registry.get(uuid)!;
    expect(r.status).toBe(S.running);
    expect(r.claimedAction).toBeNull();
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3']);
    expect(c.src.notifier.events.length).toBe(notesBefore);
    // The 'admin' role is enough, without is_admin.
    await abort(g, id, adminRole);
    expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
  });

  it("force-complete with the 'admin' role", async () => {
    const { g, uuid } = await running();
    await forceComplete(g, adminRole);
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'suspend']);
  });
});

describe('force-complete', () => {
  it('with post-copy permitted: migrateStartPostCopy, running (post-copy), completed', async () => {
    const { g, uuid } = await running({ src: { config: { libvirt: { live_migration_permit_post_copy: true } } } });
    await forceComplete(g);
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.completed]);
    expect(r.claimedAction).toBe('force_complete');
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'migrateStartPostCopy']);
    expect(c.src.notifier.types().slice(0, 2)).toEqual(['instance.live_migration_force_complete.start', 'instance.live_migration_force_complete.end']);
    expect(c.dst.conn.domains.get(g.uuid)?.state).toBe(DomainState.RUNNING);
  });

  it('without post-copy: suspend; when the migration then fails, the guest is resumed on the source and the migration failed', async () => {
    const { g, uuid } = await running();
    g.dom.behaviour.afterPause = 'fail';
    await forceComplete(g);
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.failed]);
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'suspend', 'resume']);
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(DomainState.RUNNING);
    expect(r.error).toBeTruthy();
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
  });

  it('post-copy, then libvirt ends the job as aborted with the source still paused in post-copy: held for a resume, never cancelled or rolled back', async () => {
    const { g, uuid } = await running({ src: { config: { libvirt: { live_migration_permit_post_copy: true } } } });
    g.dom.behaviour.postCopyCompleteMs = 60_000;
    await forceComplete(g);
    expect(c.src.registry.get(uuid)?.status).toBe(S.postcopy);
    // The fake also drops the destination's half, so no resume can take: the migration waits, paused.
    g.dom.failMigration(virError(VirErrorCode.OPERATION_ABORTED, 'operation aborted: migration out job: canceled by client'));
    await waitStatus(c.src, uuid, S.postcopyPaused);
    expect(c.src.conn.actions(g.uuid)).not.toContain('destroy');
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
    // Once there is no source half either, it ends, reported once, with nothing rolled back.
    c.src.conn.removeDomain(g.uuid);
    const r = await waitDone(c, uuid, 10_000);
    expect(r.status).toBe(S.error);
    expect(statusesOf(c.src, uuid).slice(0, 5)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused]);
    expect(c.src.finals.get(uuid)).toBe(1);
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
  });

  it('post-copy, then the job fails with the source running again: an error, nothing rolled back on either side', async () => {
    const { g, uuid } = await running({ src: { config: { libvirt: { live_migration_permit_post_copy: true } } } });
    g.dom.behaviour.postCopyCompleteMs = 60_000;
    await forceComplete(g);
    g.dom.state = DomainState.RUNNING;
    g.dom.reason = 1;
    g.dom.failMigration();
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.error);
    expect(r.error).toContain('nothing rolled back');
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.error]);
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
    expect(c.src.conn.actions(g.uuid)).not.toContain('destroy');
  });

  it('an operator pause that lands after the migration already failed is undone at once', async () => {
    const { g, uuid } = await running();
    const realSuspend = g.dom.suspend.bind(g.dom);
    // The pause is slow; the migration fails (and is rolled back) while it is on its way.
    g.dom.suspend = async () => {
      g.dom.failMigration();
      // Not waitDone: it waits for the bus to be idle, and this runs inside the operator's call.
      await waitFor(() => c.src.registry.get(uuid)?.status === S.failed, 'the migration to fail');
      await realSuspend();
    };
    await forceComplete(g);
    expect(c.src.registry.get(uuid)).toMatchObject({ status: S.failed, pausedByUs: false });
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(DomainState.RUNNING);
  });

  it('without post-copy: suspend, then completed, no resume', async () => {
    const { g, uuid } = await running();
    await forceComplete(g);
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'suspend']);
  });

  it('refused when not running: queued, preparing, post-copy, none', async () => {
    c = await makeCluster({ sharedStorage: true, src: { config: { libvirt: { live_migration_permit_post_copy: true } } } });
    const holder = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    holder.dom.behaviour.autoCompleteMs = null;
    holder.dom.behaviour.postCopyCompleteMs = 300;
    const first = await startMigration(c, holder);
    await waitStatus(c.src, first.uuid, S.running);
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const second = await startMigration(c, g);
    expect(c.src.registry.get(second.uuid)?.status).toBe(S.queued);
    expect(await errorOf(forceComplete(g))).toMatchObject({ name: 'InvalidMigrationState' });

    await forceComplete(holder);
    expect(c.src.registry.get(first.uuid)?.status).toBe(S.postcopy);
    expect(await errorOf(forceComplete(holder))).toMatchObject({ name: 'InvalidMigrationState' });
    expect(c.src.conn.callsOf('migrateStartPostCopy')).toHaveLength(1);
    await waitDone(c, first.uuid);

    // The slot is free: the second one runs now.
    await waitStatus(c.src, second.uuid, S.running);
    await g.dom.whenMigrating();
    g.dom.completeMigration();
    await waitDone(c, second.uuid);
    const idle = await makeGuest(c);
    expect(await errorOf(forceComplete(idle))).toMatchObject({ name: 'NoActiveMigrationForInstance' });
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3']);
  });

  it('refused while preparing', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const gate = c.bus.hold('pre_live_migration');
    const m = await startMigration(c, g, { blockMigration: true });
    await gate.reached;
    expect(await errorOf(forceComplete(g))).toMatchObject({ name: 'InvalidMigrationState' });
    gate.release();
    expect((await waitDone(c, m.uuid)).status).toBe(S.completed);
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3']);
  });
});
