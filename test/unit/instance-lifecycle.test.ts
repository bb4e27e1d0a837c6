// A guest's life through ferry's compute methods on a fake libvirt with real
// files and qemu-img: spawn from the image cache, hard reboot, rescue and
// unrescue from the record alone, terminate; and the refusals, each leaving
// the guest and its disks as they were.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { tcpSerialPorts } from '../../src/domain/serial-ports.js';
import { SerialConsolePorts } from '../../src/nova/serial-console.js';
import { DomainState, PausedReason } from '../../src/libvirt/types.js';
import type { FakeDomain } from './fakes/libvirt.js';
import { adminContext } from './fakes/rpc.js';
import { makeCluster, startMigration, waitDone, waitStatus, S, type Cluster } from './fakes/cluster.js';

const run = promisify(execFile);

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const UUID = '3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f';

/** The instance record the conductor sends: a kernel-boot image with a root disk. */
const INSTANCE = {
  uuid: UUID,
  name: 'instance-00000007',
  vm_state: 'active',
  flavor: { memory_mb: 128, vcpus: 1, root_gb: 0 },
  image_ref: 'root-img',
  kernel_id: 'kernel-img',
  ramdisk_id: 'ramdisk-img',
  system_metadata: { image_os_command_line: 'console=ttyS0 ferry=normal' },
};

/** The source host's image cache: a raw root image, a kernel, a ramdisk, and a rescue image with its own kernel. */
async function withImages(o: Parameters<typeof makeCluster>[0] = {}): Promise<void> {
  c = await makeCluster(o);
  const dir = c.src.imagesDir;
  await fs.mkdir(dir, { recursive: true });
  await run('qemu-img', ['create', '-q', '-f', 'raw', join(dir, 'root-img'), '8M']);
  await fs.writeFile(join(dir, 'kernel-img'), 'kernel bytes');
  await fs.writeFile(join(dir, 'ramdisk-img'), 'ramdisk bytes');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'rescue-img'), '4M']);
  await fs.writeFile(join(dir, 'rescue-img.json'), JSON.stringify({ disk_format: 'qcow2', kernel_id: 'rescue-kernel', os_command_line: 'console=ttyS0 ferry=rescue' }));
  await fs.writeFile(join(dir, 'rescue-kernel'), 'rescue kernel bytes');
}

const call = (method: string, args: Record<string, unknown>, server = c.src.name) =>
  c.bus
    .client('conductor')
    .call(adminContext(), { topic: 'compute', server, version: '6.0' }, method, args)
    .then(
      () => null,
      (e: Error) => e,
    );

const real = (name: string) => c.src.storage.toReal(`${c.src.storage.instanceDir(UUID)}/${name}`);
const exists = (name: string) => fs.access(real(name)).then(() => true, () => false);
const domain = () => c.src.conn.domains.get(UUID) as FakeDomain | undefined;
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const imageInfo = async (path: string) =>
  JSON.parse((await run('qemu-img', ['info', '--output=json', path])).stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string; 'backing-filename-format'?: string };

async function spawned(o: Parameters<typeof makeCluster>[0] = {}): Promise<FakeDomain> {
  await withImages(o);
  expect(await call('build_and_run_instance', { instance: INSTANCE, image: { id: 'root-img' } })).toBeNull();
  return domain()!;
}

