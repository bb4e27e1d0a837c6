// Post-copy failure recovery (issue 10): a post-copy migration that stops half
// way is paused, resumed with VIR_MIGRATE_POSTCOPY_RESUME and the same params,
// retried with backoff or at once by the operator, and never rolled back: no
// domain is destroyed on either side while the guest's memory is split.
import { afterEach, describe, expect, it } from 'vitest';
import { DomainState, MigrateFlag, PausedReason, VirErrorCode } from '../../src/libvirt/types.js';
import { MAX_POLL_ERRORS } from '../../src/monitor/loop.js';
import { decide, heldForPostcopyResume, initialMonitorState, pausedInPostcopy } from '../../src/monitor/policy.js';
import { instanceArg } from '../../src/nova/objects.js';
import { JobType } from '../../src/libvirt/types.js';
import { FeatureUnavailableError } from '../../src/libvirt/features.js';
import { resumeDelayMs, resumeVerdict, ResumeSignal } from '../../src/source/postcopy-recovery.js';
import { virError } from './fakes/libvirt.js';
import { adminContext } from './fakes/rpc.js';
import { makeCluster, makeGuest, startMigration, statusesOf, waitDone, waitFor, waitStatus, S, type Cluster, type Guest } from './fakes/cluster.js';
import { monitorSettings } from './fakes/monitor-settings.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const errorOf = (p: Promise<unknown>) => p.then(() => null, (e: Error) => e);
const forceComplete = (g: Guest) => c.api.liveMigrationForceComplete(adminContext(), c.src.name, instanceArg(g.instance), 'call');
const resume = (g: Guest, ctx = adminContext()) => c.api.liveMigrationResume(ctx, c.src.name, instanceArg(g.instance));
const abort = (g: Guest, id: number | string) => c.api.liveMigrationAbort(adminContext(), c.src.name, instanceArg(g.instance), id, 'call');

/** A block migration switched to post-copy by the operator, held there until the test pauses it. */
async function inPostcopy() {
  c = await makeCluster({ sharedStorage: false, src: { config: { libvirt: { live_migration_permit_post_copy: true, live_migration_bandwidth_postcopy: 7 } } } });
  const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
  g.dom.behaviour.autoCompleteMs = null;
  g.dom.behaviour.postCopyCompleteMs = 60_000;
  const m = await startMigration(c, g, { blockMigration: true });
  await waitStatus(c.src, m.uuid, S.running);
  await g.dom.whenMigrating();
  await forceComplete(g);
  expect(c.src.registry.get(m.uuid)?.status).toBe(S.postcopy);
  return { g, ...m };
}

const migrateCalls = (g: Guest) => c.src.conn.callsOf('migrateToURI3', g.uuid).map((x) => ({ uri: x.args[0], params: x.args[1], flags: x.args[2] as number }));
const destDomain = (g: Guest) => c.dst.conn.domains.get(g.uuid);

