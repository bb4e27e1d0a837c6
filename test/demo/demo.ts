// The local two-host demo: two private libvirtd hosts, a ferryd agent in each,
// one RabbitMQ. A tiny guest boots on host A; the conductor asks the agents to
// live-migrate it to host B and prints progress until the guest's heartbeat
// is seen on B. Everything it starts is stopped at the end.

import { progressLine } from '../../src/cli/format.js';
import { TestConductor } from '../conductor/conductor.js';
import { startAgents, TRANSPORT_URL, type Agent } from '../e2e/agents.js';
import { bootGuest, domainState } from '../e2e/fixture.js';
import { ensureGuestImage } from '../lab/guest-image.js';
import { lastHeartbeat, readConsole, waitForHeartbeat } from '../lab/heartbeat.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';

const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

async function main(): Promise<void> {
  let lab: Lab | null = null;
  let agents: Agent[] = [];
  let conductor: TestConductor | null = null;
  try {
    say('building (or reusing) the guest image');
    await ensureGuestImage();
    lab = await startLab({ hosts: 2, name: 'demo' });
    const [a, b] = lab.hosts as [LabHost, LabHost];
    say(`lab hosts up: ${a.hostname} (${a.addr}) and ${b.hostname} (${b.addr})`);
    const exchange = `ferry-demo-${process.pid}`;
    // A 20 MiB/s cap makes the move of a busy 256 MiB guest slow enough to watch.
    agents = await startAgents(lab, { exchange, config: { log_level: 'info', libvirt: { live_migration_bandwidth: 20 } } });
    say(`ferryd agents serving on RabbitMQ exchange ${exchange}; metrics on http://${a.addr}:${agents[0]!.metricsPort}/metrics`);
    conductor = await TestConductor.start(TRANSPORT_URL, exchange);

    const guest = await bootGuest(a, { dirty: { mib: 32, rateMBs: 8 } });
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
    await conductor?.close();
    await Promise.all(agents.map((x) => x.stop()));
    await lab?.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
