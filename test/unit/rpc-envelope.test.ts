import { describe, expect, it } from 'vitest';
import { isCompatible, MAX_NESTING, nestedDeeperThan, salvage, unwrap, wrap } from '../../src/rpc/envelope.js';
import { callMonitorIntervalMs } from '../../src/rpc/server.js';
import { InvalidMessage } from '../../src/rpc/errors.js';
import { z } from 'zod';
import { rpcMethod } from '../../src/rpc/args.js';
import { findMethod } from '../../src/rpc/dispatcher.js';
import { UniqueIdCache } from '../../src/rpc/dedup.js';
import type { RpcEndpoint } from '../../src/rpc/types.js';

describe('envelope', () => {
  it('round-trips the 2.0 envelope with a JSON string inside', () => {
    const body = wrap({ method: 'ping', args: { a: 1 } });
    const outer = JSON.parse(body.toString());
    expect(outer['oslo.version']).toBe('2.0');
    expect(typeof outer['oslo.message']).toBe('string');
    expect(unwrap(body)).toEqual({ method: 'ping', args: { a: 1 } });
  });

  it.each([
    ['not json', 'message body is not JSON'],
    ['{"method":"x"}', 'no oslo 2.0 envelope'],
    ['[1,2]', 'no oslo 2.0 envelope'],
    ['{"oslo.version":"3.0","oslo.message":"{}"}', 'unsupported envelope version 3.0'],
    ['{"oslo.version":"2.1","oslo.message":"{}"}', 'unsupported envelope version 2.1'],
    ['{"oslo.version":"2.0","oslo.message":"[]"}', 'not a JSON object'],
    ['{"oslo.version":"2.0","oslo.message":"{bad"}', 'not a JSON object'],
  ])('refuses %s', (text, why) => {
    expect(() => unwrap(Buffer.from(text))).toThrow(InvalidMessage);
    expect(() => unwrap(Buffer.from(text))).toThrow(why);
  });

  it('salvages the reply address from a refused message', () => {
    const bad = Buffer.from(JSON.stringify({ 'oslo.version': '9.0', 'oslo.message': JSON.stringify({ _reply_q: 'r', _msg_id: 'm' }) }));
    expect(salvage(bad)).toMatchObject({ _reply_q: 'r', _msg_id: 'm' });
    expect(salvage(Buffer.from('{"_reply_q":"r"}'))).toEqual({ _reply_q: 'r' });
    expect(salvage(Buffer.from('garbage'))).toBeNull();
  });

  it('checks versions like oslo version_is_compatible', () => {
    expect(isCompatible('6.5', '6.0')).toBe(true);
    expect(isCompatible('6.5', '6.5')).toBe(true);
    expect(isCompatible('6.5', '6.6')).toBe(false);
    expect(isCompatible('6.5', '5.0')).toBe(false);
    expect(isCompatible('6.5.1', '6.5.2')).toBe(false);
    expect(isCompatible('6.5', 'x')).toBe(false);
  });
});

describe('dispatcher', () => {
  const noop = rpcMethod(z.looseObject({}), async () => null);
  const endpoints: RpcEndpoint[] = [
    { version: '6.5', methods: { live_migration: noop, _private: noop } },
    { namespace: 'baseapi', version: '1.1', methods: { ping: noop } },
  ];
  it('finds a method on a compatible endpoint', () => {
    expect(findMethod(endpoints, null, '6.0', 'live_migration')).toEqual({ endpoint: endpoints[0], method: noop });
    expect(findMethod(endpoints, 'baseapi', '1.0', 'ping')).toEqual({ endpoint: endpoints[1], method: noop });
  });
  it('raises UnsupportedVersion when no endpoint matches the version', () => {
    expect(() => findMethod(endpoints, null, '7.0', 'live_migration')).toThrow(/does not support RPC version 7.0/);
    expect(() => findMethod(endpoints, null, '6.6', 'live_migration')).toThrow(expect.objectContaining({ name: 'UnsupportedVersion' }));
  });
  it('raises NoSuchMethod for unknown and private methods', () => {
    expect(() => findMethod(endpoints, null, '6.0', 'nope')).toThrow(expect.objectContaining({ name: 'NoSuchMethod' }));
    expect(() => findMethod(endpoints, null, '6.0', '_private')).toThrow(expect.objectContaining({ name: 'NoSuchMethod' }));
    expect(() => findMethod(endpoints, null, '6.0', 'constructor')).toThrow(expect.objectContaining({ name: 'NoSuchMethod' }));
  });
});

describe('UniqueIdCache', () => {
  it('drops recent duplicates and forgets old ids', () => {
    const c = new UniqueIdCache(2);
    expect(c.checkAndAdd('a')).toBe(false);
    expect(c.checkAndAdd('a')).toBe(true);
    expect(c.checkAndAdd('b')).toBe(false);
    expect(c.checkAndAdd('c')).toBe(false);
    expect(c.checkAndAdd('a')).toBe(false);
    expect(c.checkAndAdd(undefined)).toBe(false);
    expect(c.checkAndAdd(undefined)).toBe(false);
  });
});

describe('hostile shapes (issue 11)', () => {
  const nest = (levels: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < levels; i++) v = i % 2 ? [v] : { k: v };
    return v;
  };
  /** JSON text nested `levels` deep, written out: JSON.stringify itself would overflow the stack. */
  const nestedJson = (levels: number) => `${'{"k":['.repeat(levels / 2)}"leaf"${']}'.repeat(levels / 2)}`;

  it('nesting is measured without recursion: 64 levels pass, 65 do not, 100,000 do not overflow', () => {
    expect(nestedDeeperThan({ a: nest(63) }, MAX_NESTING)).toBe(false);
    expect(nestedDeeperThan({ a: nest(64) }, MAX_NESTING)).toBe(true);
    expect(nestedDeeperThan(nest(100_000), MAX_NESTING)).toBe(true);
    expect(nestedDeeperThan({ wide: Array.from({ length: 10_000 }, () => ({ x: 1 })) }, MAX_NESTING)).toBe(false);
  });

  it('a message with a context nested 5,000 deep is refused as invalid, not crashed on', () => {
    const inner = `{"method":"echo","args":{},"_reply_q":"reply_x","_msg_id":"m1","_context_roles":${nestedJson(5000)}}`;
    const raw = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': inner }));
    expect(() => unwrap(raw)).toThrow(InvalidMessage);
    expect(() => unwrap(raw)).toThrow(`message nested deeper than ${MAX_NESTING} levels`);
    // Still salvageable, so the caller gets that error as a reply.
    expect(salvage(raw)).toMatchObject({ _reply_q: 'reply_x', _msg_id: 'm1' });
  });

  it('the call monitor clamps a caller timeout: half of it, at most every 12 h, none for nonsense', () => {
    expect([60, 3, 1e300, Number.MAX_VALUE, '120', 'x', 1, -5, Number.NaN].map(callMonitorIntervalMs)).toEqual([30_000, 1500, 43_200_000, 43_200_000, 60_000, null, null, null, null]);
  });
});
