// Both convergence policies on the same lab, in the same run: a 256 MiB
// guest over a fixed bandwidth cap B (pre-copy and post-copy alike), idle and dirtying a working set at
// about 0.3, 0.8, 1.5 and 3 × B, each with (a) post-copy permitted, (b) only
// auto-converge permitted, (c) neither. Both policies get the same
// per-migration timeout (force_complete for a and b, abort for c), so Nova's
// rows end in bounded time. Prints one table and writes one SVG chart
// (remaining memory over time, a line per policy, a mark at each decisive
// action), rendered by Vega-Lite headless. Prints figures; asserts nothing.
//
// Run: npm run -s build && npx vite-node test/bench/convergence.ts -- [options]
//   --cap MiB/s        bandwidth cap B (default 30)
//   --timeout s        per-migration timeout (default 60)
//   --workloads LIST   comma-separated labels (default all: idle,0.3B,0.8B,1.5B,3B)
//   --permissions LIST a,b,c (default all)
//   --policies LIST    adaptive,nova (default both)
//   --svg FILE         where the chart goes (default /tmp/ferry-convergence.svg)
//   --json FILE        the rows and curves as JSON, to re-render or compare runs
//   --compare FILE     an earlier run's JSON: prints each row's total time in both and the differences (run-to-run noise)
//   --render FILE      no lab: the table and chart of a run's JSON again

import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { LogLine } from '../e2e/agents.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import { domainState, type LabGuest } from '../e2e/fixture.js';
import type { DirtySpec } from '../lab/guest.js';
import type { LabHost } from '../lab/lab.js';
import { completedJobInfo, roamingGuest, fmt, formatTable, guestAlive, logTime, machineNote, MIB, runBench, since, type MigrationView } from './lab-bench.js';
import { operatorContext } from '../../src/cli/conductor.js';
import { randomUUID } from 'node:crypto';

const { values: args } = parseArgs({
  options: {
    cap: { type: 'string', default: '30' },
    timeout: { type: 'string', default: '60' },
    workloads: { type: 'string' },
    permissions: { type: 'string' },
    policies: { type: 'string' },
    svg: { type: 'string', default: '/tmp/ferry-convergence.svg' },
    json: { type: 'string' },
    compare: { type: 'string' },
    render: { type: 'string' },
  },
});
const CAP = Number(args.cap);
const TIMEOUT_S = Number(args.timeout);
const RAM_MIB = 256;

interface Workload {
  label: string;
  dirty?: DirtySpec;
}
// CPU-bound dirtiers: a throttled vCPU writes less, as a real memory-bound
// workload does (a clock-paced one keeps its rate until the throttle takes
// nearly all of the vCPU; guest/dirty.c).
const dirtying = (mib: number, ofCap: number): DirtySpec => ({ mib, rateMBs: Math.round(ofCap * CAP), cpuBound: true });
const WORKLOADS: Workload[] = [
  { label: 'idle' },
  { label: '0.3B', dirty: dirtying(64, 0.3) },
  { label: '0.8B', dirty: dirtying(128, 0.8) },
  { label: '1.5B', dirty: dirtying(128, 1.5) },
  // 192 MiB does not fit beside the guest's kernel and initramfs in 256 MiB (its dirtier never started).
  { label: '3B', dirty: dirtying(128, 3) },
].filter((w) => !args.workloads || args.workloads.split(',').includes(w.label));

type Permission = 'a' | 'b' | 'c';
const PERMISSIONS: Record<Permission, { label: string; libvirt: Record<string, unknown>; onTimeout: 'force_complete' | 'abort' }> = {
  a: { label: 'post-copy', libvirt: { live_migration_permit_post_copy: true }, onTimeout: 'force_complete' },
  b: { label: 'auto-converge', libvirt: { live_migration_permit_auto_converge: true }, onTimeout: 'force_complete' },
  c: { label: 'neither', libvirt: {}, onTimeout: 'abort' },
};
const PERMISSION_KEYS = (args.permissions?.split(',') ?? ['a', 'b', 'c']) as Permission[];
const ALL_POLICIES = ['adaptive', 'nova'] as const;
type Policy = (typeof ALL_POLICIES)[number];
const POLICIES = ALL_POLICIES.filter((p) => !args.policies || args.policies.split(',').includes(p));

