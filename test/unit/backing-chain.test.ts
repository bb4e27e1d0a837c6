// Block migration of Nova's disk layout: a qcow2 overlay on a base image in
// _base. Only the top layer is copied when the destination has the whole
// chain; otherwise the disks are copied whole into flat images, or the
// migration is refused in the pre-check when whole copies are off.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diskInfo } from '../../src/domain/disks.js';
import { MigrateFlag } from '../../src/libvirt/types.js';
import { instanceArg } from '../../src/nova/objects.js';
import { adminContext } from './fakes/rpc.js';
import { LOGICAL_INSTANCES_PATH, imageInfo, makeImage } from './fakes/storage.js';
import { callDestination, makeCluster, makeGuest, startMigration, statusesOf, waitDone, S, type Cluster, type FerryHost } from './fakes/cluster.js';

const BASE = `${LOGICAL_INSTANCES_PATH}/_base/img-0123`;

let c: Cluster | null = null;
afterEach(async () => {
  await c?.cleanup();
  c = null;
});

async function base(h: FerryHost, size = '64M'): Promise<void> {
  await fs.mkdir(join(h.storage.realPath, '_base'), { recursive: true });
  await makeImage(h.storage.toReal(BASE), 'qcow2', size);
}

async function migrateOverlayGuest(cl: Cluster) {
  const g = await makeGuest(cl, { disks: [{ dev: 'vda', file: 'disk', backing: BASE }] });
  const m = await startMigration(cl, g);
  const r = await waitDone(cl, m.uuid);
  const [, params, flags] = cl.src.conn.callsOf('migrateToURI3')[0]!.args as [string, { destination_xml: string }, number];
  const dstDisk = await imageInfo(cl.dst.storage.toReal(`${cl.dst.storage.instanceDir(g.uuid)}/disk`));
  return { g, r, migrateData: m.migrateData, flags, xml: params.destination_xml, dstDisk };
}

describe('block migration of a disk on a backing image', () => {
  it('the base is on both hosts: only the top layer is copied, onto an overlay of the same base', async () => {
    c = await makeCluster();
    await base(c.src);
    await base(c.dst);
    const { r, migrateData, flags, xml, dstDisk } = await migrateOverlayGuest(c);
    expect(migrateData.disk_copy).toEqual({ vda: 'top_layer' });
    expect(r.status).toBe(S.completed);
    expect(r.settings?.diskCopy).toBe('top_layer');
    expect(flags & MigrateFlag.NON_SHARED_INC).toBe(MigrateFlag.NON_SHARED_INC);
    expect(flags & MigrateFlag.NON_SHARED_DISK).toBe(0);
    expect(dstDisk['backing-filename']).toBe(c.dst.storage.toReal(BASE));
    expect(xml).not.toMatch(/<backingStore\/>/);
  });

  it('the base is only on the source: the disk is copied whole into a flat image, without a backing chain in its XML', async () => {
    c = await makeCluster();
    await base(c.src);
    const { r, migrateData, flags, xml, dstDisk } = await migrateOverlayGuest(c);
    expect(migrateData.disk_copy).toEqual({ vda: 'full' });
    expect(r.status).toBe(S.completed);
    expect(r.settings?.diskCopy).toBe('full');
    expect(flags & MigrateFlag.NON_SHARED_DISK).toBe(MigrateFlag.NON_SHARED_DISK);
    expect(flags & MigrateFlag.NON_SHARED_INC).toBe(0);
    expect(dstDisk['backing-filename']).toBeUndefined();
    expect(dstDisk['virtual-size']).toBe(64 * 2 ** 20);
    expect(xml).toMatch(/<backingStore\/>/);
  });

  it('a base of another size there counts as missing', async () => {
    c = await makeCluster();
    await base(c.src);
    await base(c.dst, '32M');
    const { migrateData, dstDisk } = await migrateOverlayGuest(c);
    expect(migrateData.disk_copy).toEqual({ vda: 'full' });
    expect(dstDisk['backing-filename']).toBeUndefined();
  });

  it('whole copies off on the destination: refused in the pre-check, naming the disk and the base', async () => {
    c = await makeCluster({ dst: { config: { libvirt: { live_migration_allow_full_disk_copy: false } } } });
    await base(c.src);
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk', backing: BASE }] });
    const err = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, instanceArg(g.instance), null, false).catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'MigrationPreCheckError', message: expect.stringContaining(`disk vda needs backing file ${BASE}`) });
    expect(await c.dst.storage.instanceDirExists(g.uuid)).toBe(false);
  });

  it('no check said how (a conductor that skipped it): a disk on a backing image is copied whole', async () => {
    c = await makeCluster();
    await base(c.src);
    await base(c.dst);
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk', backing: BASE }] });
    const { uuid } = await startMigration(c, g, { blockMigration: true, migrateData: { block_migration: true, is_shared_instance_path: false } });
    const r = await waitDone(c, uuid);
    expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
    expect(r.settings?.diskCopy).toBe('full');
  });

  it('a flat disk keeps the top-layer copy it always had', async () => {
    c = await makeCluster();
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    const { uuid, migrateData } = await startMigration(c, g);
    expect(migrateData.disk_copy).toEqual({ vda: 'top_layer' });
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    const [, params, flags] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, { destination_xml: string }, number];
    expect(flags & MigrateFlag.NON_SHARED_INC).toBe(MigrateFlag.NON_SHARED_INC);
    expect(params.destination_xml).not.toMatch(/<backingStore\/>/);
    expect(diskInfo(params.destination_xml)).toHaveLength(1);
  });

  it('pre_live_migration refuses a backing path that is not absolute', async () => {
    c = await makeCluster();
    const g = await makeGuest(c);
    const err = await callDestination(c, 'pre_live_migration', {
      instance: instanceArg(g.instance),
      disk: [{ path: `${LOGICAL_INSTANCES_PATH}/${g.uuid}/disk`, type: 'qcow2', virt_disk_size: 1048576, backing_chain: [{ path: '../../etc/shadow', format: 'raw', virtual_size: 1 }] }],
      migrate_data: { block_migration: true, is_shared_instance_path: false },
    });
    expect(err).toMatchObject({ name: 'InvalidInput', message: expect.stringContaining('is not an absolute path without . or ..') });
    expect(await c.dst.storage.instanceDirExists(g.uuid)).toBe(false);
  });
});
