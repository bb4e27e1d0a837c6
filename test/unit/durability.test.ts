// What survives a restart (issue 12): migration records on disk, the outbox
// to the conductor, the per-migration sequence numbers, and the decisions
// the start-up reconcile takes on both sides.
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { incomingVerdict, sourceWord } from '../../src/destination/reconcile.js';
import { DomainState, JobType, PausedReason } from '../../src/libvirt/types.js';
import { silentLogger } from '../../src/log/logger.js';
import type { MigrationView } from '../../src/nova/migration-view.js';
import { Outbox } from '../../src/nova/outbox.js';
import { MigrationReporter } from '../../src/nova/reporter.js';
import { MigrationRegistry } from '../../src/record/registry.js';
import { MigrationStatus as S } from '../../src/record/status.js';
import { FileRecordStore } from '../../src/record/store.js';
import { carryOnFrom, JOB_OPERATION_MIGRATION_OUT, type SourceFinding } from '../../src/source/reconcile.js';
import { RecordingRpcClient } from './fakes/rpc.js';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), 'ferry-durable-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const UUID = (n: number) => `a6f0c1a2-0000-4000-8000-${String(n).padStart(12, '0')}`;
const init = (n: number) => ({ uuid: UUID(n), id: n, instanceUuid: UUID(100 + n), instanceName: `vm${n}`, sourceCompute: 'compute-a', destCompute: 'compute-b' });
const COUNTERS = { memory_total: 10, memory_processed: 4, memory_remaining: 6, disk_total: 0, disk_processed: 0, disk_remaining: 0 };

function registryAt(path: string, keepFinishedMs?: number, log = silentLogger): MigrationRegistry {
  return new MigrationRegistry({ store: new FileRecordStore(path, log), keepFinishedMs });
}

describe('migration records on disk', () => {
  it('a new registry over the same folder (a restart) has every record as last changed, in creation order', () => {
    const path = join(dir, 'migrations');
    const first = registryAt(path);
    const r1 = first.create({ ...init(1), status: S.queued, journal: { request: { dest: 'compute-b' } } });
    const r2 = first.create({ ...init(2), status: S.queued });
    first.update(r1, { status: S.preparing });
    first.update(r1, { status: S.running, counters: COUNTERS, progress: 40 });
    first.update(r2, { status: S.cancelled });
    first.claim(r1, 'abort');
    const again = registryAt(path);
    expect(again.list().map((r) => [r.uuid, r.status, r.claimedAction])).toEqual([
      [r1.uuid, S.running, 'abort'],
      [r2.uuid, S.cancelled, null],
    ]);
    expect(again.get(r1.uuid)).toEqual(r1);
    expect(again.active(r1.instanceUuid)?.uuid).toBe(r1.uuid);
  });

  it('the figures of every poll are not written on their own; a progress report or any other change writes them', async () => {
    const path = join(dir, 'migrations');
    const reg = registryAt(path);
    const r = reg.create({ ...init(1), status: S.queued });
    const file = join(path, `${r.uuid}.json`);
    const read = async () => JSON.parse(await fs.readFile(file, 'utf8')) as { progress: number };
    reg.update(r, { counters: COUNTERS, progress: 40, memoryBps: 5, iteration: 2, dirtyRateBytesPerSec: 1 });
    expect((await read()).progress).toBe(0);
    reg.reportProgress(r);
    expect((await read()).progress).toBe(40);
    reg.update(r, { progress: 50 });
    reg.update(r, { error: 'noted' });
    expect((await read()).progress).toBe(50);
  });

  it('finished records are listed for keepFinishedMs across restarts, then their files go', async () => {
    const path = join(dir, 'migrations');
    const reg = registryAt(path);
    const done = reg.create({ ...init(1), status: S.queued });
    reg.update(done, { status: S.cancelled });
    const running = reg.create({ ...init(2), status: S.queued });
    // Finished two hours ago, as a restarted ferryd reads it.
    const old = { ...done, finishedAt: new Date(Date.now() - 2 * 3600_000).toISOString() };
    await fs.writeFile(join(path, `${done.uuid}.json`), JSON.stringify(old));
    const again = registryAt(path, 3600_000);
    expect(again.list().map((r) => r.uuid)).toEqual([running.uuid]);
    expect(await fs.readdir(path)).toEqual([`${running.uuid}.json`]);
  });

  it('an unreadable record is set aside, never overwritten, and the others load', async () => {
    const path = join(dir, 'migrations');
    const reg = registryAt(path);
    const good = reg.create({ ...init(1), status: S.queued });
    await fs.writeFile(join(path, `${UUID(2)}.json`), '{"uuid": "');
    await fs.writeFile(join(path, `${UUID(3)}.json`), JSON.stringify({ ...good, uuid: UUID(4) }));
    const lines: string[] = [];
    const again = registryAt(path, undefined, pino({ level: 'error' }, { write: (l: string) => lines.push(l) }));
    expect(again.list().map((r) => r.uuid)).toEqual([good.uuid]);
    const names = await fs.readdir(path);
    expect(names.filter((n) => n.includes('.unreadable-'))).toHaveLength(2);
    expect(lines.join('')).toContain('migration record unreadable');
  });

  it('a uuid that cannot name a file is refused, not written anywhere', () => {
    const reg = registryAt(join(dir, 'migrations'));
    expect(() => reg.create({ ...init(1), uuid: '../../etc/passwd', status: S.queued })).toThrow(/cannot name a file/);
  });
});

