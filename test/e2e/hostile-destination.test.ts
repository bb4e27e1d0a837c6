// A destination that lies: a small RPC server in the test, posing as a compute
// host, answers the source's pre_live_migration with a hostile
// target_connect_addr. Under the tcp, tls and ssh schemes the source refuses
// it before libvirt is called: nothing runs, the guest keeps running on the
// source, the migration fails naming the value and who sent it, and the
// liar is told to roll back.

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../../src/log/logger.js';
import { AmqpConnection, RpcServer } from '../../src/rpc/index.js';
import { rpcMethod } from '../../src/rpc/args.js';
import { lastHeartbeat, waitForHeartbeat } from '../lab/heartbeat.js';
import type { LabHost } from '../lab/lab.js';
import { startLabCluster, type LabCluster } from './cluster.js';
import { domainState, type LabGuest } from './fixture.js';

const FAKE = 'ferry-fake-dest';

describe('a destination answering pre_live_migration with a hostile target_connect_addr', () => {
  let cluster: LabCluster;
  let a: LabHost;
  let guest: LabGuest;
  let fakeConnection: AmqpConnection;
  let fake: RpcServer;
  /** What the fake answers next, and what it was asked. */
  let reply: Record<string, unknown> = {};
  const asked: string[] = [];
  // Where a command libvirt ran on host A for the liar would leave a trace the test sees.
  const marker = (scheme: string) => join(cluster.lab.sharedDir, `pwned-${scheme}`);

  beforeAll(async () => {
    cluster = await startLabCluster({ name: 'liar', addrBase: 80 });
    a = cluster.a;
    fakeConnection = new AmqpConnection({ transportUrl: cluster.broker.transportUrl, connectionName: 'fake-dest', logger: silentLogger });
    const any = z.looseObject({});
    fake = new RpcServer({
      connection: fakeConnection,
      exchange: cluster.exchange,
      topics: ['compute', 'compute-alt'],
      server: FAKE,
      logger: silentLogger,
      endpoints: [
        {
          version: '6.5',
          methods: {
            pre_live_migration: rpcMethod(z.looseObject({ migrate_data: z.looseObject({}) }), async (_c, args) => {
              asked.push('pre_live_migration');
              return { ...args.migrate_data, ...reply };
            }),
            rollback_live_migration_at_destination: rpcMethod(any, async () => {
              asked.push('rollback_live_migration_at_destination');
              return null;
            }),
            post_live_migration_at_destination: rpcMethod(any, async () => {
              asked.push('post_live_migration_at_destination');
              return null;
            }),
          },
        },
      ],
    });
    await fake.start();
    await cluster.useAgents();
    guest = await cluster.boot();
  });

  afterAll(async () => {
    await fake?.stop();
    await fakeConnection?.close();
    await cluster?.close();
  });

  const hostile = (scheme: string) => [
    `127.0.0.22/system?command=/usr/bin/touch&x=${marker(scheme)}`,
    `${a.addr}/system?no_verify=1&command=/usr/bin/touch%20${marker(scheme)}`,
    'root@127.0.0.22',
    `dst;touch ${marker(scheme)}`,
    `$(touch ${marker(scheme)})`,
    '127.0.0.22:16509/../system',
  ];

  it.each(['tcp', 'tls', 'ssh'])('under qemu+%s: each value is refused before libvirt is called; the guest runs on', async (scheme) => {
    await cluster.useAgents({ libvirt: { live_migration_scheme: scheme } });
    await rm(marker(scheme), { force: true });
    const agent = cluster.agentOn(a);
    for (const addr of hostile(scheme)) {
      asked.length = 0;
      reply = { target_connect_addr: addr };
      const beat = await lastHeartbeat(a, guest.uuid);
      const migrationUuid = randomUUID();
      await cluster.conductor.api.liveMigration(cluster.conductor.ctx, a.hostname, {
        instance: { ...guest.instance, host: a.hostname },
        dest: FAKE,
        block_migration: false,
        migrate_data: { is_shared_instance_path: false, is_shared_block_storage: false },
        migration: { id: null, uuid: migrationUuid },
        timeout_seconds: null,
        on_timeout: null,
      });
      const end = await cluster.conductor.waitForEnd(migrationUuid, 60_000);
      expect(end.status).toBe('failed');
      expect(cluster.conductor.statuses(migrationUuid)).toEqual(['queued', 'preparing', 'failed']);
      const refused = (await agent.logs()).find((l) => l.migration === migrationUuid && l.msg === 'live migration failed');
      expect((refused?.err as { message?: string } | undefined)?.message).toBe(
        `Invalid input received: target_connect_addr in ${FAKE}'s pre_live_migration reply: '${addr}' is not an IP address or host name (with an optional port)`,
      );
      // libvirt was never asked: no transfer, no job, and the liar is told to undo what it claims to have made.
      expect((await agent.logs()).filter((l) => l.migration === migrationUuid && l.msg === 'migration transfer started')).toEqual([]);
      expect(asked).toEqual(['pre_live_migration', 'rollback_live_migration_at_destination']);
      expect((await a.virsh(['domjobinfo', '--completed', guest.uuid])).stdout).toMatch(/Job type:\s+None/);
      expect(await domainState(a, guest.uuid)).toBe('running');
      await waitForHeartbeat(a, guest.uuid, { after: beat, timeoutMs: 30_000 });
    }
    expect(existsSync(marker(scheme))).toBe(false);
  });
});
