// Typed layer over the native addon (native/src). Every call runs off the JS
// thread in the addon; this file only types it, wraps handles in classes that
// implement ./types.ts, and turns addon errors into VirErrors with a JS stack.
import { createRequire } from 'node:module';
import type {
  Connection,
  Domain,
  DomainCapabilitiesOptions,
  DomainStateInfo,
  DomainStats,
  JobCompletedEventData,
  JobInfo,
  JobStats,
  LifecycleEventData,
  MigrateParams,
  StoragePool,
  StorageVol,
  Stream,
  VirError,
} from './types.js';
import { checkMigrate, type LibvirtVersions } from './features.js';

export * from './types.js';
export { FeatureUnavailableError, formatVersion, type LibvirtVersion } from './features.js';

/** The addon's domain: the contract's Domain, plus an explicit free (a null URI means direct migration). */
type NativeDomain = Omit<Domain, 'migrateToURI3'> & {
  migrateToURI3(dconnuri: string | null, params: MigrateParams, flags: number): Promise<void>;
  free(): void;
};

/** The addon's storage handles: the contract's, with the native stream passed to upload. */
type NativeStream = Stream;
type NativePool = StoragePool;
interface NativeVol {
  upload(stream: NativeStream, offset: number, length: number, flags: number): Promise<void>;
  free(): void;
}

type EventKind = 'lifecycle' | 'jobCompleted' | 'close';

interface NativeConnection {
  readonly uri: string;
  getCapabilities(): Promise<string>;
  getDomainCapabilities(opts: DomainCapabilitiesOptions | undefined, flags: number): Promise<string>;
  getHostname(): Promise<string>;
  getLibVersion(): Promise<number>;
  getVersion(): Promise<number>;
  listAllDomains(flags?: number): Promise<NativeDomain[]>;
  lookupByUUID(uuid: string): Promise<NativeDomain>;
  lookupByName(name: string): Promise<NativeDomain>;
  defineXML(xml: string): Promise<NativeDomain>;
  createXML(xml: string, flags?: number): Promise<NativeDomain>;
  storagePoolCreateXML(xml: string, flags: number): Promise<NativePool>;
  storagePoolLookupByName(name: string): Promise<NativePool>;
  storageVolLookupByPath(path: string): Promise<NativeVol>;
  newStream(flags: number): Promise<NativeStream>;
  isAlive(): boolean;
  setEventHandler(handler: (kind: EventKind, data: unknown) => void): void;
  close(): Promise<number>;
}

interface NativeAddon {
  open(uri: string, opts: OpenOptions): Promise<NativeConnection>;
  /** LIBVIR_VERSION_NUMBER of the headers the addon was built against. */
  readonly headerVersion: number;
  /** Test hook, exported only with FERRY_ADDON_TEST_HOOKS=1: sleeps `ms` on an own thread or the call pool. */
  blockForTesting?(ms: number, ownThread: boolean): Promise<void>;
}

/** How long libvirt waits for an unanswering daemon: it closes the connection after interval × (count + 1) s. */
export interface OpenOptions {
  keepaliveInterval?: number;
  keepaliveCount?: number;
}

let addon: NativeAddon | undefined;

// Loaded on first use so importing this module (e.g. for the types or enums)
// works where the addon is not built. The path is valid from src/ and dist/.
function native(): NativeAddon {
  addon ??= createRequire(import.meta.url)('../../native/build/Release/virt.node') as NativeAddon;
  return addon;
}

interface AddonError extends Error {
  code?: unknown;
  domain?: unknown;
  level?: unknown;
}

/** Re-create an addon error here so it carries the caller's (async) stack. */
function toVirError(e: unknown): unknown {
  const src = e as AddonError;
  if (!(e instanceof Error) || typeof src.code !== 'number' || typeof src.domain !== 'number') return e;
  const err = new Error(e.message) as VirError;
  err.name = 'VirError';
  err.code = src.code;
  err.domain = src.domain;
  if (typeof src.level === 'number') err.level = src.level;
  return err;
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toVirError(e);
  }
}

export class LibvirtDomain implements Domain {
  readonly name: string;
  readonly uuid: string;

  constructor(
    private readonly h: NativeDomain,
    private readonly versions: LibvirtVersions,
  ) {
    this.name = h.name;
    this.uuid = h.uuid;
  }