describe('the outbox to the conductor', () => {
  it('sends in the order written, one at a time; a failed send is retried and holds the later ones back', async () => {
    const sent: number[] = [];
    let failures = 2;
    const box = new Outbox<number>(join(dir, 'outbox'), async (n) => {
      if (n === 2 && failures-- > 0) throw new Error('broker away');
      sent.push(n);
    }, silentLogger);
    box.start();
    for (const n of [1, 2, 3, 4]) box.push(n);
    await expect.poll(() => sent, { timeout: 5_000 }).toEqual([1, 2, 3, 4]);
    expect(box.pending).toBe(0);
    expect(await fs.readdir(join(dir, 'outbox'))).toEqual([]);
    await box.stop(100);
  });

  it('what was not confirmed before a restart is sent first by the next run, before anything new', async () => {
    const path = join(dir, 'outbox');
    const first = new Outbox<string>(path, () => new Promise(() => {}), silentLogger);
    first.start();
    first.push('a');
    first.push('b');
    await first.stop(50);
    const sent: string[] = [];
    const next = new Outbox<string>(path, async (m) => void sent.push(m), silentLogger);
    expect(next.pending).toBe(2);
    next.push('c');
    expect(sent).toEqual([]); // nothing before start()
    next.start();
    await expect.poll(() => sent).toEqual(['a', 'b', 'c']);
    await next.stop(100);
  });

  it('migration_update carries the migration own seq, kept in its record: a restarted ferryd goes on from the last one', async () => {
    const path = join(dir, 'migrations');
    const rpc = new RecordingRpcClient();
    const reg = registryAt(path);
    new MigrationReporter(reg, rpc, 'conductor', silentLogger);
    const r = reg.create({ ...init(1), status: S.queued });
    reg.update(r, { status: S.preparing });
    reg.reportProgress(r);
    const again = registryAt(path);
    new MigrationReporter(again, rpc, 'conductor', silentLogger);
    again.update(again.get(r.uuid)!, { status: S.running });
    await new Promise((res) => setImmediate(res));
    expect(rpc.sent.map((s) => [s.args.seq, (s.args.migration as MigrationView).status])).toEqual([
      [1, S.queued],
      [2, S.preparing],
      [3, S.preparing],
      [4, S.running],
    ]);
  });
});

