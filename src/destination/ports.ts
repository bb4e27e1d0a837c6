// pre_live_migration's ports: each port's destination binding checked
// against this host before anything else is prepared, so a port this host
// cannot serve fails the migration as MigrationPreCheckError naming the port
// (the conductor can pick another host) with nothing copied or made.
// "Plugging" a bridge port is finding its bridge here: libvirt attaches the
// guest's tap to it when the guest arrives, and removes the tap with the
// guest, so a roll back has no device of the host's to remove.

import type { HostNetwork } from '../domain/host-network.js';
import { MigrationPreCheckError } from '../nova/errors.js';
import { readPortBinding, type VifMigrateData } from '../nova/vifs.js';
import type { PluggedVif } from '../record/registry.js';

/** What each served vif type needs of the bridge its binding names. */
const BRIDGE_KIND = { bridge: 'linux', ovs: 'ovs' } as const;
const BRIDGE_WORD = { linux: 'Linux bridge', ovs: 'Open vSwitch bridge' } as const;

/** Checks every port's destination binding on this host; the ports as plugged, in the order given. */
export async function plugPorts(host: string, network: HostNetwork, vifs: readonly VifMigrateData[]): Promise<PluggedVif[]> {
  const plugged: PluggedVif[] = [];
  for (const vif of vifs) {
    const b = readPortBinding(vif);
    const refuse = (why: string) => new MigrationPreCheckError(`port ${b.portId}: ${why}`);
    if (b.host !== host) throw refuse(`its destination binding is for host ${b.host}, not ${host}`);
    if (b.vifType === 'binding_failed' || b.vifType === 'unbound') throw refuse(`its binding on ${host} is ${b.vifType}`);
    if (b.vnicType !== 'normal') throw refuse(`vnic_type '${b.vnicType}' needs a device ${host} does not offer to ferry (it plugs 'normal' ports on bridges only)`);
    if (b.vifType !== 'bridge' && b.vifType !== 'ovs') throw refuse(`vif_type '${b.vifType}' is not one ferry plugs (bridge, ovs)`);
    if (b.bridge === null) throw refuse(`its binding names no bridge (vif_details.bridge_name)`);
    const want = BRIDGE_KIND[b.vifType];
    const found = await network.bridgeKind(b.bridge);
    if (found !== want) throw refuse(`${BRIDGE_WORD[want]} ${b.bridge} ${found === null ? 'is not on' : `is a ${BRIDGE_WORD[found]} on`} ${host}`);
    plugged.push({ port_id: b.portId, host, vnic_type: b.vnicType, vif_type: b.vifType, mac: b.mac, bridge: b.bridge, mtu: b.mtu, allocation: b.allocation });
  }
  return plugged;
}
