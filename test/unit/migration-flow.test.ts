// Whole migrations across two fake hosts: pre-checks, the happy paths (shared
// storage, volume-backed, block migration) and the refusals of bad input.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DIRTY_RATE_SAMPLE_SECONDS } from '../../src/domain/dirty-rate.js';
import { diskInfo } from '../../src/domain/disks.js';
import { MigrateFlag, VirErrorCode } from '../../src/libvirt/types.js';
import { instanceArg } from '../../src/nova/objects.js';
import type { LiveMigrateData } from '../../src/nova/migrate-data.js';
import { virError } from './fakes/libvirt.js';
import { adminContext } from './fakes/rpc.js';
import { imageInfo, makeBlockDevice } from './fakes/storage.js';
import { callDestination, leftovers, makeCluster, makeGuest, startMigration, statusesOf, waitDone, waitStatus, S, type Cluster } from './fakes/cluster.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const BASE_FLAGS = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST | MigrateFlag.UNDEFINE_SOURCE;

describe('happy paths', () => {
  it('shared storage: queued, preparing, running, completed; flags 27; URIs from target_connect_addr; nothing copied', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const { uuid, migrateData } = await startMigration(c, g, { migrationId: 41 });
    expect(migrateData).toMatchObject({ is_shared_instance_path: true, is_shared_block_storage: true, block_migration: false });
    const r = await waitDone(c, uuid);

    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
    expect(r.error).toBeNull();
    expect(r.id).toBe(41);
    const [mig] = c.src.conn.callsOf('migrateToURI3', g.uuid);
    expect(mig).toBeDefined();
    const [uri, params, flags] = mig!.args as [string, Record<string, unknown>, number];
    expect(flags).toBe(BASE_FLAGS);
    expect(flags).toBe(27);
    expect(uri).toBe('qemu+tcp://192.0.2.20/system');
    expect(params.migrate_uri).toBe('tcp://192.0.2.20');
    expect(params.migrate_disks).toBeUndefined();
    expect(params.disks_uri).toBeUndefined();
    expect(params.bandwidth).toBe(0);
    expect(params.destination_xml).toBe(params.persistent_xml);
    // Moved: the guest runs on the destination, persistent; the source handle is gone.
    expect(c.dst.conn.domains.get(g.uuid)).toMatchObject({ state: 1, persistent: true });
    expect(c.src.conn.domains.has(g.uuid)).toBe(false);
    expect(r.downtimeMs).toBe(42);
    // That the outcome is acted on as soon as migrateToURI3 returns, not at the next poll: the next test.
    // post_live_migration_at_destination was called; on shared storage the instance folder stays.
    expect(c.bus.sent('post_live_migration_at_destination', c.dst.name)).toHaveLength(1);
    expect(c.bus.sent('rollback_live_migration_at_destination')).toHaveLength(0);
    // The destination counts its side: one incoming migration, completed.
    expect(c.dst.incomingEnds).toEqual(['completed']);
    expect(c.src.incomingEnds).toEqual([]);
    expect(await c.src.storage.instanceDirExists(g.uuid)).toBe(true);
    // The probe file is gone.
    expect((await c.src.storage.entries()).filter((e) => e.startsWith('ferry-probe-'))).toEqual([]);
    expect(c.src.notifier.types()).toEqual(['instance.live_migration_post.start', 'instance.live_migration_post.end']);
    expect(c.dst.notifier.types()).toEqual([
      'instance.live_migration_pre.start',
      'instance.live_migration_pre.end',
      'instance.live_migration_post_dest.start',
      'instance.live_migration_post_dest.end',
    ]);
    // No libvirt call acted on the job.
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3']);
    expect(c.bus.castFailures).toEqual([]);
    // Every host-to-host and conductor message was sent as compute 6.0.
    const compute = c.bus.messages.filter((m) => m.topic.startsWith('compute'));
    expect(compute.length).toBeGreaterThanOrEqual(5);
    expect(compute.every((m) => m.version === '6.0')).toBe(true);
  });

  it('the outcome is acted on as soon as migrateToURI3 returns, not at the next poll: it finishes with no timer firing', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    // Waits on setImmediate and the real clock: setTimeout is stopped below.
    const until = async (cond: () => boolean, what: string) => {
      const deadline = Date.now() + 5000;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setImmediate(r));
      }
    };
    // No timer fires from here on, so the monitor's sleep between polls (500 ms) never ends by itself:
    // a monitor that only noticed the outcome at its next poll would never finish the migration.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let uuid = '';
    try {
      ({ uuid } = await startMigration(c, g));
      await g.dom.whenMigrating();
      await until(() => c.src.conn.callsOf('getJobStats', g.uuid).length > 0 && vi.getTimerCount() > 0, 'the monitor to poll once and sleep');
      expect(c.src.registry.get(uuid)?.status).toBe(S.running);
      g.dom.completeMigration();
      await until(() => c.src.registry.get(uuid)?.status === S.completed, 'the migration to complete without a timer');
      expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
      expect(c.src.registry.get(uuid)?.finishedAt).not.toBeNull();
      expect(c.bus.sent('post_live_migration_at_destination', c.dst.name)).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
    await waitDone(c, uuid);
  });

  it('a request without a version is dispatched as 1.0 and refused by the 6.5 endpoint (oslo)', async () => {
    c = await makeCluster({ sharedStorage: true });
    const err = await c.bus
      .client('conductor')
      .call(adminContext(), { topic: 'compute', server: c.src.name }, 'list_migrations', {})
      .catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'UnsupportedVersion' });
    await expect(c.api.listMigrations(adminContext(), c.src.name)).resolves.toEqual([]);
  });

  it('config-driven flags and params: post-copy, native TLS, parallel connections, bandwidth, scheme', async () => {
    c = await makeCluster({
      sharedStorage: true,
      src: {
        config: {
          libvirt: {
            live_migration_permit_post_copy: true,
            live_migration_permit_auto_converge: true,
            live_migration_with_native_tls: true,
            live_migration_parallel_connections: 4,
            live_migration_bandwidth: 300,
          },
        },
      },
      dst: {},
    });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const { uuid } = await startMigration(c, g);
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.completed);
    const [uri, params, flags] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, Record<string, unknown>, number];
    expect(flags).toBe(BASE_FLAGS | MigrateFlag.POSTCOPY | MigrateFlag.TLS | MigrateFlag.PARALLEL);
    expect(flags & MigrateFlag.AUTO_CONVERGE).toBe(0);
    // No inbound address on the destination: both URIs use its host name, and no migrate_uri.
    expect(uri).toBe('qemu+tcp://compute-b/system');
    expect(params.migrate_uri).toBeUndefined();
    expect(params['parallel.connections']).toBe(4);
    expect(params.bandwidth).toBe(300);
    expect(r.settings).toMatchObject({ postCopyPermitted: true, bandwidthMiBs: 300 });
  });

  /** One migration of a guest libvirt measures dirtying `dirtyMiBs` (null: cannot measure), auto-converge permitted unless `permits` says, at a 30 MiB/s cap; it completes. */
  async function migrateMeasured(policy: 'adaptive' | 'nova', permits: { live_migration_permit_post_copy?: boolean; live_migration_permit_auto_converge?: boolean }, dirtyMiBs: number | null) {
    c = await makeCluster({
      sharedStorage: true,
      src: { config: { libvirt: { convergence_policy: policy, live_migration_permit_auto_converge: true, live_migration_bandwidth: 30, ...permits } } },
      dst: {},
    });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    c.src.conn.domains.get(g.uuid)!.dirtyRateMiBs = dirtyMiBs;
    const { uuid } = await startMigration(c, g);
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.completed);
    const [, params, flags] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, Record<string, unknown>, number];
    return { r, params, flags };
  }

  it.each<[string, 'adaptive' | 'nova', number | null, number, string | null]>([
    ['adaptive, a guest dirtying 5 MiB/s over a 30 MiB/s link: auto-converge', 'adaptive', 5, MigrateFlag.AUTO_CONVERGE, 'auto_converge'],
    ['adaptive, a guest dirtying 20 MiB/s over a 30 MiB/s link: post-copy', 'adaptive', 20, MigrateFlag.POSTCOPY, 'postcopy'],
    ['adaptive, a dirty rate libvirt cannot measure: post-copy, as Nova', 'adaptive', null, MigrateFlag.POSTCOPY, 'postcopy'],
    ['nova: post-copy, nothing measured', 'nova', 5, MigrateFlag.POSTCOPY, null],
  ])('both post-copy and auto-converge permitted, %s', async (_name, policy, dirtyMiBs, armedFlag, preflightArmed) => {
    const { r, flags } = await migrateMeasured(policy, { live_migration_permit_post_copy: true }, dirtyMiBs);
    expect(flags & (MigrateFlag.POSTCOPY | MigrateFlag.AUTO_CONVERGE)).toBe(armedFlag);
    expect(r.settings?.preflight?.armed ?? null).toBe(preflightArmed);
    expect(r.settings?.preflight?.dirtyRateBps ?? null).toBe(policy === 'adaptive' && dirtyMiBs !== null ? dirtyMiBs * 2 ** 20 : null);
    expect(c.src.conn.callsOf('startDirtyRateCalc')).toHaveLength(policy === 'adaptive' ? 1 : 0);
    const [view] = await c.api.listMigrations(adminContext(), c.src.name);
    expect(view!.armed).toBe(armedFlag === MigrateFlag.POSTCOPY ? 'postcopy' : 'auto_converge');
  });

  it.each<[string, 'adaptive' | 'nova', number | null, number | null]>([
    ['adaptive, a guest dirtying 45 MiB/s over a 30 MiB/s link: the throttle starts at 84 %', 'adaptive', 45, 84],
    ['adaptive, a guest dirtying 5 MiB/s: QEMU\'s own start', 'adaptive', 5, null],
    ['adaptive, a dirty rate libvirt cannot measure: QEMU\'s own start', 'adaptive', null, null],
    ['nova: nothing measured, QEMU\'s own start', 'nova', 45, null],
  ])('auto-converge alone permitted, %s', async (_name, policy, dirtyMiBs, start) => {
    const { r, params, flags } = await migrateMeasured(policy, {}, dirtyMiBs);
    expect(flags & (MigrateFlag.POSTCOPY | MigrateFlag.AUTO_CONVERGE)).toBe(MigrateFlag.AUTO_CONVERGE);
    expect(params['auto_converge.initial']).toBe(start ?? undefined);
    expect(c.src.conn.callsOf('startDirtyRateCalc')).toHaveLength(policy === 'adaptive' ? 1 : 0);
    expect(r.settings?.preflight?.armed ?? null).toBe(policy === 'adaptive' ? 'auto_converge' : null);
    const [view] = await c.api.listMigrations(adminContext(), c.src.name);
    expect(view!.throttle_start_percent).toBe(start);
  });

  it.each<[string, 'adaptive' | 'nova', boolean, number | null, 'postcopy' | null]>([
    ['adaptive, post-copy alone: measured, for the switch after the bulk pass', 'adaptive', true, 90, 'postcopy'],
    ['nova, post-copy alone: nothing measured', 'nova', true, null, null],
    ['adaptive, neither permitted: measured, for the verdict; nothing armed', 'adaptive', false, 90, null],
    ['nova, neither permitted: nothing measured', 'nova', false, null, null],
  ])('%s', async (_name, policy, postCopy, measured, armed) => {
    const { r, flags } = await migrateMeasured(policy, { live_migration_permit_post_copy: postCopy, live_migration_permit_auto_converge: false }, 90);
    expect(flags & (MigrateFlag.POSTCOPY | MigrateFlag.AUTO_CONVERGE)).toBe(postCopy ? MigrateFlag.POSTCOPY : 0);
    expect(c.src.conn.callsOf('startDirtyRateCalc')).toHaveLength(measured === null ? 0 : 1);
    expect(r.settings?.preflight?.dirtyRateBps ?? null).toBe(measured === null ? null : measured * 2 ** 20);
    expect(r.settings?.preflight?.armed ?? null).toBe(armed);
  });

  it('the preflight samples while the destination prepares: started before its answer, the transfer after both', async () => {
    c = await makeCluster({
      sharedStorage: true,
      src: { config: { libvirt: { live_migration_permit_auto_converge: true, live_migration_permit_post_copy: true, live_migration_bandwidth: 30 } } },
      dst: {},
    });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    c.src.conn.domains.get(g.uuid)!.dirtyRateMiBs = 5;
    // A destination that takes its time to prepare.
    let askedAt = 0;
    let answeredAt = 0;
    const prepare = c.dst.dest.preLiveMigration.bind(c.dst.dest);
    c.dst.dest.preLiveMigration = async (...args) => {
      askedAt = performance.now();
      await new Promise((r) => setTimeout(r, 600));
      const prepared = await prepare(...args);
      answeredAt = performance.now();
      return prepared;
    };
    const { uuid } = await startMigration(c, g);
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    const [sample] = c.src.conn.callsOf('startDirtyRateCalc');
    const [migrate] = c.src.conn.callsOf('migrateToURI3');
    // The destination was asked within the sample's second, not after it.
    expect(askedAt - sample!.at).toBeLessThan(DIRTY_RATE_SAMPLE_SECONDS * 1000);
    // The sample's second is waited out before the flags are chosen.
    expect(migrate!.at - sample!.at).toBeGreaterThanOrEqual(DIRTY_RATE_SAMPLE_SECONDS * 1000);
    expect(migrate!.at).toBeGreaterThan(answeredAt);
  });

  it.each<[number, boolean]>([
    [9_000_000, false],
    [11_003_000, true],
  ])('live_migration_link_bandwidth becomes bandwidth.avail.switchover only where libvirt takes it (libvirt %i: %s)', async (libVersion, passed) => {
    c = await makeCluster({ sharedStorage: true, src: { config: { libvirt: { live_migration_link_bandwidth: 1000 } } }, dst: {} });
    c.src.conn.libVersion = libVersion;
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const { uuid } = await startMigration(c, g);
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    const params = c.src.conn.callsOf('migrateToURI3')[0]!.args[1] as Record<string, unknown>;
    expect(params['bandwidth.avail.switchover']).toBe(passed ? 1000 : undefined);
  });

  it('volume-backed, no shared instance path: the source instance folder is removed, the volume is rewritten for the destination', async () => {
    c = await makeCluster();
    const devicePath = await makeBlockDevice(c.root);
    if (!devicePath) return; // no way to make a block device here
    const g = await makeGuest(c, { volumes: [{ dev: 'vda', devicePath }] });
    await c.src.storage.createInstanceDir(g.uuid); // console log etc. live here
    const { uuid, migrateData } = await startMigration(c, g);
    expect(migrateData).toMatchObject({ is_shared_instance_path: false, is_shared_block_storage: true, is_volume_backed: true, block_migration: false });
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
    expect(r.error).toBeNull();
    const [, params, flags] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, Record<string, unknown>, number];
    expect(flags).toBe(27);
    expect(diskInfo(params.destination_xml as string).find((d) => d.dev === 'vda')).toMatchObject({ type: 'block', sourcePath: devicePath });
    expect(await c.src.storage.instanceDirExists(g.uuid)).toBe(false);
    // The destination made its folder and keeps it: the guest lives there now.
    expect(await c.dst.storage.instanceDirExists(g.uuid)).toBe(true);
  });

  it('block migration: flag 128, only the local disk in migrate_disks, an empty image of the same format and size on the destination', async () => {
    c = await makeCluster();
    const devicePath = await makeBlockDevice(c.root);
    const volumes = devicePath ? [{ dev: 'vdb', devicePath }] : [];
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk', format: 'qcow2', size: '96M' }], volumes });
    // Hold the migration so the destination image can be inspected while it runs.
    g.dom.behaviour.autoCompleteMs = null;
    const { uuid, migrateData } = await startMigration(c, g);
    expect(migrateData).toMatchObject({ block_migration: true, is_shared_instance_path: false, is_shared_block_storage: false, is_volume_backed: false });
    await g.dom.whenMigrating();
    const [, params, flags] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, Record<string, unknown>, number];
    expect(flags).toBe(BASE_FLAGS | MigrateFlag.NON_SHARED_INC);
    expect(flags & MigrateFlag.NON_SHARED_INC).toBe(128);
    expect(params.migrate_disks).toEqual(['vda']);
    // The disks' mirror to the destination's inbound address, as the memory stream.
    expect(params.migrate_uri).toBe('tcp://192.0.2.20');
    expect(params.disks_uri).toBe('tcp://192.0.2.20');
    const destImage = c.dst.storage.toReal(g.diskPaths[0]!);
    const srcInfo = await imageInfo(c.src.storage.toReal(g.diskPaths[0]!));
    const dstInfo = await imageInfo(destImage);
    expect(dstInfo.format).toBe('qcow2');
    expect(dstInfo['virtual-size']).toBe(srcInfo['virtual-size']);
    expect(dstInfo['virtual-size']).toBe(96 * 1024 * 1024);
    // pre_live_migration got only the local disk.
    const pre = c.bus.sent('pre_live_migration', c.dst.name)[0]!;
    expect((pre.args.disk as Array<{ dev: string }>).map((d) => d.dev)).toEqual(['vda']);
    const r = await waitStatus(c.src, uuid, S.running);
    expect(r.settings?.blockMigration).toBe(true);
    g.dom.completeMigration();
    await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
    expect(await c.src.storage.instanceDirExists(g.uuid)).toBe(false);
  });
});

