// In-memory libvirt for orchestration tests: FakeConnection and FakeDomain
// implement the contracts in src/libvirt/types.ts. Every call is recorded with
// a timestamp. A migration (migrateToURI3) resolves or rejects when the test
// says, after a scripted delay, or as libvirt would when abortJob, suspend or
// migrateStartPostCopy is called. The destination is another FakeConnection
// found by the URI's host in a FakeLibvirtWorld, so a wrong URI fails as it
// would against a real libvirtd.

import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  DirtyRateStatus,
  DomainState,
  JobType,
  MigrateFlag,
  PausedReason,
  VirErrorCode,
  type Connection,
  type Domain,
  type DomainStateInfo,
  type DomainStats,
  type JobCompletedEventData,
  type JobInfo,
  type JobStats,
  type LifecycleEventData,
  type MigrateParams,
  type StoragePool,
  type StorageVol,
  type Stream,
  type VirError,
} from '../../../src/libvirt/types.js';

export class FakeVirError extends Error implements VirError {
  readonly domain = 10; // VIR_FROM_QEMU
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'libvirtError';
  }
}

export function virError(code: VirErrorCode, message: string): FakeVirError {
  return new FakeVirError(code, message);
}

export interface CallRecord {
  host: string;
  /** Domain uuid, or 'conn' for connection calls. */
  on: string;
  method: string;
  args: unknown[];
  /** performance.now() when the call was made: the monitor keeps time on the same monotonic clock. */
  at: number;
}

const GiB = 1024 ** 3;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** The real binding completes every call on libuv's thread pool: never within the caller's microtask run. */
const threadPool = () => new Promise<void>((r) => setImmediate(r));

/** How a domain's outgoing migration behaves. All delays in ms. */
export interface MigrationBehaviour {
  /** Complete by itself this long after migrateToURI3; null = only when the test or an action ends it. */
  autoCompleteMs: number | null;
  /** After migrateStartPostCopy succeeded, complete this long after. */
  postCopyCompleteMs: number;
  /** After suspend() during a migration, end it this long after... */
  pausedEndMs: number;
  /** ...with this outcome. */
  afterPause: 'complete' | 'fail';
  /** Latency of abortJob / suspend / migrateStartPostCopy before they take effect. */
  actionDelayMs: number;
  /** Final downtime reported in the job-completed event. */
  finalDowntimeMs: number;
}

const DEFAULT_BEHAVIOUR: MigrationBehaviour = {
  autoCompleteMs: 30,
  postCopyCompleteMs: 30,
  pausedEndMs: 30,
  afterPause: 'complete',
  actionDelayMs: 0,
  finalDowntimeMs: 42,
};

