// A small conductor for tests and the demo: drives ferryd agents with the
// compute RPC API, consumes their `migration_update` casts on the conductor
// topic (dropping a repeat of a seq it has seen, as the README tells a
// conductor to) and records versioned notifications.

import { z } from 'zod';
import { operatorContext, startLiveMigration, type StartMigrationRequest, type StartedMigration } from '../../src/cli/conductor.js';
import { silentLogger } from '../../src/log/logger.js';
import { ComputeRpcApi } from '../../src/nova/compute-rpcapi.js';
import type { MigrationView } from '../../src/nova/migration-view.js';
import { AmqpConnection, AmqpRpcClient, RpcServer, unwrap } from '../../src/rpc/index.js';
import { isPlainObject, rpcMethod } from '../../src/rpc/args.js';

export interface Notification {
  event_type: string;
  publisher_id: string;
  priority: string;
  payload: Record<string, unknown>;
}

const FINAL = new Set(['completed', 'failed', 'cancelled', 'error']);

export class TestConductor {
  readonly updates: MigrationView[] = [];
  /** Updates dropped because their migration's seq was seen before (at-least-once delivery). */
  duplicates = 0;
  /** Updates whose seq was not above the last one seen for the migration (out of order). */
  outOfOrder = 0;
  private readonly lastSeq = new Map<string, number>();
  private readonly seenSeqs = new Map<string, Set<number>>();
  readonly notifications: Notification[] = [];
  readonly api: ComputeRpcApi;
  readonly ctx = operatorContext();
  private readonly listeners = new Set<() => void>();

  private constructor(
    private readonly connection: AmqpConnection,
    private readonly rpc: AmqpRpcClient,
    private readonly server: RpcServer,
  ) {
    this.api = new ComputeRpcApi(rpc, { rpcResponseTimeout: 60, longRpcTimeout: 1800 });
  }

  static async start(transportUrl: string, exchange: string): Promise<TestConductor> {
    const connection = new AmqpConnection({ transportUrl, connectionName: 'test-conductor', logger: silentLogger });
    await connection.start();
    const rpc = new AmqpRpcClient({ connection, exchange, logger: silentLogger });
    await rpc.start();
    let self: TestConductor | null = null;
    const server = new RpcServer({
      connection,
      topics: ['conductor'],
      server: 'test-conductor',
      exchange,
      logger: silentLogger,
      endpoints: [
        {
          version: '1.0',
          methods: {
            // ferryd's own view, recorded as sent.
            migration_update: rpcMethod(z.looseObject({ migration: z.custom<MigrationView>(isPlainObject), seq: z.int().positive() }), async (_ctx, args) => {
              self?.record(args.migration, args.seq);
              return null;
            }),
          },
        },
      ],
    });
    await server.start();
    const conductor = new TestConductor(connection, rpc, server);
    self = conductor;
    // Notifications go to the control exchange; a private queue sees them all.
    await connection.addSetup(async (ch) => {
      await ch.assertExchange(exchange, 'topic', { durable: false });
      const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
      await ch.bindQueue(queue, exchange, 'versioned_notifications.*');
      await ch.consume(queue, (msg) => {
        if (!msg) return;
        const body = unwrap(msg.content) as unknown as Notification;
        conductor.notifications.push(body);
        ch.ack(msg);
      });
    });
    return conductor;
  }

  /** A compute method called on `host` (Nova casts the guest's lifecycle; a call brings its refusal back), its reply. */
  compute(host: string, method: string, args: Record<string, unknown>): Promise<unknown> {
    return this.rpc.call(this.ctx, { topic: 'compute', server: host, version: '6.0' }, method, args, { timeout: 300 });
  }

  private record(view: MigrationView, seq: number): void {
    const seen = this.seenSeqs.get(view.uuid) ?? new Set<number>();
    this.seenSeqs.set(view.uuid, seen);
    if (seen.has(seq)) {
      this.duplicates += 1;
      return;
    }
    seen.add(seq);
    if (seq <= (this.lastSeq.get(view.uuid) ?? 0)) this.outOfOrder += 1;
    this.lastSeq.set(view.uuid, Math.max(seq, this.lastSeq.get(view.uuid) ?? 0));
    this.updates.push(view);
    for (const l of this.listeners) l();
  }

  migrate(req: StartMigrationRequest): Promise<StartedMigration> {
    return startLiveMigration(this.api, this.ctx, req);
  }

  /** Statuses of one migration as the conductor saw them, in order, without repeats. */
  statuses(migrationUuid: string): string[] {
    const out: string[] = [];
    for (const u of this.updates) if (u.uuid === migrationUuid && out[out.length - 1] !== u.status) out.push(u.status);
    return out;
  }

  /** Resolves with the first update of that migration that satisfies `pred`. */
  waitFor(migrationUuid: string, pred: (v: MigrationView) => boolean, timeoutMs = 120_000): Promise<MigrationView> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.updates.find((u) => u.uuid === migrationUuid && pred(u));
        if (!hit) return false;
        cleanup();
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        const last = this.updates.filter((u) => u.uuid === migrationUuid).at(-1);
        const why = last?.error ? ` (error: ${last.error})` : '';
        reject(new Error(`migration ${migrationUuid}: no matching update in ${timeoutMs} ms; saw ${this.statuses(migrationUuid).join(' -> ')}${why}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = () => void check();
      this.listeners.add(listener);
      check();
    });
  }

  waitForStatus(migrationUuid: string, status: string, timeoutMs?: number): Promise<MigrationView> {
    return this.waitFor(migrationUuid, (v) => v.status === status, timeoutMs);
  }

  waitForEnd(migrationUuid: string, timeoutMs?: number): Promise<MigrationView> {
    return this.waitFor(migrationUuid, (v) => FINAL.has(v.status), timeoutMs);
  }

  /** How many final updates of the migration the conductor kept (one, when all went well). */
  finalUpdates(migrationUuid: string): number {
    return this.updates.filter((u) => u.uuid === migrationUuid && FINAL.has(u.status)).length;
  }

  events(prefix: string): string[] {
    return this.notifications.filter((n) => n.event_type.startsWith(prefix)).map((n) => n.event_type);
  }

  async close(): Promise<void> {
    await this.server.stop(1000);
    await this.rpc.close();
    await this.connection.close();
  }
}