describe('pre-checks (check_can_live_migrate_destination -> check_can_live_migrate_source)', () => {
  const dstCheck = (cl: Cluster, inst: ReturnType<typeof instanceArg>, block: boolean | null) =>
    cl.api.checkCanLiveMigrateDestination(adminContext(), cl.dst.name, inst, block, false);

  async function probes(cl: Cluster): Promise<string[]> {
    return [...(await cl.src.storage.entries()), ...(await cl.dst.storage.entries())].filter((e) => e.startsWith('ferry-probe-'));
  }

  it('InvalidSharedStorage: no shared storage, no block migration, a local disk; the probe file is removed', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    await expect(dstCheck(c, instanceArg(g.instance), false)).rejects.toMatchObject({ name: 'InvalidSharedStorage' });
    expect(await probes(c)).toEqual([]);
  });

  it('InvalidLocalStorage: block migration of a volume-backed guest, and of a diskless one', async () => {
    c = await makeCluster();
    const devicePath = await makeBlockDevice(c.root);
    const volumeBacked = await makeGuest(c, { volumes: devicePath ? [{ dev: 'vda', devicePath }] : [] });
    await expect(dstCheck(c, instanceArg(volumeBacked.instance), true)).rejects.toMatchObject({ name: 'InvalidLocalStorage' });
    const diskless = await makeGuest(c);
    await expect(dstCheck(c, instanceArg(diskless.instance), true)).rejects.toMatchObject({ name: 'InvalidLocalStorage' });
    expect(await probes(c)).toEqual([]);
  });

  it('InvalidLocalStorage: block migration on shared storage', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    await expect(dstCheck(c, instanceArg(g.instance), true)).rejects.toMatchObject({ name: 'InvalidLocalStorage' });
    expect(await probes(c)).toEqual([]);
  });

  it('MigrationPreCheckError when the destination cannot run the guest CPU model', async () => {
    c = await makeCluster();
    const g = await makeGuest(c);
    const dom = c.src.conn.domains.get(g.uuid)!;
    dom.xml = dom.xml.replace('</domain>', "<cpu mode='custom' match='exact'><model fallback='forbid'>Skylake-Server</model></cpu></domain>");
    await expect(dstCheck(c, instanceArg(g.instance), false)).rejects.toMatchObject({ name: 'MigrationPreCheckError', message: expect.stringContaining('CPU model Skylake-Server') });
    // The same guest on a model the destination lists passes the check.
    dom.xml = dom.xml.replace('Skylake-Server', 'qemu64');
    await expect(dstCheck(c, instanceArg(g.instance), false)).resolves.toMatchObject({ is_shared_block_storage: true });
    expect(await probes(c)).toEqual([]);
  });

  it('wraps other source failures in MigrationPreCheckError; keeps InstanceNotFound', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.getXMLDesc = async () => {
      throw virError(VirErrorCode.INTERNAL_ERROR, 'internal error: qemu unexpectedly closed the monitor');
    };
    const err = await dstCheck(c, instanceArg(g.instance), null).catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'MigrationPreCheckError' });
    expect((err as Error).message).toContain('qemu unexpectedly closed the monitor');
    const ghost = { ...instanceArg(g.instance), uuid: '00000000-0000-4000-8000-000000000001' };
    await expect(dstCheck(c, ghost, null)).rejects.toMatchObject({ name: 'InstanceNotFound' });
    expect(await probes(c)).toEqual([]);
  });

  it('a disk too large for the destination is refused', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk', format: 'raw', size: '1T' }] });
    // raw 1 TiB sparse: virtual size counts unless disk_over_commit.
    const err = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, instanceArg(g.instance), true, false).catch((e: Error) => e);
    const free = (await c.dst.storage.freeBytes()) / 2 ** 20;
    if (free >= 2 ** 20) return; // a destination with > 1 TiB free accepts it
    expect(err).toMatchObject({ name: 'MigrationPreCheckError' });
    expect((err as Error).message).toMatch(/Disk of instance is too large/);
    // With over-commit only the allocated bytes count.
    await expect(c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, instanceArg(g.instance), true, true)).resolves.toMatchObject({ block_migration: true });
  });

  it('a destination that cannot run the guest type is refused', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    c.dst.conn.capabilities = `<capabilities><guest><os_type>hvm</os_type><arch name='aarch64'><domain type='kvm'/></arch></guest></capabilities>`;
    await expect(dstCheck(c, instanceArg(g.instance), true)).rejects.toMatchObject({ name: 'MigrationPreCheckError' });
  });
});

