// What a config drive holds for an instance record: the subset of Nova's
// metadata (nova/api/metadata/base.py) that cloud-init reads from
// openstack/latest/. No random_seed and no dated version folders, so the
// same record gives the same files.

import type { DestinationInterface } from '../domain/destination-xml.js';
import { isPlainObject } from '../rpc/args.js';
import { InvalidInput } from './errors.js';

type Obj = Record<string, unknown>;

const LATEST = 'openstack/latest';

/**
 * The drive's files (path in the drive -> contents) for the instance `raw`,
 * whose ports readGuestDefinition read into `interfaces`.
 *
 *   configDriveFiles({ uuid: 'u', display_name: 'web', hostname: 'web', metadata: { role: 'db' } }, [])
 *   // { 'openstack/latest/meta_data.json': '{"uuid":"u","name":"web","hostname":"web","launch_index":0,
 *   //                                        "availability_zone":null,"project_id":null,"meta":{"role":"db"}}',
 *   //   'openstack/latest/network_data.json': '{"links":[],"networks":[],"services":[]}',
 *   //   'openstack/latest/vendor_data.json': '{}' }
 */
export function configDriveFiles(raw: Obj, interfaces: readonly DestinationInterface[]): Record<string, string | Uint8Array> {
  const str = (k: string): string | null => (typeof raw[k] === 'string' && raw[k] !== '' ? (raw[k] as string) : null);
  const meta = raw.metadata ?? {};
  if (!isPlainObject(meta) || Object.values(meta).some((v) => typeof v !== 'string')) throw new InvalidInput('instance.metadata: expected an object of strings');
  const launchIndex = raw.launch_index ?? 0;
  if (typeof launchIndex !== 'number' || !Number.isInteger(launchIndex) || launchIndex < 0) throw new InvalidInput('instance.launch_index: expected an integer >= 0');
  const metaData = {
    uuid: String(raw.uuid),
    name: str('display_name') ?? str('name'),
    hostname: str('hostname'),
    launch_index: launchIndex,
    availability_zone: str('availability_zone'),
    project_id: str('project_id'),
    meta,
  };
  const files: Record<string, string | Uint8Array> = {
    [`${LATEST}/meta_data.json`]: JSON.stringify(metaData),
    [`${LATEST}/network_data.json`]: JSON.stringify({ links: links(interfaces), networks: [], services: [] }),
    [`${LATEST}/vendor_data.json`]: '{}',
  };
  const userData = str('user_data');
  if (userData !== null) files[`${LATEST}/user_data`] = decodeUserData(userData);
  return files;
}

/** Nova keeps user_data base64-encoded; the drive holds it decoded. */
function decodeUserData(b64: string): Uint8Array {
  const compact = b64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) throw new InvalidInput('instance.user_data: expected base64');
  return Buffer.from(compact, 'base64');
}

/** One link per port, named tap<port id> as Nova names the device. */
function links(interfaces: readonly DestinationInterface[]): Obj[] {
  return interfaces.map((i) => ({ id: `tap${i.portId.slice(0, 11)}`, vif_id: i.portId, type: i.vifType, ethernet_mac_address: i.mac, mtu: i.mtu }));
}