interface Row {
  workload: string;
  permission: Permission;
  policy: Policy;
  outcome: string;
  /** started_at -> finished_at */
  totalS: number | null;
  floorS: number;
  downtimeMs: number | null;
  sentMiB: number | null;
  postcopyRequests: number | null;
  /** seconds after the transfer started: the end-game action, else the last downtime change before completion */
  decisive: { at: number; what: string } | null;
  /** when "will not converge" was said, seconds after the transfer started */
  namedAt: number | null;
  guest: string;
  /** [seconds after the transfer started, memory remaining MiB] from the progress lines */
  curve: [number, number][];
  /** [seconds after the transfer started, auto-converge throttle %] while it is on (absent in runs before it was kept) */
  throttle?: [number, number][];
}

/** The migration's lines in the source agent's log, with their time after its transfer started. */
function migrationLines(lines: LogLine[], uuid: string): { t: number; line: LogLine }[] {
  const mine = lines.filter((l) => l.migration === uuid);
  const start = mine.find((l) => l.msg === 'migration transfer started');
  if (!start) return [];
  const t0 = logTime(start);
  return mine.map((line) => ({ t: (logTime(line) - t0) / 1000, line }));
}

function decisiveAction(lines: { t: number; line: LogLine }[]): Row['decisive'] {
  const end = lines.find((x) => x.line.msg === 'forcing migration to complete' || x.line.msg === 'aborting migration job');
  if (end) return { at: end.t, what: `${end.line.mode ?? 'abort'} (${end.line.source})` };
  const downtimes = lines.filter((x) => x.line.msg === 'migration max downtime set');
  const last = downtimes.at(-1);
  return last ? { at: last.t, what: `downtime ${last.line.ms} ms` } : null;
}

async function migrateOnce(bl: LabCluster, w: Workload, p: Permission, policy: Policy, guest: LabGuest, source: LabHost, dest: LabHost): Promise<{ row: Row; on: LabHost | null }> {
  const { api } = bl.conductor;
  const ctx = operatorContext();
  const instance = { ...guest.instance, host: source.hostname };
  const migrateData = await api.checkCanLiveMigrateDestination(ctx, dest.hostname, instance, null, false);
  const uuid = randomUUID();
  await api.liveMigration(ctx, source.hostname, {
    instance,
    dest: dest.hostname,
    block_migration: migrateData.block_migration ?? null,
    migrate_data: migrateData,
    migration: { id: null, uuid },
    timeout_seconds: TIMEOUT_S,
    on_timeout: PERMISSIONS[p].onTimeout,
  });
  let end: Partial<Omit<MigrationView, 'status'>> & { status: string };
  try {
    end = await bl.conductor.waitForEnd(uuid, (TIMEOUT_S + 90) * 1000);
  } catch {
    end = { status: 'stuck' };
  }
  const completed = end.status === 'completed';
  const on = completed ? dest : (await domainState(source, guest.uuid)) === 'running' ? source : null;
  guest.instance.host = (on ?? source).hostname;
  const alive = on ? await guestAlive(on, guest) : { alive: false, state: null };
  const lines = migrationLines(await bl.agentOn(source).logs(), uuid);
  const named = lines.find((x) => String(x.line.msg).startsWith('will not converge'));
  const progress = lines.filter((x) => x.line.msg === 'migration progress');
  const postcopy = bl.conductor.statuses(uuid).includes('running (post-copy)');
  const row: Row = {
    workload: w.label,
    permission: p,
    policy,
    outcome: end.status + (postcopy ? ' (post-copy)' : end.action_taken === 'force_complete' ? ' (paused)' : ''),
    totalS: end.started_at && end.finished_at ? (Date.parse(end.finished_at) - Date.parse(end.started_at)) / 1000 : null,
    floorS: RAM_MIB / CAP,
    downtimeMs: end.downtime_ms ?? null,
    sentMiB: (completed ? (await completedJobInfo(dest, guest.uuid))?.processedMiB : undefined) ?? (end.memory_processed ?? 0) / MIB,
    postcopyRequests: end.postcopy_requests ?? null,
    decisive: decisiveAction(lines),
    namedAt: named ? named.t : null,
    guest: alive.alive ? 'ok' : 'DEAD',
    curve: progress.map((x) => [x.t, Number(x.line.memory_remaining) / MIB]),
    throttle: progress.filter((x) => Number(x.line.auto_converge_throttle) > 0).map((x) => [x.t, Number(x.line.auto_converge_throttle)]),
  };
  return { row, on: alive.alive ? on : null };
}

