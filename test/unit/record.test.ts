// The migration record's state machine: the one table of legal status
// changes, enforced by the registry, and the end-game claim kept on the record.
import { describe, expect, it, vi } from 'vitest';
import { MigrationRegistry } from '../../src/record/registry.js';
import { canTransition, IllegalTransition, isFinal, MigrationStatus as S, type MigrationStatus } from '../../src/record/status.js';

const init = { uuid: 'a6f0c1a2-0000-4000-8000-00000000000a', id: 1, instanceUuid: 'b6f0c1a2-0000-4000-8000-00000000000b', instanceName: 'vm', sourceCompute: 'a', destCompute: 'b' };

describe('status transitions', () => {
  it.each<[MigrationStatus[]]>([
    [[S.queued, S.preparing, S.running, S.completed]],
    [[S.queued, S.preparing, S.running, S.postcopy, S.completed]],
    [[S.queued, S.cancelled]],
    [[S.queued, S.preparing, S.cancelled]],
    [[S.queued, S.preparing, S.failed]],
    [[S.queued, S.preparing, S.running, S.cancelled]],
    [[S.queued, S.preparing, S.running, S.failed]],
    [[S.queued, S.preparing, S.running, S.error]],
    [[S.error]],
  ])('legal: accepted -> %j', (path) => {
    const registry = new MigrationRegistry();
    const r = registry.create({ ...init, status: path[0]! });
    for (const status of path.slice(1)) registry.update(r, { status });
    expect(r.status).toBe(path.at(-1));
  });

  it.each<[MigrationStatus, MigrationStatus]>([
    [S.queued, S.running],
    [S.queued, S.completed],
    [S.preparing, S.completed],
    [S.postcopy, S.cancelled],
    [S.postcopy, S.running],
    [S.completed, S.failed],
    [S.cancelled, S.error],
    [S.failed, S.completed],
  ])('illegal: %s -> %s', (from, to) => expect(canTransition(from, to)).toBe(false));

  it('final statuses are exactly those that go nowhere', () => {
    expect(Object.values(S).filter(isFinal)).toEqual([S.completed, S.failed, S.cancelled, S.error]);
  });
});

describe('the registry enforces the table', () => {
  it('an illegal change throws by default (tests fail on it) and changes nothing', () => {
    const registry = new MigrationRegistry();
    const r = registry.create({ ...init, status: S.queued });
    expect(() => registry.update(r, { status: S.completed })).toThrow(IllegalTransition);
    expect(r.status).toBe(S.queued);
    expect(r.finishedAt).toBeNull();
  });

  it('a record cannot start in a status accepted does not lead to', () => {
    expect(() => new MigrationRegistry().create({ ...init, status: S.running })).toThrow(/accepted -> running/);
  });

  it('with a handler (the daemon logs): the illegal status is dropped, the rest of the patch applies, the first outcome stays', () => {
    const seen: string[] = [];
    const registry = new MigrationRegistry({ onIllegalTransition: (err) => seen.push(err.message) });
    const r = registry.create({ ...init, status: S.queued });
    registry.update(r, { status: S.cancelled });
    registry.update(r, { status: S.failed, error: 'late' });
    expect(r).toMatchObject({ status: S.cancelled, error: 'late' });
    expect(seen).toEqual([`migration ${init.uuid}: illegal status change cancelled -> failed`]);
  });
});

describe('the end-game claim', () => {
  it('the first claim wins until it is released', () => {
    const registry = new MigrationRegistry();
    const r = registry.create({ ...init, status: S.queued });
    expect(registry.claim(r, 'force_complete')).toBe(true);
    expect(registry.claim(r, 'abort')).toBe(false);
    expect(r.claimedAction).toBe('force_complete');
    registry.release(r);
    expect(registry.claim(r, 'abort')).toBe(true);
    expect(r.claimedAction).toBe('abort');
  });
});

describe('the registry is bounded', () => {
  const nth = (i: number) => ({ ...init, uuid: `a6f0c1a2-0000-4000-8000-${String(i).padStart(12, '0')}`, id: i });

  it('keeps at most maxFinished finished records, dropping the first to finish; an unfinished one is never dropped', () => {
    const registry = new MigrationRegistry({ maxFinished: 3 });
    const running = registry.create({ ...nth(0), status: S.queued });
    const early = registry.create({ ...nth(1), status: S.queued });
    for (let i = 2; i <= 4; i++) registry.create({ ...nth(i), status: S.error, error: 'refused' });
    // Finishing later makes it the newest finished, whatever its age.
    registry.update(early, { status: S.cancelled });
    expect(registry.list().map((r) => r.id)).toEqual([0, 1, 3, 4]);
    for (let i = 5; i <= 100; i++) registry.create({ ...nth(i), status: S.error, error: 'refused' });
    expect(registry.list().map((r) => r.id)).toEqual([0, 98, 99, 100]);
    expect(registry.get(running.uuid)).toBe(running);
  });

  it('drops finished records past keepFinishedMs, keeps the rest', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const registry = new MigrationRegistry({ keepFinishedMs: 60_000 });
      registry.create({ ...nth(1), status: S.queued });
      registry.create({ ...nth(2), status: S.error });
      vi.setSystemTime(Date.now() + 30_000);
      registry.create({ ...nth(3), status: S.error });
      expect(registry.list().map((r) => r.id)).toEqual([1, 2, 3]);
      vi.setSystemTime(Date.now() + 30_001);
      expect(registry.list().map((r) => r.id)).toEqual([1, 3]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps an error for the operator to read, not the payload it came with', () => {
    const registry = new MigrationRegistry();
    const r = registry.create({ ...nth(1), status: S.error, error: `instance x${'y'.repeat(900_000)} not found` });
    expect(r.error!.length).toBeLessThan(2100);
    expect(r.error).toMatch(/^instance xy+… \(900020 characters\)$/);
    const q = registry.create({ ...nth(2), status: S.queued });
    registry.update(q, { error: 'z'.repeat(5000) });
    expect(q.error).toMatch(/… \(5000 characters\)$/);
  });
});
