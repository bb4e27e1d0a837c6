#!/usr/bin/env node
// ferryctl: the operator CLI. Talks to ferryd agents over RabbitMQ with the
// same RPC methods a conductor uses.

import { parseArgs } from 'node:util';
import { amqpOptions } from '../config/amqp.js';
import { loadConfig, type FerryConfig } from '../config/index.js';
import { silentLogger } from '../log/logger.js';
import { ComputeRpcApi } from '../nova/compute-rpcapi.js';
import { MigrationNotFound, NoActiveMigrationForInstance } from '../nova/errors.js';
import type { MigrationView } from '../nova/migration-view.js';
import { isFinal } from '../record/status.js';
import { AmqpConnection, AmqpRpcClient } from '../rpc/index.js';
import { operatorContext, startLiveMigration } from './conductor.js';
import { FORMATS, migrationsTable, progressLine, render, showTable, watchLines, type OutputFormat } from './format.js';

const HELP = `Usage: ferryctl [global options] COMMAND [options]

Commands:
  migrate INSTANCE --source HOST --dest HOST [--block-migration] [--timeout S]
          [--on-timeout abort|force_complete] [--volume DEV=PATH]... [--watch]
                        start a live migration (as a conductor would)
  migrations [--host H] [--instance UUID] [--watch]
                        list migrations a host runs or ran recently; with
                        --watch, a live progress bar per running migration
                        until none is left running
  show MIGRATION [--host H]
                        one migration (uuid or id) with all its figures: the
                        convergence model's, the preflight's, the ports'
  abort INSTANCE --host SOURCE [--migration ID|UUID]
                        abort a queued, preparing or running migration
  force-complete INSTANCE --host SOURCE
                        finish a running migration now (post-copy or pause)
  resume INSTANCE --host SOURCE
                        resume a paused post-copy migration now (it also
                        retries by itself, with backoff)
  watch INSTANCE --host SOURCE
                        follow a migration until it ends

Global options:
  -c, --config FILE       ferry configuration (transport_url, control_exchange, host)
  --transport-url URL     RabbitMQ in oslo form, overrides the configuration
  --exchange NAME         oslo control_exchange (default nova)
  --roles R1,R2           roles of the request context (default admin)
  -f, --format FORMAT     table (default), json or yaml, for migrations and
                          show (--json: the same as --format json)
  -h, --help

Exit codes: 0 done, 1 error, 2 usage, 3 not found, 4 invalid state,
5 forbidden, 6 refused by the pre-checks, 7 the migration did not complete.
`;

const EXIT = { error: 1, usage: 2, notFound: 3, invalidState: 4, forbidden: 5, refused: 6, notCompleted: 7 } as const;

