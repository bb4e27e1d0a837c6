// Disks of a domain, and which of them a block migration copies
// (Nova: Guest.get_all_disks + _live_migration_copy_disk_paths).
import { childElements, findAll, firstChild, parseXml, textContent } from './xml.js';

export interface DiskInfo {
  /** target dev, e.g. "vda" */
  dev: string;
  bus: string | null;
  /** disk | cdrom | floppy | lun */
  device: string;
  /** source type: file | block | network | volume | dir | nvme | vhostuser */
  type: string;
  /** file path, block device, or network "name"; null when there is no source */
  sourcePath: string | null;
  /** driver type, e.g. qcow2 or raw */
  format: string | null;
  readonly: boolean;
  shareable: boolean;
  serial: string | null;
}

const SOURCE_ATTR: Record<string, string> = { file: 'file', block: 'dev', dir: 'dir', network: 'name', volume: 'volume' };

export function diskInfo(domainXml: string): DiskInfo[] {
  const domain = parseXml(domainXml).documentElement;
  return findAll(domain, 'devices/disk').map((disk) => {
    const type = disk.getAttribute('type') ?? 'file';
    const target = firstChild(disk, 'target');
    const source = firstChild(disk, 'source');
    const serial = firstChild(disk, 'serial');
    const attr = SOURCE_ATTR[type];
    return {
      dev: target?.getAttribute('dev') ?? '',
      bus: target?.getAttribute('bus') ?? null,
      device: disk.getAttribute('device') ?? 'disk',
      type,
      sourcePath: (attr && source?.getAttribute(attr)) ?? null,
      format: firstChild(disk, 'driver')?.getAttribute('type') ?? null,
      readonly: childElements(disk, 'readonly').length > 0,
      shareable: childElements(disk, 'shareable').length > 0,
      serial: serial ? textContent(serial).trim() : null,
    };
  });
}

export interface MigrateDisks {
  /** source paths, for data_gb */
  paths: string[];
  /** target devs, for migrate_disks */
  devs: string[];
}

/**
 * The local disks a block migration must copy: file or block disks that are
 * neither read-only, shareable, nor volumes. `volumeDevs` are the volumes'
 * mount devices ("/dev/vdd" or "vdd"); with [] every local disk counts, as in
 * Nova's tunnelled case, which does not look volumes up.
 */
export function selectMigrateDisks(domainXml: string, volumeDevs: readonly string[]): MigrateDisks {
  return localDisks(domainXml, volumeDevs, (d) => !d.readonly && (d.type === 'file' || d.type === 'block'));
}

/**
 * The read-only local files (an iso9660 config drive, `disk.config`): libvirt
 * migrates a read-only disk as if shared and refuses to copy it ("Cannot
 * migrate empty or read-only disk"), so block migration has to bring them
 * some other way. Raw files only: a byte copy of an image with a backing
 * file would need that file too.
 */
export function selectReadOnlyDisks(domainXml: string, volumeDevs: readonly string[]): MigrateDisks {
  return localDisks(domainXml, volumeDevs, (d) => d.readonly && d.type === 'file' && (d.format ?? 'raw') === 'raw');
}

/** Disks that pass `keep`, with a source, neither shareable nor one of the volumes. */
function localDisks(domainXml: string, volumeDevs: readonly string[], keep: (d: DiskInfo) => boolean): MigrateDisks {
  const volumes = new Set(volumeDevs.map((d) => d.slice(d.lastIndexOf('/') + 1)));
  const out: MigrateDisks = { paths: [], devs: [] };
  for (const disk of diskInfo(domainXml)) {
    if (disk.shareable || !keep(disk)) continue;
    if (volumes.has(disk.dev)) continue;
    if (disk.sourcePath === null) continue; // e.g. an empty cdrom: nothing to copy
    out.paths.push(disk.sourcePath);
    out.devs.push(disk.dev);
  }
  return out;
}
