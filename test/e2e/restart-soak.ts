// kill -9 at random moments of slow migrations, then a restart (issue 12):
// every run must end with the guest whole and beating on one host, nothing
// of it left on the other, and exactly one final status at the conductor.
//
//   npx vite-node test/e2e/restart-soak.ts -- --runs 10 [--seed 7] [--side source|destination|both]
//
// Prints one line per run and a summary (duplicated updates dropped by seq);
// exits 1 if any run broke the rule.

import { parseArgs } from 'node:util';
import { seededRandom } from '../hostile/messages.js';
import { sleep, waitFor } from '../lab/exec.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import { startLabCluster } from './cluster.js';
import { domainState, instanceDirExists, preparedOn } from './fixture.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '10' }, seed: { type: 'string', default: '1' }, side: { type: 'string', default: 'both' } },
});
const runs = Number(values.runs);
/** The same seed gives the same kill moments. */
const random = seededRandom(Number(values.seed));

const cluster = await startLabCluster({ name: 'soak', addrBase: 100 });
const { a, b, conductor } = cluster;
let broken = 0;
try {
  await cluster.useAgents({ libvirt: { live_migration_bandwidth: 5 }, rpc_response_timeout: 10 });
  for (let i = 1; i <= runs; i++) {
    const victim = values.side === 'both' ? (random() < 0.5 ? a : b) : values.side === 'source' ? a : b;
    const killAfterMs = Math.round(random() * 25_000);
    const downMs = Math.round(random() * 8_000);
    const g = await cluster.boot();
    const started = performance.now();
    const { migrationUuid: m } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    await sleep(killAfterMs);
    const statusAtKill = conductor.statuses(m).at(-1) ?? '(none yet)';
    await cluster.killAgent(victim);
    await sleep(downMs);
    await cluster.restartAgent(victim);
    let verdict = 'ok';
    let status = '?';
    try {
      status = (await conductor.waitForEnd(m, 180_000)).status;
      const [onA, onB] = [await domainState(a, g.uuid), await domainState(b, g.uuid)];
      const [to, from] = onB === 'running' ? [b, a] : [a, b];
      await waitForHeartbeat(to, g.uuid, { after: await lastHeartbeat(to, g.uuid), timeoutMs: 20_000 });
      if ((to === b ? onA : onB) !== null) throw new Error(`a domain is left on ${from.name}`);
      if (to === a && status === 'completed') throw new Error('completed, yet the guest runs on the source');
      if (to === b && status !== 'completed') throw new Error(`${status}, yet the guest runs on the destination`);
      if (await instanceDirExists(from, g.uuid)) {
        await waitFor(`the folder on ${from.name} to go`, async () => !(await instanceDirExists(from, g.uuid)), { timeoutMs: 60_000 });
      }
      await waitFor('the destination to forget its preparation', async () => !(await preparedOn(b)).includes(g.uuid), { timeoutMs: 60_000 });
      if (conductor.finalUpdates(m) !== 1) throw new Error(`${conductor.finalUpdates(m)} final updates`);
    } catch (err) {
      verdict = `BROKEN: ${(err as Error).message}`;
      broken += 1;
    }
    const s = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`run ${i}: killed ${victim === a ? 'source' : 'destination'} ferryd at ${(killAfterMs / 1000).toFixed(1)} s (${statusAtKill}), down ${(downMs / 1000).toFixed(1)} s -> ${status} in ${s} s: ${verdict}`);
    await cluster.removeGuests();
  }
  console.log(`${runs} runs, ${broken} broken; ${conductor.duplicates} duplicated migration_update(s) dropped by seq, ${conductor.outOfOrder} out of order`);
} finally {
  await cluster.close();
}
process.exit(broken > 0 ? 1 : 0);
