// Post-copy recovery through two real ferryd agents in a 2-host lab: a
// post-copy migration is broken on purpose, by pausing it on the source
// (virsh domjobabort --postcopy) or by killing its migration connection
// (ss -K), and ferry resumes it. Prints figures only (no assertions), bounded.
//
// Run: npm run -s build && npx vite-node test/bench/postcopy-recovery.ts [runs-per-break]
//   env BENCH_CAP (pre-copy MiB/s, default 20), BENCH_POSTCOPY_CAP (MiB/s, default 10)
//
// Each run migrates a 256 MiB guest dirtying 128 MiB at 60 MB/s, forces
// post-copy 2 s after 'running', waits until libvirt has the source paused
// for post-copy, breaks the migration and times from the break: 'post-copy
// paused' at the conductor, ferry's resume call ('resuming post-copy
// migration' in the source log), and 'completed' at the conductor. Then it
// checks the guest beats on the destination.

import { randomUUID } from 'node:crypto';
import { operatorContext } from '../../src/cli/conductor.js';
import type { LabGuest } from '../e2e/fixture.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import { run } from '../lab/exec.js';
import { waitForConsole } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { benchElapsedMs, castMigration, fmt, formatTable, guestAlive, logTime, machineNote, runBench, since, summarize } from './lab-bench.js';

const RUNS = Number(process.argv[2] ?? 3);
const CAP = Number(process.env.BENCH_CAP ?? 20);
const POSTCOPY_CAP = Number(process.env.BENCH_POSTCOPY_CAP ?? 10);
const DIRTY = { mib: 128, rateMBs: 60 };
/** Stop starting new runs after this long, to keep the bench bounded. */
const BUDGET_MS = 420_000;

type Break = 'pause' | 'kill';

