// A guest's domain XML from its instance record: what is read from which
// field, the rescue layout, and the refusals naming the field.
import { describe, expect, it } from 'vitest';
import { guestXml } from '../../src/domain/guest-xml.js';
import { tcpSerialPorts } from '../../src/domain/serial-ports.js';
import { DEFAULT_CMDLINE, readGuestDefinition, type HostGuestSettings } from '../../src/nova/guest-definition.js';

const UUID = '0b9f7c52-1d3e-4f6a-8b2c-9d0e1f2a3b4c';
const DIR = `/var/lib/nova/instances/${UUID}`;
const HOST: HostGuestSettings = { instanceDir: DIR, virtType: 'qemu', cpuModel: 'qemu64', vncListen: null, serialConsole: null, tcgRamWorkaround: false };

/** An instance as Nova sends it (unwrapped): kernel boot, a root disk, a volume, a port, a config drive. */
const INSTANCE = {
  uuid: UUID,
  name: 'instance-0000002a',
  flavor: { memory_mb: 256, vcpus: 2, root_gb: 1 },
  image_ref: 'img-root',
  kernel_id: 'img-kernel',
  ramdisk_id: 'img-ramdisk',
  config_drive: 'True',
  system_metadata: { image_os_command_line: 'console=ttyS0 quiet' },
  block_device_mappings: [{ device_name: '/dev/vdb', destination_type: 'volume', volume_id: 'vol-1', connection_info: { serial: 'vol-1', data: { device_path: '/dev/loop7' } } }],
  info_cache: { network_info: JSON.stringify([{ id: 'port-1', address: 'FA:16:3E:00:00:01', type: 'bridge', details: {}, network: { bridge: 'brq-net1', meta: { mtu: 1450 } } }]) },
};

