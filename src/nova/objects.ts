// Nova sends objects as primitives ({"nova_object.name", "nova_object.data", ...});
// other conductors may send plain JSON with the same fields. ferry unwraps both
// into plain objects and reads only the fields it needs.

import { isPlainObject } from '../rpc/args.js';

export function unwrapNovaObjects(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapNovaObjects);
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  if ('nova_object.data' in obj && 'nova_object.name' in obj) return unwrapNovaObjects(obj['nova_object.data']);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = unwrapNovaObjects(v);
  return out;
}

/** A volume attached to the instance, from its block device mappings. */
export interface VolumeRef {
  /** Guest device name without /dev/, e.g. "vdb". */
  dev: string;
  volumeId: string | null;
  serial: string | null;
  /** Host path of the block device, from connection_info.data.device_path. */
  devicePath: string | null;
  connectionInfo: Record<string, unknown>;
}

export interface InstanceRef {
  uuid: string;
  name: string | null;
  host: string | null;
  node: string | null;
  vmState: string | null;
  taskState: string | null;
  memoryMb: number | null;
  vcpus: number | null;
  rootGb: number | null;
  volumes: VolumeRef[];
}

export interface MigrationRef {
  id: number | null;
  uuid: string | null;
  sourceCompute: string | null;
  destCompute: string | null;
}

type Obj = Record<string, unknown>;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Obj | null => (isPlainObject(v) ? v : null);

/** connection_info may arrive as a JSON string (Nova's BDM field) or an object. */
function parseConnectionInfo(v: unknown): Obj {
  if (typeof v === 'string') {
    try {
      return obj(JSON.parse(v)) ?? {};
    } catch {
      return {};
    }
  }
  return obj(v) ?? {};
}

function volumeFromBdm(bdm: Obj): VolumeRef | null {
  if (bdm.destination_type !== undefined && bdm.destination_type !== 'volume') return null;
  const device = str(bdm.device_name) ?? str(bdm.mount_device);
  if (!device) return null;
  const connectionInfo = parseConnectionInfo(bdm.connection_info);
  const data = obj(connectionInfo.data) ?? {};
  return {
    dev: device.replace(/^\/dev\//, ''),
    volumeId: str(bdm.volume_id),
    serial: str(connectionInfo.serial) ?? str(bdm.volume_id),
    devicePath: str(data.device_path),
    connectionInfo,
  };
}

export function readInstance(raw: unknown): InstanceRef {
  const inst = obj(raw) ?? {};
  const flavor = obj(inst.flavor) ?? {};
  const bdms = Array.isArray(inst.block_device_mappings) ? inst.block_device_mappings : [];
  return {
    uuid: String(inst.uuid),
    name: str(inst.name) ?? str(inst.display_name),
    host: str(inst.host),
    node: str(inst.node),
    vmState: str(inst.vm_state),
    taskState: str(inst.task_state),
    memoryMb: num(flavor.memory_mb) ?? num(inst.memory_mb),
    vcpus: num(flavor.vcpus) ?? num(inst.vcpus),
    rootGb: num(flavor.root_gb) ?? num(inst.root_gb),
    volumes: bdms.map((b) => obj(b)).flatMap((b) => (b ? [volumeFromBdm(b)] : [])).filter((v): v is VolumeRef => v !== null),
  };
}

export function readMigration(raw: unknown): MigrationRef {
  const m = obj(raw) ?? {};
  return {
    id: num(m.id),
    uuid: str(m.uuid),
    sourceCompute: str(m.source_compute),
    destCompute: str(m.dest_compute),
  };
}

/** The instance as ferry passes it between hosts: plain JSON with the fields readInstance reads back. */
export function instanceArg(i: InstanceRef): Record<string, unknown> {
  return {
    uuid: i.uuid,
    name: i.name,
    host: i.host,
    node: i.node,
    vm_state: i.vmState,
    task_state: i.taskState,
    flavor: { memory_mb: i.memoryMb, vcpus: i.vcpus, root_gb: i.rootGb },
    block_device_mappings: i.volumes.map((v) => ({
      device_name: `/dev/${v.dev}`,
      destination_type: 'volume',
      volume_id: v.volumeId,
      connection_info: v.connectionInfo,
    })),
  };
}
