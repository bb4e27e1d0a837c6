// The N-API libvirt binding against libvirt's built-in test driver (no daemon).
// test:///default connections in one process share state: domain `test` runs.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { execFileSync } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DomainState,
  JobStatsFlag,
  LifecycleEvent,
  MigrateFlag,
  MaxSpeedFlag,
  VirErrorCode,
  XmlFlag,
  blockForTesting,
  isVirError,
  openConnection,
  type Connection,
  type LibvirtConnection,
  type LibvirtDomain,
  type LifecycleEventData,
  type VirError,
} from '../../src/libvirt/index.js';
import { itWith } from '../lab/requires.js';

const URI = 'test:///default';
const TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f';
const ADDON = fileURLToPath(new URL('../../native/build/Release/virt.node', import.meta.url));

// The thread-model hook is exported only with this set when the addon loads
// (it loads on first use, below): ferryd never has it.
process.env.FERRY_ADDON_TEST_HOOKS = '1';

let conn: Connection;
beforeAll(async () => {
  conn = await openConnection(URI);
});
afterAll(async () => {
  await conn?.close();
});

async function rejection(p: Promise<unknown>): Promise<VirError> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
  if (!isVirError(e)) throw e;
  return e;
}

function waitFor<T>(events: T[], pred: (e: T) => boolean, ms = 2000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = (): void => {
      const hit = events.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() - t0 > ms) return reject(new Error('event did not arrive'));
      setTimeout(poll, 5);
    };
    poll();
  });
}

describe('connection', () => {
  it('opens read-write with uri, capabilities, hostname and isAlive', async () => {
    expect(conn.uri).toBe(URI);
    expect(conn.isAlive()).toBe(true);
    expect(await conn.getCapabilities()).toMatch(/<capabilities>/);
    expect((await conn.getHostname()).length).toBeGreaterThan(0);
    // virConnectGetVersion: the test driver's hypervisor says 0.0.2.
    expect(await conn.getVersion()).toBe(2);
    conn.onClose(() => undefined); // the test driver never closes; registration must not fail
  });

  it('lists all domains with name and uuid copied synchronously', async () => {
    const doms = await conn.listAllDomains();
    expect(doms.map((d) => [d.name, d.uuid])).toContainEqual(['test', TEST_UUID]);
  });

  it('rejects a bad URI with a libvirt error', async () => {
    const e = await rejection(openConnection('bogus+nothing:///x'));
    expect(e.code).toBeGreaterThan(0);
    expect(e.message.length).toBeGreaterThan(0);
  });

  it('a closed connection is not alive and rejects further calls', async () => {
    const c = await openConnection(URI);
    await c.close();
    expect(c.isAlive()).toBe(false);
    await expect(c.getHostname()).rejects.toThrow(/closed/);
  });
});