describe('bad input', () => {
  it("dest 'foo/?com=/bin/sh': InvalidHostname, a record in status error, no libvirt calls", async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const migrationUuid = '6a3f6b0e-1111-4222-8333-444455556666';
    c.src.conn.calls.length = 0;
    const err = await c.bus
      .client('conductor')
      .call(adminContext(), { topic: 'compute-alt', server: c.src.name, version: '6.0' }, 'live_migration', {
        instance: instanceArg(g.instance),
        dest: 'foo/?com=/bin/sh',
        block_migration: false,
        migrate_data: {},
        migration: { id: 9, uuid: migrationUuid },
      })
      .catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'InvalidHostname' });
    const r = c.src.registry.get(migrationUuid);
    expect(r).toMatchObject({ status: S.error, id: 9, destCompute: 'foo/?com=/bin/sh' });
    expect(r?.error).toContain("dest: Invalid characters in hostname '");
    expect(statusesOf(c.src, migrationUuid)).toEqual([S.error]);
    expect(c.src.conn.calls).toEqual([]);
    expect(c.dst.conn.calls).toEqual([]);
  });

  it('unknown instance: InstanceNotFound and a record in status error', async () => {
    c = await makeCluster({ sharedStorage: true });
    const migrationUuid = '6a3f6b0e-1111-4222-8333-444455556667';
    const err = await c.bus
      .client('conductor')
      .call(adminContext(), { topic: 'compute-alt', server: c.src.name, version: '6.0' }, 'live_migration', {
        instance: { uuid: '00000000-0000-4000-8000-00000000dead', host: c.src.name },
        dest: c.dst.name,
        migrate_data: {},
        migration: { id: 10, uuid: migrationUuid },
      })
      .catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'InstanceNotFound' });
    expect(c.src.registry.get(migrationUuid)?.status).toBe(S.error);
    expect(c.bus.sent('pre_live_migration')).toHaveLength(0);
  });

  it('a second migration of an instance already migrating is refused; the first continues unaffected', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const first = await startMigration(c, g);
    await waitStatus(c.src, first.uuid, S.running);
    const second = await startMigration(c, g, { migrateData: first.migrateData });
    expect(c.src.registry.get(second.uuid)).toMatchObject({ status: S.error });
    expect(c.src.registry.get(second.uuid)?.error).toMatch(/already migrating/);
    expect(c.src.registry.get(first.uuid)?.status).toBe(S.running);
    g.dom.completeMigration();
    await waitDone(c, first.uuid);
    expect(statusesOf(c.src, first.uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
    expect(statusesOf(c.src, second.uuid)).toEqual([S.error]);
    expect(c.src.conn.callsOf('migrateToURI3')).toHaveLength(1);
  });

  it('two live_migration casts for one instance arriving together: only one runs', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const ctx = adminContext();
    const migrateData: LiveMigrateData = await c.api.checkCanLiveMigrateDestination(ctx, c.dst.name, instanceArg(g.instance), null, false);
    const ids = ['7b3f6b0e-1111-4222-8333-000000000001', '7b3f6b0e-1111-4222-8333-000000000002'];
    await Promise.all(
      ids.map((uuid, i) =>
        c.api.liveMigration(ctx, c.src.name, { instance: instanceArg(g.instance), dest: c.dst.name, block_migration: null, migrate_data: migrateData, migration: { id: 100 + i, uuid } }),
      ),
    );
    await c.bus.idle();
    const statuses = ids.map((u) => c.src.registry.get(u)?.status);
    expect(statuses.filter((s) => s === S.error)).toHaveLength(1);
    await g.dom.whenMigrating();
    g.dom.completeMigration();
    const winner = ids.find((u) => c.src.registry.get(u)?.status !== S.error)!;
    await waitDone(c, winner);
    expect(c.src.registry.get(winner)?.status).toBe(S.completed);
    expect(c.bus.sent('pre_live_migration')).toHaveLength(1);
  });

  it.each([
    [{ timeout_seconds: -1 }, 'args.timeout_seconds'],
    [{ timeout_seconds: 1.5 }, 'args.timeout_seconds'],
    [{ on_timeout: 'explode' }, 'args.on_timeout'],
    [{ dest: 7 }, 'args.dest'],
    [{ migration: { uuid: 'not-a-uuid' } }, 'args.migration.uuid'],
    [{ migrate_data: { target_connect_addr: '1.2.3.4/x' } }, 'args.migrate_data.target_connect_addr'],
  ])('schema failure %j names the field', async (bad, field) => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const err = await c.bus
      .client('conductor')
      .call(adminContext(), { topic: 'compute-alt', server: c.src.name, version: '6.0' }, 'live_migration', {
        instance: instanceArg(g.instance),
        dest: c.dst.name,
        migrate_data: {},
        migration: { id: 1, uuid: '6a3f6b0e-1111-4222-8333-444455556668' },
        ...bad,
      })
      .catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'InvalidInput' });
    expect((err as Error).message).toContain(field);
    expect(c.src.registry.list()).toEqual([]);
    expect(c.src.conn.calls).toEqual([]);
  });

  it('pre_live_migration refuses disk paths outside the instance folder', async () => {
    c = await makeCluster();
    const g = await makeGuest(c);
    const err = await callDestination(c, 'pre_live_migration', {
      instance: instanceArg(g.instance),
      disk: JSON.stringify([{ path: `/var/lib/nova/instances/${g.uuid}/../../../../etc/passwd`, type: 'raw', virt_disk_size: 1, disk_size: 1, dev: 'vda' }]),
      migrate_data: { block_migration: true, is_shared_instance_path: false },
    });
    expect(err).toMatchObject({ name: 'InvalidInput' });
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
  });

  it('accepts Nova-object-wrapped arguments (nova_object.data)', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const wrapped = { 'nova_object.name': 'Instance', 'nova_object.namespace': 'nova', 'nova_object.version': '2.8', 'nova_object.data': instanceArg(g.instance) };
    const data = await c.bus
      .client('conductor')
      .call<LiveMigrateData>(adminContext(), { topic: 'compute', server: c.dst.name, version: '6.0' }, 'check_can_live_migrate_destination', { instance: wrapped, block_migration: null, disk_over_commit: null });
    expect(data.is_shared_instance_path).toBe(true);
    const list = await c.api.listMigrations(adminContext(), c.src.name);
    expect(list).toEqual([]);
  });
});

