// ferryd under a Type=notify unit, its messages read from a real Unix
// datagram socket bound by the test (NOTIFY_SOCKET), as systemd would:
// READY=1 with a STATUS= once it serves, WATCHDOG=1 at half of WATCHDOG_USEC,
// STOPPING=1 on SIGTERM, in that order. Runs the built daemon.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusLine } from '../../src/compute/systemd-notify.js';
import { MigrationStatus } from '../../src/record/status.js';
import { FERRYD, testDriverEnv } from '../e2e/agents.js';
import { privateBroker, type PrivateBroker } from '../e2e/broker.js';

/** Binds a datagram socket at argv[1] and prints each message received, newlines as " | ". */
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(data.decode().strip().replace("\\n", " | "), flush=True)
`;

describe('ferryd and systemd notify', () => {
  let broker: PrivateBroker;
  let dir: string;
  let receiver: ChildProcess;
  const received: string[] = [];

  beforeAll(async () => {
    broker = await privateBroker('ferry-notify');
    dir = await mkdtemp(join(tmpdir(), 'ferry-notify-'));
    receiver = spawn('python3', ['-c', RECEIVER, join(dir, 'notify.sock')], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      receiver.stdout!.setEncoding('utf8').on('data', (d: string) => {
        for (const line of d.split('\n').filter(Boolean)) {
          if (line === 'bound') resolve();
          // systemd-notify's barrier, which makes it wait until the message was read.
          else if (line !== 'BARRIER=1') received.push(line);
        }
      });
    });
  });
  afterAll(async () => {
    receiver?.kill('SIGKILL');
    await broker?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('READY=1 with its status once serving, WATCHDOG=1 while it runs, STOPPING=1 when asked to stop; exit 0', async () => {
    const proc = spawn(process.execPath, [FERRYD], {
      env: testDriverEnv({ host: `ferry-notify-${process.pid}`, transportUrl: broker.transportUrl, dir }, { FERRY_LOG_LEVEL: 'warn', NOTIFY_SOCKET: join(dir, 'notify.sock'), WATCHDOG_USEC: '1000000' }),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const until = async (what: string, ok: () => boolean) => {
      for (const deadline = Date.now() + 30_000; !ok(); await new Promise((r) => setTimeout(r, 100))) {
        if (Date.now() > deadline) throw new Error(`no ${what}; received: ${JSON.stringify(received)}`);
      }
    };
    await until('two watchdog pings', () => received.filter((m) => m.includes('WATCHDOG=1')).length >= 2);
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until('STOPPING=1', () => received.some((m) => m.includes('STOPPING=1')));
    const kinds = received.map((m) => (m.includes('READY=1') ? 'ready' : m.includes('WATCHDOG=1') ? 'watchdog' : m.includes('STOPPING=1') ? 'stopping' : m));
    expect(kinds[0]).toBe('ready');
    expect(received[0]).toContain('STATUS=idle: no migration under way');
    expect(received[0]).toContain(`MAINPID=${proc.pid}`);
    expect(kinds.at(-1)).toBe('stopping');
    expect(kinds.slice(1, -1).every((k) => k === 'watchdog')).toBe(true);
  }, 60_000);

  it('statusLine counts the migrations under way', () => {
    const r = (status: MigrationStatus) => ({ status });
    expect(statusLine([r(MigrationStatus.completed)])).toBe('idle: no migration under way');
    expect(statusLine([r(MigrationStatus.running), r(MigrationStatus.preparing), r(MigrationStatus.queued), r(MigrationStatus.failed)])).toBe('2 migrations running, 1 queued');
    expect(statusLine([r(MigrationStatus.running)])).toBe('1 migration running, 0 queued');
  });
});
