// The local two-host demo: two private libvirtd hosts, a ferryd agent in each,
// one RabbitMQ. ferryd on host A spawns a tiny guest from its image cache
// (build_and_run_instance, as nova-compute would); the conductor asks the
// agents to live-migrate it to host B, block-migrating its disk, and prints
// progress until the guest's heartbeat is seen on B; ferryd on B terminates
// it. Everything it starts is stopped at the end.

import { randomUUID } from 'node:crypto';
import { progressLine } from '../../src/cli/format.js';
import { startLabCluster, type LabCluster } from '../e2e/cluster.js';
import { domainState } from '../e2e/fixture.js';
import { fillImageCache } from '../e2e/spawn.js';
import { lastHeartbeat, readConsole, waitForHeartbeat } from '../lab/heartbeat.js';

const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

async function main(): Promise<void> {
  let cluster: LabCluster | null = null;
  const uuid = randomUUID();
  try {
    say('starting two lab hosts (building the guest image on first use)');
    cluster = await startLabCluster({ name: 'demo' });
    const { a, b, conductor } = cluster;
    say(`lab hosts up: ${a.hostname} (${a.addr}) and ${b.hostname} (${b.addr}); RabbitMQ vhost ${cluster.broker.vhost}`);
    // The lab kernel and initramfs and a 16 MiB root image, in A's image cache.
    await fillImageCache(a, { 'demo-img': { marker: 'demo-disk' } });
    // A 5 MiB/s cap makes the move slow enough to watch (the lab's agents run TCG guests: no nested KVM here).
    const agents = await cluster.useAgents({ log_level: 'info', libvirt: { live_migration_bandwidth: 5 } });
    say(`ferryd agents serving; metrics on http://${a.addr}:${agents[0]!.metricsPort}/metrics`);

    const { instance } = await cluster.boot({ uuid, image: 'demo-img' });
    say(`ferryd on ${a.hostname} spawned guest ${instance.name as string} (${uuid}) from image demo-img; heartbeat ${await lastHeartbeat(a, uuid)}`);

    const { migrationUuid, migrateData } = await conductor.migrate({ instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    say(`pre-checks passed (block migration: ${migrateData.block_migration}); migration ${migrationUuid} cast to ${a.hostname}`);
    const started = Date.now();
    let last = '';
    for (;;) {
      const [view] = (await conductor.api.listMigrations(conductor.ctx, a.hostname, uuid)).filter((m) => m.uuid === migrationUuid);
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
    const beat = await waitForHeartbeat(b, uuid, { after: await lastHeartbeat(b, uuid), timeoutMs: 15_000 }).catch(async (e: unknown) => {
      console.log(`guest console on ${b.hostname}:\n${(await readConsole(b, uuid)).slice(-2000)}`);
      throw e;
    });
    say(`guest heartbeat ${beat} on ${b.hostname}; on ${a.hostname} the domain is ${(await domainState(a, uuid)) ?? 'gone'}`);
    await conductor.compute(b.hostname, 'terminate_instance', { instance: { ...instance, host: b.hostname } });
    say(`ferryd on ${b.hostname} terminated the guest: its domain is ${(await domainState(b, uuid)) ?? 'gone'}`);
    say('demo complete');
  } finally {
    // Whatever a failed run left of the guest, on both hosts.
    await cluster?.removeGuest(uuid).catch(() => {});
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
