// Nova exceptions ferry raises over RPC. Class names and the module match
// nova.exception so an oslo client rebuilds them as the real Nova classes.
import { RpcError } from '../rpc/errors.js';

const NOVA = 'nova.exception';

abstract class NovaError extends RpcError {
  constructor(className: string, message: string, kwargs: Record<string, unknown> = {}) {
    super(className, NOVA, message, kwargs);
  }
}

/** Nova's message, led by the argument that carried the name (ferry's addition). */
export class InvalidHostname extends NovaError {
  constructor(hostname: string, argument: string) {
    super('InvalidHostname', `${argument}: Invalid characters in hostname '${hostname}'`, { hostname });
  }
}

export class InstanceNotFound extends NovaError {
  constructor(instanceId: string) {
    super('InstanceNotFound', `Instance ${instanceId} could not be found.`, { instance_id: instanceId });
  }
}

export class MigrationNotFound extends NovaError {
  constructor(migrationId: number | string) {
    super('MigrationNotFound', `Migration ${migrationId} could not be found.`, { migration_id: migrationId });
  }
}

export class InvalidMigrationState extends NovaError {
  constructor(migrationId: number | string, instanceUuid: string, state: string, method: string) {
    super(
      'InvalidMigrationState',
      `Migration ${migrationId} state of instance ${instanceUuid} is ${state}. Cannot ${method} while the migration is in this state.`,
      { migration_id: migrationId, instance_uuid: instanceUuid, state, method },
    );
  }
}

export class MigrationPreCheckError extends NovaError {
  constructor(reason: string) {
    super('MigrationPreCheckError', `Migration pre-check error: ${reason}`, { reason });
  }
}

/** The refusal naming the host, source or destination, that cannot live-migrate a rescued instance. */
export function rescuedNotMigratable(side: 'source' | 'destination', host: string): MigrationPreCheckError {
  return new MigrationPreCheckError(`${side} host ${host} does not support live migration of rescued instances (supports_live_migrate_rescued)`);
}

export class InvalidSharedStorage extends NovaError {
  constructor(path: string, reason: string) {
    super('InvalidSharedStorage', `${path} is not on shared storage: ${reason}`, { path, reason });
  }
}

export class InvalidLocalStorage extends NovaError {
  constructor(path: string, reason: string) {
    super('InvalidLocalStorage', `${path} is not on local storage: ${reason}`, { path, reason });
  }
}

export class DestinationDiskExists extends NovaError {
  constructor(path: string) {
    super(
      'DestinationDiskExists',
      `The supplied disk path (${path}) already exists, it is expected not to exist.`,
      { path },
    );
  }
}

export class LiveMigrationNotSubmitted extends NovaError {
  constructor(migrationUuid: string, instanceUuid: string) {
    super(
      'LiveMigrationNotSubmitted',
      `Failed to submit live migration ${migrationUuid} for instance ${instanceUuid} for processing.`,
      { migration_uuid: migrationUuid, instance_uuid: instanceUuid },
    );
  }
}

export class MigrationError extends NovaError {
  constructor(reason: string) {
    super('MigrationError', `Migration error: ${reason}`, { reason });
  }
}

/** Nova's Forbidden subclass for policy failures, sent as PolicyNotAuthorized. */
export class Forbidden extends NovaError {
  constructor(action: string) {
    super('PolicyNotAuthorized', `Policy doesn't allow ${action} to be performed.`, { action });
  }
}

export class InvalidInput extends NovaError {
  constructor(reason: string) {
    super('InvalidInput', `Invalid input received: ${reason}`, { reason });
  }
}

export class NoActiveMigrationForInstance extends NovaError {
  constructor(instanceId: string) {
    super('NoActiveMigrationForInstance', `Active live migration for instance ${instanceId} not found`, {
      instance_id: instanceId,
    });
  }
}

export class ImageNotFound extends NovaError {
  constructor(imageId: string) {
    super('ImageNotFound', `Image ${imageId} could not be found.`, { image_id: imageId });
  }
}

export class InstanceExists extends NovaError {
  constructor(name: string) {
    super('InstanceExists', `Instance ${name} already exists.`, { name });
  }
}

export class InstanceInvalidState extends NovaError {
  constructor(instanceUuid: string, attr: string, state: string, method: string) {
    super('InstanceInvalidState', `Instance ${instanceUuid} in ${attr} ${state}. Cannot ${method} while the instance is in this state.`, {
      instance_uuid: instanceUuid,
      attr,
      state,
      method,
    });
  }
}

export class InstanceNotRescuable extends NovaError {
  constructor(instanceId: string, reason: string) {
    super('InstanceNotRescuable', `Instance ${instanceId} cannot be rescued: ${reason}`, { instance_id: instanceId, reason });
  }
}

/** No free serial console port (Nova's serial_console.acquire_port); the range is ferry's addition. */
export class SocketPortRangeExhaustedException extends NovaError {
  constructor(host: string, range: string) {
    super('SocketPortRangeExhaustedException', `Not able to acquire a free port for ${host} (serial_console.port_range ${range})`, { host });
  }
}
