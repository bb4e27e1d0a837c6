// A libvirtd that goes away is noticed: the binding's close callback fires
// (ferryd exits on it so its supervisor restarts it with a fresh connection).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openConnection } from '../../src/libvirt/index.js';
import { startLab, type Lab, type LabHost } from './lab.js';

let lab: Lab;
let host: LabHost;

beforeAll(async () => {
  lab = await startLab({ hosts: 1, name: 'close', addrBase: 60 });
  [host] = lab.hosts as [LabHost];
});

afterAll(async () => {
  await lab?.stop();
});

it('fires the close callback once when libvirtd stops', async () => {
  const conn = await openConnection(host.uri);
  const reasons: number[] = [];
  const closed = new Promise<number>((resolve) => conn.onClose((reason) => {
    reasons.push(reason);
    resolve(reason);
  }));
  expect(conn.isAlive()).toBe(true);
  process.kill(host.libvirtdPid, 'SIGTERM');
  const reason = await Promise.race([closed, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no close callback in 30 s')), 30_000))]);
  // ERROR (0), EOF (1) or KEEPALIVE (2): the daemon went away; CLIENT (3) would mean we closed it.
  expect([0, 1, 2]).toContain(reason);
  expect(conn.isAlive()).toBe(false);
  await new Promise((r) => setTimeout(r, 500));
  expect(reasons).toHaveLength(1);
  await conn.close().catch(() => {});
});
