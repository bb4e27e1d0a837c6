import { describe, expect, it } from 'vitest';
import { Element, Node } from '@xmldom/xmldom';
import { destinationXml, graphicsListenAddrs } from '../../src/domain/destination-xml.js';
import { parseXml, serializeXml } from '../../src/domain/xml.js';

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

/** How the XML layer writes `xml`; quoting and entity spelling differ from the input. */
const canon = (xml: string): string => serializeXml(parseXml(xml));

/** `xml` with hand edits applied, written as the XML layer writes it. */
function edited(xml: string, ...edits: [from: string, to: string][]): string {
  for (const [from, to] of edits) {
    // An edit that matched nothing would make the expectation vacuous.
    expect(xml.split(from).length - 1, from).toBe(1);
    xml = xml.replace(from, to);
  }
  return canon(xml);
}

const vncEdit = (addr: string): [string, string] => [
  `<graphics type='vnc' port='5900' autoport='yes' listen='192.168.1.10'>\n      <listen type='address' address='192.168.1.10'/>`,
  `<graphics type='vnc' port='5900' autoport='yes' listen='${addr}'>\n      <listen type='address' address='${addr}'/>`,
];
const spiceEdit = (addr: string): [string, string] => [
  `<graphics type='spice' autoport='yes' listen='192.168.1.10'>\n      <listen type='address' address='192.168.1.10'/>`,
  `<graphics type='spice' autoport='yes' listen='${addr}'>\n      <listen type='address' address='${addr}'/>`,
];
const serialEdits = (addr: string): [string, string][] => [
  [`<source mode='bind' host='192.168.1.10' service='10000'/>`, `<source mode='bind' host='${addr}' service='10000'/>`],
  [`<source mode='bind' host='192.168.1.10' service='10001'/>`, `<source mode='bind' host='${addr}' service='10001'/>`],
];

