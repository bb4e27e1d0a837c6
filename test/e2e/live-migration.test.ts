// Live migration end to end: two ferryd agents inside two lab hosts, one
// RabbitMQ, a test conductor, real TCG guests that keep beating.

import { createHash, randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestConductor } from '../conductor/conductor.js';
import { openConnection } from '../../src/libvirt/index.js';
import { run } from '../lab/exec.js';
import { readDiskHeadOn } from '../lab/guest.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import type { Lab, LabHost } from '../lab/lab.js';
import { createVolume, type Volume } from '../lab/volumes.js';
import type { Agent } from './agents.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, instanceDirExists, type LabGuest } from './fixture.js';
import { imageCache, LAB_DISK_IMAGE } from './spawn.js';

/** One sample of a Prometheus text exposition: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
      if (!m) throw new Error(`not a sample line: ${l}`);
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
}
/** The value of the one sample with this name and at least these labels; undefined when there is none. */
function valueOf(all: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = all.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

/** Never converges against 20 MiB/s: 128 MiB dirtied at 60 MB/s. */
const DIRTY = { mib: 128, rateMBs: 60 };

describe('live migration through two ferryd agents', () => {
  let cluster: LabCluster;
  let lab: Lab;
  let a: LabHost;
  let b: LabHost;
  let conductor: TestConductor;
  let agents: Agent[] = [];
  const volumes: Volume[] = [];

  async function useAgents(config: Record<string, unknown> = {}): Promise<void> {
    agents = await cluster.useAgents(config);
  }

  function boot(spec: Parameters<LabCluster['boot']>[0] = {}): Promise<LabGuest> {
    return cluster.boot(spec);
  }

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'e2e' });
    ({ lab, a, b, conductor } = cluster);
  });

  afterEach(async () => {
    await cluster.removeGuests();
  });

  afterAll(async () => {
    // Volumes first: once the lab is gone their loop device numbers may be someone else's.
    await cluster?.removeGuests();
    for (const v of volumes) await v.detach();
    await cluster?.close();
  });

  it('migrates a guest on shared block storage (no local disk) and reports every status', async () => {
    await useAgents();
    const g = await boot();
    const { migrationUuid, migrateData } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    expect(migrateData).toMatchObject({ block_migration: false, is_shared_block_storage: true, is_shared_instance_path: false });
    // The destination told the source which CPU models it can run; the guest's qemu64 is one.
    expect(migrateData.dst_cpu_models?.['x86_64/qemu']).toContain('qemu64');
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'completed']);
    expect(end.memory_total).toBeGreaterThan(0);

    const beat = await lastHeartbeat(b, g.uuid);
    await waitForHeartbeat(b, g.uuid, { after: beat, timeoutMs: 15_000 });
    expect(await domainState(b, g.uuid)).toBe('running');
    expect(await domainState(a, g.uuid)).toBeNull();
    expect(await instanceDirExists(a, g.uuid)).toBe(false);

    for (const e of ['pre', 'post', 'post_dest']) {
      expect(conductor.events(`instance.live_migration_${e}.`)).toEqual(expect.arrayContaining([`instance.live_migration_${e}.start`, `instance.live_migration_${e}.end`]));
    }
    const listed = await conductor.api.listMigrations(conductor.ctx, a.hostname, g.uuid);
    expect(listed.map((m) => [m.uuid, m.status])).toContainEqual([migrationUuid, 'completed']);

    // Prometheus sees it too, on the source's metrics endpoint.
    const metrics = await (await fetch(`http://${a.addr}:${agents[0]!.metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^ferry_migrations_finished_total\{status="completed"\} [1-9]/m);
    expect(metrics).toMatch(/^ferry_migration_downtime_seconds_count [1-9]/m);
    expect(metrics).toMatch(/^ferry_libvirt_connected 1$/m);
  });

  it("/metrics during a migration agrees with libvirt's job stats; after it the migration's series are gone and the totals count it", async () => {
    // Slow, and the figures saved every second, so a scrape and libvirt's own figures can be set side by side.
    await useAgents({ libvirt: { live_migration_bandwidth: 10, live_migration_monitor_interval: 1 } });
    const g = await boot({ dirty: { mib: 32, rateMBs: 1 } });
    const scrape = async () => samples(await (await fetch(`http://${a.addr}:${agents[0]!.metricsPort}/metrics`)).text());
    const before = await scrape();
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    await conductor.waitFor(migrationUuid, (v) => v.status === 'running' && v.memory_processed > 0, 60_000);
    const ours = { migration: migrationUuid, instance_uuid: g.uuid };
    const conn = await openConnection(a.uri);
    try {
      const dom = await conn.lookupByUUID(g.uuid);
      // A scrape, libvirt's figures, a scrape: libvirt's lie between what the two scrapes saw (saved each second).
      const first = await scrape();
      const job = await dom.getJobStats();
      const maxDowntimeMs = await dom.migrateGetMaxDowntime();
      const second = await scrape();
      expect(valueOf(first, 'ferry_migration_status', { ...ours, status: 'running' })).toBe(1);
      expect(valueOf(first, 'ferry_migration_total_bytes', { ...ours, kind: 'memory' })).toBe(job.memory_total);
      const sentFirst = valueOf(first, 'ferry_migration_processed_bytes', { ...ours, kind: 'memory' })!;
      const sentSecond = valueOf(second, 'ferry_migration_processed_bytes', { ...ours, kind: 'memory' })!;
      expect(sentFirst).toBeLessThanOrEqual(job.memory_processed!);
      expect(sentSecond).toBeGreaterThanOrEqual(sentFirst);
      // At most about two seconds of the 10 MiB/s cap between the save the first scrape saw and libvirt's reading.
      expect(job.memory_processed! - sentFirst).toBeLessThanOrEqual(24 * 2 ** 20);
      const iteration = valueOf(first, 'ferry_migration_iteration', ours)!;
      expect(iteration).toBeLessThanOrEqual(job.memory_iteration!);
      expect(iteration).toBeGreaterThanOrEqual(job.memory_iteration! - 1);
      // The allowed downtime ferry set is the one libvirt holds (in one of the two scrapes, should it have just changed).
      expect([valueOf(first, 'ferry_migration_max_downtime_seconds', ours), valueOf(second, 'ferry_migration_max_downtime_seconds', ours)]).toContain(maxDowntimeMs / 1000);
      expect(valueOf(first, 'ferry_migration_elapsed_seconds', ours)).toBeGreaterThan(0);
      expect(valueOf(first, 'ferry_migrations_in_progress', { status: 'running' })).toBe(1);
    } finally {
      await conn.close();
    }
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    const after = await scrape();
    // Per-migration series go with the migration; the totals keep it.
    expect(after.filter((x) => x.labels.migration === migrationUuid)).toEqual([]);
    const total = (all: Sample[], name: string, labels: Record<string, string> = {}) => valueOf(all, name, labels) ?? 0;
    expect(total(after, 'ferry_migrations_finished_total', { status: 'completed' }) - total(before, 'ferry_migrations_finished_total', { status: 'completed' })).toBe(1);
    expect(total(after, 'ferry_migration_downtime_seconds_count') - total(before, 'ferry_migration_downtime_seconds_count')).toBe(1);
    expect(total(after, 'ferry_migration_data_processed_bytes_total', { kind: 'memory' }) - total(before, 'ferry_migration_data_processed_bytes_total', { kind: 'memory' })).toBe(end.memory_processed);
    expect(total(after, 'ferry_migrations_in_progress', { status: 'running' })).toBe(0);
  });

  it('block-migrates the local disk and leaves the volume in place', async () => {
    await useAgents();
    const uuid = randomUUID();
    const volume = await createVolume(lab, 32);
    volumes.push(volume);
    const marker = `m${uuid.slice(0, 6)}`;
    const g = await boot({ uuid, image: LAB_DISK_IMAGE, volumes: [{ dev: 'vdb', path: volume.path, serial: 'vol-e2e' }], diskMarker: marker });

    const { migrationUuid, migrateData } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    expect(migrateData.block_migration).toBe(true);
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    expect(end.disk_total).toBeGreaterThan(0);
    // The volume is never copied: only vda is named to libvirt.
    const started = (await agents[0]!.logs()).find((l) => l.msg === 'migration transfer started' && l.migration === migrationUuid);
    expect(started?.disks).toEqual(['vda']);

    await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    expect(await readDiskHeadOn(b, join(b.instancesPath, uuid, 'disk'))).toContain(`ferry-marker:${marker}`);
    expect(await instanceDirExists(a, g.uuid)).toBe(false);
  });

  it('block-migrates a guest with the config drive ferryd wrote: the drive arrives byte for byte and the guest runs with it there', async () => {
    await useAgents();
    const uuid = randomUUID();
    const g = await boot({ uuid, image: LAB_DISK_IMAGE, configDrive: true });
    // As Nova writes one: iso9660, volume label config-2, openstack/latest/meta_data.json.
    const isoOnA = join(a.hostInstancesDir, uuid, 'disk.config');
    expect((await run('isoinfo', ['-d', '-i', isoOnA])).stdout).toMatch(/^Volume id: config-2$/m);
    const original = await readFile(isoOnA);

    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    const logs = (await agents[0]!.logs()).filter((l) => l.migration === migrationUuid);
    expect(logs.find((l) => l.msg === 'migration transfer started')?.disks).toEqual(['vda']);
    // The drive by upload, as the kernel files of the folder.
    const size = async (image: string) => (await stat(join(imageCache(a), image))).size;
    expect(logs.filter((l) => l.msg === 'read-only disk uploaded to the destination').map((l) => [l.disk, l.bytes])).toEqual([
      ['hdd', original.length],
      [join(a.instancesPath, uuid, 'kernel'), await size('lab-kernel')],
      [join(a.instancesPath, uuid, 'ramdisk'), await size('lab-initrd')],
    ]);
    await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    const isoOnB = join(b.hostInstancesDir, uuid, 'disk.config');
    expect(Buffer.compare(await readFile(isoOnB), original)).toBe(0);
    expect(JSON.parse((await run('isoinfo', ['-R', '-i', isoOnB, '-x', '/openstack/latest/meta_data.json'])).stdout)).toMatchObject({ uuid, name: g.name });
    expect((await b.virsh(['domblklist', uuid])).stdout).toMatch(new RegExp(`hdd\\s+${join(b.instancesPath, uuid, 'disk.config')}`));
    expect(await instanceDirExists(a, g.uuid)).toBe(false);
  });

  /**
   * Nova's layout, as ferryd spawns it: the root disk a qcow2 overlay on the
   * image's base in _base. The image holds a pattern (0xab at 1 MiB), so the
   * base does; the guest writes its marker to the overlay. Both must read
   * back from the destination's disk.
   */
  async function overlayGuest(uuid: string, baseOnDestination: boolean) {
    const image = `base-${uuid.slice(0, 8)}`;
    await run('qemu-img', ['create', '-q', '-f', 'raw', join(imageCache(a), image), '64M']);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 1M 64k', join(imageCache(a), image)]);
    const marker = `o${uuid.slice(0, 6)}`;
    const g = await boot({ uuid, image, diskMarker: marker });
    const baseInside = join(a.instancesPath, '_base', createHash('sha1').update(image).digest('hex'));
    if (baseOnDestination) {
      await b.exec(['mkdir', '-p', join(b.instancesPath, '_base')]);
      await b.exec(['cp', join(a.hostInstancesDir, '_base', basename(baseInside)), baseInside]);
    }
    return { g, marker, disk: join(a.instancesPath, uuid, 'disk'), baseInside };
  }

  it.each([
    ['on both hosts: only the top layer is copied, onto the same base', true, 'top_layer'],
    ['only on the source: the disk is copied whole', false, 'full'],
  ] as const)('block-migrates a disk on a base image %s; base and overlay data read back', async (_what, baseOnDestination, copy) => {
    await useAgents();
    const uuid = randomUUID();
    const { g, marker, disk, baseInside } = await overlayGuest(uuid, baseOnDestination);
    const { migrationUuid, migrateData } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    expect(migrateData).toMatchObject({ block_migration: true, disk_copy: { vda: copy } });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    // Read while the guest runs there (shared lock): the base's pattern, the overlay's marker.
    const read = await b.exec(['qemu-io', '-U', '-r', '-f', 'qcow2', '-c', 'read -P 0xab 1M 64k', disk]);
    expect(read.stdout + read.stderr).not.toMatch(/Pattern verification failed/);
    expect(read.stdout).toMatch(/^read 65536\/65536 bytes/m);
    expect(await readDiskHeadOn(b, join(b.instancesPath, uuid, 'disk'))).toContain(`ferry-marker:${marker}`);
    const info = JSON.parse((await b.exec(['qemu-img', 'info', '-U', '--output=json', disk])).stdout) as { 'backing-filename'?: string };
    expect(info['backing-filename']).toBe(copy === 'top_layer' ? baseInside : undefined);
  });

  it('a rollback at the destination, sent with destroy_disks and no migrate data, leaves a guest on shared storage and its disk alone', async () => {
    await useAgents();
    const uuid = randomUUID();
    const marker = `r${uuid.slice(0, 6)}`;
    const g = await boot({ uuid, image: LAB_DISK_IMAGE, diskMarker: marker });
    const disk = join(a.instancesPath, uuid, 'disk');
    // Shared storage for this instance: B sees A's instance folder at the same path.
    const dir = join(b.instancesPath, uuid);
    await b.exec(['mkdir', '-p', dir]);
    await b.exec(['mount', '--bind', join(a.hostInstancesDir, uuid), dir]);
    try {
      await conductor.api.rollbackLiveMigrationAtDestination(conductor.ctx, b.hostname, g.instance, true, {});
      expect(await readDiskHeadOn(a, disk)).toContain(`ferry-marker:${marker}`);
      expect(await domainState(a, uuid)).toBe('running');
      await waitForHeartbeat(a, uuid, { after: await lastHeartbeat(a, uuid), timeoutMs: 15_000 });
    } finally {
      await b.exec(['umount', dir], { check: false });
      await b.exec(['rmdir', dir], { check: false });
    }
  });

  it('aborts a non-converging guest at the completion timeout; it keeps running on the source', async () => {
    // 256 MiB guest: data_gb = 2, so 4 s/GiB is an 8 s timeout.
    await useAgents({ libvirt: { live_migration_bandwidth: 20, live_migration_completion_timeout: 4, live_migration_timeout_action: 'abort' } });
    const g = await boot({ dirty: DIRTY });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('cancelled');
    expect(end.action_taken).toBe('abort');
    await waitForHeartbeat(a, g.uuid, { after: await lastHeartbeat(a, g.uuid), timeoutMs: 15_000 });
    expect(await domainState(a, g.uuid)).toBe('running');
    expect(await domainState(b, g.uuid)).toBeNull();
    expect(await instanceDirExists(b, g.uuid)).toBe(false);
    expect(conductor.events('instance.live_migration_rollback')).toEqual(expect.arrayContaining(['instance.live_migration_rollback.start', 'instance.live_migration_rollback.end']));
  });

  it('forces completion at the timeout by switching to post-copy', async () => {
    await useAgents({
      libvirt: { live_migration_bandwidth: 20, live_migration_completion_timeout: 4, live_migration_timeout_action: 'force_complete', live_migration_permit_post_copy: true },
    });
    const g = await boot({ dirty: DIRTY });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'running', 'running (post-copy)', 'completed']);
    await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    expect(await domainState(a, g.uuid)).toBeNull();
  });

  it('forces completion at the timeout by pausing the guest when post-copy is not permitted', async () => {
    await useAgents({ libvirt: { live_migration_bandwidth: 20, live_migration_completion_timeout: 4, live_migration_timeout_action: 'force_complete' } });
    const g = await boot({ dirty: DIRTY });
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status).toBe('completed');
    expect(end.action_taken).toBe('force_complete');
    expect(conductor.statuses(migrationUuid)).not.toContain('running (post-copy)');
    await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 20_000 });
    expect(await domainState(b, g.uuid)).toBe('running');
  });

  it('refuses bad destinations, unknown instances and a second migration, touching no guest', async () => {
    await useAgents({ libvirt: { live_migration_bandwidth: 20 } });
    const g = await boot({ dirty: DIRTY });
    const ctx = conductor.ctx;
    const cast = (dest: string, instance: Record<string, unknown>, uuid = randomUUID()) =>
      conductor.api.liveMigration(ctx, a.hostname, { instance, dest, block_migration: false, migrate_data: {}, migration: { uuid } }).then(() => uuid);

    const bad = await cast('foo/?com=/bin/sh', g.instance);
    const badEnd = await conductor.waitForEnd(bad, 10_000);
    expect(badEnd.status).toBe('error');
    expect(badEnd.error).toMatch(/^dest: Invalid characters in hostname '/);

    const ghost = await cast(b.hostname, { uuid: randomUUID() });
    expect((await conductor.waitForEnd(ghost, 10_000)).error).toMatch(/could not be found/);

    // A real migration, slow on purpose, then a second one for the same instance.
    const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
    await conductor.waitForStatus(migrationUuid, 'running');
    const second = await cast(b.hostname, g.instance);
    expect((await conductor.waitForEnd(second, 10_000)).error).toMatch(/already migrating/);
    const list = await conductor.api.listMigrations(ctx, a.hostname, g.uuid);
    expect(list.find((m) => m.uuid === migrationUuid)?.status).toBe('running');
    await conductor.api.liveMigrationAbort(ctx, a.hostname, g.instance, migrationUuid, 'call');
    expect((await conductor.waitForEnd(migrationUuid)).status).toBe('cancelled');
    expect(await domainState(a, g.uuid)).toBe('running');
  });
});
