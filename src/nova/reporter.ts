// Progress back to the conductor: a `migration_update` cast at every status
// change and at each save_stats moment while running. Each carries `seq`,
// the migration's own sequence number (1, 2, ...) that the registry counted
// and kept with the moment: the daemon sends through the outbox, which
// delivers at least once and in order, so a conductor drops an update whose
// seq it has seen.

import { randomUUID } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { RequestContext, RpcClient } from '../rpc/types.js';
import type { MigrationRecord, MigrationRegistry } from '../record/registry.js';
import { migrationView } from './migration-view.js';

export class MigrationReporter {
  constructor(
    registry: MigrationRegistry,
    private readonly rpc: Pick<RpcClient, 'cast'>,
    private readonly conductorTopic: string,
    private readonly log: Logger,
  ) {
    registry.on('change', (record, previous) => {
      if (record.status !== previous) void this.send(record);
    });
    registry.on('progress', (record) => void this.send(record));
  }

  private async send(record: MigrationRecord): Promise<void> {
    const view = migrationView(record);
    const { seq } = record;
    try {
      await this.rpc.cast(serviceContext(), { topic: this.conductorTopic }, 'migration_update', {
        migration: view,
        instance_uuid: record.instanceUuid,
        progress: record.progress,
        seq,
      });
    } catch (err) {
      // The record stays authoritative; the next update carries the latest state.
      this.log.warn({ err, migration: record.uuid }, 'migration_update not sent');
    }
  }
}

function serviceContext(): RequestContext {
  return { request_id: `req-${randomUUID()}`, roles: [], is_admin: true, raw: {} };
}
