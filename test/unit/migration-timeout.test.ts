// Completion timeouts, the downtime ramp and the operator/timeout race, in
// real time (the source polls every 500 ms). Tests run concurrently, each on
// its own cluster, to keep the file at a few seconds.
import { describe, expect, it } from 'vitest';
import { DomainState } from '../../src/libvirt/types.js';
import { MAX_POLL_ERRORS } from '../../src/monitor/loop.js';
import { MAX_TIMEOUT_ATTEMPTS, TIMEOUT_RETRY_SECONDS } from '../../src/monitor/policy.js';
import { instanceArg } from '../../src/nova/objects.js';
import { adminContext } from './fakes/rpc.js';
import { makeCluster, makeGuest, startMigration, statusesOf, waitDone, waitFor, waitStatus, S, type Cluster, type Guest } from './fakes/cluster.js';

const ACTIONS = ['abortJob', 'migrateStartPostCopy', 'suspend'];

// Nova's policy: these tests are of its ramp and timeout (the adaptive policy has its own).
async function setup(libvirt: Record<string, unknown>, o: { timeoutSeconds?: number | null; onTimeout?: 'abort' | 'force_complete' | null; disk?: boolean } = {}) {
  const c = await makeCluster({ sharedStorage: true, src: { config: { libvirt: { convergence_policy: 'nova', ...libvirt } } } });
  const g = await makeGuest(c, o.disk === false ? {} : { disks: [{ dev: 'vda', file: 'disk' }] });
  g.dom.behaviour.autoCompleteMs = null;
  const m = await startMigration(c, g, { timeoutSeconds: o.timeoutSeconds, onTimeout: o.onTimeout });
  await g.dom.whenMigrating();
  const t0 = c.src.conn.callsOf('migrateToURI3')[0]!.at;
  return { c, g, ...m, t0 };
}

const since = (c: Cluster, method: string, t0: number) => c.src.conn.callsOf(method).map((x) => x.at - t0);
const actionsTaken = (c: Cluster, g: Guest) => c.src.conn.actions(g.uuid).filter((a) => ACTIONS.includes(a));
/** The source's job-stats polls of the guest, in ms after migrateToURI3. */
const polls = (c: Cluster, g: Guest, t0: number) => c.src.conn.callsOf('getJobStats', g.uuid).map((x) => x.at - t0);

/**
 * Order, not speed: a monitor action due once `deadlineMs` has passed was taken at
 * the first poll past it. The poll it answered (the last one before it) is past the
 * deadline, and every earlier poll is not. The monitor's clock starts between
 * migrateToURI3 (t0) and its first poll, and reads the time just before each poll:
 * that, and a millisecond of rounding, is all the slack an earlier poll gets.
 */
function expectAtFirstPollPast(polled: number[], actionAt: number, deadlineMs: number): void {
  const before = polled.filter((p) => p <= actionAt);
  const answered = before.at(-1);
  expect(answered, 'a poll before the action').toBeDefined();
  expect(answered!).toBeGreaterThan(deadlineMs);
  const slack = polled[0]! + 1;
  for (const p of before.slice(0, -1)) expect(p, `poll at ${p} ms, before the one at ${answered} ms that acted`).toBeLessThanOrEqual(deadlineMs + slack);
}

