// The args of Nova's live-migration compute RPC methods, as zod schemas.
// Objects are loose: Nova objects carry many fields ferry reads later
// (readInstance reads display_name, node, vm_state) or passes back on.
import { z } from 'zod';
import { TIMEOUT_ACTIONS } from '../config/index.js';
import { VIF_TYPES, VNIC_TYPES, type SourceVif } from '../nova/vifs.js';
import { describeIssue, failsAs } from '../rpc/args.js';
import { isAddress, isHostName, parseHostPort } from '../validate/address.js';
import { isInterfaceName, isMacAddress } from '../validate/netdev.js';

export const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

const uuid = z.string().regex(UUID);
const size = z.int().min(0);
/** Nova's column sizes: a name or host name is at most 255 characters; a path at most PATH_MAX. */
const name = z.string().max(255);
const path = z.string().max(4096);
/** The longest per-migration completion timeout a caller may set. */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

export const instance = z.looseObject({
  uuid,
  name: name.nullish(),
  display_name: name.nullish(),
  host: name.nullish(),
  node: name.nullish(),
  flavor: z
    .looseObject({
      memory_mb: size.nullish(),
      vcpus: size.nullish(),
      root_gb: size.nullish(),
    })
    .nullish(),
  block_device_mappings: z.array(z.looseObject({ device_name: z.string().nullish() })).nullish(),
});

/**
 * A JSON object that `schema` accepts, sent as a JSON string (Nova's *_json
 * fields) or, with `orObject`, as the object itself; its issues keep their
 * paths inside it ("...vif_details_json.bridge_name: ...").
 */
function jsonObject<Out = string>(schema: z.ZodType, opts: { orObject?: boolean } = {}): z.ZodType<Out> {
  const checked = z.unknown().superRefine((raw, ctx) => {
    let value = raw;
    if (typeof raw === 'string') {
      try {
        value = JSON.parse(raw);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a JSON object, got malformed JSON' });
        return;
      }
    } else if (!opts.orObject) {
      ctx.addIssue({ code: 'custom', message: `expected a JSON string, got ${raw === null ? 'null' : typeof raw}` });
      return;
    }
    const parsed = schema.safeParse(value, { error: describeIssue });
    for (const issue of parsed.error?.issues ?? []) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  });
  // What passed the check is the wire value itself, untouched: its type is what the check proved.
  return checked as unknown as z.ZodType<Out>;
}

const listenAddr = name.refine(isAddress, 'expected an IP address or host name');
const ifname = z.string().refine(isInterfaceName, 'expected a network device name (1-15 letters, digits, _ . -)');
const providerUuid = z.string().regex(UUID);
/** One entry of migrate_data.vifs (Nova's VIFMigrateData), with what ferry reads of its JSON fields. */
const vif = z.looseObject({
  port_id: uuid,
  vnic_type: z.enum(VNIC_TYPES),
  vif_type: z.enum(VIF_TYPES),
  vif_details_json: jsonObject(z.looseObject({ bridge_name: ifname.optional() })).nullish(),
  // allocation: the destination resource provider, or one per request group.
  profile_json: jsonObject(
    z.looseObject({
      allocation: z.union([providerUuid, z.record(name, providerUuid)], { error: failsAs('expected a resource provider uuid, or an object of them by request group') }).optional(),
    }),
  ).nullish(),
  host: name.refine(isHostName, 'expected a host name'),
  source_vif: jsonObject<string | SourceVif>(
    z.looseObject({
      address: z.string().refine(isMacAddress, 'expected a MAC address such as fa:16:3e:12:34:56'),
      network: z.looseObject({ bridge: ifname.nullish(), meta: z.looseObject({ mtu: z.int().min(68).max(65535).nullish() }).nullish() }).nullish(),
    }),
    { orObject: true },
  ),
});

/** The fields of LibvirtLiveMigrateData ferry checks; the rest passes through. */
export const migrateData = z.looseObject({
  vifs: z.array(vif).max(256).nullish(),
  block_migration: z.boolean().nullish(),
  is_shared_instance_path: z.boolean().optional(),
  is_shared_block_storage: z.boolean().optional(),
  target_connect_addr: name.refine((v) => parseHostPort(v) !== null, 'expected an IP address or host name, with an optional port').nullish(),
  // Written into the guest's XML by the source: addresses only, no port.
  graphics_listen_addr_vnc: listenAddr.nullish(),
  graphics_listen_addr_spice: listenAddr.nullish(),
  serial_listen_addr: listenAddr.nullish(),
  serial_listen_ports: z.array(z.int().min(1).max(65535)).max(64).nullish(),
  disk_available_mb: z.int().nullish(),
  filename: path.nullish(),
  dst_supported_guests: z.array(z.string()).optional(),
});

