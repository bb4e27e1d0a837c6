// Two (or more) ferry hosts wired exactly as the daemon wires them, with fakes
// only at the boundary: FakeConnection for libvirt, FakeBus for RabbitMQ,
// RecordingNotifier for notifications, and real files under a temp dir.

import { SerialConsolePorts } from '../../../src/nova/serial-console.js';
import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type FerryConfig } from '../../../src/config/index.js';
import { DomainEventHub } from '../../../src/libvirt/domain-events.js';
import { silentLogger } from '../../../src/log/logger.js';
import { computeEndpoint, deserializeComputeArgs } from '../../../src/compute/endpoint.js';
import { ComputeRpcApi, type LiveMigrationArgs } from '../../../src/nova/compute-rpcapi.js';
import type { IncomingResult } from '../../../src/destination/deps.js';
import { DestinationHandlers } from '../../../src/destination/handlers.js';
import { ImageCache } from '../../../src/instance/images.js';
import { InstanceHandlers } from '../../../src/instance/handlers.js';
import type { LiveMigrateData } from '../../../src/nova/migrate-data.js';
import type { VifMigrateData } from '../../../src/nova/vifs.js';
import { instanceArg, type InstanceRef, type VolumeRef } from '../../../src/nova/objects.js';
import { MigrationNotifier } from '../../../src/nova/notifications.js';
import { MigrationRegistry, type MigrationRecord } from '../../../src/record/registry.js';
import { SourceHandlers } from '../../../src/source/handlers.js';
import { isFinal, MigrationStatus } from '../../../src/record/status.js';
import type { RequestContext } from '../../../src/rpc/types.js';
import { VirErrorCode } from '../../../src/libvirt/types.js';
import { FakeConnection, FakeLibvirtWorld, guestXml, virError, type FakeDomain, type GuestDisk, type GuestInterface } from './libvirt.js';
import { FakeHostNetwork } from './network.js';
import { adminContext, FakeBus, RecordingNotifier } from './rpc.js';
import { LOGICAL_INSTANCES_PATH, makeImage, MountedHostStorage } from './storage.js';

export interface HostOptions {
  /** Config overrides (same shape as the config file). */
  config?: Record<string, unknown>;
  /** live_migration_inbound_addr, also an address the fake libvirt answers to. */
  inboundAddr?: string;
}

export interface FerryHost {
  name: string;
  config: FerryConfig;
  conn: FakeConnection;
  storage: MountedHostStorage;
  /** The host's bridges: none until a test adds them. */
  network: FakeHostNetwork;
  /** Its image_cache_path (not made until a test puts images there). */
  imagesDir: string;
  registry: MigrationRegistry;
  notifier: RecordingNotifier;
  source: SourceHandlers;
  dest: DestinationHandlers;
  /** Status transitions per migration uuid, in order, from the registry's change events. */
  statuses: Map<string, string[]>;
  /** How many times each migration entered a final status. */
  finals: Map<string, number>;
  /** Incoming migrations as they ended on this host as the destination (what ferry_incoming_migrations_total counts). */
  incomingEnds: IncomingResult[];
}

export interface Cluster {
  root: string;
  bus: FakeBus;
  world: FakeLibvirtWorld;
  src: FerryHost;
  dst: FerryHost;
  /** What a conductor uses to reach the hosts. */
  api: ComputeRpcApi;
  cleanup(): Promise<void>;
}

