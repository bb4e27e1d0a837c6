// ferryd's /healthz as a process serves it (libvirt's test driver, a private
// RabbitMQ vhost): 200 while RabbitMQ and libvirt are connected, 503 naming
// RabbitMQ once the broker closes ferryd's connection, 200 again after ferryd
// reconnected by itself. Runs the built daemon (`npm run build` first).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health, LOOP_LAG_LIMIT_MS } from '../../src/metrics/health.js';
import { FERRYD, testDriverEnv } from '../e2e/agents.js';
import { freePort, waitFor } from '../lab/exec.js';
import { closeConnections, privateBroker, type PrivateBroker } from '../e2e/broker.js';

const HOST = `ferry-health-${process.pid}`;

describe('ferryd /healthz', () => {
  let broker: PrivateBroker;
  let dir: string;
  let proc: ChildProcess;
  let url: string;

  beforeAll(async () => {
    broker = await privateBroker('ferry-health');
    dir = await mkdtemp(join(tmpdir(), 'ferry-health-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}/healthz`;
    proc = spawn(process.execPath, [FERRYD], {
      env: testDriverEnv({ host: HOST, transportUrl: broker.transportUrl, dir, metricsPort: port }, { FERRY_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  });
  afterAll(async () => {
    if (proc && proc.exitCode === null) {
      const closed = new Promise((r) => proc.once('close', r));
      proc.kill('SIGTERM');
      await closed;
    }
    await broker?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const health = async () => {
    const res = await fetch(url);
    return { code: res.status, body: (await res.json()) as { status: string; problems: string[] } };
  };

  it('200 when connected; 503 naming RabbitMQ while its connection is gone; 200 again once ferryd reconnected', async () => {
    expect(await waitFor('ferryd serving /healthz', async () => (await health()).code === 200, { timeoutMs: 30_000, intervalMs: 200 })).toBe(true);
    expect(await health()).toEqual({ code: 200, body: { status: 'ok', problems: [] } });
    expect(await closeConnections(`ferryd:${HOST}`)).toBeGreaterThan(0);
    const down = await waitFor(
      'a 503',
      async () => {
        const h = await health();
        return h.code === 503 ? h : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(down.body).toEqual({ status: 'unhealthy', problems: ['RabbitMQ disconnected'] });
    await waitFor('a 200 after the reconnect', async () => (await health()).code === 200, { timeoutMs: 30_000, intervalMs: 200 });
    expect(proc.exitCode).toBeNull();
  }, 60_000);
});

describe('Health', () => {
  it('names an event loop blocked beyond the limit, and each lost connection', async () => {
    let amqp = true;
    const h = new Health({ amqpConnected: () => amqp, libvirtConnected: () => false });
    try {
      expect(h.status()).toEqual({ healthy: false, problems: ['libvirt disconnected'] });
      // Block the loop past the limit: the next look says so.
      const until = performance.now() + LOOP_LAG_LIMIT_MS + 600;
      while (performance.now() < until);
      amqp = false;
      const { healthy, problems } = h.status();
      expect(healthy).toBe(false);
      expect(problems.slice(0, 2)).toEqual(['RabbitMQ disconnected', 'libvirt disconnected']);
      expect(problems[2]).toMatch(/^event loop blocked for \d+ ms$/);
    } finally {
      h.stop();
    }
  });
});
