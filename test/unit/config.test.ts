import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, defaultConfig, envVarName, loadConfig, type FerryConfig } from '../../src/config/index.js';

const EXAMPLE = fileURLToPath(new URL('../../config/ferry.example.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-config-'));
let n = 0;
function file(content: unknown): string {
  const p = join(dir, `c${n++}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const DEFAULTS: FerryConfig = {
  host: hostname(),
  transport_url: 'rabbit://guest:guest@127.0.0.1:5672/',
  control_exchange: 'nova',
  rpc_response_timeout: 60,
  long_rpc_timeout: 1800,
  instances_path: '/var/lib/nova/instances',
  state_path: '/var/lib/ferry',
  finished_migration_keep_seconds: 86400,
  incoming_migration_grace_seconds: 900,
  shutdown_grace_seconds: 30,
  conductor_topic: 'conductor',
  image_cache_path: '/var/lib/ferry/images',
  use_cow_images: true,
  force_raw_images: true,
  mkisofs_cmd: 'genisoimage',
  shutdown_timeout: 60,
  management_roles: ['admin'],
  service_roles: ['service'],
  executor_thread_pool_size: 64,
  max_message_bytes: 1048576,
  metrics: { listen_address: '0.0.0.0', port: 9393 },
  log_level: 'info',
  libvirt: {
    connection_uri: 'qemu:///system',
    virt_type: 'kvm',
    cpu_models: [],
    keepalive_interval: 5,
    keepalive_count: 5,
    live_migration_scheme: null,
    live_migration_inbound_addr: null,
    live_migration_bandwidth: 0,
    live_migration_bandwidth_postcopy: 0,
    live_migration_downtime: 500,
    live_migration_downtime_steps: 10,
    live_migration_downtime_delay: 75,
    live_migration_completion_timeout: 800,
    live_migration_timeout_action: 'abort',
    convergence_policy: 'adaptive',
    live_migration_link_bandwidth: 0,
    convergence_stall_window: 10,
    convergence_act_on_stall: false,
    live_migration_permit_post_copy: false,
    live_migration_permit_auto_converge: false,
    live_migration_with_native_tls: false,
    live_migration_parallel_connections: 1,
    live_migration_monitor_interval: 5,
    live_migration_allow_full_disk_copy: true,
  },
  vnc: { server_listen: null },
  spice: { server_listen: null },
  serial_console: { enabled: false, port_range: '10000:20000', proxyclient_address: null },
  compute: { max_concurrent_live_migrations: 1, live_migrate_rescued: true },
  oslo_messaging_rabbit: {
    heartbeat_timeout_threshold: 60,
    rabbit_retry_interval: 1,
    rabbit_retry_backoff: 2,
    rabbit_interval_max: 30,
    ssl_ca_file: null,
    ssl_cert_file: null,
    ssl_key_file: null,
  },
};

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('match Nova', () => {
    expect(loadConfig({ env: {} })).toEqual(DEFAULTS);
    expect(defaultConfig()).toEqual(DEFAULTS);
  });
  it('ignores unrelated environment variables', () => {
    expect(loadConfig({ env: { PATH: '/bin', HOST: 'x', FERRY_: 'y' } })).toEqual(DEFAULTS);
  });
});

describe('file', () => {
  it('overlays a partial file on the defaults', () => {
    const cfg = loadConfig({
      env: {},
      file: file({ host: 'cmp1', libvirt: { live_migration_downtime: 800, live_migration_permit_post_copy: true }, compute: { max_concurrent_live_migrations: 0 } }),
    });
    expect(cfg.host).toBe('cmp1');
    expect(cfg.libvirt.live_migration_downtime).toBe(800);
    expect(cfg.libvirt.live_migration_permit_post_copy).toBe(true);
    expect(cfg.libvirt.live_migration_downtime_steps).toBe(10);
    expect(cfg.compute.max_concurrent_live_migrations).toBe(0);
  });
  it('the example documents every option with its default (host aside) and loads', () => {
    expect(loadConfig({ env: {}, file: EXAMPLE })).toEqual(DEFAULTS);
  });
  it('"_" keys are comments', () => {
    expect(loadConfig({ env: {}, file: file({ _note: 'x', libvirt: { _why: 'y' } }) })).toEqual(DEFAULTS);
  });
  it('unreadable, invalid JSON, or not an object', () => {
    expect(configError(() => loadConfig({ env: {}, file: join(dir, 'missing.json') })).message).toMatch(/cannot read/);
    expect(configError(() => loadConfig({ env: {}, file: file('{nope') })).message).toMatch(/not valid JSON/);
    expect(configError(() => loadConfig({ env: {}, file: file('[1]') })).message).toMatch(/JSON object/);
  });
  it('nullable options accept null and strings', () => {
    const cfg = loadConfig({ env: {}, file: file({ libvirt: { live_migration_scheme: 'tls', live_migration_inbound_addr: 'fe80::1' } }) });
    expect(cfg.libvirt.live_migration_scheme).toBe('tls');
    expect(cfg.libvirt.live_migration_inbound_addr).toBe('fe80::1');
    expect(loadConfig({ env: {}, file: file({ libvirt: { live_migration_scheme: null } }) }).libvirt.live_migration_scheme).toBeNull();
  });
});

describe('environment', () => {
  it('names: FERRY_<KEY>, FERRY_<SECTION>__<KEY>', () => {
    expect(envVarName('host')).toBe('FERRY_HOST');
    expect(envVarName('transport_url')).toBe('FERRY_TRANSPORT_URL');
    expect(envVarName('libvirt.connection_uri')).toBe('FERRY_LIBVIRT__CONNECTION_URI');
    expect(envVarName('metrics.port')).toBe('FERRY_METRICS__PORT');
  });
  it('sets and coerces values', () => {
    const cfg = loadConfig({
      env: {
        FERRY_HOST: 'cmp2',
        FERRY_TRANSPORT_URL: 'rabbit://u:p@mq:5672/',
        FERRY_LIBVIRT__CONNECTION_URI: 'qemu+tcp://localhost/system',
        FERRY_LIBVIRT__LIVE_MIGRATION_DOWNTIME: '1000',
        FERRY_LIBVIRT__LIVE_MIGRATION_PERMIT_POST_COPY: 'true',
        FERRY_LIBVIRT__LIVE_MIGRATION_WITH_NATIVE_TLS: '0',
        FERRY_LIBVIRT__LIVE_MIGRATION_TIMEOUT_ACTION: 'force_complete',
        FERRY_LIBVIRT__LIVE_MIGRATION_SCHEME: 'ssh',
        FERRY_MANAGEMENT_ROLES: 'admin, operator',
        FERRY_METRICS__PORT: '0',
        FERRY_COMPUTE__MAX_CONCURRENT_LIVE_MIGRATIONS: '4',
      },
    });
    expect(cfg.host).toBe('cmp2');
    expect(cfg.transport_url).toBe('rabbit://u:p@mq:5672/');
    expect(cfg.libvirt.connection_uri).toBe('qemu+tcp://localhost/system');
    expect(cfg.libvirt.live_migration_downtime).toBe(1000);
    expect(cfg.libvirt.live_migration_permit_post_copy).toBe(true);
    expect(cfg.libvirt.live_migration_with_native_tls).toBe(false);
    expect(cfg.libvirt.live_migration_timeout_action).toBe('force_complete');
    expect(cfg.libvirt.live_migration_scheme).toBe('ssh');
    expect(cfg.management_roles).toEqual(['admin', 'operator']);
    expect(cfg.metrics.port).toBe(0);
    expect(cfg.compute.max_concurrent_live_migrations).toBe(4);
  });
  it('an empty value nulls a nullable option', () => {
    const cfg = loadConfig({ env: { FERRY_LIBVIRT__LIVE_MIGRATION_SCHEME: '' }, file: file({ libvirt: { live_migration_scheme: 'ssh' } }) });
    expect(cfg.libvirt.live_migration_scheme).toBeNull();
  });
  it('wins over the file; overrides win over both', () => {
    const f = file({ libvirt: { live_migration_downtime: 700 } });
    const env = { FERRY_LIBVIRT__LIVE_MIGRATION_DOWNTIME: '900' };
    expect(loadConfig({ env, file: f }).libvirt.live_migration_downtime).toBe(900);
    expect(loadConfig({ env, file: f, overrides: { libvirt: { live_migration_downtime: 1200 } } }).libvirt.live_migration_downtime).toBe(1200);
  });
  it('bad values are named', () => {
    expect(configError(() => loadConfig({ env: { FERRY_LIBVIRT__LIVE_MIGRATION_DOWNTIME: 'fast' } })).message).toMatch(
      /^libvirt\.live_migration_downtime: must be an integer/,
    );
    expect(configError(() => loadConfig({ env: { FERRY_LIBVIRT__LIVE_MIGRATION_PERMIT_POST_COPY: 'maybe' } })).message).toMatch(
      /^libvirt\.live_migration_permit_post_copy: must be a boolean/,
    );
  });
  it('defaults to process.env', () => {
    const old = process.env.FERRY_CONDUCTOR_TOPIC;
    process.env.FERRY_CONDUCTOR_TOPIC = 'conductor2';
    try {
      expect(loadConfig().conductor_topic).toBe('conductor2');
    } finally {
      if (old === undefined) delete process.env.FERRY_CONDUCTOR_TOPIC;
      else process.env.FERRY_CONDUCTOR_TOPIC = old;
    }
  });
});

describe('validation names the key', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['downtime < 100', { libvirt: { live_migration_downtime: 50 } }, /^libvirt\.live_migration_downtime: must be >= 100/],
    ['downtime_steps < 3', { libvirt: { live_migration_downtime_steps: 2 } }, /^libvirt\.live_migration_downtime_steps: must be >= 3/],
    ['downtime_delay < 3', { libvirt: { live_migration_downtime_delay: 1 } }, /^libvirt\.live_migration_downtime_delay: must be >= 3/],
    ['completion_timeout < 0', { libvirt: { live_migration_completion_timeout: -1 } }, /^libvirt\.live_migration_completion_timeout: must be >= 0/],
    ['parallel_connections < 1', { libvirt: { live_migration_parallel_connections: 0 } }, /^libvirt\.live_migration_parallel_connections: must be >= 1/],
    ['bandwidth < 0', { libvirt: { live_migration_bandwidth: -5 } }, /^libvirt\.live_migration_bandwidth: must be >= 0/],
    ['monitor_interval < 1', { libvirt: { live_migration_monitor_interval: 0 } }, /^libvirt\.live_migration_monitor_interval: must be >= 1/],
    ['timeout_action enum', { libvirt: { live_migration_timeout_action: 'explode' } }, /^libvirt\.live_migration_timeout_action: must be one of the possible values: \["abort","force_complete"\]/],
    ['post_copy boolean', { libvirt: { live_migration_permit_post_copy: 'yes please' } }, /^libvirt\.live_migration_permit_post_copy: must be a boolean/],
    ['auto_converge boolean', { libvirt: { live_migration_permit_auto_converge: 1 } }, /^libvirt\.live_migration_permit_auto_converge: must be a boolean/],
    ['native tls boolean', { libvirt: { live_migration_with_native_tls: null } }, /^libvirt\.live_migration_with_native_tls: must be a boolean/],
    ['scheme', { libvirt: { live_migration_scheme: 'tcp://' } }, /^libvirt\.live_migration_scheme: must be a URI scheme/],
    ['inbound addr', { libvirt: { live_migration_inbound_addr: 'a b' } }, /^libvirt\.live_migration_inbound_addr: must be a host name/],
    ['connection_uri empty', { libvirt: { connection_uri: '' } }, /^libvirt\.connection_uri: must be a non-empty string/],
    ['non-integer', { libvirt: { live_migration_downtime: 150.5 } }, /^libvirt\.live_migration_downtime: must be an integer/],
    ['max_concurrent < 0', { compute: { max_concurrent_live_migrations: -1 } }, /^compute\.max_concurrent_live_migrations: must be >= 0/],
    ['host empty', { host: '' }, /^host: must be a host name/],
    ['host with a path', { host: 'h/system?command=x' }, /^host: must be a host name/],
    ['transport_url', { transport_url: 'localhost' }, /^transport_url: must be a URL/],
    ['transport_url port', { transport_url: 'rabbit://guest:secret@127.0.0.1:99999/' }, /^transport_url: invalid host or port in transport_url: 127\.0\.0\.1:99999$/],
    ['transport_url host', { transport_url: 'rabbit://guest:secret@a b:5672/' }, /^transport_url: invalid host or port in transport_url: a b:5672$/],
    ['transport_url scheme', { transport_url: 'http://mq/' }, /^transport_url: unsupported transport_url scheme: http$/],
    ['rpc_response_timeout', { rpc_response_timeout: 0 }, /^rpc_response_timeout: must be >= 1/],
    ['long_rpc_timeout', { long_rpc_timeout: 'long' }, /^long_rpc_timeout: must be an integer/],
    ['instances_path relative', { instances_path: 'var/lib' }, /^instances_path: must be an absolute path/],
    ['management_roles', { management_roles: ['admin', ''] }, /^management_roles: must be a list of non-empty strings/],
    ['max_message_bytes', { max_message_bytes: 0 }, /^max_message_bytes: must be >= 1/],
    ['metrics.port range', { metrics: { port: 70000 } }, /^metrics\.port: must be <= 65535/],
    ['serial port_range reversed', { serial_console: { port_range: '20000:10000' } }, /^serial_console\.port_range: must be 'min:max', two ports with min <= max/],
    ['serial port_range one port', { serial_console: { port_range: '10000' } }, /^serial_console\.port_range: must be 'min:max'/],
    ['use_cow_images boolean', { use_cow_images: 'sometimes' }, /^use_cow_images: must be a boolean/],
    ['log_level', { log_level: 'loud' }, /^log_level: must be one of the possible values/],
    ['unknown top-level key', { hots: 'x' }, /^hots: not declared in the schema/],
    ['unknown section key', { libvirt: { live_migration_tunneled: true } }, /^libvirt\.live_migration_tunneled: not declared in the schema/],
    ['unknown section', { neutron: { url: 'x' } }, /^neutron\.url: not declared in the schema/],
  ];
  it.each(cases)('%s (file)', (_name, content, msg) => {
    const err = configError(() => loadConfig({ env: {}, file: file(content) }));
    expect(err.issues.some((i) => msg.test(i))).toBe(true);
    expect(err.message).toContain(err.issues[0]);
  });
  it.each(cases)('%s (overrides)', (_name, content, msg) => {
    const err = configError(() => loadConfig({ env: {}, overrides: content }));
    expect(err.issues.some((i) => msg.test(i))).toBe(true);
  });
  it('reports every bad key, and lists them', () => {
    const err = configError(() =>
      loadConfig({ env: {}, overrides: { libvirt: { live_migration_downtime: 1, live_migration_downtime_steps: 1 }, bogus: 1 } }),
    );
    expect(err.keys.sort()).toEqual(['bogus', 'libvirt.live_migration_downtime', 'libvirt.live_migration_downtime_steps']);
  });
  it('the message starts with the key (the file named last)', () => {
    expect(configError(() => loadConfig({ env: {}, overrides: { libvirt: { live_migration_downtime: 50 } } })).message).toBe(
      'libvirt.live_migration_downtime: must be >= 100: value was 50',
    );
    const f = file({ libvirt: { live_migration_downtime: 50 } });
    expect(configError(() => loadConfig({ env: {}, file: f })).message).toBe(`libvirt.live_migration_downtime: must be >= 100: value was 50 (in ${f})`);
  });
  it('never echoes the transport URL (it holds a password)', () => {
    const err = configError(() => loadConfig({ env: { FERRY_TRANSPORT_URL: 'secret-password' } }));
    expect(err.message).toMatch(/^transport_url: must be a URL/);
    expect(err.message).not.toContain('secret-password');
  });
  it('a section replaced by a scalar is reported', () => {
    const err = configError(() => loadConfig({ env: {}, file: file({ libvirt: 5 }) }));
    expect(err.issues.join('\n')).toMatch(/libvirt\./);
  });
});
