// Operator control of running migrations, end to end (issue 5): abort in every
// state, force-complete by post-copy and by pause, per-migration timeouts with
// their downtime ramp, an operator abort racing the timeout, and who may do
// it. Real ferryd agents in two lab hosts, real TCG guests that keep beating,
// migrations slowed on purpose (20 MiB/s against a guest dirtying 128 MiB at
// 60 MB/s never converges on its own).

import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { operatorContext } from '../../src/cli/conductor.js';
import { silentLogger } from '../../src/log/logger.js';
import { COMPUTE_RPC_SEND_VERSION } from '../../src/nova/compute-rpcapi.js';
import type { MigrationView } from '../../src/nova/migration-view.js';
import { AmqpConnection, AmqpRpcClient } from '../../src/rpc/index.js';
import type { TestConductor } from '../conductor/conductor.js';
import { run } from '../lab/exec.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { ferrydPid, type Agent } from './agents.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, instanceDirExists, type LabGuest } from './fixture.js';

const DIRTY = { mib: 128, rateMBs: 60 };
const MAX_DOWNTIME = 500;
const FINAL = new Set(['completed', 'failed', 'cancelled', 'error']);
/**
 * Progress is saved (and logged, 'migration progress') every live_migration_monitor_interval = 1 s,
 * that is every 2 polls of 500 ms: save n comes from poll 2n, at least n s after the monitor started,
 * however loaded the host (polls are never closer than 500 ms). The timeout tests count polls by it.
 */
const SAVE_EVERY_S = 1;
/**
 * Slow on purpose, one outgoing migration at a time, post-copy allowed. Nova's policy, which acts
 * only at the deadline: the adaptive one would switch these stalled guests to post-copy by itself.
 */
const POSTCOPY_CONFIG = {
  libvirt: { convergence_policy: 'nova', live_migration_bandwidth: 20, live_migration_downtime: MAX_DOWNTIME, live_migration_permit_post_copy: true, live_migration_monitor_interval: SAVE_EVERY_S },
  compute: { max_concurrent_live_migrations: 1 },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));
const logTime = (l: Record<string, unknown> | undefined): number => Date.parse(String(l?.time));
/** The max downtime a progress line reports (null before the ramp's first step). */
const downtimeOf = (l: Record<string, unknown>): number => (typeof l.downtime === 'number' ? l.downtime : 0);

/** A lab guest and the host it runs on now. */
interface Placed {
  g: LabGuest;
  on: LabHost;
}

