// Files that must survive a crash whole: written aside, synced, renamed over
// the old one, folder synced. A crash leaves the old content or the new, never
// a torn mix. Small and synchronous on purpose: a status change is on disk
// before anything that depends on it happens.

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function writeFileDurably(file: string, text: string): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  syncPath(tmp);
  renameSync(tmp, file);
  syncPath(dir);
}

/** Removes the file, the removal itself synced. */
export function removeFileDurably(file: string): void {
  rmSync(file, { force: true });
  syncPath(dirname(file));
}

/** A file that cannot be read as what it should be is renamed, never overwritten: an operator may want it. */
export function setAside(file: string): string {
  const aside = `${file}.unreadable-${Date.now()}`;
  renameSync(file, aside);
  return aside;
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