describe('spawn, reboot, terminate', () => {
  it('build_and_run_instance: the folder, the root disk a qcow2 overlay on the image as a raw base in _base, the kernel files, the guest running from its record', async () => {
    const dom = await spawned();
    expect(dom.state).toBe(DomainState.RUNNING);
    expect(dom.persistent).toBe(true);
    const info = await imageInfo(real('disk'));
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': 8 * 2 ** 20, 'backing-filename-format': 'raw' });
    // Named as Nova names it: the SHA-1 of the image id.
    expect(info['backing-filename']).toBe(c.src.storage.toReal(`${c.src.storage.instancesPath}/_base/${sha1('root-img')}`));
    expect(await fs.readFile(real('kernel'), 'utf8')).toBe('kernel bytes');
    expect(await fs.readFile(real('ramdisk'), 'utf8')).toBe('ramdisk bytes');
    expect(dom.xml).toContain('<cmdline>console=ttyS0 ferry=normal</cmdline>');
    expect(dom.xml).toContain(`<source file="${c.src.storage.instanceDir(UUID)}/disk"/>`);
    expect(c.src.notifier.types()).toEqual(['instance.create.start', 'instance.create.end']);
  });

  it.each<[string, Record<string, unknown>, { format: string; backing: string | undefined }]>([
    ['use_cow_images off: a flat qcow2 copy', { use_cow_images: false }, { format: 'qcow2', backing: undefined }],
    ['force_raw_images off: an overlay on the qcow2 image as it is', { force_raw_images: false }, { format: 'qcow2', backing: 'qcow2' }],
    ['force_raw_images on: an overlay on the image made raw', {}, { format: 'qcow2', backing: 'raw' }],
  ])('build_and_run_instance from a qcow2 image, %s', async (_name, config, want) => {
    await withImages({ src: { config } });
    expect(await call('build_and_run_instance', { instance: { ...INSTANCE, image_ref: 'rescue-img' } })).toBeNull();
    const info = await imageInfo(real('disk'));
    expect(info.format).toBe(want.format);
    expect(info['backing-filename-format']).toBe(want.backing);
    // The base stays for the next guest of the image; a second spawn shares it.
    if (want.backing) expect((await imageInfo(info['backing-filename']!)).format).toBe(want.backing);
  });

  it('a base already in _base is used as it is, never made again; two guests spawned at once stand on one base', async () => {
    await withImages();
    const base = c.src.storage.toReal(`${c.src.storage.instancesPath}/_base/${sha1('root-img')}`);
    await fs.mkdir(join(base, '..'), { recursive: true });
    await run('qemu-img', ['create', '-q', '-f', 'raw', base, '8M']);
    await fs.writeFile(base, 'ferry-marker:seeded\n', { flag: 'r+' });
    const other = { ...INSTANCE, uuid: '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d', name: 'instance-00000008' };
    expect(await Promise.all([call('build_and_run_instance', { instance: INSTANCE }), call('build_and_run_instance', { instance: other })])).toEqual([null, null]);
    expect((await fs.readFile(base, 'latin1')).startsWith('ferry-marker:seeded\n')).toBe(true);
    expect((await fs.readdir(join(base, '..'))).length).toBe(1);
    expect((await imageInfo(real('disk')))['backing-filename']).toBe(base);
  });

  it('build_and_run_instance with config_drive: disk.config, iso9660 labelled config-2, holding the record\'s metadata and user data, attached read-only', async () => {
    await withImages();
    const instance = { ...INSTANCE, config_drive: true, display_name: 'web-1', hostname: 'web-1', metadata: { role: 'db' }, user_data: Buffer.from('#cloud-config\n').toString('base64') };
    expect(await call('build_and_run_instance', { instance })).toBeNull();
    const iso = real('disk.config');
    expect((await run('isoinfo', ['-d', '-i', iso])).stdout).toMatch(/^Volume id: config-2$/m);
    const read = async (f: string) => (await run('isoinfo', ['-R', '-i', iso, '-x', `/openstack/latest/${f}`])).stdout;
    expect(JSON.parse(await read('meta_data.json'))).toMatchObject({ uuid: UUID, name: 'web-1', hostname: 'web-1', launch_index: 0, meta: { role: 'db' } });
    expect(await read('user_data')).toBe('#cloud-config\n');
    expect(JSON.parse(await read('vendor_data.json'))).toEqual({});
    expect(domain()!.xml).toMatch(/<disk type="file" device="cdrom">\s*<driver name="qemu" type="raw"\/>\s*<source file="[^"]*\/disk\.config"\/>\s*<target dev="hdd" bus="ide"\/>\s*<readonly\/>/);
    // Nothing of the staging folder is left.
    expect((await fs.readdir(real(''))).sort()).toEqual(['disk', 'disk.config', 'kernel', 'ramdisk']);
  });

  it.each<[string, 'qemu' | 'kvm', number, boolean]>([
    ['TCG on QEMU 7.2: padded', 'qemu', 7_002_000, true],
    ['TCG on QEMU 9.0: not padded', 'qemu', 9_000_000, false],
    ['kvm on QEMU 7.2: not padded', 'kvm', 7_002_000, false],
  ])("build_and_run_instance, the guest's RAM block under %s", async (_name, virtType, qemu, padded) => {
    await withImages({ src: { config: { libvirt: { virt_type: virtType } } } });
    c.src.conn.qemuVersion = qemu;
    expect(await call('build_and_run_instance', { instance: INSTANCE, image: { id: 'root-img' } })).toBeNull();
    expect(domain()!.xml.includes('memory-backend=ferry.ram')).toBe(padded);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['an image the cache lacks', { image_ref: 'no-such-img' }, /^ImageNotFound: Image no-such-img could not be found\.$/],
    ['an image id that is a path', { kernel_id: '../../etc/passwd' }, /^InvalidInput: .*instance\.kernel_id: '\.\.\/\.\.\/etc\/passwd' is not an image id/],
    ['no memory in the flavor', { flavor: { vcpus: 1 } }, /instance\.flavor\.memory_mb: expected an integer >= 16/],
    ['a config drive with user data that is not base64', { config_drive: true, user_data: 'not base64!' }, /^InvalidInput: .*instance\.user_data: expected base64/],
    ['a config drive with metadata that is not strings', { config_drive: true, metadata: { n: 1 } }, /^InvalidInput: .*instance\.metadata: expected an object of strings/],
  ])('build_and_run_instance refuses %s with nothing made', async (_name, over, message) => {
    await withImages();
    const err = await call('build_and_run_instance', { instance: { ...INSTANCE, ...over } });
    expect(`${err?.name}: ${err?.message}`).toMatch(message);
    expect(await c.src.storage.instanceDirExists(UUID)).toBe(false);
    expect(domain()).toBeUndefined();
  });

  it('build_and_run_instance of a guest already here: InstanceExists, its folder untouched', async () => {
    await spawned();
    const before = await fs.stat(real('disk'));
    const err = await call('build_and_run_instance', { instance: INSTANCE });
    expect(err?.name).toBe('InstanceExists');
    expect((await fs.stat(real('disk'))).mtimeMs).toBe(before.mtimeMs);
  });

  it('reboot_instance HARD: off, defined again from the record (a changed flavor shows), on; SOFT is refused', async () => {
    const dom = await spawned();
    expect(await call('reboot_instance', { instance: { ...INSTANCE, flavor: { memory_mb: 192, vcpus: 1, root_gb: 0 } }, reboot_type: 'HARD' })).toBeNull();
    expect(dom.state).toBe(DomainState.RUNNING);
    expect(dom.xml).toContain('<memory unit="MiB">192</memory>');
    expect(c.src.conn.callsOf('destroy', UUID)).toHaveLength(1);
    expect((await call('reboot_instance', { instance: INSTANCE, reboot_type: 'SOFT' }))?.message).toMatch(/ferry reboots HARD only/);
  });

  it('terminate_instance: stopped, undefined, its folder gone; with keep_disks the folder stays', async () => {
    await spawned();
    expect(await call('terminate_instance', { instance: INSTANCE })).toBeNull();
    expect(domain()).toBeUndefined();
    expect(await c.src.storage.instanceDirExists(UUID)).toBe(false);
    expect(await call('build_and_run_instance', { instance: INSTANCE })).toBeNull();
    expect(await call('terminate_instance', { instance: INSTANCE, keep_disks: true })).toBeNull();
    expect(await exists('disk')).toBe(true);
  });
  it('a kernel-boot guest without local disks (its root on a volume): no block migration, and its kernel files reach the destination all the same', async () => {
    await withImages();
    const onVolume = { ...INSTANCE, image_ref: '', host: c.src.name };
    expect(await call('build_and_run_instance', { instance: onVolume })).toBeNull();
    const checked = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, onVolume, null, false);
    expect(checked).toMatchObject({ block_migration: false, is_shared_instance_path: false });
    await c.api.liveMigration(adminContext(), c.src.name, { instance: onVolume, dest: c.dst.name, block_migration: false, migrate_data: checked, migration: { id: 2, uuid: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d' } });
    const end = await waitDone(c, '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d');
    expect(end?.status, end?.error ?? '').toBe(S.completed);
    const [, params] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, { migrate_disks?: string[] }];
    expect(params.migrate_disks ?? []).toEqual([]);
    const dst = (name: string) => c.dst.storage.toReal(`${c.dst.storage.instanceDir(UUID)}/${name}`);
    expect(await fs.readFile(dst('kernel'), 'utf8')).toBe('kernel bytes');
    expect(await fs.readFile(dst('ramdisk'), 'utf8')).toBe('ramdisk bytes');
  });
});

describe('serial consoles ([serial_console] enabled)', () => {
  const OTHER = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  const THIRD = '7e6d5c4b-3a29-4817-a6f5-e4d3c2b1a090';
  const consoles = (range: string, address: string | null = '127.0.0.1') => ({ src: { config: { serial_console: { enabled: true, port_range: range, proxyclient_address: address } } } });
  const portsOf = (uuid: string) => tcpSerialPorts((c.src.conn.domains.get(uuid) as FakeDomain).xml);

  it('each guest spawned gets the lowest port of port_range that no guest here names and nothing listens on; a hard reboot keeps it', async () => {
    await withImages(consoles('47100:47103'));
    // Something else of this host listens on the first port of the range.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(47100, '127.0.0.1', r));
    try {
      expect(await call('build_and_run_instance', { instance: INSTANCE })).toBeNull();
      expect(await call('build_and_run_instance', { instance: { ...INSTANCE, uuid: OTHER, name: 'instance-00000008' } })).toBeNull();
    } finally {
      squatter.close();
    }
    expect(portsOf(UUID)).toEqual([47101]);
    expect(portsOf(OTHER)).toEqual([47102]);
    expect(domain()!.xml).toContain('<source mode="bind" host="127.0.0.1" service="47101"/>');
    expect(await call('reboot_instance', { instance: INSTANCE, reboot_type: 'HARD' })).toBeNull();
    expect(portsOf(UUID)).toEqual([47101]);
  });

  it('two spawns at once take two ports', async () => {
    await withImages(consoles('47110:47111'));
    const both = await Promise.all([call('build_and_run_instance', { instance: INSTANCE }), call('build_and_run_instance', { instance: { ...INSTANCE, uuid: OTHER, name: 'instance-00000008' } })]);
    expect(both).toEqual([null, null]);
    expect([...portsOf(UUID), ...portsOf(OTHER)].sort()).toEqual([47110, 47111]);
  });

  it("a guest migrating gets console ports of the destination's own (serial_listen_ports), free there, held until it arrived", async () => {
    const config = { serial_console: { enabled: true, port_range: '47140:47149', proxyclient_address: '127.0.0.1' } };
    await withImages({ src: { config }, dst: { config, inboundAddr: '192.0.2.20' } });
    // A guest on the destination has the range's first port already.
    await c.dst.conn.defineXML(`<domain><name>instance-00000009</name><uuid>${OTHER}</uuid><devices><serial type="tcp"><source mode="bind" host="127.0.0.1" service="47140"/><target port="1"/></serial></devices></domain>`);
    const instance = { ...INSTANCE, host: c.src.name };
    expect(await call('build_and_run_instance', { instance })).toBeNull();
    expect(portsOf(UUID)).toEqual([47140]);
    const checked = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, instance, null, false);
    await c.api.liveMigration(adminContext(), c.src.name, { instance, dest: c.dst.name, block_migration: checked.block_migration ?? null, migrate_data: checked, migration: { id: 3, uuid: '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e' } });
    const end = await waitDone(c, '2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e');
    expect(end?.status, end?.error ?? '').toBe(S.completed);
    // One port per serial port of the guest, both free on the destination: the second is its TCP console's.
    const [, params] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, { destination_xml: string }];
    expect(tcpSerialPorts(params.destination_xml)).toEqual([47142]);
    expect(tcpSerialPorts((c.dst.conn.domains.get(UUID) as FakeDomain).xml)).toEqual([47142]);

    // Arrived, it holds nothing more: the next guest coming gets the unused first port again.
    const second = { ...INSTANCE, uuid: THIRD, name: 'instance-0000000a', host: c.src.name };
    expect(await call('build_and_run_instance', { instance: second })).toBeNull();
    const again = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, second, null, false);
    await c.api.liveMigration(adminContext(), c.src.name, { instance: second, dest: c.dst.name, block_migration: again.block_migration ?? null, migrate_data: again, migration: { id: 4, uuid: '3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f' } });
    expect((await waitDone(c, '3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f'))?.status).toBe(S.completed);
    expect(tcpSerialPorts((c.dst.conn.domains.get(THIRD) as FakeDomain).xml)).toEqual([47143]);
  });

  it('ports held for an incoming guest are the same when asked again, chosen by no one else, and free once released', async () => {
    c = await makeCluster();
    const ports = SerialConsolePorts.fromConfig(c.src.conn, { serial_console: { enabled: true, port_range: '47150:47159', proxyclient_address: null } });
    expect(await ports.holdFor(UUID, '127.0.0.1', 2)).toEqual([47150, 47151]);
    expect(await ports.holdFor(UUID, '127.0.0.1', 2)).toEqual([47150, 47151]);
    expect(await ports.withFreePort('127.0.0.1', async (p) => p)).toBe(47152);
    ports.release(UUID);
    expect(await ports.withFreePort('127.0.0.1', async (p) => p)).toBe(47150);
  });

  it.each<[string, string, string | null, RegExp]>([
    ['no free port left', '47120:47120', '127.0.0.1', /^SocketPortRangeExhaustedException: Not able to acquire a free port for 127\.0\.0\.1 \(serial_console\.port_range 47120:47120\)$/],
    ['an address this host does not have', '47130:47131', '192.0.2.7', /^InvalidInput: .*serial_console\.proxyclient_address: 192\.0\.2\.7 is not an address of this host/],
  ])('%s: the spawn is refused with nothing made', async (_name, range, address, message) => {
    await withImages(consoles(range, address));
    if (range === '47120:47120') expect(await call('build_and_run_instance', { instance: { ...INSTANCE, uuid: OTHER, name: 'instance-00000008' } })).toBeNull();
    const err = await call('build_and_run_instance', { instance: INSTANCE });
    expect(`${err?.name}: ${err?.message}`).toMatch(message);
    expect(await c.src.storage.instanceDirExists(UUID)).toBe(false);
    expect(domain()).toBeUndefined();
  });
});

