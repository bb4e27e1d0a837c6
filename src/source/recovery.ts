// At start-up, outgoing migrations left by a previous ferryd (crash, restart)
// have nobody watching their timeout or reporting them. Like Nova's init_host,
// abort them so each guest stays whole on this host.

import { JobType, type Connection } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';

/** virDomainJobOperation */
const JOB_OPERATION_MIGRATION_OUT = 5;
/** VIR_CONNECT_LIST_DOMAINS_ACTIVE */
const LIST_ACTIVE = 1;

export async function abortOrphanedMigrations(libvirt: Connection, log: Logger): Promise<string[]> {
  const aborted: string[] = [];
  for (const dom of await libvirt.listAllDomains(LIST_ACTIVE)) {
    try {
      const stats = await dom.getJobStats();
      if (stats.type !== JobType.UNBOUNDED || stats.operation !== JOB_OPERATION_MIGRATION_OUT) continue;
      log.warn({ instance: dom.uuid, name: dom.name }, 'aborting an outgoing migration nobody is monitoring');
      await dom.abortJob();
      aborted.push(dom.uuid);
    } catch (err) {
      log.error({ err, instance: dom.uuid }, 'could not check or abort an orphaned migration');
    }
  }
  return aborted;
}
