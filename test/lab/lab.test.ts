// Real lab: two private libvirtds, a TCG guest, virsh live migrations.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run } from './exec.js';
import { createLocalDisk, guestXml, prepareInstanceDir, readDiskHead } from './guest.js';
import { ensureGuestImage } from './guest-image.js';
import { lastHeartbeat, readHeartbeats, waitForConsole, waitForHeartbeat } from './heartbeat.js';
import { loopDevicesUnder, startLab, type Lab } from './lab.js';
import { describeLab } from './requires.js';
import { createVolume } from './volumes.js';

const t0 = Date.now();
const log = (msg: string) => console.log(`[lab +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

describeLab('ferry test lab', () => {
  let lab: Lab;
  let stopped = false;

  beforeAll(async () => {
    const img = await ensureGuestImage();
    log(`guest image ${img.kernel} ${img.initrd}`);
    lab = await startLab({ hosts: 2, name: 'labtest' });
    log(`lab up at ${lab.root}`);
  });

  afterAll(async () => {
    if (!stopped) await lab?.stop();
  });

  it('starts private libvirtds with distinct host UUIDs and hostnames', async () => {
    const [a, b] = lab.hosts;
    expect(a!.uri).toBe('qemu+tcp://127.0.0.11/system');
    expect(b!.uri).toBe('qemu+tcp://127.0.0.12/system');
    const capsA = (await a!.virsh(['capabilities'])).stdout;
    const capsB = (await b!.virsh(['capabilities'])).stdout;
    const hostUuid = (caps: string) => /<host>\s*<uuid>([^<]+)<\/uuid>/.exec(caps)?.[1];
    expect(hostUuid(capsA)).toBeTruthy();
    expect(hostUuid(capsA)).not.toBe(hostUuid(capsB));
    expect((await a!.exec(['hostname'])).stdout.trim()).toBe('ferry-lab-a');
    expect((await b!.virsh(['hostname'])).stdout.trim()).toBe('ferry-lab-b');
    // The instances folder is private per host.
    await a!.exec(['touch', `${a!.instancesPath}/only-on-a`]);
    expect(existsSync(`${a!.hostInstancesDir}/only-on-a`)).toBe(true);
    expect(existsSync(`${b!.hostInstancesDir}/only-on-a`)).toBe(false);
  });

  it('live-migrates a running guest from A to B with virsh', async () => {
    const [a, b] = lab.hosts as [NonNullable<Lab['hosts'][0]>, NonNullable<Lab['hosts'][0]>];
    const uuid = randomUUID();
    const name = `lab-mig-${uuid.slice(0, 8)}`;
    await prepareInstanceDir(a, uuid);
    await prepareInstanceDir(b, uuid);
    const xmlPath = `${a.hostInstancesDir}/${uuid}/domain.xml`;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(xmlPath, await guestXml({ name, uuid, memoryMiB: 256 }));
    const tBoot = Date.now();
    await a.virsh(['create', xmlPath]);
    const hb = await waitForHeartbeat(a, uuid, { after: 2, timeoutMs: 60_000 });
    log(`guest booted and beating (${hb}) ${(Date.now() - tBoot) / 1000}s after create`);

    const tMig = Date.now();
    await a.virsh([
      'migrate', '--live', '--p2p', '--persistent', '--undefinesource', name,
      '--desturi', b.uri, '--migrateuri', `tcp://${b.migrationAddr}`,
    ], { timeoutMs: 100_000 });
    log(`virsh migrate took ${(Date.now() - tMig) / 1000}s`);
    const lastOnA = await lastHeartbeat(a, uuid);
    const onB = await waitForHeartbeat(b, uuid, { after: lastOnA, timeoutMs: 30_000 });
    log(`heartbeat ${onB} on B after ${lastOnA} on A`);
    expect(onB).toBeGreaterThan(lastOnA);
    // B's console log continues the counter: it never restarted at 1.
    const hbB = await readHeartbeats(b, uuid);
    expect(hbB[0]).toBeGreaterThan(1);

    expect((await a.virsh(['list', '--all', '--name'])).stdout).not.toContain(name);
    expect((await b.virsh(['domstate', name])).stdout.trim()).toBe('running');
    expect((await b.virsh(['list', '--persistent', '--name'])).stdout).toContain(name);
    expect(a.qemuPids()).toEqual([]);
    expect(b.qemuPids()).toHaveLength(1);
    await b.virsh(['destroy', name]);
    await b.virsh(['undefine', name]);
  });

  it('block-migrates a local qcow2 disk while a shared volume stays put', async () => {
    const [a, b] = lab.hosts as [NonNullable<Lab['hosts'][0]>, NonNullable<Lab['hosts'][0]>];
    const uuid = randomUUID();
    const name = `lab-blk-${uuid.slice(0, 8)}`;
    const vol = await createVolume(lab, 16);
    const diskA = await createLocalDisk(a, uuid, 64);
    const diskB = await createLocalDisk(b, uuid, 64); // pre-created, as Nova's pre_live_migration does
    const marker = `m${uuid.slice(0, 8)}`;
    const xml = await guestXml({
      name,
      uuid,
      memoryMiB: 192,
      localDisks: [{ dev: 'vda', path: diskA.path, format: 'qcow2' }],
      volumes: [{ dev: 'vdb', path: vol.path, serial: 'vol1' }],
      diskMarker: marker,
      volumeMarker: `v${marker}`,
    });
    const { writeFile } = await import('node:fs/promises');
    const xmlPath = `${a.hostInstancesDir}/${uuid}/domain.xml`;
    await writeFile(xmlPath, xml);
    await a.virsh(['create', xmlPath]);
    await waitForConsole(a, uuid, new RegExp(`^ferry-disk ferry-marker:${marker}\\r?$`, 'm'), { timeoutMs: 60_000 });
    await waitForConsole(a, uuid, new RegExp(`^ferry-vol ferry-marker:v${marker}\\r?$`, 'm'), { timeoutMs: 10_000 });
    expect(await readDiskHead(diskB.hostPath)).toBe('');

    const tMig = Date.now();
    await a.virsh([
      'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--copy-storage-inc',
      '--migrate-disks', 'vda', name, '--desturi', b.uri, '--migrateuri', `tcp://${b.migrationAddr}`,
    ], { timeoutMs: 100_000 });
    log(`block migration took ${(Date.now() - tMig) / 1000}s`);
    const lastOnA = await lastHeartbeat(a, uuid);
    await waitForHeartbeat(b, uuid, { after: lastOnA, timeoutMs: 30_000 });
    // The guest on B still reads its marker, and the destination file holds it.
    await waitForConsole(b, uuid, new RegExp(`^ferry-disk ferry-marker:${marker}\\r?$`, 'm'), { timeoutMs: 10_000 });
    expect(await readDiskHead(diskB.hostPath)).toBe(`ferry-marker:${marker}\n`);
    expect(await readDiskHead(vol.path, 'raw')).toBe(`ferry-marker:v${marker}\n`);
    await b.virsh(['destroy', name]);
    await b.virsh(['undefine', name]);
    await vol.detach();
  });

  it('stop() leaves no libvirtd, QEMU or loop device behind', async () => {
    const pids = lab.hosts.flatMap((h) => [h.libvirtdPid, ...h.qemuPids()]);
    const vol = await createVolume(lab, 4); // left attached on purpose
    expect(loopDevicesUnder(lab.root).map((l) => l.dev)).toContain(vol.path);
    await lab.stop();
    stopped = true;
    for (const p of pids) expect(existsSync(`/proc/${p}`)).toBe(false);
    expect(loopDevicesUnder(lab.root)).toEqual([]);
    expect(existsSync(lab.root)).toBe(false);
    const ps = await run('pgrep', ['-a', 'libvirtd'], { check: false });
    for (const p of pids) expect(ps.stdout).not.toMatch(new RegExp(`^${p} `, 'm'));
  });
});
