// A seeded fuzz of every method of the migration family at a real ferryd
// (libvirt's test driver, a private RabbitMQ vhost): wrong types, huge
// fields, deep nesting, member contexts, refused casts, broken envelopes and
// absurd `_timeout`s. ferryd stays up, answers every message that expects a
// reply exactly once, sends no heartbeat storm, and its memory stops growing.
// FERRY_FUZZ_SEED replays another run. Runs the built daemon (`npm run build` first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fire, startFerryd, type FerrydUnderFire } from './under-fire.js';

const SEED = Number(process.env.FERRY_FUZZ_SEED ?? 20261201);
const ROUND = 2_000;

describe(`hostile messages (seed ${SEED})`, () => {
  let ferryd: FerrydUnderFire;
  beforeAll(async () => {
    ferryd = await startFerryd('ferry-fuzz');
  });
  afterAll(async () => {
    await ferryd?.stop();
  });

  it('ferryd stays up, answers every call once, and its memory levels off', { timeout: 300_000 }, async () => {
    const pid = ferryd.proc.pid;
    // The first round lifts the heap and malloc to what messages of up to 1 MiB need at once.
    const warmUp = await fire(ferryd, { count: ROUND, seed: SEED });
    const first = await fire(ferryd, { count: ROUND, seed: SEED + 1 });
    const afterFirst = await ferryd.rssKb();
    const second = await fire(ferryd, { count: ROUND, seed: SEED + 2 });
    const afterSecond = await ferryd.rssKb();
    console.log(`ferryd RSS after rounds 2 and 3 of ${ROUND} hostile messages: ${(afterFirst / 1024).toFixed(1)} MB, ${(afterSecond / 1024).toFixed(1)} MB`);
    for (const r of [warmUp, first, second]) {
      expect(r.missing).toEqual([]);
      expect(r.answered).toBe(r.expected);
      expect({ duplicateFinals: r.duplicateFinals, strays: r.strays }).toEqual({ duplicateFinals: 0, strays: 0 });
      // Every call carries _timeout 60 (a heartbeat each 30 s) and is answered at once; 1e300 no longer fires every millisecond.
      expect(r.heartbeats).toBeLessThanOrEqual(5);
      expect(Object.keys(r.byKind).sort()).toEqual(['deep', 'envelope', 'member', 'refused-cast', 'timeout', 'wrong-types']);
    }
    expect(ferryd.proc.exitCode).toBeNull();
    expect(ferryd.proc.pid).toBe(pid);
    // A round as hostile as the one before adds less than 20 MB: nothing is kept per message.
    expect((afterSecond - afterFirst) / 1024).toBeLessThan(20);
    const out = ferryd.output();
    expect(out).not.toMatch(/Maximum call stack|unexpected error while handling|exception during message handling/);
  });
});
