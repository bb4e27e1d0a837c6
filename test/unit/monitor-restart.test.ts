// A monitor re-attached after a restart goes on from the policy state its
// record kept: the downtime the adaptive policy raised is not lowered to the
// initial value again, and the model keeps its marks.
import { describe, expect, it } from 'vitest';
import { JobType, type Domain, type JobStats } from '../../src/libvirt/types.js';
import { silentLogger } from '../../src/log/logger.js';
import { MigrationControl } from '../../src/monitor/control.js';
import { runMonitor } from '../../src/monitor/loop.js';
import { initialMonitorState } from '../../src/monitor/policy.js';
import { MigrationRegistry, type MigrationSettings } from '../../src/record/registry.js';
import { MigrationStatus as S } from '../../src/record/status.js';

const SETTINGS: MigrationSettings = {
  blockMigration: false,
  timeoutSeconds: 0,
  timeoutAction: 'abort',
  perMigrationTimeout: false,
  postCopyPermitted: false,
  autoConvergePermitted: false,
  diskCopy: null,
  bandwidthMiBs: 30,
  maxDowntimeMs: 500,
  flags: 0,
  dataGb: 2,
  convergencePolicy: 'adaptive',
  actOnStall: false,
  preflight: null,
};

/** A domain whose job runs on, iteration 5, until the worker settles. */
function runningJob(): { domain: Domain; downtimes: number[] } {
  const downtimes: number[] = [];
  const sample: JobStats = { type: JobType.UNBOUNDED, memory_iteration: 5, data_remaining: 100 * 2 ** 20, memory_bps: 30 * 2 ** 20 };
  const domain = {
    getJobStats: async () => sample,
    migrateSetMaxDowntime: async (ms: number) => void downtimes.push(ms),
    isActive: async () => false,
  } as unknown as Domain;
  return { domain, downtimes };
}

async function monitorFor(policyState: Record<string, unknown> | null): Promise<number[]> {
  const registry = new MigrationRegistry();
  const record = registry.create({ uuid: 'a6f0c1a2-0000-4000-8000-000000000001', id: 1, instanceUuid: 'a6f0c1a2-0000-4000-8000-000000000101', instanceName: 'vm', sourceCompute: 'a', destCompute: 'b', status: S.queued });
  registry.update(record, { status: S.preparing });
  registry.update(record, { status: S.running, settings: SETTINGS, policyState, currentDowntimeMs: 500 });
  const { domain, downtimes } = runningJob();
  await runMonitor({
    domain,
    record,
    registry,
    control: new MigrationControl(record, registry, domain, silentLogger),
    worker: new Promise((r) => setTimeout(r, 1_200)),
    steps: [[0, 50]],
    log: silentLogger,
    pollMs: 100,
    statsEvery: 10,
    stallWindowSeconds: 10,
    elapsedBeforeSeconds: 30,
  });
  expect(record.policyState).toMatchObject({ currentDowntime: downtimes.at(-1) ?? 500 });
  return downtimes;
}

describe('a monitor re-attached after a restart', () => {
  it('goes on from the kept state: the raised downtime stays', async () => {
    const kept = { ...initialMonitorState(), currentDowntime: 500, pollCount: 60 };
    expect(await monitorFor(kept as unknown as Record<string, unknown>)).toEqual([]);
  });
  it('without a kept state it starts afresh (the initial downtime), as the first monitor did', async () => {
    expect(await monitorFor(null)).toEqual([50]);
  });
});
