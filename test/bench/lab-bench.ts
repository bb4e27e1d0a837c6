// Shared plumbing for the lab benchmarks (migration.ts, control-latency.ts,
// postcopy-recovery.ts): the lab cluster (test/e2e/cluster.ts) plus the bench
// clock, timestamped casts, log and statistics helpers.

import { randomUUID } from 'node:crypto';
import { availableParallelism, loadavg as osLoad } from 'node:os';
import { operatorContext } from '../../src/cli/conductor.js';
import type { MigrationView } from '../../src/nova/migration-view.js';
import type { RequestContext } from '../../src/rpc/types.js';
import type { LabCluster } from '../e2e/cluster.js';
import type { LogLine } from '../e2e/agents.js';
import { domainState, type LabGuest } from '../e2e/fixture.js';
import { lastHeartbeat, waitForConsole, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
export const MIB = 1024 * 1024;

/** The bench's clock, from when it loaded this module. */
const benchStart = Date.now();
export const benchElapsedMs = (): number => Date.now() - benchStart;
/** `[ 42s]`-style prefix for a bench's progress lines. */
export const since = (): string => `${(benchElapsedMs() / 1000).toFixed(0).padStart(3)}s`;

/**
 * Nova's conductor flow (check_can_live_migrate_destination call, then the
 * live_migration cast), inlined so the cast itself can be timestamped.
 */
export async function castMigration(
  bl: LabCluster,
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

export interface JobInfo {
  elapsedMs?: number;
  processedMiB?: number;
  downtimeMs?: number;
}

/** libvirt's own completed-job stats on the destination (exact, unlike the last 0.5 s poll in the view). */
export async function completedJobInfo(host: LabHost, uuid: string): Promise<JobInfo | null> {
  const r = await host.virsh(['domjobinfo', '--completed', uuid], { check: false });
  if (r.code !== 0) return null;
  const get = (label: string): { v: number; unit: string } | undefined => {
    const m = new RegExp(`^${label}:\\s+([\\d.]+)\\s*(\\S*)`, 'm').exec(r.stdout);
    return m ? { v: Number(m[1]), unit: m[2] ?? '' } : undefined;
  };
  const toMiB = (x?: { v: number; unit: string }) =>
    x === undefined ? undefined : x.v * ({ B: 1 / MIB, KiB: 1 / 1024, MiB: 1, GiB: 1024 } as Record<string, number>)[x.unit]!;
  const info: JobInfo = {};
  const el = get('Time elapsed');
  if (el) info.elapsedMs = el.v;
  const mp = toMiB(get('Memory processed'));
  if (mp !== undefined && Number.isFinite(mp)) info.processedMiB = mp;
  const dt = get('Total downtime');
  if (dt) info.downtimeMs = dt.v;
  return Object.keys(info).length ? info : null;
}

/** Takes the guest away on both hosts (a dead or lost guest, or the end of a workload). */
export async function destroyEverywhere(bl: LabCluster, guest: LabGuest): Promise<void> {
  for (const h of [bl.a, bl.b]) await h.virsh(['destroy', guest.uuid], { check: false });
}

/**
 * One guest of a workload, moved back and forth between the lab's hosts run
 * after run; a run that lost it (dead, or on neither host) has a fresh one
 * booted on A for the next.
 */
export function roamingGuest(bl: LabCluster, spec: Parameters<LabCluster['boot']>[0] & object) {
  let guest: LabGuest | null = null;
  let on: LabHost | null = null;
  return {
    /** The guest, the host it runs on and the other one. */
    async next(): Promise<{ guest: LabGuest; source: LabHost; dest: LabHost }> {
      if (!guest || !on) {
        on = bl.a;
        guest = await bl.boot(spec, on);
        const dirtier = spec.dirty ? (await waitForConsole(on, guest.uuid, /^ferry-dirty start.*$/m, { timeoutMs: 30_000 }))[0] : 'idle';
        console.log(`[${since()}] booted guest ${guest.uuid.slice(0, 8)} on ${on.name}: ${dirtier}`);
      }
      return { guest, source: on, dest: on === bl.a ? bl.b : bl.a };
    },
    /** Where the run left the guest alive; null: it is taken away. */
    async after(host: LabHost | null): Promise<void> {
      if (!host && guest) {
        await destroyEverywhere(bl, guest);
        guest = null;
      }
      on = host;
    },
    async done(): Promise<void> {
      if (guest) await destroyEverywhere(bl, guest);
      guest = null;
    },
  };
}

export { waitForLog, type LogLine } from '../e2e/agents.js';

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

/** Runs a benchmark's main and exits: 0 when it printed its figures, 1 on error. */
export function runBench(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
