// At start-up, outgoing migrations left by a previous ferryd (crash, restart)
// have nobody watching their timeout or reporting them. Like Nova's init_host,
// abort them so each guest stays whole on this host. A post-copy migration
// left paused cannot be aborted and is not resumed here (its parameters were
// not kept): it is reported loudly and left alone.

import { JobType, type Connection } from '../libvirt/types.js';
import { heldForPostcopyResume } from '../monitor/policy.js';
import type { Logger } from '../log/logger.js';

/** virDomainJobOperation */
const JOB_OPERATION_MIGRATION_OUT = 5;
/** VIR_CONNECT_LIST_DOMAINS_ACTIVE */
const LIST_ACTIVE = 1;

export async function abortOrphanedMigrations(libvirt: Connection, log: Logger): Promise<string[]> {
  const aborted: string[] = [];
  for (const dom of await libvirt.listAllDomains(LIST_ACTIVE)) {
    try {
      if (heldForPostcopyResume(await dom.getState())) {
        log.error(
          { instance: dom.uuid, name: dom.name },
          'a post-copy migration left paused by a previous ferryd: the guest is split between the hosts; not touched, resume it by hand (virsh migrate ... --postcopy --postcopy-resume)',
        );
        continue;
      }
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