describe('readGuestDefinition', () => {
  it('reads the flavor, the kernel boot, the folder\'s disks, the volume and the port', () => {
    const d = readGuestDefinition(INSTANCE, HOST);
    expect(d).toEqual({
      uuid: UUID,
      name: 'instance-0000002a',
      memoryMib: 256,
      vcpus: 2,
      virtType: 'qemu',
      cpuModel: 'qemu64',
      boot: { kind: 'kernel', kernel: `${DIR}/kernel`, initrd: `${DIR}/ramdisk`, cmdline: 'console=ttyS0 quiet' },
      disks: [{ dev: 'vda', path: `${DIR}/disk`, format: 'qcow2' }],
      configDrive: `${DIR}/disk.config`,
      volumes: [{ dev: 'vdb', path: '/dev/loop7', serial: 'vol-1' }],
      interfaces: [{ mac: 'fa:16:3e:00:00:01', vifType: 'bridge', bridge: 'brq-net1', portId: 'port-1', mtu: 1450 }],
      consoleLog: `${DIR}/console.log`,
      serialConsole: null,
      vncListen: null,
      tcgRamWorkaround: false,
    });
  });

  it('an image without a kernel boots from its disk; no cmdline from the image is Nova\'s default', () => {
    expect(readGuestDefinition({ ...INSTANCE, kernel_id: '', ramdisk_id: null }, HOST).boot).toEqual({ kind: 'disk' });
    expect(readGuestDefinition({ ...INSTANCE, system_metadata: {} }, HOST).boot).toMatchObject({ cmdline: DEFAULT_CMDLINE });
  });

  it('rescue: disk.rescue first, the root disk second, no volumes; the rescue image\'s kernel when it has one, else the instance\'s', () => {
    const withKernel = readGuestDefinition(INSTANCE, HOST, { kernel: true, ramdisk: true, cmdline: 'console=ttyS0 rescue' });
    expect(withKernel.disks).toEqual([
      { dev: 'vda', path: `${DIR}/disk.rescue`, format: 'qcow2' },
      { dev: 'vdb', path: `${DIR}/disk`, format: 'qcow2' },
    ]);
    expect(withKernel.volumes).toEqual([]);
    expect(withKernel.boot).toEqual({ kind: 'kernel', kernel: `${DIR}/kernel.rescue`, initrd: `${DIR}/ramdisk.rescue`, cmdline: 'console=ttyS0 rescue' });
    expect(readGuestDefinition(INSTANCE, HOST, { kernel: false, ramdisk: false, cmdline: null }).boot).toEqual({ kind: 'kernel', kernel: `${DIR}/kernel`, initrd: `${DIR}/ramdisk`, cmdline: 'console=ttyS0 quiet' });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['no memory', { flavor: { vcpus: 1 } }, 'instance.flavor.memory_mb: expected an integer >= 16, got nothing'],
    ['no vcpus', { flavor: { memory_mb: 256, vcpus: 0 } }, 'instance.flavor.vcpus: expected an integer >= 1, got 0'],
    ['a name libvirt would not take', { name: 'vm/../x' }, "instance.name: 'vm/../x' is not a domain name (letters, digits, _ . -)"],
    ['a volume with no device here', { block_device_mappings: [{ device_name: '/dev/vdb', destination_type: 'volume', volume_id: 'vol-1', connection_info: {} }] }, 'instance.block_device_mappings[0].connection_info.data.device_path: required for volume vol-1'],
    ['network info that is no JSON', { info_cache: { network_info: '[{' } }, 'instance.info_cache.network_info: expected a JSON list, got malformed JSON'],
    ['a port with a bad MAC', { info_cache: { network_info: [{ address: 'nope', type: 'bridge', network: { bridge: 'b' } }] } }, 'instance.info_cache.network_info[0].address: expected a MAC address'],
    ['a vhostuser port', { info_cache: { network_info: [{ address: 'fa:16:3e:00:00:01', type: 'vhostuser' }] } }, "instance.info_cache.network_info[0].type: 'vhostuser' is not one ferry plugs (bridge, ovs)"],
    ['an ovs port without its id', { info_cache: { network_info: [{ address: 'fa:16:3e:00:00:01', type: 'ovs', details: { bridge_name: 'br-int' } }] } }, 'instance.info_cache.network_info[0].id: an ovs port needs its port id'],
    ['a bridge name with a slash', { info_cache: { network_info: [{ address: 'fa:16:3e:00:00:01', type: 'bridge', details: { bridge_name: 'br/x' } }] } }, 'instance.info_cache.network_info[0].details.bridge_name: expected a network device name'],
  ])('refuses %s, naming the field', (_name, over, message) => {
    expect(() => readGuestDefinition({ ...INSTANCE, ...over }, HOST)).toThrow(`Invalid input received: ${message}`);
  });
});