describe('domain capabilities', () => {
  // The test driver learnt domain capabilities between libvirt 9.0 (NO_SUPPORT)
  // and 11.3 (XML); in between either answer is right, but all three agree.
  it('the test driver answers NO_SUPPORT (9.0) or XML (11.3), with and without selectors and flags', async () => {
    const v = await conn.getLibVersion();
    const answers: string[] = [];
    // One call at a time: a call's error carries the stack of whoever awaits it
    // when it fails, and a call nobody awaits yet has none of the test's frames.
    for (const p of [
      () => conn.getDomainCapabilities(),
      () => conn.getDomainCapabilities({}),
      () => conn.getDomainCapabilities({ emulatorBin: null, arch: 'x86_64', machine: null, virtType: 'test' }, 0),
    ]) {
      const xml = await p().catch((e: unknown) => {
        expect(isVirError(e)).toBe(true);
        const err = e as VirError;
        expect(err.code).toBe(VirErrorCode.NO_SUPPORT);
        expect(err.message).toMatch(/virConnectGetDomainCapabilities/);
        expect(err.stack).toContain('libvirt-binding.test');
        return undefined;
      });
      if (xml !== undefined) expect(xml).toMatch(/^<domainCapabilities>/);
      answers.push(xml === undefined ? 'NO_SUPPORT' : 'xml');
    }
    expect(new Set(answers).size).toBe(1);
    if (v < 9_001_000) expect(answers[0]).toBe('NO_SUPPORT');
    if (v >= 11_003_000) expect(answers[0]).toBe('xml');
  });

  it.each([
    [[5], 'opts'],
    [['x86_64'], 'opts'],
    [[[]], 'opts'],
    [[{ arch: 5 }], 'arch'],
    [[{ emulatorBin: false }], 'emulatorBin'],
    [[{ virttype: 'qemu' }], 'virttype'],
    [[{}, -1], 'flags'],
    [[{}, '0'], 'flags'],
  ])('bad arguments %j reject with TypeError naming %s before libvirt', async (args, what) => {
    const p = (conn.getDomainCapabilities as (...a: unknown[]) => Promise<string>).apply(conn, args);
    await expect(p).rejects.toThrow(TypeError);
    await expect(p).rejects.toThrow(what);
  });

  it('a closed connection rejects', async () => {
    const c = await openConnection(URI);
    await c.close();
    await expect(c.getDomainCapabilities()).rejects.toThrow(/closed/);
  });

  // The real QEMU driver in-process (qemu:///embed): no libvirtd, probes the binary.
  itWith(
    { files: ['/usr/bin/qemu-system-x86_64'] },
    'an embedded QEMU driver returns XML with usable custom CPU models',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'ferry-embed-'));
      try {
        mkdirSync(join(root, 'etc'));
        writeFileSync(
          join(root, 'etc', 'qemu.conf'),
          'stdio_handler = "file"\nsecurity_driver = "none"\ncgroup_controllers = []\n',
        );
        const q = await openConnection(`qemu:///embed?root=${root}`);
        try {
          const xml = await q.getDomainCapabilities({ virtType: 'qemu', arch: 'x86_64' });
          expect(xml).toMatch(/<domainCapabilities>/);
          expect(xml).toContain('<domain>qemu</domain>');
          expect(xml).toContain('<arch>x86_64</arch>');
          const custom = /<mode name='custom' supported='yes'>([\s\S]*?)<\/mode>/.exec(xml);
          expect(custom).not.toBeNull();
          expect(custom?.[1]).toMatch(/<model usable='(yes|no)'[^>]*>qemu64<\/model>/);
          const e = await rejection(q.getDomainCapabilities({ virtType: 'qemu', arch: 'no-such-arch' }));
          expect(e.code).toBeGreaterThan(0);
        } finally {
          await q.close();
        }
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

describe('domain', () => {
  it('looks up by name and by uuid', async () => {
    const a = await conn.lookupByName('test');
    const b = await conn.lookupByUUID(TEST_UUID);
    expect([a.name, a.uuid]).toEqual(['test', TEST_UUID]);
    expect([b.name, b.uuid]).toEqual(['test', TEST_UUID]);
    expect(await b.isActive()).toBe(true);
  });

  it('lookup of a missing domain rejects with NO_DOMAIN', async () => {
    const e = await rejection(conn.lookupByName('no-such-domain'));
    expect(e.code).toBe(VirErrorCode.NO_DOMAIN);
    expect(e.domain).toBeGreaterThan(0);
    expect(e.name).toBe('VirError');
    expect(e.stack).toContain('libvirt-binding.test');
    await expect(conn.lookupByUUID('not-a-uuid')).rejects.toThrow();
  });

  it('returns XML with flags', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const xml = await d.getXMLDesc(XmlFlag.MIGRATABLE | XmlFlag.SECURE);
    expect(xml).toContain(`<uuid>${TEST_UUID}</uuid>`);
    expect(await d.getXMLDesc(XmlFlag.INACTIVE)).toContain('<name>test</name>');
  });

  it('suspend/resume changes state and delivers lifecycle events', async () => {
    const events: LifecycleEventData[] = [];
    conn.onLifecycle((e) => events.push(e));
    const d = await conn.lookupByUUID(TEST_UUID);
    await d.suspend();
    expect((await d.getState()).state).toBe(DomainState.PAUSED);
    await waitFor(events, (e) => e.uuid === TEST_UUID && e.event === LifecycleEvent.SUSPENDED);
    await d.resume();
    expect(await d.getState()).toEqual({ state: DomainState.RUNNING, reason: expect.any(Number) });
    const ev = await waitFor(events, (e) => e.event === LifecycleEvent.RESUMED);
    expect(ev).toMatchObject({ name: 'test', uuid: TEST_UUID, detail: expect.any(Number) });
  });

  it('defines, starts, destroys and undefines a new domain', async () => {
    const events: LifecycleEventData[] = [];
    conn.onLifecycle((e) => events.push(e));
    const xml = `<domain type='test'><name>ferry-unit</name><memory>65536</memory><os><type>hvm</type></os></domain>`;
    const d = await conn.defineXML(xml);
    expect(d.name).toBe('ferry-unit');
    expect(d.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await d.getState()).state).toBe(DomainState.SHUTOFF);
    await d.create();
    expect(await d.isActive()).toBe(true);
    await d.destroy();
    expect(await d.isActive()).toBe(false);
    await d.undefine(0);
    await expect(conn.lookupByName('ferry-unit')).rejects.toMatchObject({ code: VirErrorCode.NO_DOMAIN });
    const seen = (): LifecycleEvent[] => events.filter((e) => e.uuid === d.uuid).map((e) => e.event);
    await waitFor(events, (e) => e.uuid === d.uuid && e.event === LifecycleEvent.UNDEFINED);
    expect(seen()).toEqual([
      LifecycleEvent.DEFINED,
      LifecycleEvent.STARTED,
      LifecycleEvent.STOPPED,
      LifecycleEvent.UNDEFINED,
    ]);
  });

  it('createXML starts a transient domain', async () => {
    const xml = `<domain type='test'><name>ferry-transient</name><memory>65536</memory><os><type>hvm</type></os></domain>`;
    const d = await conn.createXML(xml, 0);
    expect((await d.getState()).state).toBe(DomainState.RUNNING);
    await d.destroy();
    await expect(d.getState()).rejects.toMatchObject({ code: VirErrorCode.NO_DOMAIN });
  });
});

