// The adaptive convergence policy's decisions on real TCG guests, through two
// ferryd agents: a 256 MiB guest over a 30 MiB/s cap (a floor of 8.5 s), a
// per-migration timeout of 60 s that none of these should need. Each test
// proves one decision path; Nova's policy keeps its own tests
// (operator-control.test.ts: the ramp, the timeout and the operator's actions).

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestConductor } from '../conductor/conductor.js';
import { lastHeartbeat, waitForConsole, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import type { DirtySpec } from '../lab/guest.js';
import type { LogLine } from './agents.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, type LabGuest } from './fixture.js';
import type { MigrationView } from '../../src/nova/migration-view.js';

const CAP = 30;
const TIMEOUT_S = 60;
/** Nothing else runs but the policy under test: Nova's ramp would take 30 s to reach 500 ms at this timeout. */
const BASE = { convergence_policy: 'adaptive', live_migration_bandwidth: CAP, live_migration_downtime: 500, live_migration_monitor_interval: 1 };

describe('the adaptive convergence policy on real guests', { timeout: 180_000 }, () => {
  let cluster: LabCluster;
  let a: LabHost;
  let b: LabHost;
  let conductor: TestConductor;

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'conv', addrBase: 120 });
    ({ a, b, conductor } = cluster);
  });
  afterEach(async () => {
    await cluster.removeGuests();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function dirtying(dirty: DirtySpec): Promise<LabGuest> {
    const g = await cluster.boot({ dirty });
    await waitForConsole(a, g.uuid, /^ferry-dirty start/m, { timeoutMs: 30_000 });
    return g;
  }

  /** The guest runs on `host` and keeps beating there. */
  async function beatsOn(host: LabHost, g: LabGuest): Promise<void> {
    expect(await domainState(host, g.uuid)).toBe('running');
    await waitForHeartbeat(host, g.uuid, { after: await lastHeartbeat(host, g.uuid), timeoutMs: 15_000 });
  }

  /** The source agent's lines for this migration, with seconds since its transfer started. */
  async function timeline(uuid: string): Promise<{ t: number; l: LogLine }[]> {
    const lines = (await cluster.agentOn(a).logs()).filter((l) => l.migration === uuid);
    const start = lines.find((l) => l.msg === 'migration transfer started');
    expect(start, 'transfer started').toBeDefined();
    return lines.map((l) => ({ t: (Date.parse(l.time) - Date.parse(start!.time)) / 1000, l }));
  }

  it('raises the downtime at once to what the guest needs, and completes in pre-copy within twice the floor', async () => {
    await cluster.useAgents({ libvirt: BASE });
    // 8 MiB rewritten at 45 MiB/s: every pass leaves ~8 MiB, 270 ms at 30 MiB/s, more than the first 50 ms.
    const g = await dirtying({ mib: 8, rateMBs: 45 });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'abort' });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status, end.error ?? '').toBe('completed');
    expect(conductor.statuses(migrationUuid)).not.toContain('running (post-copy)');
    expect(end.action_taken).toBeNull();
    const sets = (await timeline(migrationUuid)).filter((x) => x.l.msg === 'migration max downtime set');
    expect(sets.map((x) => x.l.ms)[0]).toBe(50);
    // One raise, to more than the start and no more than the maximum, within the first passes.
    const raised = sets.slice(1);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.l.ms).toBeGreaterThan(50);
    expect(raised[0]!.l.ms).toBeLessThanOrEqual(500);
    expect(raised[0]!.t).toBeLessThan(15);
    expect(end.downtime_ms).toBeLessThanOrEqual(500);
    expect((Date.parse(end.finished_at!) - Date.parse(end.started_at!)) / 1000).toBeLessThan((2 * 256) / CAP);
    await beatsOn(b, g);
  });

  it('with post-copy and auto-converge both permitted, measures the dirty rate before the start and arms auto-converge for a slow dirtier', async () => {
    await cluster.useAgents({ libvirt: { ...BASE, live_migration_permit_post_copy: true, live_migration_permit_auto_converge: true } });
    const g = await dirtying({ mib: 64, rateMBs: 5 });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'abort' });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status, end.error ?? '').toBe('completed');
    expect(end.armed).toBe('auto_converge');
    // libvirt's page sampling measured the guest, under half of the 30 MiB/s link. Not above 0: QEMU
    // samples 512 pages per GiB, so each changed sample stands for 2 MiB/s over the 1 s sample, and a
    // 5 MiB/s guest changes none of them about one time in twelve (Poisson, mean 2.5).
    expect(end.preflight_dirty_rate_bytes_per_second).not.toBeNull();
    expect((end.preflight_dirty_rate_bytes_per_second ?? Infinity) / 2 ** 20).toBeLessThan(CAP / 2);
    const armedLine = (await cluster.agentOn(a).logs()).find((l) => l.migration === migrationUuid && String(l.msg).startsWith('migration armed with'));
    expect(armedLine?.msg).toBe('migration armed with auto_converge by the measured dirty rate');
    await beatsOn(b, g);
  });

  /**
   * The migration's end, and its views from list_migrations on the source
   * twice a second until then: a verdict that lasts a pass or two can fall
   * between the progress updates.
   */
  async function endWatched(g: LabGuest, uuid: string): Promise<{ end: MigrationView; views: MigrationView[] }> {
    const views: MigrationView[] = [];
    let ended = false;
    const watching = (async () => {
      while (!ended) {
        const listed = await conductor.api.listMigrations(conductor.ctx, a.hostname, g.uuid);
        views.push(...listed.filter((v) => v.uuid === uuid));
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    const end = await conductor.waitForEnd(uuid).finally(() => (ended = true));
    await watching;
    return { end, views };
  }

  /** A migration with post-copy alone permitted and a force_complete timeout; it must complete in post-copy, switched by the policy. */
  async function postcopied(g: LabGuest): Promise<{ end: MigrationView; forced: LogLine }> {
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'force_complete' });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status, end.error ?? '').toBe('completed');
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'running (post-copy)', 'completed']);
    const forced = (await timeline(migrationUuid)).find((x) => x.l.msg === 'forcing migration to complete');
    expect(forced?.l).toMatchObject({ source: 'convergence', mode: 'postcopy' });
    expect(forced!.t).toBeLessThan(TIMEOUT_S / 2);
    expect(end.postcopy_requests).not.toBeNull();
    return { end, forced: forced!.l };
  }

  it('switches a guest measured dirtying beyond the link to post-copy right after the bulk pass, and it completes whole on the destination', async () => {
    await cluster.useAgents({ libvirt: { ...BASE, live_migration_permit_post_copy: true } });
    // 128 MiB rewritten at 45 MiB/s: every pass would leave the whole working set.
    const g = await dirtying({ mib: 128, rateMBs: 45 });
    const { end, forced } = await postcopied(g);
    expect((end.preflight_dirty_rate_bytes_per_second ?? 0) / 2 ** 20).toBeGreaterThanOrEqual(CAP);
    // Switched in the pass after the bulk one (iteration 2): no later pass was waited for, so no stall was seen.
    expect(forced).toMatchObject({ iteration: 2, stalled: false });
    await beatsOn(b, g);
  });

  it('switches a guest that got busy after the start to post-copy at a stall, at a local minimum, and it completes whole on the destination', async () => {
    await cluster.useAgents({ libvirt: { ...BASE, live_migration_permit_post_copy: true } });
    // Quiet while the preflight samples it, rewriting 128 MiB at 45 MiB/s from 6 s on (the bulk pass takes ~7 s).
    const g = await dirtying({ mib: 128, rateMBs: 45, afterSeconds: 6 });
    const { end, forced } = await postcopied(g);
    expect((end.preflight_dirty_rate_bytes_per_second ?? 0) / 2 ** 20).toBeLessThan(CAP / 2);
    // The model said stalled, at a full pass, when it acted.
    expect(forced.stalled).toBe(true);
    expect(forced.iteration).toBeGreaterThanOrEqual(3);
    await beatsOn(b, g);
  });

  it('with only auto-converge permitted, lets the throttle work and says so; no early action', async () => {
    await cluster.useAgents({ libvirt: { ...BASE, live_migration_permit_auto_converge: true } });
    // Clock-paced: the throttle barely slows it, so the verdict stays until the operator ends it.
    const g = await dirtying({ mib: 128, rateMBs: 45 });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'abort', actOnStall: true });
    const throttling = await conductor.waitFor(migrationUuid, (v) => v.convergence_verdict === 'throttling', 40_000);
    expect(throttling).toMatchObject({ status: 'running', armed: 'auto_converge', stalled: true });
    // The measured ~45 MiB/s over 30 MiB/s started the throttle well above QEMU's 20 % (1 − 7.5/45: 84 %).
    expect(throttling.throttle_start_percent).toBeGreaterThan(20);
    // Watching is all it does while the throttle can still rise: act_on_stall waits for "will not converge".
    expect(throttling.action_taken).toBeNull();
    await conductor.api.liveMigrationAbort(conductor.ctx, a.hostname, g.instance, migrationUuid, 'call');
    expect((await conductor.waitForEnd(migrationUuid)).status).toBe('cancelled');
    await beatsOn(a, g);
  });

  it('with only auto-converge permitted, a guest the throttle slows converges in pre-copy, the throttle its only help', async () => {
    await cluster.useAgents({ libvirt: { ...BASE, live_migration_permit_auto_converge: true } });
    // CPU-bound: the throttle slows its writes.
    const g = await dirtying({ mib: 128, rateMBs: 45, cpuBound: true });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'abort', actOnStall: true });
    // The timeout's action is abort, so only the throttle can have finished it.
    const { end, views } = await endWatched(g, migrationUuid);
    expect(end, end.error ?? '').toMatchObject({ status: 'completed', action_taken: null });
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'completed']);
    expect(end.throttle_start_percent).toBeGreaterThan(20);
    // Whenever the model saw a stall, it said throttling (it may never see one: the throttle can win first).
    expect(views.filter((v) => v.stalled === true).every((v) => v.convergence_verdict === 'throttling')).toBe(true);
    // QEMU's throttle did engage.
    const throttled = (await timeline(migrationUuid)).filter((x) => x.l.msg === 'migration progress' && Number(x.l.auto_converge_throttle) > 0);
    expect(throttled.length).toBeGreaterThan(0);
    expect(end.downtime_ms).toBeLessThanOrEqual(500);
    await beatsOn(b, g);
  });

  it('with nothing permitted, names "will not converge" within 20 s, and with act_on_stall takes the timeout action then', async () => {
    await cluster.useAgents({ libvirt: BASE });
    const g = await dirtying({ mib: 128, rateMBs: 45 });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: TIMEOUT_S, onTimeout: 'abort', actOnStall: true });
    const named = await conductor.waitFor(migrationUuid, (v) => v.convergence_detail !== null, 40_000);
    expect(named.convergence_verdict).toBe('will_not_converge');
    expect(named.convergence_detail).toMatch(/^will not converge: dirty rate \d+\.\d MiB\/s vs bandwidth \d+\.\d MiB\/s$/);
    expect(named.eta_seconds).toBeNull();
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end).toMatchObject({ status: 'cancelled', action_taken: 'abort' });
    const lines = await timeline(migrationUuid);
    const said = lines.find((x) => String(x.l.msg).startsWith('will not converge'));
    expect(said!.t).toBeLessThanOrEqual(20);
    const aborted = lines.find((x) => x.l.msg === 'aborting migration job');
    expect(aborted?.l.source).toBe('convergence');
    expect(aborted!.t).toBeLessThan(TIMEOUT_S / 2);
    // list_migrations says it too, after the end.
    const [view] = await conductor.api.listMigrations(conductor.ctx, a.hostname, g.uuid);
    expect(view?.convergence_detail).toMatch(/^will not converge/);
    await beatsOn(a, g);
  });
});