function host(name: string, root: string, storageDir: string, bus: FakeBus, world: FakeLibvirtWorld, o: HostOptions): FerryHost {
  const config = loadConfig({
    env: {},
    overrides: {
      host: name,
      instances_path: LOGICAL_INSTANCES_PATH,
      state_path: join(root, `${name}-state`),
      ...o.config,
      libvirt: { live_migration_inbound_addr: o.inboundAddr ?? null, ...((o.config?.libvirt as object) ?? {}) },
    },
  });
  const conn = world.add(new FakeConnection(name, o.inboundAddr ? [o.inboundAddr] : []));
  const registry = new MigrationRegistry();
  const notifier = new RecordingNotifier();
  const storage = new MountedHostStorage(storageDir);
  const network = new FakeHostNetwork();
  const incomingEnds: IncomingResult[] = [];
  conn.fileOf = (path) => storage.toReal(path);
  const deps = {
    host: name,
    config,
    libvirt: conn,
    // The host named in the URI, as libvirt's remote driver would reach it.
    openRemote: async (uri: string) => {
      const remote = world.resolve(new URL(uri).hostname.replace(/^\[|\]$/g, ''));
      if (!remote) throw virError(VirErrorCode.OPERATION_FAILED, `unable to connect to server at '${uri}': Name or service not known`);
      return remote;
    },
    events: new DomainEventHub(conn),
    computeApi: new ComputeRpcApi(bus.client(name), { rpcResponseTimeout: config.rpc_response_timeout, longRpcTimeout: config.long_rpc_timeout }),
    notifications: new MigrationNotifier(notifier, name, silentLogger),
    registry,
    storage,
    network,
    serialPorts: SerialConsolePorts.fromConfig(conn, config),
    log: silentLogger,
    onIncomingEnd: (result: IncomingResult) => incomingEnds.push(result),
  };
  const source = new SourceHandlers(deps);
  const dest = new DestinationHandlers(deps);
  const imagesDir = join(root, `${name}-images`);
  const instances = new InstanceHandlers({ ...deps, images: new ImageCache(imagesDir) });
  bus.register(name, [computeEndpoint(source, dest, instances, registry, { managementRoles: config.management_roles, serviceRoles: config.service_roles, log: silentLogger })], { deserializeArgs: deserializeComputeArgs });
  const statuses = new Map<string, string[]>();
  const finals = new Map<string, number>();
  registry.on('change', (r, previous) => {
    if (r.status === previous) return;
    if (!statuses.has(r.uuid)) statuses.set(r.uuid, []);
    statuses.get(r.uuid)!.push(r.status);
    if (isFinal(r.status)) finals.set(r.uuid, (finals.get(r.uuid) ?? 0) + 1);
  });
  return { name, config, conn, storage, network, imagesDir, registry, notifier, source, dest, statuses, finals, incomingEnds };
}

