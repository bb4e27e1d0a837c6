// Migration size and progress figures as Nova computes them (libvirt/migration.py).
import type { JobInfo, JobStats } from '../libvirt/types.js';
import type { MigrationCounters, RecordPatch } from '../record/registry.js';

const GIB = 1024 ** 3;

/** A finished job's figures for its record: downtime, post-copy page requests, counters and progress, those libvirt gave. */
export function finishedJobFigures(stats: JobStats): Pick<RecordPatch, 'downtimeMs' | 'postcopyRequests' | 'counters' | 'progress'> {
  return {
    ...(typeof stats.downtime === 'number' ? { downtimeMs: stats.downtime } : {}),
    ...(typeof stats.memory_postcopy_requests === 'number' ? { postcopyRequests: stats.memory_postcopy_requests } : {}),
    ...(typeof stats.memory_total === 'number' ? { counters: countersFromStats(stats), progress: progressPercent(stats) } : {}),
  };
}

/** Nova's data_gb: every guest and disk counts as at least 2 GiB. Floats, not rounded. */
export function dataGb(memoryMb: number, diskBytes: readonly number[]): number {
  let gb = Math.max(2, memoryMb / 1024);
  for (const bytes of diskBytes) gb += Math.max(2, bytes / GIB);
  return gb;
}

/** Instance progress in percent; 100 when libvirt reports no memory total. */
export function progressPercent(stats: Pick<JobStats, 'memory_total' | 'memory_remaining'>): number {
  const total = stats.memory_total ?? 0;
  if (total === 0) return 100;
  return 100 - pyRound(((stats.memory_remaining ?? 0) * 100) / total);
}

/** The six counters Nova copies into the Migration object (missing ones are 0). */
export function countersFromStats(stats: JobStats): MigrationCounters {
  return {
    memory_total: stats.memory_total ?? 0,
    memory_processed: stats.memory_processed ?? 0,
    memory_remaining: stats.memory_remaining ?? 0,
    disk_total: stats.disk_total ?? 0,
    disk_processed: stats.disk_processed ?? 0,
    disk_remaining: stats.disk_remaining ?? 0,
  };
}

/** virDomainGetJobInfo as JobStats, for hypervisors without jobStats (NO_SUPPORT). */
export function statsFromJobInfo(info: JobInfo): JobStats {
  return {
    type: info.type,
    time_elapsed: info.timeElapsed,
    time_remaining: info.timeRemaining,
    data_total: info.dataTotal,
    data_processed: info.dataProcessed,
    data_remaining: info.dataRemaining,
    memory_total: info.memTotal,
    memory_processed: info.memProcessed,
    memory_remaining: info.memRemaining,
    disk_total: info.fileTotal,
    disk_processed: info.fileProcessed,
    disk_remaining: info.fileRemaining,
  };
}

/** Python 3 round(): halves go to the even neighbour. */
export function pyRound(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
