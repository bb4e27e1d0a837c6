// Ports across a migration (Nova's VIFMigrateData in migrate_data.vifs, the
// Ussuri "server move operations with ports having resource request" flow):
// per port, the binding the conductor made on the destination beside the
// source's, with the resource provider its allocation moves to. And ferry's
// report of what the destination plugged (PluggedVif, kept in the record),
// checked where the source reads it, since a peer host wrote it.

import type { Allocation, PluggedVif, ServedVifType } from '../record/registry.js';
import { isInterfaceName, isMacAddress } from '../validate/netdev.js';
import { InvalidInput } from './errors.js';
import type { LiveMigrateData } from './migrate-data.js';

/** Neutron's vnic types (portbindings.VNIC_TYPES). */
export const VNIC_TYPES = [
  'normal',
  'direct',
  'macvtap',
  'direct-physical',
  'baremetal',
  'virtio-forwarder',
  'smart-nic',
  'vdpa',
  'remote-managed',
  'accelerator-direct',
  'accelerator-direct-physical',
] as const;

/** Nova's vif types (nova/network/model.py VIF_TYPE_*). */
export const VIF_TYPES = [
  'ovs',
  'ivs',
  'dvs',
  'iovisor',
  'bridge',
  '802.qbg',
  '802.qbh',
  'hw_veb',
  'hyperv',
  'hostdev_physical',
  'ib_hostdev',
  'midonet',
  'vhostuser',
  'vrouter',
  'other',
  'tap',
  'macvtap',
  'agilio_ovs',
  'binding_failed',
  'vif',
  'unbound',
] as const;

/** What ferry plugs: a libvirt <interface type='bridge'> on a Linux bridge or an Open vSwitch bridge. */
export const SERVED_VIF_TYPES: readonly ServedVifType[] = ['bridge', 'ovs'];

/** The network model VIF of the source binding, the part ferry reads. */
export interface SourceVif {
  /** The port's MAC address: how the guest's <interface> is found. */
  address: string;
  id?: string;
  network?: { bridge?: string | null; meta?: { mtu?: number | null } | null } | null;
  [key: string]: unknown;
}

/** One entry of migrate_data.vifs as Nova sends it: the two JSON fields are strings. */
export interface VifMigrateData {
  port_id: string;
  vnic_type: string;
  vif_type: string;
  /** JSON object, e.g. {"bridge_name": "brq1234"} */
  vif_details_json?: string | null;
  /** JSON object, e.g. {"allocation": "<resource provider uuid>"} */
  profile_json?: string | null;
  /** The host of this (destination) binding. */
  host: string;
  /** Nova's NetworkVIFModelField goes as a JSON string; ferry also takes the object. */
  source_vif: string | SourceVif;
}

/** A VifMigrateData read: its JSON fields parsed (the args schema checked them already). */
export interface PortBinding {
  portId: string;
  vnicType: string;
  vifType: string;
  host: string;
  mac: string;
  details: Record<string, unknown>;
  profile: Record<string, unknown>;
  /** vif_details.bridge_name, else the network's bridge. */
  bridge: string | null;
  mtu: number | null;
  allocation: Allocation | null;
}

/**
 * Reads one entry of migrate_data.vifs.
 *
 *   readPortBinding({ port_id: 'p1', vnic_type: 'normal', vif_type: 'bridge', host: 'b',
 *                     vif_details_json: '{"bridge_name": "brq-b"}', profile_json: '{"allocation": "rp-b"}',
 *                     source_vif: '{"address": "FA:16:3E:00:00:01", "network": {"bridge": "brq-a"}}' })
 *   // { portId: 'p1', mac: 'fa:16:3e:00:00:01', bridge: 'brq-b', allocation: 'rp-b', mtu: null, ... }
 */
export function readPortBinding(v: VifMigrateData): PortBinding {
  const details = objectOf(v.vif_details_json);
  const profile = objectOf(v.profile_json);
  const source = typeof v.source_vif === 'string' ? (JSON.parse(v.source_vif) as SourceVif) : v.source_vif;
  const bridgeName = details.bridge_name;
  return {
    portId: v.port_id,
    vnicType: v.vnic_type,
    vifType: v.vif_type,
    host: v.host,
    mac: source.address.toLowerCase(),
    details,
    profile,
    bridge: typeof bridgeName === 'string' ? bridgeName : (source.network?.bridge ?? null),
    mtu: source.network?.meta?.mtu ?? null,
    allocation: (profile.allocation as Allocation | undefined) ?? null,
  };
}

function objectOf(json: string | null | undefined): Record<string, unknown> {
  return json ? (JSON.parse(json) as Record<string, unknown>) : {};
}

/**
 * The plugged ports of `prepared`, one per port of `asked.vifs`, in that
 * order; `dest` names the host in a refusal.
 */
export function pluggedPorts(asked: LiveMigrateData, prepared: LiveMigrateData, dest: string): PluggedVif[] {
  const where = `${dest}'s pre_live_migration reply`;
  const reply: unknown = prepared.plugged_vifs ?? [];
  if (!Array.isArray(reply)) throw new InvalidInput(`plugged_vifs in ${where}: expected a list`);
  const byPort = new Map<string, PluggedVif>();
  reply.forEach((entry: unknown, i) => {
    const p = checked(entry, `plugged_vifs[${i}] in ${where}`);
    byPort.set(p.port_id, p);
  });
  return (asked.vifs ?? []).map((v) => {
    const p = byPort.get(v.port_id);
    if (!p) throw new InvalidInput(`port ${v.port_id}: ${where} does not say it plugged it`);
    return p;
  });
}

function checked(entry: unknown, what: string): PluggedVif {
  if (typeof entry !== 'object' || entry === null) throw new InvalidInput(`${what}: expected an object`);
  const e = entry as Record<string, unknown>;
  const field = (name: string, ok: boolean) => {
    if (!ok) throw new InvalidInput(`${what}.${name}: ${JSON.stringify(e[name]) ?? 'missing'} is not valid`);
  };
  const str = (name: string) => typeof e[name] === 'string';
  field('port_id', str('port_id'));
  field('host', str('host'));
  field('vnic_type', str('vnic_type'));
  field('vif_type', SERVED_VIF_TYPES.includes(e.vif_type as never));
  field('mac', str('mac') && isMacAddress(e.mac as string));
  field('bridge', str('bridge') && isInterfaceName(e.bridge as string));
  field('mtu', e.mtu === null || (Number.isInteger(e.mtu) && (e.mtu as number) >= 68 && (e.mtu as number) <= 65535));
  field('allocation', e.allocation === null || isAllocation(e.allocation));
  return {
    port_id: e.port_id as string,
    host: e.host as string,
    vnic_type: e.vnic_type as string,
    vif_type: e.vif_type as PluggedVif['vif_type'],
    mac: (e.mac as string).toLowerCase(),
    bridge: e.bridge as string,
    mtu: e.mtu as number | null,
    allocation: e.allocation as Allocation | null,
  };
}

function isAllocation(v: unknown): v is Allocation {
  if (typeof v === 'string') return true;
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}
