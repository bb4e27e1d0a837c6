// What the destination side needs from the outside world.

import type { FerryConfig } from '../config/index.js';
import type { HostNetwork } from '../domain/host-network.js';
import type { HostStorage } from '../domain/host-storage.js';
import type { Connection } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import type { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import type { MigrationNotifier } from '../nova/notifications.js';

export interface DestinationDeps {
  /** This host's name: the RPC server name other hosts address. */
  host: string;
  config: FerryConfig;
  libvirt: Connection;
  computeApi: ComputeRpcApi;
  notifications: MigrationNotifier;
  storage: HostStorage;
  network: HostNetwork;
  log: Logger;
  /** Told once per incoming migration this host prepared, when it ends here: arrived, or rolled back (the metrics count them). */
  onIncomingEnd?: (result: IncomingResult) => void;
}

export const INCOMING_RESULTS = ['completed', 'rolled_back'] as const;
export type IncomingResult = (typeof INCOMING_RESULTS)[number];