describe('failures during the transfer', () => {
  it('libvirt fails the migration: failed, destination rolled back, guest still running on the source', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const { uuid } = await startMigration(c, g);
    await waitStatus(c.src, uuid, S.running);
    await g.dom.whenMigrating();
    g.dom.failMigration();
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.failed]);
    expect(r.error).toMatch(/unexpectedly failed/);
    expect(c.bus.sent('rollback_live_migration_at_destination', c.dst.name)).toHaveLength(1);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    expect(c.src.conn.domains.get(g.uuid)?.state).toBe(1);
    expect(c.src.conn.actions(g.uuid)).toEqual(['migrateToURI3']);
    expect(c.src.notifier.types()).toEqual(['instance.live_migration_rollback.start', 'instance.live_migration_rollback.end']);
    expect(c.dst.notifier.types()).toContain('instance.live_migration_rollback_dest.end');
  });

  it('the source domain stopped mid-migration (Nova reads that as completed): the source folder is kept, error, since the destination shows no guest', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.behaviour.autoCompleteMs = null;
    const { uuid } = await startMigration(c, g);
    await waitStatus(c.src, uuid, S.running);
    await g.dom.whenMigrating();
    // Someone destroys the source guest; the migration fails with it. Inactive here looks like "moved".
    await g.dom.destroy();
    g.dom.failMigration();
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.error);
    expect(r.error).toMatch(/does not show the guest running \(absent\); its folder here is kept/);
    // The guest's disk is still here, the only copy there is.
    expect(await c.src.storage.instanceDirExists(g.uuid)).toBe(true);
    await fs.access(c.src.storage.toReal(g.diskPaths[0]!));
  });

  it('pre_live_migration fails on the destination (folder already there): failed, no transfer', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    await c.dst.storage.createInstanceDir(g.uuid);
    await fs.writeFile(join(c.dst.storage.realPath, g.uuid, 'marker'), 'x');
    const { uuid } = await startMigration(c, g);
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.failed]);
    expect(r.error).toMatch(/already exists/);
    expect(c.src.conn.callsOf('migrateToURI3')).toHaveLength(0);
    expect(c.dst.notifier.types()).toContain('instance.live_migration_pre.error');
  });
});

