import { describe, expect, it } from 'vitest';
import { destinationXml, graphicsListenAddrs } from '../../src/domain/destination-xml.js';

describe('graphicsListenAddrs (Nova test_migration)', () => {
  it('both', () => expect(graphicsListenAddrs({ vnc: '127.0.0.1', spice: '127.0.0.2' })).toEqual({ vnc: '127.0.0.1', spice: '127.0.0.2' }));
  it('neither -> null', () => expect(graphicsListenAddrs({})).toBeNull());
  it('spice only', () => expect(graphicsListenAddrs({ spice: '127.0.0.2' })).toEqual({ vnc: null, spice: '127.0.0.2' }));
  it('vnc only', () => expect(graphicsListenAddrs({ vnc: '127.0.0.1' })).toEqual({ vnc: '127.0.0.1', spice: null }));
});

const XML = `<domain type='kvm' id='7'>
  <name>instance-00000001</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/nova/instances/u/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.src-lun-1'/>
      <target dev='vdb' bus='virtio'/>
      <serial>vol-1</serial>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <auth username='cinder'>
        <secret type='ceph' uuid='abc'/>
      </auth>
      <source protocol='rbd' name='volumes/vol-2'>
        <host name='10.0.0.9' port='6789'/>
      </source>
      <target dev='vdc' bus='virtio'/>
      <serial>vol-2</serial>
    </disk>
    <serial type='tcp'>
      <source mode='bind' host='192.168.1.10' service='10000'/>
      <protocol type='raw'/>
      <target port='0'/>
    </serial>
    <console type='tcp'>
      <source mode='bind' host='192.168.1.10' service='10001'/>
      <protocol type='raw'/>
      <target type='serial' port='1'/>
    </console>
    <serial type='pty'>
      <target port='2'/>
    </serial>
    <graphics type='vnc' port='5900' autoport='yes' listen='192.168.1.10'>
      <listen type='address' address='192.168.1.10'/>
    </graphics>
    <graphics type='spice' autoport='yes' listen='192.168.1.10'>
      <listen type='address' address='192.168.1.10'/>
    </graphics>
    <graphics type='sdl' display=':0'/>
  </devices>
</domain>
`;

describe('destinationXml', () => {
  it('no options -> unchanged bytes', () => {
    expect(destinationXml(XML, {})).toBe(XML);
  });

  it('rewrites vnc and spice listen attributes and <listen> children', () => {
    const out = destinationXml(XML, { graphicsListen: { vnc: '10.0.0.2', spice: '10.0.0.3' } });
    expect(out).toContain(`<graphics type='vnc' port='5900' autoport='yes' listen='10.0.0.2'>\n      <listen type='address' address='10.0.0.2'/>`);
    expect(out).toContain(`<graphics type='spice' autoport='yes' listen='10.0.0.3'>\n      <listen type='address' address='10.0.0.3'/>`);
    expect(out).toContain(`<graphics type='sdl' display=':0'/>`);
    // only the four address occurrences changed
    expect(out.replaceAll('10.0.0.2', '192.168.1.10').replaceAll('10.0.0.3', '192.168.1.10')).toBe(XML);
  });

  it('only the given graphics type is rewritten', () => {
    const out = destinationXml(XML, { graphicsListen: { spice: '10.0.0.3' } });
    expect(out).toContain(`<graphics type='vnc' port='5900' autoport='yes' listen='192.168.1.10'>`);
    expect(out).toContain(`<graphics type='spice' autoport='yes' listen='10.0.0.3'>`);
  });

  it('leaves network-type <listen> alone', () => {
    const xml = `<domain><devices><graphics type='vnc'><listen type='network' network='n'/></graphics></devices></domain>`;
    expect(destinationXml(xml, { graphicsListen: { vnc: '1.2.3.4' } })).toBe(xml);
  });

  it('rewrites TCP serial and console hosts; ports when given', () => {
    const out = destinationXml(XML, { serialListenAddr: '10.0.0.2' });
    expect(out).toContain(`<source mode='bind' host='10.0.0.2' service='10000'/>`);
    expect(out).toContain(`<source mode='bind' host='10.0.0.2' service='10001'/>`);
    const withPorts = destinationXml(XML, { serialListenAddr: '10.0.0.2', serialListenPorts: [20000, 20001] });
    expect(withPorts).toContain(`<source mode='bind' host='10.0.0.2' service='20000'/>`);
    expect(withPorts).toContain(`<source mode='bind' host='10.0.0.2' service='20001'/>`);
    expect(withPorts).toContain(`<serial type='pty'>\n      <target port='2'/>`);
  });

  it('moves a block volume to the destination path by <serial>', () => {
    const out = destinationXml(XML, { volumes: [{ serial: 'vol-1', dev: 'vdb', path: '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.dst-lun-3' }] });
    expect(out).toBe(XML.replace('iqn.src-lun-1', 'iqn.dst-lun-3'));
  });

  it('turns a network volume into a block one', () => {
    const out = destinationXml(XML, { volumes: [{ serial: 'vol-2', path: '/dev/sdz' }] });
    expect(out).toContain(`<disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/sdz'/>
      <target dev='vdc' bus='virtio'/>
      <serial>vol-2</serial>
    </disk>`);
    expect(out).not.toContain('<auth');
    expect(out).not.toContain('10.0.0.9');
  });

  it('adds a <source> before <target> when the disk had none', () => {
    const xml = `<domain><devices>\n  <disk type='block' device='disk'>\n    <target dev='vdb'/>\n    <serial>v</serial>\n  </disk>\n</devices></domain>`;
    expect(destinationXml(xml, { volumes: [{ serial: 'v', path: '/dev/sdq' }] })).toBe(
      `<domain><devices>\n  <disk type='block' device='disk'>\n    <source dev='/dev/sdq'/>\n    <target dev='vdb'/>\n    <serial>v</serial>\n  </disk>\n</devices></domain>`,
    );
  });

  it('ignores volumes whose serial matches no disk; local disks untouched', () => {
    expect(destinationXml(XML, { volumes: [{ serial: 'nope', path: '/dev/x' }] })).toBe(XML);
  });

  it('all rewrites together', () => {
    const out = destinationXml(XML, {
      graphicsListen: { vnc: '10.0.0.2', spice: '10.0.0.2' },
      serialListenAddr: '10.0.0.2',
      volumes: [{ serial: 'vol-1', path: '/dev/sdb' }],
    });
    expect(out).not.toContain('192.168.1.10');
    expect(out).toContain(`<source dev='/dev/sdb'/>`);
    expect(out).toContain(`<address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>`);
    expect(out).toContain(`<source file='/var/lib/nova/instances/u/disk'/>`);
  });
});