describe('guestXml', () => {
  it("QEMU < 9.0 under TCG: the RAM comes from a backend 64 KiB longer than the memory; under kvm never", () => {
    const xml = guestXml(readGuestDefinition(INSTANCE, { ...HOST, tcgRamWorkaround: true }));
    expect(xml).toMatch(/^<domain type="qemu" xmlns:qemu="http:\/\/libvirt.org\/schemas\/domain\/qemu\/1.0">/);
    // 256 MiB + 64 KiB: not a multiple of 256 KiB, so QEMU syncs the dirty bitmap page by page.
    expect(xml).toContain(`  <qemu:commandline>
    <qemu:arg value="-object"/>
    <qemu:arg value="{&quot;qom-type&quot;:&quot;memory-backend-ram&quot;,&quot;id&quot;:&quot;ferry.ram&quot;,&quot;size&quot;:268500992}"/>
    <qemu:arg value="-machine"/>
    <qemu:arg value="memory-backend=ferry.ram"/>
    <qemu:arg value="-m"/>
    <qemu:arg value="262208k"/>
  </qemu:commandline>
</domain>`);
    expect(268500992 % (256 * 1024)).not.toBe(0);
    const kvm = guestXml(readGuestDefinition(INSTANCE, { ...HOST, virtType: 'kvm', tcgRamWorkaround: true }));
    expect(kvm).not.toContain('qemu:');
    expect(guestXml(readGuestDefinition(INSTANCE, HOST))).not.toContain('qemu:');
  });

  it('writes the definition as libvirt domain XML, the same bytes every time', () => {
    const xml = guestXml(readGuestDefinition(INSTANCE, { ...HOST, vncListen: '10.0.0.5' }));
    expect(xml).toBe(guestXml(readGuestDefinition(INSTANCE, { ...HOST, vncListen: '10.0.0.5' })));
    expect(xml).toBe(`<domain type="qemu">
  <name>instance-0000002a</name>
  <uuid>${UUID}</uuid>
  <memory unit="MiB">256</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch="x86_64" machine="pc">hvm</type>
    <kernel>${DIR}/kernel</kernel>
    <initrd>${DIR}/ramdisk</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <cpu mode="custom" match="exact" check="none">
    <model fallback="forbid">qemu64</model>
  </cpu>
  <clock offset="utc"/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/>
      <source file="${DIR}/disk"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <disk type="file" device="cdrom">
      <driver name="qemu" type="raw"/>
      <source file="${DIR}/disk.config"/>
      <target dev="hdd" bus="ide"/>
      <readonly/>
    </disk>
    <disk type="block" device="disk">
      <driver name="qemu" type="raw" cache="none" io="native"/>
      <source dev="/dev/loop7"/>
      <target dev="vdb" bus="virtio"/>
      <serial>vol-1</serial>
    </disk>
    <interface type="bridge">
      <mac address="fa:16:3e:00:00:01"/>
      <source bridge="brq-net1"/>
      <model type="virtio"/>
      <mtu size="1450"/>
    </interface>
    <serial type="file">
      <source path="${DIR}/console.log"/>
      <target port="0"/>
    </serial>
    <graphics type="vnc" port="-1" autoport="yes" listen="10.0.0.5"/>
    <memballoon model="none"/>
  </devices>
</domain>
`);
  });

  it('a serial console: a raw TCP server bound on its address and port, the second serial port (the first is console.log)', () => {
    const xml = guestXml(readGuestDefinition(INSTANCE, { ...HOST, serialConsole: { host: '10.0.0.5', port: 10003 } }));
    expect(xml).toContain(`    <serial type="file">
      <source path="${DIR}/console.log"/>
      <target port="0"/>
    </serial>
    <serial type="tcp">
      <source mode="bind" host="10.0.0.5" service="10003"/>
      <protocol type="raw"/>
      <target port="1"/>
    </serial>`);
    expect(tcpSerialPorts(xml)).toEqual([10003]);
    expect(tcpSerialPorts(guestXml(readGuestDefinition(INSTANCE, HOST)))).toEqual([]);
  });

  it('escapes what it writes: a cmdline with markup stays text', () => {
    const xml = guestXml(readGuestDefinition({ ...INSTANCE, system_metadata: { image_os_command_line: 'a</cmdline><x>' } }, HOST));
    expect(xml).toContain('<cmdline>a&lt;/cmdline&gt;&lt;x&gt;</cmdline>');
  });

  it('a disk boot has <boot dev=hd> and no kernel; an ovs port its virtualport; no CPU model leaves the hypervisor\'s', () => {
    const xml = guestXml(
      readGuestDefinition({ ...INSTANCE, kernel_id: null, info_cache: { network_info: [{ id: 'p2', address: 'fa:16:3e:00:00:02', type: 'ovs', details: { bridge_name: 'br-int' } }] } }, { ...HOST, cpuModel: null, virtType: 'kvm' }),
    );
    expect(xml).toContain('<domain type="kvm">');
    expect(xml).toContain('<boot dev="hd"/>');
    expect(xml).not.toContain('<kernel>');
    expect(xml).not.toContain('<cpu');
    expect(xml).toContain('<virtualport type="openvswitch">\n        <parameters interfaceid="p2"/>\n      </virtualport>');
  });
});
