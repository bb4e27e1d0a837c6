// Wires ferryd's parts: libvirt, RabbitMQ, the compute endpoint, reporting,
// metrics. Start order matters: libvirt first (nothing to serve without it),
// then the RPC server last, so no request arrives before handlers exist.

import type { Server } from 'node:http';
import { amqpOptions } from '../config/amqp.js';
import type { FerryConfig } from '../config/index.js';
import { DomainEventHub } from '../libvirt/domain-events.js';
import { formatVersion, openConnection } from '../libvirt/index.js';
import type { Connection } from '../libvirt/types.js';
import type { Logger } from '../log/logger.js';
import { FerryMetrics } from '../metrics/metrics.js';
import { observeMigrations } from '../metrics/migration-metrics.js';
import { computeEndpoint, deserializeComputeArgs } from './endpoint.js';
import { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import { DestinationHandlers } from '../destination/handlers.js';
import { HostStorage } from '../domain/host-storage.js';
import { MigrationNotifier } from '../nova/notifications.js';
import { abortOrphanedMigrations } from '../source/recovery.js';
import { MigrationRegistry } from '../record/registry.js';
import { MigrationReporter } from '../nova/reporter.js';
import { SourceHandlers } from '../source/handlers.js';
import { AmqpConnection, AmqpNotifier, AmqpRpcClient, RpcServer } from '../rpc/index.js';

export interface Daemon {
  registry: MigrationRegistry;
  metrics: FerryMetrics;
  /** Stops taking requests, waits up to graceMs for migrations to end, then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

export async function startDaemon(config: FerryConfig, log: Logger): Promise<Daemon> {
  const metrics = new FerryMetrics();
  const keepalive = { keepaliveInterval: config.libvirt.keepalive_interval, keepaliveCount: config.libvirt.keepalive_count };
  const libvirt: Connection = await openConnection(config.libvirt.connection_uri, keepalive);
  metrics.libvirtConnected.set(1);
  libvirt.onClose((reason) => {
    metrics.libvirtConnected.set(0);
    // Handles from a closed connection are dead; a supervised restart is the clean recovery.
    log.fatal({ reason, uri: config.libvirt.connection_uri }, 'libvirt connection closed; exiting for a restart');
    process.exitCode = 1;
    process.kill(process.pid, 'SIGTERM');
  });
  log.info(
    { uri: config.libvirt.connection_uri, hostname: await libvirt.getHostname(), libvirt_version: formatVersion(await libvirt.getLibVersion()) },
    'connected to libvirt',
  );
  await abortOrphanedMigrations(libvirt, log);

  const amqp = new AmqpConnection(amqpOptions(config, `ferryd:${config.host}`, log));
  await amqp.start();
  const rpc = new AmqpRpcClient({ connection: amqp, exchange: config.control_exchange, defaultTimeout: config.rpc_response_timeout, logger: log });
  await rpc.start();
  const notifier = new AmqpNotifier({ connection: amqp, host: config.host, exchange: config.control_exchange, logger: log });

  // An illegal status change is a bug: logged, not applied, and the migration carries on to its end.
  const registry = new MigrationRegistry({ onIllegalTransition: (err) => log.error({ err, migration: err.migration }, 'illegal migration status change refused') });
  observeMigrations(registry, metrics);
  new MigrationReporter(registry, rpc, config.conductor_topic, log);
  const deps = {
    host: config.host,
    config,
    libvirt,
    openRemote: (uri: string) => openConnection(uri, keepalive),
    events: new DomainEventHub(libvirt),
    computeApi: new ComputeRpcApi(rpc, { rpcResponseTimeout: config.rpc_response_timeout, longRpcTimeout: config.long_rpc_timeout }),
    notifications: new MigrationNotifier(notifier, config.host, log),
    registry,
    storage: new HostStorage(config.instances_path),
    log,
  };
  const source = new SourceHandlers(deps);
  const endpoint = computeEndpoint(source, new DestinationHandlers(deps), registry, { managementRoles: config.management_roles, serviceRoles: config.service_roles, log });
  const server = new RpcServer({
    connection: amqp,
    topics: ['compute', 'compute-alt'],
    server: config.host,
    endpoints: [endpoint],
    exchange: config.control_exchange,
    maxMessageBytes: config.max_message_bytes,
    maxInFlight: config.executor_thread_pool_size,
    deserializeArgs: deserializeComputeArgs,
    logger: log,
    onDispatch: (method, outcome) => metrics.rpcRequests.inc({ method, outcome }),
  });
  await server.start();

  let http: Server | null = null;
  if (config.metrics.port > 0) http = await metrics.serve(config.metrics.listen_address, config.metrics.port);
  log.info({ host: config.host, topics: server.queues, metrics: config.metrics.port || 'off' }, 'ferryd serving');

  return {
    registry,
    metrics,
    async stop(graceMs = 30_000) {
      // Refuse new outgoing migrations and wait for ours to end. Requests keep being
      // served meanwhile, those of migrations coming in included, but those are not waited for.
      source.drain();
      const deadline = performance.now() + graceMs;
      while (source.inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      if (source.inFlight > 0) log.warn({ running: source.inFlight }, 'stopping with migrations still running; libvirt carries on with them');
      await server.stop(Math.max(0, Math.min(deadline - performance.now(), 10_000)));
      http?.close();
      await rpc.close();
      await amqp.close();
      await libvirt.close();
    },
  };
}