interface Pending {
  uri: string;
  params: MigrateParams;
  flags: number;
  dest: FakeConnection;
  postCopy: boolean;
  polls: number;
  timer: NodeJS.Timeout | null;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class FakeDomain implements Domain {
  state: DomainState;
  /** virDomainGetState's reason, as libvirt sets it for migrations (e.g. PausedReason.MIGRATION). */
  reason = 0;
  persistent: boolean;
  /** Removed from its connection: every call fails with NO_DOMAIN, as a stale libvirt handle does. */
  gone = false;
  maxDowntimeMs = 300;
  behaviour: MigrationBehaviour = { ...DEFAULT_BEHAVIOUR };
  /** Served (and consumed) before the built-in samples; an Error is thrown. The last entry is kept. */
  jobStatsScript: Array<JobStats | Error> = [];
  /** Called at the start of every getJobStats. */
  onJobStats: (() => void) | null = null;
  /** Thrown once by the next abortJob. */
  abortJobError: Error | null = null;
  /** Each post-copy resume (migrateToURI3 with POSTCOPY_RESUME) takes the next one and fails with it; none left: it resumes. */
  resumeErrors: Error[] = [];
  /** What a dirty-rate calculation finds, MiB/s; null: libvirt refuses it (as for a domain that is not running). */
  dirtyRateMiBs: number | null = null;
  private dirtyRateStarted = false;
  private pending: Pending | null = null;
  private startedWaiters: Array<() => void> = [];

  constructor(
    readonly conn: FakeConnection,
    readonly uuid: string,
    readonly name: string,
    public xml: string,
    init: { state?: DomainState; persistent?: boolean } = {},
  ) {
    this.state = init.state ?? DomainState.RUNNING;
    this.persistent = init.persistent ?? true;
  }

  get active(): boolean {
    return this.state === DomainState.RUNNING || this.state === DomainState.PAUSED;
  }

  get migrating(): boolean {
    return this.pending !== null;
  }

  /** Resolves once migrateToURI3 has been called (at once if it already runs). */
  whenMigrating(): Promise<void> {
    if (this.pending) return Promise.resolve();
    return new Promise((r) => this.startedWaiters.push(r));
  }

  /** Ends the running migration successfully (what libvirt reports when the guest switched over). */
  completeMigration(): void {
    const p = this.takePending();
    if (!p) throw new Error('no migration running');
    const incoming = p.dest.domains.get(this.uuid);
    if (incoming) {
      incoming.state = DomainState.RUNNING;
      incoming.persistent = (p.flags & MigrateFlag.PERSIST_DEST) !== 0;
    }
    if ((p.flags & MigrateFlag.UNDEFINE_SOURCE) !== 0) this.conn.removeDomain(this.uuid);
    else this.state = DomainState.SHUTOFF;
    this.conn.emitJobCompleted({ uuid: this.uuid, name: this.name, stats: { type: JobType.COMPLETED, downtime: this.behaviour.finalDowntimeMs } });
    p.resolve();
  }

  /** Ends the running migration with an error; libvirt removes the incoming guest on the destination. */
  failMigration(err: Error = virError(VirErrorCode.OPERATION_FAILED, 'operation failed: migration job: unexpectedly failed')): void {
    const p = this.takePending();
    if (!p) throw new Error('no migration running');
    p.dest.removeDomain(this.uuid);
    p.reject(err);
  }

  /**
   * Post-copy stops half way (a broken link, or domjobabort --postcopy), as
   * libvirt >= 8.5 reports it: migrateToURI3 fails, the source stays paused
   * (post-copy failed), the destination runs on (post-copy failed).
   */
  pausePostcopy(err: Error = virError(VirErrorCode.OPERATION_FAILED, "operation failed: job 'migration out' failed in post-copy phase")): void {
    const p = this.takePending();
    if (!p?.postCopy) throw new Error('no post-copy migration running');
    this.reason = PausedReason.POSTCOPY_FAILED;
    const incoming = p.dest.domains.get(this.uuid);
    if (incoming) incoming.reason = 11; // VIR_DOMAIN_RUNNING_POSTCOPY_FAILED
    p.reject(err);
  }

  private takePending(): Pending | null {
    const p = this.pending;
    if (!p) return null;
    if (p.timer) clearTimeout(p.timer);
    this.pending = null;
    return p;
  }

  private schedule(ms: number, fn: () => void): void {
    if (!this.pending) return;
    if (this.pending.timer) clearTimeout(this.pending.timer);
    this.pending.timer = setTimeout(() => {
      if (this.pending) fn();
    }, ms);
  }

  private record(method: string, ...args: unknown[]): Promise<void> {
    this.conn.calls.push({ host: this.conn.hostname, on: this.uuid, method, args, at: performance.now() });
    return threadPool();
  }

  private alive(): void {
    if (this.gone) throw virError(VirErrorCode.NO_DOMAIN, `Domain not found: no domain with matching uuid '${this.uuid}'`);
  }

  async getXMLDesc(flags?: number): Promise<string> {
    await this.record('getXMLDesc', flags);
    this.alive();
    return this.xml;
  }

  async isActive(): Promise<boolean> {
    await this.record('isActive');
    this.alive();
    return this.active;
  }

  async getState(): Promise<DomainStateInfo> {
    await this.record('getState');
    this.alive();
    return { state: this.state, reason: this.reason };
  }

  async create(): Promise<void> {
    await this.record('create');
    this.alive();
    this.state = DomainState.RUNNING;
  }

  async destroy(): Promise<void> {
    await this.record('destroy');
    this.alive();
    if (!this.active) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: domain is not running');
    this.state = DomainState.SHUTOFF;
    if (!this.persistent) this.conn.removeDomain(this.uuid);
  }

  async undefine(flags?: number): Promise<void> {
    await this.record('undefine', flags);
    this.alive();
    this.persistent = false;
    if (!this.active) this.conn.removeDomain(this.uuid);
  }

  /** When set, a guest asked to shut down powers off this long after (else it ignores the request). */
  shutdownAfterMs: number | null = 20;

  async shutdown(): Promise<void> {
    await this.record('shutdown');
    this.alive();
    if (!this.active) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: domain is not running');
    if (this.shutdownAfterMs !== null) setTimeout(() => (this.state = DomainState.SHUTOFF), this.shutdownAfterMs);
  }

  async suspend(): Promise<void> {
    await this.record('suspend');
    this.alive();
    await sleep(this.behaviour.actionDelayMs);
    this.state = DomainState.PAUSED;
    if (this.pending) {
      const b = this.behaviour;
      this.schedule(b.pausedEndMs, () => (b.afterPause === 'complete' ? this.completeMigration() : this.failMigration()));
    }
  }

  async resume(): Promise<void> {
    await this.record('resume');
    this.alive();
    if (this.state !== DomainState.PAUSED) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: domain is not paused');
    this.state = DomainState.RUNNING;
  }

  async migrateToURI3(dconnuri: string, params: MigrateParams, flags: number): Promise<void> {
    await this.record('migrateToURI3', dconnuri, params, flags);
    this.alive();
    if (this.pending) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: another migration job is already running');
    const m = /^qemu\+[a-z]+:\/\/(\[[^\]]+\]|[^/]+)\/system$/.exec(dconnuri);
    const dest = m ? this.conn.world?.resolve(m[1]!.replace(/^\[|\]$/g, '')) : undefined;
    if (!dest) throw virError(VirErrorCode.OPERATION_FAILED, `unable to connect to server at '${dconnuri}': Name or service not known`);
    if ((flags & MigrateFlag.POSTCOPY_RESUME) !== 0) return this.resumePostcopy(dconnuri, params, flags, dest);
    if (dest.domains.has(this.uuid)) throw virError(VirErrorCode.OPERATION_FAILED, `domain '${this.name}' already exists on the destination`);
    dest.addDomain(this.uuid, this.name, params.destination_xml ?? this.xml, { state: DomainState.PAUSED, persistent: false }).reason = PausedReason.MIGRATION;
    const done = new Promise<void>((resolve, reject) => {
      this.pending = { uri: dconnuri, params, flags, dest, postCopy: false, polls: 0, timer: null, resolve, reject };
    });
    if (this.behaviour.autoCompleteMs !== null) this.schedule(this.behaviour.autoCompleteMs, () => this.completeMigration());
    for (const w of this.startedWaiters.splice(0)) w();
    return done;
  }

