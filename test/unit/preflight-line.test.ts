import { describe, expect, it } from 'vitest';
import { preflightLine } from '../../src/source/plan.js';

const MiB = 2 ** 20;
const BOTH = { postCopy: true, autoConverge: true };
const AUTO_CONVERGE = { postCopy: false, autoConverge: true };

describe('preflightLine: what the log says the preflight chose', () => {
  it.each<[string, Parameters<typeof preflightLine>[0], Parameters<typeof preflightLine>[1], string]>([
    ['both permitted, measured', { dirtyRateBps: 5 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: null, why: null }, BOTH, 'migration armed with auto_converge by the measured dirty rate'],
    ['auto-converge alone, a fast dirtier', { dirtyRateBps: 45 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: 84, why: null }, AUTO_CONVERGE, 'auto-converge throttle starts at 84 % by the measured dirty rate'],
    ['auto-converge alone, a slow dirtier: QEMU\'s 20 %', { dirtyRateBps: 5 * MiB, linkBps: 30 * MiB, armed: 'auto_converge', throttleStartPercent: null, why: null }, AUTO_CONVERGE, 'auto-converge throttle starts at 20 % by the measured dirty rate'],
    ['post-copy alone, measured', { dirtyRateBps: 90 * MiB, linkBps: 30 * MiB, armed: 'postcopy', throttleStartPercent: null, why: null }, { postCopy: true, autoConverge: false }, 'migration dirty rate measured for the post-copy switch'],
    ['neither permitted, measured', { dirtyRateBps: 45 * MiB, linkBps: 30 * MiB, armed: null, throttleStartPercent: null, why: null }, { postCopy: false, autoConverge: false }, 'migration dirty rate measured for the convergence verdict'],
    ['neither permitted, nothing measured', { dirtyRateBps: null, linkBps: null, armed: null, throttleStartPercent: null, why: 'link speed unknown' }, { postCopy: false, autoConverge: false }, 'migration preflight measured nothing (link speed unknown)'],
    // Not "by the measured dirty rate" when there was none.
    ['nothing measured', { dirtyRateBps: null, linkBps: null, armed: 'postcopy', throttleStartPercent: null, why: 'link speed unknown' }, BOTH, 'migration preflight measured nothing (link speed unknown): armed with postcopy'],
  ])('%s', (_name, note, permitted, line) => {
    expect(preflightLine(note, permitted)).toBe(line);
  });
});