describe('carrying on an outgoing migration after a restart', () => {
  const running = { state: DomainState.RUNNING, reason: 1 };
  const present = (state: { state: number; reason: number }, job: JobType, operation?: number): SourceFinding => ({ domain: 'present', state, job: { type: job, operation } });
  const cases: Array<[string, S, SourceFinding, string]> = [
    ['queued: run it', S.queued, present(running, JobType.NONE), 'restart'],
    ['preparing: undo what the destination holds, run again', S.preparing, present(running, JobType.NONE), 'restart'],
    ['the job still runs: watch it again', S.running, present(running, JobType.UNBOUNDED, JOB_OPERATION_MIGRATION_OUT), 'reattach'],
    ['in post-copy, the job runs', S.postcopy, present({ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY }, JobType.UNBOUNDED, JOB_OPERATION_MIGRATION_OUT), 'reattach'],
    ['post-copy failed half way: resume it', S.postcopy, present({ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED }, JobType.NONE), 'resume_postcopy'],
    ['paused post-copy, still paused for a resume', S.postcopyPaused, present({ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED }, JobType.NONE), 'resume_postcopy'],
    ['post-copy failed, its job still listed for the resume', S.postcopy, present({ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED }, JobType.UNBOUNDED, JOB_OPERATION_MIGRATION_OUT), 'resume_postcopy'],
    ['the job ended, the guest stayed: roll back', S.running, present(running, JobType.NONE), 'roll_back'],
    ['an incoming job is not ours to watch', S.running, present(running, JobType.UNBOUNDED, 4), 'roll_back'],
    ['the domain left: confirm at the destination', S.running, { domain: 'missing' }, 'confirm_at_destination'],
    ['the domain is shut off here: confirm at the destination', S.running, present({ state: DomainState.SHUTOFF, reason: 2 }, JobType.NONE), 'confirm_at_destination'],
    ['post-copy, the domain left', S.postcopy, { domain: 'missing' }, 'confirm_at_destination'],
    ['post-copy, yet the source runs without a job: touch nothing', S.postcopy, present(running, JobType.NONE), 'report'],
  ];
  it.each(cases)('%s', (_what, status, found, kind) => {
    expect(carryOnFrom(status, found).kind).toBe(kind);
  });
});

describe('settling an incoming migration after a restart', () => {
  const incomingHalf = { state: DomainState.PAUSED, reason: PausedReason.MIGRATION };
  const cases: Array<[string, Parameters<typeof incomingVerdict>, string]> = [
    ['the guest runs here: arrived', [{ state: DomainState.RUNNING, reason: 1 }, { kind: 'silent', why: 'x' }, 0, 900], 'arrived'],
    ['post-copy half here: arrived, never rolled back', [{ state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED }, { kind: 'ended', status: S.failed }, 0, 900], 'arrived'],
    ['paused by its user here: arrived', [{ state: DomainState.PAUSED, reason: 1 /* VIR_DOMAIN_PAUSED_USER */ }, { kind: 'ended', status: S.failed }, 0, 900], 'arrived'],
    ['still coming, the source says under way', [incomingHalf, { kind: 'under_way' }, 5000, 900], 'wait'],
    ['never came, the source says failed', [null, { kind: 'ended', status: S.failed }, 0, 900], 'roll_back'],
    ['half came, the source says cancelled', [incomingHalf, { kind: 'ended', status: S.cancelled }, 0, 900], 'roll_back'],
    ['the source says completed yet nothing runs here: keep', [null, { kind: 'ended', status: S.completed }, 0, 900], 'keep'],
    ['the source says error: keep', [null, { kind: 'ended', status: S.error }, 0, 900], 'keep'],
    ['the source silent, within the grace', [null, { kind: 'silent', why: 'timeout' }, 100, 900], 'wait'],
    ['the source silent past the grace', [null, { kind: 'silent', why: 'timeout' }, 901, 900], 'roll_back'],
  ];
  it.each(cases)('%s', (_what, args, kind) => {
    expect(incomingVerdict(...args).kind).toBe(kind);
  });

  it("the source's word is its newest migration of the instance to this host", () => {
    const v = (dest: string, status: S, created: string) => ({ dest_compute: dest, status, created_at: created }) as MigrationView;
    expect(sourceWord([v('b', S.failed, '2026-01-01'), v('b', S.running, '2026-01-02')], 'b')).toEqual({ kind: 'under_way' });
    expect(sourceWord([v('b', S.running, '2026-01-01'), v('b', S.cancelled, '2026-01-02'), v('c', S.running, '2026-01-03')], 'b')).toEqual({ kind: 'ended', status: S.cancelled });
    expect(sourceWord([v('c', S.running, '2026-01-01')], 'b').kind).toBe('silent');
  });
});