describe.concurrent('per-migration timeout', () => {
  it('on_timeout abort: abortJob at ~timeout, cancelled; the downtime ramp reaches live_migration_downtime at timeout/2', async () => {
    const { c, g, uuid, t0 } = await setup({ live_migration_downtime: 400, live_migration_downtime_steps: 4 }, { timeoutSeconds: 2, onTimeout: 'abort' });
    try {
      const r = await waitDone(c, uuid, 6000);
      expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.cancelled]);
      expect(r.settings).toMatchObject({ timeoutSeconds: 2, timeoutAction: 'abort', perMigrationTimeout: true });
      expect(r.claimedAction).toBe('abort');
      const [abortAt, ...more] = since(c, 'abortJob', t0);
      expect(more).toEqual([]);
      expect(abortAt).toBeGreaterThanOrEqual(2000);
      const polled = polls(c, g, t0);
      expectAtFirstPollPast(polled, abortAt!, 2000);
      expect(c.bus.sent('rollback_live_migration_at_destination')).toHaveLength(1);

      // Ramp: 100, 175, 250, 325, 400 spread over [0, 1 s]; polled every 500 ms.
      const sets = c.src.conn.callsOf('migrateSetMaxDowntime').map((x) => ({ ms: x.args[0] as number, t: x.at - t0 }));
      const values = sets.map((s) => s.ms);
      expect(values).toEqual([...values].sort((a, b) => a - b));
      expect(new Set(values).size).toBe(values.length);
      expect(Math.max(...values)).toBe(400);
      expect(values[0]).toBeLessThan(400);
      const full = sets.find((s) => s.ms === 400)!;
      expect(full.t).toBeGreaterThanOrEqual(1000);
      // The maximum at the first poll past timeout/2, each lower step at a poll before it.
      expectAtFirstPollPast(polled, full.t, 1000);
      const fullPoll = polled.filter((p) => p <= full.t).at(-1)!;
      for (const s of sets.filter((x) => x.ms < 400)) expect(s.t).toBeLessThan(fullPoll);
      expect(r.currentDowntimeMs).toBe(400);
      expect(g.dom.maxDowntimeMs).toBe(400);
    } finally {
      await c.cleanup();
    }
  });

  it('on_timeout force_complete with post-copy permitted: migrateStartPostCopy at ~timeout, post-copy, completed', async () => {
    const { c, g, uuid, t0 } = await setup({ live_migration_permit_post_copy: true }, { timeoutSeconds: 1, onTimeout: 'force_complete' });
    try {
      const r = await waitDone(c, uuid, 5000);
      expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.postcopy, S.completed]);
      expect(actionsTaken(c, g)).toEqual(['migrateStartPostCopy']);
      const [at] = since(c, 'migrateStartPostCopy', t0);
      expect(at).toBeGreaterThanOrEqual(1000);
      expectAtFirstPollPast(polls(c, g, t0), at!, 1000);
      expect(r.claimedAction).toBe('force_complete');
    } finally {
      await c.cleanup();
    }
  });

  it('on_timeout force_complete without post-copy: the guest is paused at ~timeout, completed', async () => {
    const { c, g, uuid, t0 } = await setup({ live_migration_permit_post_copy: false, live_migration_timeout_action: 'abort' }, { timeoutSeconds: 1, onTimeout: 'force_complete' });
    try {
      const r = await waitDone(c, uuid, 5000);
      expect(statusesOf(c.src, uuid)).toEqual([S.queued, S.preparing, S.running, S.completed]);
      expect(actionsTaken(c, g)).toEqual(['suspend']);
      expect(since(c, 'suspend', t0)[0]).toBeGreaterThanOrEqual(1000);
      expect(r.settings?.timeoutAction).toBe('force_complete');
    } finally {
      await c.cleanup();
    }
  });

  it('the config timeout (s/GiB x data_gb) with the config action when the request sets none', async () => {
    // Diskless 1 GiB guest: data_gb = 2, so 1 s/GiB gives 2 s.
    const { c, uuid, t0 } = await setup({ live_migration_completion_timeout: 1, live_migration_timeout_action: 'abort' }, { disk: false });
    try {
      const r = await waitDone(c, uuid, 6000);
      expect(r.settings).toMatchObject({ timeoutSeconds: 2, perMigrationTimeout: false, dataGb: 2 });
      expect(r.status).toBe(S.cancelled);
      expect(since(c, 'abortJob', t0)[0]).toBeGreaterThanOrEqual(2000);
      // Nova's ramp: first step D/S at once (delay 3 s/GiB x 2 GiB = 6 s to the next).
      expect(c.src.conn.callsOf('migrateSetMaxDowntime').map((x) => x.args[0])).toEqual([50]);
    } finally {
      await c.cleanup();
    }
  });

  it('timeout_seconds 0 turns the timeout off, whatever the config says', async () => {
    const { c, g, uuid } = await setup({ live_migration_completion_timeout: 1 }, { timeoutSeconds: 0, onTimeout: 'abort', disk: false });
    try {
      await new Promise((r) => setTimeout(r, 2700));
      expect(c.src.registry.get(uuid)?.status).toBe(S.running);
      expect(c.src.registry.get(uuid)?.settings?.timeoutSeconds).toBe(0);
      expect(actionsTaken(c, g)).toEqual([]);
      g.dom.completeMigration();
      expect((await waitDone(c, uuid)).status).toBe(S.completed);
    } finally {
      await c.cleanup();
    }
  });
});

