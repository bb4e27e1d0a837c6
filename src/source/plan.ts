// What a migration copies and how, in two steps: the layout (the local disks
// and the size Nova's figures scale with), read from the guest before the
// destination is asked to prepare; then, with the preflight's measurement
// taken while the destination prepares, the flags, the timeout and the
// downtime schedule.

import type { LibvirtConfig } from '../config/index.js';
import { selectMigrateDisks, selectReadOnlyDisks } from '../domain/disks.js';
import { guestFacts } from '../domain/facts.js';
import type { HostStorage, LocalDiskInfo } from '../domain/host-storage.js';
import { DomainState, MigrateFlag, XmlFlag, type Domain } from '../libvirt/types.js';
import { completionTimeoutSeconds, downtimeSteps, timedDowntimeSteps, type DowntimeStep } from '../monitor/nova-policy.js';
import { dataGb } from '../monitor/progress.js';
import { BOOT_FILES } from '../nova/guest-definition.js';
import type { DiskCopy, InstanceDiskInfo } from '../nova/migrate-data.js';
import type { MigrationSettings, PluggedVif } from '../record/registry.js';
import { isDirectlyInside } from '../validate/path.js';
import { measureDirtyRate } from '../domain/dirty-rate.js';
import { convergenceAid, DEFAULT_THROTTLE_START_PERCENT, hasFlag, migrationFlags, throttleStartPercent } from './flags.js';
import type { LiveMigrationRequest } from './request.js';

/** What the guest gives to copy: known before the destination prepares. */
export interface MigrationLayout {
  /** The guest's migratable XML, the base of the destination's. */
  xml: string;
  blockMigration: boolean;
  /** Target devs of the local disks to copy (migrate_disks). */
  devs: string[];
  /** The disks pre_live_migration creates empty: those copied, then the read-only ones. */
  disks: InstanceDiskInfo[];
  /** Read-only local files (config drives, kernel files) the destination gets by upload before the transfer. */
  readOnlyDisks: InstanceDiskInfo[];
  diskCopy: DiskCopy;
  /** No local disk is copied (none, or no block migration): libvirt then takes no migrate_disks. */
  migrateDisksEmpty: boolean;
  dataGb: number;
  /** The guest's state when read: the preflight measures a running guest only; a paused one stays paused. */
  running: boolean;
  paused: boolean;
}

export interface MigrationPlan extends MigrationLayout {
  settings: MigrationSettings;
  steps: DowntimeStep[];
}

/** What the preflight found and chose. */
export interface Preflight {
  postCopy: boolean;
  note: MigrationSettings['preflight'];
}

/** A local disk as the wire describes it (Nova's disk info), with its backing chain when it is to be kept. */
export function diskInfoArg(d: LocalDiskInfo, withChain: boolean): InstanceDiskInfo {
  return {
    path: d.path,
    type: d.format,
    virt_disk_size: d.virtualSize,
    disk_size: d.actualSize,
    dev: d.dev,
    ...(withChain && d.backingChain.length > 0
      ? { backing_chain: d.backingChain.map((b) => ({ path: b.path, format: b.format, virtual_size: b.virtualSize })) }
      : {}),
  };
}

/**
 * libvirt copies all disks of a migration one way. The top layer only when
 * every disk with a backing chain was found complete on the destination by
 * its check (disk_copy); otherwise, or when no check said, whole: a missing
 * backing image would leave the guest reading zeros where the base had data.
 */
export function diskCopyMode(disks: readonly LocalDiskInfo[], decided: Readonly<Record<string, DiskCopy>> | undefined): DiskCopy {
  return disks.every((d) => d.backingChain.length === 0 || decided?.[d.dev] === 'top_layer') ? 'top_layer' : 'full';
}

/** The link's speed as the operator gave it (live_migration_link_bandwidth, else the bandwidth cap), bytes/s; null when neither is set. */
export function linkBandwidthBps(lv: LibvirtConfig): number | null {
  const mibs = lv.live_migration_link_bandwidth || lv.live_migration_bandwidth;
  return mibs > 0 ? mibs * 2 ** 20 : null;
}