const ERROR_EXIT: Record<string, number> = {
  InstanceNotFound: EXIT.notFound,
  MigrationNotFound: EXIT.notFound,
  NoActiveMigrationForInstance: EXIT.notFound,
  InvalidMigrationState: EXIT.invalidState,
  PolicyNotAuthorized: EXIT.forbidden,
  MigrationPreCheckError: EXIT.refused,
  InvalidSharedStorage: EXIT.refused,
  InvalidLocalStorage: EXIT.refused,
  InvalidHostname: EXIT.refused,
  InvalidInput: EXIT.usage,
};

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'transport-url': { type: 'string' },
      exchange: { type: 'string' },
      roles: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      source: { type: 'string' },
      dest: { type: 'string' },
      host: { type: 'string' },
      instance: { type: 'string' },
      migration: { type: 'string' },
      'block-migration': { type: 'boolean' },
      timeout: { type: 'string' },
      'on-timeout': { type: 'string' },
      'act-on-stall': { type: 'boolean' },
      volume: { type: 'string', multiple: true },
      watch: { type: 'boolean' },
      json: { type: 'boolean' },
      format: { type: 'string', short: 'f' },
    },
  });
  const [command, target] = positionals;
  if (values.help || !command) {
    process.stdout.write(HELP);
    return values.help ? 0 : EXIT.usage;
  }
  const format = (values.json ? 'json' : (values.format ?? 'table')) as OutputFormat;
  if (!FORMATS.includes(format)) throw new UsageError(`--format: expected ${FORMATS.join(', ')}, not ${values.format}`);
  const config: FerryConfig = loadConfig({ file: values.config });
  const transportUrl = values['transport-url'] ?? config.transport_url;
  const exchange = values.exchange ?? config.control_exchange;
  const ctx = operatorContext(values.roles ? values.roles.split(',').filter(Boolean) : undefined);

  const connection = new AmqpConnection({ ...amqpOptions(config, 'ferryctl', silentLogger), transportUrl, retryMax: 2 });
  await connection.start();
  const rpc = new AmqpRpcClient({ connection, exchange, defaultTimeout: config.rpc_response_timeout, logger: silentLogger });
  const api = new ComputeRpcApi(rpc, { rpcResponseTimeout: config.rpc_response_timeout, longRpcTimeout: config.long_rpc_timeout });
  const need = (v: string | undefined, what: string): string => {
    if (!v) throw new UsageError(`${command}: ${what} is required`);
    return v;
  };

  try {
    switch (command) {
      case 'migrate': {
        const instanceUuid = need(target, 'INSTANCE');
        const source = need(values.source, '--source');
        // Digits only: Number() would take '' as 0 (no timeout at all), '1e1' or '0x10'.
        if (values.timeout !== undefined && !/^\d+$/.test(values.timeout)) throw new UsageError('--timeout: expected an integer >= 0');
        const timeout = values.timeout === undefined ? null : Number(values.timeout);
        const onTimeout = values['on-timeout'] ?? null;
        if (onTimeout !== null && onTimeout !== 'abort' && onTimeout !== 'force_complete') throw new UsageError('--on-timeout: expected abort or force_complete');
        const started = await startLiveMigration(api, ctx, {
          instance: { uuid: instanceUuid, block_device_mappings: (values.volume ?? []).map(volumeBdm) },
          source,
          dest: need(values.dest, '--dest'),
          blockMigration: values['block-migration'] ? true : null,
          timeoutSeconds: timeout,
          onTimeout,
          actOnStall: values['act-on-stall'] ?? null,
        });
        process.stdout.write(`migration ${started.migrationUuid} started (block migration: ${started.migrateData.block_migration})\n`);
        return values.watch ? await watch(api, ctx, source, instanceUuid, started.migrationUuid) : 0;
      }
      case 'migrations': {
        const host = values.host ?? config.host;
        if (values.watch) return await watchRunning(api, ctx, host, values.instance);
        const views = await api.listMigrations(ctx, host, values.instance);
        process.stdout.write(`${render(format, views, () => migrationsTable(views))}\n`);
        return 0;
      }
      case 'show': {
        const id = need(target, 'MIGRATION');
        const view = (await api.listMigrations(ctx, values.host ?? config.host)).find((m) => m.uuid === id || String(m.id) === id);
        if (!view) throw new MigrationNotFound(id);
        process.stdout.write(`${render(format, view, () => showTable(view))}\n`);
        return 0;
      }
      case 'abort': {
        const instanceUuid = need(target, 'INSTANCE');
        const host = need(values.host, '--host');
        const id = values.migration ?? (await activeMigration(api, ctx, host, instanceUuid)).uuid;
        await api.liveMigrationAbort(ctx, host, { uuid: instanceUuid }, /^\d+$/.test(id) ? Number(id) : id, 'call');
        process.stdout.write(`abort of migration ${id} requested\n`);
        return 0;
      }
      case 'force-complete': {
        const instanceUuid = need(target, 'INSTANCE');
        await api.liveMigrationForceComplete(ctx, need(values.host, '--host'), { uuid: instanceUuid }, 'call');
        process.stdout.write(`force-complete of instance ${instanceUuid} requested\n`);
        return 0;
      }
      case 'resume': {
        const instanceUuid = need(target, 'INSTANCE');
        await api.liveMigrationResume(ctx, need(values.host, '--host'), { uuid: instanceUuid });
        process.stdout.write(`resume of instance ${instanceUuid}'s post-copy migration requested\n`);
        return 0;
      }
      case 'watch': {
        const instanceUuid = need(target, 'INSTANCE');
        const host = need(values.host, '--host');
        return await watch(api, ctx, host, instanceUuid, (await activeMigration(api, ctx, host, instanceUuid)).uuid);
      }
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } finally {
    await rpc.close();
    await connection.close();
  }
}