describe('rescue and unrescue', () => {
  it('rescue: asked to power off, then booted from disk.rescue (the rescue image, its kernel) with the root disk second; unrescue boots the record and removes the rescue files', async () => {
    const dom = await spawned();
    expect(await call('rescue_instance', { instance: INSTANCE, rescue_password: 'x', rescue_image_ref: 'rescue-img', clean_shutdown: true })).toBeNull();
    expect(c.src.conn.callsOf('shutdown', UUID)).toHaveLength(1);
    expect(dom.state).toBe(DomainState.RUNNING);
    const dir = c.src.storage.instanceDir(UUID);
    expect(dom.xml).toMatch(new RegExp(`<source file="${dir}/disk.rescue"/>\\s*<target dev="vda"`));
    expect(dom.xml).toMatch(new RegExp(`<source file="${dir}/disk"/>\\s*<target dev="vdb"`));
    expect(dom.xml).toContain(`<kernel>${dir}/kernel.rescue</kernel>`);
    expect(dom.xml).toContain('<cmdline>console=ttyS0 ferry=rescue</cmdline>');
    expect(dom.xml).not.toContain('<initrd>');
    expect(await fs.readFile(real('kernel.rescue'), 'utf8')).toBe('rescue kernel bytes');
    // Nothing else is kept on the host: the folder holds the disks and boot files, no saved XML.
    expect((await fs.readdir(real(''))).sort()).toEqual(['disk', 'disk.rescue', 'kernel', 'kernel.rescue', 'ramdisk']);

    expect((await call('rescue_instance', { instance: { ...INSTANCE, vm_state: 'rescued' }, rescue_image_ref: 'rescue-img' }))?.message).toMatch(/in vm_state rescued\. Cannot rescue/);

    expect(await call('unrescue_instance', { instance: { ...INSTANCE, vm_state: 'rescued' } })).toBeNull();
    expect(dom.state).toBe(DomainState.RUNNING);
    expect(dom.xml).toContain(`<kernel>${dir}/kernel</kernel>`);
    expect(dom.xml).toMatch(new RegExp(`<source file="${dir}/disk"/>\\s*<target dev="vda"`));
    expect((await fs.readdir(real(''))).sort()).toEqual(['disk', 'kernel', 'ramdisk']);
    const events = c.src.notifier.types();
    expect(events).toEqual(expect.arrayContaining(['instance.rescue.start', 'instance.rescue.end', 'instance.unrescue.start', 'instance.unrescue.end']));
    const rescueEnd = c.src.notifier.events.find((n) => n.eventType === 'instance.rescue.end')!;
    expect((rescueEnd.payload as { 'nova_object.data': { state: string } })['nova_object.data'].state).toBe('rescued');
  });

  it('a guest that ignores the power-off is stopped after shutdown_timeout', async () => {
    const dom = await spawned();
    dom.shutdownAfterMs = null;
    c.src.config.shutdown_timeout = 0;
    expect(await call('rescue_instance', { instance: INSTANCE, rescue_image_ref: 'rescue-img', clean_shutdown: true })).toBeNull();
    expect(c.src.conn.callsOf('destroy', UUID)).toHaveLength(1);
    expect(dom.state).toBe(DomainState.RUNNING);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a rescue image the cache lacks', { rescue_image_ref: 'gone-img' }, /^ImageNotFound/],
    ['a rescue image ref that is a path', { rescue_image_ref: '/etc/shadow' }, /rescue_image_ref: '\/etc\/shadow' is not an image id/],
  ])('rescue with %s is refused, the guest running as it was', async (_name, over, message) => {
    const dom = await spawned();
    const xml = dom.xml;
    const err = await call('rescue_instance', { instance: INSTANCE, ...over });
    expect(`${err?.name}: ${err?.message}`).toMatch(message);
    expect(dom.state).toBe(DomainState.RUNNING);
    expect(dom.xml).toBe(xml);
    expect(c.src.conn.callsOf('shutdown', UUID)).toHaveLength(0);
    expect(await exists('disk.rescue')).toBe(false);
  });

  it('unrescue of a guest that is not rescued is refused; so is a rescue or unrescue while it migrates', async () => {
    const dom = await spawned();
    expect((await call('unrescue_instance', { instance: INSTANCE }))?.message).toMatch(/in vm_state active\. Cannot unrescue/);
    dom.behaviour.autoCompleteMs = null;
    const g = { uuid: UUID, instance: { ...INSTANCE, host: c.src.name, volumes: [] }, dom, diskPaths: [] } as unknown as Parameters<typeof startMigration>[1];
    const m = await startMigration(c, g, { blockMigration: true });
    await waitStatus(c.src, m.uuid, S.running);
    expect((await call('rescue_instance', { instance: INSTANCE, rescue_image_ref: 'rescue-img' }))?.message).toMatch(/in task_state migrating\. Cannot rescue/);
    expect((await call('unrescue_instance', { instance: INSTANCE }))?.message).toMatch(/in task_state migrating\. Cannot unrescue/);
  });
});

