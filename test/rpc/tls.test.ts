// The RPC layer over real TLS, without reconfiguring the shared RabbitMQ:
// a throwaway CA signs a server certificate (localhost, 127.0.0.1) and a client
// certificate, and socat terminates TLS on a free loopback port in front of
// 127.0.0.1:5672, requiring a client certificate from that CA. Connections are
// configured the way ferryd configures them: [oslo_messaging_rabbit] ssl_*_file
// through amqpOptions(). Every broker name carries a per-run id.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import amqp from 'amqplib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { amqpOptions } from '../../src/config/amqp.js';
import { makeCa, makeLeaf } from '../lab/certs.js';
import { freePort } from '../lab/exec.js';
import { loadConfig } from '../../src/config/index.js';
import {
  AmqpConnection,
  AmqpRpcClient,
  ConnectionClosedError,
  RpcServer,
  contextFromDict,
  type RpcEndpoint,
} from '../../src/rpc/index.js';
import { rpcMethod } from '../../src/rpc/args.js';

const RUN = `ferrytls_${randomBytes(4).toString('hex')}`;
const EXCHANGE = `${RUN}_ex`;
const HOST = 'host1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctx = contextFromDict({ request_id: 'req-tls-1', user_id: 'u-1', project_id: 'p-1' });

const endpoints: RpcEndpoint[] = [
  {
    version: '6.5',
    methods: {
      echo: rpcMethod(z.looseObject({ text: z.string().optional() }), async (c, a) => ({ args: a, request_id: c.request_id })),
    },
  },
];

let dir = '';
let port = 0;
let socat: ChildProcess | null = null;
let socatLog = '';
const files = {
  ca: '',
  caKey: '',
  serverCert: '',
  serverKey: '',
  clientCert: '',
  clientKey: '',
  otherCa: '',
};
const conns: AmqpConnection[] = [];
const servers: RpcServer[] = [];
const clients: AmqpRpcClient[] = [];
const declared = { queues: new Set<string>(), exchanges: new Set<string>([EXCHANGE]) };

function canConnect(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port: p }, () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** ferryd's connection options for this transport URL and these [oslo_messaging_rabbit] files. */
function options(transportUrl: string, name: string, logger: pino.Logger, tls: { ca?: string; cert?: string; key?: string }) {
  const config = loadConfig({
    env: {},
    overrides: {
      transport_url: transportUrl,
      // Reconnect every second, so a failing connection retries a bounded number of times per test.
      oslo_messaging_rabbit: {
        rabbit_retry_interval: 1,
        rabbit_retry_backoff: 1,
        rabbit_interval_max: 1,
        ssl_ca_file: tls.ca ?? null,
        ssl_cert_file: tls.cert ?? null,
        ssl_key_file: tls.key ?? null,
      },
    },
  });
  return amqpOptions(config, `${RUN}:${name}`, logger);
}

function connection(transportUrl: string, name: string, tls: { ca?: string; cert?: string; key?: string }, logger = pino({ level: 'silent' })) {
  const c = new AmqpConnection(options(transportUrl, name, logger, tls));
  conns.push(c);
  return c;
}

/** The socket under a live AmqpConnection: the proof that it speaks TLS. */
function socketOf(c: AmqpConnection): TLSSocket {
  const ch = c.channel as unknown as { connection: { stream: TLSSocket } } | null;
  if (!ch) throw new Error('not connected');
  return ch.connection.stream;
}

async function roundTrip(url: string, name: string, tls: { ca?: string; cert?: string; key?: string }) {
  const topic = `${RUN}_${name}`;
  const serverConn = connection(url, `${name}-server`, tls);
  const clientConn = connection(url, `${name}-client`, tls);
  const server = new RpcServer({ connection: serverConn, topics: [topic], server: HOST, endpoints, exchange: EXCHANGE });
  servers.push(server);
  for (const q of server.queues) declared.queues.add(q);
  declared.exchanges.add(`${topic}_fanout`);
  const client = new AmqpRpcClient({ connection: clientConn, exchange: EXCHANGE, defaultTimeout: 10 });
  clients.push(client);
  declared.queues.add(client.replyQueue);
  await server.start();
  const reply = await client.call(ctx, { topic, server: HOST, version: '6.0' }, 'echo', { text: `over ${name}` });
  return { reply, serverConn, clientConn };
}

/** Collects log lines of one connection, to see why it does not connect. */
function capture(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  return { logger, lines };
}

