// The compute RPC endpoint: Nova's live-migration method names and the guest
// lifecycle ferry serves (spawn, hard reboot, terminate, rescue, unrescue),
// each wired to the schema its args are parsed with (args.ts) before any work
// starts.

import { isPlainObject, rpcMethod } from '../rpc/args.js';
import type { RpcEndpoint } from '../rpc/types.js';
import type { DestinationHandlers } from '../destination/handlers.js';
import type { InstanceHandlers } from '../instance/handlers.js';
import type { Logger } from '../log/logger.js';
import { authorize } from '../nova/authorize.js';
import { InvalidInput } from '../nova/errors.js';
import { migrationView } from '../nova/migration-view.js';
import { readInstance, readMigration, unwrapNovaObjects } from '../nova/objects.js';
import type { MigrationRegistry } from '../record/registry.js';
import type { SourceHandlers } from '../source/handlers.js';
import {
  buildAndRunInstanceArgs,
  checkCanLiveMigrateDestinationArgs,
  checkCanLiveMigrateSourceArgs,
  instanceOnlyArgs,
  listMigrationsArgs,
  liveMigrationAbortArgs,
  liveMigrationArgs,
  postLiveMigrationAtDestinationArgs,
  preLiveMigrationArgs,
  rebootInstanceArgs,
  rescueInstanceArgs,
  rollbackLiveMigrationAtDestinationArgs,
  terminateInstanceArgs,
} from './args.js';

/** The compute RPC API version ferry implements (Nova 6.5). */
export const COMPUTE_RPC_VERSION = '6.5';

/** Nova object primitives arrive wrapped; the schemas see plain objects. */
export function deserializeComputeArgs(args: Record<string, unknown>): Record<string, unknown> {
  const plain = unwrapNovaObjects(args);
  return isPlainObject(plain) ? plain : {};
}

/**
 * The policy each method is checked against: Nova's rule where Nova has one.
 * Every method moves, destroys or reveals guests, so each one is for admins,
 * a role in management_roles or a service role; a ferry host passes its
 * caller's context on to the peer host.
 */
export const METHOD_POLICY: Readonly<Record<string, string>> = {
  check_can_live_migrate_destination: 'os_compute_api:os-migrate-server:migrate_live',
  check_can_live_migrate_source: 'os_compute_api:os-migrate-server:migrate_live',
  pre_live_migration: 'os_compute_api:os-migrate-server:migrate_live',
  live_migration: 'os_compute_api:os-migrate-server:migrate_live',
  post_live_migration_at_destination: 'os_compute_api:os-migrate-server:migrate_live',
  rollback_live_migration_at_destination: 'compute:rollback_live_migration_at_destination',
  live_migration_abort: 'os_compute_api:servers:migrations:delete',
  live_migration_force_complete: 'os_compute_api:servers:migrations:force_complete',
  live_migration_resume: 'compute:live_migration_resume',
  build_and_run_instance: 'os_compute_api:servers:create',
  reboot_instance: 'os_compute_api:servers:reboot',
  terminate_instance: 'os_compute_api:servers:delete',
  rescue_instance: 'os_compute_api:os-rescue',
  unrescue_instance: 'os_compute_api:os-unrescue',
  list_migrations: 'os_compute_api:servers:migrations:index',
};

export interface EndpointPolicy {
  managementRoles: readonly string[];
  serviceRoles: readonly string[];
  log: Logger;
}

export function computeEndpoint(source: SourceHandlers, dest: DestinationHandlers, instances: InstanceHandlers, registry: MigrationRegistry, policy: EndpointPolicy): RpcEndpoint {
  const allowedRoles = [...policy.managementRoles, ...policy.serviceRoles];
  return {
    version: COMPUTE_RPC_VERSION,
    // What Nova raises for bad input, so a Nova caller rebuilds nova.exception.InvalidInput.
    invalidArgs: (problem) => new InvalidInput(problem),
    authorize: (ctx, method) => authorize(ctx, allowedRoles, method, METHOD_POLICY[method] ?? `compute:${method}`, policy.log),
    methods: {
      check_can_live_migrate_destination: rpcMethod(checkCanLiveMigrateDestinationArgs, (ctx, a) =>
        dest.checkCanLiveMigrateDestination(ctx, readInstance(a.instance), a.block_migration ?? null, a.disk_over_commit ?? null),
      ),
      check_can_live_migrate_source: rpcMethod(checkCanLiveMigrateSourceArgs, (_ctx, a) =>
        source.checkCanLiveMigrateSource(readInstance(a.instance), a.dest_check_data),
      ),
      pre_live_migration: rpcMethod(preLiveMigrationArgs, (ctx, a) =>
        dest.preLiveMigration(ctx, readInstance(a.instance), a.disk, a.migrate_data ?? {}),
      ),
      live_migration: rpcMethod(liveMigrationArgs, (ctx, a) =>
        source.liveMigration(ctx, {
          instance: readInstance(a.instance),
          dest: a.dest,
          blockMigration: a.block_migration ?? null,
          migrateData: a.migrate_data ?? {},
          migration: readMigration(a.migration),
          timeoutSeconds: a.timeout_seconds ?? null,
          onTimeout: a.on_timeout ?? null,
          actOnStall: a.act_on_stall ?? null,
        }),
      ),
      post_live_migration_at_destination: rpcMethod(postLiveMigrationAtDestinationArgs, (ctx, a) =>
        dest.postLiveMigrationAtDestination(ctx, readInstance(a.instance)),
      ),
      // destroy_disks and migrate_data are accepted as Nova sends them; what is removed is the destination's own record.
      rollback_live_migration_at_destination: rpcMethod(rollbackLiveMigrationAtDestinationArgs, (ctx, a) =>
        dest.rollbackLiveMigrationAtDestination(ctx, readInstance(a.instance)),
      ),
      live_migration_abort: rpcMethod(liveMigrationAbortArgs, (ctx, a) =>
        source.abort(ctx, readInstance(a.instance).uuid, a.migration_id),
      ),
      live_migration_force_complete: rpcMethod(instanceOnlyArgs, (ctx, a) => source.forceComplete(ctx, readInstance(a.instance).uuid)),
      // ferry's own: Nova has no post-copy recovery to call.
      live_migration_resume: rpcMethod(instanceOnlyArgs, async (_ctx, a) => source.resumePostcopy(readInstance(a.instance).uuid)),
      list_migrations: rpcMethod(listMigrationsArgs, async (_ctx, a) =>
        registry.list({ instanceUuid: a.instance_uuid ?? undefined }).map(migrationView),
      ),
      build_and_run_instance: rpcMethod(buildAndRunInstanceArgs, (ctx, a) => instances.buildAndRunInstance(ctx, a.instance)),
      reboot_instance: rpcMethod(rebootInstanceArgs, (ctx, a) => instances.rebootInstance(ctx, a.instance, a.reboot_type)),
      terminate_instance: rpcMethod(terminateInstanceArgs, (ctx, a) => instances.terminateInstance(ctx, a.instance, a.keep_disks ?? false)),
      rescue_instance: rpcMethod(rescueInstanceArgs, (ctx, a) => instances.rescueInstance(ctx, a.instance, a.rescue_image_ref ?? null, a.clean_shutdown ?? true)),
      unrescue_instance: rpcMethod(instanceOnlyArgs, (ctx, a) => instances.unrescueInstance(ctx, a.instance)),
    },
  };
}
