// A guest's life through ferryd on real hosts: spawned from each host's image
// cache, rescued (its console shows it booted the rescue image, its own disk
// second), live-migrated while rescued, and unrescued on the destination
// from its record alone (the console shows the original boot, its disk's data
// intact). And the refusals: a host without supports_live_migrate_rescued,
// an unrescue while the guest migrates.

import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { TestConductor } from '../conductor/conductor.js';
import { waitForConsole } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { describeLab } from '../lab/requires.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, removeGuest } from './fixture.js';
import { fillImageCache, instanceRecord } from './spawn.js';

const MARK = 'orig-disk';
const RESCUE_MARK = 'rescue-disk';

describeLab('guests from their record: spawn, rescue, migrate rescued, unrescue', () => {
  let cluster: LabCluster;
  let a: LabHost;
  let b: LabHost;
  let conductor: TestConductor;
  const spawned: string[] = [];
  const record = (uuid: string, host: LabHost, vmState = 'active') => instanceRecord(uuid, host, { image: 'root-img', cmdline: 'console=ttyS0 quiet ferry.disk_check=1', vmState });

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'rescue', addrBase: 210 });
    ({ a, b, conductor } = cluster);
    // The rescue boot prints both disks: vda the rescue image, vdb the guest's own.
    const cache = {
      'root-img': { marker: MARK },
      'rescue-img': { marker: RESCUE_MARK, properties: { kernel_id: 'lab-kernel', ramdisk_id: 'lab-initrd', os_command_line: 'console=ttyS0 quiet ferry.disk_check=1 ferry.vol_check=1' } },
    };
    await fillImageCache(a, cache);
    await fillImageCache(b, cache);
    await cluster.useAgents({ libvirt: { live_migration_bandwidth: 50 } });
  });
  afterEach(async () => {
    // terminate_instance where the guest runs, as the conductor would; virsh for what a failed test left.
    for (const uuid of spawned.splice(0)) {
      for (const h of [a, b]) {
        if ((await domainState(h, uuid)) !== null) await conductor.compute(h.hostname, 'terminate_instance', { instance: record(uuid, h) }).catch(() => undefined);
        await removeGuest(h, uuid);
      }
    }
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function spawn(): Promise<string> {
    const uuid = randomUUID();
    spawned.push(uuid);
    await conductor.compute(a.hostname, 'build_and_run_instance', { instance: record(uuid, a), image: { id: 'root-img' } });
    await waitForConsole(a, uuid, new RegExp(`^ferry-disk ferry-marker:${MARK}$`, 'm'), { timeoutMs: 90_000 });
    return uuid;
  }

  it('spawned, rescued, migrated while rescued, unrescued on the destination: the original boot, its disk intact', async () => {
    const uuid = await spawn();
    await conductor.compute(a.hostname, 'rescue_instance', { instance: record(uuid, a), rescue_password: 'unused', rescue_image_ref: 'rescue-img', clean_shutdown: false });
    // Booted from the rescue image, the guest's own disk second.
    await waitForConsole(a, uuid, new RegExp(`^ferry-disk ferry-marker:${RESCUE_MARK}$`, 'm'), { timeoutMs: 90_000 });
    await waitForConsole(a, uuid, new RegExp(`^ferry-vol ferry-marker:${MARK}$`, 'm'), { timeoutMs: 30_000 });

    const { migrationUuid, migrateData } = await conductor.migrate({ instance: record(uuid, a, 'rescued'), source: a.hostname, dest: b.hostname, blockMigration: null });
    expect(migrateData).toMatchObject({ dst_supports_live_migrate_rescued: true, src_supports_live_migrate_rescued: true, instance_rescued: true, block_migration: true });
    const end = await conductor.waitForEnd(migrationUuid);
    expect(end.status, end.error ?? '').toBe('completed');
    expect(await domainState(a, uuid)).toBeNull();
    // Still rescued over there: the rescue image on vda.
    await waitForConsole(b, uuid, new RegExp(`^ferry-disk ferry-marker:${RESCUE_MARK}$`, 'm'), { timeoutMs: 30_000 });

    await conductor.compute(b.hostname, 'unrescue_instance', { instance: record(uuid, b, 'rescued') });
    await waitForConsole(b, uuid, new RegExp(`^ferry-disk ferry-marker:${MARK}$`, 'm'), { timeoutMs: 90_000 });
    expect(await domainState(b, uuid)).toBe('running');
    const xml = (await b.virsh(['dumpxml', uuid])).stdout;
    expect(xml).not.toContain('disk.rescue');
    // The rescue files are gone; the guest's own disk and kernel files came with the migration.
    expect((await readdir(join(b.hostInstancesDir, uuid))).sort()).toEqual(['console.log', 'disk', 'kernel', 'ramdisk']);
    // Terminated through ferryd: the guest and its folder gone.
    spawned.splice(spawned.indexOf(uuid), 1);
    await conductor.compute(b.hostname, 'terminate_instance', { instance: record(uuid, b) });
    expect(await domainState(b, uuid)).toBeNull();
    await expect(readdir(join(b.hostInstancesDir, uuid))).rejects.toThrow(/ENOENT/);
  });

  it('a destination without supports_live_migrate_rescued: the check fails naming it; an unrescue while the guest migrates is refused', async () => {
    const uuid = await spawn();
    await conductor.compute(a.hostname, 'rescue_instance', { instance: record(uuid, a), rescue_image_ref: 'rescue-img', clean_shutdown: false });
    await waitForConsole(a, uuid, new RegExp(`^ferry-disk ferry-marker:${RESCUE_MARK}$`, 'm'), { timeoutMs: 90_000 });

    await cluster.useAgents({ libvirt: { live_migration_bandwidth: 5 } }, { b: { compute: { live_migrate_rescued: false } } });
    const refused = await conductor.migrate({ instance: record(uuid, a, 'rescued'), source: a.hostname, dest: b.hostname, blockMigration: null }).catch((e: Error) => e);
    expect((refused as Error).name).toBe('MigrationPreCheckError');
    expect((refused as Error).message).toContain(`destination host ${b.hostname} does not support live migration of rescued instances`);

    // With both willing, at 5 MiB/s, the migration runs long enough to refuse an unrescue meanwhile.
    await cluster.useAgents({ libvirt: { live_migration_bandwidth: 5 } });
    const { migrationUuid } = await conductor.migrate({ instance: record(uuid, a, 'rescued'), source: a.hostname, dest: b.hostname, blockMigration: null });
    await conductor.waitFor(migrationUuid, (v) => v.status === 'running');
    const during = await conductor.compute(a.hostname, 'unrescue_instance', { instance: record(uuid, a, 'rescued') }).catch((e: Error) => e);
    expect((during as Error).name).toBe('InstanceInvalidState');
    expect((during as Error).message).toContain('Cannot unrescue while the instance is in this state');
    expect((await conductor.waitForEnd(migrationUuid)).status).toBe('completed');
  });
});
