// Which libvirt a migration feature needs. The addon compiles in only the
// constants its headers have (LIBVIR_CHECK_VERSION in native/src), and the
// connected daemon may be older or newer than those headers; a migration that
// asks for a feature either side lacks, or one known to be broken in the
// daemon's version, is refused here, naming the feature and the version it
// needs, before libvirt is called. Nothing is dropped silently.
import { MigrateFlag, type MigrateParams } from './types.js';

/** libvirt's version encoding: major * 1,000,000 + minor * 1,000 + micro. */
export type LibvirtVersion = number;

export const version = (major: number, minor: number, micro = 0): LibvirtVersion => major * 1_000_000 + minor * 1_000 + micro;

/**
 * formatVersion(9_000_000) === '9.0.0'; formatVersion(11_003_000) === '11.3.0'.
 */
export function formatVersion(v: LibvirtVersion): string {
  return `${Math.floor(v / 1_000_000)}.${Math.floor(v / 1_000) % 1_000}.${v % 1_000}`;
}

interface Feature {
  /** What the error calls it. */
  name: string;
  since: LibvirtVersion;
  /** Daemon versions in [from, fixed) where using it does harm. */
  broken?: { from: LibvirtVersion; fixed: LibvirtVersion; harm: string };
}

/** Migration parameters newer than libvirt 9.0, the oldest ferry supports. */
const PARAM_FEATURES: Partial<Record<keyof MigrateParams, Feature>> = {
  migrate_disks_detect_zeroes: { name: "migrate param 'migrate_disks_detect_zeroes'", since: version(10, 9, 0) },
  'bandwidth.avail.switchover': { name: "migrate param 'bandwidth.avail.switchover'", since: version(11, 1, 0) },
};

/** Migration flags whose use depends on the daemon's version. */
const FLAG_FEATURES: ReadonlyArray<[MigrateFlag, Feature]> = [
  [
    MigrateFlag.POSTCOPY_RESUME,
    {
      name: 'post-copy resume (VIR_MIGRATE_POSTCOPY_RESUME)',
      since: version(8, 5, 0),
      // libvirt NEWS 11.4.0: "crash when trying to resume failed post-copy
      // migration", a regression since 11.2.0; seen here on Debian's 11.3.0.
      broken: { from: version(11, 2, 0), fixed: version(11, 4, 0), harm: 'it crashes the destination libvirtd' },
    },
  ],
];

/**
 * The versions a call can use: the addon's headers and the connected daemon.
 * Only the local (source) daemon is known here; ferry expects its hosts to run
 * one stack, so a broken range is judged by the source's version.
 */
export interface LibvirtVersions {
  headers: LibvirtVersion;
  daemon: LibvirtVersion;
}

/** A migration asked for something the libvirt at hand lacks or must not be given. */
export class FeatureUnavailableError extends Error {
  override readonly name = 'FeatureUnavailable';
  constructor(
    message: string,
    readonly feature: string,
  ) {
    super(message);
  }
}

function check(f: Feature, v: LibvirtVersions): void {
  if (v.headers < f.since)
    throw new FeatureUnavailableError(
      `${f.name} needs libvirt >= ${formatVersion(f.since)}; ferry's libvirt binding was built against libvirt ${formatVersion(v.headers)} headers`,
      f.name,
    );
  if (v.daemon < f.since)
    throw new FeatureUnavailableError(
      `${f.name} needs libvirt >= ${formatVersion(f.since)}; the connected libvirtd is ${formatVersion(v.daemon)}`,
      f.name,
    );
  if (f.broken && v.daemon >= f.broken.from && v.daemon < f.broken.fixed)
    throw new FeatureUnavailableError(
      `${f.name} disabled on libvirt ${formatVersion(v.daemon)}: ${f.broken.harm} (fixed in ${formatVersion(f.broken.fixed)})`,
      f.name,
    );
}

/** Whether migrateToURI3 may be given this parameter with these versions. */
export function paramUsable(key: keyof MigrateParams, v: LibvirtVersions): boolean {
  const f = PARAM_FEATURES[key];
  if (!f) return true;
  try {
    check(f, v);
    return true;
  } catch {
    return false;
  }
}

/**
 * Throws FeatureUnavailableError for the first parameter or flag of a
 * migrateToURI3 call that these versions cannot serve.
 *
 *   checkMigrate({ bandwidth: 20 }, 27, { headers: 9e6, daemon: 9e6 })  // passes
 *   checkMigrate({ 'bandwidth.avail.switchover': 1000 }, 27, { headers: 9e6, daemon: 11_003_000 })
 *     // throws: ... needs libvirt >= 11.1.0; ferry's libvirt binding was built against libvirt 9.0.0 headers
 *   checkMigrate({}, MigrateFlag.POSTCOPY | MigrateFlag.POSTCOPY_RESUME, { headers: 11_003_000, daemon: 11_003_000 })
 *     // throws: post-copy resume (VIR_MIGRATE_POSTCOPY_RESUME) disabled on libvirt 11.3.0: it crashes ... (fixed in 11.4.0)
 */
export function checkMigrate(params: MigrateParams, flags: number, v: LibvirtVersions): void {
  for (const [key, value] of Object.entries(params)) {
    const f = PARAM_FEATURES[key as keyof MigrateParams];
    if (f && value !== undefined) check(f, v);
  }
  for (const [flag, f] of FLAG_FEATURES) if (flags & flag) check(f, v);
}
