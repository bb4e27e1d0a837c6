// Live-migration time, downtime and data sent against the bandwidth cap, for
// an idle and a memory-dirtying 256 MiB guest, through two real ferryd agents
// in a 2-host lab. Prints figures only (no assertions), bounded run.
//
// Run: npm run -s build && npx vite-node test/bench/migration.ts [caps...]
//   caps in MiB/s, 0 = unlimited; default 20 50 100 0.
//
// Per cap the agents are restarted with libvirt.live_migration_bandwidth set,
// live_migration_permit_post_copy on and timeout action force_complete after
// live_migration_completion_timeout (15 s/GiB, i.e. 30 s for the 2 GiB Nova
// counts a 256 MiB guest as), so a run that cannot converge is finished by
// post-copy; such runs are flagged "forced". Idle runs come first, then the
// dirtying guest is booted (its busy-wait pacing takes a whole core, so it is
// not left running during the idle runs).

import { domainState, type LabGuest } from '../e2e/fixture.js';
import { readConsole } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import type { DirtySpec } from '../lab/guest.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import { benchElapsedMs, castMigration, completedJobInfo, roamingGuest, fmt, formatTable, runBench, guestAlive, logTime, machineNote, MIB, since, type JobInfo, type MigrationView } from './lab-bench.js';

const CAPS = process.argv.slice(2).length ? process.argv.slice(2).map(Number) : [20, 50, 100, 0];
const COMPLETION_TIMEOUT_PER_GIB = 15;
const RUN_LIMIT_MS = 120_000;
/** Stop starting new runs after this long, to keep the bench bounded. */
const BUDGET_MS = 330_000;

interface GuestKind {
  label: string;
  spec: { dirty?: DirtySpec };
}
const KINDS: GuestKind[] = [
  { label: 'idle 256M', spec: {} },
  { label: 'dirty 64M@10', spec: { dirty: { mib: 64, rateMBs: 10 } } },
];

interface Result {
  guest: string;
  cap: number;
  status: string;
  forced: string | null;
  viewS: number | null;
  wallS: number;
  floorS: number | null;
  downtimeMs: number | null;
  sentMiB: number;
  totalMiB: number;
  jobinfo: JobInfo | null;
  /** From the agents' logs: running -> transfer started, transfer started -> post_live_migration_at_destination dispatched, that -> finished_at (s). */
  phases: { toTransfer: number; transfer: number; post: number } | null;
  guestOk: string;
  consoleTail: string | null;
}

