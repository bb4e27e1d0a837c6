// ferryd as a process, without a lab: the command line, configuration errors
// (exit 78, EX_CONFIG, naming the key) and a libvirt it cannot reach.
// Runs the built daemon (`npm run build` first), as systemd would.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, FERRYD, REPO_ROOT } from '../e2e/agents.js';


interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}


describe('ferryd process', () => {
  const procs = new Set<ChildProcess>();
  let dir: string;

  /** Starts ferryd; `done` settles when it has exited and its output is read, or rejects after timeoutMs. */
  function start(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000) {
    const proc = spawn(process.execPath, [FERRYD, ...args], { env: cleanEnv(env), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.add(proc);
    const out = { stdout: '', stderr: '' };
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
    const done = new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ferryd ${args.join(' ')} still running after ${timeoutMs} ms; output: ${out.stdout}${out.stderr}`)), timeoutMs);
      proc.once('error', reject);
      // 'close', not 'exit': every byte of stdout and stderr is read by then.
      proc.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, ...out });
      });
    });
    return { proc, out, done };
  }

  function ferryd(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<Result> {
    return start(args, env, timeoutMs).done;
  }

  async function configFile(name: string, text: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferryd-cli-'));
  });

  afterEach(() => {
    // Whatever a failed test left running.
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    procs.clear();
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--help exits 0 and documents --config', async () => {
    const r = await ferryd(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: ferryd/);
    expect(r.stdout).toContain('--config');
    expect(r.stderr).toBe('');
  });

  it('--version prints the package version and exits 0', async () => {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await ferryd([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`ferryd ${version}\n`);
    }
  });

  it('an unknown flag is a usage error: exit 2, the flag named, the usage shown', async () => {
    const r = await ferryd(['--frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ferryd: Unknown option '--frobnicate'/);
    expect(r.stderr).toContain('Usage: ferryd');
    expect(r.stdout).toBe('');
  });

  it('an invalid environment value exits 78 naming the key', async () => {
    const r = await ferryd([], { FERRY_LIBVIRT__LIVE_MIGRATION_DOWNTIME: '5' });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^ferryd: invalid configuration: libvirt\.live_migration_downtime: must be >= 100/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });

  it('a transport_url with a bad port exits 78 naming the key, without a stack trace or the password', async () => {
    const r = await ferryd([], { FERRY_TRANSPORT_URL: 'rabbit://guest:s3cret@127.0.0.1:99999/' });
    expect(r.code).toBe(78);
    expect(r.stderr).toBe('ferryd: invalid configuration: transport_url: invalid host or port in transport_url: 127.0.0.1:99999\n');
    expect(r.stdout).toBe('');
  });

  it('an unknown key in the config file exits 78 naming the key and the file', async () => {
    const file = await configFile('unknown-key.json', JSON.stringify({ host: 'h1', libvirt: { live_migration_bandwith: 10 } }));
    const r = await ferryd(['--config', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^ferryd: invalid configuration: libvirt\.live_migration_bandwith: not declared in the schema/);
    expect(r.stderr).toContain(file);
  });

  it('a config file that is not JSON exits 78', async () => {
    const file = await configFile('broken.json', '{ "host": "h1", }');
    const r = await ferryd(['-c', file]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^ferryd: invalid configuration: file: .*broken\.json is not valid JSON/);
  });

  it('a config file that does not exist exits 78', async () => {
    const r = await ferryd(['-c', join(dir, 'missing.json')]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/^ferryd: invalid configuration: file: cannot read .*missing\.json/);
  });

  it('--check-config: 0 for a valid file, saying so without its secrets; 78 naming the key for an invalid one; it connects to nothing', async () => {
    const good = await configFile('good.json', JSON.stringify({ host: 'h1', transport_url: 'rabbit://guest:s3cret@127.0.0.1:1/', libvirt: { connection_uri: 'qemu+tcp://127.0.0.1:1/system' } }));
    const ok = await ferryd(['--check-config', '--config', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(`ferryd: configuration valid (${good}): host h1, transport rabbit://***@127.0.0.1:1/\n`);
    expect(ok.stderr).toBe('');
    const bad = await configFile('bad.json', JSON.stringify({ host: 'h1', libvirt: { live_migration_downtime: 5 } }));
    const refused = await ferryd(['--check-config', '-c', bad]);
    expect(refused.code).toBe(78);
    expect(refused.stderr).toMatch(/^ferryd: invalid configuration: libvirt\.live_migration_downtime: must be >= 100/);
    expect(refused.stdout).toBe('');
  });

  it("a nova.conf-style file: --check-config lists what is Nova's and not ferry's; at start one WARN line lists it; an unknown option is 78", async () => {
    const ini = await configFile(
      'ferry.conf',
      '[DEFAULT]\nhost = h2\ntransport_url = rabbit://guest:guest@127.0.0.1:1/\nmy_ip = 10.0.0.2\n[libvirt]\nconnection_uri = test:///default\nimages_type = qcow2\n[metrics]\nport = 0\n[neutron]\nauth_type = password\n[oslo_messaging_rabbit]\nrabbit_retry_interval = 120\nrabbit_interval_max = 120\n',
    );
    const ok = await ferryd(['--check-config', '--config', ini]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(
      `ferryd: configuration valid (${ini}): host h2, transport rabbit://***@127.0.0.1:1/\n` + "ferryd: ignored, Nova's and not ferry's: [DEFAULT] my_ip, [libvirt] images_type, [neutron] (1 options)\n",
    );
    const f = start(['--config', ini], {}, 20_000);
    const deadline = Date.now() + 10_000;
    while (!f.out.stdout.includes('cannot connect to broker; retrying')) {
      if (f.proc.exitCode !== null || Date.now() > deadline) throw new Error(`ferryd did not reach the broker retry loop: ${f.out.stdout}${f.out.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    f.proc.kill('SIGTERM');
    const lines = (await f.done).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; ignored?: string[] });
    const said = lines.filter((l) => l.ignored !== undefined);
    expect(said).toEqual([expect.objectContaining({ level: 40, msg: "configuration: 3 of Nova's options ferry does not use, ignored", ignored: ['[DEFAULT] my_ip', '[libvirt] images_type', '[neutron] (1 options)'] })]);
    const unknown = await configFile('typo.conf', '[libvirt]\nlive_migration_permit_postcopy = true\n');
    const refused = await ferryd(['--check-config', '-c', unknown]);
    expect(refused.code).toBe(78);
    expect(refused.stderr).toBe(`ferryd: invalid configuration: libvirt.live_migration_permit_postcopy: neither ferry nor Nova has an option live_migration_permit_postcopy in [libvirt] (in ${unknown})\n`);
  });

  it('an unreachable libvirt exits 1 with one clear line and no stack trace', async () => {
    const uri = 'qemu+tcp://127.0.0.1:1/system';
    // libvirt comes first: RabbitMQ is never tried, so the transport URL does not matter.
    const r = await ferryd([], { FERRY_LIBVIRT__CONNECTION_URI: uri, FERRY_TRANSPORT_URL: 'rabbit://guest:guest@127.0.0.1:1/', FERRY_METRICS__PORT: '0' }, 10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ferryd: cannot start: libvirt at ${uri}: unable to connect to server at '127.0.0.1:1': Connection refused\n`);
    // The structured log says the same once, as a fatal line, without a stack.
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ level: 60, msg: 'cannot start: libvirt failed', uri }));
    expect(r.stdout + r.stderr).not.toMatch(/\n\s+at /);
  });

  it('SIGTERM while still connecting to RabbitMQ exits 0 at once (nothing to drain yet)', async () => {
    // libvirt's test driver needs no daemon; the broker is unreachable, so ferryd retries it forever,
    // here sleeping 120 s between attempts. The run is given 20 s in all, less than that sleep and less
    // than stop's 30 s drain grace: an exit that waited for either never comes in time.
    const f = start(
      [],
      {
        FERRY_LIBVIRT__CONNECTION_URI: 'test:///default',
        FERRY_TRANSPORT_URL: 'rabbit://guest:guest@127.0.0.1:1/',
        FERRY_METRICS__PORT: '0',
        FERRY_OSLO_MESSAGING_RABBIT__RABBIT_RETRY_INTERVAL: '120',
        FERRY_OSLO_MESSAGING_RABBIT__RABBIT_INTERVAL_MAX: '120',
      },
      20_000,
    );
    const deadline = Date.now() + 10_000;
    while (!f.out.stdout.includes('cannot connect to broker; retrying')) {
      if (f.proc.exitCode !== null || Date.now() > deadline) throw new Error(`ferryd did not reach the broker retry loop: ${f.out.stdout}${f.out.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    f.proc.kill('SIGTERM');
    const r = await f.done;
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    expect(r.stdout).toMatch(/"signal":"SIGTERM","msg":"stopping"/);
    // Nothing ran after the stop: no drain, no close of a daemon that never started.
    const msgs = r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg?: string }).msg);
    expect(msgs.at(-1)).toBe('stopping');
    expect(r.stderr).toBe('');
  });
});