  private resumePostcopy(uri: string, params: MigrateParams, flags: number, dest: FakeConnection): Promise<void> {
    if (this.state !== DomainState.PAUSED || this.reason !== PausedReason.POSTCOPY_FAILED || !dest.domains.has(this.uuid)) {
      throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: resuming failed post-copy migration requires post-copy to be paused');
    }
    const failure = this.resumeErrors.shift();
    if (failure) throw failure;
    this.reason = PausedReason.POSTCOPY;
    dest.domains.get(this.uuid)!.reason = 10; // VIR_DOMAIN_RUNNING_POSTCOPY
    const done = new Promise<void>((resolve, reject) => {
      this.pending = { uri, params, flags, dest, postCopy: true, polls: 0, timer: null, resolve, reject };
    });
    this.schedule(this.behaviour.postCopyCompleteMs, () => this.completeMigration());
    for (const w of this.startedWaiters.splice(0)) w();
    return done;
  }

  async getJobStats(flags?: number): Promise<JobStats> {
    await this.record('getJobStats', flags);
    this.onJobStats?.();
    this.alive();
    if (this.jobStatsScript.length > 0) {
      const next = this.jobStatsScript.length > 1 ? this.jobStatsScript.shift()! : this.jobStatsScript[0]!;
      if (next instanceof Error) throw next;
      return { ...next };
    }
    const p = this.pending;
    if (!p) return { type: JobType.NONE };
    p.polls++;
    const memTotal = 2 * GiB;
    const memProcessed = Math.min(memTotal - 1, p.polls * 256 * 1024 * 1024);
    return {
      type: JobType.UNBOUNDED,
      time_elapsed: p.polls * 500,
      memory_total: memTotal,
      memory_processed: memProcessed,
      memory_remaining: memTotal - memProcessed,
      memory_bps: 100 * 1024 * 1024,
      memory_dirty_rate: 1000,
      memory_page_size: 4096,
      memory_iteration: 1 + Math.floor(p.polls / 4),
      disk_total: 1 * GiB,
      disk_processed: Math.min(GiB, p.polls * 128 * 1024 * 1024),
      disk_remaining: GiB - Math.min(GiB, p.polls * 128 * 1024 * 1024),
    };
  }

