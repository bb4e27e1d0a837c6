// The typed surface of ferry's libvirt binding. The N-API addon in native/
// implements it; src/libvirt/index.ts wraps the addon with these types. The
// migration code depends only on these interfaces, so its tests can use fakes.

import type { LibvirtVersions } from './features.js';

/** virDomainMigrateFlags (libvirt 9.0; src/libvirt/features.ts gates the newer uses). */
export enum MigrateFlag {
  LIVE = 1,
  PEER2PEER = 2,
  TUNNELLED = 4,
  PERSIST_DEST = 8,
  UNDEFINE_SOURCE = 16,
  PAUSED = 32,
  NON_SHARED_DISK = 64,
  NON_SHARED_INC = 128,
  CHANGE_PROTECTION = 256,
  UNSAFE = 512,
  OFFLINE = 1024,
  COMPRESSED = 2048,
  ABORT_ON_ERROR = 4096,
  AUTO_CONVERGE = 8192,
  RDMA_PIN_ALL = 16384,
  POSTCOPY = 32768,
  TLS = 65536,
  PARALLEL = 131072,
  NON_SHARED_SYNCHRONOUS_WRITES = 262144,
  POSTCOPY_RESUME = 524288,
  ZEROCOPY = 1048576,
}

/** virDomainJobType */
export enum JobType {
  NONE = 0,
  BOUNDED = 1,
  UNBOUNDED = 2,
  COMPLETED = 3,
  FAILED = 4,
  CANCELLED = 5,
}

/** virDomainState */
export enum DomainState {
  NOSTATE = 0,
  RUNNING = 1,
  BLOCKED = 2,
  PAUSED = 3,
  SHUTDOWN = 4,
  SHUTOFF = 5,
  CRASHED = 6,
  PMSUSPENDED = 7,
}

/** virDomainPausedReason: the ones ferry branches on. */
export enum PausedReason {
  /** An incoming migration's domain, which has not run here yet. */
  MIGRATION = 2,
  POSTCOPY = 12,
  POSTCOPY_FAILED = 13,
}

/** virDomainEventType (lifecycle) */
export enum LifecycleEvent {
  DEFINED = 0,
  UNDEFINED = 1,
  STARTED = 2,
  SUSPENDED = 3,
  RESUMED = 4,
  STOPPED = 5,
  SHUTDOWN = 6,
  PMSUSPENDED = 7,
  CRASHED = 8,
}

/** virDomainEventSuspendedDetailType: the two that matter to migration. */
export enum SuspendedDetail {
  PAUSED = 0,
  MIGRATED = 1,
  POSTCOPY = 7,
  POSTCOPY_FAILED = 8,
}

/** virDomainXMLFlags */
export enum XmlFlag {
  SECURE = 1,
  INACTIVE = 2,
  UPDATE_CPU = 4,
  MIGRATABLE = 8,
}

/** virDomainGetJobStatsFlags */
export enum JobStatsFlag {
  COMPLETED = 1,
  KEEP_COMPLETED = 2,
}

/** virDomainDirtyRateCalcFlags: how virDomainStartDirtyRateCalc measures (libvirt 8.1). */
export enum DirtyRateMode {
  PAGE_SAMPLING = 0,
  DIRTY_BITMAP = 1 << 0,
  DIRTY_RING = 1 << 1,
}

/** virDomainStatsTypes ferry asks virDomainListGetStats for. */
export enum DomainStatsType {
  DIRTYRATE = 1 << 9,
}

/** virDomainDirtyRateStatus: 'dirtyrate.calc_status'. */
export enum DirtyRateStatus {
  UNSTARTED = 0,
  MEASURING = 1,
  MEASURED = 2,
}

/** virDomainMigrateMaxSpeedFlags */
export enum MaxSpeedFlag {
  POSTCOPY = 1,
}

/** virDomainUndefineFlagsValues used by ferry */
export enum UndefineFlag {
  MANAGED_SAVE = 1,
  SNAPSHOTS_METADATA = 2,
  NVRAM = 4,
}

