// Migration networking on real hosts: a split migration network (each lab
// host has a management address and a separate migration address), a port
// whose binding moves it from one host's bridge to another's, and native TLS
// with a throwaway CA. The streams are seen with `ss` while they run.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestConductor } from '../conductor/conductor.js';
import { makeCa } from '../lab/certs.js';
import { run } from '../lab/exec.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import { writeTlsDir, type LabHost } from '../lab/lab.js';
import { describeLab } from '../lab/requires.js';
import type { VifMigrateData } from '../../src/nova/vifs.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, type LabGuest } from './fixture.js';
import { LAB_DISK_IMAGE } from './spawn.js';

/** A bandwidth cap that keeps a 256 MiB guest and a 64 MiB disk in flight for several seconds. */
const CAP = 10;
const MIB = 2 ** 20;

interface Connection {
  local: string;
  peerAddr: string;
  peerPort: number;
  pid: number;
}

/** Established TCP connections with their owning process, as `ss -tnp` shows them. */
async function connections(): Promise<Connection[]> {
  const out = (await run('ss', ['-H', '-t', '-n', '-p', 'state', 'established'])).stdout;
  const found: Connection[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*\d+\s+\d+\s+(\S+)\s+(\S+):(\d+)\s+users:\(\("[^"]*",pid=(\d+)/.exec(line);
    if (m) found.push({ local: m[1]!, peerAddr: m[2]!.replace(/^\[|\]$/g, ''), peerPort: Number(m[3]), pid: Number(m[4]) });
  }
  return found;
}

/** The connections of the source's QEMU and libvirtd, sampled every 200 ms until `done` settles. */
async function watchStreams(src: LabHost, done: Promise<unknown>): Promise<Connection[]> {
  const seen = new Map<string, Connection>();
  let over = false;
  void done.finally(() => (over = true));
  while (!over) {
    const pids = new Set([...src.qemuPids(), src.libvirtdPid]);
    for (const c of await connections()) if (pids.has(c.pid)) seen.set(`${c.pid} ${c.local} ${c.peerAddr}:${c.peerPort}`, c);
    await new Promise((r) => setTimeout(r, 200));
  }
  return [...seen.values()];
}

/** The migration port range the lab gives host N in qemu.conf (test/lab/lab.ts qemuConf). */
const migrationPorts = (h: LabHost) => ({ min: 49152 + h.index * 64, max: 49152 + h.index * 64 + 63 });

describeLab('migration networking', () => {
  describe('a split migration network', () => {
    let cluster: LabCluster;
    let a: LabHost;
    let b: LabHost;
    let conductor: TestConductor;

    beforeAll(async () => {
      cluster = await startLabCluster({ name: 'net', addrBase: 140, migrationAddrBase: 150 });
      ({ a, b, conductor } = cluster);
      // Consoles follow the destination's configuration: its management address.
      const consoles = (h: LabHost) => ({ vnc: { server_listen: h.addr }, serial_console: { enabled: true, port_range: '4601:4610', proxyclient_address: h.addr } });
      await cluster.useAgents({ libvirt: { live_migration_bandwidth: CAP } }, { a: consoles(a), b: consoles(b) });
    });
    afterEach(async () => {
      await cluster.removeGuests();
    });
    afterAll(async () => {
      await cluster?.close();
    });

    it('sends memory and the disk mirror over the migration addresses, never the management ones; consoles land on the destination\'s address', async () => {
      expect(a.migrationAddr).not.toBe(a.addr);
      // A guest of B's own has the first console port there.
      const resident = await cluster.boot({}, b);
      expect((await b.virsh(['dumpxml', resident.uuid])).stdout).toContain(`<source mode='bind' host='${b.addr}' service='4601'`);
      // ferryd on A spawns it with a VNC server and a serial console on A's management address, the console on the first port of its range.
      const g: LabGuest = await cluster.boot({ image: LAB_DISK_IMAGE });
      const onA = (await a.virsh(['dumpxml', g.uuid])).stdout;
      expect(onA).toMatch(new RegExp(`<graphics type='vnc' port='\\d+' autoport='yes' listen='${a.addr.replace(/\./g, '\\.')}'`));
      expect(/<serial type='tcp'>[\s\S]*?<\/serial>/.exec(onA)?.[0]).toContain(`<source mode='bind' host='${a.addr}' service='4601'`);

      const { migrationUuid, migrateData } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
      expect(migrateData.block_migration).toBe(true);
      expect(migrateData).toMatchObject({ graphics_listen_addr_vnc: b.addr, serial_listen_addr: b.addr });
      const ended = conductor.waitForEnd(migrationUuid);
      const seen = await watchStreams(a, ended);
      const end = await ended;
      expect(end.status, end.error ?? '').toBe('completed');

      const started = (await cluster.agentOn(a).logs()).find((l) => l.msg === 'migration transfer started' && l.migration === migrationUuid);
      expect(started?.uri).toBe(`qemu+tcp://${b.migrationAddr}/system`);
      expect(started?.disks).toEqual(['vda']);
      // The source QEMU's streams: the memory stream and the NBD mirror of vda, two ports of the
      // destination's migration range on its migration address.
      const qemu = seen.filter((c) => c.pid !== a.libvirtdPid);
      const ports = migrationPorts(b);
      const streamPorts = new Set(qemu.filter((c) => c.peerAddr === b.migrationAddr && c.peerPort >= ports.min && c.peerPort <= ports.max).map((c) => c.peerPort));
      expect(streamPorts.size, JSON.stringify(seen)).toBeGreaterThanOrEqual(2);
      // libvirt's peer-to-peer connection goes there too, as Nova sends it to target_connect_addr.
      expect(seen.some((c) => c.pid === a.libvirtdPid && c.peerAddr === b.migrationAddr && c.peerPort === 16509)).toBe(true);
      // Nothing of the source's went to the destination's management address.
      expect(seen.filter((c) => c.peerAddr === b.addr)).toEqual([]);

      await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
      const xml = (await b.virsh(['dumpxml', g.uuid])).stdout;
      expect(xml).toMatch(new RegExp(`<graphics type='vnc' port='\\d+' autoport='yes' listen='${b.addr.replace(/\./g, '\\.')}'`));
      // On a port B held for it (serial_listen_ports, one per serial port: 4602 for the first, 4603 for its console), not its own 4601 that B's guest has.
      expect(/<serial type='tcp'>[\s\S]*?<\/serial>/.exec(xml)?.[0]).toContain(`<source mode='bind' host='${b.addr}' service='4603'`);
      // The guest's console really listens there.
      const listening = (await run('ss', ['-H', '-t', '-l', '-n', 'src', `${b.addr}:4603`])).stdout;
      expect(listening).toContain(`${b.addr}:4603`);
    });
  });

  describe('a port with a resource request, from one host\'s bridge to another\'s', () => {
    let cluster: LabCluster;
    let a: LabHost;
    let b: LabHost;
    let conductor: TestConductor;
    const PORT = '5a2f3c1e-7d4b-4e8a-9c6f-0b1d2e3f4a5b';
    const RP_B = 'c0ffee00-1111-4222-8333-444455556666';
    const MAC = 'fa:16:3e:4e:00:01';

    /** The conductor's binding of the port on b (Neutron's linuxbridge names the bridge per host), its allocation on b's provider. */
    const binding = (bridge: string): VifMigrateData => ({
      port_id: PORT,
      vnic_type: 'normal',
      vif_type: 'bridge',
      host: b.hostname,
      vif_details_json: JSON.stringify({ bridge_name: bridge }),
      profile_json: JSON.stringify({ allocation: RP_B }),
      source_vif: JSON.stringify({ id: PORT, address: MAC, type: 'bridge', details: { bridge_name: a.bridge }, network: { bridge: a.bridge } }),
    });
    const onBridge = async (bridge: string) => (await run('ip', ['-o', 'link', 'show', 'master', bridge])).stdout;

    beforeAll(async () => {
      cluster = await startLabCluster({ name: 'port', addrBase: 190, bridges: true });
      ({ a, b, conductor } = cluster);
      expect(a.bridge).not.toBe(b.bridge);
      await cluster.useAgents({});
    });
    afterEach(async () => {
      await cluster.removeGuests();
    });
    afterAll(async () => {
      await cluster?.close();
    });

    it('lands on the bridge its destination binding names; the binding and its allocation are reported', async () => {
      const g = await cluster.boot({ nics: [{ mac: MAC, bridge: a.bridge!, portId: PORT }] });
      expect(await onBridge(a.bridge!)).toMatch(/vnet\d+/);
      const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, vifs: [binding(b.bridge!)] });
      const end = await conductor.waitForEnd(migrationUuid);
      expect(end.status, end.error ?? '').toBe('completed');
      expect(end.port_bindings).toEqual([{ port_id: PORT, host: b.hostname, vnic_type: 'normal', vif_type: 'bridge', mac: MAC, bridge: b.bridge, mtu: null, allocation: RP_B }]);
      const xml = (await b.virsh(['dumpxml', g.uuid])).stdout;
      expect(xml).toMatch(new RegExp(`<mac address='${MAC}'/>\\s*<source bridge='${b.bridge}'/>`));
      // The guest's tap is on b's bridge; a's has none left.
      expect(await onBridge(b.bridge!)).toMatch(/vnet\d+/);
      expect(await onBridge(a.bridge!)).toBe('');
      await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    });

    it('a binding naming a bridge the destination lacks fails in pre_live_migration naming the port; nothing is copied and the guest runs on on its bridge', async () => {
      const g = await cluster.boot({ nics: [{ mac: MAC, bridge: a.bridge!, portId: PORT }] });
      const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null, vifs: [binding('brq-missing')] });
      const end = await conductor.waitForEnd(migrationUuid);
      expect(end.status).toBe('failed');
      expect(end.error).toContain(`Migration pre-check error: port ${PORT}: Linux bridge brq-missing is not on ${b.hostname}`);
      expect(conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'failed']);
      expect((await cluster.agentOn(a).logs()).some((l) => l.msg === 'migration transfer started' && l.migration === migrationUuid)).toBe(false);
      expect(await domainState(a, g.uuid)).toBe('running');
      expect(await domainState(b, g.uuid)).toBeNull();
      expect((await a.virsh(['dumpxml', g.uuid])).stdout).toMatch(new RegExp(`<source bridge='${a.bridge}'/>`));
      expect(await onBridge(a.bridge!)).toMatch(/vnet\d+/);
      await waitForHeartbeat(a, g.uuid, { after: await lastHeartbeat(a, g.uuid), timeoutMs: 15_000 });
    });
  });

  describe('native TLS', () => {
    let cluster: LabCluster;
    let a: LabHost;
    let b: LabHost;
    let conductor: TestConductor;

    beforeAll(async () => {
      cluster = await startLabCluster({ name: 'tls', addrBase: 160, migrationAddrBase: 170, tls: true });
      ({ a, b, conductor } = cluster);
      await cluster.useAgents({ libvirt: { live_migration_bandwidth: CAP, live_migration_with_native_tls: true } });
    });
    afterEach(async () => {
      await cluster.removeGuests();
    });
    afterAll(async () => {
      await cluster?.close();
    });

    /** The migration parameters of the guest's QEMU on `host` (QMP query-migrate-parameters). */
    async function migrateParameters(host: LabHost, g: LabGuest): Promise<Record<string, unknown>> {
      const out = (await host.virsh(['qemu-monitor-command', g.uuid, '{"execute":"query-migrate-parameters"}'])).stdout;
      return (JSON.parse(out) as { return: Record<string, unknown> }).return;
    }

    it('migrates with VIR_MIGRATE_TLS: QEMU\'s stream runs over TLS credentials, the hostname checked against the destination\'s certificate', async () => {
      const g = await cluster.boot({});
      const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
      // While it runs, the source QEMU's migration has TLS credentials and the host it checks.
      let params: Record<string, unknown> = {};
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        params = await migrateParameters(a, g).catch(() => ({}));
        if (params['tls-creds']) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(params['tls-creds']).toMatch(/tls/);
      expect(params['tls-hostname']).toBe(b.migrationAddr);
      const end = await conductor.waitForEnd(migrationUuid);
      expect(end.status, end.error ?? '').toBe('completed');
      expect((end.memory_processed ?? 0) / MIB).toBeGreaterThan(10);
      const started = (await cluster.agentOn(a).logs()).find((l) => l.msg === 'migration transfer started' && l.migration === migrationUuid);
      expect(Number(started?.flags) & 65536).toBe(65536);
      await waitForHeartbeat(b, g.uuid, { after: await lastHeartbeat(b, g.uuid), timeoutMs: 15_000 });
    });

    it('to a host whose certificate no CA of the source signed, fails with the cause named and leaves the guest running on the source', async () => {
      // b's certificates from an unrelated CA, written over the good ones; QEMU reads them at each migration.
      const caDir = b.tlsDir!;
      writeTlsDir(caDir, makeCa(caDir, 'unrelated-ca', 'unrelated CA'), b.name, b.migrationAddr);
      const g = await cluster.boot({});
      const { migrationUuid } = await conductor.migrate({ instance: g.instance, source: a.hostname, dest: b.hostname, blockMigration: null });
      const end = await conductor.waitForEnd(migrationUuid);
      expect(end.status).toBe('failed');
      // GnuTLS's cause, and ferry's word that it is the native TLS that failed.
      expect(end.error).toMatch(new RegExp(`^native TLS migration to tcp://${b.migrationAddr.replace(/\./g, '\\.')} failed`));
      expect(end.error).toContain("The certificate hasn't got a known issuer");
      expect(await domainState(a, g.uuid)).toBe('running');
      expect(await domainState(b, g.uuid)).toBeNull();
      await waitForHeartbeat(a, g.uuid, { after: await lastHeartbeat(a, g.uuid), timeoutMs: 15_000 });
    });
  });
});