describe('destinationXml', () => {
  it('no options -> the same document', () => {
    expect(destinationXml(XML, {})).toBe(canon(XML));
  });

  it('rewrites vnc and spice listen attributes and <listen> children', () => {
    const out = destinationXml(XML, { graphicsListen: { vnc: '10.0.0.2', spice: '10.0.0.3' } });
    expect(out).toBe(edited(XML, vncEdit('10.0.0.2'), spiceEdit('10.0.0.3')));
    expect(out).toContain(`<graphics type="sdl" display=":0"/>`);
  });

  it('only the given graphics type is rewritten', () => {
    const out = destinationXml(XML, { graphicsListen: { spice: '10.0.0.3' } });
    expect(out).toBe(edited(XML, spiceEdit('10.0.0.3')));
  });

  it('leaves network- and socket-type <listen> alone', () => {
    const xml = `<domain><devices><graphics type='vnc'><listen type='network' network='n'/><listen type='socket' socket='/run/vnc.sock'/></graphics></devices></domain>`;
    expect(destinationXml(xml, { graphicsListen: { vnc: '1.2.3.4' } })).toBe(canon(xml));
  });

  it('moves an interface matched by MAC (any case) onto its destination bridge; a libvirt network source becomes a bridge; others stay', () => {
    const xml = `<domain><devices>
    <interface type='network'>
      <mac address='FA:16:3E:00:00:01'/>
      <source network='default' portid='x'/>
      <virtualport type='openvswitch'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <interface type='bridge'>
      <mac address='fa:16:3e:00:00:02'/>
      <source bridge='keep'/>
    </interface>
  </devices></domain>`;
    const out = destinationXml(xml, { interfaces: [{ mac: 'fa:16:3e:00:00:01', vifType: 'bridge', bridge: 'brq-b', portId: 'p1', mtu: 1450 }] });
    expect(out).toBe(`<domain><devices>
    <interface type="bridge">
      <mac address="FA:16:3E:00:00:01"/>
      <source bridge="brq-b"/>
      <model type="virtio"/>
      <address type="pci" domain="0x0000" bus="0x00" slot="0x03" function="0x0"/>
    </interface>
    <interface type="bridge">
      <mac address="fa:16:3e:00:00:02"/>
      <source bridge="keep"/>
    </interface>
  </devices></domain>`);
  });

  it('an ovs interface without a <source> gets one after its MAC, then its virtualport', () => {
    const xml = `<domain><devices>
    <interface type='ethernet'>
      <mac address='fa:16:3e:00:00:01'/>
      <target dev='tap5a2f3c1e-7d'/>
    </interface>
  </devices></domain>`;
    const out = destinationXml(xml, { interfaces: [{ mac: 'fa:16:3e:00:00:01', vifType: 'ovs', bridge: 'br-int', portId: 'p1', mtu: null }] });
    expect(out).toBe(`<domain><devices>
    <interface type="bridge">
      <mac address="fa:16:3e:00:00:01"/>
      <source bridge="br-int"/>
      <virtualport type="openvswitch"><parameters interfaceid="p1"/></virtualport>
      <target dev="tap5a2f3c1e-7d"/>
    </interface>
  </devices></domain>`);
  });

  it('rewrites TCP serial and console hosts, keeping their ports', () => {
    const out = destinationXml(XML, { serialListenAddr: '10.0.0.2' });
    expect(out).toBe(edited(XML, ...serialEdits('10.0.0.2')));
    expect(out).toContain(`<serial type="pty">\n      <target port="2"/>`);
  });

  it("gives each TCP console the destination's port for its serial port number (serial_listen_ports, as Nova's migration.py); a number beyond the list keeps its port", () => {
    const out = destinationXml(XML, { serialListenAddr: '10.0.0.2', serialListenPorts: [20000, 20001] });
    expect(out).toBe(
      edited(
        XML,
        [`<source mode='bind' host='192.168.1.10' service='10000'/>`, `<source mode='bind' host='10.0.0.2' service='20000'/>`],
        [`<source mode='bind' host='192.168.1.10' service='10001'/>`, `<source mode='bind' host='10.0.0.2' service='20001'/>`],
      ),
    );
    // Ports alone (no address from the destination): the host stays; one port only: target port 1 keeps its own.
    expect(destinationXml(XML, { serialListenPorts: [20000] })).toBe(edited(XML, [`<source mode='bind' host='192.168.1.10' service='10000'/>`, `<source mode='bind' host='192.168.1.10' service='20000'/>`]));
  });

  it('moves a block volume to the destination path by <serial>', () => {
    const out = destinationXml(XML, { volumes: [{ serial: 'vol-1', dev: 'vdb', path: '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.dst-lun-3' }] });
    expect(out).toBe(edited(XML, ['iqn.src-lun-1', 'iqn.dst-lun-3']));
  });

  it('turns a network volume into a block one, without blank lines where <auth> and <host> were', () => {
    const out = destinationXml(XML, { volumes: [{ serial: 'vol-2', path: '/dev/sdz' }] });
    expect(out).toBe(edited(
      XML,
      [`<disk type='network' device='disk'>`, `<disk type='block' device='disk'>`],
      [`\n      <auth username='cinder'>\n        <secret type='ceph' uuid='abc'/>\n      </auth>`, ''],
      [`<source protocol='rbd' name='volumes/vol-2'>\n        <host name='10.0.0.9' port='6789'/>\n      </source>`, `<source dev='/dev/sdz'/>`],
    ));
    expect(out).toContain(`<disk type="block" device="disk">
      <driver name="qemu" type="raw"/>
      <source dev="/dev/sdz"/>
      <target dev="vdc" bus="virtio"/>
      <serial>vol-2</serial>
    </disk>`);
  });

  it('keeps other <source> children such as <seclabel>', () => {
    const xml = `<domain><devices><disk type='network'><source protocol='rbd' name='v'><host name='h'/><seclabel model='dac' relabel='no'/></source><serial>v</serial></disk></devices></domain>`;
    expect(destinationXml(xml, { volumes: [{ serial: 'v', path: '/dev/sdq' }] })).toBe(
      canon(`<domain><devices><disk type='block'><source dev='/dev/sdq'><seclabel model='dac' relabel='no'/></source><serial>v</serial></disk></devices></domain>`),
    );
  });

  it('adds a <source> before <target>, indented like it, when the disk had none', () => {
    const xml = `<domain><devices>\n  <disk type='block' device='disk'>\n    <target dev='vdb'/>\n    <serial>v</serial>\n  </disk>\n</devices></domain>`;
    expect(destinationXml(xml, { volumes: [{ serial: 'v', path: '/dev/sdq' }] })).toBe(
      canon(`<domain><devices>\n  <disk type='block' device='disk'>\n    <source dev='/dev/sdq'/>\n    <target dev='vdb'/>\n    <serial>v</serial>\n  </disk>\n</devices></domain>`),
    );
  });

  it('ignores volumes whose serial matches no disk; local disks untouched', () => {
    expect(destinationXml(XML, { volumes: [{ serial: 'nope', path: '/dev/x' }] })).toBe(canon(XML));
  });

  it('all rewrites together', () => {
    const out = destinationXml(XML, {
      graphicsListen: { vnc: '10.0.0.2', spice: '10.0.0.2' },
      serialListenAddr: '10.0.0.2',
      volumes: [{ serial: 'vol-1', path: '/dev/sdb' }],
    });
    expect(out).not.toContain('192.168.1.10');
    expect(out).toBe(edited(
      XML,
      vncEdit('10.0.0.2'),
      spiceEdit('10.0.0.2'),
      ...serialEdits('10.0.0.2'),
      [`<source dev='/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.src-lun-1'/>`, `<source dev='/dev/sdb'/>`],
    ));
  });

  it('rejects XML that does not parse', () => {
    expect(() => destinationXml(`<domain><devices></domain>`, {})).toThrow(/^invalid XML: /);
  });
});