export const diskInfo = z.looseObject({
  path,
  type: z.enum(['qcow2', 'raw']),
  virt_disk_size: size,
  disk_size: size.optional(),
  dev: name.optional(),
  backing_chain: z.array(z.looseObject({ path, format: name, virtual_size: size })).optional(),
});

const DISK_LIST = 'expected a list of disks';

/** Nova sends `disk` as a JSON string (get_instance_disk_info); ferry also takes the list itself. None means no disks. */
export const disks = z.preprocess((raw, ctx) => {
  if (raw === null || raw === undefined) return [];
  let list: unknown = raw;
  if (typeof raw === 'string') {
    try {
      list = JSON.parse(raw);
    } catch {
      list = undefined;
    }
  }
  if (!Array.isArray(list)) ctx.addIssue({ code: 'custom', message: DISK_LIST, input: raw });
  return list;
}, z.array(diskInfo));

const MIGRATION_ID = 'expected an integer id or a migration uuid';

/**
 * live_migration_abort's migration_id: Nova's integer id, or (ferry) the
 * migration uuid. One message whichever way it fails: the union's covers
 * "neither type", each branch's covers its own checks (range, pattern).
 */
const idError = { error: failsAs(MIGRATION_ID) };
export const migrationId = z.union([z.int(idError), z.string(idError).regex(UUID)], idError);

export const checkCanLiveMigrateDestinationArgs = z.looseObject({
  instance,
  block_migration: z.boolean().nullish(),
  disk_over_commit: z.boolean().nullish(),
  migration: z.looseObject({}).nullish(),
  limits: z.looseObject({}).nullish(),
});

export const checkCanLiveMigrateSourceArgs = z.looseObject({
  instance,
  dest_check_data: migrateData,
});

export const preLiveMigrationArgs = z.looseObject({
  instance,
  disk: disks,
  migrate_data: migrateData.nullable(),
});

export const liveMigrationArgs = z.looseObject({
  instance,
  dest: name,
  block_migration: z.boolean().nullish(),
  migrate_data: migrateData.nullish(),
  migration: z.looseObject({ id: z.int().nullish(), uuid: uuid.nullish() }).nullish(),
  // Any longer is no timeout at all, and the downtime ramp would never climb.
  timeout_seconds: z.int().min(0).max(MAX_TIMEOUT_SECONDS).nullish(),
  on_timeout: z.enum(TIMEOUT_ACTIONS).nullish(),
  // ferry's: take the timeout action at the first confident "will not converge", not at the deadline.
  act_on_stall: z.boolean().nullish(),
});

export const postLiveMigrationAtDestinationArgs = z.looseObject({
  instance,
  block_migration: z.boolean().nullish(),
});

export const rollbackLiveMigrationAtDestinationArgs = z.looseObject({
  instance,
  destroy_disks: z.boolean().nullish(),
  // Accepted as Nova sends it and never read: what a roll back removes is the destination's own record,
  // so a source rolling back after refusing this host's own reply is not refused for echoing it.
  migrate_data: z.looseObject({}).nullish(),
});

export const liveMigrationAbortArgs = z.looseObject({ instance, migration_id: migrationId });

export const instanceOnlyArgs = z.looseObject({ instance });

export const listMigrationsArgs = z.looseObject({ instance_uuid: uuid.nullish() });

/** An image id: a file name in image_cache_path. */
const imageId = z.string().max(255);

export const buildAndRunInstanceArgs = z.looseObject({ instance, image: z.looseObject({}).nullish() });

export const rebootInstanceArgs = z.looseObject({ instance, reboot_type: z.enum(['SOFT', 'HARD']) });

export const terminateInstanceArgs = z.looseObject({
  instance,
  // ferry's: keep the instance folder (Nova's destroy_disks=False).
  keep_disks: z.boolean().nullish(),
});

export const rescueInstanceArgs = z.looseObject({
  instance,
  // Accepted as Nova sends it; ferry injects nothing into the rescue disk.
  rescue_password: z.string().max(255).nullish(),
  rescue_image_ref: imageId.nullish(),
  clean_shutdown: z.boolean().nullish(),
});
