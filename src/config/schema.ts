// The convict schema. Option names and defaults are Nova's (nova/conf/*.py,
// oslo.messaging) so an operator can carry values over from nova.conf.
import { hostname } from 'node:os';
import convict from 'convict';
import { parseTransportUrl } from '../broker/transport-url.js';
import { isAddress, isHostName, parseHostPort } from '../validate/address.js';
import { isNormalAbsolute } from '../validate/path.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const CONVERGENCE_POLICIES = ['adaptive', 'nova'] as const;
export const TIMEOUT_ACTIONS = ['abort', 'force_complete'] as const;

/** FERRY_<KEY>, with "__" between a section and its key: libvirt.connection_uri -> FERRY_LIBVIRT__CONNECTION_URI. */
export function envVarName(path: string): string {
  return 'FERRY_' + path.split('.').map((p) => p.toUpperCase()).join('__');
}

// Named formats read their bounds from the schema item (convict passes it in).
interface Bounds {
  min?: number;
  max?: number;
}

let formatsAdded = false;
function addFormats(): void {
  if (formatsAdded) return;
  formatsAdded = true;
  convict.addFormats({
    'ferry-int': {
      validate(x: unknown, item: convict.SchemaObj) {
        const schema = item as Bounds;
        if (typeof x !== 'number' || !Number.isInteger(x)) throw new Error('must be an integer');
        if (schema.min !== undefined && x < schema.min) throw new Error(`must be >= ${schema.min}`);
        if (schema.max !== undefined && x > schema.max) throw new Error(`must be <= ${schema.max}`);
      },
      coerce: (v: string) => (/^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    },
    'ferry-bool': {
      validate(x: unknown) {
        if (typeof x !== 'boolean') throw new Error('must be a boolean');
      },
      coerce(v: string) {
        const s = v.trim().toLowerCase();
        if (['true', '1', 'yes', 'on'].includes(s)) return true;
        if (['false', '0', 'no', 'off'].includes(s)) return false;
        return v;
      },
    },
    'ferry-string': {
      validate(x: unknown) {
        if (typeof x !== 'string' || x.trim() === '') throw new Error('must be a non-empty string');
      },
    },
    'ferry-nullable-string': {
      validate(x: unknown) {
        if (x !== null && (typeof x !== 'string' || x.trim() === '')) throw new Error('must be a non-empty string or null');
      },
      // An empty environment variable means "unset".
      coerce: (v: string) => (v.trim() === '' ? null : v),
    },
    'ferry-string-list': {
      validate(x: unknown) {
        if (!Array.isArray(x) || x.some((r) => typeof r !== 'string' || r.trim() === '')) {
          throw new Error('must be a list of non-empty strings');
        }
      },
      coerce: (v: string) => v.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    },
    'ferry-abs-path': {
      validate(x: unknown) {
        if (typeof x !== 'string' || !isNormalAbsolute(x)) throw new Error('must be an absolute path without ., .. or a trailing slash');
      },
    },
    'ferry-url': {
      validate(x: unknown) {
        if (typeof x !== 'string' || !/^[a-z][a-z0-9+.-]*:\/\//i.test(x)) throw new Error('must be a URL such as rabbit://user:pass@host:5672/');
        // The whole URL as the broker connection will read it: a bad host or port stops the start, naming the key.
        parseTransportUrl(x);
      },
    },
    'ferry-host-name': {
      validate(x: unknown) {
        // The RPC server name, and the name conductors and peer hosts address this host by.
        if (typeof x !== 'string' || !isHostName(x)) throw new Error('must be a host name');
      },
    },
    'ferry-scheme': {
      validate(x: unknown) {
        if (x !== null && (typeof x !== 'string' || !/^[a-z][a-z0-9+.-]*$/i.test(x))) {
          throw new Error('must be a URI scheme such as tcp, tls or ssh, or null');
        }
      },
      coerce: (v: string) => (v.trim() === '' ? null : v),
    },
    'ferry-port-range': {
      validate(x: unknown) {
        if (typeof x !== 'string' || !parsePortRange(x)) throw new Error("must be 'min:max', two ports with min <= max");
      },
    },
    'ferry-address-or-null': {
      validate(x: unknown) {
        // The destination reports it, and the source writes it into the guest's XML.
        if (x !== null && (typeof x !== 'string' || !isAddress(x))) throw new Error('must be a host name or IP address (no port), or null');
      },
      coerce: (v: string) => (v.trim() === '' ? null : v),
    },
    'ferry-host-or-null': {
      validate(x: unknown) {
        // The destination replies with it, and the source puts it into the migration URIs.
        if (x !== null && (typeof x !== 'string' || parseHostPort(x) === null)) throw new Error('must be a host name or IP address (with an optional port), or null');
      },
      coerce: (v: string) => (v.trim() === '' ? null : v),
    },
  });
}

function int(def: number, doc: string, bounds: Bounds = {}) {
  return { doc, format: 'ferry-int', default: def, ...bounds };
}
function bool(def: boolean, doc: string) {
  return { doc, format: 'ferry-bool', default: def };
}
function str(def: string, doc: string, format = 'ferry-string') {
  return { doc, format, default: def };
}
function nullable(doc: string, format: string) {
  return { doc, format, default: null as string | null, nullable: true };
}

interface Leaf {
  default: unknown;
  doc: string;
  [option: string]: unknown;
}
export interface SchemaNode {
  [key: string]: Leaf | SchemaNode;
}

/** Adds env: FERRY_... to every leaf. */
function withEnv(node: SchemaNode, prefix = ''): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    const path = prefix ? `${prefix}.${key}` : key;
    out[key] = 'default' in value ? { ...(value as Leaf), env: envVarName(path) } : withEnv(value as SchemaNode, path);
  }
  return out;
}