/** `--volume vdb=/dev/loop3`: a volume-backed disk the migration leaves in place. */
function volumeBdm(spec: string): Record<string, unknown> {
  const m = /^([a-z]+\d*|[a-z]+)=(\/.+)$/.exec(spec);
  if (!m) throw new UsageError(`--volume ${spec}: expected DEV=PATH, e.g. vdb=/dev/loop3`);
  return {
    device_name: `/dev/${m[1]}`,
    destination_type: 'volume',
    volume_id: m[1],
    connection_info: { driver_volume_type: 'local', data: { device_path: m[2] } },
  };
}

async function activeMigration(api: ComputeRpcApi, ctx: ReturnType<typeof operatorContext>, host: string, instanceUuid: string): Promise<MigrationView> {
  const views = await api.listMigrations(ctx, host, instanceUuid);
  const active = views.find((m) => !isFinal(m.status));
  if (!active) throw new NoActiveMigrationForInstance(instanceUuid);
  return active;
}

/** Polls the source until the migration ends; exit code 0 only when it completed. */
async function watch(api: ComputeRpcApi, ctx: ReturnType<typeof operatorContext>, host: string, instanceUuid: string, migrationUuid: string): Promise<number> {
  const started = performance.now();
  const tty = process.stdout.isTTY;
  let lastPrinted = 0;
  let detailShown = false;
  for (;;) {
    const view = (await api.listMigrations(ctx, host, instanceUuid)).find((m) => m.uuid === migrationUuid);
    const elapsed = (performance.now() - started) / 1000;
    if (view) {
      if (view.convergence_detail && !detailShown) {
        // Said once, on its own line: the progress lines that follow keep the verdict.
        process.stdout.write(`${tty ? '\r\x1b[K' : ''}${view.convergence_detail}\n`);
        detailShown = true;
      }
      const line = progressLine(view, elapsed);
      const done = isFinal(view.status);
      if (tty) process.stdout.write(`\r${line}\x1b[K${done ? '\n' : ''}`);
      else if (done || performance.now() - lastPrinted >= 1000) {
        process.stdout.write(`${line}\n`);
        lastPrinted = performance.now();
      }
      if (done) {
        if (view.error) process.stdout.write(`error: ${view.error}\n`);
        if (view.downtime_ms !== null) process.stdout.write(`downtime: ${view.downtime_ms} ms\n`);
        return view.status === 'completed' ? 0 : EXIT.notCompleted;
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * `migrations --watch`: every running migration of the host with its
 * progress bar, redrawn in place on a terminal (a block of lines every 5 s
 * otherwise), until none is left running; those that ended meanwhile get
 * their last line. Exit 0: it reports, it does not judge the outcomes.
 */
async function watchRunning(api: ComputeRpcApi, ctx: ReturnType<typeof operatorContext>, host: string, instanceUuid: string | undefined): Promise<number> {
  const tty = process.stdout.isTTY;
  const followed = new Set<string>();
  let drawn = 0;
  let lastPrinted = -Infinity;
  for (;;) {
    const views = await api.listMigrations(ctx, host, instanceUuid);
    for (const m of views) if (!isFinal(m.status)) followed.add(m.uuid);
    const shown = views.filter((m) => followed.has(m.uuid));
    const running = shown.some((m) => !isFinal(m.status));
    if (shown.length === 0) {
      process.stdout.write(`no migration running on ${host}\n`);
      return 0;
    }
    const lines = watchLines(shown, Date.now());
    if (tty) {
      // Back to the top of the block drawn last time, then over it.
      process.stdout.write(`${drawn > 0 ? `\x1b[${drawn}F` : ''}${lines.map((l) => `${l}\x1b[K\n`).join('')}`);
      drawn = lines.length;
    } else if (!running || performance.now() - lastPrinted >= 5000) {
      process.stdout.write(`${lines.join('\n')}\n`);
      lastPrinted = performance.now();
    }
    if (!running) return 0;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`ferryctl: ${err.message}\n`);
      process.exit(EXIT.usage);
    }
    const name = err instanceof Error ? err.name : 'Error';
    process.stderr.write(`ferryctl: ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(ERROR_EXIT[name] ?? EXIT.error);
  },
);
