// A lab whose owner died without cleaning up (SIGKILL) is removed by the next
// startLab() of the same name: its QEMU, libvirtd, loop devices and folder.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { run, waitFor } from './exec.js';
import { guestXml, prepareInstanceDir } from './guest.js';
import { waitForHeartbeat } from './heartbeat.js';
import { loopDevicesUnder, startLab } from './lab.js';
import { itLab } from './requires.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

itLab('cleans a stale lab left by a killed process at the next start', async () => {
  const cli = spawn(
    join('node_modules', '.bin', 'vite-node'),
    ['test/lab/lab-cli.ts', '--', 'start', '--hosts', '1', '--name', 'stale', '--addr-base', '30'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  cli.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  await waitFor('lab-cli ready', () => out.includes('ferry-lab ready'), { timeoutMs: 60_000 });
  const info = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as {
    root: string;
    sharedDir: string;
    hosts: { uri: string; hostInstancesDir: string; libvirtdPid: number }[];
  };
  const h = info.hosts[0]!;
  const uuid = randomUUID();
  await prepareInstanceDir(h as never, uuid);
  const xmlPath = join(h.hostInstancesDir, uuid, 'domain.xml');
  await writeFile(xmlPath, await guestXml({ name: 'stale-guest', uuid, memoryMiB: 128 }));
  await run('virsh', ['-c', h.uri, 'create', xmlPath]);
  await waitForHeartbeat(h, uuid, { timeoutMs: 60_000 });
  const qemuPid = Number((await run('cat', [join(info.root, 'a', 'run', 'qemu', 'stale-guest.pid')])).stdout);
  const file = join(info.sharedDir, 'leak.img');
  await run('truncate', ['-s', '4M', file]);
  const loop = (await run('losetup', ['--find', '--show', file])).stdout.trim();

  cli.kill('SIGKILL');
  await new Promise((r) => cli.once('exit', r));
  // libvirtd follows its parent (pdeathsig); the QEMU and the loop device stay behind.
  await waitFor('libvirtd to exit', () => !alive(h.libvirtdPid), { timeoutMs: 20_000 });
  expect(alive(qemuPid)).toBe(true);
  expect(existsSync(info.root)).toBe(true);

  const lab = await startLab({ hosts: 1, name: 'stale', addrBase: 30 });
  try {
    expect(alive(qemuPid)).toBe(false);
    expect(existsSync(info.root)).toBe(false);
    expect(loopDevicesUnder(info.root)).toEqual([]);
    expect((await run('losetup', ['-a'])).stdout).not.toContain(`${loop}:`);
    expect((await lab.hosts[0]!.virsh(['list', '--all', '--name'])).stdout.trim()).toBe('');
  } finally {
    await lab.stop();
  }
});
