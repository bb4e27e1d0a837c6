// What the destination side needs from the outside world.

import type { FerryConfig } from '../config/index.js';
import type { HostNetwork } from '../domain/host-network.js';
import type { HostStorage } from '../domain/host-storage.js';
import type { Connection } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import type { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import type { MigrationNotifier } from '../nova/notifications.js';
import type { SerialConsolePorts } from '../nova/serial-console.js';

export interface DestinationDeps {
  /** This host's name: the RPC server name other hosts address. */
  host: string;
  config: FerryConfig;
  libvirt: Connection;
  computeApi: ComputeRpcApi;
  notifications: MigrationNotifier;
  storage: HostStorage;
  network: HostNetwork;
  /** The host's serial console ports: an incoming guest's are held from pre_live_migration until it arrived or was rolled back. */
  serialPorts: SerialConsolePorts;
  log: Logger;
  /** Told once per incoming migration this host prepared, when it ends here: arrived, or rolled back (the metrics count them). */
  onIncomingEnd?: (result: IncomingResult) => void;
}

export const INCOMING_RESULTS = ['completed', 'rolled_back'] as const;
export type IncomingResult = (typeof INCOMING_RESULTS)[number];
