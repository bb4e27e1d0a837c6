// Prometheus metrics. One registry per daemon; migration-metrics.ts feeds it
// from migration registry events, so the migration code never touches metrics.

import { createServer, type Server } from 'node:http';
import type { Health } from './health.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class FerryMetrics {
  readonly registry = new Registry();

  readonly migrationsStarted = new Counter({
    name: 'ferry_migrations_started_total',
    help: 'Outgoing live migrations accepted by this host',
    registers: [this.registry],
  });
  readonly incomingFinished = new Counter({
    name: 'ferry_incoming_migrations_total',
    help: 'Incoming live migrations this host prepared as the destination, by how they ended here: completed (the guest arrived) or rolled_back',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly migrationsFinished = new Counter({
    name: 'ferry_migrations_finished_total',
    help: 'Outgoing live migrations that ended, by final status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly migrationsInProgress = new Gauge({
    name: 'ferry_migrations_in_progress',
    help: 'Outgoing live migrations by current status (queued, preparing, running, running (post-copy), post-copy paused)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly migrationDuration = new Histogram({
    name: 'ferry_migration_duration_seconds',
    help: 'Time from accepted to final status',
    labelNames: ['status'] as const,
    buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  readonly migrationDowntime = new Histogram({
    name: 'ferry_migration_downtime_seconds',
    help: 'Guest downtime of completed migrations as reported by libvirt',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });
  readonly migrationDataBytes = new Counter({
    name: 'ferry_migration_data_processed_bytes_total',
    help: 'Memory and disk bytes sent by finished migrations',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly migrationRemaining = new Gauge({
    name: 'ferry_migration_remaining_bytes',
    help: 'Bytes left to transfer per running migration',
    labelNames: ['migration', 'instance_uuid', 'kind'] as const,
    registers: [this.registry],
  });
  readonly migrationProcessed = new Gauge({
    name: 'ferry_migration_processed_bytes',
    help: 'Bytes sent so far per running migration',
    labelNames: ['migration', 'instance_uuid', 'kind'] as const,
    registers: [this.registry],
  });
  readonly migrationTotal = new Gauge({
    name: 'ferry_migration_total_bytes',
    help: 'Bytes to send in all per running migration (memory: the guest RAM; disk: the copied disks)',
    labelNames: ['migration', 'instance_uuid', 'kind'] as const,
    registers: [this.registry],
  });
  readonly migrationIteration = new Gauge({
    name: 'ferry_migration_iteration',
    help: 'Memory pass of each running migration (1: the bulk pass)',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationMaxDowntime = new Gauge({
    name: 'ferry_migration_max_downtime_seconds',
    help: 'Downtime each running migration is allowed now',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationElapsed = new Gauge({
    name: 'ferry_migration_elapsed_seconds',
    help: 'Seconds since each running migration started its transfer',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationStatus = new Gauge({
    name: 'ferry_migration_status',
    help: '1 for the status each migration under way is in',
    labelNames: ['migration', 'instance_uuid', 'status'] as const,
    registers: [this.registry],
  });
  readonly migrationDirtyRate = new Gauge({
    name: 'ferry_migration_dirty_rate_bytes_per_second',
    help: 'Guest memory dirty rate per running migration',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationBandwidth = new Gauge({
    name: 'ferry_migration_bandwidth_bytes_per_second',
    help: 'Smoothed transfer rate per running migration (the convergence model)',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationImpliedDowntime = new Gauge({
    name: 'ferry_migration_implied_downtime_seconds',
    help: 'Downtime a switch-over would take now, per running migration (the convergence model)',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationEta = new Gauge({
    name: 'ferry_migration_eta_seconds',
    help: 'Predicted seconds to completion per running migration; absent when the model cannot say or pre-copy alone will not end it',
    labelNames: ['migration', 'instance_uuid'] as const,
    registers: [this.registry],
  });
  readonly migrationVerdict = new Gauge({
    name: 'ferry_migration_convergence_verdict',
    help: "1 for a running migration's current verdict (converging, stalled, throttling, will_not_converge), 0 for the others",
    labelNames: ['migration', 'instance_uuid', 'verdict'] as const,
    registers: [this.registry],
  });
  readonly monitorActions = new Counter({
    name: 'ferry_migration_actions_total',
    help: 'Actions taken on running migrations (set_downtime, abort, start_postcopy, pause, postcopy_resume; abort_failed etc. once the timeout gave up)',
    labelNames: ['action', 'reason'] as const,
    registers: [this.registry],
  });
  readonly rpcRequests = new Counter({
    name: 'ferry_rpc_requests_total',
    help: 'RPC requests dispatched, by method and outcome',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly rpcDuration = new Histogram({
    name: 'ferry_rpc_request_duration_seconds',
    help: 'Time each RPC method took to run, by method',
    labelNames: ['method'] as const,
    buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly amqpReconnects = new Counter({
    name: 'ferry_amqp_reconnects_total',
    help: 'Reconnections to RabbitMQ after a lost connection',
    registers: [this.registry],
  });
  readonly libvirtConnected = new Gauge({
    name: 'ferry_libvirt_connected',
    help: '1 while the libvirt connection is open',
    registers: [this.registry],
  });

  constructor() {
    // The event-loop delay histogram samples every 100 ms, not prom-client's 10: a 10 ms timer alone kept an idle ferryd at ~0.65 % of a core.
    collectDefaultMetrics({ register: this.registry, prefix: 'ferry_', eventLoopMonitoringPrecision: 100 });
  }

  /** Serves /metrics and, given `health`, /healthz (200, or 503 naming what is wrong); resolves once listening. */
  async serve(host: string, port: number, health?: Health): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/healthz' && health) {
        const { healthy, problems } = health.status();
        res.writeHead(healthy ? 200 : 503, { 'Content-Type': 'application/json' }).end(`${JSON.stringify({ status: healthy ? 'ok' : 'unhealthy', problems })}\n`);
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
