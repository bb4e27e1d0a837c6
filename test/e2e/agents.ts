// Runs real ferryd agents inside lab hosts (each in its libvirtd's mount
// namespace, so instances_path and qemu:///system are that host's), plus the
// test conductor that drives them over RabbitMQ.

import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Lab, LabHost } from '../lab/lab.js';
import { TRANSPORT_URL } from './broker.js';
import { imageCache } from './spawn.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const FERRYD = join(REPO_ROOT, 'dist/cli/ferryd.js');
export const FERRYCTL = join(REPO_ROOT, 'dist/cli/ferryctl.js');
export { TRANSPORT_URL } from './broker.js';

/** The environment without the caller's FERRY_* variables, plus `env`: a ferryd started by a test reads only the config it is given. */
export function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FERRY_')) out[k] = v;
  return { ...out, ...env };
}

/**
 * The environment of a ferryd on libvirt's test driver, without a lab: its
 * host name and broker, its instances and state folders under `dir`, metrics
 * on 127.0.0.1:`metricsPort` (off without one), then `extra`.
 */
export function testDriverEnv(o: { host: string; transportUrl: string; dir: string; metricsPort?: number }, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return cleanEnv({
    FERRY_HOST: o.host,
    FERRY_TRANSPORT_URL: o.transportUrl,
    FERRY_LIBVIRT__CONNECTION_URI: 'test:///default',
    ...(o.metricsPort ? { FERRY_METRICS__LISTEN_ADDRESS: '127.0.0.1', FERRY_METRICS__PORT: String(o.metricsPort) } : { FERRY_METRICS__PORT: '0' }),
    FERRY_INSTANCES_PATH: join(o.dir, 'instances'),
    FERRY_STATE_PATH: join(o.dir, 'state'),
    ...extra,
  });
}

/** A ferryd log line (pino JSON). */
export type LogLine = Record<string, unknown> & { time: string; msg: string };

export interface Agent {
  host: LabHost;
  /** The RPC server name: the host's hostname. */
  name: string;
  metricsPort: number;
  logFile: string;
  proc: ChildProcess;
  /** Every log line so far, parsed (of every run that wrote to logFile). */
  logs(): Promise<LogLine[]>;
  stop(): Promise<void>;
}

/** The environment systemd/ferryd.service gives ferryd (its Environment= lines), so what is measured is what ships. */
export function unitEnvironment(): Record<string, string> {
  const unit = readFileSync(join(REPO_ROOT, 'systemd/ferryd.service'), 'utf8');
  const env: Record<string, string> = {};
  for (const line of unit.split('\n')) {
    if (!line.startsWith('Environment=')) continue;
    for (const pair of line.slice('Environment='.length).trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return env;
}

export interface AgentOptions {
  exchange: string;
  /** Default: the shared broker's default vhost (see broker.ts for why a private one is better). */
  transportUrl?: string;
  /** Config merged over the lab defaults, for every agent. */
  config?: Record<string, unknown>;
  /** Per-host additions, by lab host name ('a', 'b'). */
  perHost?: Record<string, Record<string, unknown>>;
  /** Environment variables added to the agents' (e.g. unitEnvironment(), to measure what ships). */
  env?: Record<string, string>;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = cur && typeof cur === 'object' && v && typeof v === 'object' && !Array.isArray(v) ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function agentConfig(host: LabHost, opts: AgentOptions): Record<string, unknown> {
  const base = {
    host: host.hostname,
    transport_url: opts.transportUrl ?? TRANSPORT_URL,
    control_exchange: opts.exchange,
    instances_path: host.instancesPath,
    state_path: join(host.root, 'state'),
    conductor_topic: 'conductor',
    log_level: 'debug',
    metrics: { listen_address: host.addr, port: 9390 + host.index },
    image_cache_path: imageCache(host),
    libvirt: {
      connection_uri: 'qemu:///system',
      // TCG guests (no nested KVM in the lab), with the CPU model every lab host runs.
      virt_type: 'qemu',
      cpu_models: ['qemu64'],
      live_migration_inbound_addr: host.migrationAddr,
    },
  };
  return merge(merge(base, opts.config ?? {}), opts.perHost?.[host.name] ?? {});
}

export async function startAgent(host: LabHost, opts: AgentOptions): Promise<Agent> {
  const config = agentConfig(host, opts);
  const configFile = join(host.root, 'ferry.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const logFile = join(host.root, 'ferryd.log');
  // ferryd writes its log file itself (pino writes synchronously), so a line
  // is on disk before the reply or effect it precedes: tests can read it at once.
  // The file may hold an earlier run's lines (a restart): readiness is judged on this run's only.
  const linesBefore = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').length - 1;
  const out = openSync(logFile, 'a');
  const proc = host.spawnIn(process.execPath, [FERRYD, '--config', configFile], { stdio: ['ignore', out, out], env: { ...process.env, ...opts.env } });
  closeSync(out);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const agent: Agent = {
    host,
    name: host.hostname,
    metricsPort: (config.metrics as { port: number }).port,
    logFile,
    proc,
    async logs() {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      // Only whole lines: the last one may still be being written.
      return text.split('\n').slice(0, -1).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  // Ready when it says it serves; fail fast if it dies first.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if ((await agent.logs()).slice(linesBefore).some((l) => l.msg === 'ferryd serving')) return agent;
    if (proc.exitCode !== null) throw new Error(`ferryd on ${host.name} exited ${proc.exitCode}: ${await readFile(logFile, 'utf8')}`);
    if (Date.now() > deadline) {
      await agent.stop();
      throw new Error(`ferryd on ${host.name} did not start: ${await readFile(logFile, 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startAgents(lab: Lab, opts: AgentOptions): Promise<Agent[]> {
  const agents: Agent[] = [];
  try {
    for (const host of lab.hosts) agents.push(await startAgent(host, opts));
  } catch (err) {
    await Promise.all(agents.map((a) => a.stop()));
    throw err;
  }
  return agents;
}

/** The pid of the node process running ferryd.js: the agent's own process, or its child if it is a wrapper. */
export function ferrydPid(agent: Agent): number {
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      return [];
    }
  };
  const isFerryd = (pid: number) => cmdline(pid).some((a) => a.endsWith('/ferryd.js'));
  const root = agent.proc.pid;
  if (root === undefined) throw new Error(`agent on ${agent.host.name} has no pid`);
  if (isFerryd(root)) return root;
  const children = readFileSync(`/proc/${root}/task/${root}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const child = children.find(isFerryd);
  if (child === undefined) throw new Error(`no ferryd.js process under pid ${root} (${cmdline(root).join(' ')})`);
  return child;
}

/** Exit code of the agent's process (null if killed by a signal), or a rejection after timeoutMs. */
export function exitOf(proc: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pid ${proc.pid} still running after ${timeoutMs} ms`)), timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** Waits until a log line satisfying `pred` appears in the agent's log. */
export async function waitForLog(agent: Agent, pred: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = (await agent.logs()).find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no matching log line from ferryd on ${agent.host.name} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
