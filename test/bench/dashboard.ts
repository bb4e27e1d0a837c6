// contrib/grafana/ferry-dashboard.json against a lab run: a real Prometheus
// scrapes both ferryds while one migration completes and one that cannot
// converge is aborted at its first confident stall; then every panel's
// queries are run over the run (query_range) and drawn, a chart per panel in
// the dashboard's order, into one SVG (and a PNG by headless Chromium when it
// is installed). Grafana itself is neither a Debian package nor on npm: this
// shows what its panels would plot. Prints per panel how many series each
// query returned.
//
// Run: npm run -s build && npx vite-node test/bench/dashboard.ts [-- --svg FILE]
//   --svg FILE   where the drawing goes (default /tmp/ferry-dashboard.svg; the PNG beside it)

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { REPO_ROOT } from '../e2e/agents.js';
import { startLabCluster } from '../e2e/cluster.js';
import { freePort, waitFor } from '../lab/exec.js';
import { castMigration, runBench, since } from './lab-bench.js';

const run = promisify(execFile);
const { values } = parseArgs({ options: { svg: { type: 'string', default: '/tmp/ferry-dashboard.svg' } } });
const STEP_S = 2;

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string; legendFormat?: string }>;
}
interface Series {
  metric: Record<string, string>;
  values: Array<[number, string]>;
}

/** A legend as Grafana fills it: {{label}} replaced by the series' value. */
const legend = (format: string | undefined, metric: Record<string, string>) =>
  (format ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, k: string) => (metric[k] ?? '').slice(0, 8)) || JSON.stringify(metric);

async function main(): Promise<void> {
  const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'contrib', 'grafana', 'ferry-dashboard.json'), 'utf8')) as { panels: Panel[] };
  const cluster = await startLabCluster({ name: 'dashboard' });
  const dir = await mkdtemp(join(tmpdir(), 'ferry-dashboard-'));
  const promPort = await freePort();
  let prometheus: ReturnType<typeof spawn> | null = null;
  try {
    const { a, b, conductor } = cluster;
    const agents = await cluster.useAgents({ libvirt: { live_migration_bandwidth: 10, live_migration_monitor_interval: 1 } });
    const targets = agents.map((x) => `'${x.host.addr}:${x.metricsPort}'`).join(', ');
    await writeFile(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: [${targets}]\n`);
    prometheus = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    const api = async (path: string) => (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/${path}`)).json()) as { status: string; error?: string; data: { result: Series[] } };
    const upCount = async () => {
      const r = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent('count(up{job="ferry"} == 1)')}`)).json()) as { data: { result: Array<{ value: [number, string] }> } };
      return r.data.result[0]?.value[1];
    };
    await waitFor('Prometheus scraping both ferryds', async () => (await upCount().catch(() => undefined)) === '2', { timeoutMs: 60_000, intervalMs: 500 });
    const start = Date.now() / 1000;

    // One that completes, then one that cannot converge, named and aborted at its first confident stall.
    const g1 = await cluster.boot({ dirty: { mib: 32, rateMBs: 4 } });
    const m1 = await castMigration(cluster, g1, a, b);
    console.log(`[${since()}] migration ${m1.migrationUuid}: ${(await conductor.waitForEnd(m1.migrationUuid, 180_000)).status}`);
    const g2 = await cluster.boot({ dirty: { mib: 96, rateMBs: 30 } });
    const { migrationUuid: m2 } = await conductor.migrate({ instance: g2.instance, source: a.hostname, dest: b.hostname, blockMigration: null, timeoutSeconds: 120, onTimeout: 'abort', actOnStall: true });
    console.log(`[${since()}] migration ${m2}: ${(await conductor.waitForEnd(m2, 180_000)).status}`);
    // A few more scrapes of the finished state.
    await new Promise((r) => setTimeout(r, 5_000));
    const end = Date.now() / 1000;

    const asGrafana = (expr: string) => expr.replaceAll('$host', '.*').replaceAll('$__rate_interval', '15s').replaceAll('$__interval', '15s').replaceAll('[1h]', '[5m]');
    const points: Array<{ panel: string; series: string; t: number; v: number }> = [];
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    for (const p of panels) {
      const counts: number[] = [];
      for (const t of p.targets ?? []) {
        const r = await api(`query_range?query=${encodeURIComponent(asGrafana(t.expr))}&start=${start}&end=${end}&step=${STEP_S}`);
        if (r.status !== 'success') throw new Error(`${p.title}: ${r.error}`);
        counts.push(r.data.result.length);
        for (const s of r.data.result) {
          for (const [ts, v] of s.values) if (Number.isFinite(Number(v))) points.push({ panel: p.title, series: legend(t.legendFormat, s.metric), t: ts - start, v: Number(v) });
        }
      }
      console.log(`${p.title.padEnd(45)} ${p.type.padEnd(10)} series per query: ${counts.join(', ')}`);
    }
    const spec: TopLevelSpec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      title: `contrib/grafana/ferry-dashboard.json, its panels' queries over a lab run (${Math.round(end - start)} s, Prometheus scraping both ferryds each second)`,
      data: { values: points },
      facet: { field: 'panel', type: 'nominal', sort: panels.map((p) => p.title), title: null },
      columns: 3,
      spec: {
        width: 300,
        height: 120,
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x: { field: 't', type: 'quantitative', title: 's into the run' },
          y: { field: 'v', type: 'quantitative', title: null },
          color: { field: 'series', type: 'nominal', legend: { orient: 'bottom', columns: 3, labelLimit: 160 } },
        },
      },
      resolve: { scale: { y: 'independent', color: 'independent' } },
    };
    const svg = await new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' }).toSVG();
    await writeFile(values.svg!, svg);
    const png = values.svg!.replace(/\.svg$/, '') + '.png';
    const shot = await run('chromium', ['--headless', '--no-sandbox', '--hide-scrollbars', `--screenshot=${png}`, '--window-size=1560,1500', `file://${values.svg}`]).then(
      () => png,
      (e: Error) => `none (${e.message.split('\n')[0]})`,
    );
    console.log(`drawing: ${values.svg}; PNG: ${shot}`);
  } finally {
    prometheus?.kill('SIGTERM');
    await cluster.close();
    await rm(dir, { recursive: true, force: true });
  }
}

runBench(main);
