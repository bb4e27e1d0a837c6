// Fans libvirt's connection-wide domain events out per domain UUID, so each
// running migration listens only to its own guest.

import { EventEmitter } from 'node:events';
import type { Connection, JobCompletedEventData, LifecycleEventData } from './types.js';

interface DomainEventMap {
  lifecycle: LifecycleEventData;
  jobCompleted: JobCompletedEventData;
}

export type DomainEventName = keyof DomainEventMap;

export class DomainEventHub {
  private readonly emitter = new EventEmitter();

  constructor(conn: Connection) {
    this.emitter.setMaxListeners(0);
    conn.onLifecycle((e) => this.emitter.emit(`lifecycle:${e.uuid}`, e));
    conn.onJobCompleted((e) => this.emitter.emit(`jobCompleted:${e.uuid}`, e));
  }

  /** Subscribes to one domain's events; returns the unsubscribe function. */
  on<K extends DomainEventName>(uuid: string, name: K, listener: (e: DomainEventMap[K]) => void): () => void {
    const key = `${name}:${uuid}`;
    this.emitter.on(key, listener);
    return () => this.emitter.off(key, listener);
  }
}
