import { describe, expect, it } from 'vitest';
import { MigrateFlag } from '../../src/libvirt/types.js';
import { convergenceAid, hasFlag, migrationFlags, throttleStartPercent, type MigrationFlagOptions } from '../../src/source/flags.js';

const base: MigrationFlagOptions = {
  blockMigration: false,
  nativeTls: false,
  permitPostCopy: false,
  permitAutoConverge: false,
  parallelConnections: 1,
};

describe('migrationFlags (Nova test_driver flag table)', () => {
  const table: Array<[string, Partial<MigrationFlagOptions>, number, number]> = [
    ['default', {}, 27, 155],
    ['native TLS', { nativeTls: true }, 65563, 65691],
    ['post-copy', { permitPostCopy: true }, 32795, 32923],
    ['auto-converge', { permitAutoConverge: true }, 8219, 8347],
    ['auto-converge + post-copy', { permitAutoConverge: true, permitPostCopy: true }, 32795, 32923],
    ['parallel=2', { parallelConnections: 2 }, 131099, 131227],
    ['full disk copy', { fullDiskCopy: true }, 27, 91],
  ];
  it.each(table)('%s -> live %i, block %i', (_name, opts, live, block) => {
    expect(migrationFlags({ ...base, ...opts, blockMigration: false })).toBe(live);
    expect(migrationFlags({ ...base, ...opts, blockMigration: true })).toBe(block);
  });

  it('removes POSTCOPY for a paused instance', () => {
    const f = migrationFlags({ ...base, permitPostCopy: true, instancePaused: true });
    expect(f).toBe(27);
    expect(hasFlag(f, MigrateFlag.POSTCOPY)).toBe(false);
  });

  it('does not fall back to auto-converge when post-copy is dropped for a paused instance', () => {
    expect(migrationFlags({ ...base, permitPostCopy: true, permitAutoConverge: true, instancePaused: true })).toBe(27);
  });

  it('removes NON_SHARED_INC when the disk list is empty', () => {
    expect(migrationFlags({ ...base, blockMigration: true, migrateDisksEmpty: true })).toBe(27);
    expect(migrationFlags({ ...base, blockMigration: true, migrateDisksEmpty: false })).toBe(155);
  });

  it('parallel only above one connection', () => {
    expect(hasFlag(migrationFlags({ ...base, parallelConnections: 1 }), MigrateFlag.PARALLEL)).toBe(false);
    expect(hasFlag(migrationFlags({ ...base, parallelConnections: 4 }), MigrateFlag.PARALLEL)).toBe(true);
  });
});

describe('hasFlag', () => {
  it('tests single bits', () => {
    expect(hasFlag(155, MigrateFlag.NON_SHARED_INC)).toBe(true);
    expect(hasFlag(155, MigrateFlag.TUNNELLED)).toBe(false);
    expect(hasFlag(27, MigrateFlag.LIVE)).toBe(true);
  });
});

describe('convergenceAid (both permitted, adaptive policy)', () => {
  const MiB = 2 ** 20;
  it.each<[number | null, number | null, string]>([
    [20, 30, 'postcopy'],
    [15, 30, 'postcopy'],
    [14.9, 30, 'auto_converge'],
    [5, 30, 'auto_converge'],
    [null, 30, 'postcopy'],
    [5, null, 'postcopy'],
  ])('dirty %s MiB/s, link %s MiB/s -> %s', (dirty, link, aid) => {
    expect(convergenceAid(dirty === null ? null : dirty * MiB, link === null ? null : link * MiB)).toBe(aid);
  });
});

describe('throttleStartPercent (auto-converge alone, adaptive policy)', () => {
  const MiB = 2 ** 20;
  it.each<[number | null, number | null, number | null]>([
    // The throttle that leaves a CPU-bound dirtier a quarter of the link: 1 − 7.5 / dirty.
    [45, 30, 84],
    [90, 30, 92],
    [30, 30, 75],
    [24, 30, 69],
    // 20 % is QEMU's own start: not asked for below it.
    [9.375, 30, null],
    [5, 30, null],
    [0, 30, null],
    // QEMU's cpu-throttle-max.
    [3000, 30, 99],
    [null, 30, null],
    [45, null, null],
  ])('dirty %s MiB/s, link %s MiB/s -> %s', (dirty, link, start) => {
    expect(throttleStartPercent(dirty === null ? null : dirty * MiB, link === null ? null : link * MiB)).toBe(start);
  });
});