describe('post-copy recovery: pure parts', () => {
  it('backs off 1 s, 2 s, 4 s ... up to 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(resumeDelayMs)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it('resumes only a source held for it (post-copy failed); one still in post-copy or unreadable waits; a gone or running one stops', () => {
    expect(resumeVerdict({ state: { state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED } })).toEqual({ kind: 'resume' });
    expect(resumeVerdict({ state: { state: DomainState.PAUSED, reason: PausedReason.POSTCOPY } })).toMatchObject({ kind: 'wait' });
    expect(resumeVerdict({ errorCode: VirErrorCode.NO_DOMAIN })).toMatchObject({ kind: 'stop', error: expect.stringContaining('source domain is gone') });
    expect(resumeVerdict({ errorCode: VirErrorCode.INTERNAL_ERROR })).toMatchObject({ kind: 'wait' });
    expect(resumeVerdict({ state: { state: DomainState.RUNNING, reason: 1 } })).toMatchObject({ kind: 'stop', error: expect.stringContaining('source domain is running') });
    expect(resumeVerdict({ state: { state: DomainState.PAUSED, reason: PausedReason.MIGRATION } })).toMatchObject({ kind: 'stop' });
    expect(heldForPostcopyResume({ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY })).toBe(false);
    // Once the API failed, either reason is the split guest's source half (the monitor holds it for recovery).
    expect([PausedReason.POSTCOPY, PausedReason.POSTCOPY_FAILED, PausedReason.MIGRATION].map((reason) => pausedInPostcopy({ state: DomainState.PAUSED, reason }))).toEqual([true, true, false]);
  });

  it('the policy calls a post-copy failure with the source held for a resume paused, not failed or cancelled', () => {
    const settings = monitorSettings({ postCopyPermitted: true });
    const at = (status: typeof S.postcopy | typeof S.running, foundJobType: JobType, postcopyFailed: boolean) =>
      decide({
        sample: { type: JobType.NONE },
        elapsedSeconds: 10,
        workerFinished: true,
        foundJobType,
        postcopyFailed,
        settings,
        endGame: { status, claimedAction: 'force_complete', pausedByUs: false },
        state: initialMonitorState(),
      }).actions;
    expect(at(S.postcopy, JobType.FAILED, true)).toEqual([{ kind: 'finish', outcome: 'postcopy_paused' }]);
    expect(at(S.postcopy, JobType.CANCELLED, true)).toEqual([{ kind: 'finish', outcome: 'postcopy_paused' }]);
    expect(at(S.postcopy, JobType.COMPLETED, true)).toEqual([{ kind: 'finish', outcome: 'completed' }]);
    expect(at(S.postcopy, JobType.FAILED, false)).toEqual([{ kind: 'finish', outcome: 'failed' }]);
    expect(at(S.running, JobType.FAILED, true)).toEqual([{ kind: 'finish', outcome: 'failed' }]);
  });

  it('an operator kick ends the backoff wait at once; with no wait pending it is refused', async () => {
    const signal = new ResumeSignal();
    expect(signal.kick()).toBe(false);
    const waited = signal.wait(60_000);
    expect(signal.kick()).toBe(true);
    expect(await waited).toBe(true);
    expect(await signal.wait(1)).toBe(false);
  });
});

