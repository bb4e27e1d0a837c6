// Every method of the migration family is for admins, a role in
// management_roles or a service role (issue 11), checked before its args are
// even parsed.
import { afterEach, describe, expect, it } from 'vitest';
import { METHOD_POLICY, computeEndpoint } from '../../src/compute/endpoint.js';
import { silentLogger } from '../../src/log/logger.js';
import type { DestinationHandlers } from '../../src/destination/handlers.js';
import type { InstanceHandlers } from '../../src/instance/handlers.js';
import { MigrationRegistry } from '../../src/record/registry.js';
import type { SourceHandlers } from '../../src/source/handlers.js';
import { adminContext } from './fakes/rpc.js';
import { makeCluster, type Cluster } from './fakes/cluster.js';

let c: Cluster | null = null;
afterEach(async () => {
  await c?.cleanup();
  c = null;
});

const member = adminContext({ roles: ['member'], is_admin: false, user_id: 'someone' });
const migrator = adminContext({ roles: ['migrator'], is_admin: false });
const service = adminContext({ roles: ['service'], is_admin: false, user_id: null, project_id: null });

describe('authorization of the migration family', () => {
  it('every method the endpoint serves has a policy', () => {
    const ep = computeEndpoint({} as SourceHandlers, {} as DestinationHandlers, {} as InstanceHandlers, new MigrationRegistry(), { managementRoles: ['admin'], serviceRoles: ['service'], log: silentLogger });
    expect(Object.keys(ep.methods).sort()).toEqual(Object.keys(METHOD_POLICY).sort());
  });

  it.each(Object.keys(METHOD_POLICY))('%s: refused for a member before its args are read, let through for admin, a management role and a service', async (method) => {
    c = await makeCluster({ dst: { config: { management_roles: ['admin', 'migrator'] } } });
    const call = (ctx: typeof member) =>
      c!.bus
        .client(c!.src.name)
        .call(ctx, { topic: 'compute', server: c!.dst.name, version: '6.0' }, method, { not_an_arg: true })
        .then(() => null, (e: Error) => e);
    expect(await call(member)).toMatchObject({ name: 'PolicyNotAuthorized', message: expect.stringContaining(METHOD_POLICY[method]!) });
    // Past the policy, the args are what is wrong (or, for list_migrations, nothing is).
    for (const ctx of [adminContext(), migrator, service]) {
      const err = await call(ctx);
      if (err) expect(err.name).not.toBe('PolicyNotAuthorized');
    }
  });
});