/** Starts a connection that must never connect; returns its first connect error message within a few seconds. */
async function neverConnects(url: string, name: string, tls: { ca?: string; cert?: string; key?: string }): Promise<string> {
  const { logger, lines } = capture();
  const c = connection(url, name, tls, logger);
  let connected = false;
  c.on('connected', () => (connected = true));
  const started = c.start().then(
    () => 'connected',
    (e: Error) => e,
  );
  const end = Date.now() + 5000;
  let failure: Record<string, unknown> | undefined;
  while (!(failure = lines.find((l) => l.msg === 'cannot connect to broker; retrying')) && Date.now() < end) await sleep(25);
  // Leave room for a retry or two: it must keep failing, never connect.
  await sleep(1500);
  expect(connected).toBe(false);
  expect(c.connected).toBe(false);
  await c.close();
  expect(await started).toBeInstanceOf(ConnectionClosedError);
  expect(failure, `no connect failure logged; socat said:\n${socatLog.slice(-2000)}`).toBeDefined();
  return String(failure!.err);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-tls-'));
  const ca = makeCa(dir, 'ca', `${RUN} test CA`);
  makeLeaf(dir, ca, 'server', 'localhost', 'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1');
  makeLeaf(dir, ca, 'client', `${RUN}-client`, 'extendedKeyUsage=clientAuth');
  makeCa(dir, 'other', `${RUN} unrelated CA`);
  Object.assign(files, {
    ca: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    otherCa: join(dir, 'other.pem'),
  });

  port = await freePort();
  // Own process group, so afterAll also ends the per-connection children of `fork`.
  socat = spawn(
    'socat',
    [
      '-d',
      `OPENSSL-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork,cert=${files.serverCert},key=${files.serverKey},cafile=${files.ca},verify=1`,
      'TCP:127.0.0.1:5672',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  socat.stderr!.on('data', (d) => (socatLog += d));
  const exited = new Promise<never>((_, reject) => socat!.once('exit', (code) => reject(new Error(`socat exited ${code}: ${socatLog}`))));
  exited.catch(() => {});
  const end = Date.now() + 10_000;
  while (!(await Promise.race([canConnect(port), exited]))) {
    if (Date.now() > end) throw new Error(`socat not listening on ${port}: ${socatLog}`);
    await sleep(50);
  }
});

afterAll(async () => {
  try {
    for (const c of clients) await c.close().catch(() => {});
    for (const s of servers) await s.stop(1000).catch(() => {});
    for (const c of conns) await c.close().catch(() => {});
    // Everything this run declared, over a plain connection to the broker itself.
    const admin = await amqp.connect('amqp://guest:guest@127.0.0.1:5672/');
    try {
      const ch = await admin.createChannel();
      for (const q of declared.queues) await ch.deleteQueue(q);
      for (const x of declared.exchanges) await ch.deleteExchange(x);
    } finally {
      await admin.close();
    }
  } finally {
    if (socat?.pid !== undefined && socat.exitCode === null && socat.signalCode === null) {
      try {
        process.kill(-socat.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

describe('RPC over TLS (socat in front of the shared broker)', () => {
  it('amqps:// to localhost: server and client complete a call, verified against the configured CA', async () => {
    const tls = { ca: files.ca, cert: files.clientCert, key: files.clientKey };
    const { reply, clientConn } = await roundTrip(`amqps://guest:guest@localhost:${port}/`, 'amqps', tls);
    expect(reply).toEqual({ args: { text: 'over amqps' }, request_id: 'req-tls-1' });
    const sock = socketOf(clientConn);
    expect(sock.encrypted).toBe(true);
    expect(sock.authorized).toBe(true);
    expect(sock.getPeerCertificate().subject.CN).toBe('localhost');
    // The client certificate from ssl_cert_file/ssl_key_file was presented.
    expect(sock.getCertificate()).toMatchObject({ subject: { CN: `${RUN}-client` } });
  });

  it('rabbit://…?ssl=1 to 127.0.0.1 also uses TLS (IP subjectAltName)', async () => {
    const tls = { ca: files.ca, cert: files.clientCert, key: files.clientKey };
    const { reply, clientConn, serverConn } = await roundTrip(`rabbit://guest:guest@127.0.0.1:${port}/?ssl=1`, 'ssl1', tls);
    expect(reply).toEqual({ args: { text: 'over ssl1' }, request_id: 'req-tls-1' });
    for (const c of [clientConn, serverConn]) {
      expect(socketOf(c).encrypted).toBe(true);
      expect(socketOf(c).authorized).toBe(true);
    }
  });

  it('a broker certificate from another CA is refused, and the connection never comes up', async () => {
    const err = await neverConnects(`amqps://guest:guest@localhost:${port}/`, 'wrongca', {
      ca: files.otherCa,
      cert: files.clientCert,
      key: files.clientKey,
    });
    expect(err).toMatch(/certificate/i);
  });

  it('without a client certificate the proxy refuses the connection', async () => {
    const err = await neverConnects(`amqps://guest:guest@localhost:${port}/`, 'nocert', { ca: files.ca });
    expect(err).toMatch(/certificate required/i);
  });
});
