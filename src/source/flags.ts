// Migration flags as Nova's libvirt driver builds them
// (_prepare_migration_flags / _parse_migration_flags + the run-time adjustments).
import { MigrateFlag } from '../libvirt/types.js';

export interface MigrationFlagOptions {
  blockMigration: boolean;
  /** Copy the local disks whole (NON_SHARED_DISK) rather than their top layer (NON_SHARED_INC). */
  fullDiskCopy?: boolean;
  nativeTls: boolean;
  permitPostCopy: boolean;
  /** Ignored when post-copy is permitted (Nova sets one or the other). */
  permitAutoConverge: boolean;
  parallelConnections: number;
  /** Post-copy needs a running guest: Nova drops POSTCOPY for a paused instance. */
  instancePaused?: boolean;
  /** With an empty migrate_disks list libvirt would copy every writable disk, volumes included. */
  migrateDisksEmpty?: boolean;
}

const BASE = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.PERSIST_DEST | MigrateFlag.UNDEFINE_SOURCE;

export function migrationFlags(opts: MigrationFlagOptions): number {
  let flags = BASE;
  if (opts.blockMigration) flags |= opts.fullDiskCopy ? MigrateFlag.NON_SHARED_DISK : MigrateFlag.NON_SHARED_INC;
  if (opts.nativeTls) flags |= MigrateFlag.TLS;
  if (opts.permitPostCopy) flags |= MigrateFlag.POSTCOPY;
  else if (opts.permitAutoConverge) flags |= MigrateFlag.AUTO_CONVERGE;
  if (opts.parallelConnections > 1) flags |= MigrateFlag.PARALLEL;

  if (opts.instancePaused) flags &= ~MigrateFlag.POSTCOPY;
  if (opts.migrateDisksEmpty) flags &= ~(MigrateFlag.NON_SHARED_INC | MigrateFlag.NON_SHARED_DISK);
  return flags;
}

export function hasFlag(flags: number, flag: MigrateFlag): boolean {
  return (flags & flag) === flag;
}
