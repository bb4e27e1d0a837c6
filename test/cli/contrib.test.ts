// What contrib/ ships for operators, checked with the tools they will load it
// with: the alert rules by promtool (syntax, then their tests on recorded
// series); the Grafana dashboard's queries by a real Prometheus that scraped
// a real ferryd (libvirt's test driver, a private RabbitMQ vhost).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FERRYD, REPO_ROOT, testDriverEnv } from '../e2e/agents.js';
import { privateBroker, type PrivateBroker } from '../e2e/broker.js';
import { freePort, waitFor } from '../lab/exec.js';

const run = promisify(execFile);
const PROMETHEUS = join(REPO_ROOT, 'contrib', 'prometheus');

describe('contrib/prometheus', () => {
  it('promtool check rules: every alert rule is valid', async () => {
    const r = await run('promtool', ['check', 'rules', join(PROMETHEUS, 'ferry-alerts.yml')]);
    expect(r.stdout).toMatch(/SUCCESS: 6 rules found/);
  });

  it('promtool test rules: each alert fires, and only, when its recorded series say so', async () => {
    // Fails (exit 1) naming the alert and the time that went wrong.
    const r = await run('promtool', ['test', 'rules', 'ferry-alerts.test.yml'], { cwd: PROMETHEUS });
    expect(r.stdout).toMatch(/SUCCESS/);
  });
});

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string }>;
}

describe('contrib/grafana', () => {
  const procs: ChildProcess[] = [];
  let broker: PrivateBroker | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('close', r)) : null)));
    await broker?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("every query of the dashboard runs on a real Prometheus scraping a real ferryd, and names only metrics ferryd exports", async () => {
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'contrib', 'grafana', 'ferry-dashboard.json'), 'utf8')) as { panels: Panel[]; templating: { list: Array<{ name: string; definition?: string }> } };
    broker = await privateBroker('ferry-contrib');
    dir = await mkdtemp(join(tmpdir(), 'ferry-contrib-'));
    const metricsPort = await freePort();
    const ferryd = spawn(process.execPath, [FERRYD], {
      env: testDriverEnv({ host: `ferry-contrib-${process.pid}`, transportUrl: broker.transportUrl, dir, metricsPort }, { FERRY_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    procs.push(ferryd);
    const target = `127.0.0.1:${metricsPort}`;
    expect(await waitFor('ferryd serving', async () => (await fetch(`http://${target}/healthz`).catch(() => null))?.status === 200, { timeoutMs: 30_000, intervalMs: 200 })).toBe(true);

    const promPort = await freePort();
    await writeFile(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['${target}']\n`);
    const prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    procs.push(prometheus);
    const query = async (expr: string) => {
      const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
      return (await res.json()) as { status: string; error?: string; data?: { result: Array<{ value: [number, string] }> } };
    };
    expect(
      await waitFor('Prometheus to have scraped ferryd', async () => (await query('up{job="ferry"}').catch(() => null))?.data?.result[0]?.value[1] === '1', { timeoutMs: 60_000, intervalMs: 500 }),
    ).toBe(true);

    // Grafana's variables as it would fill them in for "All".
    const asGrafana = (expr: string) => expr.replaceAll('$host', '.*').replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s');
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: asGrafana(t.expr) })));
    expect(exprs.length).toBeGreaterThan(20);
    const failed: string[] = [];
    for (const { panel, expr } of exprs) {
      const r = await query(expr);
      if (r.status !== 'success') failed.push(`${panel}: ${r.error}`);
    }
    expect(failed).toEqual([]);
    // The host picker finds this ferryd.
    expect(dashboard.templating.list.find((v) => v.name === 'host')?.definition).toBe('label_values(up{job="ferry"}, instance)');
    const hosts = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/label/instance/values?match[]=${encodeURIComponent('up{job="ferry"}')}`)).json()) as { data: string[] };
    expect(hosts.data).toEqual([target]);

    // A misspelt metric would query fine and show nothing: each one named is one ferryd exports.
    const exposition = await (await fetch(`http://${target}/metrics`)).text();
    const exported = new Set([...exposition.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    const named = new Set(exprs.flatMap(({ expr }) => [...expr.matchAll(/\b(ferry_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))));
    expect([...named].filter((n) => !exported.has(n))).toEqual([]);
    // The totals the alerts and panels take increase() of are there at 0 before anything happened:
    // a series first seen at 1 shows no increase, and the first failure would go unnoticed.
    const lines = exposition.split('\n');
    for (const zero of ['ferry_migrations_finished_total{status="failed"} 0', 'ferry_migrations_finished_total{status="error"} 0', 'ferry_incoming_migrations_total{result="rolled_back"} 0']) {
      expect(lines).toContain(zero);
    }
  });
});
