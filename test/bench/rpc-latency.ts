// No-op call latency on loopback: ferry client -> ferry server, and oslo.messaging client -> ferry server.
// Run: npx vite-node test/bench/rpc-latency.ts [count]   (RabbitMQ on 127.0.0.1:5672)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import pino from 'pino';
import { z } from 'zod';
import { AmqpConnection, AmqpRpcClient, RpcServer, contextFromDict } from '../../src/rpc/index.js';
import { rpcMethod } from '../../src/rpc/args.js';

const run = promisify(execFile);
const TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/';
const COUNT = Number(process.argv[2] ?? 2000);
const RUN = `ferrybench_${randomBytes(4).toString('hex')}`;
const EXCHANGE = `${RUN}_ex`;
const TOPIC = `${RUN}_compute`;
const HOST = 'benchhost';
const logger = pino({ level: 'error' });

interface Stats {
  label: string;
  count: number;
  callsPerSec: number;
  p50: number;
  p99: number;
}

function stats(label: string, latencies: number[], seconds: number): Stats {
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { label, count: sorted.length, callsPerSec: sorted.length / seconds, p50: pct(50), p99: pct(99) };
}

async function main(): Promise<void> {
  const serverConn = new AmqpConnection({ transportUrl: TRANSPORT_URL, connectionName: `${RUN}-server`, logger });
  const clientConn = new AmqpConnection({ transportUrl: TRANSPORT_URL, connectionName: `${RUN}-client`, logger });
  const server = new RpcServer({
    connection: serverConn,
    exchange: EXCHANGE,
    topics: [TOPIC],
    server: HOST,
    logger,
    endpoints: [{ version: '6.0', methods: { noop: rpcMethod(z.looseObject({}), async () => null) } }],
  });
  const client = new AmqpRpcClient({ connection: clientConn, exchange: EXCHANGE, logger });
  const pyReplyQueues: string[] = [];
  const results: Stats[] = [];
  try {
    await server.start();
    await client.start();
    const ctx = contextFromDict({ request_id: 'req-bench' });
    const target = { topic: TOPIC, server: HOST, version: '6.0' };
    for (let i = 0; i < 50; i++) await client.call(ctx, target, 'noop', {}); // warm-up
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) {
      const s = performance.now();
      await client.call(ctx, target, 'noop', {});
      lat.push(performance.now() - s);
    }
    results.push(stats('ferry client -> ferry server', lat, (performance.now() - t0) / 1000));

    const script = fileURLToPath(new URL('../rpc/oslo_client.py', import.meta.url));
    const { stdout } = await run('/usr/bin/python3', [script, TRANSPORT_URL, EXCHANGE, TOPIC, HOST, 'bench', String(COUNT)], {
      timeout: 300_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    for (const line of stdout.split('\n').filter((l) => l.startsWith('{'))) {
      const o = JSON.parse(line) as { step?: string; latencies_ms?: number[]; seconds?: number; reply_q?: string };
      if (o.reply_q) pyReplyQueues.push(o.reply_q);
      if (o.step === 'bench') results.push(stats('oslo.messaging client -> ferry server', o.latencies_ms!, o.seconds!));
    }
  } finally {
    await client.close();
    await server.stop();
    await clientConn.close();
    await serverConn.close();
    await cleanup(pyReplyQueues);
  }
  console.log(`no-op call, sequential, ${COUNT} calls, loopback RabbitMQ`);
  console.log(['path'.padEnd(40), 'calls/s'.padStart(9), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8)].join(' '));
  for (const r of results) {
    console.log([r.label.padEnd(40), r.callsPerSec.toFixed(0).padStart(9), r.p50.toFixed(2).padStart(8), r.p99.toFixed(2).padStart(8)].join(' '));
  }
}

async function cleanup(extraQueues: string[]): Promise<void> {
  const { stdout: qs } = await run('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name']);
  const { stdout: xs } = await run('rabbitmqctl', ['list_exchanges', '-q', '--no-table-headers', 'name']);
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  const ch = await conn.createChannel();
  for (const q of [...qs.split('\n').filter((n) => n.startsWith(RUN)), ...extraQueues]) await ch.deleteQueue(q.trim());
  for (const x of xs.split('\n').filter((n) => n.startsWith(RUN))) await ch.deleteExchange(x.trim());
  await conn.close();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