  async getJobInfo(): Promise<JobInfo> {
    await this.record('getJobInfo');
    this.alive();
    return { type: this.pending ? JobType.UNBOUNDED : JobType.NONE, timeElapsed: 0, timeRemaining: 0, dataTotal: 0, dataProcessed: 0, dataRemaining: 0, memTotal: 0, memProcessed: 0, memRemaining: 0, fileTotal: 0, fileProcessed: 0, fileRemaining: 0 };
  }

  async abortJob(): Promise<void> {
    await this.record('abortJob');
    this.alive();
    await sleep(this.behaviour.actionDelayMs);
    if (this.abortJobError) {
      const e = this.abortJobError;
      this.abortJobError = null;
      throw e;
    }
    if (!this.pending) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: no job is active on the domain');
    if (this.pending.postCopy) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: cannot abort migration in post-copy mode');
    this.failMigration(virError(VirErrorCode.OPERATION_ABORTED, 'operation aborted: migration out job: canceled by client'));
  }

  async migrateSetMaxDowntime(ms: number): Promise<void> {
    await this.record('migrateSetMaxDowntime', ms);
    this.alive();
    this.maxDowntimeMs = ms;
  }

  async migrateGetMaxDowntime(): Promise<number> {
    await this.record('migrateGetMaxDowntime');
    this.alive();
    return this.maxDowntimeMs;
  }

  async migrateSetMaxSpeed(mibPerSec: number, flags?: number): Promise<void> {
    await this.record('migrateSetMaxSpeed', mibPerSec, flags);
    this.alive();
  }

  async startDirtyRateCalc(seconds: number, flags = 0): Promise<void> {
    await this.record('startDirtyRateCalc', seconds, flags);
    this.alive();
    if (this.dirtyRateMiBs === null) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: domain is not running');
    this.dirtyRateStarted = true;
  }

  async listGetStats(stats: number): Promise<DomainStats> {
    await this.record('listGetStats', stats);
    this.alive();
    if (!this.dirtyRateStarted || this.dirtyRateMiBs === null) return { 'dirtyrate.calc_status': DirtyRateStatus.UNSTARTED };
    return { 'dirtyrate.calc_status': DirtyRateStatus.MEASURED, 'dirtyrate.megabytes_per_second': this.dirtyRateMiBs };
  }

  async migrateStartPostCopy(): Promise<void> {
    await this.record('migrateStartPostCopy');
    this.alive();
    await sleep(this.behaviour.actionDelayMs);
    const p = this.pending;
    if (!p) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: no migration in progress');
    if ((p.flags & MigrateFlag.POSTCOPY) === 0) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag');
    p.postCopy = true;
    this.state = DomainState.PAUSED;
    this.reason = PausedReason.POSTCOPY;
    const incoming = p.dest.domains.get(this.uuid);
    if (incoming) {
      incoming.state = DomainState.RUNNING;
      incoming.reason = 10; // VIR_DOMAIN_RUNNING_POSTCOPY
    }
    this.schedule(this.behaviour.postCopyCompleteMs, () => this.completeMigration());
  }
}

