import { describe, expect, it } from 'vitest';
import { JobType } from '../../src/libvirt/types.js';
import { countersFromStats, dataGb, progressPercent, pyRound, statsFromJobInfo } from '../../src/monitor/progress.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('dataGb (Nova test_driver)', () => {
  it('2048 MB and no disks -> 2', () => expect(dataGb(2048, [])).toBe(2));
  it('disks of 10 GiB and 1.5 GiB -> 14', () => expect(dataGb(2048, [10 * GiB, 1.5 * GiB])).toBe(14));
  it('small guests count as 2 GiB; large ones as their size', () => {
    expect(dataGb(512, [])).toBe(2);
    expect(dataGb(8192, [])).toBe(8);
    expect(dataGb(3072, [3 * GiB])).toBe(6);
  });
  it('keeps fractions', () => expect(dataGb(2560, [2.5 * GiB])).toBe(5));
});

describe('progressPercent / countersFromStats (Nova save_stats)', () => {
  const stats = {
    type: JobType.UNBOUNDED,
    memory_total: 1 * GiB,
    memory_processed: 5 * GiB,
    memory_remaining: 500 * MiB,
    disk_total: 15 * GiB,
    disk_processed: 10 * GiB,
    disk_remaining: 14 * GiB,
  };
  it('progress = 100 - round(remaining*100/total): 500 MiB left of 1 GiB -> 51', () => {
    expect(progressPercent(stats)).toBe(51);
  });
  it('Nova reference figure: remaining 75 of 100 -> progress 25', () => {
    expect(progressPercent({ memory_total: 100, memory_remaining: 75 })).toBe(25);
  });
  it('100 when memory_total is 0 or missing', () => {
    expect(progressPercent({ memory_total: 0, memory_remaining: 0 })).toBe(100);
    expect(progressPercent({})).toBe(100);
  });
  it('rounds half to even like Python', () => {
    expect(progressPercent({ memory_total: 200, memory_remaining: 1 })).toBe(100); // 0.5 -> 0
    expect(progressPercent({ memory_total: 200, memory_remaining: 3 })).toBe(98); // 1.5 -> 2
    expect(pyRound(2.5)).toBe(2);
    expect(pyRound(3.5)).toBe(4);
    expect(pyRound(2.51)).toBe(3);
  });
  it('copies the six counters', () => {
    expect(countersFromStats(stats)).toEqual({
      memory_total: 1 * GiB,
      memory_processed: 5 * GiB,
      memory_remaining: 500 * MiB,
      disk_total: 15 * GiB,
      disk_processed: 10 * GiB,
      disk_remaining: 14 * GiB,
    });
  });
  it('missing counters are 0', () => {
    expect(countersFromStats({ type: JobType.UNBOUNDED, memory_total: 5 })).toEqual({
      memory_total: 5, memory_processed: 0, memory_remaining: 0, disk_total: 0, disk_processed: 0, disk_remaining: 0,
    });
  });
  it('maps virDomainGetJobInfo', () => {
    const s = statsFromJobInfo({
      type: JobType.UNBOUNDED, timeElapsed: 1, timeRemaining: 2, dataTotal: 3, dataProcessed: 4, dataRemaining: 5,
      memTotal: 6, memProcessed: 7, memRemaining: 8, fileTotal: 9, fileProcessed: 10, fileRemaining: 11,
    });
    expect(s).toMatchObject({ type: JobType.UNBOUNDED, memory_total: 6, memory_remaining: 8, disk_total: 9, disk_remaining: 11, data_total: 3 });
  });
});
