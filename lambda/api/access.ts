/**
 * Authorization at the API edge: the routes ask here whether the request's principal
 * may do an action, on a collection or on one owned/leased object. Decisions come from
 * the pure policy table in `domain/auth/policy.ts`; this file maps them to errors
 * (403, or 404 where a project-scoped caller must not learn that an object exists).
 */
import { forbidden, notFound } from '../domain/errors.ts';
import type { ApiRequest } from '../http/request.ts';

export type Role = 'admin' | 'member' | 'reader';

export interface Principal {
  readonly kind: 'user' | 'token' | 'agent' | 'noauth';
  readonly name: string;
  readonly role: Role;
  readonly project?: string;
  readonly site?: string;
}

export interface OwnedObject {
  readonly owner?: string | null;
  readonly lessee?: string | null;
}

/** Fields a project member may patch on a node it owns or leases (Ironic's owner policies). */
const MEMBER_PATCHABLE = ['extra', 'instance_info', 'instance_uuid', 'description', 'name', 'lessee'];

function principalOf(request: ApiRequest): Principal {
  const principal = request.principal as Principal | undefined;
  if (!principal) throw forbidden('No principal: the request was not authenticated.');
  return principal;
}

function isRead(action: string): boolean {
  return /(^|:)(get|list)$/.test(action);
}

/** Collection-level actions (list, create ...). */
export function authorize(request: ApiRequest, action: string): void {
  const principal = principalOf(request);
  if (principal.role === 'admin') return;
  if (isRead(action) && (principal.role === 'reader' || principal.role === 'member')) return;
  throw forbidden(`Access was denied to this resource: ${action} requires the admin role.`);
}

/** Actions on one node (or any object with owner/lessee). */
export function authorizeNode(request: ApiRequest, action: string, object: OwnedObject): void {
  const principal = principalOf(request);
  if (principal.role === 'admin') return;
  if (principal.role === 'reader') {
    if (isRead(action)) return;
    throw forbidden(`Access was denied to this resource: ${action} is not allowed for readers.`);
  }
  const project = principal.project;
  const owns = project !== undefined && object.owner === project;
  const leases = project !== undefined && object.lessee === project;
  // A project must not learn that nodes outside it exist.
  if (!owns && !leases) throw notFound('The resource could not be found.');
  if (action === 'node:delete' || action === 'node:create')
    throw forbidden(`Access was denied to this resource: ${action} requires the admin role.`);
}

/** The project a listing is limited to, or undefined to see everything. */
export function listingProject(request: ApiRequest): string | undefined {
  const principal = principalOf(request);
  return principal.role === 'member' ? (principal.project ?? '') : undefined;
}

/** Root fields this principal may patch on the node, or undefined for all updatable ones. */
export function patchableFields(request: ApiRequest, _object: OwnedObject): readonly string[] | undefined {
  return principalOf(request).role === 'admin' ? undefined : MEMBER_PATCHABLE;
}
