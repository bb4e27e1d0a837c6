// RPC layer against a real RabbitMQ (127.0.0.1:5672) and real oslo.messaging (/usr/bin/python3).
// Every name is prefixed with a per-run id so a running ferryd is never touched.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import type { Channel, ChannelModel, ConsumeMessage, GetMessage } from 'amqplib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AmqpConnection,
  AmqpNotifier,
  AmqpRpcClient,
  RpcError,
  RpcServer,
  contextFromDict,
  rpcMethod,
  unwrap,
  wrap,
  type RpcEndpoint,
  type RequestContext,
} from '../../src/rpc/index.js';
import { closeConnections } from '../e2e/broker.js';

const run = promisify(execFile);
const TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/';
const RUN = `ferrytest_${randomBytes(4).toString('hex')}`;
const EXCHANGE = `${RUN}_ex`;
const TOPIC = `${RUN}_compute`;
const TOPIC_ALT = `${RUN}_compute-alt`;
const PY_TOPIC = `${RUN}_py`;
const HOST = 'host1';
const PY = '/usr/bin/python3';
const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- logs captured to check redaction and state-change lines
const logLines: string[] = [];
const logger = pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logLines.push(String(c)), cb()) }));

const ctx: RequestContext = contextFromDict({
  request_id: 'req-ferry-1',
  user_id: 'u-1',
  project_id: 'p-1',
  roles: ['admin'],
  is_admin: true,
  auth_token: 'ferry-secret-token',
  db_password: 'hunter2',
});

// --- the endpoint under test
const recorded: string[] = [];
const anyArgs = z.looseObject({});
const endpoints: RpcEndpoint[] = [
  {
    version: '6.5',
    // Stands in for Nova's InvalidInput, as the compute endpoint does; the RPC layer itself knows no Nova.
    invalidArgs: (p) => new RpcError('InvalidInput', 'nova.exception', `Invalid input received: ${p}`, { reason: p }),
    methods: {
      echo: rpcMethod(z.looseObject({ text: z.string().optional(), n: z.int().nullish() }), async (c, a) => ({
        args: a,
        request_id: c.request_id,
        user_id: c.user_id,
        has_token: typeof c.raw.auth_token === 'string',
      })),
      record: rpcMethod(z.looseObject({ text: z.string() }), async (_c, a) => void recorded.push(a.text)),
      noop: rpcMethod(anyArgs, async () => null),
      slow: rpcMethod(z.looseObject({ seconds: z.number() }), async (_c, a) => (await sleep(a.seconds * 1000), { slept: a.seconds })),
      fail_value: rpcMethod(anyArgs, async () => {
        throw new RpcError('ValueError', 'builtins', 'bad value');
      }),
      fail_nova: rpcMethod(anyArgs, async () => {
        throw new RpcError('MigrationPreCheckError', 'nova.exception', 'Migration pre-check error: too busy', { reason: 'too busy' });
      }),
      crash: rpcMethod(anyArgs, () => {
        throw new TypeError('plain crash');
      }),
      _secret: rpcMethod(anyArgs, async () => 'leaked'),
      // The handler sees the parsed args (the default applied), not the raw ones.
      count: rpcMethod(z.looseObject({ items: z.array(z.string()).default([]) }), async (_c, a) => a.items.length),
    },
  },
  {
    // No invalidArgs: the RPC layer's own error.
    namespace: 'plain',
    version: '1.0',
    methods: { needs_text: rpcMethod(z.looseObject({ text: z.string() }), async (_c, a) => a.text) },
  },
];

let serverConn: AmqpConnection;
let clientConn: AmqpConnection;
let server: RpcServer;
let client: AmqpRpcClient;
let admin: ChannelModel;
let adminCh: Channel;
const extraQueues: string[] = [];
const children = new Set<ChildProcess>();

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(25);
  }
}

/** A private reply queue for raw publishes; returns received replies. */
async function rawReplyQueue(): Promise<{ queue: string; replies: Record<string, unknown>[] }> {
  const { queue } = await adminCh.assertQueue('', { exclusive: true });
  const replies: Record<string, unknown>[] = [];
  await adminCh.consume(queue, (m: ConsumeMessage | null) => m && replies.push(unwrap(m.content)), { noAck: true });
  return { queue, replies };
}

function rawPublish(routingKey: string, body: Buffer | string): void {
  adminCh.publish(EXCHANGE, routingKey, Buffer.isBuffer(body) ? body : Buffer.from(body), { contentType: 'application/json' });
}

