// Builds and sends replies (results, failures, call-monitor heartbeats) to a caller's reply queue.
import { randomUUID } from 'node:crypto';
import type { Options } from 'amqplib';
import type { AmqpConnection } from '../broker/amqp-connection.js';
import { wrap } from './envelope.js';
import { serializeFailure } from './failure.js';

/** kombu's default properties for every message oslo sends. */
export const MESSAGE_PROPERTIES: Options.Publish = {
  contentType: 'application/json',
  contentEncoding: 'utf-8',
  deliveryMode: 2,
};

export interface ReplyAddress {
  replyQ: string;
  msgId: string;
}

export function newUniqueId(): string {
  return randomUUID().replace(/-/g, '');
}

export function encodeReply(msgId: string, result: unknown, failure: unknown, ending: boolean): Buffer {
  return wrap({
    result: result === undefined ? null : result,
    failure: failure === null ? null : serializeFailure(failure),
    ending,
    _msg_id: msgId,
    _unique_id: newUniqueId(),
  });
}

/** Publishes to the default exchange with mandatory set, as oslo's direct_send. */
export function sendReply(conn: AmqpConnection, to: ReplyAddress, body: Buffer): Promise<void> {
  return conn.publish('', to.replyQ, body, { ...MESSAGE_PROPERTIES, mandatory: true });
}
