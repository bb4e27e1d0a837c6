// Ports with a resource request across a migration, between two fake hosts:
// the destination checks each port's binding before anything is prepared,
// the source puts each interface onto its destination bridge, and the
// plugged bindings with their allocations reach list_migrations and the
// conductor. Bad bindings are refused with the field or the port named.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { instanceArg } from '../../src/nova/objects.js';
import type { MigrationView } from '../../src/nova/migration-view.js';
import { MigrationReporter } from '../../src/nova/reporter.js';
import type { VifMigrateData } from '../../src/nova/vifs.js';
import { adminContext, RecordingRpcClient } from './fakes/rpc.js';
import { leftovers, makeCluster, makeGuest, startMigration, waitDone, waitStatus, S, type Cluster } from './fakes/cluster.js';

let c: Cluster;
afterEach(async () => {
  await c?.cleanup();
});

const PORT = '5a2f3c1e-7d4b-4e8a-9c6f-0b1d2e3f4a5b';
const RP_B = 'c0ffee00-1111-4222-8333-444455556666';
const MAC = 'FA:16:3E:12:34:56';

/** The conductor's binding of the port on compute-b, beside its source one on brq-a. */
function vif(over: Partial<VifMigrateData> & { details?: Record<string, unknown>; profile?: Record<string, unknown> } = {}): VifMigrateData {
  const { details = { bridge_name: 'brq-b' }, profile = { allocation: RP_B }, ...rest } = over;
  return {
    port_id: PORT,
    vnic_type: 'normal',
    vif_type: 'bridge',
    host: 'compute-b',
    vif_details_json: JSON.stringify(details),
    profile_json: JSON.stringify(profile),
    source_vif: JSON.stringify({ id: PORT, address: MAC, type: 'bridge', network: { bridge: 'brq-a', meta: { mtu: 1450 } } }),
    ...rest,
  };
}

async function guestOnBridge(mtu?: number) {
  c = await makeCluster({ sharedStorage: true });
  c.dst.network.bridges.set('brq-b', 'linux');
  c.dst.network.bridges.set('br-int', 'ovs');
  return makeGuest(c, { disks: [{ dev: 'vda', file: 'disk' }], interfaces: [{ mac: MAC.toLowerCase(), bridge: 'brq-a', ...(mtu ? { mtu } : {}) }] });
}

const destinationXmlOf = (cl: Cluster) => (cl.src.conn.callsOf('migrateToURI3')[0]!.args[1] as { destination_xml: string }).destination_xml;

