// ferryd's own footprint: resident memory and CPU of the source host's ferryd
// while idle, and while it monitors 1 and then 4 concurrent migrations, in a
// 2-host lab with real guests. Goals (issue 16): under 80 MB RSS idle, under
// 2 % of a core per monitored migration. Prints figures only.
//
// Run: npm run -s build && npx vite-node test/bench/footprint.ts [-- --window S]
//   --window S   seconds each phase is measured (default 30)
//
// CPU is utime + stime of the ferryd process (/proc/<pid>/stat) over the
// window, as a percentage of one core; RSS is VmRSS (/proc/<pid>/status),
// sampled each second: mean and max; idle is measured 15 s after the start,
// with the unit's Environment= (test/e2e/agents.ts unitEnvironment). The migrations are kept running through
// the window: 1 MiB/s cap, guests dirtying 8 MiB at 1 MB/s (its pacing busy-waits: a guest takes a core), no timeout;
// then they are aborted. Per migration = (phase CPU − idle CPU) ÷ migrations.
// The destination's ferryd is measured too (it does nothing per poll).

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ferrydPid, unitEnvironment, type Agent } from '../e2e/agents.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import type { LabGuest } from '../e2e/fixture.js';
import { castMigration, fmt, formatTable, machineNote, runBench, since } from './lab-bench.js';

const { values } = parseArgs({ options: { window: { type: 'string', default: '30' } } });
const WINDOW_S = Number(values.window);
const CLK_TCK = 100;
const SETTLE_S = 15;

interface Footprint {
  cpuPercent: number;
  rssMeanMB: number;
  rssMaxMB: number;
}

async function cpuTicks(pid: number): Promise<number> {
  // Fields after the command (which may hold spaces) start at ") ": utime and stime are the 14th and 15th fields.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

async function rssMB(pid: number): Promise<number> {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}

/** Both ferryds' CPU and RSS over the window. */
async function measure(agents: Agent[]): Promise<Footprint[]> {
  const pids = agents.map(ferrydPid);
  const t0 = performance.now();
  const ticks0 = await Promise.all(pids.map(cpuTicks));
  const rss: number[][] = pids.map(() => []);
  while (performance.now() - t0 < WINDOW_S * 1000) {
    for (const [i, pid] of pids.entries()) rss[i]!.push(await rssMB(pid));
    await new Promise((r) => setTimeout(r, 1000));
  }
  const ticks1 = await Promise.all(pids.map(cpuTicks));
  const seconds = (performance.now() - t0) / 1000;
  return pids.map((_, i) => ({
    cpuPercent: (((ticks1[i]! - ticks0[i]!) / CLK_TCK) * 100) / seconds,
    rssMeanMB: rss[i]!.reduce((a, b) => a + b, 0) / rss[i]!.length,
    rssMaxMB: Math.max(...rss[i]!),
  }));
}

async function migrateAll(cluster: LabCluster, guests: LabGuest[]): Promise<string[]> {
  const { a, b, conductor } = cluster;
  const uuids: string[] = [];
  for (const g of guests) uuids.push((await castMigration(cluster, g, a, b)).migrationUuid);
  for (const m of uuids) await conductor.waitFor(m, (v) => v.status === 'running' && v.memory_processed > 0, 120_000);
  return uuids;
}

async function abortAll(cluster: LabCluster, guests: LabGuest[], uuids: string[]): Promise<void> {
  const { a, conductor } = cluster;
  for (const [i, m] of uuids.entries()) {
    await conductor.api.liveMigrationAbort(conductor.ctx, a.hostname, { uuid: guests[i]!.uuid }, m, 'call');
    const end = await conductor.waitForEnd(m, 120_000);
    if (end.status !== 'cancelled') throw new Error(`migration ${m} ended ${end.status}, not cancelled: ${end.error ?? ''}`);
    guests[i]!.instance.host = a.hostname;
  }
}

async function main(): Promise<void> {
  console.log(`ferryd footprint bench: ${WINDOW_S} s per phase; ${machineNote()}`);
  const cluster = await startLabCluster({ name: 'footprint' });
  const rows: string[][] = [];
  try {
    // No timeout, a slow link: the migrations run through the window until aborted.
    // With the unit's environment (V8 and malloc settings): what ships is what is measured.
    const agents = await cluster.useAgents(
      { libvirt: { live_migration_bandwidth: 1, live_migration_completion_timeout: 0 }, compute: { max_concurrent_live_migrations: 4 } },
      {},
      unitEnvironment(),
    );
    // Past the start (JIT warm-up, the first reconcile and scrapes of its own) before idle is measured.
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    console.log(`[${since()}] agents up and settled; measuring idle`);
    const idle = await measure(agents);
    const row = (phase: string, n: number, f: Footprint[]) => {
      const perMigration = n === 0 ? '-' : fmt((f[0]!.cpuPercent - idle[0]!.cpuPercent) / n, 2);
      rows.push([phase, fmt(f[0]!.cpuPercent, 2), perMigration, fmt(f[0]!.rssMeanMB), fmt(f[0]!.rssMaxMB), fmt(f[1]!.cpuPercent, 2), fmt(f[1]!.rssMaxMB)]);
      console.log(`[${since()}] ${phase}: source ${fmt(f[0]!.cpuPercent, 2)} % CPU, RSS ${fmt(f[0]!.rssMaxMB)} MB max`);
    };
    row('idle', 0, idle);
    const guests: LabGuest[] = [];
    for (const n of [1, 4]) {
      while (guests.length < n) guests.push(await cluster.boot({ memoryMiB: 128, dirty: { mib: 8, rateMBs: 1 } }));
      // The guests' own CPU is the lab's, not ferryd's; booted before the window, measured only while migrating.
      const uuids = await migrateAll(cluster, guests);
      console.log(`[${since()}] ${n} migration(s) running; measuring`);
      row(`${n} migration${n > 1 ? 's' : ''}`, n, await measure(agents));
      await abortAll(cluster, guests, uuids);
    }
  } finally {
    await cluster.close();
  }
  console.log('');
  console.log(formatTable(['phase', 'source CPU %', 'per migration %', 'source RSS mean MB', 'source RSS max MB', 'dest CPU %', 'dest RSS max MB'], rows));
  console.log('goals: RSS idle < 80 MB; < 2 % of a core per monitored migration (source ferryd: a poll each 0.5 s per migration)');
}

runBench(main);