const CAPABILITIES = `<capabilities>
  <host><cpu><arch>x86_64</arch></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <domain type='qemu'/>
      <domain type='kvm'/>
    </arch>
  </guest>
</capabilities>`;

export class FakeConnection implements Connection {
  readonly uri: string;
  readonly domains = new Map<string, FakeDomain>();
  readonly calls: CallRecord[] = [];
  /** Every name the host answers to (hostname, live_migration_inbound_addr). */
  readonly addresses: Set<string>;
  capabilities = CAPABILITIES;
  world: FakeLibvirtWorld | null = null;
  /** The real file behind a path of this host (its storage); volume uploads write there. */
  fileOf: (path: string) => string = (p) => p;
  /** The storage pools active now: name -> target folder. */
  readonly activePools = new Map<string, string>();
  /** The most bytes one virStreamSend takes here (libvirt may take fewer than given). */
  streamSendMax = Number.POSITIVE_INFINITY;
  private readonly lifecycle: Array<(e: LifecycleEventData) => void> = [];
  private readonly jobCompleted: Array<(e: JobCompletedEventData) => void> = [];

  constructor(
    readonly hostname: string,
    addresses: string[] = [],
  ) {
    this.uri = `qemu+fake://${hostname}/system`;
    this.addresses = new Set([hostname, ...addresses]);
  }

  addDomain(uuid: string, name: string, xml: string, init: { state?: DomainState; persistent?: boolean } = {}): FakeDomain {
    const d = new FakeDomain(this, uuid, name, xml, init);
    this.domains.set(uuid, d);
    return d;
  }

  removeDomain(uuid: string): void {
    const d = this.domains.get(uuid);
    if (d) d.gone = true;
    this.domains.delete(uuid);
  }

  async storagePoolCreateXML(xml: string, flags?: number): Promise<StoragePool> {
    await this.record('storagePoolCreateXML', xml, flags);
    const name = /<name>([^<]+)<\/name>/.exec(xml)?.[1];
    const dir = /<path>([^<]+)<\/path>/.exec(xml)?.[1];
    if (!name || !dir) throw virError(VirErrorCode.INTERNAL_ERROR, 'XML error: missing storage pool name or target path');
    if (this.activePools.has(name)) throw virError(VirErrorCode.OPERATION_FAILED, `operation failed: pool '${name}' already exists`);
    if ([...this.activePools.values()].includes(dir)) throw virError(VirErrorCode.OPERATION_FAILED, `operation failed: Storage source conflict with pool: '${dir}'`);
    this.activePools.set(name, dir);
    return this.poolHandle(name);
  }

  async storagePoolLookupByName(name: string): Promise<StoragePool> {
    await this.record('storagePoolLookupByName', name);
    if (!this.activePools.has(name)) throw virError(VirErrorCode.NO_STORAGE_POOL, `Storage pool not found: no storage pool with matching name '${name}'`);
    return this.poolHandle(name);
  }

  private poolHandle(name: string): StoragePool {
    return {
      destroy: async () => {
        await this.record('storagePoolDestroy', name);
        this.activePools.delete(name);
      },
      free: () => {},
    };
  }

  async storageVolLookupByPath(path: string): Promise<StorageVol> {
    await this.record('storageVolLookupByPath', path);
    if (![...this.activePools.values()].includes(dirname(path)) || !existsSync(this.fileOf(path))) {
      throw virError(VirErrorCode.NO_STORAGE_VOL, `Storage volume not found: no storage vol with matching path '${path}'`);
    }
    return {
      upload: async (stream, offset, length) => {
        await this.record('storageVolUpload', path, offset, length);
        (stream as FakeStream).target = { file: this.fileOf(path), offset, length };
      },
      free: () => {},
    };
  }

  async newStream(flags?: number): Promise<Stream> {
    await this.record('newStream', flags);
    return new FakeStream(this.streamSendMax);
  }

