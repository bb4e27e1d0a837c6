// What the source side needs from the outside world, in one place so the
// daemon wires real parts and unit tests wire fakes.

import type { FerryConfig } from '../config/index.js';
import type { HostStorage } from '../domain/host-storage.js';
import type { DomainEventHub } from '../libvirt/domain-events.js';
import type { Connection } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import type { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import type { MigrationNotifier } from '../nova/notifications.js';
import type { MigrationRegistry } from '../record/registry.js';

export interface SourceDeps {
  /** This host's name: the RPC server name other hosts address. */
  host: string;
  config: FerryConfig;
  libvirt: Connection;
  /** A connection to another host's libvirtd (the destination's, to upload read-only disks). */
  openRemote(uri: string): Promise<Connection>;
  events: DomainEventHub;
  computeApi: ComputeRpcApi;
  notifications: MigrationNotifier;
  registry: MigrationRegistry;
  storage: HostStorage;
  log: Logger;
}
