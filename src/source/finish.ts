// Nova's _post_live_migration: the guest runs on the destination; finish it
// there (asked again if the call was lost), then clean this host. The source folder goes only once the
// destination showed the guest: its post_live_migration_at_destination found
// the domain, or, when that call failed, its libvirt shows it running.

import { findDomain } from '../domain/lookup.js';
import { DomainState, JobStatsFlag, type JobStats } from '../libvirt/types.js';
import { isIncomingHalf } from '../monitor/policy.js';
import { instanceArg } from '../nova/objects.js';
import type { LiveMigrateData } from '../nova/migrate-data.js';
import type { MigrationRecord } from '../record/registry.js';
import { MigrationStatus } from '../record/status.js';
import { MessagingTimeout } from '../rpc/errors.js';
import type { RequestContext } from '../rpc/types.js';
import type { SourceDeps } from './deps.js';
import type { LiveMigrationRequest } from './request.js';

/** Where the guest is on the destination, as its libvirt says. */
export type DestinationProbe =
  | { kind: 'running'; finished: JobStats | null }
  | { kind: 'arriving' }
  | { kind: 'absent'; shutOff: boolean }
  | { kind: 'unknown'; why: string };

/** Asks the destination's libvirt (at `uri`) about the guest; `finished`: its completed job's figures. */
export async function probeDestination(deps: Pick<SourceDeps, 'openRemote'>, uri: string, uuid: string): Promise<DestinationProbe> {
  try {
    const remote = await deps.openRemote(uri);
    try {
      const there = await findDomain(remote, uuid);
      const state = there ? await there.getState() : null;
      if (!there || !state || state.state === DomainState.SHUTOFF) return { kind: 'absent', shutOff: state !== null };
      if (isIncomingHalf(state)) return { kind: 'arriving' };
      return { kind: 'running', finished: await there.getJobStats(JobStatsFlag.COMPLETED).catch(() => null) };
    } finally {
      await remote.close().catch(() => {});
    }
  } catch (err) {
    return { kind: 'unknown', why: (err as Error).message };
  }
}

/** Attempts at post_live_migration_at_destination when the call itself was lost, and the pause between them. */
export const POST_LIVE_ATTEMPTS = 3;
export const POST_LIVE_RETRY_MS = 5_000;

/**
 * The destination's post_live_migration_at_destination, asked again when no
 * answer came in time (the request or its reply lost with a broker that went
 * away; publishes wait for the reconnection, answers do not): the
 * destination's step only confirms the arrival and forgets its preparation,
 * so a second one does no harm, and without it the destination keeps the
 * preparation until its next start. An answer, even a refusal, is final.
 */
export async function postLiveAtDestination(call: () => Promise<unknown>, onRetry: (err: unknown, attempt: number) => void, pauseMs = POST_LIVE_RETRY_MS): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await call();
      return;
    } catch (err) {
      if (!(err instanceof MessagingTimeout) || attempt >= POST_LIVE_ATTEMPTS) throw err;
      onRetry(err, attempt);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
}

export async function finishMigration(
  deps: Pick<SourceDeps, 'computeApi' | 'storage' | 'registry' | 'notifications' | 'log' | 'openRemote'>,
  ctx: RequestContext,
  record: MigrationRecord,
  req: LiveMigrationRequest,
  prepared: LiveMigrateData,
  destUri: string,
): Promise<void> {
  const { computeApi, storage, registry, notifications, log } = deps;
  let keptWhy: string | null = null;
  await notifications.around(ctx, 'live_migration_post', req.instance, async () => {
    try {
      await postLiveAtDestination(() => computeApi.postLiveMigrationAtDestination(ctx, req.dest, instanceArg(req.instance), prepared.block_migration ?? false), (err, attempt) =>
        log.warn({ err, attempt }, 'post_live_migration_at_destination not answered; asking again'),
      );
    } catch (err) {
      // Not rolled back either way: the guest left this host. Whether it runs there decides the folder.
      log.error({ err }, 'post_live_migration_at_destination failed');
      const there = await probeDestination(deps, destUri, req.instance.uuid);
      if (there.kind !== 'running') keptWhy = there.kind === 'unknown' ? `${req.dest}'s libvirt cannot say where the guest is (${there.why})` : `${req.dest} does not show the guest running (${there.kind})`;
    }
    if (prepared.is_shared_instance_path) return;
    if (keptWhy) log.error({ why: keptWhy }, 'the source instance folder is kept');
    else await storage.removeInstanceDir(req.instance.uuid);
  });
  if (keptWhy) registry.update(record, { status: MigrationStatus.error, error: `${record.error ? `${record.error}; ` : ''}the guest left this host but ${keptWhy}; its folder here is kept` });
  else registry.update(record, { status: MigrationStatus.completed });
}