describe('migration and jobs (error paths on the test driver)', () => {
  const full = {
    migrate_uri: 'tcp://10.0.0.2:49152',
    destination_name: 'test',
    destination_xml: '<domain/>',
    persistent_xml: '<domain/>',
    graphics_uri: 'spice://10.0.0.2',
    listen_address: '0.0.0.0',
    disks_uri: 'tcp://10.0.0.2',
    'tls.destination': 'dst.example',
    migrate_disks: ['vda', 'vdb'],
    compression: ['xbzrle'],
    bandwidth: 100,
    'bandwidth.postcopy': 200,
    disks_port: 49153,
    'parallel.connections': 4,
    'auto_converge.initial': 20,
    'auto_converge.increment': 10,
  };

  it('migrateToURI3 with every param reaches libvirt and rejects with its error', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const flags = MigrateFlag.LIVE | MigrateFlag.PEER2PEER | MigrateFlag.POSTCOPY;
    const e = await rejection(d.migrateToURI3('qemu+tls://dst/system', full, flags));
    expect(e.code).toBe(VirErrorCode.ARGUMENT_UNSUPPORTED);
    expect(e.message).toMatch(/migration is not supported/);
    const e2 = await rejection(d.migrateToURI3('', { migrate_uri: 'tcp://x' }, MigrateFlag.LIVE));
    expect([3, 74]).toContain(e2.code);
  });

  it.each([
    [{ bogus: 1 }, 'bogus'],
    [{ bandwidth: '100' }, 'bandwidth'],
    [{ bandwidth: -1 }, 'bandwidth'],
    [{ bandwidth: 1.5 }, 'bandwidth'],
    [{ disks_port: 2 ** 31 }, 'disks_port'],
    [{ 'parallel.connections': '4' }, 'parallel.connections'],
    [{ migrate_uri: 5 }, 'migrate_uri'],
    [{ migrate_disks: 'vda' }, 'migrate_disks'],
    [{ compression: ['xbzrle', 3] }, 'compression'],
  ])('bad params %j throw TypeError naming %s before libvirt', async (params, key) => {
    const d = await conn.lookupByUUID(TEST_UUID);
    // A libvirt call would reject with a VirError (code 74), not a TypeError.
    const p = d.migrateToURI3('qemu+tls://dst/system', params as never, MigrateFlag.LIVE | MigrateFlag.PEER2PEER);
    await expect(p).rejects.toThrow(TypeError);
    await expect(p).rejects.toThrow(key);
  });

  it('job and tuning calls reject with libvirt NO_SUPPORT', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const calls = [
      d.getJobStats(),
      d.getJobStats(JobStatsFlag.COMPLETED),
      d.getJobInfo(),
      d.abortJob(),
      d.migrateSetMaxDowntime(300),
      d.migrateGetMaxDowntime(),
      d.migrateSetMaxSpeed(100, 0),
      d.migrateSetMaxSpeed(100, MaxSpeedFlag.POSTCOPY),
      d.migrateStartPostCopy(),
    ];
    for (const e of await Promise.all(calls.map(rejection))) {
      expect(e.code).toBe(VirErrorCode.NO_SUPPORT);
      expect(e.message).toMatch(/not supported/);
      expect(typeof e.level).toBe('number');
    }
  });

  it('a migration and job calls on a second Domain object for the same UUID run concurrently', async () => {
    const a = await conn.lookupByUUID(TEST_UUID);
    const b = await conn.lookupByUUID(TEST_UUID);
    const results = await Promise.allSettled([
      a.migrateToURI3('qemu+tls://dst/system', { bandwidth: 10 }, MigrateFlag.LIVE | MigrateFlag.PEER2PEER),
      b.getJobStats(),
      b.abortJob(),
      b.getState(),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
  });

  it('a freed domain rejects instead of touching a dangling handle', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const pending = d.getState(); // holds its own reference
    (d as unknown as { free(): void }).free();
    expect((await pending).state).toBe(DomainState.RUNNING);
    await expect(d.getState()).rejects.toThrow(/freed/);
  });
});