  getXMLDesc(flags = 0): Promise<string> {
    return call(() => this.h.getXMLDesc(flags));
  }
  isActive(): Promise<boolean> {
    return call(() => this.h.isActive());
  }
  getState(): Promise<DomainStateInfo> {
    return call(() => this.h.getState());
  }
  create(): Promise<void> {
    return call(() => this.h.create());
  }
  destroy(): Promise<void> {
    return call(() => this.h.destroy());
  }
  undefine(flags = 0): Promise<void> {
    return call(() => this.h.undefine(flags));
  }
  shutdown(): Promise<void> {
    return call(() => this.h.shutdown());
  }
  suspend(): Promise<void> {
    return call(() => this.h.suspend());
  }
  resume(): Promise<void> {
    return call(() => this.h.resume());
  }
  /**
   * An empty dconnuri is passed to libvirt as NULL (non-peer-to-peer migration).
   * Rejects with FeatureUnavailableError, before libvirt is called, for a param
   * or flag the headers or the daemon lack or must not be given (features.ts).
   */
  async migrateToURI3(dconnuri: string, params: MigrateParams, flags: number): Promise<void> {
    checkMigrate(params, flags, this.versions);
    return call(() => this.h.migrateToURI3(dconnuri, params, flags));
  }
  getJobStats(flags = 0): Promise<JobStats> {
    return call(() => this.h.getJobStats(flags));
  }
  getJobInfo(): Promise<JobInfo> {
    return call(() => this.h.getJobInfo());
  }
  abortJob(): Promise<void> {
    return call(() => this.h.abortJob());
  }
  migrateSetMaxDowntime(ms: number): Promise<void> {
    return call(() => this.h.migrateSetMaxDowntime(ms));
  }
  migrateGetMaxDowntime(): Promise<number> {
    return call(() => this.h.migrateGetMaxDowntime());
  }
  migrateSetMaxSpeed(mibPerSec: number, flags = 0): Promise<void> {
    return call(() => this.h.migrateSetMaxSpeed(mibPerSec, flags));
  }
  migrateStartPostCopy(): Promise<void> {
    return call(() => this.h.migrateStartPostCopy());
  }
  startDirtyRateCalc(seconds: number, flags = 0): Promise<void> {
    return call(() => this.h.startDirtyRateCalc(seconds, flags));
  }
  listGetStats(stats: number, flags = 0): Promise<DomainStats> {
    return call(() => this.h.listGetStats(stats, flags));
  }
  /** Release the libvirt handle now rather than at GC. Later calls reject. */
  free(): void {
    this.h.free();
  }
}

class LibvirtStoragePool implements StoragePool {
  constructor(private readonly h: NativePool) {}
  destroy(): Promise<void> {
    return call(() => this.h.destroy());
  }
  free(): void {
    this.h.free();
  }
}

class LibvirtStream implements Stream {
  constructor(readonly h: NativeStream) {}
  send(data: Uint8Array): Promise<number> {
    return call(() => this.h.send(data));
  }
  finish(): Promise<void> {
    return call(() => this.h.finish());
  }
  abort(): Promise<void> {
    return call(() => this.h.abort());
  }
  free(): void {
    this.h.free();
  }
}

class LibvirtStorageVol implements StorageVol {
  constructor(private readonly h: NativeVol) {}
  upload(stream: Stream, offset: number, length: number, flags = 0): Promise<void> {
    if (!(stream instanceof LibvirtStream)) throw new TypeError('stream: expected a Stream of this binding');
    return call(() => this.h.upload(stream.h, offset, length, flags));
  }
  free(): void {
    this.h.free();
  }
}

type Listener<T> = (e: T) => void;

export class LibvirtConnection implements Connection {
  readonly uri: string;
  private closeReason: number | undefined;
  private readonly closeListeners: Listener<number>[] = [];
  private readonly lifecycle: Listener<LifecycleEventData>[] = [];
  private readonly jobCompleted: Listener<JobCompletedEventData>[] = [];

  constructor(
    private readonly h: NativeConnection,
    readonly versions: LibvirtVersions,
  ) {
    this.uri = h.uri;
    // Weak: the addon holds the handler strongly, and a strong `this` here
    // would keep an unclosed, unreachable connection alive forever.
    const self = new WeakRef(this);
    h.setEventHandler((kind, data) => self.deref()?.dispatch(kind, data));
  }

