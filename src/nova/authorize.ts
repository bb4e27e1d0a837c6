// Nova's policy for the admin-only compute actions (abort, force-complete,
// roll back): `is_admin`, or a role in `management_roles`. A refusal is logged.

import type { Logger } from '../log/logger.js';
import { Forbidden } from './errors.js';
import type { RequestContext } from '../rpc/types.js';

export function authorize(ctx: RequestContext, managementRoles: readonly string[], action: string, log: Logger): void {
  if (ctx.is_admin || ctx.roles.some((r) => managementRoles.includes(r))) return;
  log.warn({ action, user: ctx.user_id, project: ctx.project_id, request_id: ctx.request_id }, 'request refused by policy');
  throw new Forbidden(action);
}
