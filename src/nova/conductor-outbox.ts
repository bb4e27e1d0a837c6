// What ferryd tells the conductor and the notification consumers, through
// one durable outbox (outbox.ts): casts and notifications are written before
// they are sent, and sent in the order they were made, across broker outages
// and restarts. The reporter and the notifier see an ordinary cast and
// notify that return once the message is on disk.

import type { Logger } from '../log/logger.js';
import { contextFromDict, contextToDict, redact } from '../rpc/context.js';
import type { NotificationPriority, Notifier, RequestContext, RpcClient, Target } from '../rpc/types.js';
import { Outbox } from './outbox.js';

export type ConductorMessage =
  | { kind: 'cast'; target: Target; method: string; args: Record<string, unknown>; context: Record<string, unknown> }
  | { kind: 'notify'; eventType: string; payload: Record<string, unknown>; priority: NotificationPriority; context: Record<string, unknown> };

export interface ConductorOutbox {
  outbox: Outbox<ConductorMessage>;
  /** Casts that go through the outbox. */
  caster: Pick<RpcClient, 'cast'>;
  /** Notifications that go through the outbox. */
  notifier: Notifier;
}

/** Contexts are kept without secrets (auth tokens): what is on disk is no credential. */
const keptContext = (ctx: RequestContext) => redact(contextToDict(ctx));

export function conductorOutbox(dir: string, rpc: RpcClient, notifier: Notifier, log: Logger): ConductorOutbox {
  const outbox = new Outbox<ConductorMessage>(
    dir,
    (m) =>
      m.kind === 'cast'
        ? // The conductor's queue is declared as it would declare it: an update waits there while the conductor is away.
          rpc.cast(contextFromDict(m.context), m.target, m.method, m.args, { declareQueue: true })
        : notifier.notify(contextFromDict(m.context), m.eventType, m.payload, m.priority),
    log.child({ component: 'outbox' }),
  );
  return {
    outbox,
    caster: {
      async cast(ctx, target, method, args) {
        outbox.push({ kind: 'cast', target, method, args, context: keptContext(ctx) });
      },
    },
    notifier: {
      async notify(ctx, eventType, payload, priority = 'INFO') {
        outbox.push({ kind: 'notify', eventType, payload, priority, context: keptContext(ctx) });
      },
    },
  };
}