  emitJobCompleted(e: JobCompletedEventData): void {
    for (const cb of this.jobCompleted) cb(e);
  }

  /** Calls by method name, in order (optionally for one domain). */
  callsOf(method: string, uuid?: string): CallRecord[] {
    return this.calls.filter((c) => c.method === method && (uuid === undefined || c.on === uuid));
  }

  /** Method names called, in order, without the monitor's polling noise. */
  actions(uuid?: string): string[] {
    // Reads, and the downtime ramp (its first step depends on whether a millisecond passed before the first poll).
    const noise = new Set(['getJobStats', 'getXMLDesc', 'getState', 'isActive', 'lookupByUUID', 'getCapabilities', 'migrateSetMaxDowntime']);
    return this.calls.filter((c) => !noise.has(c.method) && (uuid === undefined || c.on === uuid)).map((c) => c.method);
  }

  private record(method: string, ...args: unknown[]): Promise<void> {
    this.calls.push({ host: this.hostname, on: 'conn', method, args, at: performance.now() });
    return threadPool();
  }

  async getCapabilities(): Promise<string> {
    await this.record('getCapabilities');
    return this.capabilities;
  }

  domainCapabilities = `<domainCapabilities><cpu><mode name='custom' supported='yes'><model usable='yes'>qemu64</model></mode></cpu></domainCapabilities>`;

  async getDomainCapabilities(opts?: unknown, flags?: number): Promise<string> {
    await this.record('getDomainCapabilities', opts, flags);
    return this.domainCapabilities;
  }

  async getHostname(): Promise<string> {
    await this.record('getHostname');
    return this.hostname;
  }

  libVersion = 9_000_000;
  get versions() {
    return { headers: this.libVersion, daemon: this.libVersion };
  }

  async getLibVersion(): Promise<number> {
    await this.record('getLibVersion');
    return this.libVersion;
  }

  /** QEMU's version as libvirt reports it (9.2.0 unless a test sets another). */
  qemuVersion = 9_002_000;
  async getVersion(): Promise<number> {
    await this.record('getVersion');
    return this.qemuVersion;
  }

  async listAllDomains(flags?: number): Promise<Domain[]> {
    await this.record('listAllDomains', flags);
    return [...this.domains.values()];
  }

  async lookupByUUID(uuid: string): Promise<Domain> {
    await this.record('lookupByUUID', uuid);
    const d = this.domains.get(uuid);
    if (!d) throw virError(VirErrorCode.NO_DOMAIN, `Domain not found: no domain with matching uuid '${uuid}'`);
    return d;
  }

  async lookupByName(name: string): Promise<Domain> {
    await this.record('lookupByName', name);
    for (const d of this.domains.values()) if (d.name === name) return d;
    throw virError(VirErrorCode.NO_DOMAIN, `Domain not found: no domain with matching name '${name}'`);
  }

  /** Defines a shut-off persistent domain from the XML's <uuid> and <name>, or replaces the config of the one with that uuid. */
  async defineXML(xml: string): Promise<Domain> {
    await this.record('defineXML', xml);
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1];
    const name = /<name>([^<]+)<\/name>/.exec(xml)?.[1];
    if (!uuid || !name) throw virError(VirErrorCode.INTERNAL_ERROR, 'XML error: a domain needs a name and a uuid');
    const known = this.domains.get(uuid);
    if (known) {
      known.xml = xml;
      known.persistent = true;
      return known;
    }
    return this.addDomain(uuid, name, xml, { state: DomainState.SHUTOFF, persistent: true });
  }

  async createXML(xml: string, flags?: number): Promise<Domain> {
    await this.record('createXML', xml, flags);
    throw virError(VirErrorCode.NO_SUPPORT, 'createXML is not supported by the fake');
  }

  isAlive(): boolean {
    return true;
  }

  onClose(): void {}

  onLifecycle(cb: (e: LifecycleEventData) => void): void {
    this.lifecycle.push(cb);
  }

  onJobCompleted(cb: (e: JobCompletedEventData) => void): void {
    this.jobCompleted.push(cb);
  }


  async close(): Promise<void> {
    await this.record('close');
  }
}

