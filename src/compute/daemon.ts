// Wires ferryd's parts: libvirt, RabbitMQ, the compute endpoint, reporting,
// metrics. Start order matters: libvirt first (nothing to serve without it),
// then the records and the outbox kept in state_path, then the migrations an
// earlier ferryd left are carried on, and the RPC server last, so no request
// arrives before handlers (and the carried-on migrations) exist.

import type { Server } from 'node:http';
import { join } from 'node:path';
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
import { INCOMING_RESULTS, type IncomingResult } from '../destination/deps.js';
import { HostNetwork } from '../domain/host-network.js';
import { ImageCache } from '../instance/images.js';
import { InstanceHandlers } from '../instance/handlers.js';
import { SerialConsolePorts } from '../nova/serial-console.js';
import { HostStorage } from '../domain/host-storage.js';
import { MigrationNotifier } from '../nova/notifications.js';
import { conductorOutbox } from '../nova/conductor-outbox.js';
import { MigrationRegistry } from '../record/registry.js';
import { FileRecordStore } from '../record/store.js';
import { MigrationReporter } from '../nova/reporter.js';
import { SourceHandlers } from '../source/handlers.js';
import { logStatusChanges } from './status-log.js';
import { AmqpConnection, AmqpNotifier, AmqpRpcClient, RpcServer } from '../rpc/index.js';
import { Health } from '../metrics/health.js';

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
  let libvirtLost = false;
  libvirt.onClose((reason) => {
    metrics.libvirtConnected.set(0);
    libvirtLost = true;
    // Handles from a closed connection are dead; a supervised restart is the clean recovery.
    log.fatal({ reason, uri: config.libvirt.connection_uri }, 'libvirt connection closed; exiting for a restart');
    process.exitCode = 1;
    process.kill(process.pid, 'SIGTERM');
  });
  log.info(
    { uri: config.libvirt.connection_uri, hostname: await libvirt.getHostname(), libvirt_version: formatVersion(await libvirt.getLibVersion()) },
    'connected to libvirt',
  );

  const amqp = new AmqpConnection(amqpOptions(config, `ferryd:${config.host}`, log));
  amqp.on('reconnected', () => metrics.amqpReconnects.inc());
  await amqp.start();
  const rpc = new AmqpRpcClient({ connection: amqp, exchange: config.control_exchange, defaultTimeout: config.rpc_response_timeout, logger: log });
  await rpc.start();
  const notifier = new AmqpNotifier({ connection: amqp, host: config.host, exchange: config.control_exchange, logger: log });
  const conductor = conductorOutbox(join(config.state_path, 'outbox'), rpc, notifier, log);

  const registry = new MigrationRegistry({
    store: new FileRecordStore(join(config.state_path, 'migrations'), log),
    keepFinishedMs: config.finished_migration_keep_seconds * 1000,
    // An illegal status change is a bug: logged, not applied, and the migration carries on to its end.
    onIllegalTransition: (err) => log.error({ err, migration: err.migration }, 'illegal migration status change refused'),
  });
  observeMigrations(registry, metrics);
  // From 0, as the finished totals: the first incoming migration's end must show as an increase.
  for (const result of INCOMING_RESULTS) metrics.incomingFinished.inc({ result }, 0);
  logStatusChanges(registry, log);
  new MigrationReporter(registry, conductor.caster, config.conductor_topic, log);
  const deps = {
    host: config.host,
    config,
    libvirt,
    openRemote: (uri: string) => openConnection(uri, keepalive),
    events: new DomainEventHub(libvirt),
    computeApi: new ComputeRpcApi(rpc, { rpcResponseTimeout: config.rpc_response_timeout, longRpcTimeout: config.long_rpc_timeout }),
    notifications: new MigrationNotifier(conductor.notifier, config.host, log),
    registry,
    storage: new HostStorage(config.instances_path),
    network: new HostNetwork(),
    serialPorts: SerialConsolePorts.fromConfig(libvirt, config),
    log,
    onIncomingEnd: (result: IncomingResult) => metrics.incomingFinished.inc({ result }),
  };
  const source = new SourceHandlers(deps);
  const destination = new DestinationHandlers(deps);
  const instances = new InstanceHandlers({ ...deps, images: new ImageCache(config.image_cache_path) });
  conductor.outbox.start();
  await source.reconcile();
  const endpoint = computeEndpoint(source, destination, instances, registry, { managementRoles: config.management_roles, serviceRoles: config.service_roles, log });
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
    onDispatch: (method, outcome, seconds) => {
      metrics.rpcRequests.inc({ method, outcome });
      metrics.rpcDuration.observe({ method }, seconds);
    },
  });
  await server.start();
  // Asks the source hosts over RPC: after the server, so two hosts restarted together can answer each other.
  void destination.reconcile().catch((err: unknown) => log.error({ err }, 'incoming migrations not reconciled'));

  let http: Server | null = null;
  const health = new Health({ amqpConnected: () => amqp.connected, libvirtConnected: () => libvirt.isAlive() });
  if (config.metrics.port > 0) http = await metrics.serve(config.metrics.listen_address, config.metrics.port, health);
  log.info({ host: config.host, topics: server.queues, metrics: config.metrics.port || 'off' }, 'ferryd serving');

  return {
    registry,
    metrics,
    async stop(graceMs = libvirtLost ? 0 : config.shutdown_grace_seconds * 1000) {
      // Without libvirt there is nothing to drain for: a migration under way cannot be helped or watched from here.
      // Refuse new outgoing migrations and wait for those going out and coming in to end.
      // Requests keep being served meanwhile: the migrations under way need them.
      source.drain();
      destination.stop();
      const deadline = performance.now() + graceMs;
      const running = () => source.inFlight + destination.inFlight;
      while (running() > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      if (running() > 0) log.warn({ outgoing: source.inFlight, incoming: destination.inFlight }, 'stopping with migrations under way; libvirt carries on with them and the next start reconciles');
      await server.stop(Math.max(0, Math.min(deadline - performance.now(), 10_000)));
      // What the conductor has not heard yet goes now, or with the next start.
      await conductor.outbox.stop(5_000);
      http?.close();
      health.stop();
      await rpc.close();
      await amqp.close();
      await libvirt.close();
    },
  };
}
