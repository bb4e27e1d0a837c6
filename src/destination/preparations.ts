// What this host's pre_live_migration prepared, per incoming instance: the
// source host, when, and whether it made the instance folder. A roll back
// removes exactly what was made here and never what was not; the start-up
// reconcile (reconcile.ts) finds here the incoming migrations a previous
// ferryd left. Kept in a file under state_path, written before the
// preparation is reported: a ferryd that restarted still knows. With a record
// it cannot read it knows nothing and removes nothing: when in doubt, keep.

import { existsSync, readFileSync } from 'node:fs';
import { setAside, writeFileDurably } from '../record/durable-file.js';
import type { Logger } from '../log/logger.js';

export interface Preparation {
  instanceUuid: string;
  /** The host the guest comes from (the instance's host when prepared); null when not known. */
  source: string | null;
  /** When pre_live_migration prepared it (ISO time). */
  at: string;
  /** This host created the instance folder (and the empty disks in it). */
  madeDir: boolean;
  /** The ports plugged for it (port ids); absent in records of earlier versions. */
  ports?: string[];
}

interface SavedV2 {
  version: 2;
  prepared: Preparation[];
}

/** Version 1 knew only the folders made. */
interface SavedV1 {
  version: 1;
  createdDirs: string[];
}

export class Preparations {
  private prepared: ReadonlyMap<string, Preparation>;

  constructor(
    private readonly file: string,
    log: Logger,
  ) {
    this.prepared = new Map(load(file, log).map((p) => [p.instanceUuid, p]));
  }

  /** pre_live_migration prepared the instance; `madeDir`: it made the folder here; `ports`: the ports it plugged. */
  note(instanceUuid: string, source: string | null, madeDir: boolean, ports: string[] = []): void {
    const next = new Map(this.prepared);
    next.set(instanceUuid, { instanceUuid, source, at: new Date().toISOString(), madeDir, ...(ports.length > 0 ? { ports } : {}) });
    this.replace(next);
  }

  /** Whether this host made the instance's folder for a migration still to finish or roll back. */
  madeDir(instanceUuid: string): boolean {
    return this.prepared.get(instanceUuid)?.madeDir ?? false;
  }

  /** The ports plugged for the instance's incoming migration. */
  ports(instanceUuid: string): string[] {
    return this.prepared.get(instanceUuid)?.ports ?? [];
  }

  /** Incoming migrations prepared and not yet arrived or rolled back. */
  list(): Preparation[] {
    return [...this.prepared.values()];
  }

  /** The migration ended (arrived, or rolled back): nothing of it is left to undo. False when nothing was kept for it. */
  forget(instanceUuid: string): boolean {
    if (!this.prepared.has(instanceUuid)) return false;
    const next = new Map(this.prepared);
    next.delete(instanceUuid);
    this.replace(next);
    return true;
  }

  /** Saved first, then taken: what is known in memory is never more than the record says. */
  private replace(next: Map<string, Preparation>): void {
    const saved: SavedV2 = { version: 2, prepared: [...next.values()].sort((a, b) => a.instanceUuid.localeCompare(b.instanceUuid)) };
    writeFileDurably(this.file, `${JSON.stringify(saved)}\n`);
    this.prepared = next;
  }
}

function isPreparation(p: unknown): p is Preparation {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  const ports = o.ports === undefined || (Array.isArray(o.ports) && o.ports.every((x) => typeof x === 'string'));
  return typeof o.instanceUuid === 'string' && (o.source === null || typeof o.source === 'string') && typeof o.at === 'string' && typeof o.madeDir === 'boolean' && ports;
}

/** The saved preparations; an unreadable record is set aside (never overwritten) and counts as empty. */
function load(file: string, log: Logger): Preparation[] {
  if (!existsSync(file)) return [];
  try {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SavedV1> | Partial<SavedV2>;
    if (saved.version === 2 && Array.isArray(saved.prepared) && saved.prepared.every(isPreparation)) return saved.prepared;
    if (saved.version === 1 && Array.isArray(saved.createdDirs) && saved.createdDirs.every((u) => typeof u === 'string')) {
      const at = new Date().toISOString();
      return saved.createdDirs.map((instanceUuid) => ({ instanceUuid, source: null, at, madeDir: true }));
    }
    throw new Error('not a version 1 or 2 preparations record');
  } catch (err) {
    const aside = setAside(file);
    log.error({ err, file, aside }, 'preparations record unreadable: set aside; rollbacks remove no folder made before this start');
    return [];
  }
}
