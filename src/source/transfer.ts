// The transfer itself: the destination XML and migrateToURI3's URI and
// params, built from the plan and what the destination prepared, then the
// call and the monitor that watches it to its outcome.

import type { LibvirtConfig } from '../config/index.js';
import { destinationXml } from '../domain/destination-xml.js';
import { paramUsable, type LibvirtVersions } from '../libvirt/features.js';
import { MigrateFlag, type Domain, type MigrateParams } from '../libvirt/types.js';
import { MigrationControl } from '../monitor/control.js';
import { runMonitor, type MonitorOutcome } from '../monitor/loop.js';
import type { DowntimeStep } from '../monitor/nova-policy.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import type { SourceDeps } from './deps.js';
import { hasFlag } from './flags.js';
import type { MigrationPlan } from './plan.js';
import type { LiveMigrationRequest } from './request.js';
import { connectionUri, dataUri, disksUri, listenAddress, listenPorts } from './uris.js';

/** The monitor reads job stats every 0.5 s, as Nova does. */
export const POLL_MS = 500;

export interface MigrateCall {
  uri: string;
  params: MigrateParams;
}

/**
 * migrateToURI3's peer URI and params: the destination's XML, addresses,
 * disks and bandwidth; the throttle start the preflight chose for
 * auto-converge; and, where the local libvirt has it, the link's real
 * speed for QEMU's switch-over decision (`bandwidth.avail.switchover`, from
 * live_migration_link_bandwidth), rather than QEMU's own estimate.
 */
export function migrateCall(lv: LibvirtConfig, req: LiveMigrationRequest, plan: MigrationPlan, prepared: LiveMigrateData, libvirt: LibvirtVersions): MigrateCall {
  const volumePaths = new Map(req.instance.volumes.map((v) => [v.serial ?? v.dev, v.devicePath ?? '']));
  // The destination's own word: it goes into the domain XML and the URIs only once checked.
  const from = (field: string) => `${field} in ${req.dest}'s pre_live_migration reply`;
  const destXml = destinationXml(plan.xml, {
    graphicsListen: {
      vnc: listenAddress(prepared.graphics_listen_addr_vnc, from('graphics_listen_addr_vnc')),
      spice: listenAddress(prepared.graphics_listen_addr_spice, from('graphics_listen_addr_spice')),
    },
    serialListenAddr: listenAddress(prepared.serial_listen_addr, from('serial_listen_addr')),
    serialListenPorts: listenPorts(prepared.serial_listen_ports, from('serial_listen_ports')),
    volumes: (prepared.bdms ?? []).map((b) => ({ serial: b.serial, dev: b.dev, path: volumePaths.get(b.serial) ?? '' })),
    flatDisks: plan.settings.diskCopy === 'full' ? plan.devs : [],
    interfaces: (plan.settings.portBindings ?? []).map((p) => ({ mac: p.mac, vifType: p.vif_type, bridge: p.bridge, portId: p.port_id, mtu: p.mtu })),
  });
  const params: MigrateParams = { destination_xml: destXml, persistent_xml: destXml, bandwidth: lv.live_migration_bandwidth };
  if (lv.live_migration_bandwidth_postcopy > 0) params['bandwidth.postcopy'] = lv.live_migration_bandwidth_postcopy;
  const replied = from('target_connect_addr');
  const addr = prepared.target_connect_addr;
  if (addr) params.migrate_uri = dataUri(addr, replied);
  if (plan.devs.length > 0) params.migrate_disks = plan.devs;
  // The disks' mirror goes the memory stream's way, named rather than left to libvirt's choice.
  if (addr && plan.devs.length > 0) params.disks_uri = disksUri(addr, replied);
  if (lv.live_migration_parallel_connections > 1) params['parallel.connections'] = lv.live_migration_parallel_connections;
  const throttleStart = plan.settings.autoConvergePermitted ? plan.settings.preflight?.throttleStartPercent : null;
  if (throttleStart) params['auto_converge.initial'] = throttleStart;
  if (lv.live_migration_link_bandwidth > 0 && paramUsable('bandwidth.avail.switchover', libvirt)) params['bandwidth.avail.switchover'] = lv.live_migration_link_bandwidth;
  return { uri: addr ? connectionUri(addr, lv.live_migration_scheme, replied) : connectionUri(req.dest, lv.live_migration_scheme, 'dest'), params };
}

/**
 * Marks the migration running, starts migrateToURI3 and monitors it to its
 * outcome. `onControl` receives the end-game control as soon as it exists,
 * so an operator's abort or force-complete can reach it.
 */
export async function transfer(
  deps: Pick<SourceDeps, 'config' | 'registry' | 'events' | 'log'>,
  record: MigrationRecord,
  dom: Domain,
  plan: MigrationPlan,
  call: MigrateCall,
  onControl: (control: MigrationControl) => void,
): Promise<MonitorOutcome> {
  const { registry, log } = deps;
  registry.update(record, { settings: plan.settings, status: MigrationStatus.running });
  const control = new MigrationControl(record, registry, dom, log);
  onControl(control);
  log.info(
    { uri: call.uri, flags: plan.settings.flags, disks: plan.devs, disk_copy: plan.settings.diskCopy },
    'migration transfer started',
  );
  const worker = dom.migrateToURI3(call.uri, call.params, plan.settings.flags).catch((err: unknown) => {
    throw hasFlag(plan.settings.flags, MigrateFlag.TLS) ? namedTlsFailure(err, call.params.migrate_uri ?? call.uri) : err;
  });
  return watchTransfer(deps, record, dom, control, worker, plan.steps);
}

/** What QEMU's TLS failures say (GnuTLS's words, passed on by libvirt). */
const TLS_FAILURE = /certificate|TLS|handshake|x509|issuer/i;

/**
 * libvirt passes QEMU's TLS failure on without saying it is one ("job
 * 'migration out' failed: The certificate hasn't got a known issuer"): the
 * message gets the cause and where to look. The error stays the same object,
 * its code intact for the monitor.
 *
 *   namedTlsFailure(new Error("...: The certificate hasn't got a known issuer"), 'tcp://10.0.0.2')
 *   // message: "native TLS migration to tcp://10.0.0.2 failed (live_migration_with_native_tls; check
 *   //           both hosts' certificates in qemu.conf migrate_tls_x509_cert_dir): ...: The certificate ..."
 */
export function namedTlsFailure(err: unknown, dest: string): unknown {
  if (err instanceof Error && TLS_FAILURE.test(err.message)) {
    err.message = `native TLS migration to ${dest} failed (live_migration_with_native_tls; check both hosts' certificates in qemu.conf migrate_tls_x509_cert_dir): ${err.message}`;
  }
  return err;
}

/** Monitors a pending migrateToURI3 (the transfer, or a post-copy resume) to its outcome. */
export function watchTransfer(
  deps: Pick<SourceDeps, 'config' | 'registry' | 'events' | 'log'>,
  record: MigrationRecord,
  dom: Domain,
  control: MigrationControl,
  worker: Promise<void>,
  steps: readonly DowntimeStep[],
  elapsedBeforeSeconds = 0,
): Promise<MonitorOutcome> {
  return runMonitor({
    elapsedBeforeSeconds,
    domain: dom,
    events: deps.events,
    record,
    registry: deps.registry,
    control,
    worker,
    steps,
    log: deps.log,
    pollMs: POLL_MS,
    stallWindowSeconds: deps.config.libvirt.convergence_stall_window,
    statsEvery: Math.max(1, Math.trunc(deps.config.libvirt.live_migration_monitor_interval / (POLL_MS / 1000))),
  });
}
