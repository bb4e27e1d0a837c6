// Versioned notifications in Nova's shape: InstanceActionNotification with an
// InstanceActionPayload, event types `instance.<action>.start|end|error`.

import type { Logger } from '../log/logger.js';
import type { NotificationPriority, Notifier, RequestContext } from '../rpc/types.js';
import type { InstanceRef } from './objects.js';

export type MigrationAction =
  | 'live_migration_pre'
  | 'live_migration_post'
  | 'live_migration_post_dest'
  | 'live_migration_rollback'
  | 'live_migration_rollback_dest'
  | 'live_migration_abort'
  | 'live_migration_force_complete';

/** The guest's own life on one host (instance.create, .reboot, .delete, .rescue, .unrescue). */
export type GuestAction = 'create' | 'reboot' | 'delete' | 'rescue' | 'unrescue';

export type InstanceAction = MigrationAction | GuestAction;

/** Nova's task state while each action runs, and the vm state it ends in (a migration keeps the guest's). */
const STATES: Record<GuestAction, { task: string; end: string }> = {
  create: { task: 'spawning', end: 'active' },
  reboot: { task: 'reboot_started_hard', end: 'active' },
  delete: { task: 'deleting', end: 'deleted' },
  rescue: { task: 'rescuing', end: 'rescued' },
  unrescue: { task: 'unrescuing', end: 'active' },
};

function payload(instance: InstanceRef, host: string, ctx: RequestContext, fault: Error | null, action: InstanceAction, phase: 'start' | 'end' | 'error'): Record<string, unknown> {
  const states = action in STATES ? STATES[action as GuestAction] : null;
  return {
    'nova_object.name': 'InstanceActionPayload',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.9',
    'nova_object.data': {
      uuid: instance.uuid,
      display_name: instance.name,
      host,
      node: instance.node ?? host,
      state: phase === 'end' && states ? states.end : (instance.vmState ?? 'active'),
      task_state: phase === 'end' ? (states ? null : 'migrating') : (states?.task ?? 'migrating'),
      request_id: ctx.request_id,
      action_initiator_user: ctx.user_id ?? null,
      action_initiator_project: ctx.project_id ?? null,
      block_devices: instance.volumes.map((v) => ({ device_name: `/dev/${v.dev}`, volume_id: v.volumeId })),
      fault: fault ? { exception: fault.name, exception_message: fault.message } : null,
    },
  };
}

export class MigrationNotifier {
  constructor(
    private readonly notifier: Notifier,
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  send(ctx: RequestContext, action: InstanceAction, phase: 'start' | 'end', instance: InstanceRef): Promise<void> {
    return this.emit(ctx, `instance.${action}.${phase}`, payload(instance, this.host, ctx, null, action, phase), 'INFO');
  }

  /** Best effort, as in Nova: a broker hiccup must not fail a migration step. */
  private async emit(ctx: RequestContext, eventType: string, body: Record<string, unknown>, priority: NotificationPriority) {
    try {
      await this.notifier.notify(ctx, eventType, body, priority);
    } catch (err) {
      this.log.warn({ err, eventType }, 'notification not sent');
    }
  }

  /** Wraps `fn` in `.start` and `.end` (or `.error` with the fault when it throws). */
  async around<T>(ctx: RequestContext, action: InstanceAction, instance: InstanceRef, fn: () => Promise<T>): Promise<T> {
    await this.send(ctx, action, 'start', instance);
    try {
      const result = await fn();
      await this.send(ctx, action, 'end', instance);
      return result;
    } catch (err) {
      const fault = err instanceof Error ? err : new Error(String(err));
      await this.emit(ctx, `instance.${action}.error`, payload(instance, this.host, ctx, fault, action, 'error'), 'ERROR');
      throw err;
    }
  }
}