function runPython(args: string[], timeoutMs: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(PY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const l of lines) if (typeof l.reply_q === 'string') extraQueues.push(l.reply_q);
      if (code === 0) resolve(lines);
      else reject(new Error(`python exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

beforeAll(async () => {
  await run('rabbitmqctl', ['status']).catch(async () => {
    await run('rabbitmq-server', ['-detached']);
    await run('rabbitmqctl', ['await_startup']);
  });
  admin = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
  adminCh = await admin.createChannel();
  serverConn = new AmqpConnection({ transportUrl: TRANSPORT_URL, connectionName: `${RUN}-server`, logger });
  clientConn = new AmqpConnection({ transportUrl: TRANSPORT_URL, connectionName: `${RUN}-client`, logger });
  server = new RpcServer({
    connection: serverConn,
    exchange: EXCHANGE,
    topics: [TOPIC, TOPIC_ALT],
    server: HOST,
    endpoints,
    maxMessageBytes: 64 * 1024,
    logger,
  });
  await server.start();
  client = new AmqpRpcClient({ connection: clientConn, exchange: EXCHANGE, defaultTimeout: 20, logger });
  await client.start();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await client?.close();
  await server?.stop();
  await clientConn?.close();
  await serverConn?.close();
  // Everything this run declared: queues and exchanges with the run prefix, plus Python reply queues.
  const { stdout: qs } = await run('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name']);
  const { stdout: xs } = await run('rabbitmqctl', ['list_exchanges', '-q', '--no-table-headers', 'name']);
  const ch = await admin.createChannel();
  for (const q of [...qs.split('\n').filter((n) => n.startsWith(RUN)), ...extraQueues]) await ch.deleteQueue(q.trim());
  for (const x of xs.split('\n').filter((n) => n.startsWith(RUN))) await ch.deleteExchange(x.trim());
  await admin.close();
});

describe('ferry client -> ferry server', () => {
  it('declares oslo topology for every topic', async () => {
    for (const q of server.queues) expect((await adminCh.checkQueue(q)).queue).toBe(q);
    expect(server.queues).toEqual(expect.arrayContaining([TOPIC, `${TOPIC}.${HOST}`, TOPIC_ALT, `${TOPIC_ALT}.${HOST}`]));
    expect(server.queues.filter((q) => /_fanout_[0-9a-f]{32}$/.test(q))).toHaveLength(2);
    expect(client.replyQueue).toMatch(/^reply_[0-9a-f]{32}$/);
  });

  it('calls with context on both topics, directed and shared', async () => {
    const r = await client.call<Record<string, unknown>>(ctx, { topic: TOPIC, server: HOST, version: '6.0' }, 'echo', { text: 'hi' });
    expect(r).toEqual({ args: { text: 'hi' }, request_id: 'req-ferry-1', user_id: 'u-1', has_token: true });
    expect(await client.call(ctx, { topic: TOPIC_ALT, server: HOST, version: '6.5' }, 'echo', { text: 'alt' })).toMatchObject({ args: { text: 'alt' } });
    expect(await client.call(ctx, { topic: TOPIC, version: '6.1' }, 'echo', {})).toMatchObject({ args: {} });
  });

  it('logs dispatches with the context but never secrets', () => {
    const dispatch = logLines.filter((l) => l.includes('"dispatch"'));
    expect(dispatch.some((l) => l.includes('req-ferry-1'))).toBe(true);
    const all = logLines.join('');
    expect(all).not.toContain('ferry-secret-token');
    expect(all).not.toContain('hunter2');
    expect(all).not.toMatch(/auth_token|password/);
  });

  it('casts and fanout casts', async () => {
    await client.cast(ctx, { topic: TOPIC, server: HOST, version: '6.0' }, 'record', { text: 'cast-1' });
    await client.cast(ctx, { topic: TOPIC_ALT, fanout: true, version: '6.0' }, 'record', { text: 'fanout-1' });
    await waitFor(() => recorded.includes('cast-1') && recorded.includes('fanout-1'));
  });

  it('rebuilds remote failures with class, module, message and kwargs', async () => {
    const t = { topic: TOPIC, server: HOST, version: '6.0' };
    await expect(client.call(ctx, t, 'fail_value', {})).rejects.toMatchObject({ name: 'ValueError', module: 'builtins', message: 'bad value' });
    await expect(client.call(ctx, t, 'fail_nova', {})).rejects.toMatchObject({
      name: 'MigrationPreCheckError',
      module: 'nova.exception',
      message: 'Migration pre-check error: too busy',
      kwargs: { reason: 'too busy' },
    });
    const e = await client.call(ctx, t, 'crash', {}).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RpcError);
    expect(e).toMatchObject({ name: 'TypeError', module: 'builtins', message: 'plain crash' });
  });

  it('refuses bad args before the handler runs, naming the field', async () => {
    const t = { topic: TOPIC, server: HOST, version: '6.0' };
    await expect(client.call(ctx, t, 'echo', { text: 5 })).rejects.toMatchObject({ name: 'InvalidInput', module: 'nova.exception', message: expect.stringContaining('args.text: expected string') });
    await expect(client.call(ctx, t, 'record', {})).rejects.toMatchObject({ message: expect.stringContaining('args.text: required') });
    const plain = { topic: TOPIC, server: HOST, namespace: 'plain', version: '1.0' };
    await expect(client.call(ctx, plain, 'needs_text', {})).rejects.toMatchObject({ name: 'TypeError', module: 'builtins', message: 'args.text: required' });
    expect(await client.call(ctx, plain, 'needs_text', { text: 'ok' })).toBe('ok');
  });

  it('hands the handler the parsed args', async () => {
    const t = { topic: TOPIC, server: HOST, version: '6.0' };
    expect(await client.call(ctx, t, 'count', {})).toBe(0);
    expect(await client.call(ctx, t, 'count', { items: ['a', 'b'] })).toBe(2);
  });

  it('applies oslo version and method rules', async () => {
    const at = (version: string) => ({ topic: TOPIC, server: HOST, version });
    await expect(client.call(ctx, at('7.0'), 'echo', {})).rejects.toMatchObject({ name: 'UnsupportedVersion', module: 'oslo_messaging.rpc.dispatcher' });
    await expect(client.call(ctx, at('6.6'), 'echo', {})).rejects.toMatchObject({ name: 'UnsupportedVersion' });
    await expect(client.call(ctx, at('6.0'), 'nope', {})).rejects.toMatchObject({ name: 'NoSuchMethod', message: 'Endpoint does not support RPC method nope' });
    await expect(client.call(ctx, at('6.0'), '_secret', {})).rejects.toMatchObject({ name: 'NoSuchMethod' });
  });

  it('keeps a long call alive with call-monitor heartbeats', async () => {
    const t0 = Date.now();
    const r = await client.call(ctx, { topic: TOPIC, server: HOST, version: '6.0' }, 'slow', { seconds: 6 }, { timeout: 30, callMonitorTimeout: 2 });
    expect(r).toEqual({ slept: 6 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(5900);
  });

  it('times out on the monitor without heartbeats, and on the overall timeout', async () => {
    const nobody = { topic: TOPIC, server: 'nobody', version: '6.0' };
    // Order, not speed: both end while a call started with them, timing out after 10 s, is still waiting.
    // An ignored monitor timeout would end at the overall 30 s; an ignored overall 1 s, at the client's default 20 s.
    const settled: string[] = [];
    const outcome = (name: string, p: Promise<unknown>) =>
      p.then(
        (v) => (settled.push(name), v),
        (e: unknown) => (settled.push(name), e),
      );
    const reference = outcome('reference', client.call(ctx, nobody, 'noop', {}, { timeout: 10 }));
    const monitor = outcome('monitor', client.call(ctx, nobody, 'slow', { seconds: 1 }, { timeout: 30, callMonitorTimeout: 2 }));
    const overall = outcome('overall', client.call(ctx, nobody, 'noop', {}, { timeout: 1 }));
    expect(await monitor).toMatchObject({ name: 'MessagingTimeout' });
    expect(await overall).toMatchObject({ name: 'MessagingTimeout', module: 'oslo_messaging.exceptions' });
    expect(settled).not.toContain('reference');
    expect(await reference).toMatchObject({ name: 'MessagingTimeout' });
    expect(settled.at(-1)).toBe('reference');
  });

  it('answers garbage with failures where it can and keeps serving', async () => {
    const { queue, replies } = await rawReplyQueue();
    const inner = (id: string, extra: Record<string, unknown> = {}) => ({ method: 'echo', args: {}, version: '6.0', _msg_id: id, _reply_q: queue, _unique_id: randomBytes(16).toString('hex'), ...extra });
    const key = `${TOPIC}.${HOST}`;
    rawPublish(key, 'this is not json');
    rawPublish(key, '{"oslo.version":"2.0","oslo.message":"{broken"}');
    rawPublish(key, JSON.stringify({ 'oslo.version': '3.0', 'oslo.message': JSON.stringify(inner('m-version')) }));
    rawPublish(key, JSON.stringify(inner('m-noenvelope')));
    rawPublish(key, wrap(inner('m-args', { args: [1, 2] })));
    rawPublish(key, wrap(inner('m-method', { method: 42 })));
    rawPublish(key, wrap(inner('m-big', { args: { text: 'x'.repeat(100 * 1024) } })));
    await waitFor(() => replies.length >= 5);
    const byId = Object.fromEntries(replies.map((r) => [r._msg_id as string, JSON.parse(r.failure as string) as Record<string, unknown>]));
    expect(byId['m-version']).toMatchObject({ class: 'MessageDeliveryFailure', message: expect.stringContaining('unsupported envelope version 3.0') });
    expect(byId['m-noenvelope']).toMatchObject({ message: expect.stringContaining('no oslo 2.0 envelope') });
    expect(byId['m-args']).toMatchObject({ message: 'args must be an object' });
    expect(byId['m-method']).toMatchObject({ message: 'message has no method' });
    expect(byId['m-big']).toMatchObject({ message: expect.stringContaining('exceeds limit of 65536') });
    for (const r of replies) expect(r).toMatchObject({ result: null, ending: true });
    expect(logLines.filter((l) => l.includes('refusing bad message')).length).toBeGreaterThanOrEqual(7);
    expect(await client.call(ctx, { topic: TOPIC, server: HOST, version: '6.0' }, 'echo', { text: 'still here' })).toMatchObject({ args: { text: 'still here' } });
  });

  it('drops a duplicate _unique_id', async () => {
    const msg = wrap({ method: 'record', args: { text: 'dup-1' }, version: '6.0', _unique_id: 'f'.repeat(32), _context_request_id: 'req-dup' });
    rawPublish(`${TOPIC}.${HOST}`, msg);
    rawPublish(`${TOPIC}.${HOST}`, msg);
    await client.call(ctx, { topic: TOPIC, server: HOST, version: '6.0' }, 'noop', {});
    await sleep(200);
    expect(recorded.filter((t) => t === 'dup-1')).toHaveLength(1);
    expect(logLines.some((l) => l.includes('dropping duplicate message'))).toBe(true);
  });

  it('publishes versioned notifications', async () => {
    const topic = `${RUN}_notifications`;
    const notifier = new AmqpNotifier({ connection: clientConn, host: HOST, exchange: EXCHANGE, topic, logger });
    await notifier.notify(ctx, 'instance.live_migration_pre.start', { 'nova_object.name': 'InstanceActionPayload' });
    await notifier.notify(ctx, 'compute.exception', { x: 1 }, 'ERROR');
    const info = await adminCh.get(`${topic}.info`, { noAck: true });
    const error = await adminCh.get(`${topic}.error`, { noAck: true });
    expect(info && error).toBeTruthy();
    const m = unwrap((info as GetMessage).content);
    expect(m).toMatchObject({
      publisher_id: `ferry-compute:${HOST}`,
      event_type: 'instance.live_migration_pre.start',
      priority: 'INFO',
      payload: { 'nova_object.name': 'InstanceActionPayload' },
      _context_request_id: 'req-ferry-1',
    });
    expect(m.message_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(m.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    expect(m._unique_id).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.stringify(m)).not.toMatch(/auth_token|password|ferry-secret-token/);
    expect(unwrap((error as GetMessage).content)).toMatchObject({ priority: 'ERROR', event_type: 'compute.exception' });
  });
});

describe('a flood', () => {
  it('is handled at most maxInFlight messages (and maxInFlightBytes of bodies) at a time; the rest wait in RabbitMQ and are all answered', async () => {
    const topic = `${RUN}_gated`;
    let running = 0;
    let most = 0;
    const gated = new RpcServer({
      connection: serverConn,
      exchange: EXCHANGE,
      topics: [topic],
      server: HOST,
      maxInFlight: 3,
      maxInFlightBytes: 50_000,
      logger,
      endpoints: [
        {
          version: '1.0',
          methods: {
            hold: rpcMethod(z.looseObject({ i: z.int() }), async (_c, a) => {
              most = Math.max(most, ++running);
              await sleep(200);
              running -= 1;
              return a.i;
            }),
          },
        },
      ],
    });
    await gated.start();
    try {
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => client.call(ctx, { topic, version: '1.0' }, 'hold', { i })));
      expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(most).toBe(3);
      // Large messages: room for two 20 KB bodies in 50 KB of bodies at once, whatever the count allows.
      most = 0;
      const large = await Promise.all(Array.from({ length: 6 }, (_, i) => client.call(ctx, { topic, version: '1.0' }, 'hold', { i, pad: 'p'.repeat(20_000) })));
      expect(large).toEqual([0, 1, 2, 3, 4, 5]);
      expect(most).toBe(2);
    } finally {
      await gated.stop();
    }
  });
});

describe('reconnect', () => {
  it('survives the broker closing its connections, with no lost calls', async () => {
    const t = { topic: TOPIC, server: HOST, version: '6.0' };
    const before = logLines.length;
    const inFlight = client.call(ctx, t, 'slow', { seconds: 0.5 });
    // Issued while the client is disconnected: queued, then sent after reconnect.
    let offline = true;
    const issued = new Promise<Promise<unknown>[]>((resolve) =>
      clientConn.once('lost', () => {
        offline = !clientConn.connected;
        const calls = Array.from({ length: 5 }, (_, i) => client.call(ctx, t, 'echo', { text: `during-${i}` }, { timeout: 30 }));
        calls.push(client.cast(ctx, t, 'record', { text: 'cast-during-outage' }));
        resolve(calls);
      }),
    );
    expect(await closeConnections(RUN)).toBe(2);
    const all = await issued;
    expect(offline).toBe(true);
    const casts = all.pop()!;
    const during = all;
    const results = await Promise.all(during);
    expect(results.map((r) => (r as { args: { text: string } }).args.text)).toEqual(['during-0', 'during-1', 'during-2', 'during-3', 'during-4']);
    await casts;
    await waitFor(() => recorded.includes('cast-during-outage'));
    // The call in flight either finished before the close or its reply followed the reconnect.
    await inFlight.catch((e: Error) => expect(e.name).toBe('MessagingTimeout'));
    const after = logLines.slice(before).join('');
    expect(after.match(/connection lost; reconnecting/g)?.length).toBe(2);
    expect(after.match(/"msg":"reconnected"/g)?.length).toBe(2);
    expect(serverConn.connected && clientConn.connected).toBe(true);
  });
});

describe('interop with oslo.messaging', () => {
  it('serves a Python oslo client: call, cast, failures, call monitor', async () => {
    const lines = await runPython([here('./oslo_client.py'), TRANSPORT_URL, EXCHANGE, TOPIC, HOST, 'scenario'], 90_000);
    const step = (s: string) => lines.find((l) => l.step === s)!;
    expect(step('call').result).toMatchObject({ args: { text: 'hi', n: 3 }, request_id: 'req-python-1', user_id: 'py-user', has_token: true });
    await waitFor(() => recorded.includes('cast-from-python'));
    expect(step('fail_builtin').error).toMatchObject({ type: 'ValueError', text: 'bad value' });
    expect(step('fail_nova').error).toMatchObject({ type: 'RemoteError', exc_type: 'MigrationPreCheckError' });
    expect(step('no_method').error).toMatchObject({ type: 'RemoteError', exc_type: 'NoSuchMethod' });
    expect(step('bad_version').error).toMatchObject({ type: 'RemoteError', exc_type: 'UnsupportedVersion' });
    expect(step('bad_args').error).toMatchObject({ type: 'RemoteError', exc_type: 'InvalidInput' });
    expect(step('monitored').result).toEqual({ slept: 3 });
    expect(logLines.join('')).not.toContain('py-secret-token');
  });

  it('calls a Python oslo server: result and failure', async () => {
    const child = spawn(PY, [here('./oslo_server.py'), TRANSPORT_URL, EXCHANGE, PY_TOPIC, 'pyhost'], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('READY') && resolve());
      child.on('exit', (code) => reject(new Error(`oslo server exited ${code}: ${err}`)));
      setTimeout(() => reject(new Error('oslo server not ready')), 30_000);
    });
    try {
      await ready;
      const t = { topic: PY_TOPIC, server: 'pyhost', version: '2.1' };
      expect(await client.call(ctx, t, 'echo', { a: [1, 'x'] })).toEqual({ args: { a: [1, 'x'] }, request_id: 'req-ferry-1', user_id: 'u-1', seen_token: true });
      await expect(client.call(ctx, t, 'fail', { why: 'because' })).rejects.toMatchObject({ name: 'ValueError', module: 'builtins', message: 'python says no: because' });
      await expect(client.call(ctx, { ...t, version: '3.0' }, 'echo', {})).rejects.toMatchObject({ name: 'UnsupportedVersion', module: 'oslo_messaging.rpc.dispatcher' });
    } finally {
      child.stdin.end();
      await Promise.race([new Promise((r) => child.on('exit', r)), sleep(10_000)]);
      child.kill('SIGKILL');
      children.delete(child);
    }
  });
});
