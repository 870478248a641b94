/**
 * Authorization at the API edge: routes ask here whether the request's principal may
 * do an action. Decisions come from the policy table in `domain/auth/policy.ts`
 * (modelled on Ironic's policy defaults); this file maps them to errors: 403, or 404
 * where a project-scoped caller must not learn that an object exists.
 */
import {
  type Action,
  decide,
  isAction,
  patchableNodeFields,
  visibleProjectsFilter,
} from '../domain/auth/policy.ts';
import type { Principal, Resource, ResourceKind } from '../domain/auth/principal.ts';
import { forbidden, notFound } from '../domain/errors.ts';
import type { ApiRequest } from '../http/request.ts';

export type { Principal } from '../domain/auth/principal.ts';

export interface OwnedObject {
  readonly owner?: string | null;
  readonly lessee?: string | null;
}

/**
 * Route actions with no row of their own: volume records are parts of their node (Ironic
 * guards them with node policies), so reading them is reading the node and changing them
 * is an admin's change of the node's storage setup.
 */
const ALIASES: Readonly<Record<string, Action>> = {
  'volume:get': 'node:get',
  'volume:create': 'node:update:driver_info',
  'volume:update': 'node:update:driver_info',
  'volume:delete': 'node:update:driver_info',
};

function principalOf(request: ApiRequest): Principal {
  const principal = request.principal as Principal | undefined;
  if (!principal) throw forbidden('Access was denied to this resource: the request is not authenticated.');
  return principal;
}

function resolve(action: string): Action {
  const resolved = ALIASES[action] ?? action;
  if (!isAction(resolved)) throw new Error(`no policy for action ${action}`);
  return resolved;
}

function enforce(request: ApiRequest, action: string, resource?: Resource): void {
  const decision = decide(principalOf(request), resolve(action), resource);
  if (decision === 'not-found') throw notFound('The resource could not be found.');
  if (decision === 'forbidden')
    throw forbidden(`Access was denied to this resource: ${action} is not allowed for this user.`);
}

/** Collection-level actions (list, create ...). */
export function authorize(request: ApiRequest, action: string): void {
  enforce(request, action);
}

/** Actions on one node, or on an object of a node (ports ...), judged by the node's owner/lessee. */
export function authorizeNode(request: ApiRequest, action: string, node: OwnedObject): void {
  const kind = (resolve(action).split(':')[0] ?? 'node') as ResourceKind;
  enforce(request, action, { kind, owner: node.owner ?? null, lessee: node.lessee ?? null });
}

/** The project a listing is limited to, or undefined to see everything. */
export function listingProject(request: ApiRequest): string | undefined {
  return visibleProjectsFilter(principalOf(request));
}

/** Root fields this principal may patch on the node, or undefined for all updatable ones. */
export function patchableFields(request: ApiRequest, node: OwnedObject): readonly string[] | undefined {
  return patchableNodeFields(principalOf(request), {
    kind: 'node',
    owner: node.owner ?? null,
    lessee: node.lessee ?? null,
  });
}
