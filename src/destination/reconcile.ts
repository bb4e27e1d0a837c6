// At start, and again until each is settled, the incoming migrations a
// previous ferryd prepared (preparations.ts) are looked at: a guest that
// arrived is finished; one that never did is rolled back once its source
// says the migration ended, or after `incoming_migration_grace_seconds` when
// the source cannot be asked. Rolled back means what rollback.ts allows:
// only a paused, never-run incoming half and a folder made here.

import { randomUUID } from 'node:crypto';
import { findDomain } from '../domain/lookup.js';
import { DomainState, type DomainStateInfo } from '../libvirt/types.js';
import { requestLogger } from '../log/logger.js';
import { isIncomingHalf } from '../monitor/policy.js';
import type { MigrationView } from '../nova/migration-view.js';
import { readInstance } from '../nova/objects.js';
import { isFinal, MigrationStatus } from '../record/status.js';
import type { RequestContext } from '../rpc/types.js';
import type { DestinationDeps } from './deps.js';
import type { Preparation, Preparations } from './preparations.js';
import { rollbackLiveMigrationAtDestination } from './rollback.js';

/** What the source host says of the migration: still under way, ended (how), or nothing (unreachable, or it knows none). */
export type SourceWord = { kind: 'under_way' } | { kind: 'ended'; status: MigrationStatus } | { kind: 'silent'; why: string };

export type IncomingVerdict = { kind: 'arrived' } | { kind: 'roll_back'; why: string } | { kind: 'wait'; why: string } | { kind: 'keep'; why: string };

/**
 * What to do with a preparation found here. `here` is the guest's domain
 * state on this host (null: no domain).
 *
 *   incomingVerdict({ state: RUNNING }, anything, ...)                        // arrived
 *   incomingVerdict(null, { kind: 'ended', status: 'failed' }, ...)           // roll_back
 *   incomingVerdict(null, { kind: 'silent' }, 100, 900)                        // wait
 *   incomingVerdict(null, { kind: 'silent' }, 1000, 900)                       // roll_back
 *   incomingVerdict(null, { kind: 'ended', status: 'completed' }, ...)         // keep: the source thinks it left, it is not here
 */
export function incomingVerdict(here: DomainStateInfo | null, source: SourceWord, ageSeconds: number, graceSeconds: number): IncomingVerdict {
  if (here !== null && here.state !== DomainState.SHUTOFF && !isIncomingHalf(here)) return { kind: 'arrived' };
  switch (source.kind) {
    case 'under_way':
      return { kind: 'wait', why: 'the source says the migration is under way' };
    case 'ended':
      if (source.status === MigrationStatus.failed || source.status === MigrationStatus.cancelled) {
        return { kind: 'roll_back', why: `the source says the migration ended ${source.status}` };
      }
      // Completed there but not running here, or an error: the folder may hold the only copy of the guest's disks.
      return { kind: 'keep', why: `the source says the migration ended ${source.status} and the guest does not run here; kept for an operator` };
    case 'silent':
      if (ageSeconds >= graceSeconds) return { kind: 'roll_back', why: `the source cannot say (${source.why}) and the preparation is ${Math.round(ageSeconds)} s old` };
      return { kind: 'wait', why: `the source cannot say yet (${source.why})` };
  }
}

/** The source's word on the newest migration of the instance to this host. */
export function sourceWord(views: readonly MigrationView[], host: string): SourceWord {
  const ours = views.filter((v) => v.dest_compute === host).sort((a, b) => a.created_at.localeCompare(b.created_at));
  const last = ours.at(-1);
  if (!last) return { kind: 'silent', why: 'it has no record of a migration to this host' };
  return isFinal(last.status) ? { kind: 'ended', status: last.status } : { kind: 'under_way' };
}

/** Looks at each preparation once; returns how many are still undecided. */
export async function reconcileIncoming(deps: DestinationDeps, preparations: Preparations): Promise<number> {
  let undecided = 0;
  for (const p of preparations.list()) {
    try {
      if (!(await settle(deps, preparations, p))) undecided += 1;
    } catch (err) {
      undecided += 1;
      deps.log.error({ err, instance: p.instanceUuid }, 'cannot settle an incoming migration left by an earlier ferryd; trying again later');
    }
  }
  return undecided;
}

async function settle(hostDeps: DestinationDeps, preparations: Preparations, p: Preparation): Promise<boolean> {
  const ctx = serviceContext(hostDeps.config.service_roles);
  const deps = { ...hostDeps, log: requestLogger(hostDeps.log, { instance: p.instanceUuid, requestId: ctx.request_id }) };
  const { log, config } = deps;
  const dom = await findDomain(deps.libvirt, p.instanceUuid);
  const here = dom ? await dom.getState() : null;
  const source = p.source ? await askSource(deps, ctx, p.source, p.instanceUuid) : { kind: 'silent' as const, why: 'its name was not kept' };
  const verdict = incomingVerdict(here, source, (Date.now() - Date.parse(p.at)) / 1000, config.incoming_migration_grace_seconds);
  const at = { source: p.source, verdict: verdict.kind, why: 'why' in verdict ? verdict.why : undefined };
  switch (verdict.kind) {
    case 'arrived':
      log.info(at, 'incoming migration: the guest arrived while ferryd was down; finished');
      if (preparations.forget(p.instanceUuid)) deps.onIncomingEnd?.('completed');
      return true;
    case 'roll_back':
      log.warn(at, 'incoming migration never arrived: rolling back what this host prepared');
      await rollbackLiveMigrationAtDestination(deps, preparations, ctx, readInstance({ uuid: p.instanceUuid }));
      return true;
    case 'keep':
      log.error(at, 'incoming migration left as it is');
      return true;
    case 'wait':
      log.info(at, 'incoming migration not settled yet');
      return false;
  }
}

async function askSource(deps: DestinationDeps, ctx: RequestContext, source: string, instanceUuid: string): Promise<SourceWord> {
  try {
    return sourceWord(await deps.computeApi.listMigrations(ctx, source, instanceUuid), deps.host);
  } catch (err) {
    return { kind: 'silent', why: (err as Error).message };
  }
}

function serviceContext(roles: readonly string[]): RequestContext {
  return { request_id: `req-${randomUUID()}`, roles: [...roles], is_admin: false, raw: {} };
}
