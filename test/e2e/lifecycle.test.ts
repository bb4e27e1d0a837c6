// ferryd's process lifecycle in a real lab: SIGTERM drains (new migrations are
// refused, the running one finishes, then exit 0), and a libvirtd that dies
// takes its ferryd down with exit 1 so a supervisor restarts it.

import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestConductor } from '../conductor/conductor.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { agentConfig, exitOf, FERRYD, ferrydPid, waitForLog } from './agents.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState } from './fixture.js';

describe('ferryd process lifecycle in the lab', () => {
  let cluster: LabCluster;
  let a: LabHost;
  let b: LabHost;
  let conductor: TestConductor;
  /** ferryd processes a test spawned itself (the cluster's agents are the cluster's). */
  const spawned: ChildProcess[] = [];

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'life', addrBase: 70 });
    ({ a, b, conductor } = cluster);
  });

  afterAll(async () => {
    for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await cluster?.close();
  });

  it('SIGTERM drains on both sides: a new migration is refused, the running one completes, then both ferryd exit 0', async () => {
    // 5 MiB/s makes the idle 256 MiB guest take ~15-20 s: time to stop the agent mid-flight.
    await cluster.useAgents({ libvirt: { live_migration_bandwidth: 5 } });
    const source = cluster.agentOn(a);
    const [g1, g2] = await Promise.all([cluster.boot(), cluster.boot()]);

    const first = await conductor.migrate({ instance: g1.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    await conductor.waitForStatus(first.migrationUuid, 'running', 30_000);

    const pid = ferrydPid(source);
    process.kill(pid, 'SIGTERM');
    const exited = exitOf(source.proc, 90_000).then((r) => ({ ...r, at: Date.now() }));
    exited.catch(() => {}); // awaited below; a failure earlier in the test must not leave it unhandled
    // The destination is stopped too: its incoming migration counts as one to wait for.
    const dest = cluster.agentOn(b);
    process.kill(ferrydPid(dest), 'SIGTERM');
    const destExited = exitOf(dest.proc, 90_000).then((r) => ({ ...r, at: Date.now() }));
    destExited.catch(() => {});
    await waitForLog(source, (l) => l.msg === 'stopping' && l.signal === 'SIGTERM', 5_000);
    expect(source.proc.exitCode).toBeNull();

    // While draining the agent still answers (the destination's pre-check calls it), but refuses the cast.
    const second = await conductor.migrate({ instance: g2.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    const refused = await conductor.waitForEnd(second.migrationUuid, 10_000);
    expect(refused.status).toBe('error');
    expect(refused.error).toBe(`Failed to submit live migration ${second.migrationUuid} for instance ${g2.uuid} for processing.`);
    expect(conductor.statuses(second.migrationUuid)).toEqual(['error']);
    // The log file is fed through the test process's pipe, so it may lag the conductor a little.
    await waitForLog(source, (l) => l.msg === 'rpc method failed' && l.method === 'live_migration' && l.error === 'LiveMigrationNotSubmitted', 5_000);
    const logsWhileDraining = await source.logs();
    // No libvirt migration for it: nothing started, no job on the source, guest still on A only.
    expect(logsWhileDraining.filter((l) => l.msg === 'migration transfer started').map((l) => l.migration)).toEqual([first.migrationUuid]);
    expect((await a.virsh(['domjobinfo', g2.uuid])).stdout).toMatch(/Job type:\s+None/);
    expect(await domainState(a, g2.uuid)).toBe('running');
    expect(await domainState(b, g2.uuid)).toBeNull();

    // The running migration is left to finish...
    const end = await conductor.waitForEnd(first.migrationUuid, 60_000);
    const completedAt = Date.now();
    expect(end.status).toBe('completed');
    await waitForHeartbeat(b, g1.uuid, { after: await lastHeartbeat(b, g1.uuid), timeoutMs: 15_000 });
    expect(await domainState(a, g1.uuid)).toBeNull();

    // ...and then both ferryd leave by themselves, cleanly; the destination not before the guest arrived.
    const destExit = await destExited;
    expect({ code: destExit.code, signal: destExit.signal }).toEqual({ code: 0, signal: null });
    const arrived = (await dest.logs()).find((l) => l.msg === 'instance arrived' && l.instance === g1.uuid);
    expect(arrived).toBeDefined();
    expect(destExit.at).toBeGreaterThanOrEqual(Date.parse(arrived!.time));
    const exit = await exited;
    expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
    // It waited for the migration: the conductor heard 'completed' before ferryd went away, and not long before.
    expect(exit.at).toBeGreaterThanOrEqual(completedAt);
    expect(exit.at - completedAt).toBeLessThan(15_000);
    // The log reaches its file through this process's pipe: wait for stop's last line before reading it all.
    await waitForLog(source, (l) => l.component === 'amqp' && l.msg === 'closed', 5_000);
    const logs = await source.logs();
    expect(logs.some((l) => l.msg === 'stopping with migrations still running; libvirt carries on with them')).toBe(false);
    expect(logs.filter((l) => typeof l.level === 'number' && l.level >= 50)).toEqual([]);
    // The last test needs a ferryd on B.
    await cluster.restartAgent(b);
  });

  // A's agent is gone after the drain test; its libvirtd is not. Host A has no libvirtd afterwards.
  it('exits 1 when libvirtd dies while ferryd is still starting (RabbitMQ unreachable)', async () => {
    const config = agentConfig(a, { exchange: cluster.exchange, transportUrl: 'rabbit://guest:guest@127.0.0.1:1/' });
    const file = join(a.root, 'ferry-starting.json');
    await writeFile(file, JSON.stringify(config));
    const proc = a.spawnIn(process.execPath, [FERRYD, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    spawned.push(proc);
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    // Connected to libvirt, then stuck retrying the broker: not serving, no drain to do.
    const deadline = Date.now() + 15_000;
    while (!lines().some((l) => l.msg === 'connected to libvirt')) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`ferryd did not connect to libvirt: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(lines().some((l) => l.msg === 'ferryd serving')).toBe(false);
    process.kill(a.libvirtdPid, 'SIGKILL');
    // Exit 1, not death by SIGTERM: systemd's Restart=on-failure counts SIGTERM as a clean stop and would not restart it.
    const exit = await exitOf(proc, 15_000);
    expect(exit, out).toEqual({ code: 1, signal: null });
    expect(lines().filter((l) => l.level === 60)).toEqual([expect.objectContaining({ msg: 'libvirt connection closed; exiting for a restart' })]);
  });

  // Last: host B has no libvirtd afterwards.
  it('exits 1 with a fatal log line when libvirtd dies', async () => {
    const dest = cluster.agentOn(b);
    expect(dest.proc.exitCode).toBeNull();
    const killedAt = Date.now();
    process.kill(b.libvirtdPid, 'SIGKILL');
    const exit = await exitOf(dest.proc, 15_000);
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    await waitForLog(dest, (l) => l.component === 'amqp' && l.msg === 'closed', 5_000);
    // One fatal line, and otherwise a clean stop (no 'unclean stop' error: exit 1 comes from the fatal path).
    const severe = (await dest.logs()).filter((l) => typeof l.level === 'number' && l.level >= 50);
    expect(severe).toEqual([expect.objectContaining({ msg: 'libvirt connection closed; exiting for a restart', uri: 'qemu:///system' })]);
  });
});