describe("the destination's reply is not trusted", () => {
  it.each(['127.0.0.22/system?command=/bin/sh&x=', 'root@evil', 'dst;touch /tmp/pwned'])(
    'a target_connect_addr of %j is refused before libvirt is called; the guest stays, the destination is rolled back',
    async (hostile) => {
      c = await makeCluster({ sharedStorage: false });
      const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
      const real = c.dst.dest.preLiveMigration.bind(c.dst.dest);
      vi.spyOn(c.dst.dest, 'preLiveMigration').mockImplementation(async (...args) => ({ ...(await real(...args)), target_connect_addr: hostile }));
      const { uuid } = await startMigration(c, g, { blockMigration: true });
      const r = await waitDone(c, uuid);
      expect(r.error).toContain(`target_connect_addr in ${c.dst.name}'s pre_live_migration reply: '${hostile}' is not an IP address or host name`);
      expect(r.status).toBe(S.failed);
      expect(c.src.conn.callsOf('migrateToURI3', g.uuid)).toEqual([]);
      expect(c.src.conn.domains.get(g.uuid)?.active).toBe(true);
      expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    },
  );
  it.each([
    ['serial_listen_addr', '0.0.0.0"/><evil'],
    ['graphics_listen_addr_vnc', '10.0.0.1 -object x'],
    ['graphics_listen_addr_spice', '::1/64'],
  ])('a %s of %j, bound for the domain XML, is refused the same way', async (field, hostile) => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const real = c.dst.dest.preLiveMigration.bind(c.dst.dest);
    vi.spyOn(c.dst.dest, 'preLiveMigration').mockImplementation(async (...args) => ({ ...(await real(...args)), [field]: hostile }));
    const { uuid } = await startMigration(c, g, { blockMigration: true });
    const r = await waitDone(c, uuid);
    expect(r.error).toContain(`${field} in ${c.dst.name}'s pre_live_migration reply: '${hostile}' is not an IP address or host name`);
    expect(r.status).toBe(S.failed);
    expect(c.src.conn.callsOf('migrateToURI3', g.uuid)).toEqual([]);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
  });
  it.each<[string, unknown]>([
    ['a port in a string', ['10000"/><evil']],
    ['port 0', [0]],
    ['not a list', 10000],
  ])('serial_listen_ports with %s, bound for the domain XML, is refused the same way', async (_name, hostile) => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const real = c.dst.dest.preLiveMigration.bind(c.dst.dest);
    vi.spyOn(c.dst.dest, 'preLiveMigration').mockImplementation(async (...args) => ({ ...(await real(...args)), serial_listen_ports: hostile as number[] }));
    const { uuid } = await startMigration(c, g, { blockMigration: true });
    const r = await waitDone(c, uuid);
    expect(r.error).toContain(`serial_listen_ports in ${c.dst.name}'s pre_live_migration reply: expected a list of TCP ports`);
    expect(r.status).toBe(S.failed);
    expect(c.src.conn.callsOf('migrateToURI3', g.uuid)).toEqual([]);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
  });
});
