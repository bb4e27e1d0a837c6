import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { DomainState, JobType, PausedReason } from '../../src/libvirt/types.js';
import { abortOrphanedMigrations } from '../../src/source/recovery.js';
import { FakeConnection, guestXml } from './fakes/libvirt.js';

describe('start-up recovery', () => {
  it('aborts only outgoing migrations nobody monitors, never a post-copy one left paused', async () => {
    const conn = new FakeConnection('host-a');
    const add = (uuid: string, stats: { type: JobType; operation?: number }) => {
      const d = conn.addDomain(uuid, `g-${uuid}`, guestXml({ uuid, name: `g-${uuid}` }));
      d.jobStatsScript = [stats];
      // The fake aborts only jobs it runs itself; here the job is left over from another process.
      return vi.spyOn(d, 'abortJob').mockResolvedValue();
    };
    const outgoing = add('11111111-1111-1111-1111-111111111111', { type: JobType.UNBOUNDED, operation: 5 });
    const incoming = add('22222222-2222-2222-2222-222222222222', { type: JobType.UNBOUNDED, operation: 4 });
    const idle = add('33333333-3333-3333-3333-333333333333', { type: JobType.NONE });
    // A post-copy migration left paused: still an outgoing job, but aborting it would throw half the guest away.
    const splitUuid = '44444444-4444-4444-4444-444444444444';
    const split = add(splitUuid, { type: JobType.UNBOUNDED, operation: 5 });
    Object.assign(conn.domains.get(splitUuid)!, { state: DomainState.PAUSED, reason: PausedReason.POSTCOPY_FAILED });
    const lines: string[] = [];
    const log = pino({ level: 'error' }, { write: (l: string) => lines.push(l) });

    const aborted = await abortOrphanedMigrations(conn, log);

    expect(aborted).toEqual(['11111111-1111-1111-1111-111111111111']);
    expect(outgoing).toHaveBeenCalledOnce();
    expect(incoming).not.toHaveBeenCalled();
    expect(idle).not.toHaveBeenCalled();
    expect(split).not.toHaveBeenCalled();
    expect(lines.join('')).toContain(splitUuid);
  });
});
