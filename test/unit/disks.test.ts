import { describe, expect, it } from 'vitest';
import { diskInfo, selectMigrateDisks } from '../../src/domain/disks.js';

// The disks of Nova's tunnelled disk-selection test.
const XML = `<domain type='kvm'>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instance/123/disk.root'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/nova/instance/123/disk.shared'/>
      <target dev='vdb' bus='virtio'/>
      <shareable/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/nova/instance/123/disk.config'/>
      <target dev='vdc' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/mapper/somevol'/>
      <target dev='vdd' bus='virtio'/>
      <serial>5ae8b6b6-vol</serial>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/vol'>
        <host name='10.0.0.1' port='6789'/>
      </source>
      <target dev='vde' bus='virtio'/>
    </disk>
  </devices>
</domain>`;

// Nova's selective test: vdb and vdc are plain local disks there.
const SELECTIVE = XML.replace('      <shareable/>\n', '').replace('      <readonly/>\n', '');

describe('diskInfo', () => {
  it('lists every disk', () => {
    const d = diskInfo(XML);
    expect(d.map((x) => x.dev)).toEqual(['vda', 'vdb', 'vdc', 'vdd', 'vde']);
    expect(d[0]).toEqual({
      dev: 'vda', bus: 'virtio', device: 'disk', type: 'file', sourcePath: '/var/lib/nova/instance/123/disk.root',
      format: 'qcow2', readonly: false, shareable: false, serial: null,
    });
    expect(d[1]!.shareable).toBe(true);
    expect(d[2]!.readonly).toBe(true);
    expect(d[3]).toMatchObject({ type: 'block', sourcePath: '/dev/mapper/somevol', serial: '5ae8b6b6-vol', format: 'raw' });
    expect(d[4]).toMatchObject({ type: 'network', sourcePath: 'pool/vol' });
  });
  it('a cdrom without media has no source', () => {
    const d = diskInfo(`<domain><devices><disk type='file' device='cdrom'><target dev='hda' bus='ide'/><readonly/></disk></devices></domain>`);
    expect(d[0]).toMatchObject({ dev: 'hda', device: 'cdrom', sourcePath: null, format: null, readonly: true });
  });
  it('reads a domain with namespaced metadata', () => {
    const xml = `<domain type='kvm'><metadata><nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1"><nova:name>x</nova:name></nova:instance></metadata>
  <devices><disk type='file' device='disk'><source file='/d'/><target dev='vda'/></disk></devices></domain>`;
    expect(diskInfo(xml).map((d) => [d.dev, d.sourcePath])).toEqual([['vda', '/d']]);
  });
  it('no devices -> empty', () => {
    expect(diskInfo(`<domain type='kvm'><name>x</name></domain>`)).toEqual([]);
  });
});

describe('selectMigrateDisks (Nova _live_migration_copy_disk_paths)', () => {
  it('tunnelled / no volumes: vda (file) and vdd (block)', () => {
    expect(selectMigrateDisks(XML, [])).toEqual({
      paths: ['/var/lib/nova/instance/123/disk.root', '/dev/mapper/somevol'],
      devs: ['vda', 'vdd'],
    });
  });
  it('with volume /dev/vdd: the volume is excluded', () => {
    expect(selectMigrateDisks(XML, ['/dev/vdd'])).toEqual({ paths: ['/var/lib/nova/instance/123/disk.root'], devs: ['vda'] });
    expect(selectMigrateDisks(XML, ['vdd']).devs).toEqual(['vda']);
  });
  it('selective: local vda, vdb, vdc with volume /dev/vdd', () => {
    expect(selectMigrateDisks(SELECTIVE, ['/dev/vdd'])).toEqual({
      paths: ['/var/lib/nova/instance/123/disk.root', '/var/lib/nova/instance/123/disk.shared', '/var/lib/nova/instance/123/disk.config'],
      devs: ['vda', 'vdb', 'vdc'],
    });
  });
  it('skips a source-less disk', () => {
    const xml = `<domain><devices><disk type='file' device='cdrom'><target dev='hda'/></disk></devices></domain>`;
    expect(selectMigrateDisks(xml, [])).toEqual({ paths: [], devs: [] });
  });
});
