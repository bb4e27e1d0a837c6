// The local two-host demo: two private libvirtd hosts, a ferryd agent in each,
// one RabbitMQ. A tiny guest boots on host A; the conductor asks the agents to
// live-migrate it to host B and prints progress until the guest's heartbeat
// is seen on B. Everything it starts is stopped at the end.

import { progressLine } from '../../src/cli/format.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import { domainState } from '../e2e/fixture.js';
import { lastHeartbeat, readConsole, waitForHeartbeat } from '../lab/heartbeat.js';

const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

async function main(): Promise<void> {
  let cluster: LabCluster | null = null;
  try {
    say('starting two lab hosts (building the guest image on first use)');
    cluster = await startLabCluster({ name: 'demo' });
    const { a, b, conductor } = cluster;
    say(`lab hosts up: ${a.hostname} (${a.addr}) and ${b.hostname} (${b.addr}); RabbitMQ vhost ${cluster.broker.vhost}`);
    // A 20 MiB/s cap makes the move of a busy 256 MiB guest slow enough to watch.
    const agents = await cluster.useAgents({ log_level: 'info', libvirt: { live_migration_bandwidth: 20 } });
    say(`ferryd agents serving; metrics on http://${a.addr}:${agents[0]!.metricsPort}/metrics`);

    const guest = await cluster.boot({ dirty: { mib: 32, rateMBs: 8 } });
    say(`guest ${guest.name} (${guest.uuid}) is running on ${a.hostname}, heartbeat ${await lastHeartbeat(a, guest.uuid)}`);

    const { migrationUuid, migrateData } = await conductor.migrate({ instance: guest.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    say(`pre-checks passed (block migration: ${migrateData.block_migration}); migration ${migrationUuid} cast to ${a.hostname}`);
    const started = Date.now();
    let last = '';
    for (;;) {
      const [view] = (await conductor.api.listMigrations(conductor.ctx, a.hostname, guest.uuid)).filter((m) => m.uuid === migrationUuid);
      if (view) {
        const line = progressLine(view, (Date.now() - started) / 1000);
        if (line !== last) say(line);
        last = line;
        if (['completed', 'failed', 'cancelled', 'error'].includes(view.status)) {
          if (view.status !== 'completed') throw new Error(`migration ended ${view.status}: ${view.error ?? ''}`);
          say(`downtime ${view.downtime_ms ?? '?'} ms; conductor saw: ${conductor.statuses(migrationUuid).join(' -> ')}`);
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const beat = await waitForHeartbeat(b, guest.uuid, { after: await lastHeartbeat(b, guest.uuid), timeoutMs: 15_000 }).catch(async (e: unknown) => {
      console.log(`guest console on ${b.hostname}:\n${(await readConsole(b, guest.uuid)).slice(-2000)}`);
      throw e;
    });
    say(`guest heartbeat ${beat} on ${b.hostname}; on ${a.hostname} the domain is ${(await domainState(a, guest.uuid)) ?? 'gone'}`);
    say('demo complete');
  } finally {
    await cluster?.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
