// A seeded fuzz of every compute method ferry serves at a real ferryd
// (libvirt's test driver, a private RabbitMQ vhost): wrong types, huge
// fields, deep nesting, member contexts, refused casts, broken envelopes and
// absurd `_timeout`s. ferryd stays up, answers every message that expects a
// reply exactly once, sends no heartbeat storm, and once the flood is over and
// collected its memory is back within 20 MB of the idle daemon, its heap within
// 5 MB (run with the environment systemd/ferryd.service gives it).
// FERRY_FUZZ_SEED replays another run. Runs the built daemon (`npm run build` first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fire, startFerryd, type FerrydUnderFire } from './under-fire.js';

const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 20261201);
const ROUND = 2_000;
const ROUNDS = 3;

describe(`hostile messages (seed ${SEED})`, () => {
  let ferryd: FerrydUnderFire;
  beforeAll(async () => {
    ferryd = await startFerryd('ferry-fuzz');
  });
  afterAll(async () => {
    await ferryd?.stop();
  });

  it('ferryd stays up, answers every call once, and gives the memory back', { timeout: 300_000 }, async () => {
    const pid = ferryd.proc.pid;
    await new Promise((r) => setTimeout(r, 2_000));
    const idleHeap = (await ferryd.collectGarbage()).heapUsedKb;
    const idle = await ferryd.rssKb();
    const rounds = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await fire(ferryd, { count: ROUND, seed: SEED + i }));
    const flooded = await ferryd.rssKb();
    // Once the flood is over and collected, memory is back within 20 MB of the idle daemon and the heap
    // within 5 MB: nothing is kept per message. (Left alone, V8 may not collect an idle daemon for minutes.)
    const settledHeap = (await ferryd.collectGarbage()).heapUsedKb;
    const settled = await ferryd.rssKb();
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    console.log(`ferryd RSS: idle ${mb(idle)} MB, after ${ROUNDS} x ${ROUND} hostile messages ${mb(flooded)} MB, collected ${mb(settled)} MB; heap in use ${mb(idleHeap)} MB idle, ${mb(settledHeap)} MB collected`);
    expect((settled - idle) / 1024).toBeLessThan(20);
    expect((settledHeap - idleHeap) / 1024).toBeLessThan(5);
    for (const r of rounds) {
      expect(r.missing).toEqual([]);
      expect(r.answered).toBe(r.expected);
      expect({ duplicateFinals: r.duplicateFinals, strays: r.strays }).toEqual({ duplicateFinals: 0, strays: 0 });
      // Every call carries _timeout 60 (a heartbeat each 30 s) and is answered at once; 1e300 no longer fires every millisecond.
      expect(r.heartbeats).toBeLessThanOrEqual(5);
      expect(Object.keys(r.byKind).sort()).toEqual(['deep', 'envelope', 'member', 'refused-cast', 'timeout', 'wrong-types']);
    }
    expect(ferryd.proc.exitCode).toBeNull();
    expect(ferryd.proc.pid).toBe(pid);
    const out = ferryd.output();
    expect(out).not.toMatch(/Maximum call stack|unexpected error while handling|exception during message handling/);
  });
});