interface Sample {
  kind: Break;
  /** break -> 'post-copy paused' at the conductor */
  toPaused: number;
  /** break -> ferry calls migrateToURI3 with POSTCOPY_RESUME */
  toResume: number;
  /** break -> 'completed' at the conductor */
  toCompleted: number;
  /** resume attempts it took */
  attempts: number;
  alive: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function breakMigration(kind: Break, guest: LabGuest, src: LabHost, dst: LabHost): Promise<void> {
  if (kind === 'pause') {
    await src.virsh(['domjobabort', guest.uuid, '--postcopy']);
    return;
  }
  // The destination libvirtd's migration ports (test/lab/lab.ts).
  const first = 49152 + dst.index * 64;
  await run('ss', ['-K', '-t', '-n', 'dst', dst.migrationAddr, 'and', '(', 'dport', '>=', `:${first}`, 'and', 'dport', '<=', `:${first + 63}`, ')']);
}

async function oneRun(bl: LabCluster, kind: Break, guest: LabGuest, src: LabHost, dst: LabHost): Promise<{ sample: Sample | null; note: string }> {
  const { migrationUuid } = await castMigration(bl, guest, src, dst);
  if (!(await bl.conductor.waitForStatus(migrationUuid, 'running', 60_000).catch(() => null))) return { sample: null, note: 'never running' };
  await sleep(2000);
  await bl.conductor.api.liveMigrationForceComplete(operatorContext(), src.hostname, guest.instance, 'call');
  const deadline = Date.now() + 60_000;
  while ((await src.virsh(['domstate', '--reason', guest.uuid], { check: false })).stdout.trim() !== 'paused (post-copy)') {
    if (Date.now() > deadline) return { sample: null, note: 'the source never paused for post-copy' };
    await sleep(250);
  }
  await sleep(1000);
  const brokeAt = Date.now();
  await breakMigration(kind, guest, src, dst);
  const paused = await bl.conductor.waitForStatus(migrationUuid, 'post-copy paused', 60_000).catch(() => null);
  const pausedAt = Date.now();
  const end = await bl.conductor.waitForEnd(migrationUuid, 180_000).catch(() => null);
  const endAt = Date.now();
  if (!paused) return { sample: null, note: `never reported paused; statuses ${bl.conductor.statuses(migrationUuid).join(' -> ')}` };
  if (end?.status !== 'completed') return { sample: null, note: `ended ${end?.status ?? 'never'}: ${end?.error ?? ''}` };
  const resumes = (await bl.agentOn(src).logs()).filter((l) => l.msg === 'resuming post-copy migration' && l.migration === migrationUuid);
  guest.instance.host = dst.hostname;
  return {
    sample: {
      kind,
      toPaused: pausedAt - brokeAt,
      toResume: resumes.length ? logTime(resumes[0]!) - brokeAt : Number.NaN,
      toCompleted: endAt - brokeAt,
      attempts: resumes.length,
      alive: (await guestAlive(dst, guest, 30_000)).alive,
    },
    note: '',
  };
}

async function main(): Promise<void> {
  console.log(`ferry post-copy recovery bench: ${RUNS} runs per break, pre-copy cap ${CAP} MiB/s, post-copy cap ${POSTCOPY_CAP} MiB/s, guest 256 MiB dirty ${DIRTY.mib} MiB @ ${DIRTY.rateMBs} MB/s; ${machineNote()}`);
  const bl = await startLabCluster({ name: 'pcbench', addrBase: 60 });
  const samples: Sample[] = [];
  const notes: string[] = [];
  try {
    await bl.useAgents({
      libvirt: { live_migration_bandwidth: CAP, live_migration_bandwidth_postcopy: POSTCOPY_CAP, live_migration_permit_post_copy: true, live_migration_completion_timeout: 10_000 },
    });
    let on = bl.a;
    const guest = await bl.boot({ uuid: randomUUID(), dirty: DIRTY }, on);
    await waitForConsole(on, guest.uuid, /^ferry-dirty start/m, { timeoutMs: 30_000 });
    for (const kind of ['pause', 'kill'] as Break[]) {
      for (let i = 0; i < RUNS; i++) {
        if (benchElapsedMs() > BUDGET_MS) {
          notes.push(`${kind}: stopped after ${i} runs (time budget)`);
          break;
        }
        const dst = on === bl.a ? bl.b : bl.a;
        const r = await oneRun(bl, kind, guest, on, dst);
        if (!r.sample) {
          notes.push(`${kind} #${i + 1}: ${r.note}`);
          console.log(`[${since()}] ${kind} #${i + 1}: no sample: ${r.note}`);
          break;
        }
        const s = r.sample;
        samples.push(s);
        on = dst;
        console.log(`[${since()}] ${kind} #${i + 1}: paused reported ${s.toPaused} ms, resume called ${s.toResume} ms, completed ${s.toCompleted} ms after the break; ${s.attempts} resume(s); guest beating on ${dst.name}: ${s.alive}`);
      }
    }
  } finally {
    await bl.close();
  }
  const rows: string[][] = [];
  for (const kind of ['pause', 'kill'] as Break[]) {
    const ss = samples.filter((s) => s.kind === kind);
    if (!ss.length) continue;
    for (const [label, f] of [
      ['break -> paused at conductor (ms)', (s: Sample) => s.toPaused],
      ['break -> resume call (ms)', (s: Sample) => s.toResume],
      ['break -> completed at conductor (ms)', (s: Sample) => s.toCompleted],
    ] as const) {
      const sm = summarize(ss.map(f));
      rows.push([`${kind}: ${label}`, String(sm.n), fmt(sm.min, 0), fmt(sm.p50, 0), fmt(sm.max, 0), fmt(sm.mean, 0)]);
    }
  }
  console.log(formatTable(['measure', 'n', 'min', 'p50', 'max', 'mean'], rows));
  console.log(`recovered with the guest beating on the destination: ${samples.filter((s) => s.alive).length}/${samples.length}; resume attempts per run: ${samples.map((s) => s.attempts).join(', ')}`);
  console.log('Nova, for comparison: no post-copy recovery; the migration ends in error and the guest has to be rebooted (Nova docs).');
  if (notes.length) console.log(`notes:\n  ${notes.join('\n  ')}`);
  console.log(`bench wall time ${(benchElapsedMs() / 1000).toFixed(0)} s`);
}

runBench(main);