/** Settles with p, and records in `order` when it did (resolved or rejected). */
function track<T>(p: Promise<T>, order: string[], name: string): Promise<T> {
  const note = () => void order.push(name);
  p.then(note, note);
  return p;
}

// Order, not speed: these run while other suites load the machine.
// blockForTesting sleeps on a thread of ferry's 4-thread call pool (ownThread
// false) or on a thread of its own (true); what ran alongside what shows in
// the order calls settle.
describe('threading', () => {
  it('keeps the JS event loop free while many calls are in flight', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const order: string[] = [];
    // Four 1 s blocks hold the 4 pool threads, so every pool call below stays queued until they end.
    const held = Array.from({ length: 4 }, (_, i) => track(blockForTesting(1000, false), order, `hold-${i}`));
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      inFlight.push(d.migrateToURI3('qemu+tls://dst/system', {}, MigrateFlag.PEER2PEER).catch(() => undefined));
      inFlight.push(track(d.getXMLDesc(0), order, 'pool'), track(d.getJobStats().catch(() => undefined), order, 'pool'), track(conn.getCapabilities(), order, 'pool'));
    }
    // A 20 ms timer set now fires while all 150 pool calls are still pending: queuing them blocked nothing.
    await new Promise<void>((r) => setTimeout(() => (order.push('timer'), r()), 20));
    await Promise.all([...held, ...inFlight]);
    expect(order.indexOf('timer')).toBe(0);
    expect(order.filter((x) => x === 'pool')).toHaveLength(150);
    // The pool calls were queued behind the blocks: the first of them ended after a block did.
    expect(order.indexOf('pool')).toBeGreaterThan(order.findIndex((x) => x.startsWith('hold-')));
  });
});

describe('thread model', () => {
  it('long calls get their own threads: 6 run at once and short calls still complete', async () => {
    const d = await conn.lookupByUUID(TEST_UUID);
    const order: string[] = [];
    const long = Array.from({ length: 6 }, (_, i) => track(blockForTesting(2000, true), order, `long-${i}`));
    // The pool is free: 21 pool calls, one after the other, all complete while the six still block.
    for (let i = 0; i < 20; i++) await d.getState();
    await d.getJobStats().catch(() => undefined);
    order.push('short calls');
    // So do more threads: a 7th own-thread call, started last, ends while all six still run.
    await track(blockForTesting(100, true), order, 'seventh');
    await Promise.all(long);
    expect(order.slice(0, 2)).toEqual(['short calls', 'seventh']);
    expect(order.slice(2).sort()).toEqual(['long-0', 'long-1', 'long-2', 'long-3', 'long-4', 'long-5']);
  });

  it("short calls have ferry's own pool: libuv's pool busy with crypto does not hold them", async () => {
    const order: string[] = [];
    // Eight hashes of about a second each keep all 4 libuv threads busy twice over.
    const hashes = Array.from({ length: 8 }, (_, i) =>
      track(new Promise<void>((resolve, reject) => pbkdf2('x', 'salt', 400_000, 64, 'sha512', (e) => (e ? reject(e) : resolve()))), order, `hash-${i}`),
    );
    await new Promise((r) => setTimeout(r, 50));
    await track(conn.getCapabilities(), order, 'libvirt');
    await Promise.all(hashes);
    expect(order[0]).toBe('libvirt');
  });

  it('control: calls on the call pool serialise behind its 4 threads', async () => {
    const order: string[] = [];
    // Four 1 s blocks, then two 100 ms ones: on 4 threads the short ones wait for a long one to end.
    const long = Array.from({ length: 4 }, (_, i) => track(blockForTesting(1000, false), order, `long-${i}`));
    const short = Array.from({ length: 2 }, (_, i) => track(blockForTesting(100, false), order, `short-${i}`));
    await Promise.all([...long, ...short]);
    expect(order.slice(0, 4).sort()).toEqual(['long-0', 'long-1', 'long-2', 'long-3']);
    expect(order.slice(4).sort()).toEqual(['short-0', 'short-1']);
  });
});