export async function makeCluster(o: { src?: HostOptions; dst?: HostOptions; sharedStorage?: boolean } = {}): Promise<Cluster> {
  const root = await fs.mkdtemp(join(tmpdir(), 'ferry-mig-'));
  const srcDir = join(root, 'src-instances');
  const dstDir = o.sharedStorage ? srcDir : join(root, 'dst-instances');
  await fs.mkdir(srcDir, { recursive: true });
  await fs.mkdir(dstDir, { recursive: true });
  const bus = new FakeBus();
  const world = new FakeLibvirtWorld();
  const src = host('compute-a', root, srcDir, bus, world, o.src ?? {});
  const dst = host('compute-b', root, dstDir, bus, world, o.dst ?? { inboundAddr: '192.0.2.20' });
  const api = new ComputeRpcApi(bus.client('conductor'), { rpcResponseTimeout: 60, longRpcTimeout: 1800 });
  return {
    root,
    bus,
    world,
    src,
    dst,
    api,
    async cleanup() {
      await bus.idle();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export interface GuestOptions {
  uuid?: string;
  name?: string;
  memoryMb?: number;
  /** Local disks to create as real images in the source instance dir (names inside it); `backing`: the logical path of a qcow2 base on the source. */
  disks?: Array<{ dev: string; file: string; format?: 'qcow2' | 'raw'; size?: string; backing?: string }>;
  volumes?: Array<{ dev: string; devicePath: string; volumeId?: string }>;
  /** A config drive with these bytes: `disk.config` in the instance folder, a read-only cdrom sda. */
  configDrive?: Uint8Array;
  interfaces?: GuestInterface[];
}

export interface Guest {
  uuid: string;
  instance: InstanceRef;
  dom: FakeDomain;
  /** Logical paths of its local disks. */
  diskPaths: string[];
}

/** Defines a running guest on the source host, with its instance folder and real disk images. */
export async function makeGuest(c: Cluster, o: GuestOptions = {}): Promise<Guest> {
  const uuid = o.uuid ?? randomUUID();
  const name = o.name ?? `instance-${uuid.slice(0, 8)}`;
  const disks: GuestDisk[] = [];
  if (o.disks?.length) {
    await c.src.storage.createInstanceDir(uuid);
    for (const d of o.disks) {
      const path = `${c.src.storage.instanceDir(uuid)}/${d.file}`;
      await makeImage(c.src.storage.toReal(path), d.format ?? 'qcow2', d.size ?? '64M', d.backing ? { path: c.src.storage.toReal(d.backing), format: 'qcow2' } : undefined);
      disks.push({ dev: d.dev, path, format: d.format ?? 'qcow2' });
    }
  }
  if (o.configDrive) {
    if (!(await c.src.storage.instanceDirExists(uuid))) await c.src.storage.createInstanceDir(uuid);
    const path = `${c.src.storage.instanceDir(uuid)}/disk.config`;
    await fs.writeFile(c.src.storage.toReal(path), o.configDrive);
    disks.push({ dev: 'sda', path, format: 'raw', cdrom: true });
  }
  const volumes: VolumeRef[] = (o.volumes ?? []).map((v) => {
    const volumeId = v.volumeId ?? randomUUID();
    return { dev: v.dev, volumeId, serial: volumeId, devicePath: v.devicePath, connectionInfo: { driver_volume_type: 'iscsi', serial: volumeId, data: { device_path: v.devicePath } } };
  });
  const xml = guestXml({ uuid, name, memoryMb: o.memoryMb ?? 1024, disks, volumes: volumes.map((v) => ({ dev: v.dev, path: v.devicePath!, serial: v.serial! })), interfaces: o.interfaces });
  const dom = c.src.conn.addDomain(uuid, name, xml);
  const instance: InstanceRef = {
    uuid,
    name,
    host: c.src.name,
    node: c.src.name,
    vmState: 'active',
    taskState: 'migrating',
    memoryMb: o.memoryMb ?? 1024,
    vcpus: 1,
    rootGb: 1,
    volumes,
  };
  return { uuid, instance, dom, diskPaths: disks.map((d) => d.path) };
}

export interface MigrateOptions {
  migrationId?: number;
  migrationUuid?: string;
  blockMigration?: boolean | null;
  timeoutSeconds?: number | null;
  onTimeout?: 'abort' | 'force_complete' | null;
  ctx?: RequestContext;
  /** Skip the pre-checks and send this migrate_data. */
  migrateData?: LiveMigrateData;
  /** The ports' bindings (migrate_data.vifs), as the conductor adds them after the checks. */
  vifs?: VifMigrateData[];
}

let nextId = 1;

/** What the conductor does: destination check (which calls the source check), then the live_migration cast. */
export async function startMigration(c: Cluster, g: Guest, o: MigrateOptions = {}): Promise<{ uuid: string; id: number; migrateData: LiveMigrateData }> {
  const ctx = o.ctx ?? adminContext();
  const inst = instanceArg(g.instance);
  const checked = o.migrateData ?? (await c.api.checkCanLiveMigrateDestination(ctx, c.dst.name, inst, o.blockMigration ?? null, false));
  // The conductor binds the ports on the destination after the check, and sends them with it.
  const migrateData = o.vifs ? { ...checked, vifs: o.vifs } : checked;
  const uuid = o.migrationUuid ?? randomUUID();
  const id = o.migrationId ?? nextId++;
  const args: LiveMigrationArgs = {
    instance: inst,
    dest: c.dst.name,
    block_migration: o.blockMigration ?? null,
    migrate_data: migrateData,
    migration: { id, uuid },
  };
  if (o.timeoutSeconds !== undefined) args.timeout_seconds = o.timeoutSeconds;
  if (o.onTimeout !== undefined) args.on_timeout = o.onTimeout;
  await c.api.liveMigration(ctx, c.src.name, args);
  await c.bus.idle();
  return { uuid, id, migrateData };
}

/** A raw compute-alt call from the source host to the destination, as any peer may send it: the reply, or the error. */
export function callDestination(c: Cluster, method: string, args: Record<string, unknown>, ctx: RequestContext = adminContext()): Promise<unknown> {
  return c.bus
    .client(c.src.name)
    .call(ctx, { topic: 'compute-alt', server: c.dst.name, version: '6.0' }, method, args)
    .catch((e: Error) => e);
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function waitStatus(h: FerryHost, uuid: string, status: string, timeoutMs = 8000): Promise<MigrationRecord> {
  await waitFor(() => h.registry.get(uuid)?.status === status, `migration ${uuid} to be ${status} (is ${h.registry.get(uuid)?.status})`, timeoutMs);
  return h.registry.get(uuid)!;
}

/** Waits for the migration to reach a final status and its background run to end. */
export async function waitDone(c: Cluster, uuid: string, timeoutMs = 8000): Promise<MigrationRecord> {
  await waitFor(() => {
    const r = c.src.registry.get(uuid);
    // Its background run is over once the source holds no more flights than unfinished records.
    const unfinished = c.src.registry.list().filter((x) => !isFinal(x.status)).length;
    return !!r && isFinal(r.status) && c.src.source.inFlight === unfinished;
  }, `migration ${uuid} to finish (is ${c.src.registry.get(uuid)?.status})`, timeoutMs);
  await c.bus.idle();
  return c.src.registry.get(uuid)!;
}

/** Statuses the source reported for a migration, in order. */
export function statusesOf(h: FerryHost, uuid: string): string[] {
  return h.statuses.get(uuid) ?? [];
}

export const S = MigrationStatus;

/** Asserts nothing of the instance is left on a host: no domain, no instance folder. */
export async function leftovers(h: FerryHost, uuid: string): Promise<{ domain: boolean; dir: boolean }> {
  return { domain: h.conn.domains.has(uuid), dir: await h.storage.instanceDirExists(uuid) };
}