// A domain as libvirt's migratable XML has it, with what ferry rewrites and
// much that it must not touch.
const NOVA_DOMAIN = `<!-- written by a test -->
<domain type='kvm'>
  <name>instance-0000002a</name>
  <uuid>6b6c1d5e-45f1-4b0e-9f5b-2f5a1c0e7d11</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="29.0.1"/>
      <nova:name>web &amp; db &lt;1&gt;</nova:name>
      <nova:creationTime>2024-05-02 10:11:12</nova:creationTime>
      <nova:flavor name="m1.small">
        <nova:memory>2048</nova:memory>
        <nova:disk>20</nova:disk>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="0c1d">admin</nova:user>
        <nova:project uuid="9e8f">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <cpu mode='custom' match='exact' check='partial'>
    <model fallback='forbid'>Skylake-Client-IBRS</model>
    <feature policy='require' name='hypervisor'/>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <!-- the root disk lives in the instance directory -->
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/var/lib/nova/instances/6b6c1d5e/disk'/>
      <backingStore type='file'>
        <format type='raw'/>
        <source file='/var/lib/nova/instances/_base/4f1e'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native'/>
      <source dev='/dev/disk/by-id/wwn-0x600a0b80005ad1d7'/>
      <target dev='vdb' bus='virtio'/>
      <serial>0ab3c2d1-vol</serial>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:11:22:33'/>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='d1c2'/>
      </virtualport>
      <target dev='tapd1c2'/>
      <model type='virtio'/>
      <mtu size='1450'/>
    </interface>
    <serial type='tcp'>
      <source mode='bind' host='192.168.1.10' service='10000'/>
      <protocol type='raw'/>
      <log file='/var/lib/nova/instances/6b6c1d5e/console.log' append='off'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <graphics type='vnc' port='-1' autoport='yes' listen='192.168.1.10'>
      <listen type='address' address='192.168.1.10'/>
    </graphics>
    <video>
      <model type='virtio' heads='1' primary='yes'/>
    </video>
    <memballoon model='virtio'>
      <stats period='10'/>
    </memballoon>
  </devices>
</domain>
`;

/** Every element (with its namespace), attribute, text and comment as one line each; indentation left out. */
function facts(xml: string): string[] {
  const out: string[] = [];
  const walk = (parent: Node, path: string): void => {
    const seen = new Map<string, number>();
    for (const node of [...parent.childNodes]) {
      if (node instanceof Element) {
        const n = (seen.get(node.tagName) ?? 0) + 1;
        seen.set(node.tagName, n);
        const at = `${path}/${node.tagName}[${n}]`;
        out.push(`${at} {${node.namespaceURI ?? ''}}`);
        for (const a of [...node.attributes]) out.push(`${at} @${a.name}=${a.value}`);
        walk(node, at);
      } else if (node.nodeType === Node.COMMENT_NODE) {
        out.push(`${path} <!--${node.nodeValue}-->`);
      } else if (/\S/.test(node.nodeValue ?? '')) {
        out.push(`${path} text ${node.nodeValue}`);
      }
    }
  };
  walk(parseXml(xml), '');
  return out;
}

describe('a rewrite changes only what it means to', () => {
  it('on a Nova domain with graphics, a TCP serial console, a volume and a local disk', () => {
    const out = destinationXml(NOVA_DOMAIN, {
      graphicsListen: { vnc: '10.0.0.7' },
      serialListenAddr: '10.0.0.7',
      volumes: [{ serial: '0ab3c2d1-vol', dev: 'vdc', path: '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.dst-lun-0' }],
    });
    const before = facts(NOVA_DOMAIN);
    const after = facts(out);
    const disk = '/domain[1]/devices[1]/disk[2]';
    expect({ removed: before.filter((f) => !after.includes(f)), added: after.filter((f) => !before.includes(f)) }).toEqual({
      removed: [
        `${disk}/source[1] @dev=/dev/disk/by-id/wwn-0x600a0b80005ad1d7`,
        `${disk}/target[1] @dev=vdb`,
        '/domain[1]/devices[1]/serial[1]/source[1] @host=192.168.1.10',
        '/domain[1]/devices[1]/graphics[1] @listen=192.168.1.10',
        '/domain[1]/devices[1]/graphics[1]/listen[1] @address=192.168.1.10',
      ],
      added: [
        `${disk}/source[1] @dev=/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.dst-lun-0`,
        `${disk}/target[1] @dev=vdc`,
        '/domain[1]/devices[1]/serial[1]/source[1] @host=10.0.0.7',
        '/domain[1]/devices[1]/graphics[1] @listen=10.0.0.7',
        '/domain[1]/devices[1]/graphics[1]/listen[1] @address=10.0.0.7',
      ],
    });
    // The facts cover the whole document, metadata and comments included.
    expect(before).toContain('/domain[1]/metadata[1]/nova:instance[1]/nova:name[1] text web & db <1>');
    expect(before).toContain('/domain[1]/metadata[1]/nova:instance[1] {http://openstack.org/xmlns/libvirt/nova/1.1}');
    expect(before).toContain('/domain[1]/devices[1] <!-- the root disk lives in the instance directory -->');
    expect(before).toContain(' <!-- written by a test -->');
  });
});
