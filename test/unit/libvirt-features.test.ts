// Version gates for migration features: the pure table, then the binding on
// libvirt's test driver (whose daemon version is the installed library's), so
// the same assertions hold on libvirt 9.0 and on the backports stack.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMigrate, formatVersion, version, FeatureUnavailableError, type LibvirtVersions } from '../../src/libvirt/features.js';
import { MigrateFlag, isVirError, openConnection, type Connection, type MigrateParams } from '../../src/libvirt/index.js';

const V9 = version(9, 0, 0);
const V11_3 = version(11, 3, 0);
const BASE = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST | MigrateFlag.UNDEFINE_SOURCE;
const RESUME = BASE | MigrateFlag.POSTCOPY | MigrateFlag.POSTCOPY_RESUME;

function refusal(params: MigrateParams, flags: number, v: LibvirtVersions): string | undefined {
  try {
    checkMigrate(params, flags, v);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(FeatureUnavailableError);
    return (e as Error).message;
  }
}

describe('formatVersion', () => {
  it.each([
    [9_000_000, '9.0.0'],
    [11_003_000, '11.3.0'],
    [10_009_001, '10.9.1'],
  ])('%i is %s', (v, s) => expect(formatVersion(v)).toBe(s));
});

describe('checkMigrate', () => {
  const cases: Array<[string, MigrateParams, number, LibvirtVersions, RegExp | undefined]> = [
    ['9.0 params on 9.0', { bandwidth: 20, migrate_disks: ['vda'] }, BASE, { headers: V9, daemon: V9 }, undefined],
    [
      'switchover bandwidth with 9.0 headers',
      { 'bandwidth.avail.switchover': 1000 },
      BASE,
      { headers: V9, daemon: V11_3 },
      /^migrate param 'bandwidth.avail.switchover' needs libvirt >= 11\.1\.0; ferry's libvirt binding was built against libvirt 9\.0\.0 headers$/,
    ],
    [
      'switchover bandwidth on a 9.0 daemon',
      { 'bandwidth.avail.switchover': 1000 },
      BASE,
      { headers: V11_3, daemon: V9 },
      /^migrate param 'bandwidth.avail.switchover' needs libvirt >= 11\.1\.0; the connected libvirtd is 9\.0\.0$/,
    ],
    ['switchover bandwidth on 11.3', { 'bandwidth.avail.switchover': 1000 }, BASE, { headers: V11_3, daemon: V11_3 }, undefined],
    [
      'zero detection on 10.8',
      { migrate_disks_detect_zeroes: ['vda'] },
      BASE,
      { headers: V11_3, daemon: version(10, 8, 0) },
      /^migrate param 'migrate_disks_detect_zeroes' needs libvirt >= 10\.9\.0; the connected libvirtd is 10\.8\.0$/,
    ],
    ['zero detection on 10.9', { migrate_disks_detect_zeroes: ['vda'] }, BASE, { headers: version(10, 9, 0), daemon: version(10, 9, 0) }, undefined],
    ['an unset newer param is no request', { 'bandwidth.avail.switchover': undefined }, BASE, { headers: V9, daemon: V9 }, undefined],
    ['post-copy resume on 9.0', {}, RESUME, { headers: V9, daemon: V9 }, undefined],
    [
      'post-copy resume on 8.4',
      {},
      RESUME,
      { headers: V9, daemon: version(8, 4, 0) },
      /^post-copy resume \(VIR_MIGRATE_POSTCOPY_RESUME\) needs libvirt >= 8\.5\.0; the connected libvirtd is 8\.4\.0$/,
    ],
    [
      'post-copy resume on 11.2',
      {},
      RESUME,
      { headers: V11_3, daemon: version(11, 2, 0) },
      /^post-copy resume \(VIR_MIGRATE_POSTCOPY_RESUME\) disabled on libvirt 11\.2\.0: it crashes the destination libvirtd \(fixed in 11\.4\.0\)$/,
    ],
    [
      'post-copy resume on 11.3',
      {},
      RESUME,
      { headers: V11_3, daemon: V11_3 },
      /^post-copy resume \(VIR_MIGRATE_POSTCOPY_RESUME\) disabled on libvirt 11\.3\.0: it crashes the destination libvirtd \(fixed in 11\.4\.0\)$/,
    ],
    ['post-copy resume on 11.4', {}, RESUME, { headers: V11_3, daemon: version(11, 4, 0) }, undefined],
    ['post-copy without resume on 11.3', {}, BASE | MigrateFlag.POSTCOPY, { headers: V11_3, daemon: V11_3 }, undefined],
  ];
  it.each(cases)('%s', (_name, params, flags, v, want) => {
    const got = refusal(params, flags, v);
    if (want) expect(got).toMatch(want);
    else expect(got).toBeUndefined();
  });
});

describe('the binding on the test driver', () => {
  const installed = (() => {
    const [major, minor, micro] = execFileSync('pkg-config', ['--modversion', 'libvirt'], { encoding: 'utf8' }).trim().split('.').map(Number);
    return version(major!, minor!, micro ?? 0);
  })();
  let conn: Connection;
  beforeAll(async () => {
    conn = await openConnection('test:///default');
  });
  afterAll(async () => {
    await conn?.close();
  });

  it('reports the daemon version, which for the test driver is the installed libvirt', async () => {
    expect(formatVersion(await conn.getLibVersion())).toBe(formatVersion(installed));
  });

  // The test driver cannot migrate: a call that passes the gate fails in libvirt instead.
  async function outcome(params: MigrateParams, flags: number): Promise<string> {
    const d = await conn.lookupByName('test');
    const e = await d.migrateToURI3('qemu+tcp://127.0.0.99/system', params, flags).then(
      () => new Error('migrated?'),
      (err: unknown) => err as Error,
    );
    if (e instanceof FeatureUnavailableError) return `refused: ${e.message}`;
    expect(isVirError(e)).toBe(true);
    return 'reached libvirt';
  }

  it('refuses the switchover bandwidth before libvirt when this libvirt is older than 11.1', async () => {
    const got = await outcome({ 'bandwidth.avail.switchover': 1000 }, BASE);
    if (installed < version(11, 1, 0)) expect(got).toMatch(/^refused: migrate param 'bandwidth.avail.switchover' needs libvirt >= 11\.1\.0/);
    else expect(got).toBe('reached libvirt');
  });

  it('declines post-copy resume on libvirt 11.2-11.3 and passes it on elsewhere', async () => {
    const got = await outcome({}, RESUME);
    if (installed >= version(11, 2, 0) && installed < version(11, 4, 0))
      expect(got).toBe(`refused: post-copy resume (VIR_MIGRATE_POSTCOPY_RESUME) disabled on libvirt ${formatVersion(installed)}: it crashes the destination libvirtd (fixed in 11.4.0)`);
    else expect(got).toBe('reached libvirt');
  });
});
