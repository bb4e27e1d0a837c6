// Read-only local disks (issue 10): libvirt will not block-migrate an iso9660
// config drive, so the source uploads it through the destination's libvirtd
// into the empty file pre_live_migration made, before the transfer starts.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { selectMigrateDisks, selectReadOnlyDisks } from '../../src/domain/disks.js';
import { dirPoolXml } from '../../src/domain/volume-upload.js';
import { guestXml } from './fakes/libvirt.js';
import { leftovers, makeCluster, makeGuest, startMigration, statusesOf, waitDone, S, type Cluster } from './fakes/cluster.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const CONFIG_DRIVE = randomBytes(700 * 1024 + 123); // more than one 256 KiB chunk, not a multiple of it
const UPLOAD = new Set(['storagePoolLookupByName', 'storagePoolCreateXML', 'storageVolLookupByPath', 'newStream', 'storageVolUpload', 'storagePoolDestroy', 'close']);

describe('read-only disks: selection', () => {
  const xml = guestXml({
    uuid: '00000000-0000-0000-0000-000000000001',
    name: 'g',
    disks: [
      { dev: 'vda', path: '/i/disk' },
      { dev: 'sda', path: '/i/disk.config', cdrom: true },
    ],
    volumes: [{ dev: 'vdb', path: '/dev/sdx', serial: 'v1' }],
  });
  it('block migration copies the writable local disk; the config drive goes by upload; volumes by neither', () => {
    expect(selectMigrateDisks(xml, ['/dev/vdb'])).toEqual({ paths: ['/i/disk'], devs: ['vda'] });
    expect(selectReadOnlyDisks(xml, ['/dev/vdb'])).toEqual({ paths: ['/i/disk.config'], devs: ['sda'] });
  });
  it('the upload pool is a dir pool over the folder, names escaped', () => {
    expect(dirPoolXml('ferry-upload-1', '/var/lib/nova/instances/a&b')).toBe(
      '<pool type="dir"><name>ferry-upload-1</name><target><path>/var/lib/nova/instances/a&amp;b</path></target></pool>',
    );
  });
});

describe('read-only disks: block migration', () => {
  it('the config drive arrives byte for byte, uploaded before the transfer through a pool that is gone after', async () => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }], configDrive: CONFIG_DRIVE });
    const m = await startMigration(c, g, { blockMigration: true });
    const r = await waitDone(c, m.uuid);
    expect(r.status).toBe(S.completed);
    const path = `${c.dst.storage.instanceDir(g.uuid)}/disk.config`;
    expect(Buffer.compare(await fs.readFile(c.dst.storage.toReal(path)), CONFIG_DRIVE)).toBe(0);

    const dst = c.dst.conn.calls.filter((x) => UPLOAD.has(x.method));
    expect(dst.map((x) => x.method)).toEqual(['storagePoolLookupByName', 'storagePoolCreateXML', 'storageVolLookupByPath', 'newStream', 'storageVolUpload', 'storagePoolDestroy', 'close']);
    expect(dst[1]!.args[0]).toContain(`<path>${c.dst.storage.instanceDir(g.uuid)}</path>`);
    expect(dst[4]!.args).toEqual([path, 0, CONFIG_DRIVE.length]);
    expect(c.dst.conn.activePools.size).toBe(0);
    // Uploaded first, then migrated without it: libvirt would refuse a read-only disk in migrate_disks.
    const [migrate] = c.src.conn.callsOf('migrateToURI3', g.uuid);
    expect(migrate!.at).toBeGreaterThan(dst[5]!.at);
    expect((migrate!.args[1] as { migrate_disks?: string[] }).migrate_disks).toEqual(['vda']);
  });

  it('a failed upload fails the migration before the transfer: the destination folder is removed, the guest stays', async () => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }], configDrive: CONFIG_DRIVE });
    // Someone else's pool over the instance folder there: libvirt refuses a second one.
    c.dst.conn.activePools.set('operators-pool', c.dst.storage.instanceDir(g.uuid));
    const m = await startMigration(c, g, { blockMigration: true });
    const r = await waitDone(c, m.uuid);
    expect(r.status).toBe(S.failed);
    expect(r.error).toContain('Storage source conflict');
    expect(statusesOf(c.src, m.uuid)).toEqual([S.queued, S.preparing, S.failed]);
    expect(c.src.conn.callsOf('migrateToURI3', g.uuid)).toEqual([]);
    expect(await leftovers(c.dst, g.uuid)).toEqual({ domain: false, dir: false });
    expect(c.src.conn.domains.get(g.uuid)?.active).toBe(true);
  });

  it('takes libvirt short sends in its stride, and destroys the upload pool an interrupted attempt left behind', async () => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }], configDrive: CONFIG_DRIVE });
    c.dst.conn.streamSendMax = 100_000;
    c.dst.conn.activePools.set(`ferry-upload-${g.uuid}`, '/somewhere/left');
    const m = await startMigration(c, g, { blockMigration: true });
    expect((await waitDone(c, m.uuid)).status).toBe(S.completed);
    const path = `${c.dst.storage.instanceDir(g.uuid)}/disk.config`;
    expect(Buffer.compare(await fs.readFile(c.dst.storage.toReal(path)), CONFIG_DRIVE)).toBe(0);
    expect(c.dst.conn.calls.filter((x) => UPLOAD.has(x.method)).map((x) => x.method).slice(0, 3)).toEqual(['storagePoolLookupByName', 'storagePoolDestroy', 'storagePoolCreateXML']);
    expect(c.dst.conn.activePools.size).toBe(0);
  });

  it('a read-only disk outside the instance folder (a shared ISO library) is left as it is, not uploaded', async () => {
    c = await makeCluster({ sharedStorage: false });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }] });
    g.dom.xml = g.dom.xml.replace('</devices>', `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/srv/isos/tools.iso'/><target dev='sdb' bus='sata'/><readonly/></disk></devices>`);
    const m = await startMigration(c, g, { blockMigration: true });
    expect((await waitDone(c, m.uuid)).status).toBe(S.completed);
    expect(c.dst.conn.calls.map((x) => x.method)).not.toContain('storageVolUpload');
  });

  it('on shared storage nothing is uploaded: the config drive is already there', async () => {
    c = await makeCluster({ sharedStorage: true });
    const g = await makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }], configDrive: CONFIG_DRIVE });
    const m = await startMigration(c, g);
    expect((await waitDone(c, m.uuid)).status).toBe(S.completed);
    expect(c.dst.conn.calls.map((x) => x.method)).not.toContain('storageVolUpload');
  });
});
