import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, readConfig } from '../../src/config/index.js';
import { escapeInlineComments } from '../../src/config/nova-conf.js';

const NOVA_CONF = fileURLToPath(new URL('./fixtures/nova-compute.conf', import.meta.url));
const EXAMPLE_CONF = fileURLToPath(new URL('../../config/ferry.example.conf', import.meta.url));
const EXAMPLE_JSON = fileURLToPath(new URL('../../config/ferry.example.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'ferry-nova-conf-'));
let n = 0;
function conf(text: string, ext = 'conf'): string {
  const p = join(dir, `c${n++}.${ext}`);
  writeFileSync(p, text);
  return p;
}
function refusal(file: string, env: Record<string, string> = {}): ConfigError {
  try {
    loadConfig({ file, env });
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('accepted');
}

describe("nova.conf's INI format", () => {
  it("a compute node's nova.conf, pasted whole: ferry's options taken, Nova's others ignored and listed", () => {
    const { config, ignored } = readConfig({ file: NOVA_CONF, env: {} });
    expect(config).toMatchObject({
      host: 'compute-17',
      // A # and ; in a value are part of it, as in oslo.config.
      transport_url: 'rabbit://openstack:Xq#9;zz@10.20.0.2:5672,openstack:Xq#9;zz@10.20.0.3:5672//',
      rpc_response_timeout: 120,
      state_path: '/var/lib/nova',
      instances_path: '/var/lib/nova/instances',
      // Nova keeps it in [DEFAULT], ferry in [compute].
      compute: { max_concurrent_live_migrations: 2 },
      vnc: { server_listen: '10.20.0.17' },
      serial_console: { enabled: false, proxyclient_address: '10.20.0.17' },
      oslo_messaging_rabbit: { heartbeat_timeout_threshold: 30 },
    });
    expect(config.libvirt).toMatchObject({
      connection_uri: 'qemu+tcp://10.20.0.17/system',
      live_migration_inbound_addr: '10.30.0.17',
      live_migration_permit_post_copy: true,
      live_migration_permit_auto_converge: false,
      live_migration_timeout_action: 'force_complete',
      live_migration_completion_timeout: 600,
      virt_type: 'kvm',
    });
    expect(ignored).toEqual(
      expect.arrayContaining([
        '[DEFAULT] debug',
        '[DEFAULT] my_ip',
        '[DEFAULT] cpu_allocation_ratio',
        '[vnc] enabled',
        '[vnc] novncproxy_base_url',
        '[libvirt] images_type',
        '[libvirt] cpu_mode',
        '[oslo_messaging_rabbit] rabbit_quorum_queue',
        '[neutron] (11 options)',
        '[placement] (9 options)',
        '[oslo_messaging_notifications] (2 options)',
        '[privsep_osbrick] (1 options)',
      ]),
    );
    // Each once, and nothing ferry used among them.
    expect(ignored).not.toContain('[serial_console] enabled');
    expect(new Set(ignored).size).toBe(ignored.length);
    expect(ignored.filter((i) => /\] (transport_url|host|live_migration_permit_post_copy|server_listen|max_concurrent_live_migrations)$/.test(i))).toEqual([]);
  });

  it('config/ferry.example.conf says what config/ferry.example.json says', () => {
    expect(readConfig({ file: EXAMPLE_CONF, env: {} })).toEqual({ config: loadConfig({ file: EXAMPLE_JSON, env: {} }), ignored: [] });
  });

  it.each<[string, string, string]>([
    ['an option nobody has, in a section ferry reads', '[libvirt]\nlive_migration_downtime_stpes = 5\n', 'libvirt.live_migration_downtime_stpes'],
    ['an option nobody has, in [DEFAULT]', '[DEFAULT]\ntransport_ulr = rabbit://h/\n', 'transport_ulr'],
    ['a section nobody has', '[libvrit]\nconnection_uri = qemu:///system\n', 'libvrit'],
    ['an option outside any section', 'host = h1\n[DEFAULT]\n', 'host'],
    ['a value of the wrong kind', '[libvirt]\nlive_migration_downtime = fast\n', 'libvirt.live_migration_downtime'],
    ['a boolean that is none', '[libvirt]\nlive_migration_permit_post_copy = maybe\n', 'libvirt.live_migration_permit_post_copy'],
    ['a value out of bounds', '[libvirt]\nlive_migration_downtime = 5\n', 'libvirt.live_migration_downtime'],
  ])('%s: refused, naming the key and the file', (_name, text, key) => {
    const file = conf(text);
    const err = refusal(file);
    expect(err.keys).toEqual([key]);
    expect(err.message).toContain(`(in ${file})`);
  });

  it('oslo.config spellings: True/False, comma-separated lists, an empty value for null; the environment still wins', () => {
    const file = conf('[DEFAULT]\nmanagement_roles = admin, cloud-ops\n[libvirt]\nlive_migration_permit_post_copy = True\nlive_migration_scheme =\ncpu_models = Haswell-noTSX, Broadwell\n', 'ini');
    const c = loadConfig({ file, env: { FERRY_LIBVIRT__LIVE_MIGRATION_PERMIT_POST_COPY: 'false' } });
    expect(c.management_roles).toEqual(['admin', 'cloud-ops']);
    expect(c.libvirt.live_migration_scheme).toBeNull();
    expect(c.libvirt.cpu_models).toEqual(['Haswell-noTSX', 'Broadwell']);
    expect(c.libvirt.live_migration_permit_post_copy).toBe(false);
  });

  it('a JSON file is still read as JSON, whatever it holds', () => {
    expect(refusal(conf('[DEFAULT]\n', 'json')).message).toMatch(/^file: .* is not valid JSON/);
  });
});

describe('escapeInlineComments', () => {
  it.each<[string, string]>([
    ['password = a#b;c', 'password = a\\#b\\;c'],
    ['path = C:\\dir', 'path = C:\\\\dir'],
    ['# a comment = still one', '# a comment = still one'],
    ['; another', '; another'],
    ['[libvirt]', '[libvirt]'],
    ["key = 'quoted # whole'", "key = 'quoted # whole'"],
    ['flag', 'flag'],
  ])('%s', (line, escaped) => {
    expect(escapeInlineComments(line)).toBe(escaped);
  });
});
