// The compute RPC endpoint: Nova's live-migration method names and argument
// names, each with the schema its args are checked against before any work.

import { validate } from '../rpc/schema.js';
import type { RpcEndpoint, RpcMethod, Schema } from '../rpc/types.js';
import type { DestinationHandlers } from '../destination/handlers.js';
import { InvalidInput } from '../nova/errors.js';
import type { InstanceDiskInfo, LiveMigrateData } from '../nova/migrate-data.js';
import { readInstance, readMigration, unwrapNovaObjects } from '../nova/objects.js';

/** Nova object primitives arrive wrapped; the schemas see plain objects. */
export function deserializeComputeArgs(args: Record<string, unknown>): Record<string, unknown> {
  return unwrapNovaObjects(args) as Record<string, unknown>;
}
import type { MigrationRegistry } from '../record/registry.js';
import type { SourceHandlers } from '../source/handlers.js';
import { migrationView } from '../nova/migration-view.js';

/** The compute RPC API version ferry implements (Nova 6.5). */
export const COMPUTE_RPC_VERSION = '6.5';

const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;

const instance: Schema = {
  type: 'object',
  required: ['uuid'],
  properties: {
    uuid: { type: 'string', pattern: UUID },
    name: { type: 'string', nullable: true },
    host: { type: 'string', nullable: true },
    flavor: {
      type: 'object',
      nullable: true,
      properties: {
        memory_mb: { type: 'integer', minimum: 0, nullable: true },
        vcpus: { type: 'integer', minimum: 0, nullable: true },
        root_gb: { type: 'integer', minimum: 0, nullable: true },
      },
    },
    block_device_mappings: {
      type: 'array',
      nullable: true,
      items: { type: 'object', properties: { device_name: { type: 'string', nullable: true } } },
    },
  },
};

const migrateData: Schema = {
  type: 'object',
  nullable: true,
  properties: {
    block_migration: { type: 'boolean', nullable: true },
    is_shared_instance_path: { type: 'boolean' },
    is_shared_block_storage: { type: 'boolean' },
    target_connect_addr: { type: 'string', nullable: true, pattern: /^[\w\-.:[\]]+$/ },
    disk_available_mb: { type: 'integer', nullable: true },
    filename: { type: 'string', nullable: true },
  },
};

const diskInfo: Schema = {
  type: 'object',
  required: ['path', 'type', 'virt_disk_size'],
  properties: {
    path: { type: 'string' },
    type: { type: 'string', enum: ['qcow2', 'raw'] },
    virt_disk_size: { type: 'integer', minimum: 0 },
    disk_size: { type: 'integer', minimum: 0 },
    dev: { type: 'string' },
  },
};

function obj(properties: Record<string, Schema>, required: string[] = []): RpcMethod['args'] {
  return { type: 'object', properties, required };
}

/** Nova sends `disk` as a JSON string (get_instance_disk_info); ferry also takes the list itself. */
function parseDisks(raw: unknown): InstanceDiskInfo[] {
  if (raw === null || raw === undefined) return [];
  const list: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  if (!Array.isArray(list)) throw new InvalidInput('args.disk: expected a list of disks');
  return list as InstanceDiskInfo[];
}

export function computeEndpoint(source: SourceHandlers, dest: DestinationHandlers, registry: MigrationRegistry): RpcEndpoint {
  const methods: Record<string, RpcMethod> = {
    check_can_live_migrate_destination: {
      args: obj(
        {
          instance,
          block_migration: { type: 'boolean', nullable: true },
          disk_over_commit: { type: 'boolean', nullable: true },
          migration: { type: 'object', nullable: true },
          limits: { type: 'object', nullable: true },
        },
        ['instance'],
      ),
      handler: (ctx, a) =>
        dest.checkCanLiveMigrateDestination(
          ctx,
          readInstance(a.instance),
          (a.block_migration as boolean | null | undefined) ?? null,
          (a.disk_over_commit as boolean | null | undefined) ?? null,
        ),
    },
    check_can_live_migrate_source: {
      args: obj({ instance, dest_check_data: { type: 'object' } }, ['instance', 'dest_check_data']),
      handler: (_ctx, a) => source.checkCanLiveMigrateSource(readInstance(a.instance), a.dest_check_data as LiveMigrateData),
    },
    pre_live_migration: {
      args: obj({ instance, disk: { type: 'any' }, migrate_data: migrateData }, ['instance', 'migrate_data']),
      handler: (ctx, a) => {
        const disks = parseDisks(a.disk);
        const problem = validate({ type: 'array', items: diskInfo }, disks, 'args.disk');
        if (problem) throw new InvalidInput(problem);
        return dest.preLiveMigration(ctx, readInstance(a.instance), disks, (a.migrate_data ?? {}) as LiveMigrateData);
      },
    },
    live_migration: {
      args: obj(
        {
          instance,
          dest: { type: 'string' },
          block_migration: { type: 'boolean', nullable: true },
          migrate_data: migrateData,
          migration: {
            type: 'object',
            nullable: true,
            properties: { id: { type: 'integer', nullable: true }, uuid: { type: 'string', pattern: UUID, nullable: true } },
          },
          timeout_seconds: { type: 'integer', minimum: 0, nullable: true },
          on_timeout: { type: 'string', enum: ['abort', 'force_complete'], nullable: true },
        },
        ['instance', 'dest'],
      ),
      handler: (ctx, a) =>
        source.liveMigration(ctx, {
          instance: readInstance(a.instance),
          dest: a.dest as string,
          blockMigration: (a.block_migration as boolean | null | undefined) ?? null,
          migrateData: (a.migrate_data ?? {}) as LiveMigrateData,
          migration: readMigration(a.migration),
          timeoutSeconds: (a.timeout_seconds as number | null | undefined) ?? null,
          onTimeout: (a.on_timeout as 'abort' | 'force_complete' | null | undefined) ?? null,
        }),
    },
    post_live_migration_at_destination: {
      args: obj({ instance, block_migration: { type: 'boolean', nullable: true } }, ['instance']),
      handler: (ctx, a) => dest.postLiveMigrationAtDestination(ctx, readInstance(a.instance)),
    },
    rollback_live_migration_at_destination: {
      args: obj({ instance, destroy_disks: { type: 'boolean', nullable: true }, migrate_data: migrateData }, ['instance']),
      handler: (ctx, a) => dest.rollbackLiveMigrationAtDestination(ctx, readInstance(a.instance), (a.destroy_disks as boolean | null | undefined) ?? true, (a.migrate_data ?? {}) as LiveMigrateData),
    },
    live_migration_abort: {
      args: obj({ instance, migration_id: { type: 'any' } }, ['instance', 'migration_id']),
      handler: (ctx, a) => {
        const id = a.migration_id;
        if (!(typeof id === 'number' && Number.isInteger(id)) && !(typeof id === 'string' && UUID.test(id))) {
          throw new InvalidInput('args.migration_id: expected an integer id or a migration uuid');
        }
        return source.abort(ctx, readInstance(a.instance).uuid, id);
      },
    },
    live_migration_force_complete: {
      args: obj({ instance }, ['instance']),
      handler: (ctx, a) => source.forceComplete(ctx, readInstance(a.instance).uuid),
    },
    list_migrations: {
      args: obj({ instance_uuid: { type: 'string', pattern: UUID, nullable: true } }),
      handler: async (_ctx, a) =>
        registry.list({ instanceUuid: (a.instance_uuid as string | null | undefined) ?? undefined }).map(migrationView),
    },
  };
  return { version: COMPUTE_RPC_VERSION, methods };
}