/** 'min:max' as two ports, or null when it is not that. */
export function parsePortRange(s: string): { min: number; max: number } | null {
  const m = /^\s*(\d{1,5})\s*:\s*(\d{1,5})\s*$/.exec(s);
  if (!m) return null;
  const [min, max] = [Number(m[1]), Number(m[2])];
  return min >= 1 && max <= 65535 && min <= max ? { min, max } : null;
}

export function buildSchema(): SchemaNode {
  addFormats();
  return withEnv({
    host: str(hostname(), 'Name of this compute host; RPC server name (compute.<host>).', 'ferry-host-name'),
    transport_url: {
      ...str('rabbit://guest:guest@127.0.0.1:5672/', 'oslo.messaging transport URL.', 'ferry-url'),
      sensitive: true,
    },
    control_exchange: str('nova', 'AMQP exchange for RPC and notifications.'),
    rpc_response_timeout: int(60, 'Seconds to wait for an RPC reply.', { min: 1 }),
    long_rpc_timeout: int(1800, 'Seconds to wait for a long-running RPC reply.', { min: 1 }),
    instances_path: str('/var/lib/nova/instances', 'Where instance directories live.', 'ferry-abs-path'),
    state_path: str('/var/lib/ferry', 'Where ferryd keeps what must survive a restart: migration records, unsent messages to the conductor, what pre_live_migration created.', 'ferry-abs-path'),
    finished_migration_keep_seconds: int(86400, 'Seconds a finished migration stays listed (list_migrations), across restarts.', { min: 60 }),
    incoming_migration_grace_seconds: int(900, "Seconds after pre_live_migration before a destination rolls back an incoming migration that never arrived when its source cannot be asked.", { min: 60 }),
    shutdown_grace_seconds: int(30, 'On SIGTERM, seconds to let running migrations (outgoing and incoming) finish before exiting; the next start carries on the rest.', { min: 0 }),
    conductor_topic: str('conductor', 'RPC topic of nova-conductor.'),
    image_cache_path: str('/var/lib/ferry/images', "Folder of images by id (<id>, its properties in <id>.json): ferry's stand-in for an image service when it spawns and rescues guests.", 'ferry-abs-path'),
    use_cow_images: bool(true, 'Root and rescue disks are qcow2 overlays on a shared base image in <instances_path>/_base (Nova [DEFAULT] use_cow_images); false: each a flat copy of its image.'),
    force_raw_images: bool(true, 'Base images in _base are converted to raw (Nova [DEFAULT] force_raw_images).'),
    mkisofs_cmd: str('genisoimage', 'The program that writes the config drives of guests spawned here (iso9660, with genisoimage\'s options; Nova [DEFAULT] mkisofs_cmd).'),
    shutdown_timeout: int(60, 'Seconds a guest asked to power off (a clean rescue) gets before it is stopped (Nova [DEFAULT] shutdown_timeout).', { min: 0 }),
    management_roles: {
      doc: 'Context roles allowed to call ferry management methods.',
      format: 'ferry-string-list',
      default: ['admin'],
    },
    service_roles: {
      doc: 'Context roles of a service calling without a user (a conductor, or a peer host): allowed every ferry method, as management roles are.',
      format: 'ferry-string-list',
      default: ['service'],
    },
    max_message_bytes: int(1048576, 'Largest AMQP message body accepted.', { min: 1 }),
    executor_thread_pool_size: int(64, 'RPC messages handled at once; more wait in RabbitMQ, unacked (oslo.messaging).', { min: 1 }),
    metrics: {
      listen_address: str('0.0.0.0', 'Prometheus endpoint address.'),
      port: int(9393, 'Prometheus endpoint port; 0 = off.', { min: 0, max: 65535 }),
    },
    log_level: { doc: 'Log level.', format: [...LOG_LEVELS], default: 'info' },
    libvirt: {
      connection_uri: str('qemu:///system', 'libvirt URI of the local hypervisor.'),
      virt_type: { doc: 'Domain type of the guests ferry defines: kvm, or qemu (emulation).', format: ['kvm', 'qemu'], default: 'kvm' },
      cpu_models: {
        doc: "CPU model of the guests ferry defines, the first of the list (Nova's cpu_mode=custom); empty: the hypervisor's default.",
        format: 'ferry-string-list',
        default: [],
      },
      keepalive_interval: int(5, 'Seconds between libvirt keepalive probes; the connection is closed after interval x (count + 1) s unanswered.', { min: 1, max: 3600 }),
      keepalive_count: int(5, 'Unanswered keepalive probes before libvirt closes the connection.', { min: 1, max: 100 }),
      live_migration_scheme: nullable('Scheme of the migration connection URI; null = tcp.', 'ferry-scheme'),
      live_migration_inbound_addr: nullable('Address other hosts use to send migration data here.', 'ferry-host-or-null'),
      live_migration_bandwidth: int(0, 'Max migration bandwidth in MiB/s; 0 = unlimited.', { min: 0 }),
      live_migration_link_bandwidth: int(0, 'Speed of the migration link in MiB/s, for the adaptive policy\'s choices and libvirt\'s bandwidth.avail.switchover (libvirt >= 11.1); 0 = unknown (the bandwidth cap stands in).', { min: 0 }),
      live_migration_bandwidth_postcopy: int(0, 'Max bandwidth in MiB/s once post-copy started (libvirt bandwidth.postcopy); 0 = unlimited.', { min: 0 }),
      live_migration_downtime: int(500, 'Max downtime in ms the ramp ends at.', { min: 100 }),
      live_migration_downtime_steps: int(10, 'Number of downtime ramp steps.', { min: 3 }),
      live_migration_downtime_delay: int(75, 'Seconds per GiB between downtime steps.', { min: 3 }),
      live_migration_completion_timeout: int(800, 'Seconds per GiB before the timeout action; 0 = off.', { min: 0 }),
      live_migration_timeout_action: {
        doc: 'What to do on timeout: abort, or force_complete (post-copy if permitted, else pause).',
        format: [...TIMEOUT_ACTIONS],
        default: 'abort',
      },
      convergence_policy: {
        doc: 'Who decides before the completion timeout: adaptive (a model of bandwidth and dirty rate raises the downtime to what is needed, starts post-copy at a stall, names a migration that will not converge) or nova (Nova\'s fixed downtime ramp, nothing else).',
        format: [...CONVERGENCE_POLICIES],
        default: 'adaptive',
      },
      convergence_stall_window: int(10, 'Seconds over which the memory left at each iteration must fall by 4 %, else the migration is stalled (adaptive policy; KubeVirt VEP 248 uses 60).', { min: 2, max: 600 }),
      convergence_act_on_stall: bool(false, 'Take the timeout action as soon as the adaptive policy is sure a migration will not converge, rather than at the deadline.'),
      live_migration_permit_post_copy: bool(false, 'Allow switching to post-copy.'),
      live_migration_permit_auto_converge: bool(false, 'Allow CPU throttling; ignored when post-copy is permitted.'),
      live_migration_with_native_tls: bool(false, 'Use QEMU native TLS for the migration streams.'),
      live_migration_parallel_connections: int(1, 'Number of parallel migration connections.', { min: 1 }),
      live_migration_monitor_interval: int(5, 'Seconds between progress saves.', { min: 1 }),
      live_migration_allow_full_disk_copy: bool(
        true,
        'Block migration may copy a disk whole when this (destination) host lacks its backing image; false refuses such a migration in the pre-check.',
      ),
    },
    vnc: {
      server_listen: nullable('Address the VNC servers of guests migrating here listen on (Nova [vnc] server_listen); null = each keeps the address it had.', 'ferry-address-or-null'),
    },
    spice: {
      server_listen: nullable('Address the SPICE servers of guests migrating here listen on (Nova [spice] server_listen); null = each keeps the address it had.', 'ferry-address-or-null'),
    },
    serial_console: {
      enabled: bool(false, 'Guests spawned here get a TCP serial console (a second serial port) on proxyclient_address, or 127.0.0.1 when it is null, at a free port of port_range (Nova [serial_console] enabled).'),
      port_range: str('10000:20000', 'Ports of the serial consoles of guests spawned here, min:max (Nova [serial_console] port_range).', 'ferry-port-range'),
      proxyclient_address: nullable(
        'Address the TCP serial consoles of guests migrating here listen on (Nova [serial_console] proxyclient_address, with serial consoles enabled); null = each keeps the address it had.',
        'ferry-address-or-null',
      ),
    },
    compute: {
      max_concurrent_live_migrations: int(1, 'Outgoing live migrations run at once; 0 = unlimited.', { min: 0 }),
      live_migrate_rescued: bool(true, 'This host live-migrates rescued instances, in and out (its checks report supports_live_migrate_rescued); false behaves as a host without it.'),
    },
    oslo_messaging_rabbit: {
      heartbeat_timeout_threshold: int(60, 'Seconds without AMQP heartbeat before the connection is dead; 0 = off.', { min: 0 }),
      rabbit_retry_interval: int(1, 'Seconds before the first reconnect attempt.', { min: 1 }),
      rabbit_retry_backoff: int(2, 'Multiplier of the reconnect delay.', { min: 1 }),
      rabbit_interval_max: int(30, 'Longest reconnect delay in seconds.', { min: 1 }),
      ssl_ca_file: nullable('CA bundle (PEM) that signs the broker certificate, for amqps:// or ?ssl=1.', 'ferry-nullable-string'),
      ssl_cert_file: nullable('Client certificate (PEM) for the broker.', 'ferry-nullable-string'),
      ssl_key_file: nullable('Client key (PEM) for the broker.', 'ferry-nullable-string'),
    },
  });
}
