import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { checkCanLiveMigrateSourceArgs, disks, liveMigrationAbortArgs, liveMigrationArgs, preLiveMigrationArgs } from '../../src/compute/args.js';
import { parseArgs, rpcMethod } from '../../src/rpc/args.js';
import { findMethod } from '../../src/rpc/dispatcher.js';
import type { RpcEndpoint } from '../../src/rpc/types.js';

const schema = z.looseObject({
  instance: z.looseObject({ uuid: z.string().regex(/^[0-9a-f-]{36}$/) }),
  block_migration: z.boolean(),
  dest: z.string().nullish(),
  ports: z.array(z.int().min(1).max(65535)).optional(),
  speed: z.number().min(0).optional(),
  mode: z.enum(['abort', 'force_complete']).optional(),
  extra: z.unknown().optional(),
});
const uuid = '8f1a2c3d-0000-4000-8000-000000000001';

/** Parses as the server does; returns the problem the endpoint was handed, or null. */
function problemOf<A>(args: z.ZodType<A>, value: unknown): string | null {
  const method = rpcMethod(args, async () => null);
  const endpoint: RpcEndpoint = { version: '1.0', methods: { m: method }, invalidArgs: (p) => new Error(p) };
  try {
    parseArgs(endpoint, method, value);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

describe('parseArgs', () => {
  it('accepts valid args', () => {
    expect(problemOf(schema, { instance: { uuid }, block_migration: false, dest: null, ports: [5900], speed: 1.5, mode: 'abort', extra: [1] })).toBeNull();
  });
  it.each([
    [{ instance: { uuid: 5 }, block_migration: true }, 'args.instance.uuid: expected string, got integer'],
    [{ instance: { uuid: 'x' }, block_migration: true }, 'args.instance.uuid: does not match /^[0-9a-f-]{36}$/'],
    [{ instance: {}, block_migration: true }, 'args.instance.uuid: required'],
    [{ instance: { uuid } }, 'args.block_migration: required'],
    [{ instance: { uuid }, block_migration: 'yes' }, 'args.block_migration: expected boolean, got string'],
    [{ instance: null, block_migration: true }, 'args.instance: expected object, got null'],
    [{ instance: { uuid }, block_migration: true, ports: [1, 0] }, 'args.ports[1]: must be >= 1'],
    [{ instance: { uuid }, block_migration: true, ports: [70000] }, 'args.ports[0]: must be <= 65535'],
    [{ instance: { uuid }, block_migration: true, ports: [1.5] }, 'args.ports[0]: expected integer, got number'],
    [{ instance: { uuid }, block_migration: true, ports: {} }, 'args.ports: expected array, got object'],
    [{ instance: { uuid }, block_migration: true, speed: -1 }, 'args.speed: must be >= 0'],
    [{ instance: { uuid }, block_migration: true, speed: 'fast' }, 'args.speed: expected number, got string'],
    [{ instance: { uuid }, block_migration: true, mode: 'x' }, 'args.mode: expected one of abort, force_complete'],
    [{ instance: { uuid }, block_migration: true, mode: 5 }, 'args.mode: expected string, got integer'],
  ])('names the failing field (%#)', (value, message) => {
    expect(problemOf(schema, value)).toBe(message);
  });
  it('refuses a non-object at the top', () => {
    expect(problemOf(schema, [1])).toBe('args: expected object, got array');
  });
  it('returns the parsed value, unknown keys kept at every level', () => {
    const method = rpcMethod(schema, async () => null);
    const value = { instance: { uuid, display_name: 'vm1' }, block_migration: true, later: 1 };
    expect(parseArgs({ version: '1.0', methods: { m: method } }, method, value)).toEqual(value);
    const withDefault = rpcMethod(z.looseObject({ items: z.array(z.string()).default([]) }), async () => null);
    expect(parseArgs({ version: '1.0', methods: { m: withDefault } }, withDefault, {})).toEqual({ items: [] });
  });
  it('without invalidArgs on the endpoint: Python TypeError, as an oslo endpoint would raise', () => {
    const method = rpcMethod(schema, async () => null);
    expect(() => parseArgs({ version: '1.0', methods: { m: method } }, method, {})).toThrow(
      expect.objectContaining({ name: 'TypeError', module: 'builtins', message: 'args.instance: required' }),
    );
  });
  it('uses the invalidArgs of the endpoint that owns the method', () => {
    const mine = rpcMethod(schema, async () => null);
    const other = rpcMethod(schema, async () => null);
    const endpoints: RpcEndpoint[] = [
      { version: '1.0', methods: { other }, invalidArgs: () => new Error('wrong endpoint') },
      { version: '2.0', methods: { mine }, invalidArgs: (p) => new Error(`mine: ${p}`) },
    ];
    const { endpoint, method } = findMethod(endpoints, null, '2.0', 'mine');
    expect(() => parseArgs(endpoint, method, {})).toThrow('mine: args.instance: required');
  });
});

describe('compute args', () => {
  const instance = { uuid, display_name: 'vm1', vm_state: 'active' };
  const disk = (type: string) => ({ path: `/var/lib/nova/instances/${uuid}/disk`, type, virt_disk_size: 1 });

  it('pre_live_migration disk: a JSON string or a list; none is no disks', () => {
    const list = [disk('qcow2'), disk('raw')];
    expect(disks.parse(JSON.stringify(list))).toEqual(list);
    expect(disks.parse(list)).toHaveLength(2);
    expect(disks.parse(null)).toEqual([]);
    expect(preLiveMigrationArgs.parse({ instance, migrate_data: null }).disk).toEqual([]);
  });
  it.each([
    [JSON.stringify([disk('raw'), disk('raw'), disk('vmdk')]), 'args.disk[2].type: expected one of qcow2, raw'],
    [[disk('raw'), { ...disk('raw'), virt_disk_size: -1 }], 'args.disk[1].virt_disk_size: must be >= 0'],
    [[{ type: 'raw', virt_disk_size: 1 }], 'args.disk[0].path: required'],
    ['{"not": "a list"}', 'args.disk: expected a list of disks'],
    ['not json', 'args.disk: expected a list of disks'],
    [{}, 'args.disk: expected a list of disks'],
  ])('pre_live_migration disk %j', (value, message) => {
    expect(problemOf(preLiveMigrationArgs, { instance, disk: value, migrate_data: {} })).toBe(message);
  });
  it('live_migration_abort migration_id: an integer id or a uuid', () => {
    expect(liveMigrationAbortArgs.parse({ instance, migration_id: 7 }).migration_id).toBe(7);
    expect(liveMigrationAbortArgs.parse({ instance, migration_id: uuid }).migration_id).toBe(uuid);
    for (const bad of ['not-an-id', 1.5, 2 ** 60, null, {}]) {
      expect(problemOf(liveMigrationAbortArgs, { instance, migration_id: bad })).toBe('args.migration_id: expected an integer id or a migration uuid');
    }
    expect(problemOf(liveMigrationAbortArgs, { instance })).toBe('args.migration_id: required');
  });
  it('keeps the Nova object fields ferry reads later', () => {
    const a = liveMigrationArgs.parse({ instance, dest: 'host2', migrate_data: { target_connect_addr: '10.0.0.2', bdms: [] } });
    expect(a.instance).toEqual(instance);
    expect(a.migrate_data).toEqual({ target_connect_addr: '10.0.0.2', bdms: [] });
  });
  it.each([
    [{ migrate_data: { target_connect_addr: '1.2.3.4/x' } }, 'args.migrate_data.target_connect_addr: expected an IP address or host name, with an optional port'],
    [{ migrate_data: { graphics_listen_addr_vnc: '0.0.0.0;reboot' } }, 'args.migrate_data.graphics_listen_addr_vnc: expected an IP address or host name'],
    [{ migrate_data: { graphics_listen_addr_spice: '10.0.0.2:5900' } }, 'args.migrate_data.graphics_listen_addr_spice: expected an IP address or host name'],
    [{ migrate_data: { serial_listen_addr: "h' onload='x" } }, 'args.migrate_data.serial_listen_addr: expected an IP address or host name'],
    [{ instance: { uuid: 'nope' } }, 'args.instance.uuid: does not match /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/'],
    [{ timeout_seconds: 1.5 }, 'args.timeout_seconds: expected integer, got number'],
    [{ timeout_seconds: 1e15 }, 'args.timeout_seconds: must be <= 604800'],
    [{ on_timeout: 'explode' }, 'args.on_timeout: expected one of abort, force_complete'],
    [{ instance: { ...instance, flavor: { vcpus: -1 } } }, 'args.instance.flavor.vcpus: must be >= 0'],
  ])('live_migration %j', (bad, message) => {
    expect(problemOf(liveMigrationArgs, { instance, dest: 'host2', ...bad })).toBe(message);
  });
});

describe('compute args: migrate_data.vifs (ports and their bindings)', () => {
  const instance = { uuid };
  const vif = {
    port_id: '5a2f3c1e-7d4b-4e8a-9c6f-0b1d2e3f4a5b',
    vnic_type: 'normal',
    vif_type: 'bridge',
    host: 'compute-b',
    vif_details_json: '{"bridge_name": "brq-b"}',
    profile_json: '{"allocation": "c0ffee00-1111-4222-8333-444455556666"}',
    source_vif: '{"address": "fa:16:3e:12:34:56", "network": {"bridge": "brq-a", "meta": {"mtu": 1450}}}',
  };
  const withVif = (over: Record<string, unknown>) => ({ instance, dest: 'compute-b', migrate_data: { vifs: [{ ...vif, ...over }] } });
  it("Nova's VIFMigrateData passes untouched, JSON fields as strings; source_vif may also be the object", () => {
    expect(liveMigrationArgs.parse(withVif({})).migrate_data?.vifs).toEqual([vif]);
    expect(liveMigrationArgs.parse(withVif({ source_vif: { address: 'FA:16:3E:12:34:56' }, vif_details_json: null, profile_json: '{}' })).migrate_data?.vifs?.[0]?.profile_json).toBe('{}');
  });
  it.each([
    [{ vif_details_json: '{"bridge_name": ' }, 'args.migrate_data.vifs[0].vif_details_json: expected a JSON object, got malformed JSON'],
    [{ vif_details_json: '{"bridge_name": "br;rm -rf"}' }, 'args.migrate_data.vifs[0].vif_details_json.bridge_name: expected a network device name (1-15 letters, digits, _ . -)'],
    [{ vif_details_json: '{"bridge_name": "a-very-long-bridge-name"}' }, 'args.migrate_data.vifs[0].vif_details_json.bridge_name: expected a network device name (1-15 letters, digits, _ . -)'],
    [{ vif_details_json: '[1, 2]' }, 'args.migrate_data.vifs[0].vif_details_json: expected object, got array'],
    [{ vif_details_json: { bridge_name: 'brq-b' } }, 'args.migrate_data.vifs[0].vif_details_json: expected a JSON string, got object'],
    [{ profile_json: '{"allocation": 7}' }, 'args.migrate_data.vifs[0].profile_json.allocation: expected a resource provider uuid, or an object of them by request group'],
    [{ profile_json: '{"allocation": {"g1": "not-a-uuid"}}' }, /^args\.migrate_data\.vifs\[0\]\.profile_json\.allocation\.g1: does not match /],
    [{ vif_type: 'quantum-tunnel' }, /^args\.migrate_data\.vifs\[0\]\.vif_type: expected one of ovs, ivs, /],
    [{ vnic_type: 'psychic' }, /^args\.migrate_data\.vifs\[0\]\.vnic_type: expected one of normal, direct, /],
    [{ port_id: '../../etc' }, /^args\.migrate_data\.vifs\[0\]\.port_id: does not match /],
    [{ host: 'compute-b/../x' }, 'args.migrate_data.vifs[0].host: expected a host name'],
    [{ source_vif: '{"address": "fa:16:3e:12:34"}' }, 'args.migrate_data.vifs[0].source_vif.address: expected a MAC address such as fa:16:3e:12:34:56'],
    [{ source_vif: '{"address": "fa:16:3e:12:34:56", "network": {"bridge": "$(reboot)"}}' }, 'args.migrate_data.vifs[0].source_vif.network.bridge: expected a network device name (1-15 letters, digits, _ . -)'],
    [{ source_vif: '{"address": "fa:16:3e:12:34:56", "network": {"meta": {"mtu": 9}}}' }, 'args.migrate_data.vifs[0].source_vif.network.meta.mtu: must be >= 68'],
  ])('refused naming the field: %j', (over, message) => {
    const problem = problemOf(liveMigrationArgs, withVif(over));
    if (typeof message === 'string') expect(problem).toBe(message);
    else expect(problem).toMatch(message);
    // The destination's pre_live_migration checks the same.
    expect(problemOf(preLiveMigrationArgs, { instance, migrate_data: withVif(over).migrate_data })).toBe(problem);
  });
});

describe('compute args: shapes a hostile peer may send (issue 11)', () => {
  it('dst_supported_guests that is not a list of strings is refused naming it', () => {
    const r = checkCanLiveMigrateSourceArgs.safeParse({ instance: { uuid: '00000000-0000-0000-0000-000000000001' }, dest_check_data: { dst_supported_guests: 'x86_64' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['dest_check_data', 'dst_supported_guests']);
  });
});

describe('compute args: sizes are bounded (issue 11)', () => {
  const inst = { uuid: '00000000-0000-0000-0000-000000000001' };
  it.each([
    ['instance.name', { instance: { ...inst, name: 'x'.repeat(900 * 1024) }, dest: 'b' }],
    ['instance.display_name', { instance: { ...inst, display_name: 'x'.repeat(256) }, dest: 'b' }],
    ['dest', { instance: inst, dest: 'b'.repeat(256) }],
    ['migrate_data.filename', { instance: inst, dest: 'b', migrate_data: { filename: 'f'.repeat(4097) } }],
  ])('%s over its size is refused naming it', (field, args) => {
    const r = liveMigrationArgs.safeParse(args);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path.join('.')).toBe(field);
  });
  it('at the limit it passes', () => {
    expect(liveMigrationArgs.safeParse({ instance: { ...inst, name: 'x'.repeat(255) }, dest: 'b'.repeat(255) }).success).toBe(true);
  });
});