describe('addon exports and options', () => {
  const exportsOf = (env: Record<string, string>) =>
    execFileSync(process.execPath, ['-e', `process.stdout.write(Object.keys(require(${JSON.stringify(ADDON)})).sort().join(','))`], {
      env: { PATH: process.env.PATH ?? '', ...env },
    }).toString();

  it('the test hook is exported only with FERRY_ADDON_TEST_HOOKS=1', () => {
    expect(exportsOf({})).toBe('Connection,Domain,headerVersion,open');
    expect(exportsOf({ FERRY_ADDON_TEST_HOOKS: '1' })).toBe('Connection,Domain,blockForTesting,headerVersion,open');
  });

  it('keepalive options are range-checked before libvirt is called', async () => {
    await expect(openConnection(URI, { keepaliveInterval: -1 })).rejects.toThrow(/keepaliveInterval/);
    await expect(openConnection(URI, { keepaliveCount: 1.5 })).rejects.toThrow(/keepaliveCount/);
    const c = await openConnection(URI, { keepaliveInterval: 2, keepaliveCount: 3 });
    expect(await c.getHostname()).toBeTruthy();
    await c.close();
  });
});

describe('resources', () => {
  // vitest runs without --expose-gc; turn it on for this process.
  function getGc(): () => void {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) return g;
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  }

  async function settleGc(gc: () => void): Promise<number> {
    // Wrapper finalizers (virDomainFree) run after GC, on a later tick.
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    return process.memoryUsage().rss;
  }

  async function round(): Promise<void> {
    const d = await conn.lookupByUUID(TEST_UUID);
    await d.getXMLDesc(XmlFlag.MIGRATABLE);
    await d.getState();
    await d.getJobStats().catch(() => undefined);
    await conn.lookupByName('no-such-domain').catch(() => undefined);
    await d.migrateToURI3('qemu+tls://dst/system', { migrate_disks: ['vda'], bandwidth: 1 }, 2).catch(() => undefined);
  }

  it('frees every domain handle: close() reports no references left', async () => {
    const gc = getGc();
    const c = (await openConnection(URI)) as unknown as LibvirtConnection;
    for (let i = 0; i < 500; i++) {
      const d = await c.lookupByUUID(TEST_UUID);
      await d.getState();
      await c.listAllDomains();
    }
    const kept = (await c.lookupByName('test')) as LibvirtDomain;
    await settleGc(gc);
    // Without a virDomainFree per wrapper this would be hundreds.
    const c2 = (await openConnection(URI)) as unknown as LibvirtConnection;
    await c2.lookupByName('test');
    await settleGc(gc);
    expect(await c2.closeCountingRefs()).toBe(0);
    expect(await c.closeCountingRefs()).toBe(1); // `kept`, which proves the check can fail
    kept.free();
  });

  it('does not leak across thousands of calls', async () => {
    const gc = getGc();
    const batch = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i += 10) await Promise.all(Array.from({ length: 10 }, round));
    };
    await batch(1000); // warm up allocator, JIT and thread stacks
    const before = await settleGc(gc);
    await batch(5000);
    const grown = (await settleGc(gc)) - before;
    // 5000 rounds allocate ~30k libvirt objects and several MiB of XML; a leak
    // of one handle or string per call would show up as tens of MiB.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  }, 120_000);
});
