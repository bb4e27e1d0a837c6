// What this host's pre_live_migration created, per incoming instance, so a
// roll back removes exactly that and never what it did not make. Kept in a
// file under state_path, written before the creation is reported, so a
// ferryd that restarted still knows (and still removes nothing it did not
// make). With a record it cannot read it knows nothing and removes nothing:
// when in doubt, keep.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.js';

interface Saved {
  version: 1;
  /** Instances whose folder this host created for an incoming migration. */
  createdDirs: string[];
}

export class Preparations {
  private createdDirs: Set<string>;

  constructor(
    private readonly file: string,
    log: Logger,
  ) {
    this.createdDirs = new Set(load(file, log));
  }

  /** pre_live_migration made the instance folder (and the empty disks in it). */
  noteDirMade(instanceUuid: string): void {
    this.replace(new Set([...this.createdDirs, instanceUuid]));
  }

  /** Whether this host made the instance's folder for a migration still to finish or roll back. */
  madeDir(instanceUuid: string): boolean {
    return this.createdDirs.has(instanceUuid);
  }

  /** The migration ended (arrived, or rolled back): nothing of it is left to undo. */
  forget(instanceUuid: string): void {
    if (!this.createdDirs.has(instanceUuid)) return;
    this.replace(new Set([...this.createdDirs].filter((u) => u !== instanceUuid)));
  }

  /**
   * Saved first, then taken: what is known in memory is never more than the
   * record says. The file is replaced whole (written aside, synced, renamed,
   * folder synced): a crash leaves the old record or the new one.
   */
  private replace(next: Set<string>): void {
    const saved: Saved = { version: 1, createdDirs: [...next].sort() };
    const dir = dirname(this.file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(saved)}\n`, { mode: 0o600 });
    syncPath(tmp);
    renameSync(tmp, this.file);
    syncPath(dir);
    this.createdDirs = next;
  }
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The saved instances; an unreadable record is set aside (never overwritten) and counts as empty. */
function load(file: string, log: Logger): string[] {
  if (!existsSync(file)) return [];
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<Saved>;
    if (saved.version !== 1 || !Array.isArray(saved.createdDirs) || !saved.createdDirs.every((u) => typeof u === 'string')) {
      throw new Error('not a version 1 preparations record');
    }
    return saved.createdDirs;
  } catch (err) {
    const aside = `${file}.unreadable-${Date.now()}`;
    renameSync(file, aside);
    log.error({ err, file, aside }, 'preparations record unreadable: set aside; rollbacks remove no folder made before this start');
    return [];
  }
}
