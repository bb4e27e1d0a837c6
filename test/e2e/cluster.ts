// One 2-host lab with ferryd agents, a private RabbitMQ vhost and the test
// conductor: the fixture of the end-to-end tests, the benchmarks and the demo.

import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TestConductor } from '../conductor/conductor.js';
import { ensureGuestImage } from '../lab/guest-image.js';
import { startLab, type Lab, type LabHost } from '../lab/lab.js';
import { exitOf, ferrydPid, startAgent, startAgents, type Agent, type AgentOptions } from './agents.js';
import { privateBroker, type PrivateBroker } from './broker.js';
import { bootGuest, removeGuest, type LabGuest } from './fixture.js';
import { fillImageCache } from './spawn.js';

export interface LabCluster {
  lab: Lab;
  a: LabHost;
  b: LabHost;
  broker: PrivateBroker;
  exchange: string;
  conductor: TestConductor;
  agents: Agent[];
  /** Stops the running agents and starts fresh ones with this config (merged over the lab defaults), and these environment variables added. */
  useAgents(config?: Record<string, unknown>, perHost?: Record<string, Record<string, unknown>>, env?: Record<string, string>): Promise<Agent[]>;
  agentOn(host: LabHost): Agent;
  /** SIGKILL of the host's ferryd (no drain, nothing flushed), awaited. */
  killAgent(host: LabHost): Promise<void>;
  /** A new ferryd on the host with the config of the last useAgents(), appending to the same log file. */
  restartAgent(host: LabHost): Promise<Agent>;
  /** Spawns a guest through ferryd (on A by default); removeGuests() or close() takes it away again. */
  boot(spec?: Parameters<typeof bootGuest>[2], host?: LabHost): Promise<LabGuest>;
  removeGuests(): Promise<void>;
  /** One of them, on both hosts: domain and instance folder. */
  removeGuest(uuid: string): Promise<void>;
  close(): Promise<void>;
}

export async function startLabCluster(opts: { name: string; addrBase?: number; migrationAddrBase?: number; tls?: boolean; bridges?: boolean }): Promise<LabCluster> {
  const exchange = `ferry-${opts.name}-${process.pid}`;
  await ensureGuestImage();
  const broker = await privateBroker(`ferry-${opts.name}`);
  let lab: Lab | null = null;
  try {
    lab = await startLab({ hosts: 2, name: opts.name, addrBase: opts.addrBase, migrationAddrBase: opts.migrationAddrBase, tls: opts.tls, bridges: opts.bridges });
    const conductor = await TestConductor.start(broker.transportUrl, exchange);
    const [a, b] = lab.hosts as [LabHost, LabHost];
    // Each host's image cache: what its ferryd spawns lab guests from.
    for (const h of lab.hosts) await fillImageCache(h);
    const guests = new Set<string>();
    let agentOptions: AgentOptions = { exchange, transportUrl: broker.transportUrl };
    const started = lab;
    const cluster: LabCluster = {
      lab,
      a,
      b,
      broker,
      exchange,
      conductor,
      agents: [],
      async useAgents(config = {}, perHost = {}, env = {}) {
        await Promise.all(cluster.agents.map((x) => x.stop()));
        cluster.agents = [];
        agentOptions = { exchange, transportUrl: broker.transportUrl, config, perHost, env };
        cluster.agents = await startAgents(started, agentOptions);
        return cluster.agents;
      },
      async killAgent(host) {
        const agent = cluster.agentOn(host);
        const exited = exitOf(agent.proc, 15_000);
        process.kill(ferrydPid(agent), 'SIGKILL');
        await exited;
      },
      async restartAgent(host) {
        const old = cluster.agentOn(host);
        await old.stop();
        const agent = await startAgent(host, agentOptions);
        cluster.agents = cluster.agents.map((x) => (x === old ? agent : x));
        return agent;
      },
      agentOn(host) {
        const agent = cluster.agents.find((x) => x.host === host);
        if (!agent) throw new Error(`no agent on ${host.name}`);
        return agent;
      },
      async boot(spec = {}, host = a) {
        const g = await bootGuest(conductor, host, spec);
        guests.add(g.uuid);
        return g;
      },
      async removeGuest(uuid) {
        for (const h of [a, b]) {
          await removeGuest(h, uuid);
          await rm(join(h.hostInstancesDir, uuid), { recursive: true, force: true });
        }
        guests.delete(uuid);
      },
      async removeGuests() {
        for (const uuid of guests) for (const h of [a, b]) await removeGuest(h, uuid);
        guests.clear();
      },
      async close() {
        await Promise.all(cluster.agents.map((x) => x.stop().catch(() => {})));
        // FERRY_TEST_KEEP_LOGS=DIR keeps the agents' and libvirtds' logs after the lab is gone.
        const keep = process.env.FERRY_TEST_KEEP_LOGS;
        if (keep) {
          for (const h of started.hosts) {
            await cp(join(h.root, 'ferryd.log'), join(keep, `${opts.name}-${h.name}.log`)).catch(() => {});
            await cp(h.logFile, join(keep, `${opts.name}-${h.name}-libvirtd.log`)).catch(() => {});
          }
        }
        await conductor.close().catch(() => {});
        await cluster.removeGuests().catch(() => {});
        await started.stop();
        await broker.dispose();
      },
    };
    return cluster;
  } catch (err) {
    await lab?.stop();
    await broker.dispose();
    throw err;
  }
}
