/**
 * Who is asking, once authenticated. Three roles, modelled on Ironic's default RBAC
 * personas (`ironic/common/policy.py`) but without Keystone scopes:
 *
 * - `admin`  ≈ Ironic's system admin: everything.
 * - `reader` ≈ Ironic's system reader: reads everything, changes nothing.
 * - `member` ≈ Ironic's project *manager* (which Keystone's implied roles make a
 *   member and a reader too) in one project: it acts on the nodes whose `owner` or
 *   `lessee` is that project. Metalplane has no project admin, so its one project
 *   role gets what Ironic gives a lessee's admin/manager (deploy, instance_info) and
 *   an owner's admin/manager (ports, traits); see `policy.ts` for the table.
 *
 * An `agent` principal is a site's agent: it never uses the Ironic API, only its own
 * site's routes (`canAgentAccessSite` in `policy.ts`).
 */
export type Role = 'admin' | 'member' | 'reader';
export const ROLES: readonly Role[] = ['admin', 'member', 'reader'];

export type PrincipalKind = 'user' | 'token' | 'agent' | 'noauth';

export interface Principal {
  readonly kind: PrincipalKind;
  readonly name: string;
  readonly role: Role;
  /** Members only: the project (an `owner`/`lessee` value) it acts for. */
  readonly project?: string;
  /** Agents only: the site (Ironic conductor group) the agent serves. */
  readonly site?: string;
}

/** What a decision needs to know about the object acted on. */
export type ResourceKind =
  | 'node'
  | 'port'
  | 'portgroup'
  | 'chassis'
  | 'driver'
  | 'conductor'
  | 'allocation'
  | 'deploy_template'
  | 'user'
  | 'token'
  | 'site'
  | 'agent';

export interface Resource {
  readonly kind: ResourceKind;
  /**
   * Project ownership. For a node its own `owner`/`lessee`; for a port or portgroup
   * those of its node (as Ironic checks a port against its node); for an allocation
   * its `owner` (Ironic's allocation policies know no lessee).
   */
  readonly owner?: string | null;
  readonly lessee?: string | null;
  /** The user a token (or a user record) belongs to, for self-service rules. */
  readonly user?: string | null;
}

/** The member's project, or undefined when it has none usable (then it sees nothing). */
export function projectOf(principal: Principal): string | undefined {
  if (principal.role !== 'member') return undefined;
  const project = principal.project;
  return typeof project === 'string' && project !== '' ? project : undefined;
}

/** How a member's project relates to an object: Ironic's `project_id:%(node.owner)s` checks. */
export interface Relation {
  readonly owner: boolean;
  readonly lessee: boolean;
}

export function relationOf(principal: Principal, resource: Resource | undefined): Relation {
  const project = projectOf(principal);
  if (project === undefined || resource === undefined) return { owner: false, lessee: false };
  return { owner: resource.owner === project, lessee: resource.lessee === project };
}