/**
 * What the adaptive policy measures before the start and chooses by it. With
 * both post-copy and auto-converge permitted: which to arm (convergenceAid).
 * With auto-converge alone: where its throttle starts (throttleStartPercent).
 * With post-copy alone: nothing to choose yet, but the monitor may switch
 * right after the bulk pass by the rate (outlastsPostcopy). With neither:
 * nothing to arm, but a rate beyond the link lets the monitor name a
 * migration that will not converge a pass sooner (assess). Under Nova's
 * policy, or for a guest not running, nothing is measured: post-copy when
 * permitted, QEMU's own throttle start.
 */
export async function preflight(lv: LibvirtConfig, dom: Domain, running: boolean): Promise<Preflight> {
  const permitPostCopy = lv.live_migration_permit_post_copy;
  const permitAutoConverge = lv.live_migration_permit_auto_converge;
  if (lv.convergence_policy !== 'adaptive' || !running) return { postCopy: permitPostCopy, note: null };
  // When nothing is known: post-copy when permitted, as Nova; QEMU's throttle start.
  const fallback = permitPostCopy ? 'postcopy' : permitAutoConverge ? 'auto_converge' : null;
  const unmeasured = (linkBps: number | null, why: string) =>
    ({ postCopy: permitPostCopy, note: { dirtyRateBps: null, linkBps, armed: fallback, throttleStartPercent: null, why } }) as const;
  const link = linkBandwidthBps(lv);
  // Without the link's speed a dirty rate decides nothing: not worth the second it takes.
  if (link === null) return unmeasured(null, 'link speed unknown');
  const measured = await measureDirtyRate(dom);
  if ('unknown' in measured) return unmeasured(link, measured.unknown);
  const armed = !permitAutoConverge ? fallback : permitPostCopy ? convergenceAid(measured.bytesPerSec, link) : 'auto_converge';
  const throttle = armed === 'auto_converge' ? throttleStartPercent(measured.bytesPerSec, link) : null;
  return { postCopy: armed === 'postcopy', note: { dirtyRateBps: measured.bytesPerSec, linkBps: link, armed, throttleStartPercent: throttle, why: null } };
}

/**
 * The log line for what the preflight chose.
 *
 *     both permitted, measured        -> "migration armed with postcopy by the measured dirty rate"
 *     auto-converge alone, measured   -> "auto-converge throttle starts at 84 % by the measured dirty rate"
 *     post-copy alone, measured       -> "migration dirty rate measured for the post-copy switch"
 *     neither permitted, measured     -> "migration dirty rate measured for the convergence verdict"
 *     nothing measured                -> "migration preflight measured nothing (link speed unknown): armed with postcopy"
 *     nothing measured or permitted   -> "migration preflight measured nothing (link speed unknown)"
 */
export function preflightLine(note: NonNullable<MigrationSettings['preflight']>, permitted: { postCopy: boolean; autoConverge: boolean }): string {
  if (note.why !== null) return `migration preflight measured nothing (${note.why})${note.armed ? `: armed with ${note.armed}` : ''}`;
  if (!permitted.autoConverge) return permitted.postCopy ? 'migration dirty rate measured for the post-copy switch' : 'migration dirty rate measured for the convergence verdict';
  if (permitted.postCopy) return `migration armed with ${note.armed} by the measured dirty rate`;
  return `auto-converge throttle starts at ${note.throttleStartPercent ?? DEFAULT_THROTTLE_START_PERCENT} % by the measured dirty rate`;
}

async function bootFiles(storage: HostStorage, uuid: string): Promise<InstanceDiskInfo[]> {
  const out: InstanceDiskInfo[] = [];
  for (const name of BOOT_FILES) {
    const path = `${storage.instanceDir(uuid)}/${name}`;
    if (await storage.fileExists(path)) out.push({ path, type: 'raw', virt_disk_size: await storage.fileBytes(path) });
  }
  return out;
}

