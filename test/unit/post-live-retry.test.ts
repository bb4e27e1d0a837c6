// post_live_migration_at_destination is asked again only when no answer came.
import { describe, expect, it } from 'vitest';
import { InstanceNotFound } from '../../src/nova/errors.js';
import { MessagingTimeout } from '../../src/rpc/errors.js';
import { POST_LIVE_ATTEMPTS, postLiveAtDestination } from '../../src/source/finish.js';

/** A call failing with `errors` in turn, then answering. */
function scripted(errors: Error[]) {
  const calls: number[] = [];
  return {
    calls,
    call: async () => {
      calls.push(calls.length + 1);
      const err = errors.shift();
      if (err) throw err;
      return null;
    },
  };
}

describe('postLiveAtDestination', () => {
  it('asks again after a timeout, until it is answered', async () => {
    const s = scripted([new MessagingTimeout('Timed out waiting for a reply'), new MessagingTimeout('again')]);
    const retried: number[] = [];
    await postLiveAtDestination(s.call, (_e, attempt) => retried.push(attempt), 0);
    expect(s.calls).toEqual([1, 2, 3]);
    expect(retried).toEqual([1, 2]);
  });
  it('an answer, even a refusal, is final', async () => {
    const s = scripted([new InstanceNotFound('u')]);
    await expect(postLiveAtDestination(s.call, () => {}, 0)).rejects.toBeInstanceOf(InstanceNotFound);
    expect(s.calls).toEqual([1]);
  });
  it(`gives up after ${POST_LIVE_ATTEMPTS} timeouts, with the last one`, async () => {
    const s = scripted(Array.from({ length: POST_LIVE_ATTEMPTS + 1 }, (_, i) => new MessagingTimeout(`timeout ${i + 1}`)));
    await expect(postLiveAtDestination(s.call, () => {}, 0)).rejects.toThrow(`timeout ${POST_LIVE_ATTEMPTS}`);
    expect(s.calls).toHaveLength(POST_LIVE_ATTEMPTS);
  });
});
