// ferryd's log as a process writes it (libvirt's test driver, a private
// RabbitMQ vhost and user): --log-level, --pretty, and no secret on any line
// at the most verbose level, neither the broker password of the transport
// URL nor the token and password of a request's context. Runs the built
// daemon (`npm run build` first).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputeRpcApi } from '../../src/nova/compute-rpcapi.js';
import { contextFromDict } from '../../src/rpc/context.js';
import { AmqpConnection, AmqpRpcClient } from '../../src/rpc/index.js';
import { silentLogger } from '../../src/log/logger.js';
import { FERRYD, testDriverEnv } from '../e2e/agents.js';
import { privateBroker, type PrivateBroker } from '../e2e/broker.js';

const run = promisify(execFile);
const HOST = `ferry-logs-${process.pid}`;
const USER = `ferry-logs-${process.pid}`;
const PASSWORD = `Pw-${randomUUID().slice(0, 8)}-broker`;
const TOKEN = `tok-${randomUUID()}`;
const CONTEXT_PASSWORD = `ctx-pw-${randomUUID().slice(0, 8)}`;

describe('ferryd logs', () => {
  let broker: PrivateBroker;
  let dir: string;
  let transportUrl: string;
  const procs: ChildProcess[] = [];

  /** ferryd with these flags until `until` shows in its output; then SIGTERM, and all it wrote. */
  async function ferryd(args: string[], until: (out: string) => boolean, during: () => Promise<void> = async () => {}): Promise<string> {
    const proc = spawn(process.execPath, [FERRYD, ...args], {
      env: testDriverEnv({ host: HOST, transportUrl, dir }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(proc);
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const closed = new Promise((r) => proc.once('close', r));
    const deadline = Date.now() + 30_000;
    while (!until(out)) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`ferryd ${args.join(' ')}: never got there; output: ${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await during();
    proc.kill('SIGTERM');
    await closed;
    return out;
  }

  beforeAll(async () => {
    broker = await privateBroker('ferry-logs');
    // A user of our own, so the password is one no other line could hold by chance.
    await run('rabbitmqctl', ['-q', 'add_user', USER, PASSWORD]);
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', broker.vhost, USER, '.*', '.*', '.*']);
    const url = new URL(broker.transportUrl.replace(/^rabbit:/, 'http:'));
    transportUrl = `rabbit://${USER}:${PASSWORD}@${url.host}${url.pathname}`;
    dir = await mkdtemp(join(tmpdir(), 'ferry-logs-'));
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await run('rabbitmqctl', ['-q', 'delete_user', USER]).catch(() => {});
    await broker?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('at --log-level trace, a request with a token and a password in its context: its id logged, no secret anywhere', async () => {
    const requestId = `req-${randomUUID()}`;
    const out = await ferryd(['--log-level', 'trace'], (o) => o.includes('"msg":"ferryd serving"'), async () => {
      const connection = new AmqpConnection({ transportUrl: broker.transportUrl, connectionName: 'ferry-logs-client', logger: silentLogger });
      await connection.start();
      const rpc = new AmqpRpcClient({ connection, exchange: 'nova', defaultTimeout: 30, logger: silentLogger });
      const api = new ComputeRpcApi(rpc, { rpcResponseTimeout: 30, longRpcTimeout: 60 });
      const ctx = contextFromDict({ request_id: requestId, user_id: 'ops', roles: ['admin'], is_admin: true, auth_token: TOKEN, db_password: CONTEXT_PASSWORD });
      expect(await api.listMigrations(ctx, HOST)).toEqual([]);
      await rpc.close();
      await connection.close();
    });
    const lines = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; request_id?: string });
    // trace and debug lines were written: the level was taken.
    expect(lines.some((l) => l.level <= 20)).toBe(true);
    expect(lines.filter((l) => l.request_id === requestId).length).toBeGreaterThan(0);
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain(TOKEN);
    expect(out).not.toContain(CONTEXT_PASSWORD);
  });

  it('--pretty: readable lines, not JSON, without the password either; a bad --log-level is a usage error', async () => {
    const out = await ferryd(['--pretty'], (o) => o.includes('ferryd serving'));
    const lines = out.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.every((l) => !l.startsWith('{'))).toBe(true);
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ferryd serving$/m);
    expect(out).not.toContain(PASSWORD);
    const bad = await run(process.execPath, [FERRYD, '--log-level', 'loud']).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toMatch(/^ferryd: --log-level: expected one of fatal, error, warn, info, debug, trace, silent, not loud\n/);
  });
});