  getCapabilities(): Promise<string> {
    return call(() => this.h.getCapabilities());
  }
  /** Unknown option keys and non-string values reject with a TypeError before libvirt is called. */
  getDomainCapabilities(opts?: DomainCapabilitiesOptions, flags = 0): Promise<string> {
    return call(() => this.h.getDomainCapabilities(opts, flags));
  }
  getHostname(): Promise<string> {
    return call(() => this.h.getHostname());
  }
  /** The daemon's version, read once when the connection was opened. */
  getLibVersion(): Promise<number> {
    return Promise.resolve(this.versions.daemon);
  }
  getVersion(): Promise<number> {
    return call(() => this.h.getVersion());
  }
  async listAllDomains(flags = 0): Promise<Domain[]> {
    return (await call(() => this.h.listAllDomains(flags))).map((d) => this.wrap(d));
  }
  async lookupByUUID(uuid: string): Promise<Domain> {
    return this.wrap(await call(() => this.h.lookupByUUID(uuid)));
  }
  async lookupByName(name: string): Promise<Domain> {
    return this.wrap(await call(() => this.h.lookupByName(name)));
  }
  async defineXML(xml: string): Promise<Domain> {
    return this.wrap(await call(() => this.h.defineXML(xml)));
  }
  async createXML(xml: string, flags = 0): Promise<Domain> {
    return this.wrap(await call(() => this.h.createXML(xml, flags)));
  }
  async storagePoolCreateXML(xml: string, flags = 0): Promise<StoragePool> {
    return new LibvirtStoragePool(await call(() => this.h.storagePoolCreateXML(xml, flags)));
  }
  async storagePoolLookupByName(name: string): Promise<StoragePool> {
    return new LibvirtStoragePool(await call(() => this.h.storagePoolLookupByName(name)));
  }
  async storageVolLookupByPath(path: string): Promise<StorageVol> {
    return new LibvirtStorageVol(await call(() => this.h.storageVolLookupByPath(path)));
  }
  async newStream(flags = 0): Promise<Stream> {
    return new LibvirtStream(await call(() => this.h.newStream(flags)));
  }
  isAlive(): boolean {
    return this.closeReason === undefined && this.h.isAlive();
  }
  onClose(cb: (reason: number) => void): void {
    if (this.closeReason !== undefined) queueMicrotask(() => cb(this.closeReason as number));
    else this.closeListeners.push(cb);
  }
  onLifecycle(cb: Listener<LifecycleEventData>): void {
    this.lifecycle.push(cb);
  }
  onJobCompleted(cb: Listener<JobCompletedEventData>): void {
    this.jobCompleted.push(cb);
  }
  /** Deregisters events and drops this connection reference. */
  async close(): Promise<void> {
    await this.closeCountingRefs();
  }
  /**
   * close(), resolving with the libvirt references to the connection still
   * held elsewhere: live Domain objects keep it open until freed or collected.
   */
  closeCountingRefs(): Promise<number> {
    return call(() => this.h.close());
  }

  private wrap(d: NativeDomain): LibvirtDomain {
    return new LibvirtDomain(d, this.versions);
  }

  private dispatch(kind: EventKind, data: unknown): void {
    switch (kind) {
      case 'lifecycle':
        return emit(this.lifecycle, data as LifecycleEventData);
      case 'jobCompleted':
        return emit(this.jobCompleted, data as JobCompletedEventData);
      case 'close': {
        if (this.closeReason !== undefined) return;
        this.closeReason = (data as { reason: number }).reason;
        return emit(this.closeListeners.splice(0), this.closeReason);
      }
    }
  }
}

// A throwing listener must not starve the others or vanish: rethrow it as an
// uncaught exception, as an EventEmitter would.
function emit<T>(listeners: Listener<T>[], e: T): void {
  for (const cb of listeners) {
    try {
      cb(e);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

/** @internal For tests of the thread model only (FERRY_ADDON_TEST_HOOKS=1 before the addon loads). */
export function blockForTesting(ms: number, ownThread: boolean): Promise<void> {
  const hook = native().blockForTesting;
  if (!hook) throw new Error('the addon was loaded without FERRY_ADDON_TEST_HOOKS=1: no test hooks');
  return hook(ms, ownThread);
}

/**
 * Open a read-write libvirt connection (virConnectOpen) with events registered,
 * and read the daemon's libvirt version once.
 */
export async function openConnection(uri: string, opts: OpenOptions = {}): Promise<Connection> {
  const h = await call(() => native().open(uri, opts));
  try {
    const daemon = await call(() => h.getLibVersion());
    const headers = native().headerVersion;
    if (typeof headers !== 'number') throw new Error('the libvirt addon does not report its header version: rebuild native/');
    return new LibvirtConnection(h, { headers, daemon });
  } catch (e) {
    await h.close().catch(() => undefined);
    throw e;
  }
}
