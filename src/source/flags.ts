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

/** A guest dirtying at least this fraction of what the link carries gets post-copy rather than auto-converge. */
export const POSTCOPY_DIRTY_FRACTION = 0.5;

/**
 * Which of post-copy and auto-converge the adaptive policy arms when the
 * operator permits both: post-copy for a guest measured dirtying at least half
 * of what the link carries (throttling would have to slow it hard; post-copy
 * ends in one pass), auto-converge for a slower one (a little throttling keeps
 * the guest whole on one host throughout). Post-copy, as Nova, when either
 * figure is unknown.
 *
 *     dirty 20 MiB/s, link 30 MiB/s -> postcopy
 *     dirty 5 MiB/s, link 30 MiB/s  -> auto_converge
 *     dirty unknown                 -> postcopy
 */
export function convergenceAid(dirtyBps: number | null, linkBps: number | null): 'postcopy' | 'auto_converge' {
  if (dirtyBps === null || linkBps === null) return 'postcopy';
  return dirtyBps >= POSTCOPY_DIRTY_FRACTION * linkBps ? 'postcopy' : 'auto_converge';
}

/** QEMU's default cpu-throttle-initial: what auto-converge starts at unless told. */
export const DEFAULT_THROTTLE_START_PERCENT = 20;
/** QEMU's cpu-throttle-max. */
export const MAX_THROTTLE_START_PERCENT = 99;
/**
 * The throttled dirty rate aimed for, as a fraction of the link: each pass then
 * keeps about a quarter of the one before. Deeper than half on purpose: for a
 * working set W, a guest dirtying D over a link B and left r·B by the throttle
 * gives up (1 − r·B/D) of its CPU for about W / (B·(1 − r)), a product that
 * grows with r whenever D > B: the lower r, the less CPU lost in all and the
 * sooner the throttle ends. Below B, the throttle buys time, not CPU.
 */
export const THROTTLED_DIRTY_FRACTION = 0.25;

/**
 * Where auto-converge's CPU throttle should start for a guest measured
 * dirtying `dirtyBps` over a link carrying `linkBps`: the throttle that slows a
 * CPU-bound dirtier to a quarter of the link (a throttle of t leaves it 1 − t
 * of its CPU), so the first throttled pass already shrinks, instead of
 * climbing from QEMU's 20 % in 10 % steps a pass each. Null (QEMU's default)
 * when either figure is unknown or 20 % is already enough.
 *
 *     dirty 45 MiB/s, link 30 MiB/s -> 84 (45 × 0.17 = 7.5, a quarter of the link)
 *     dirty 90 MiB/s, link 30 MiB/s -> 92
 *     dirty 5 MiB/s, link 30 MiB/s  -> null
 */
export function throttleStartPercent(dirtyBps: number | null, linkBps: number | null): number | null {
  if (dirtyBps === null || linkBps === null || dirtyBps <= 0) return null;
  const needed = Math.ceil(100 * (1 - (THROTTLED_DIRTY_FRACTION * linkBps) / dirtyBps));
  return needed > DEFAULT_THROTTLE_START_PERCENT ? Math.min(needed, MAX_THROTTLE_START_PERCENT) : null;
}

export function hasFlag(flags: number, flag: MigrateFlag): boolean {
  return (flags & flag) === flag;
}
