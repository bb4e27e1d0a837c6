// Nova's policy for the admin-only compute actions: `is_admin`, or one of the
// allowed roles (management_roles, service_roles). A refusal is logged with
// the method, the rule and who asked.

import type { Logger } from '../log/logger.js';
import { Forbidden } from './errors.js';
import type { RequestContext } from '../rpc/types.js';

export function authorize(ctx: RequestContext, allowedRoles: readonly string[], method: string, action: string, log: Logger): void {
  if (ctx.is_admin || ctx.roles.some((r) => allowedRoles.includes(r))) return;
  log.warn({ method, action, user: ctx.user_id, project: ctx.project_id, roles: ctx.roles, request_id: ctx.request_id }, 'request refused by policy');
  throw new Forbidden(action);
}