/** The hosts a migration URI can reach. */
/** A stream into a volume upload: the bytes are written to the file at finish(), as a confirmed upload leaves them. */
export class FakeStream implements Stream {
  target: { file: string; offset: number; length: number } | null = null;
  readonly chunks: Uint8Array[] = [];
  aborted = false;

  constructor(private readonly sendMax: number) {}

  async send(data: Uint8Array): Promise<number> {
    await threadPool();
    if (!this.target) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: stream is not open');
    const taken = data.subarray(0, Math.min(data.length, this.sendMax));
    this.chunks.push(Uint8Array.from(taken));
    return taken.length;
  }
  async finish(): Promise<void> {
    await threadPool();
    const t = this.target;
    if (!t) throw virError(VirErrorCode.OPERATION_INVALID, 'Requested operation is not valid: stream is not open');
    const bytes = Buffer.concat(this.chunks);
    if (bytes.length !== t.length) throw virError(VirErrorCode.OPERATION_FAILED, `stream carried ${bytes.length} bytes, ${t.length} expected`);
    const fd = openSync(t.file, 'r+');
    try {
      writeSync(fd, bytes, 0, bytes.length, t.offset);
    } finally {
      closeSync(fd);
    }
  }
  async abort(): Promise<void> {
    await threadPool();
    this.aborted = true;
  }
  free(): void {}
}

export class FakeLibvirtWorld {
  readonly connections: FakeConnection[] = [];

  add(conn: FakeConnection): FakeConnection {
    conn.world = this;
    this.connections.push(conn);
    return conn;
  }

  resolve(address: string): FakeConnection | undefined {
    return this.connections.find((c) => c.addresses.has(address));
  }
}

export interface GuestDisk {
  dev: string;
  path: string;
  format?: string;
  /** A read-only cdrom (a config drive) instead of a writable disk. */
  cdrom?: boolean;
}

export interface GuestVolume {
  dev: string;
  /** block device path on the source */
  path: string;
  serial: string;
}

/** A minimal libvirt domain XML with file disks and block volumes. */
/** A NIC on a Linux bridge; `mtu` adds an <mtu>. */
export interface GuestInterface {
  mac: string;
  bridge: string;
  mtu?: number;
}

export function guestXml(o: { uuid: string; name: string; memoryMb?: number; disks?: GuestDisk[]; volumes?: GuestVolume[]; interfaces?: GuestInterface[] }): string {
  const disks = (o.disks ?? []).map((d) =>
    d.cdrom
      ? `    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='${d.path}'/>
      <target dev='${d.dev}' bus='sata'/>
      <readonly/>
    </disk>`
      : `    <disk type='file' device='disk'>
      <driver name='qemu' type='${d.format ?? 'qcow2'}'/>
      <source file='${d.path}'/>
      <target dev='${d.dev}' bus='virtio'/>
    </disk>`,
  );
  const vols = (o.volumes ?? []).map(
    (v) => `    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='${v.path}'/>
      <target dev='${v.dev}' bus='virtio'/>
      <serial>${v.serial}</serial>
    </disk>`,
  );
  const nics = (o.interfaces ?? []).map(
    (n, i) => `    <interface type='bridge'>
      <mac address='${n.mac}'/>
      <source bridge='${n.bridge}'/>
      <model type='virtio'/>${n.mtu ? `\n      <mtu size='${n.mtu}'/>` : ''}
      <address type='pci' domain='0x0000' bus='0x00' slot='0x0${3 + i}' function='0x0'/>
    </interface>`,
  );
  return `<domain type='kvm'>
  <name>${o.name}</name>
  <uuid>${o.uuid}</uuid>
  <memory unit='KiB'>${(o.memoryMb ?? 1024) * 1024}</memory>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <devices>
${[...disks, ...vols, ...nics].join('\n')}
    <graphics type='vnc' port='-1' listen='127.0.0.1'/>
  </devices>
</domain>`;
}