function tableOf(rows: Row[]): string {
  return formatTable(
    ['workload', 'permitted', 'policy', 'outcome', 'total s', 'total/floor', 'downtime ms', 'sent/RAM', 'pc requests', 'decisive action', 'named at', 'guest'],
    rows.map((r) => [
      r.workload,
      `${r.permission} ${PERMISSIONS[r.permission].label}`,
      r.policy,
      r.outcome,
      fmt(r.totalS, 1),
      r.totalS === null ? 'n/a' : (r.totalS / r.floorS).toFixed(2),
      r.downtimeMs === null ? 'n/a' : String(r.downtimeMs),
      r.sentMiB === null ? 'n/a' : (r.sentMiB / RAM_MIB).toFixed(2),
      r.postcopyRequests === null ? '-' : String(r.postcopyRequests),
      r.decisive ? `${r.decisive.what} at ${r.decisive.at.toFixed(1)} s` : '-',
      r.namedAt === null ? '-' : `${r.namedAt.toFixed(1)} s`,
      r.guest,
    ]),
  );
}

/** Remaining memory over time: a panel per workload and permission, a line per policy, a point at each decisive action. */
async function chart(rows: Row[]): Promise<string> {
  const curves = rows.flatMap((r) => r.curve.map(([t, mib]) => ({ workload: r.workload, permitted: PERMISSIONS[r.permission].label, policy: r.policy, t, mib })));
  const actions = rows.flatMap((r) => {
    if (!r.decisive) return [];
    // The action's height: the remaining memory of the last progress line before it.
    const before = r.curve.filter(([t]) => t <= r.decisive!.at).at(-1);
    return [{ workload: r.workload, permitted: PERMISSIONS[r.permission].label, policy: r.policy, t: r.decisive.at, mib: before?.[1] ?? 0, action: r.decisive.what }];
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Remaining memory, ${RAM_MIB} MiB guest at ${CAP} MiB/s, timeout ${TIMEOUT_S} s: adaptive vs nova`,
    data: { values: [...curves.map((c) => ({ ...c, kind: 'curve' })), ...actions.map((a) => ({ ...a, kind: 'action' }))] },
    facet: {
      row: { field: 'workload', type: 'nominal', sort: WORKLOADS.map((w) => w.label), title: 'workload (dirty rate)' },
      column: { field: 'permitted', type: 'nominal', sort: PERMISSION_KEYS.map((k) => PERMISSIONS[k].label), title: 'permitted' },
    },
    spec: {
      width: 220,
      height: 110,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'curve'" }],
          mark: { type: 'line', interpolate: 'step-after' },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 's after transfer start' },
            y: { field: 'mib', type: 'quantitative', title: 'remaining MiB' },
            color: { field: 'policy', type: 'nominal', scale: { domain: [...ALL_POLICIES], range: ['#1f77b4', '#d62728'] } },
          },
        },
        {
          transform: [{ filter: "datum.kind === 'action'" }],
          mark: { type: 'point', shape: 'triangle-down', size: 90, filled: true },
          encoding: {
            x: { field: 't', type: 'quantitative' },
            y: { field: 'mib', type: 'quantitative' },
            color: { field: 'policy', type: 'nominal' },
            tooltip: [{ field: 'action' }],
          },
        },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Rows of two runs side by side by workload, permission and policy: total time in each, and how far apart. */
function comparison(now: Row[], before: Row[]): string {
  const key = (r: Row) => `${r.workload} ${r.permission} ${r.policy}`;
  const earlier = new Map(before.map((r) => [key(r), r]));
  const diffs: number[] = [];
  const lines = now.flatMap((r) => {
    const b = earlier.get(key(r));
    if (!b || r.totalS === null || b.totalS === null) return [];
    const rel = Math.abs(r.totalS - b.totalS) / ((r.totalS + b.totalS) / 2);
    diffs.push(rel);
    return [[key(r), b.totalS.toFixed(1), r.totalS.toFixed(1), `${(rel * 100).toFixed(0)} %`, b.outcome === r.outcome ? 'same' : `${b.outcome} -> ${r.outcome}`]];
  });
  const sorted = [...diffs].sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  return (
    formatTable(['row', 'total s before', 'total s now', 'difference', 'outcome'], lines) +
    `\nrun-to-run difference in total time over ${diffs.length} rows: median ${(median * 100).toFixed(0)} %, max ${((sorted.at(-1) ?? Number.NaN) * 100).toFixed(0)} %`
  );
}

async function report(rows: Row[]): Promise<void> {
  console.log('');
  console.log(tableOf(rows));
  console.log(
    `floor = RAM ÷ B = ${(RAM_MIB / CAP).toFixed(2)} s; total = started_at -> finished_at; sent/RAM from libvirt's completed-job stats on the destination ` +
      '(the last poll for migrations that did not complete); decisive action = the end-game action (who asked), else the last downtime change, ' +
      's after the transfer started; named at = when "will not converge" was logged.',
  );
  await writeFile(args.svg!, await chart(rows));
  console.log(`chart: ${args.svg}`);
  if (args.compare) console.log(comparison(rows, (JSON.parse(await readFile(args.compare, 'utf8')) as { rows: Row[] }).rows));
}

async function main(): Promise<void> {
  if (args.render) return report((JSON.parse(await readFile(args.render, 'utf8')) as { rows: Row[] }).rows);
  console.log(`ferry convergence bench: ${RAM_MIB} MiB guest, cap ${CAP} MiB/s, timeout ${TIMEOUT_S} s; workloads ${WORKLOADS.map((w) => w.label).join(', ')}; permissions ${PERMISSION_KEYS.join(', ')}; ${machineNote()}`);
  const bl = await startLabCluster({ name: 'conv', addrBase: 110 });
  const rows: Row[] = [];
  const failed: string[] = [];
  try {
    for (const w of WORKLOADS) {
      const roaming = roamingGuest(bl, w.dirty ? { dirty: w.dirty } : {});
      for (const p of PERMISSION_KEYS) {
        for (const policy of POLICIES) {
          await bl.useAgents({
            libvirt: { convergence_policy: policy, live_migration_bandwidth: CAP, live_migration_bandwidth_postcopy: CAP, live_migration_monitor_interval: 1, ...PERMISSIONS[p].libvirt },
          });
          try {
            const { guest, source, dest } = await roaming.next();
            console.log(`[${since()}] ${w.label} ${p} ${policy}: ${source.name} -> ${dest.name}`);
            const r = await migrateOnce(bl, w, p, policy, guest, source, dest);
            rows.push(r.row);
            console.log(tableOf([r.row]).split('\n').slice(2).join('\n'));
            await roaming.after(r.on);
          } catch (err) {
            // One broken run (a guest that did not boot) does not lose the others' figures.
            failed.push(`${w.label} ${p} ${policy}: ${(err as Error).message}`);
            console.log(`[${since()}] ${failed.at(-1)}`);
            await roaming.after(null);
          }
        }
      }
      await roaming.done();
    }
  } finally {
    await bl.close();
  }
  await report(rows);
  if (failed.length) console.log(`runs that failed: ${failed.join('; ')}`);
  if (args.json) await writeFile(args.json, JSON.stringify({ cap: CAP, timeout: TIMEOUT_S, rows }, null, 1));
}

runBench(main);