/** virErrorNumber values ferry branches on. */
export enum VirErrorCode {
  INTERNAL_ERROR = 1,
  NO_SUPPORT = 3,
  OPERATION_FAILED = 9,
  NO_DOMAIN = 42,
  NO_STORAGE_POOL = 49,
  NO_STORAGE_VOL = 50,
  OPERATION_INVALID = 55,
  OPERATION_ABORTED = 78,
  ARGUMENT_UNSUPPORTED = 74,
}

/**
 * The VIR_MIGRATE_PARAM_* keys with their value types: libvirt 9.0's, and newer
 * ones that src/libvirt/features.ts checks against the headers and the daemon.
 */
export interface MigrateParams {
  migrate_uri?: string;
  destination_name?: string;
  destination_xml?: string;
  persistent_xml?: string;
  /** MiB/s */
  bandwidth?: number;
  'bandwidth.postcopy'?: number;
  graphics_uri?: string;
  listen_address?: string;
  migrate_disks?: string[];
  disks_port?: number;
  disks_uri?: string;
  'parallel.connections'?: number;
  'tls.destination'?: string;
  'auto_converge.initial'?: number;
  'auto_converge.increment'?: number;
  compression?: string[];
  /** libvirt >= 10.9: disk targets whose zero blocks are not sent. */
  migrate_disks_detect_zeroes?: string[];
  /** libvirt >= 11.1: MiB/s QEMU assumes at switchover instead of measuring it. */
  'bandwidth.avail.switchover'?: number;
}

/**
 * virDomainGetJobStats as a plain object. Byte counters are numbers: exact up
 * to 8 PiB, far beyond any guest. Keys libvirt did not report are absent.
 */
export interface JobStats {
  type: JobType;
  operation?: number;
  success?: boolean;
  errmsg?: string;
  time_elapsed?: number;
  time_elapsed_net?: number;
  time_remaining?: number;
  downtime?: number;
  downtime_net?: number;
  setup_time?: number;
  data_total?: number;
  data_processed?: number;
  data_remaining?: number;
  memory_total?: number;
  memory_processed?: number;
  memory_remaining?: number;
  memory_constant?: number;
  memory_normal?: number;
  memory_normal_bytes?: number;
  memory_bps?: number;
  /** pages per second */
  memory_dirty_rate?: number;
  memory_page_size?: number;
  memory_iteration?: number;
  memory_postcopy_requests?: number;
  disk_total?: number;
  disk_processed?: number;
  disk_remaining?: number;
  disk_bps?: number;
  auto_converge_throttle?: number;
  [key: string]: number | string | boolean | undefined;
}

/** virDomainGetJobInfo */
export interface JobInfo {
  type: JobType;
  timeElapsed: number;
  timeRemaining: number;
  dataTotal: number;
  dataProcessed: number;
  dataRemaining: number;
  memTotal: number;
  memProcessed: number;
  memRemaining: number;
  fileTotal: number;
  fileProcessed: number;
  fileRemaining: number;
}

export interface DomainStateInfo {
  state: DomainState;
  reason: number;
}

/** A libvirt error surfaced to JS: libvirt's code, domain and message. */
export interface VirError extends Error {
  code: number;
  domain: number;
  level?: number;
}

export function isVirError(e: unknown): e is VirError {
  return e instanceof Error && typeof (e as Partial<VirError>).code === 'number' && 'domain' in e;
}

export interface LifecycleEventData {
  uuid: string;
  name: string;
  event: LifecycleEvent;
  detail: number;
}

export interface JobCompletedEventData {
  uuid: string;
  name: string;
  stats: JobStats;
}

