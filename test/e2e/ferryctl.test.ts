// ferryctl end to end: the operator CLI as a child process against two real
// ferryd agents in lab hosts, checked by its output and exit codes.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { FERRYCTL, type Agent } from './agents.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, instanceDirExists, type LabGuest } from './fixture.js';

/** Where ferryctl finds the agents: the cluster's private vhost and exchange. */
const broker = { transportUrl: '', exchange: '' };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  /** Output so far. */
  out(): string;
  done: Promise<Run>;
}

/** Starts `ferryctl --transport-url … --exchange … ARGS`. */
function start(args: string[], timeoutMs = 120_000): Running {
  const child = spawn(process.execPath, [FERRYCTL, '--transport-url', broker.transportUrl, '--exchange', broker.exchange, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<Run>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { out: () => stdout, done };
}

const ferryctl = (args: string[], timeoutMs?: number) => start(args, timeoutMs).done;

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const PROGRESS = /^\[[#.]{30}\]\s+\d+%\s+(\S+(?: \(post-copy\))?)\s+sent /;

describe('ferryctl against ferryd agents', () => {
  let cluster: LabCluster;
  let a: LabHost;
  let b: LabHost;
  let agents: Agent[] = [];
  let g: LabGuest;

  /** The guest keeps beating on `host`; the other host holds no domain and no instance folder. */
  async function assertOn(host: LabHost, away: LabHost): Promise<void> {
    await waitForHeartbeat(host, g.uuid, { after: await lastHeartbeat(host, g.uuid), timeoutMs: 30_000 });
    expect(await domainState(host, g.uuid)).toBe('running');
    expect(await domainState(away, g.uuid)).toBeNull();
    expect(await instanceDirExists(away, g.uuid)).toBe(false);
  }

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'ctl', addrBase: 30 });
    ({ a, b } = cluster);
    broker.transportUrl = cluster.broker.transportUrl;
    broker.exchange = cluster.exchange;
    // An idle 256 MiB guest at 5 MiB/s: about 20 s per migration (its pages are mostly zero).
    agents = await cluster.useAgents({ libvirt: { live_migration_bandwidth: 5 } });
    g = await cluster.boot();
  });

  afterAll(async () => {
    await cluster?.close();
  });

  let completedUuid = '';

  it('migrate --watch prints progress lines and exits 0 on completion; migrations lists it', async () => {
    const r = await ferryctl(['migrate', g.uuid, '--source', a.hostname, '--dest', b.hostname, '--watch']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const started = /^migration ([0-9a-f-]{36}) started \(block migration: false\)$/m.exec(r.stdout);
    expect(started).not.toBeNull();
    completedUuid = started![1]!;
    const statuses = r.stdout.split('\n').map((l) => PROGRESS.exec(l)?.[1]).filter(Boolean);
    expect(statuses.length).toBeGreaterThanOrEqual(3);
    expect(statuses).toContain('running');
    expect(statuses[statuses.length - 1]).toBe('completed');
    expect(r.stdout).toMatch(/100%\s+completed/);
    await assertOn(b, a);

    const list = await ferryctl(['migrations', '--host', a.hostname]);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^MIGRATION\s+INSTANCE\s+SOURCE\s+DEST\s+STATUS/);
    const row = list.stdout.split('\n').find((l) => l.startsWith(completedUuid));
    expect(row).toBeDefined();
    expect(row!.split(/\s+/).slice(1, 5)).toEqual([g.uuid, a.hostname, b.hostname, 'completed']);

    // The same list as YAML and JSON; one migration by uuid with all its figures.
    const yamlList = await ferryctl(['migrations', '--host', a.hostname, '-f', 'yaml']);
    expect(yamlList.code).toBe(0);
    const jsonList = await ferryctl(['migrations', '--host', a.hostname, '--format', 'json']);
    expect(parseYaml(yamlList.stdout)).toEqual(JSON.parse(jsonList.stdout));
    const shown = await ferryctl(['show', completedUuid, '--host', a.hostname, '-f', 'yaml']);
    expect(shown.code).toBe(0);
    const view = parseYaml(shown.stdout) as Record<string, unknown>;
    expect(view).toMatchObject({ uuid: completedUuid, instance_uuid: g.uuid, status: 'completed', convergence_policy: 'adaptive' });
    expect(view.bandwidth_bytes_per_second).toBeGreaterThan(0);
    const asTable = await ferryctl(['show', completedUuid, '--host', a.hostname]);
    expect(asTable.stdout.split('\n')[0]).toMatch(/^FIELD\s+VALUE$/);
    expect(asTable.stdout).toMatch(new RegExp(`^status\\s+completed$`, 'm'));
    const missing = await ferryctl(['show', randomUUID(), '--host', a.hostname]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('MigrationNotFound');
    const badFormat = await ferryctl(['migrations', '--host', a.hostname, '-f', 'xml']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toBe('ferryctl: --format: expected table, json, yaml, not xml\n');
  });

  it('--watch exits 7 when the migration is aborted with ferryctl abort', async () => {
    const watching = start(['migrate', g.uuid, '--source', b.hostname, '--dest', a.hostname, '--watch']);
    const uuid = await until('the migration to start', () => /^migration ([0-9a-f-]{36}) started/m.exec(watching.out())?.[1], 60_000);
    await until('a running progress line', () => watching.out().split('\n').some((l) => PROGRESS.exec(l)?.[1] === 'running'), 60_000);
    // Every running migration of the host, until none is left running.
    const all = start(['migrations', '--watch', '--host', b.hostname]);
    await until('the host-wide watch to show it', () => all.out().includes(`${g.uuid.slice(0, 8)}  [`), 30_000);

    const abort = await ferryctl(['abort', g.uuid, '--host', b.hostname]);
    expect(abort.stderr).toBe('');
    expect(abort.code).toBe(0);
    expect(abort.stdout).toContain(`abort of migration ${uuid} requested`);

    const r = await watching.done;
    expect(r.code).toBe(7);
    const host = await all.done;
    expect(host.code).toBe(0);
    const mine = host.stdout.split('\n').filter((l) => l.startsWith(`${g.uuid.slice(0, 8)}  `)).map((l) => PROGRESS.exec(l.slice(10))?.[1]);
    expect(mine[0]).toBe('running');
    expect(mine.at(-1)).toBe('cancelled');
    const statuses = r.stdout.split('\n').map((l) => PROGRESS.exec(l)?.[1]).filter(Boolean);
    expect(statuses[statuses.length - 1]).toBe('cancelled');
    await assertOn(b, a);

    const list = await ferryctl(['migrations', '--host', b.hostname, '--instance', g.uuid, '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ uuid: string; status: string; action_taken: string }>).find((m) => m.uuid === uuid)).toMatchObject({
      status: 'cancelled',
      action_taken: 'abort',
    });
  });

  it('exit codes: not found 3, forbidden 5, usage 2 (abort, force-complete, resume, migrate); nothing is started or changed', async () => {
    const before = await ferryctl(['migrations', '--host', b.hostname, '--json']);
    expect(before.code).toBe(0);

    const unknown = await ferryctl(['abort', randomUUID(), '--host', b.hostname]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('NoActiveMigrationForInstance');

    const idle = await ferryctl(['force-complete', g.uuid, '--host', b.hostname]);
    expect(idle.code).toBe(3);
    expect(idle.stderr).toContain('NoActiveMigrationForInstance');
    const nothingToResume = await ferryctl(['resume', g.uuid, '--host', b.hostname]);
    expect(nothingToResume.code).toBe(3);
    expect(nothingToResume.stderr).toContain('NoActiveMigrationForInstance');
    const resumeForbidden = await ferryctl(['--roles', 'member', 'resume', g.uuid, '--host', b.hostname]);
    expect(resumeForbidden.code).toBe(5);
    expect((await ferryctl(['resume', g.uuid])).code).toBe(2);

    const forbidden = await ferryctl(['--roles', 'member', 'abort', g.uuid, '--host', a.hostname, '--migration', completedUuid]);
    expect(forbidden.code).toBe(5);
    expect(forbidden.stderr).toContain('PolicyNotAuthorized');
    const refusals = (await agents[0]!.logs()).filter((l) => l.msg === 'request refused by policy');
    expect(refusals.map((l) => [l.method, l.roles])).toContainEqual(['live_migration_abort', ['member']]);

    for (const timeout of [['--timeout', '-1'], ['--timeout=-1'], ['--timeout', '1.5'], ['--timeout=']]) {
      const bad = await ferryctl(['migrate', g.uuid, '--source', b.hostname, '--dest', a.hostname, ...timeout]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--timeout');
      expect(bad.stdout).not.toContain('started');
    }
    const badAction = await ferryctl(['migrate', g.uuid, '--source', b.hostname, '--dest', a.hostname, '--on-timeout', 'explode']);
    expect(badAction.code).toBe(2);
    expect(badAction.stderr).toContain('--on-timeout');

    const after = await ferryctl(['migrations', '--host', b.hostname, '--json']);
    expect(JSON.parse(after.stdout)).toEqual(JSON.parse(before.stdout));
    await assertOn(b, a);
  });
});