describe('operator control of running migrations', () => {
  let cluster: LabCluster;
  let a: LabHost;
  let b: LabHost;
  let conductor: TestConductor;
  let agents: Agent[] = [];
  let rawConnection: AmqpConnection;
  let raw: AmqpRpcClient;
  let g1: Placed;
  let g2: Placed;
  const admin = operatorContext();
  const member = operatorContext(['member']);

  const other = (h: LabHost): LabHost => (h === a ? b : a);
  const agentOf = (h: LabHost): Agent => agents.find((x) => x.host === h)!;
  const api = () => conductor.api;

  async function useAgents(config: Record<string, unknown>): Promise<void> {
    agents = await cluster.useAgents(config);
  }

  function migrate(p: Placed, extra: { timeoutSeconds?: number; onTimeout?: 'abort' | 'force_complete' } = {}) {
    return conductor.migrate({ instance: p.g.instance, source: p.on.hostname, dest: other(p.on).hostname, blockMigration: null, ...extra });
  }

  /** The guest keeps beating on `host`; the other host holds no domain and no instance folder. */
  async function assertOn(p: Placed, host: LabHost): Promise<void> {
    const { uuid } = p.g;
    await waitForHeartbeat(host, uuid, { after: await lastHeartbeat(host, uuid), timeoutMs: 30_000 });
    expect(await domainState(host, uuid)).toBe('running');
    expect(await domainState(other(host), uuid)).toBeNull();
    expect(await instanceDirExists(other(host), uuid)).toBe(false);
    p.on = host;
  }

  /** Where the guest is once a migration from `src` ended: the destination only if it completed. */
  function settle(p: Placed, src: LabHost, end: MigrationView): void {
    p.on = end.status === 'completed' ? other(src) : src;
  }

  /** Notification event types about one instance with that prefix, in order. */
  function eventsFor(uuid: string, prefix: string): string[] {
    return conductor.notifications
      .filter((n) => n.event_type.startsWith(prefix) && (n.payload['nova_object.data'] as { uuid?: string } | undefined)?.uuid === uuid)
      .map((n) => n.event_type);
  }

  function finalUpdates(migrationUuid: string): MigrationView[] {
    return conductor.updates.filter((u) => u.uuid === migrationUuid && FINAL.has(u.status));
  }

  async function listed(host: LabHost, migrationUuid: string): Promise<MigrationView | undefined> {
    return (await api().listMigrations(admin, host.hostname)).find((m) => m.uuid === migrationUuid);
  }

  async function logsOf(host: LabHost, migrationUuid: string, msg: string) {
    return (await agentOf(host).logs()).filter((l) => l.msg === msg && l.migration === migrationUuid);
  }

  /** The first progress line of a migration that `pred` accepts, once it is logged. */
  async function progressWhen(host: LabHost, migrationUuid: string, pred: (l: Record<string, unknown>) => boolean, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = (await logsOf(host, migrationUuid, 'migration progress')).find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`no such 'migration progress' line for ${migrationUuid} after ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /**
   * The timeout's action was taken at the first poll past `timeoutSeconds`: fewer progress saves
   * precede it in the log than the first save certainly past the deadline (save n is at least
   * n x SAVE_EVERY_S s in). If the action falls in that save's poll it still comes first: the
   * monitor acts before it saves.
   */
  async function expectActedAtFirstPollPast(host: LabHost, migrationUuid: string, actionMsg: string, timeoutSeconds: number): Promise<void> {
    const lines = (await agentOf(host).logs()).filter((l) => l.migration === migrationUuid);
    const at = lines.findIndex((l) => l.msg === actionMsg);
    expect(at, `a '${actionMsg}' line`).toBeGreaterThanOrEqual(0);
    const savesBefore = lines.slice(0, at).filter((l) => l.msg === 'migration progress').length;
    expect(savesBefore).toBeLessThanOrEqual(timeoutSeconds / SAVE_EVERY_S + 1);
  }

  beforeAll(async () => {
    // A private RabbitMQ vhost: every lab's hosts are named ferry-lab-a/b, so shared queues would mix labs.
    cluster = await startLabCluster({ name: 'opctl', addrBase: 20 });
    ({ a, b, conductor } = cluster);
    rawConnection = new AmqpConnection({ transportUrl: cluster.broker.transportUrl, connectionName: 'opctl-raw', logger: silentLogger });
    await rawConnection.start();
    raw = new AmqpRpcClient({ connection: rawConnection, exchange: cluster.exchange, logger: silentLogger });
    await raw.start();
    await useAgents(POSTCOPY_CONFIG);
    g1 = { g: await cluster.boot({ dirty: DIRTY }), on: a };
    g2 = { g: await cluster.boot({ dirty: DIRTY }), on: a };
  });

  // A failed test may leave a migration running, and every later test would fail on it:
  // end what still runs and find the guests again, so one failure reports as one.
  afterEach(async ({ task }) => {
    if (task.result?.state !== 'fail') return;
    for (const h of [a, b]) {
      for (const m of await api().listMigrations(admin, h.hostname).catch(() => [] as MigrationView[])) {
        if (FINAL.has(m.status)) continue;
        await api().liveMigrationAbort(admin, h.hostname, { uuid: m.instance_uuid }, m.uuid, 'call').catch(() => {});
        await conductor.waitForEnd(m.uuid, 90_000).catch(() => {});
      }
    }
    for (const p of [g1, g2]) {
      if (!p) continue;
      const states = await Promise.all([a, b].map((h) => domainState(h, p.g.uuid)));
      const runningOn = [a, b].filter((_h, i) => states[i] === 'running');
      const elsewhere = runningOn.length === 1 ? other(runningOn[0]!) : null;
      if (elsewhere && states[[a, b].indexOf(elsewhere)] === null && !(await instanceDirExists(elsewhere, p.g.uuid))) {
        p.on = runningOn[0]!;
        continue;
      }
      // Split or lost (a post-copy that never finished): the test's own guest, replaced by a fresh one on A.
      await cluster.removeGuest(p.g.uuid);
      p.g = await cluster.boot({ dirty: DIRTY });
      p.on = a;
    }
  });

  afterAll(async () => {
    await Promise.all(agents.map((x) => x.stop()));
    await raw?.close();
    await rawConnection?.close();
    await cluster?.close();
  });

  it('aborts a queued migration (never prepared) without touching the running one, refuses members, then aborts the running one by cast', async () => {
    const src = a;
    const first = await migrate(g1);
    await conductor.waitForStatus(first.migrationUuid, 'running', 60_000);
    const second = await migrate(g2);
    await conductor.waitForStatus(second.migrationUuid, 'queued', 20_000);
    await sleep(1000);
    expect(conductor.statuses(second.migrationUuid)).toEqual(['queued']);

    // Force-complete is only for a running migration.
    await expect(api().liveMigrationForceComplete(admin, src.hostname, g2.g.instance, 'call')).rejects.toMatchObject({ name: 'InvalidMigrationState' });
    // Members may do neither; the refusal is logged and nothing changes.
    await expect(api().liveMigrationAbort(member, src.hostname, g1.g.instance, first.migrationUuid, 'call')).rejects.toMatchObject({ name: 'PolicyNotAuthorized' });
    await expect(api().liveMigrationForceComplete(member, src.hostname, g1.g.instance, 'call')).rejects.toMatchObject({ name: 'PolicyNotAuthorized' });
    // Polled: the reply can overtake the log line on its way to the file.
    const refusedActions = async () => (await agentOf(src).logs()).filter((l) => l.msg === 'request refused by policy').map((l) => l.action);
    await expect
      .poll(refusedActions, { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['os_compute_api:servers:migrations:delete', 'os_compute_api:servers:migrations:force_complete']));
    expect(await listed(src, first.migrationUuid)).toMatchObject({ status: 'running', action_taken: null });

    // Abort the queued one: cancelled straight from queued.
    await api().liveMigrationAbort(admin, src.hostname, g2.g.instance, second.migrationUuid, 'call');
    const secondEnd = await conductor.waitForEnd(second.migrationUuid, 20_000);
    settle(g2, src, secondEnd);
    expect(secondEnd.status).toBe('cancelled');
    expect(conductor.statuses(second.migrationUuid)).toEqual(['queued', 'cancelled']);
    expect(await listed(src, second.migrationUuid)).toMatchObject({ status: 'cancelled' });
    expect(await logsOf(src, second.migrationUuid, 'migration transfer started')).toEqual([]);
    expect(eventsFor(g2.g.uuid, 'instance.live_migration_abort.')).toEqual(['instance.live_migration_abort.start', 'instance.live_migration_abort.end']);
    expect(eventsFor(g2.g.uuid, 'instance.live_migration_pre.')).toEqual([]);

    // The first one never noticed.
    await sleep(1500);
    expect(conductor.statuses(first.migrationUuid)).toEqual(['queued', 'preparing', 'running']);
    expect(await listed(src, first.migrationUuid)).toMatchObject({ status: 'running', action_taken: null });

    // Abort it by the plain cast, as Nova does.
    await api().liveMigrationAbort(admin, src.hostname, g1.g.instance, first.migrationUuid);
    const firstEnd = await conductor.waitForEnd(first.migrationUuid, 60_000);
    settle(g1, src, firstEnd);
    expect(firstEnd).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
    expect(conductor.statuses(first.migrationUuid)).toEqual(['queued', 'preparing', 'running', 'cancelled']);
    expect(await listed(src, first.migrationUuid)).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
    expect(await logsOf(src, first.migrationUuid, 'aborting migration job')).toHaveLength(1);
    expect(eventsFor(g1.g.uuid, 'instance.live_migration_abort.')).toEqual(['instance.live_migration_abort.start', 'instance.live_migration_abort.end']);
    for (const m of [first, second]) expect(finalUpdates(m.migrationUuid)).toHaveLength(1);

    await assertOn(g1, src);
    await assertOn(g2, src);
  });

  it('refuses to abort an unknown or finished migration, changing nothing', async () => {
    const src = g1.on;
    const before = await api().listMigrations(admin, src.hostname);
    const finished = before.find((m) => m.instance_uuid === g1.g.uuid && m.status === 'cancelled');
    expect(finished).toBeDefined();
    const updates = conductor.updates.length;

    await expect(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, randomUUID(), 'call')).rejects.toMatchObject({ name: 'MigrationNotFound' });
    await expect(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, 987654, 'call')).rejects.toMatchObject({ name: 'MigrationNotFound' });
    // Another instance's migration is not this instance's.
    await expect(api().liveMigrationAbort(admin, src.hostname, g2.g.instance, finished!.uuid, 'call')).rejects.toMatchObject({ name: 'MigrationNotFound' });
    await expect(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, finished!.uuid, 'call')).rejects.toMatchObject({
      name: 'InvalidMigrationState',
      message: expect.stringContaining('cancelled'),
    });
    await expect(api().liveMigrationForceComplete(admin, src.hostname, g1.g.instance, 'call')).rejects.toMatchObject({ name: 'NoActiveMigrationForInstance' });

    expect(await api().listMigrations(admin, src.hostname)).toEqual(before);
    await sleep(500);
    expect(conductor.updates.length).toBe(updates);
    await assertOn(g1, src);
  });

  it('aborts a migration while the destination is still preparing; the destination is cleaned', async () => {
    const src = g1.on;
    const dst = other(src);
    const instance = { ...g1.g.instance, host: src.hostname };
    const migrateData = await api().checkCanLiveMigrateDestination(admin, dst.hostname, instance, null, false);
    const migrationUuid = randomUUID();
    const destPid = ferrydPid(agentOf(dst));
    // The destination stops answering: pre_live_migration waits in its queue.
    process.kill(destPid, 'SIGSTOP');
    try {
      await api().liveMigration(admin, src.hostname, {
        instance,
        dest: dst.hostname,
        block_migration: migrateData.block_migration ?? null,
        migrate_data: migrateData,
        migration: { uuid: migrationUuid },
      });
      await conductor.waitForStatus(migrationUuid, 'preparing', 20_000);
      await expect(api().liveMigrationForceComplete(admin, src.hostname, instance, 'call')).rejects.toMatchObject({ name: 'InvalidMigrationState' });
      await api().liveMigrationAbort(admin, src.hostname, instance, migrationUuid, 'call');
      expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing']);
    } finally {
      process.kill(destPid, 'SIGCONT');
    }
    const end = await conductor.waitForEnd(migrationUuid, 60_000);
    settle(g1, src, end);
    expect(end.status).toBe('cancelled');
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'cancelled']);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    expect(await listed(src, migrationUuid)).toMatchObject({ status: 'cancelled' });
    expect(await logsOf(src, migrationUuid, 'migration transfer started')).toEqual([]);
    // The destination did prepare (after SIGCONT) and was rolled back.
    expect(eventsFor(g1.g.uuid, 'instance.live_migration_rollback_dest.')).toEqual(
      expect.arrayContaining(['instance.live_migration_rollback_dest.start', 'instance.live_migration_rollback_dest.end']),
    );
    await assertOn(g1, src);
  });

  it('force-completes by switching to post-copy; an abort in post-copy is refused and the migration completes', async () => {
    const src = g1.on;
    const dst = other(src);
    const { migrationUuid } = await migrate(g1);
    await conductor.waitForStatus(migrationUuid, 'running', 60_000);
    await sleep(2000);
    const fcBefore = eventsFor(g1.g.uuid, 'instance.live_migration_force_complete.').length;
    await api().liveMigrationForceComplete(admin, src.hostname, g1.g.instance, 'call');
    await expect(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, migrationUuid, 'call')).rejects.toMatchObject({
      name: 'InvalidMigrationState',
      message: expect.stringContaining('running (post-copy)'),
    });
    const end = await conductor.waitForEnd(migrationUuid, 60_000);
    settle(g1, src, end);
    expect(end).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'running (post-copy)', 'completed']);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    expect(await listed(src, migrationUuid)).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
    const forced = await logsOf(src, migrationUuid, 'forcing migration to complete');
    expect(forced.map((l) => [l.source, l.mode])).toEqual([['operator', 'postcopy']]);
    expect(await logsOf(src, migrationUuid, 'aborting migration job')).toEqual([]);
    expect(eventsFor(g1.g.uuid, 'instance.live_migration_force_complete.').slice(fcBefore)).toEqual([
      'instance.live_migration_force_complete.start',
      'instance.live_migration_force_complete.end',
    ]);
    await assertOn(g1, dst);
  });

  it('aborts at a 20 s per-migration timeout; the downtime ramp reaches the maximum at 10 s', async () => {
    const src = g2.on;
    const { migrationUuid } = await migrate(g2, { timeoutSeconds: 20, onTimeout: 'abort' });
    await conductor.waitForStatus(migrationUuid, 'running', 60_000);
    const maxDowntime = async () => Number((await src.virsh(['migrate-getmaxdowntime', g2.g.uuid])).stdout.trim());
    // libvirt holds what ferry logged. Read it once a step below the maximum is logged (the first, ~1 s in,
    // about 9 s before the maximum is due) and once the maximum is (~10 s in, 10 s before the abort).
    const step = downtimeOf(await progressWhen(src, migrationUuid, (l) => downtimeOf(l) > 0 && downtimeOf(l) < MAX_DOWNTIME));
    const early = await maxDowntime();
    expect(early).toBeGreaterThanOrEqual(step);
    expect(early).toBeLessThan(MAX_DOWNTIME);
    await progressWhen(src, migrationUuid, (l) => l.downtime === MAX_DOWNTIME);
    const late = await maxDowntime();
    expect(late).toBe(MAX_DOWNTIME);
    const view = await listed(src, migrationUuid);
    expect(view).toMatchObject({ status: 'running', timeout_seconds: 20, on_timeout: 'abort', current_max_downtime_ms: MAX_DOWNTIME });

    const end = await conductor.waitForEnd(migrationUuid, 60_000);
    settle(g2, src, end);
    expect(end).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
    const [started] = await logsOf(src, migrationUuid, 'migration transfer started');
    const aborted = await logsOf(src, migrationUuid, 'aborting migration job');
    expect(aborted.map((l) => l.source)).toEqual(['timeout']);
    const firedAfter = (logTime(aborted[0]) - logTime(started)) / 1000;
    expect(firedAfter).toBeGreaterThanOrEqual(20);
    await expectActedAtFirstPollPast(src, migrationUuid, 'aborting migration job', 20);

    // The whole ramp, from ferry's log, on the monitor's own clock (each save carries the time its
    // sample was taken; a loaded host polls less often, so save counts say nothing): it never goes
    // down; every save up to 10 s (half the timeout) is below the maximum, every save after it is at it.
    const saves = await logsOf(src, migrationUuid, 'migration progress');
    const values = saves.map(downtimeOf);
    expect(values).toEqual([...values].sort((x, y) => x - y));
    const elapsedMs = (l: Record<string, unknown>): number => Number(l.elapsed_ms);
    expect(saves.every((l) => Number.isFinite(elapsedMs(l)))).toBe(true);
    const beforeHalf = saves.filter((l) => elapsedMs(l) <= 10_000);
    const afterHalf = saves.filter((l) => elapsedMs(l) > 10_000);
    expect(beforeHalf.length).toBeGreaterThan(0);
    expect(afterHalf.length).toBeGreaterThan(0);
    for (const l of beforeHalf) expect(downtimeOf(l)).toBeLessThan(MAX_DOWNTIME);
    for (const l of afterHalf) expect(l.downtime).toBe(MAX_DOWNTIME);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    await assertOn(g2, src);
  });

  it('force-completes at a 20 s per-migration timeout (post-copy) and completes on the destination', async () => {
    const src = g2.on;
    const dst = other(src);
    const { migrationUuid } = await migrate(g2, { timeoutSeconds: 20, onTimeout: 'force_complete' });
    const end = await conductor.waitForEnd(migrationUuid, 90_000);
    settle(g2, src, end);
    expect(end).toMatchObject({ status: 'completed', action_taken: 'force_complete', timeout_seconds: 20, on_timeout: 'force_complete' });
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'running (post-copy)', 'completed']);
    const [started] = await logsOf(src, migrationUuid, 'migration transfer started');
    const forced = await logsOf(src, migrationUuid, 'forcing migration to complete');
    expect(forced.map((l) => [l.source, l.mode])).toEqual([['timeout', 'postcopy']]);
    const firedAfter = (logTime(forced[0]) - logTime(started)) / 1000;
    expect(firedAfter).toBeGreaterThanOrEqual(20);
    await expectActedAtFirstPollPast(src, migrationUuid, 'forcing migration to complete', 20);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    await assertOn(g2, dst);
  });

  /**
   * Starts a migration of g1, switches it to post-copy and checks an abort is refused there. Post-copy
   * runs at 10 MiB/s so it lasts long enough to be broken on purpose.
   */
  async function inPostcopy(): Promise<{ migrationUuid: string; src: LabHost; dst: LabHost; startedAt: number }> {
    await useAgents({ ...POSTCOPY_CONFIG, libvirt: { ...POSTCOPY_CONFIG.libvirt, live_migration_bandwidth_postcopy: 10 } });
    const startedAt = Date.now();
    const src = g1.on;
    const dst = other(src);
    const { migrationUuid } = await migrate(g1);
    await conductor.waitForStatus(migrationUuid, 'running', 60_000);
    await sleep(2000);
    await api().liveMigrationForceComplete(admin, src.hostname, g1.g.instance, 'call');
    await expect(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, migrationUuid, 'call')).rejects.toMatchObject({
      name: 'InvalidMigrationState',
      message: expect.stringContaining('running (post-copy)'),
    });
    // migrateStartPostCopy only asks QEMU to switch; break the migration once libvirt saw it switch
    // (the source paused for post-copy) and pages flow, not during the switch itself.
    await expect
      .poll(async () => (await src.virsh(['domstate', '--reason', g1.g.uuid])).stdout.trim(), { timeout: 60_000, interval: 250 })
      .toBe('paused (post-copy)');
    await sleep(1000);
    return { migrationUuid, src, dst, startedAt };
  }

  /** The broken post-copy was paused, resumed by ferry (never rolled back) and completed; the guest beats on the destination. */
  async function expectRecovered({ migrationUuid, src, dst, startedAt }: Awaited<ReturnType<typeof inPostcopy>>): Promise<void> {
    const end = await conductor.waitForEnd(migrationUuid, 180_000);
    settle(g1, src, end);
    expect(end, `error: ${end.error}; statuses ${conductor.statuses(migrationUuid).join(' -> ')}`).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
    const statuses = conductor.statuses(migrationUuid);
    expect(statuses.slice(0, 5)).toEqual(['queued', 'preparing', 'running', 'running (post-copy)', 'post-copy paused']);
    expect(statuses.slice(-2)).toEqual(['running (post-copy)', 'completed']);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    expect((await logsOf(src, migrationUuid, 'resuming post-copy migration')).length).toBeGreaterThanOrEqual(1);
    // The agents' logs go on across restarts: only this migration's time counts.
    const rollbacks = (await agentOf(dst).logs()).filter((l) => l.msg === 'dispatch' && l.method === 'rollback_live_migration_at_destination' && logTime(l) >= startedAt);
    expect(rollbacks).toEqual([]);
    await assertOn(g1, dst);
  }

  it('a post-copy migration paused on the source (virDomainAbortJobFlags POSTCOPY) is resumed and completes; the guest beats on the destination', async () => {
    const pc = await inPostcopy();
    await pc.src.virsh(['domjobabort', g1.g.uuid, '--postcopy']);
    await conductor.waitForStatus(pc.migrationUuid, 'post-copy paused', 30_000);
    await expectRecovered(pc);
  }, 300_000);

  it('a post-copy migration whose migration connection is killed (ss -K) is resumed and completes; the guest beats on the destination', async () => {
    const pc = await inPostcopy();
    // The destination libvirtd's migration ports (test/lab/lab.ts): only QEMU's migration stream uses them here.
    const first = 49152 + pc.dst.index * 64;
    const killed = await run('ss', ['-K', '-t', '-n', 'dst', pc.dst.migrationAddr, 'and', '(', 'dport', '>=', `:${first}`, 'and', 'dport', '<=', `:${first + 63}`, ')']);
    expect(killed.stdout.trim().split('\n').length, `ss killed no connection:\n${killed.stdout}`).toBeGreaterThan(1);
    await conductor.waitForStatus(pc.migrationUuid, 'post-copy paused', 30_000);
    await expectRecovered(pc);
  }, 300_000);

  it('refuses invalid timeout_seconds / on_timeout before anything starts, naming the field', async () => {
    const src = g2.on;
    const dst = other(src);
    const instance = { ...g2.g.instance, host: src.hostname };
    const target = { topic: 'compute-alt', server: src.hostname, version: COMPUTE_RPC_SEND_VERSION };
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ timeout_seconds: -1 }, 'timeout_seconds'],
      [{ timeout_seconds: 1.5 }, 'timeout_seconds'],
      [{ on_timeout: 'explode' }, 'on_timeout'],
    ];
    const uuids: string[] = [];
    for (const [extra, field] of bad) {
      const uuid = randomUUID();
      uuids.push(uuid);
      const args = { instance, dest: dst.hostname, block_migration: false, migrate_data: {}, migration: { uuid }, ...extra };
      await expect(raw.call(admin, target, 'live_migration', args, { timeout: 30 })).rejects.toMatchObject({
        name: 'InvalidInput',
        message: expect.stringContaining(field),
      });
    }
    // The cast path (as Nova sends it): refused and logged, naming the field.
    const castUuid = randomUUID();
    uuids.push(castUuid);
    const castCtx = operatorContext();
    await api().liveMigration(castCtx, src.hostname, {
      instance,
      dest: dst.hostname,
      block_migration: false,
      migrate_data: {},
      migration: { uuid: castUuid },
      timeout_seconds: -1,
    });
    // Read as text: the rpc server's warning carries the reason in a second "msg" key that JSON.parse drops.
    const refusal = (line: string) => line.includes('"method":"live_migration"') && line.includes('"level":40') && line.includes(castCtx.request_id) && /timeout_seconds: must be >= 0/.test(line);
    await expect.poll(async () => (await readFile(agentOf(src).logFile, 'utf8')).split('\n').some(refusal), { timeout: 10_000 }).toBe(true);
    await sleep(500);
    const views = await api().listMigrations(admin, src.hostname);
    for (const u of uuids) {
      expect(views.find((m) => m.uuid === u)).toBeUndefined();
      expect(conductor.updates.find((m) => m.uuid === u)).toBeUndefined();
    }
    await assertOn(g2, src);
  });

  it('force-completes by pausing the guest when post-copy is not permitted (a management_roles role, not admin)', async () => {
    await useAgents({
      ...POSTCOPY_CONFIG,
      libvirt: { ...POSTCOPY_CONFIG.libvirt, live_migration_permit_post_copy: false },
      management_roles: ['admin', 'migrator'],
    });
    const migrator = operatorContext(['migrator']);
    expect(migrator.is_admin).toBe(false);
    const p = g2;
    const src = p.on;
    const dst = other(src);
    const { migrationUuid } = await migrate(p);
    await conductor.waitForStatus(migrationUuid, 'running', 60_000);
    await sleep(2000);
    await api().liveMigrationForceComplete(migrator, src.hostname, p.g.instance, 'call');
    expect(await domainState(src, p.g.uuid)).toBe('paused');
    const end = await conductor.waitForEnd(migrationUuid, 90_000);
    settle(p, src, end);
    expect(end).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'completed']);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    const forced = await logsOf(src, migrationUuid, 'forcing migration to complete');
    expect(forced.map((l) => [l.source, l.mode])).toEqual([['operator', 'pause']]);
    expect(eventsFor(p.g.uuid, 'instance.live_migration_force_complete.').slice(-2)).toEqual([
      'instance.live_migration_force_complete.start',
      'instance.live_migration_force_complete.end',
    ]);
    await assertOn(p, dst);
  });

  // The timeout fires at the first monitor poll (every ~0.5 s) after 6 s. Abort
  // casts every 10 ms for a second, starting just before and just after that
  // moment, so the abort lands before, during or after the timeout's action.
  // Still without post-copy: a timeout that paused the guest leaves the
  // migration 'running', so only the single claim stops a later abort.
  const raceWins: string[] = [];
  it.each([-200, 50, 300])('an operator abort racing the timeout (burst at timeout %i ms): exactly one acts, the outcome is reported once', async (offsetMs) => {
    const TIMEOUT = 6;
    const src = g1.on;
    const dst = other(src);
    const { migrationUuid } = await migrate(g1, { timeoutSeconds: TIMEOUT, onTimeout: 'force_complete' });
    await conductor.waitForStatus(migrationUuid, 'running', 60_000);
    const t0 = Date.now();
    await sleepUntil(t0 + TIMEOUT * 1000 + offsetMs);
    const casts: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      casts.push(api().liveMigrationAbort(admin, src.hostname, g1.g.instance, migrationUuid));
      await sleep(10);
    }
    await Promise.all(casts);
    const end = await conductor.waitForEnd(migrationUuid, 90_000);
    settle(g1, src, end);

    const aborted = await logsOf(src, migrationUuid, 'aborting migration job');
    const forced = await logsOf(src, migrationUuid, 'forcing migration to complete');
    expect(aborted.length + forced.length).toBe(1);
    expect(finalUpdates(migrationUuid)).toHaveLength(1);
    // Every abort after the first action was refused, none acted twice.
    const dispatched = (await agentOf(src).logs()).filter((l) => l.method === 'live_migration_abort' && l.msg === 'dispatch' && logTime(l) >= t0);
    expect(dispatched.length).toBe(100);
    const view = await listed(src, migrationUuid);
    if (aborted.length === 1) {
      expect(aborted[0]!.source).toBe('operator');
      expect(end).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
      expect(view).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
      await assertOn(g1, src);
    } else {
      expect(forced.map((l) => [l.source, l.mode])).toEqual([['timeout', 'pause']]);
      expect(end).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
      expect(view).toMatchObject({ status: 'completed', action_taken: 'force_complete' });
      await assertOn(g1, dst);
    }
    const action = logTime(aborted[0] ?? forced[0]);
    const first = Math.min(...dispatched.map(logTime));
    raceWins.push(`${offsetMs} ms: ${aborted.length ? 'operator abort' : 'timeout force-complete'} won; first abort dispatched ${first - action} ms from the action`);
    console.log(`race ${raceWins[raceWins.length - 1]}`);
  });
});