export interface Domain {
  readonly name: string;
  readonly uuid: string;
  getXMLDesc(flags?: number): Promise<string>;
  isActive(): Promise<boolean>;
  getState(): Promise<DomainStateInfo>;
  create(): Promise<void>;
  destroy(): Promise<void>;
  undefine(flags?: number): Promise<void>;
  /** Asks the guest to power off (ACPI); returns once asked, not once off. */
  shutdown(): Promise<void>;
  suspend(): Promise<void>;
  resume(): Promise<void>;
  /** Blocks in libvirt for the whole migration; runs on a dedicated thread. */
  migrateToURI3(dconnuri: string, params: MigrateParams, flags: number): Promise<void>;
  getJobStats(flags?: number): Promise<JobStats>;
  getJobInfo(): Promise<JobInfo>;
  abortJob(): Promise<void>;
  migrateSetMaxDowntime(ms: number): Promise<void>;
  migrateGetMaxDowntime(): Promise<number>;
  /** MiB/s; flags MaxSpeedFlag.POSTCOPY sets the post-copy bandwidth. */
  migrateSetMaxSpeed(mibPerSec: number, flags?: number): Promise<void>;
  migrateStartPostCopy(): Promise<void>;
  /** virDomainStartDirtyRateCalc: samples the guest's dirty rate for `seconds` (flags DirtyRateMode). */
  startDirtyRateCalc(seconds: number, flags?: number): Promise<void>;
  /** virDomainListGetStats for this domain: libvirt's typed params by name (stats DomainStatsType). */
  listGetStats(stats: number, flags?: number): Promise<DomainStats>;
}

/** virDomainListGetStats' typed params, e.g. 'dirtyrate.calc_status', 'dirtyrate.megabytes_per_second'. */
export type DomainStats = Record<string, number | string | boolean>;

/** A storage pool (virStoragePoolPtr). */
export interface StoragePool {
  /** virStoragePoolDestroy: stops the pool; a dir pool's files stay, a transient pool is gone. */
  destroy(): Promise<void>;
  free(): void;
}

/** A storage volume (virStorageVolPtr). */
export interface StorageVol {
  /** virStorageVolUpload: `length` bytes from `offset` now come through `stream` (send, then finish). */
  upload(stream: Stream, offset: number, length: number, flags?: number): Promise<void>;
  free(): void;
}

/** A blocking data stream (virStreamPtr). */
export interface Stream {
  /** virStreamSend: the number of bytes taken, which may be fewer than given. */
  send(data: Uint8Array): Promise<number>;
  /** virStreamFinish: all data sent; the transfer succeeded on the far side or this rejects. */
  finish(): Promise<void>;
  abort(): Promise<void>;
  free(): void;
}

/** virConnectGetDomainCapabilities selectors; null or absent lets libvirt pick the default. */
export interface DomainCapabilitiesOptions {
  emulatorBin?: string | null;
  arch?: string | null;
  machine?: string | null;
  virtType?: string | null;
}

export interface Connection {
  readonly uri: string;
  getCapabilities(): Promise<string>;
  /** virConnectGetDomainCapabilities: the domain capabilities XML for one emulator/arch/machine/virt type. */
  getDomainCapabilities(opts?: DomainCapabilitiesOptions, flags?: number): Promise<string>;
  getHostname(): Promise<string>;
  /** virConnectGetLibVersion: the daemon's libvirt version (see features.ts). */
  getLibVersion(): Promise<number>;
  /** virConnectGetVersion: the hypervisor's version (QEMU's), major * 1,000,000 + minor * 1,000 + micro. */
  getVersion(): Promise<number>;
  /** The addon's libvirt headers and the daemon, as read at connect: what a call may use (features.ts). */
  readonly versions: LibvirtVersions;
  listAllDomains(flags?: number): Promise<Domain[]>;
  lookupByUUID(uuid: string): Promise<Domain>;
  lookupByName(name: string): Promise<Domain>;
  defineXML(xml: string): Promise<Domain>;
  createXML(xml: string, flags?: number): Promise<Domain>;
  /** virStoragePoolCreateXML: a transient pool, started. */
  storagePoolCreateXML(xml: string, flags?: number): Promise<StoragePool>;
  storagePoolLookupByName(name: string): Promise<StoragePool>;
  storageVolLookupByPath(path: string): Promise<StorageVol>;
  /** virStreamNew */
  newStream(flags?: number): Promise<Stream>;
  isAlive(): boolean;
  /** Called once when libvirt closes the connection (e.g. libvirtd restarted). */
  onClose(cb: (reason: number) => void): void;
  onLifecycle(cb: (e: LifecycleEventData) => void): void;
  onJobCompleted(cb: (e: JobCompletedEventData) => void): void;
  close(): Promise<void>;
}
