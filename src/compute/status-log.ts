// One INFO line per status change of an outgoing migration, on the
// migration's logger (its uuid, instance and request id): the story an
// operator reads from the journal, a line a step, as Nova logs it.
import { migrationLogger, type Logger } from '../log/logger.js';
import type { MigrationRegistry } from '../record/registry.js';
import { readJournal } from '../source/request.js';

/**
 * Logs each status change from now on.
 *
 *     queued -> preparing   -> {"status":"preparing","previous":"queued","msg":"migration preparing"}
 *     running -> failed     -> the same, with the record's error
 */
export function logStatusChanges(registry: MigrationRegistry, log: Logger): void {
  registry.on('change', (r, previous) => {
    if (r.status === previous) return;
    const requestId = readJournal(r)?.context.request_id;
    const line = migrationLogger(log, { migration: r.uuid, instance: r.instanceUuid, requestId: typeof requestId === 'string' ? requestId : null });
    line.info({ status: r.status, previous, ...(r.error ? { error: r.error } : {}) }, `migration ${r.status}`);
  });
}
