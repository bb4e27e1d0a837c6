// Migration records on disk, one file per migration under
// <state_path>/migrations, each replaced whole on every durable change
// (durable-file.ts), so a restarted ferryd knows every migration it had:
// the unfinished ones to carry on, the finished ones to list.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { removeFileDurably, setAside, writeFileDurably } from './durable-file.js';
import type { MigrationRecord } from './registry.js';
import { MigrationStatus } from './status.js';

export interface RecordStore {
  /** Every record kept, in no particular order. */
  load(): MigrationRecord[];
  save(record: MigrationRecord): void;
  remove(uuid: string): void;
}

/** uuids come checked from the RPC schemas; a file name is still never built from anything else. */
const SAFE_NAME = /^[A-Za-z0-9-]{1,64}$/;
const STATUSES = new Set<string>(Object.values(MigrationStatus));
const SUFFIX = '.json';

export class FileRecordStore implements RecordStore {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  load(): MigrationRecord[] {
    if (!existsSync(this.dir)) return [];
    const records: MigrationRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith(SUFFIX)) continue;
      const file = join(this.dir, name);
      try {
        const record = JSON.parse(readFileSync(file, 'utf8')) as MigrationRecord;
        if (!looksLikeRecord(record) || `${record.uuid}${SUFFIX}` !== name) throw new Error('not a migration record');
        records.push(record);
      } catch (err) {
        const aside = setAside(file);
        this.log.error({ err, file, aside }, 'migration record unreadable: set aside; that migration is not carried on');
      }
    }
    return records;
  }

  save(record: MigrationRecord): void {
    writeFileDurably(this.file(record.uuid), `${JSON.stringify(record)}\n`);
  }

  remove(uuid: string): void {
    removeFileDurably(this.file(uuid));
  }

  private file(uuid: string): string {
    if (!SAFE_NAME.test(uuid)) throw new Error(`migration uuid ${JSON.stringify(uuid)} cannot name a file`);
    return join(this.dir, `${uuid}${SUFFIX}`);
  }
}

function looksLikeRecord(r: unknown): r is MigrationRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  return (
    typeof o.uuid === 'string' &&
    typeof o.instanceUuid === 'string' &&
    typeof o.status === 'string' &&
    STATUSES.has(o.status) &&
    typeof o.createdAt === 'string' &&
    typeof o.counters === 'object' &&
    o.counters !== null
  );
}