export async function layoutMigration(storage: HostStorage, dom: Domain, req: LiveMigrationRequest): Promise<MigrationLayout> {
  const xml = await dom.getXMLDesc(XmlFlag.MIGRATABLE);
  const blockMigration = req.blockMigration ?? req.migrateData.block_migration ?? false;
  const selected = blockMigration ? selectMigrateDisks(xml, req.instance.volumes.map((v) => v.dev)) : { paths: [], devs: [] };
  const described = await Promise.all(selected.devs.map((dev, i) => storage.describeDisk(dev, selected.paths[i] ?? '')));
  const diskCopy = diskCopyMode(described, req.migrateData.disk_copy);
  const copied = described.map((d) => diskInfoArg(d, diskCopy === 'top_layer'));
  const readOnly = blockMigration ? selectReadOnlyDisks(xml, req.instance.volumes.map((v) => v.dev)) : { paths: [], devs: [] };
  // Those in the instance folder (Nova's disk.config) are the instance's own; one elsewhere (a shared ISO library) stays as it is.
  const own = readOnly.paths.flatMap((path, i) => (isDirectlyInside(storage.instanceDir(req.instance.uuid), path) ? [{ path, dev: readOnly.devs[i] }] : []));
  // Byte copies: the destination makes a raw file of the same length for the upload to fill.
  const copies = await Promise.all(own.map(async ({ path, dev }) => ({ path, type: 'raw', virt_disk_size: await storage.fileBytes(path), dev })));
  // The kernel files a kernel-boot guest has in its folder, the rescue ones too (an unrescue over there boots the others):
  // wherever the destination has a folder of its own, a guest on shared block storage as much as a block migration.
  const boot = req.migrateData.is_shared_instance_path ? [] : await bootFiles(storage, req.instance.uuid);
  const readOnlyDisks = [...copies, ...boot];
  const memoryMb = req.instance.memoryMb ?? guestFacts(xml).memoryMb;
  const state = await dom.getState();
  return {
    xml,
    blockMigration,
    devs: selected.devs,
    disks: [...copied, ...readOnlyDisks],
    readOnlyDisks,
    diskCopy,
    migrateDisksEmpty: selected.devs.length === 0,
    dataGb: dataGb(memoryMb, described.map((d) => d.actualSize)),
    running: state.state === DomainState.RUNNING,
    paused: state.state === DomainState.PAUSED,
  };
}

export function planMigration(lv: LibvirtConfig, layout: MigrationLayout, req: LiveMigrationRequest, measured: Preflight, portBindings: PluggedVif[]): MigrationPlan {
  const { blockMigration, diskCopy, dataGb: gb } = layout;
  const flags = migrationFlags({
    blockMigration,
    fullDiskCopy: diskCopy === 'full',
    nativeTls: lv.live_migration_with_native_tls,
    permitPostCopy: measured.postCopy,
    permitAutoConverge: lv.live_migration_permit_auto_converge,
    parallelConnections: lv.live_migration_parallel_connections,
    instancePaused: layout.paused,
    migrateDisksEmpty: layout.migrateDisksEmpty,
  });
  const perMigration = req.timeoutSeconds !== null;
  const timeoutSeconds = req.timeoutSeconds ?? completionTimeoutSeconds(lv.live_migration_completion_timeout, gb);
  const downtime = { downtime: lv.live_migration_downtime, steps: lv.live_migration_downtime_steps, delay: lv.live_migration_downtime_delay };
  const steps = perMigration && timeoutSeconds > 0 ? timedDowntimeSteps(timeoutSeconds, downtime) : downtimeSteps(gb, downtime);
  const settings: MigrationSettings = {
    blockMigration,
    timeoutSeconds,
    timeoutAction: req.onTimeout ?? lv.live_migration_timeout_action,
    perMigrationTimeout: perMigration,
    postCopyPermitted: hasFlag(flags, MigrateFlag.POSTCOPY),
    autoConvergePermitted: hasFlag(flags, MigrateFlag.AUTO_CONVERGE),
    bandwidthMiBs: lv.live_migration_bandwidth,
    maxDowntimeMs: lv.live_migration_downtime,
    diskCopy: blockMigration && !layout.migrateDisksEmpty ? diskCopy : null,
    flags,
    dataGb: gb,
    convergencePolicy: lv.convergence_policy,
    preflight: measured.note,
    actOnStall: req.actOnStall ?? lv.convergence_act_on_stall,
    portBindings,
  };
  return { ...layout, settings, steps };
}