describe.concurrent('operator and timeout together', () => {
  // Each libvirt action takes 150 ms, so the two claims overlap for real.
  const offsets = [-150, -20, 0, 10, 40, 120, 'same-poll'] as const;

  it.each(offsets)('operator abort vs timeout force-complete (post-copy) at 1 s %s: exactly one action, one final status', async (offset) => {
    const { c, g, uuid, id, t0 } = await setup({ live_migration_permit_post_copy: true }, { timeoutSeconds: 1, onTimeout: 'force_complete' });
    try {
      g.dom.behaviour.actionDelayMs = 150;
      g.dom.behaviour.postCopyCompleteMs = 100;
      const doAbort = () => c.api.liveMigrationAbort(adminContext(), c.src.name, instanceArg(g.instance), id, 'call').then(() => 'ok', (e: Error) => e.name);
      let operator: Promise<string> | null = null;
      if (offset === 'same-poll') {
        g.dom.onJobStats = () => {
          if (!operator && performance.now() - t0 > 1000) operator = doAbort();
        };
      } else {
        await new Promise((r) => setTimeout(r, Math.max(0, t0 + 1000 + offset - performance.now())));
        operator = doAbort();
      }
      const r = await waitDone(c, uuid, 5000);
      const result = await operator!;
      const acts = actionsTaken(c, g);
      if (process.env.RACE_DEBUG) console.log('RACE', offset, acts, result);
      expect(acts).toHaveLength(1);
      expect(c.src.finals.get(uuid)).toBe(1);
      const finals = statusesOf(c.src, uuid).filter((s) => [S.completed, S.failed, S.cancelled, S.error].includes(s as never));
      expect(finals).toHaveLength(1);
      if (acts[0] === 'abortJob') {
        expect(result).toBe('ok');
        expect(r.status).toBe(S.cancelled);
      } else {
        expect(acts[0]).toBe('migrateStartPostCopy');
        expect(result).toBe('InvalidMigrationState');
        expect(r.status).toBe(S.completed);
      }
    } finally {
      await c.cleanup();
    }
  });

  it('operator force-complete (pause) vs timeout abort at 1 s: exactly one action, one final status', async () => {
    const { c, g, uuid, t0 } = await setup({}, { timeoutSeconds: 1, onTimeout: 'abort' });
    try {
      g.dom.behaviour.actionDelayMs = 150;
      let operator: Promise<string> | null = null;
      g.dom.onJobStats = () => {
        if (!operator && performance.now() - t0 > 1000) {
          operator = c.api.liveMigrationForceComplete(adminContext(), c.src.name, instanceArg(g.instance), 'call').then(() => 'ok', (e: Error) => e.name);
        }
      };
      const r = await waitDone(c, uuid, 5000);
      const result = await operator!;
      const acts = actionsTaken(c, g);
      expect(acts).toHaveLength(1);
      expect(c.src.finals.get(uuid)).toBe(1);
      if (acts[0] === 'abortJob') {
        expect(result).toBe('InvalidMigrationState');
        expect(r.status).toBe(S.cancelled);
      } else {
        expect(acts[0]).toBe('suspend');
        expect(result).toBe('ok');
        expect(r.status).toBe(S.completed);
      }
    } finally {
      await c.cleanup();
    }
  });

  it('a failed timeout action leaves the operator free to act', async () => {
    const { c, g, uuid, id } = await setup({ live_migration_permit_post_copy: true }, { timeoutSeconds: 1, onTimeout: 'force_complete' });
    try {
      const real = g.dom.migrateStartPostCopy.bind(g.dom);
      let failures = 0;
      g.dom.migrateStartPostCopy = async () => {
        failures++;
        throw Object.assign(new Error('operation failed: qemu refused post-copy'), { code: 9, domain: 10 });
      };
      await waitStatus(c.src, uuid, S.running);
      await new Promise((r) => setTimeout(r, 1700));
      expect(failures).toBe(1);
      expect(c.src.registry.get(uuid)?.status).toBe(S.running);
      g.dom.migrateStartPostCopy = real;
      await c.api.liveMigrationAbort(adminContext(), c.src.name, instanceArg(g.instance), id, 'call');
      expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
    } finally {
      await c.cleanup();
    }
  });
});

