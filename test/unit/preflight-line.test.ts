import { describe, expect, it } from 'vitest';
import { preflightLine } from '../../src/source/plan.js';

const MiB = 2 ** 20;

describe('preflightLine: what the log says the preflight chose', () => {
  it.each<[string, Parameters<typeof preflightLine>[0], boolean, string]>([
    ['both permitted, measured', { dirtyRateBps: 5 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: null, why: null }, true, 'migration armed with auto_converge by the measured dirty rate'],
    ['auto-converge alone, a fast dirtier', { dirtyRateBps: 45 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: 67, why: null }, false, 'auto-converge throttle starts at 67 % by the measured dirty rate'],
    ['auto-converge alone, a slow dirtier: QEMU\'s 20 %', { dirtyRateBps: 5 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: null, why: null }, false, 'auto-converge throttle starts at 20 % by the measured dirty rate'],
    // Not "by the measured dirty rate" when there was none.
    ['nothing measured', { dirtyRateBps: null, linkBps: null, armed: 'postcopy', throttleStartPercent: null, why: 'link speed unknown' }, true, 'migration preflight measured nothing (link speed unknown): armed with postcopy'],
  ])('%s', (_name, note, postCopyPermitted, line) => {
    expect(preflightLine(note, postCopyPermitted)).toBe(line);
  });
});
