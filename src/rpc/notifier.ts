// Versioned notifications as Nova sends them (oslo messagingv2 driver).
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import type { AmqpConnection, Declaration } from '../broker/amqp-connection.js';
import { contextToDict, packContext, redact } from './context.js';
import { wrap } from './envelope.js';
import { MESSAGE_PROPERTIES, newUniqueId } from './reply.js';
import type { NotificationPriority, Notifier, RequestContext } from './types.js';

export interface NotifierOptions {
  connection: AmqpConnection;
  /** Host name; publisher_id becomes `<service>:<host>`. */
  host: string;
  /** Default 'ferry-compute'. */
  service?: string;
  /** Default 'nova'. */
  exchange?: string;
  /** Default 'versioned_notifications'. */
  topic?: string;
  durable?: boolean;
  logger?: pino.Logger;
}

export class AmqpNotifier implements Notifier {
  readonly publisherId: string;
  private readonly log: pino.Logger;
  private readonly exchange: string;
  private readonly topic: string;

  constructor(private readonly opts: NotifierOptions) {
    this.publisherId = `${opts.service ?? 'ferry-compute'}:${opts.host}`;
    this.exchange = opts.exchange ?? 'nova';
    this.topic = opts.topic ?? 'versioned_notifications';
    this.log = (opts.logger ?? pino({ level: 'warn' })).child({ component: 'notifier' });
  }

  async notify(
    ctx: RequestContext,
    eventType: string,
    payload: Record<string, unknown>,
    priority: NotificationPriority = 'INFO',
  ): Promise<void> {
    const msg: Record<string, unknown> = {
      message_id: randomUUID(),
      publisher_id: this.publisherId,
      event_type: eventType,
      priority,
      payload,
      timestamp: pythonUtcNow(),
    };
    packContext(msg, redact(contextToDict(ctx)));
    msg._unique_id = newUniqueId();
    const routingKey = `${this.topic}.${priority.toLowerCase()}`;
    await this.opts.connection.start();
    await this.opts.connection.publish(this.exchange, routingKey, wrap(msg), MESSAGE_PROPERTIES, this.declare(routingKey));
    this.log.debug({ event_type: eventType, request_id: ctx.request_id }, 'notification sent');
  }

  /** As oslo: declare the exchange and a queue named after the routing key, so nothing is lost before consumers exist. */
  private declare(routingKey: string): Declaration {
    const durable = this.opts.durable ?? false;
    return {
      key: `notify:${this.exchange}:${routingKey}`,
      fn: async (ch) => {
        await ch.assertExchange(this.exchange, 'topic', { durable, autoDelete: false });
        await ch.assertQueue(routingKey, { durable, autoDelete: false });
        await ch.bindQueue(routingKey, this.exchange, routingKey);
      },
    };
  }
}

/** Python's str(datetime.utcnow()): "YYYY-MM-DD HH:MM:SS.ffffff". */
export function pythonUtcNow(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2026-01-01T12:00:00.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${iso.slice(20, 23)}000`;
}