describe.concurrent('every end-game action has an owner until it takes', () => {
  const refused = () => Object.assign(new Error('internal error: unable to execute QEMU command'), { code: 1, domain: 10 });

  it('a refused timeout abortJob is asked for again TIMEOUT_RETRY_SECONDS later, and then takes', async () => {
    const { c, g, uuid, t0 } = await setup({}, { timeoutSeconds: 1, onTimeout: 'abort' });
    try {
      g.dom.abortJobError = refused();
      const r = await waitDone(c, uuid, 15_000);
      expect(r.status).toBe(S.cancelled);
      const [first, second, ...more] = since(c, 'abortJob', t0);
      expect(more).toEqual([]);
      expect(first).toBeGreaterThan(1000);
      expect(second! - first!).toBeGreaterThanOrEqual(TIMEOUT_RETRY_SECONDS * 1000);
      expect(r.claimedAction).toBe('abort');
      expect(c.src.finals.get(uuid)).toBe(1);
    } finally {
      await c.cleanup();
    }
  });

  it('an abortJob that never takes: MAX_TIMEOUT_ATTEMPTS attempts, then the migration says so and runs on', async () => {
    const { c, g, uuid } = await setup({}, { timeoutSeconds: 1, onTimeout: 'abort' });
    try {
      const real = g.dom.abortJob.bind(g.dom);
      let attempts = 0;
      g.dom.abortJob = async () => {
        attempts++;
        throw refused();
      };
      const said = new Promise<string>((resolve) =>
        c.src.registry.on('action', (r, action) => {
          if (r.uuid === uuid && action === 'abort_failed') resolve(r.error ?? '');
        }),
      );
      expect(await said).toMatch(new RegExp(`the completion timeout's abort failed ${MAX_TIMEOUT_ATTEMPTS} times: internal error`));
      expect(attempts).toBe(MAX_TIMEOUT_ATTEMPTS);
      const r = c.src.registry.get(uuid)!;
      expect(r).toMatchObject({ status: S.running, claimedAction: null });
      // Nobody holds the end: the operator still can.
      g.dom.abortJob = real;
      await c.api.liveMigrationAbort(adminContext(), c.src.name, instanceArg(g.instance), uuid, 'call');
      expect((await waitDone(c, uuid)).status).toBe(S.cancelled);
    } finally {
      await c.cleanup();
    }
  }, 60_000);

  it('a failed operator force-complete leaves the completion timeout armed', async () => {
    const { c, g, uuid, t0 } = await setup({}, { timeoutSeconds: 2, onTimeout: 'abort' });
    try {
      g.dom.suspend = async () => {
        throw refused();
      };
      const operator = await c.api.liveMigrationForceComplete(adminContext(), c.src.name, instanceArg(g.instance), 'call').then(() => 'ok', (e: Error) => e.message);
      expect(operator).toMatch(/unable to execute QEMU command/);
      expect(c.src.registry.get(uuid)).toMatchObject({ status: S.running, claimedAction: null, pausedByUs: false });
      const r = await waitDone(c, uuid, 10_000);
      expect(r.status).toBe(S.cancelled);
      const [abortAt] = since(c, 'abortJob', t0);
      expect(abortAt).toBeGreaterThan(2000);
      expect(r.claimedAction).toBe('abort');
      expect(g.dom.state).toBe(DomainState.RUNNING);
    } finally {
      await c.cleanup();
    }
  });

  it('a job nobody can watch or abort that still finishes the move: completed, never rolled back', async () => {
    const { c, g, uuid } = await setup({});
    try {
      const statsError = () => Object.assign(new Error('Unable to read from monitor: Connection reset by peer'), { code: 1, domain: 10 });
      let aborts = 0;
      g.dom.abortJob = async () => {
        aborts++;
        throw refused();
      };
      g.dom.jobStatsScript = Array.from({ length: MAX_POLL_ERRORS }, statsError);
      await waitFor(() => aborts === 3, 'three blind aborts');
      g.dom.completeMigration();
      const r = await waitDone(c, uuid, 10_000);
      expect(r.status).toBe(S.completed);
      expect(c.bus.sent('rollback_live_migration_at_destination')).toHaveLength(0);
    } finally {
      await c.cleanup();
    }
  });

  it(`job stats failing fewer than ${MAX_POLL_ERRORS} polls in a row are polled through; that many abort the job`, async () => {
    const { c, g, uuid } = await setup({});
    try {
      const statsError = () => Object.assign(new Error('Unable to read from monitor: Connection reset by peer'), { code: 1, domain: 10 });
      g.dom.jobStatsScript = [statsError(), statsError(), { type: 2 }];
      await new Promise((r) => setTimeout(r, 2000));
      expect(c.src.registry.get(uuid)?.status).toBe(S.running);
      expect(c.src.conn.callsOf('abortJob')).toHaveLength(0);
      g.dom.jobStatsScript = Array.from({ length: MAX_POLL_ERRORS }, statsError);
      const r = await waitDone(c, uuid, 10_000);
      expect(r.status).toBe(S.failed);
      expect(c.src.conn.callsOf('abortJob')).toHaveLength(1);
    } finally {
      await c.cleanup();
    }
  });
});