describe('a guest arriving here is never touched', () => {
  it.each(['rescue_instance', 'unrescue_instance', 'terminate_instance', 'reboot_instance'])('%s on the destination of an incoming migration is refused, its domain left alone', async (method) => {
    await withImages();
    const incoming = c.dst.conn.addDomain(UUID, INSTANCE.name, '<domain/>', { state: DomainState.PAUSED, persistent: false });
    incoming.reason = PausedReason.MIGRATION;
    const err = await call(method, { instance: INSTANCE, rescue_image_ref: 'rescue-img', reboot_type: 'HARD' }, c.dst.name);
    expect(err?.name).toBe('InstanceInvalidState');
    expect(err?.message).toContain('in task_state migrating');
    expect(c.dst.conn.calls.filter((x) => x.on === UUID).map((x) => x.method)).toEqual(['getState', 'getJobStats']);
    expect(incoming.state).toBe(DomainState.PAUSED);
  });
});

describe('live migration of a rescued guest', () => {
  const RESCUED = { ...INSTANCE, host: 'compute-a', vm_state: 'rescued' };
  /** The conductor's part: both checks, then live_migration; the migration's end as the source records it. */
  async function migrateRescued() {
    const checked = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, RESCUED, null, false).catch((e: Error) => e);
    if (checked instanceof Error) return { checked };
    await c.api.liveMigration(adminContext(), c.src.name, { instance: RESCUED, dest: c.dst.name, block_migration: checked.block_migration ?? null, migrate_data: checked, migration: { id: 1, uuid: '9d8c7b6a-5f4e-4d3c-8b2a-190807060504' } });
    return { checked, end: await waitDone(c, '9d8c7b6a-5f4e-4d3c-8b2a-190807060504') };
  }
  async function rescuedGuest(o: Parameters<typeof makeCluster>[0] = {}) {
    await spawned(o);
    expect(await call('rescue_instance', { instance: INSTANCE, rescue_image_ref: 'rescue-img', clean_shutdown: false })).toBeNull();
  }

  it('both checks report supports_live_migrate_rescued; it block-migrates disk.rescue and the root disk, and the kernel files reach the destination', async () => {
    await rescuedGuest();
    const { checked, end } = await migrateRescued();
    expect(checked).toMatchObject({ dst_supports_live_migrate_rescued: true, src_supports_live_migrate_rescued: true, instance_rescued: true, block_migration: true });
    expect(end?.status, end?.error ?? '').toBe(S.completed);
    const [, params] = c.src.conn.callsOf('migrateToURI3')[0]!.args as [string, { migrate_disks: string[] }];
    expect(params.migrate_disks).toEqual(['vda', 'vdb']);
    const dst = (name: string) => c.dst.storage.toReal(`${c.dst.storage.instanceDir(UUID)}/${name}`);
    expect(await fs.readFile(dst('kernel.rescue'), 'utf8')).toBe('rescue kernel bytes');
    expect(await fs.readFile(dst('kernel'), 'utf8')).toBe('kernel bytes');
    expect(await fs.readFile(dst('ramdisk'), 'utf8')).toBe('ramdisk bytes');
  });

  it.each<[string, 'src' | 'dst', RegExp]>([
    ['the destination', 'dst', /destination host compute-b does not support live migration of rescued instances/],
    ['the source', 'src', /source host compute-a does not support live migration of rescued instances/],
  ])('%s without it: the check fails naming that host, nothing moves', async (_name, side, message) => {
    await rescuedGuest({ [side]: { config: { compute: { live_migrate_rescued: false } } } });
    const { checked, end } = await migrateRescued();
    expect(end).toBeUndefined();
    expect((checked as Error).name).toBe('MigrationPreCheckError');
    expect((checked as Error).message).toMatch(message);
    expect(c.src.conn.callsOf('migrateToURI3')).toHaveLength(0);
  });

  it('a live_migration whose destination never said it takes rescued guests (an older host) is refused naming it', async () => {
    await rescuedGuest();
    const checked = await c.api.checkCanLiveMigrateDestination(adminContext(), c.dst.name, RESCUED, null, false);
    const { dst_supports_live_migrate_rescued: _dropped, ...older } = checked;
    const uuid = '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
    await c.api.liveMigration(adminContext(), c.src.name, { instance: RESCUED, dest: c.dst.name, block_migration: true, migrate_data: older, migration: { id: 2, uuid } });
    await c.bus.idle();
    const r = c.src.registry.get(uuid)!;
    expect(r.status).toBe(S.error);
    expect(r.error).toMatch(/destination host compute-b does not support live migration of rescued instances/);
  });
});