async function migrateOnce(bl: LabCluster, kind: GuestKind, cap: number, guest: LabGuest, source: LabHost, dest: LabHost): Promise<{ result: Result; on: LabHost | null }> {
  const { migrationUuid, castAt, ctx } = await castMigration(bl, guest, source, dest);
  // A migration that never ended is reported as "stuck", with no figures.
  let end: Partial<Omit<MigrationView, 'status'>> & { status: string };
  let endAt: number;
  try {
    end = await bl.conductor.waitForEnd(migrationUuid, RUN_LIMIT_MS);
    endAt = Date.now();
  } catch {
    // Did not finish in time: abort and report it as such.
    await bl.conductor.api.liveMigrationAbort(bl.conductor.ctx, source.hostname, guest.instance, migrationUuid, 'cast').catch(() => {});
    end = await bl.conductor.waitForEnd(migrationUuid, 60_000).catch(() => ({ status: 'stuck' }));
    endAt = Date.now();
  }
  const statuses = bl.conductor.statuses(migrationUuid);
  const postcopy = statuses.includes('running (post-copy)');
  const forced = end.action_taken ? `${end.action_taken}${postcopy ? '/post-copy' : ''}` : null;
  const viewS = end.started_at && end.finished_at ? (Date.parse(end.finished_at) - Date.parse(end.started_at)) / 1000 : null;
  const totalMiB = (end.memory_total ?? 0) / MIB;
  const sentMiB = ((end.memory_processed ?? 0) + (end.disk_processed ?? 0)) / MIB;
  const completed = end.status === 'completed';
  const on = completed ? dest : (await domainState(source, guest.uuid)) === 'running' ? source : null;
  if (!completed) guest.instance.host = source.hostname;
  const jobinfo = completed ? await completedJobInfo(dest, guest.uuid) : null;
  const alive = on ? await guestAlive(on, guest) : { alive: false, state: await domainState(dest, guest.uuid) };
  let consoleTail: string | null = null;
  if (!alive.alive) {
    const lines = (await readConsole(on ?? dest, guest.uuid)).split(/\r?\n/).filter((l) => l.trim() !== '');
    consoleTail = lines.slice(-6).join('\n      ');
  }
  let phases: Result['phases'] = null;
  const transferStarted = (await bl.agentOn(source).logs()).find((l) => l.msg === 'migration transfer started' && l.migration === migrationUuid);
  const post = (await bl.agentOn(dest).logs()).find((l) => l.msg === 'dispatch' && l.method === 'post_live_migration_at_destination' && l.request_id === ctx.request_id);
  if (transferStarted && post && end.started_at && end.finished_at) {
    phases = {
      toTransfer: (logTime(transferStarted) - Date.parse(end.started_at)) / 1000,
      transfer: (logTime(post) - logTime(transferStarted)) / 1000,
      post: (Date.parse(end.finished_at) - logTime(post)) / 1000,
    };
  }
  const result: Result = {
    guest: kind.label,
    cap,
    status: end.status + (end.error ? ` (${end.error})` : ''),
    forced,
    viewS,
    wallS: (endAt - castAt) / 1000,
    floorS: cap > 0 && totalMiB > 0 ? totalMiB / cap : null,
    downtimeMs: end.downtime_ms ?? null,
    sentMiB,
    totalMiB,
    jobinfo,
    phases,
    consoleTail,
    guestOk: alive.alive ? `alive on ${(on ?? dest).name}` : `DEAD (${on?.name ?? dest.name}: ${alive.state ?? 'no domain'})`,
  };
  return { result, on: alive.alive ? on : null };
}

function describe(r: Result): string {
  const ratio = r.floorS && r.viewS !== null ? (r.viewS / r.floorS).toFixed(2) : 'n/a';
  const achieved = r.viewS ? (r.sentMiB / r.viewS).toFixed(1) : 'n/a';
  const ji = r.jobinfo
    ? `; libvirt completed-job stats on dest: elapsed ${fmt((r.jobinfo.elapsedMs ?? NaN) / 1000, 2)} s, memory processed ${fmt(r.jobinfo.processedMiB)} MiB, downtime ${fmt(r.jobinfo.downtimeMs, 0)} ms`
    : '';
  return (
    `  ${r.guest} cap=${r.cap === 0 ? 'unlimited' : `${r.cap} MiB/s`}: ${r.status}${r.forced ? ` [forced: ${r.forced}]` : ''}\n` +
    `    total ${fmt(r.viewS, 2)} s (started_at->finished_at), wall ${r.wallS.toFixed(2)} s (cast->completed update)\n` +
    `    floor ${r.floorS === null ? `n/a (achieved ${achieved} MiB/s)` : `${r.floorS.toFixed(2)} s`} = memory_total ${r.totalMiB.toFixed(1)} MiB / cap; ratio total/floor ${ratio}\n` +
    `    downtime ${r.downtimeMs ?? 'n/a'} ms; data sent ${r.sentMiB.toFixed(1)} MiB (memory+disk processed, last poll) = ${r.totalMiB ? (r.sentMiB / r.totalMiB).toFixed(2) : 'n/a'} x memory_total${ji}\n` +
    (r.phases
      ? `    phases: running->transfer started ${r.phases.toTransfer.toFixed(2)} s, transfer started->post_live_migration_at_destination dispatched ${r.phases.transfer.toFixed(2)} s, ->finished_at ${r.phases.post.toFixed(2)} s\n`
      : '') +
    `    guest after run: ${r.guestOk}` +
    (r.consoleTail ? `\n    console tail:\n      ${r.consoleTail}` : '')
  );
}

