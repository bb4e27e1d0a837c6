// Shared plumbing for the lab benchmarks (migration.ts, control-latency.ts):
// one 2-host lab, ferryd agents restarted per configuration, the test
// conductor, a private RabbitMQ vhost, log and statistics helpers.
//
// The agents' queues are named after topic and host (compute.ferry-lab-a,
// conductor, ...), not after the exchange, so two labs on the same broker
// share them and RabbitMQ round-robins between their consumers. A private
// vhost (plus a unique exchange) keeps our casts and migration_update
// messages away from other engineers' labs; without rabbitmqctl we fall back
// to the default vhost and the unique exchange only.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { availableParallelism, loadavg as osLoad } from 'node:os';
import { promisify } from 'node:util';
import { operatorContext } from '../../src/cli/conductor.js';
import type { MigrationView } from '../../src/migration/wire.js';
import type { RequestContext } from '../../src/rpc/types.js';
import { TestConductor } from '../conductor/conductor.js';
import { startAgents, TRANSPORT_URL, type Agent } from '../e2e/agents.js';
import { bootGuest, domainState, removeGuest, type LabGuest } from '../e2e/fixture.js';
import { ensureGuestImage } from '../lab/guest-image.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';

const run = promisify(execFile);
export const MIB = 1024 * 1024;

export interface BenchLab {
  lab: Lab;
  a: LabHost;
  b: LabHost;
  conductor: TestConductor;
  exchange: string;
  transportUrl: string;
  vhost: string | null;
  agents: Agent[];
  /** Stops the running agents and starts fresh ones with this config (merged over the lab defaults). */
  useAgents(config?: Record<string, unknown>): Promise<Agent[]>;
  agentOn(host: LabHost): Agent;
  boot(host: LabHost, spec?: Parameters<typeof bootGuest>[1]): Promise<LabGuest>;
  close(): Promise<void>;
}

async function rabbitmqctl(args: string[]): Promise<boolean> {
  try {
    await run('rabbitmqctl', ['-q', ...args], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

export async function startBenchLab(): Promise<BenchLab> {
  const exchange = `ferry-bench-${process.pid}`;
  let vhost: string | null = exchange;
  if (!((await rabbitmqctl(['add_vhost', vhost])) && (await rabbitmqctl(['set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*'])))) {
    if (vhost) await rabbitmqctl(['delete_vhost', vhost]);
    vhost = null;
  }
  const transportUrl = vhost ? `${TRANSPORT_URL.replace(/\/[^/@]*$/, '')}/${encodeURIComponent(vhost)}` : TRANSPORT_URL;
  await ensureGuestImage();
  const lab = await startLab({ hosts: 2, name: 'bench', addrBase: 50 });
  const [a, b] = lab.hosts as [LabHost, LabHost];
  let conductor: TestConductor;
  try {
    conductor = await TestConductor.start(transportUrl, exchange);
  } catch (err) {
    await lab.stop();
    throw err;
  }
  const guests = new Set<string>();
  const bl: BenchLab = {
    lab,
    a,
    b,
    conductor,
    exchange,
    transportUrl,
    vhost,
    agents: [],
    async useAgents(config = {}) {
      await Promise.all(bl.agents.map((x) => x.stop()));
      bl.agents = await startAgents(lab, { exchange, config: { transport_url: transportUrl, ...config } });
      return bl.agents;
    },
    agentOn(host) {
      const agent = bl.agents.find((x) => x.host === host);
      if (!agent) throw new Error(`no agent on ${host.name}`);
      return agent;
    },
    async boot(host, spec = {}) {
      const g = await bootGuest(host, { name: `bench-${Math.random().toString(36).slice(2, 10)}`, ...spec });
      guests.add(g.uuid);
      return g;
    },
    async close() {
      await Promise.all(bl.agents.map((x) => x.stop().catch(() => {})));
      await conductor.close().catch(() => {});
      for (const uuid of guests) for (const h of [a, b]) await removeGuest(h, uuid).catch(() => {});
      await lab.stop();
      if (vhost) await rabbitmqctl(['delete_vhost', vhost]);
    },
  };
  return bl;
}

/**
 * Nova's conductor flow (check_can_live_migrate_destination call, then the
 * live_migration cast), inlined so the cast itself can be timestamped.
 */
export async function castMigration(
  bl: BenchLab,
  guest: LabGuest,
  source: LabHost,
  dest: LabHost,
): Promise<{ migrationUuid: string; castAt: number; ctx: RequestContext }> {
  const { api } = bl.conductor;
  const ctx = operatorContext();
  const instance = { ...guest.instance, host: source.hostname };
  const migrateData = await api.checkCanLiveMigrateDestination(ctx, dest.hostname, instance, null, false);
  const migrationUuid = randomUUID();
  const castAt = Date.now();
  await api.liveMigration(ctx, source.hostname, {
    instance,
    dest: dest.hostname,
    block_migration: migrateData.block_migration ?? null,
    migrate_data: migrateData,
    migration: { id: null, uuid: migrationUuid },
    timeout_seconds: null,
    on_timeout: null,
  });
  guest.instance.host = dest.hostname; // optimistic; callers fix it up after a failed run
  return { migrationUuid, castAt, ctx };
}

/** Whether the guest runs on `host` and prints a new heartbeat there within `timeoutMs`. */
export async function guestAlive(host: LabHost, guest: LabGuest, timeoutMs = 10_000): Promise<{ alive: boolean; state: string | null }> {
  const state = await domainState(host, guest.uuid);
  if (state !== 'running') return { alive: false, state };
  try {
    await waitForHeartbeat(host, guest.uuid, { after: await lastHeartbeat(host, guest.uuid), timeoutMs });
    return { alive: true, state };
  } catch {
    return { alive: false, state: await domainState(host, guest.uuid) };
  }
}

export type LogLine = Record<string, unknown> & { time: string; msg: string };

export async function agentLogs(agent: Agent): Promise<LogLine[]> {
  return (await agent.logs()) as LogLine[];
}

/** Waits until a log line satisfying `pred` appears in the agent's log. */
export async function waitForLog(agent: Agent, pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = (await agentLogs(agent)).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no matching log line in ${agent.logFile} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const logTime = (l: LogLine): number => Date.parse(l.time);

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarize(values: number[]): Summary {
  const n = values.length;
  return {
    n,
    min: n ? Math.min(...values) : Number.NaN,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: n ? Math.max(...values) : Number.NaN,
    mean: n ? values.reduce((s, v) => s + v, 0) / n : Number.NaN,
  };
}

/** A left-aligned first column, right-aligned others. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function fmt(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits);
}

export function machineNote(): string {
  return `machine: ${availableParallelism()} CPUs, load avg ${loadavg()}; shared with other labs and TCG guests, so timings are noisy`;
}

function loadavg(): string {
  return osLoad().map((x) => x.toFixed(2)).join(' ');
}

export type { MigrationView };
