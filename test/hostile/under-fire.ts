// ferryd as a process under hostile messages: started from dist against
// libvirt's test driver (no daemon, no guest) and a private RabbitMQ vhost;
// messages are published straight to its queues, replies are counted per
// `_msg_id`, and its RSS is read from /proc. Shared by the fuzz test and the
// bench, which differ in count and in what they print.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import WebSocket from 'ws';
import { cleanEnv, FERRYD, unitEnvironment } from '../e2e/agents.js';
import { privateBroker, type PrivateBroker } from '../e2e/broker.js';
import { hostileMessage, seededRandom } from './messages.js';


export const HOST = 'ferry-under-fire';
const EXCHANGE = 'nova';
/** amqplib takes the same URL under its own scheme. */
const amqpUrl = (transportUrl: string) => transportUrl.replace(/^rabbit:/, 'amqp:');

export interface FerrydUnderFire {
  proc: ChildProcess;
  broker: PrivateBroker;
  output(): string;
  rssKb(): Promise<number>;
  /** A full garbage collection in ferryd, then its heap in use: what it keeps, not what V8 has yet to collect. */
  collectGarbage(): Promise<{ heapUsedKb: number }>;
  stop(): Promise<void>;
}

export async function startFerryd(name: string): Promise<FerrydUnderFire> {
  const broker = await privateBroker(name);
  const dir = await mkdtemp(join(tmpdir(), `${name}-`));
  let out = '';
  let inspectorUrl: string | undefined;
  const env = cleanEnv({
    ...unitEnvironment(),
    FERRY_HOST: HOST,
    FERRY_TRANSPORT_URL: broker.transportUrl,
    FERRY_CONTROL_EXCHANGE: EXCHANGE,
    FERRY_LIBVIRT__CONNECTION_URI: 'test:///default',
    FERRY_METRICS__PORT: '0',
    FERRY_INSTANCES_PATH: join(dir, 'instances'),
    FERRY_STATE_PATH: join(dir, 'state'),
    FERRY_LOG_LEVEL: 'warn',
  });
  // V8 collects when it allocates, so an idle daemon may sit on the flood's garbage for minutes; the
  // inspector (on loopback, any free port) lets the measurement collect it first.
  env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim();
  const proc = spawn(process.execPath, [FERRYD], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    inspectorUrl ??= /Debugger listening on (ws:\/\/\S+)/.exec(d)?.[1];
    out = (out + d).slice(-200_000);
  });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const closed = new Promise((r) => proc.once('close', r));
      proc.kill('SIGTERM');
      await Promise.race([closed, new Promise((r) => setTimeout(r, 10_000))]);
      proc.kill('SIGKILL');
    }
    await broker.dispose();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForQueue(broker.transportUrl, `compute.${HOST}`, proc);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; ferryd said: ${out}`);
  }
  return {
    proc,
    broker,
    output: () => out,
    rssKb: async () => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${proc.pid}/status`, 'utf8'))?.[1]),
    collectGarbage: async () => {
      const url = inspectorUrl;
      if (!url) throw new Error(`ferryd printed no inspector address; it said: ${out.slice(0, 2_000)}`);
      await inspect(url, 'HeapProfiler.collectGarbage');
      const usage = (await inspect(url, 'Runtime.getHeapUsage')) as { usedSize: number };
      return { heapUsedKb: usage.usedSize / 1024 };
    },
    stop,
  };
}

/** One Chrome DevTools Protocol call on a fresh inspector session; resolves with its result. */
async function inspect(url: string, method: string): Promise<unknown> {
  const socket = new WebSocket(url);
  try {
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return await new Promise((resolve, reject) => {
      socket.on('message', (data) => {
        const reply = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
        if (reply.id !== 1) return;
        if (reply.error) reject(new Error(`${method}: ${reply.error.message}`));
        else resolve(reply.result);
      });
      socket.send(JSON.stringify({ id: 1, method }));
    });
  } finally {
    socket.close();
  }
}

/** ferryd serves once its per-host queue has a consumer. */
async function waitForQueue(url: string, queue: string, proc: ChildProcess): Promise<void> {
  const conn = await amqp.connect(amqpUrl(url));
  conn.on('error', () => {});
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`ferryd exited ${proc.exitCode}`);
      const ch = await conn.createChannel();
      // A missing queue closes the channel with a 404: not yet declared.
      ch.on('error', () => {});
      const ok = await ch.checkQueue(queue).then((q) => q.consumerCount > 0, () => false);
      await ch.close().catch(() => {});
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`no consumer on ${queue} after 30 s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await conn.close().catch(() => {});
  }
}

export interface FireReport {
  sent: number;
  byKind: Record<string, number>;
  /** calls that expect a reply, and those that got their final one */
  expected: number;
  answered: number;
  /** final replies for a msg_id that had one already */
  duplicateFinals: number;
  heartbeats: number;
  /** replies for a msg_id never sent */
  strays: number;
  missing: string[];
}

/**
 * Publishes `count` seeded hostile messages to ferryd's queues, at most
 * `window` unanswered calls at a time, and waits up to `settleMs` for the last
 * replies. `onProgress` runs after every `every` messages.
 */
export async function fire(
  target: FerrydUnderFire,
  opts: { count: number; seed: number; window?: number; settleMs?: number; every?: number; onProgress?: (sent: number) => Promise<void> },
): Promise<FireReport> {
  const rng = seededRandom(opts.seed);
  const conn = await amqp.connect(amqpUrl(target.broker.transportUrl));
  const ch = await conn.createConfirmChannel();
  const { queue: replyQ } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
  const waiting = new Set<string>();
  const finals = new Set<string>();
  const report: FireReport = { sent: 0, byKind: {}, expected: 0, answered: 0, duplicateFinals: 0, heartbeats: 0, strays: 0, missing: [] };
  let freed: () => void = () => {};
  await ch.consume(replyQ, (msg) => {
    if (!msg) return;
    const reply = JSON.parse(JSON.parse(msg.content.toString())['oslo.message'] as string) as { _msg_id: string; ending?: boolean };
    if (!reply.ending) report.heartbeats += 1;
    else if (finals.has(reply._msg_id)) report.duplicateFinals += 1;
    else if (waiting.delete(reply._msg_id)) {
      finals.add(reply._msg_id);
      report.answered += 1;
      freed();
    } else report.strays += 1;
  }, { noAck: true });
  try {
    const window = opts.window ?? 100;
    const keys = [`compute.${HOST}`, 'compute'];
    for (let i = 0; i < opts.count; i++) {
      while (waiting.size >= window) await Promise.race([new Promise<void>((r) => (freed = r)), new Promise((r) => setTimeout(r, 1_000))]);
      const m = hostileMessage(rng, i, replyQ, 'ferry-peer');
      report.byKind[m.kind] = (report.byKind[m.kind] ?? 0) + 1;
      if (m.replyTo) {
        waiting.add(m.replyTo);
        report.expected += 1;
      }
      ch.publish(EXCHANGE, keys[i % 2]!, m.body, { contentType: 'application/json' });
      report.sent += 1;
      if (i % 500 === 499) await ch.waitForConfirms();
      if (opts.onProgress && opts.every && report.sent % opts.every === 0) await opts.onProgress(report.sent);
    }
    await ch.waitForConfirms();
    const deadline = Date.now() + (opts.settleMs ?? 30_000);
    while (waiting.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    report.missing = [...waiting].slice(0, 20);
    return report;
  } finally {
    await conn.close().catch(() => {});
  }
}