async function main(): Promise<void> {
  console.log(`ferry migration bench: caps ${CAPS.map((c) => (c === 0 ? 'unlimited' : `${c} MiB/s`)).join(', ')}; ${machineNote()}`);
  const bl = await startLabCluster({ name: 'bench', addrBase: 50 });
  console.log(`[${since()}] lab up (hosts ${bl.lab.hosts.map((h) => h.addr).join(', ')}, exchange ${bl.exchange}, vhost ${bl.broker.vhost})`);
  const results: Result[] = [];
  const skipped: string[] = [];
  try {
    for (const kind of KINDS) {
      const roaming = roamingGuest(bl, kind.spec);
      for (const cap of CAPS) {
        if (benchElapsedMs() > BUDGET_MS) {
          skipped.push(`${kind.label} cap=${cap}`);
          continue;
        }
        await bl.useAgents({
          libvirt: {
            live_migration_bandwidth: cap,
            live_migration_permit_post_copy: true,
            live_migration_timeout_action: 'force_complete',
            live_migration_completion_timeout: COMPLETION_TIMEOUT_PER_GIB,
          },
        });
        const { guest, source, dest } = await roaming.next();
        console.log(`[${since()}] ${kind.label}, cap ${cap || 'unlimited'}: ${source.name} -> ${dest.name}`);
        const r = await migrateOnce(bl, kind, cap, guest, source, dest);
        results.push(r.result);
        console.log(describe(r.result));
        await roaming.after(r.on);
      }
      await roaming.done();
    }
  } finally {
    await bl.close();
  }

  console.log('');
  console.log(`summary (${machineNote()})`);
  console.log(
    formatTable(
      ['guest', 'cap MiB/s', 'status', 'total s', 'wall s', 'lv job s', 'floor s', 'total/floor', 'downtime ms', 'sent MiB', 'sent/total', 'lv sent MiB', 'lv MiB/s', 'guest'],
      results.map((r) => [
        r.guest,
        r.cap === 0 ? 'unlim' : String(r.cap),
        r.status.split(' ')[0]! + (r.forced ? `*${r.forced}` : ''),
        fmt(r.viewS, 2),
        r.wallS.toFixed(2),
        fmt((r.jobinfo?.elapsedMs ?? NaN) / 1000, 2),
        fmt(r.floorS, 2),
        r.floorS && r.viewS !== null ? (r.viewS / r.floorS).toFixed(2) : 'n/a',
        r.downtimeMs === null ? 'n/a' : String(r.downtimeMs),
        r.sentMiB.toFixed(1),
        r.totalMiB ? (r.sentMiB / r.totalMiB).toFixed(2) : 'n/a',
        fmt(r.jobinfo?.processedMiB),
        r.jobinfo?.processedMiB && r.jobinfo.elapsedMs ? (r.jobinfo.processedMiB / (r.jobinfo.elapsedMs / 1000)).toFixed(1) : 'n/a',
        r.guestOk.startsWith('alive') ? 'ok' : 'DEAD',
      ]),
    ),
  );
  console.log(
    'total = started_at->finished_at in the migration view (running .. completed, includes post-live-migration on the destination); ' +
      'wall = live_migration cast -> completed update at the conductor; lv job = libvirt completed-job "Time elapsed" on the destination (the transfer itself); ' +
      'floor = memory_total / cap; sent = memory_processed + disk_processed in the final view (last 0.5 s poll, may undercount the final iteration); ' +
      'lv sent = libvirt completed-job "Memory processed" on the destination; lv MiB/s = lv sent / lv job. ' +
      'Zero pages are sent as markers, so an idle guest sends ~1/3 of memory_total and beats the floor; total - lv job is ferry/libvirt work outside the transfer. ' +
      '*action = finished by the completion-timeout action. guest DEAD = no fresh heartbeat within 10 s after the migration.',
  );
  if (skipped.length) console.log(`skipped to stay within the time budget: ${skipped.join(', ')}`);
  console.log(`bench wall time ${(benchElapsedMs() / 1000).toFixed(0)} s`);
}

runBench(main);
