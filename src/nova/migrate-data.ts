// The subset of Nova's LibvirtLiveMigrateData that ferry fills and reads.
// Field names are Nova's, so a conductor passes it through unchanged.

import type { PluggedVif } from '../record/registry.js';
import type { VifMigrateData } from './vifs.js';

export interface MigrateBdmInfo {
  serial: string;
  /** Guest device, e.g. "vdb". */
  dev: string;
  type: 'disk';
  /** Nova keeps connection_info as a JSON string. */
  connection_info_json: string;
}

export interface LiveMigrateData {
  /** Probe file name the destination wrote in its instances path. */
  filename?: string | null;
  image_type?: string;
  block_migration?: boolean | null;
  disk_over_commit?: boolean | null;
  disk_available_mb?: number | null;
  is_shared_instance_path?: boolean;
  is_shared_block_storage?: boolean;
  is_volume_backed?: boolean;
  instance_relative_path?: string;
  graphics_listen_addr_vnc?: string | null;
  graphics_listen_addr_spice?: string | null;
  serial_listen_addr?: string | null;
  /** The destination's ports for the guest's TCP serial consoles, indexed by serial port (<target port>). */
  serial_listen_ports?: number[] | null;
  target_connect_addr?: string | null;
  wait_for_vif_plugged?: boolean;
  /** Per port, its source and destination bindings (the conductor's). */
  vifs?: VifMigrateData[] | null;
  /** ferry: the ports the destination plugged, from its pre_live_migration reply. */
  plugged_vifs?: PluggedVif[];
  bdms?: MigrateBdmInfo[];
  /** ferry: "<arch>/<virt type>" pairs the destination can run, for the source's check. */
  dst_supported_guests?: string[];
  /** ferry: custom-mode CPU models the destination can run, per "<arch>/<virt type>" of its own arch. */
  dst_cpu_models?: Record<string, string[]>;
  /** The destination live-migrates rescued instances (its check's word; Newton's "live migration of rescued instances"). */
  dst_supports_live_migrate_rescued?: boolean;
  /** The source does (its check's word). */
  src_supports_live_migrate_rescued?: boolean;
  /** ferry: the source found the guest rescued (its folder holds disk.rescue). */
  instance_rescued?: boolean;
  /** ferry: the source's local disks with their backing chains, from its check, for the destination's. */
  src_disks?: InstanceDiskInfo[];
  /**
   * ferry: how block migration copies each local disk, decided by the
   * destination's check: the top layer onto the same backing there, or whole.
   */
  disk_copy?: Record<string, DiskCopy>;
}

/** `top_layer`: the destination has every backing image (VIR_MIGRATE_NON_SHARED_INC); `full`: it does not (NON_SHARED_DISK). */
export type DiskCopy = 'top_layer' | 'full';

/** An image below a disk's top layer, nearest first. */
export interface BackingFileInfo {
  path: string;
  format: string;
  virtual_size: number;
}

/** One local disk the source will copy, as sent in pre_live_migration's `disk` arg (Nova's disk info). */
export interface InstanceDiskInfo {
  path: string;
  /** Image format, e.g. "qcow2" or "raw" (Nova's `type`). */
  type: string;
  virt_disk_size: number;
  /** Bytes the image occupies now (Nova's disk_size); informational. */
  disk_size?: number;
  /** ferry: the guest device the disk backs; Nova's disk info has none. */
  dev?: string;
  /** ferry: the images below the top layer; the destination makes an overlay on the first. Absent or empty: a flat image. */
  backing_chain?: BackingFileInfo[];
}

/** How errors and logs name a disk: its guest device, else its path (Nova's disk info has no device). */
export function diskName(d: InstanceDiskInfo): string {
  return d.dev ?? d.path;
}