describe('post-copy recovery', () => {
  it('a paused post-copy is resumed with the same URI and params plus POSTCOPY_RESUME and completes; nothing is destroyed or rolled back', async () => {
    const { g, uuid } = await inPostcopy();
    g.dom.behaviour.postCopyCompleteMs = 30;
    // The first attempt fails, so the migration stays paused for the next (2 s) backoff.
    g.dom.resumeErrors.push(virError(VirErrorCode.OPERATION_FAILED, 'operation failed: migration out: connection refused'));
    g.dom.pausePostcopy();
    await waitFor(() => migrateCalls(g).length === 2 && c.src.registry.get(uuid)?.status === S.postcopyPaused, 'the first, failed, resume');
    expect(c.src.registry.get(uuid)?.error).toContain('connection refused');
    // Both halves are there, paused here and running there.
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(DomainState.PAUSED);
    expect(destDomain(g)?.state).toBe(DomainState.RUNNING);
    // An abort now would throw the destination's half away: refused, as in post-copy.
    const refused = await errorOf(abort(g, uuid));
    expect(refused).toMatchObject({ name: 'InvalidMigrationState', message: expect.stringContaining('post-copy paused') });

    const r = await waitDone(c, uuid, 10_000);
    expect(r.status).toBe(S.completed);
    expect(r.error).toBeNull();
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused, S.postcopy, S.postcopyPaused, S.postcopy, S.completed]);
    const [first, ...resumes] = migrateCalls(g);
    expect(resumes).toEqual([0, 1].map(() => ({ uri: first!.uri, params: first!.params, flags: first!.flags | MigrateFlag.POSTCOPY_RESUME })));
    expect(first!.params).toMatchObject({ 'bandwidth.postcopy': 7 });
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3', 'migrateStartPostCopy', 'migrateToURI3', 'migrateToURI3']);
    expect(c.dst.conn.actions(g.uuid)).not.toContain('destroy');
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
    expect(c.bus.messages.map((m) => m.method)).toContain('post_live_migration_at_destination');
    expect(destDomain(g)).toMatchObject({ state: DomainState.RUNNING, persistent: true });
  });

  it('a pause whose first resume takes: paused once, resumed once, completed', async () => {
    const { g, uuid } = await inPostcopy();
    g.dom.behaviour.postCopyCompleteMs = 30;
    g.dom.pausePostcopy();
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused, S.postcopy, S.completed]);
    expect(migrateCalls(g).map((x) => (x.flags & MigrateFlag.POSTCOPY_RESUME) !== 0)).toEqual([false, true]);
    expect(c.src.registry.get(uuid)?.error).toBeNull();
  });

  it('failed resumes are retried; the operator can ask for the next one at once, but only while it is paused', async () => {
    const { g, uuid } = await inPostcopy();
    const refusedRunning = await errorOf(resume(g));
    expect(refusedRunning).toMatchObject({ name: 'InvalidMigrationState', message: expect.stringContaining('only a paused post-copy migration resumes') });
    const member = await errorOf(resume(g, { ...adminContext(), roles: ['member'], is_admin: false }));
    expect(member).toMatchObject({ name: 'PolicyNotAuthorized' });

    g.dom.resumeErrors.push(virError(VirErrorCode.OPERATION_FAILED, 'unable to connect to server: Connection refused'));
    g.dom.behaviour.postCopyCompleteMs = 30;
    g.dom.pausePostcopy();
    await waitStatus(c.src, uuid, S.postcopyPaused);
    // The first attempt (after 1 s) fails, so the migration waits again (2 s); the operator cuts that short.
    await waitFor(() => migrateCalls(g).length === 2 && c.src.registry.get(uuid)?.status === S.postcopyPaused, 'the failed resume');
    expect(c.src.registry.get(uuid)?.error).toContain('Connection refused');
    await resume(g);
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.completed);
    expect(migrateCalls(g).map((x) => (x.flags & MigrateFlag.POSTCOPY_RESUME) !== 0)).toEqual([false, true, true]);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused, S.postcopy, S.postcopyPaused, S.postcopy, S.completed]);
    expect(c.dst.conn.actions(g.uuid)).not.toContain('destroy');
  });

  it('a resume this host cannot make (refused before libvirt is called) ends in error at once, touching nothing', async () => {
    const { g, uuid } = await inPostcopy();
    g.dom.resumeErrors.push(new FeatureUnavailableError('post-copy resume (VIR_MIGRATE_POSTCOPY_RESUME) disabled on libvirt 11.3.0', 'post-copy resume'));
    g.dom.pausePostcopy();
    const r = await waitDone(c, uuid, 10_000);
    expect(r.status).toBe(S.error);
    expect(r.error).toContain('post-copy recovery impossible on this host: post-copy resume (VIR_MIGRATE_POSTCOPY_RESUME) disabled');
    expect(migrateCalls(g)).toHaveLength(2);
    expect(destDomain(g)?.state).toBe(DomainState.RUNNING);
    expect(c.dst.conn.actions(g.uuid)).not.toContain('destroy');
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
  });

  it('job stats that cannot be read in post-copy: no abort is tried, and the pause is still recovered, not rolled back', async () => {
    const { g, uuid } = await inPostcopy();
    g.dom.behaviour.postCopyCompleteMs = 30;
    g.dom.jobStatsScript = [virError(VirErrorCode.INTERNAL_ERROR, 'internal error: unable to execute QEMU command')];
    // Past MAX_POLL_ERRORS failed polls the monitor has stopped polling and waits for migrateToURI3: break it then.
    const before = c.src.conn.callsOf('getJobStats', g.uuid).length;
    await waitFor(() => c.src.conn.callsOf('getJobStats', g.uuid).length >= before + MAX_POLL_ERRORS, 'the failing polls', 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(c.src.conn.callsOf('getJobStats', g.uuid).length).toBe(before + MAX_POLL_ERRORS);
    g.dom.pausePostcopy();
    const r = await waitDone(c, uuid, 15_000);
    expect(r.status).toBe(S.completed);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.postcopyPaused, S.postcopy, S.completed]);
    expect(c.src.conn.actions(g.uuid)).not.toContain('abortJob');
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
  });

  it('when the source half is gone, recovery stops in error and touches nothing on either side', async () => {
    const { g, uuid } = await inPostcopy();
    g.dom.resumeErrors.push(virError(VirErrorCode.OPERATION_FAILED, 'operation failed: migration out: connection refused'));
    g.dom.pausePostcopy();
    await waitFor(() => migrateCalls(g).length === 2 && c.src.registry.get(uuid)?.status === S.postcopyPaused, 'the first, failed, resume');
    c.src.conn.removeDomain(g.uuid);
    const r = await waitDone(c, uuid, 10_000);
    expect(r.status).toBe(S.error);
    expect(r.error).toContain('source domain is gone');
    expect(c.src.finals.get(uuid)).toBe(1);
    expect(destDomain(g)?.state).toBe(DomainState.RUNNING);
    expect(c.dst.conn.actions(g.uuid)).not.toContain('destroy');
    expect(c.bus.messages.map((m) => m.method)).not.toContain('rollback_live_migration_at_destination');
    expect(await c.dst.storage.instanceDirExists(g.uuid)).toBe(true);
  });
});