describe('ports with a resource request', () => {
  it('a Linux bridge port: the interface lands on the bridge its destination binding names, and the binding with its allocation is reported', async () => {
    const g = await guestOnBridge();
    const conductor = new RecordingRpcClient();
    new MigrationReporter(c.src.registry, conductor, 'conductor', silentLogger);
    const { uuid } = await startMigration(c, g, { vifs: [vif()] });
    const r = await waitDone(c, uuid);
    expect(r.status, r.error ?? '').toBe(S.completed);
    const xml = destinationXmlOf(c);
    expect(xml).toContain('<source bridge="brq-b"/>');
    expect(xml).not.toContain('brq-a');
    // Its PCI address stays; no <mtu> appears where the guest had none.
    expect(xml).toContain('slot="0x03"');
    expect(xml).not.toContain('<mtu');
    const binding = { port_id: PORT, host: 'compute-b', vnic_type: 'normal', vif_type: 'bridge', mac: MAC.toLowerCase(), bridge: 'brq-b', mtu: 1450, allocation: RP_B };
    const [view] = await c.api.listMigrations(adminContext(), c.src.name);
    expect(view!.port_bindings).toEqual([binding]);
    // The conductor heard it in migration_update.
    await new Promise((res) => setImmediate(res));
    const completed = conductor.sent.filter((m) => m.method === 'migration_update').map((m) => m.args as { migration: MigrationView }).at(-1)!.migration;
    expect(completed.status).toBe('completed');
    expect(completed.port_bindings).toEqual([binding]);
  });

  it('an Open vSwitch port: <virtualport type=openvswitch> with the port id; an <mtu> the guest had takes the destination network\'s size', async () => {
    const g = await guestOnBridge(1500);
    const { uuid } = await startMigration(c, g, { vifs: [vif({ vif_type: 'ovs', details: { bridge_name: 'br-int', port_filter: true } })] });
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    const xml = destinationXmlOf(c);
    expect(xml).toContain('<source bridge="br-int"/>');
    expect(xml).toContain(`<virtualport type="openvswitch"><parameters interfaceid="${PORT}"/></virtualport>`);
    expect(xml).toContain('<mtu size="1450"/>');
  });

  it.each<[string, Partial<VifMigrateData> & { details?: Record<string, unknown> }, RegExp]>([
    ['a bridge missing on the destination', { details: { bridge_name: 'brq-gone' } }, /port 5a2f3c1e-7d4b-4e8a-9c6f-0b1d2e3f4a5b: Linux bridge brq-gone is not on compute-b/],
    ['an ovs port naming a Linux bridge', { vif_type: 'ovs', details: { bridge_name: 'brq-b' } }, /Open vSwitch bridge brq-b is a Linux bridge on compute-b/],
    ['vnic_type direct (SR-IOV) on a host without it', { vnic_type: 'direct', vif_type: 'hw_veb', details: {} }, /vnic_type 'direct' needs a device compute-b does not offer/],
    ['a vif type ferry does not plug', { vif_type: 'vhostuser' }, /vif_type 'vhostuser' is not one ferry plugs/],
    ['a failed binding', { vif_type: 'binding_failed' }, /its binding on compute-b is binding_failed/],
    ['a binding for another host', { host: 'compute-c' }, /its destination binding is for host compute-c, not compute-b/],
  ])('%s: MigrationPreCheckError naming the port, before anything is made or copied; the guest stays as it was', async (_name, over, message) => {
    const g = await guestOnBridge();
    const before = await g.dom.getXMLDesc(0);
    const { uuid } = await startMigration(c, g, { vifs: [vif(over)] });
    const r = await waitDone(c, uuid);
    expect(r.status).toBe(S.failed);
    expect(r.error).toMatch(message);
    expect(r.error).toMatch(/^MigrationPreCheckError|Migration pre-check error/);
    expect(c.src.conn.callsOf('migrateToURI3')).toHaveLength(0);
    expect(await g.dom.getXMLDesc(0)).toBe(before);
    // Nothing on the destination (the instance path is shared: the folder is the source's own).
    expect((await leftovers(c.dst, g.uuid)).domain).toBe(false);
    expect(c.dst.conn.calls.filter((call) => call.on === g.uuid)).toEqual([]);
  });

  it('rolled back after the destination plugged it (an operator abort): the source interface stays on its bridge, the destination holds nothing', async () => {
    const g = await guestOnBridge();
    const before = await g.dom.getXMLDesc(0);
    g.dom.behaviour.autoCompleteMs = null;
    const { uuid, id } = await startMigration(c, g, { vifs: [vif()] });
    await waitStatus(c.src, uuid, S.running);
    await g.dom.whenMigrating();
    expect(destinationXmlOf(c)).toContain('<source bridge="brq-b"/>');
    await c.api.liveMigrationAbort(adminContext(), c.src.name, instanceArg(g.instance), id, 'call');
    expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
    expect(await g.dom.getXMLDesc(0)).toBe(before);
    expect((await leftovers(c.dst, g.uuid)).domain).toBe(false);
    expect(c.dst.conn.domains.has(g.uuid)).toBe(false);
  });

  it('never refuses a port for its resource request: one with two request groups migrates, its allocations reported as given', async () => {
    const g = await guestOnBridge();
    const allocation = { 'group-bw': RP_B, 'group-pps': 'c0ffee00-7777-4888-9999-aaaabbbbcccc' };
    const { uuid } = await startMigration(c, g, { vifs: [vif({ profile: { allocation } })] });
    expect((await waitDone(c, uuid)).status).toBe(S.completed);
    const [view] = await c.api.listMigrations(adminContext(), c.src.name);
    expect(view!.port_bindings[0]!.allocation).toEqual(allocation);
  });
});
