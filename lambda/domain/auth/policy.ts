/**
 * Authorization: who may do what, as one table. Each action is named after the Ironic
 * policy it follows (`baremetal:` dropped; `ironic/common/policy.py`), or is
 * Metalplane's own (users, tokens, sites, agents). Decisions are pure.
 *
 * Columns: what a `reader` and what a `member` may do; an `admin` may do everything.
 *
 * - `all`     every such principal (for a member's listings: filtered to its project,
 *             see `visibleProjectsFilter`);
 * - `project` a member whose project is the object's `owner` or `lessee`;
 * - `owner`   a member whose project is the object's `owner`;
 * - `self`    the principal's own object (`resource.user` is its name);
 * - `none`    nobody but an admin.
 *
 * How Ironic's personas map (see `principal.ts`): admin = system admin; reader = system
 * reader; member = project *manager* (so, through Keystone's implied roles, also
 * project member and reader). Hence:
 *
 *   SYSTEM_ADMIN, SYSTEM_MEMBER .................... none
 *   SYSTEM_READER .................................. reader only
 *   API_READER (list, filtered by project) ......... all
 *   SYSTEM_OR_PROJECT_READER / _MEMBER ............. project
 *   SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN ........ project (a lessee's manager counts)
 *   SYSTEM_OR_OWNER_READER, SYSTEM_MEMBER_OR_OWNER_MEMBER,
 *   SYSTEM_MEMBER_OR_OWNER_ADMIN, SYSTEM_ADMIN_OR_OWNER_ADMIN ... owner
 *   ALLOCATION_READER / _MEMBER .................... owner (of the allocation)
 *   ALLOCATION_CREATOR ............................. all
 *
 * Deliberate departures, marked `*` in the table: a project member may not change
 * `driver_info` or the driver and its interfaces (Ironic lets an owner: here they say
 * which BMC, with which credentials, the site's agent connects to from inside the
 * datacenter), nor node fields that Ironic guards only by the generic
 * `baremetal:node:update` (resource_class, protected, automated_clean, ...), except
 * `description`: a member patches a safe subset (see `NODE_PATCH_ACTIONS`).
 *
 * As Ironic, a project-scoped caller that cannot see an object is told it does not
 * exist (`not-found`, a 404), never that it is forbidden; readers and admins see
 * everything, so they get `forbidden` (403).
 */
import { forbidden } from '../errors.ts';
import { type Principal, projectOf, type Resource, type ResourceKind, relationOf } from './principal.ts';

export type Grant = 'all' | 'project' | 'owner' | 'self' | 'none';

export interface Rule {
  readonly reader: Grant;
  readonly member: Grant;
  /** The Ironic default it follows (its check string constant), or why it departs. */
  readonly basis: string;
}

const rule = (reader: Grant, member: Grant, basis: string): Rule => ({ reader, member, basis });

// biome-ignore format: a table, aligned to be read at a glance
export const POLICY = {
  //                                                 reader    member     basis (Ironic default, or Metalplane's)
  'node:create':                               rule('none',   'none',    'SYSTEM_ADMIN (create:self_owned_node needs a project admin: none here)'),
  'node:list':                                 rule('all',    'all',     'API_READER, filtered by project; list_all is SYSTEM_READER'),
  'node:get':                                  rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:get:last_error':                       rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:get:reservation':                      rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:get:driver_internal_info':             rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:get:driver_info':                      rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:update':                               rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER (an empty patch)'),
  'node:update_extra':                         rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:update_instance_info':                 rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:update:description':                   rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER (generic node:update)'),
  'node:update:other':                         rule('none',   'none',    '* generic node:update is SYSTEM_OR_PROJECT_MEMBER'),
  'node:update:driver_info':                   rule('none',   'none',    '* SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:driver_interfaces':             rule('none',   'none',    '* SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:update:properties':                    rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:instance_uuid':                 rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:lessee':                        rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:name':                          rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:network_data':                  rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:retired':                       rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:update:owner':                         rule('none',   'none',    'SYSTEM_MEMBER'),
  'node:update:conductor_group':               rule('none',   'none',    'SYSTEM_MEMBER'),
  'node:update:parent_node':                   rule('none',   'none',    'SYSTEM_MEMBER'),
  'node:update:chassis_uuid':                  rule('none',   'none',    'SYSTEM_ADMIN'),
  'node:update:shard':                         rule('none',   'none',    'SYSTEM_ADMIN'),
  'node:update_owner_provisioned':             rule('none',   'none',    'SYSTEM_ADMIN'),
  'node:disable_cleaning':                     rule('none',   'none',    'SYSTEM_ADMIN'),
  'node:delete':                               rule('none',   'none',    'SYSTEM_ADMIN (delete:self_owned_node needs a project admin: none here)'),
  'node:validate':                             rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:set_maintenance':                      rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:clear_maintenance':                    rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:set_provision_state':                  rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:vif:attach':                           rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:vif:detach':                           rule('none',   'project', 'SYSTEM_OR_OWNER_MEMBER_AND_LESSEE_ADMIN'),
  'node:get_states':                           rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:get_indicator_state':                  rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:vif:list':                             rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:traits:list':                          rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:bios:get':                             rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:firmware:get':                         rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'node:history:get':                          rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:inventory:get':                        rule('all',    'owner',   'SYSTEM_OR_OWNER_READER'),
  'node:set_power_state':                      rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:set_boot_mode':                        rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:set_secure_boot':                      rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:vmedia:attach':                        rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:vmedia:detach':                        rule('none',   'project', 'SYSTEM_OR_PROJECT_MEMBER'),
  'node:set_indicator_state':                  rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:set_raid_state':                       rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:get_console':                          rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:set_console_state':                    rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_MEMBER'),
  'node:get_boot_device':                      rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:set_boot_device':                      rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:inject_nmi':                           rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:traits:set':                           rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:traits:delete':                        rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'node:vendor_passthru':                      rule('none',   'none',    'SYSTEM_ADMIN'),

  'port:list':                                 rule('all',    'all',     'API_READER, filtered by project; list_all is SYSTEM_READER'),
  'port:get':                                  rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'port:create':                               rule('none',   'owner',   'SYSTEM_ADMIN_OR_OWNER_ADMIN'),
  'port:update':                               rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'port:delete':                               rule('none',   'owner',   'SYSTEM_ADMIN_OR_OWNER_ADMIN'),
  'portgroup:list':                            rule('all',    'all',     'API_READER, filtered by project; list_all is SYSTEM_READER'),
  'portgroup:get':                             rule('all',    'project', 'SYSTEM_OR_PROJECT_READER'),
  'portgroup:create':                          rule('none',   'owner',   'SYSTEM_ADMIN_OR_OWNER_ADMIN'),
  'portgroup:update':                          rule('none',   'owner',   'SYSTEM_MEMBER_OR_OWNER_ADMIN'),
  'portgroup:delete':                          rule('none',   'owner',   'SYSTEM_ADMIN_OR_OWNER_ADMIN'),

  'chassis:get':                               rule('all',    'none',    'SYSTEM_READER'),
  'chassis:create':                            rule('none',   'none',    'SYSTEM_ADMIN'),
  'chassis:update':                            rule('none',   'none',    'SYSTEM_MEMBER'),
  'chassis:delete':                            rule('none',   'none',    'SYSTEM_ADMIN'),
  'driver:get':                                rule('all',    'none',    'SYSTEM_READER'),
  'driver:get_properties':                     rule('all',    'none',    'SYSTEM_READER'),
  'driver:get_raid_logical_disk_properties':   rule('all',    'none',    'SYSTEM_READER'),
  'driver:vendor_passthru':                    rule('none',   'none',    'SYSTEM_ADMIN'),
  'conductor:get':                             rule('all',    'none',    'SYSTEM_READER'),
  'deploy_template:get':                       rule('all',    'none',    'SYSTEM_READER'),
  'deploy_template:create':                    rule('none',   'none',    'SYSTEM_ADMIN'),
  'deploy_template:update':                    rule('none',   'none',    'SYSTEM_ADMIN'),
  'deploy_template:delete':                    rule('none',   'none',    'SYSTEM_ADMIN'),

  'allocation:list':                           rule('all',    'all',     'API_READER, filtered by owner; list_all is SYSTEM_READER'),
  'allocation:get':                            rule('all',    'owner',   'ALLOCATION_READER'),
  'allocation:create':                         rule('none',   'all',     'ALLOCATION_CREATOR (the allocation is then owned by the project)'),
  'allocation:create_restricted':              rule('none',   'none',    'SYSTEM_MEMBER (create with another owner)'),
  'allocation:update':                         rule('none',   'owner',   'ALLOCATION_MEMBER'),
  'allocation:delete':                         rule('none',   'owner',   'ALLOCATION_MEMBER'),

  'user:list':                                 rule('all',    'none',    'Metalplane: users carry no secret in the API'),
  'user:get':                                  rule('all',    'self',    'Metalplane'),
  'user:create':                               rule('none',   'none',    'Metalplane'),
  'user:update':                               rule('none',   'none',    'Metalplane'),
  'user:delete':                               rule('none',   'none',    'Metalplane'),
  'user:unlock':                               rule('none',   'none',    'Metalplane: see and clear a failed-login lockout'),
  'token:list':                                rule('self',   'self',    'Metalplane: every user manages its own tokens'),
  'token:get':                                 rule('self',   'self',    'Metalplane'),
  'token:create':                              rule('self',   'self',    'Metalplane'),
  'token:delete':                              rule('self',   'self',    'Metalplane'),
  'site:list':                                 rule('all',    'none',    'Metalplane; a site is a conductor group (conductor:get is SYSTEM_READER)'),
  'site:get':                                  rule('all',    'none',    'Metalplane'),
  'site:create':                               rule('none',   'none',    'Metalplane'),
  'site:update':                               rule('none',   'none',    'Metalplane'),
  'site:delete':                               rule('none',   'none',    'Metalplane'),
  'agent:list':                                rule('all',    'none',    'Metalplane; an agent is a conductor'),
  'agent:get':                                 rule('all',    'none',    'Metalplane'),
  'agent:enroll':                              rule('none',   'none',    'Metalplane: mints a one-time enrollment token'),
  'agent:delete':                              rule('none',   'none',    'Metalplane'),
  'agent:credentials':                         rule('none',   'none',    'Metalplane: rotate or revoke (an agent may rotate its own)'),
  'image:list':                                rule('all',    'all',     'Metalplane: members choose images for instance_info (as Glance public images)'),
  'image:get':                                 rule('all',    'all',     'Metalplane: no secret in an image record'),
  'image:create':                              rule('none',   'none',    'Metalplane: the catalog is the operators\' (every site downloads it)'),
  'image:update':                              rule('none',   'none',    'Metalplane'),
  'image:upload':                              rule('none',   'none',    'Metalplane: presigned upload URLs'),
  'image:delete':                              rule('none',   'none',    'Metalplane'),
  'site:images':                               rule('all',    'none',    'Metalplane: sync state per site (site:get is reader only)'),
  'command:get':                               rule('none',   'none',    'Metalplane: commands carry driver arguments (debugging)'),
  'command:create':                            rule('none',   'none',    'Metalplane: a raw agent command, like vendor_passthru (SYSTEM_ADMIN)'),
  'audit:get':                                 rule('all',    'none',    'Metalplane: the audit trail (list and show), SYSTEM_READER as every system-wide read'),
} as const satisfies Record<string, Rule>;

export type Action = keyof typeof POLICY;
export const ACTIONS = Object.keys(POLICY) as Action[];

export type Decision = 'allow' | 'forbidden' | 'not-found';

export function isAction(name: string): name is Action {
  return Object.hasOwn(POLICY, name);
}

/**
 * Which visibility check conceals an object from a member (Ironic checks
 * `baremetal:node:get` on the node of a node, port or portgroup, and
 * `baremetal:allocation:get` on an allocation, before anything else).
 */
const VISIBILITY: Partial<Record<ResourceKind, Action>> = {
  node: 'node:get',
  port: 'node:get',
  portgroup: 'node:get',
  allocation: 'allocation:get',
};

function granted(grant: Grant, principal: Principal, resource: Resource | undefined): boolean {
  switch (grant) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'self':
      return resource?.user !== undefined && resource.user !== null && resource.user === principal.name;
    case 'owner':
      return relationOf(principal, resource).owner;
    case 'project': {
      const relation = relationOf(principal, resource);
      return relation.owner || relation.lessee;
    }
  }
}

/**
 * May `principal` do `action` (on `resource`, for object-level actions)? Collection
 * actions (list, create) take no resource, or the parent node for a port's creation.
 * An object-level rule without a resource is refused: decisions fail closed.
 */
export function decide(principal: Principal, action: Action, resource?: Resource): Decision {
  if (!isAction(action)) return 'forbidden';
  // Agents use their site's routes only (`canAgentAccessSite`), whatever their role says.
  if (principal.kind === 'agent') return 'forbidden';
  const rule: Rule = POLICY[action];
  switch (principal.role) {
    case 'admin':
      return 'allow';
    case 'reader':
      return granted(rule.reader, principal, resource) ? 'allow' : 'forbidden';
    case 'member': {
      if (projectOf(principal) === undefined && rule.member !== 'self') {
        return resource && VISIBILITY[resource.kind] ? 'not-found' : 'forbidden';
      }
      const visibility = resource && VISIBILITY[resource.kind];
      if (visibility && !granted(POLICY[visibility].member, principal, resource)) return 'not-found';
      return granted(rule.member, principal, resource) ? 'allow' : 'forbidden';
    }
    default:
      return 'forbidden';
  }
}

/** May the principal see this object (its `<kind>:get` action)? */
export function canRead(principal: Principal, resource: Resource): boolean {
  const action = `${resource.kind}:get`;
  return isAction(action) && decide(principal, action, resource) === 'allow';
}

export function canWrite(principal: Principal, action: Action, resource?: Resource): boolean {
  return decide(principal, action, resource) === 'allow';
}

/**
 * The project a listing must be limited to (nodes whose owner or lessee it is, ports of
 * those nodes, allocations it owns), or undefined when the principal sees everything.
 * Throws (403) for a principal that may list nothing: an agent, a member without a
 * project. It never answers "everything" for them.
 */
export function visibleProjectsFilter(principal: Principal): string | undefined {
  if (principal.kind !== 'agent' && (principal.role === 'admin' || principal.role === 'reader'))
    return undefined;
  const project = principal.kind === 'agent' ? undefined : projectOf(principal);
  if (project === undefined) throw forbidden('Access was denied to this resource: no project to list for.');
  return project;
}

/**
 * Whether secrets (`driver_info` passwords, `instance_info` secrets) may be shown
 * unmasked. Ironic's `show_password` and `show_instance_secrets` default to `!`:
 * nobody through the API, admins included. Only the agent of the node's own site gets
 * them, to drive the BMC.
 */
export function canSeeSecrets(principal: Principal, nodeSite: string | null | undefined): boolean {
  return canAgentAccessSite(principal, nodeSite);
}

/** An agent reaches only its own site's commands, nodes and secrets. */
export function canAgentAccessSite(principal: Principal, site: string | null | undefined): boolean {
  return (
    principal.kind === 'agent' &&
    typeof principal.site === 'string' &&
    principal.site !== '' &&
    typeof site === 'string' &&
    principal.site === site
  );
}

/** One operation of a JSON patch, as far as authorization cares. */
export interface PatchOperation {
  readonly op?: string;
  readonly path: string;
  readonly value?: unknown;
}

/**
 * The action guarding each root field of a node PATCH, as Ironic's
 * `NodesController._authorize_patch_and_get_node`: instance_info, extra, driver_info,
 * properties, chassis_uuid, instance_uuid, lessee, owner, driver*, *_interface,
 * network_data, conductor_group, name, retired* each have their own policy;
 * automated_clean set to false needs `disable_cleaning`; anything else is the generic
 * `baremetal:node:update`, which Metalplane splits into `description` (allowed to a
 * project member, as Ironic) and everything else (admin only).
 */
export const NODE_PATCH_ACTIONS: Readonly<Record<string, Action>> = {
  instance_info: 'node:update_instance_info',
  extra: 'node:update_extra',
  description: 'node:update:description',
  driver_info: 'node:update:driver_info',
  properties: 'node:update:properties',
  chassis_uuid: 'node:update:chassis_uuid',
  instance_uuid: 'node:update:instance_uuid',
  lessee: 'node:update:lessee',
  owner: 'node:update:owner',
  driver: 'node:update:driver_interfaces',
  network_data: 'node:update:network_data',
  conductor_group: 'node:update:conductor_group',
  name: 'node:update:name',
  retired: 'node:update:retired',
  retired_reason: 'node:update:retired',
  shard: 'node:update:shard',
  parent_node: 'node:update:parent_node',
};

/** The root field a JSON pointer addresses (`/extra/foo` → `extra`), unescaped. */
function rootField(path: string): string {
  const first = path.startsWith('/') ? (path.slice(1).split('/')[0] ?? '') : '';
  return first.replaceAll('~1', '/').replaceAll('~0', '~');
}

/** oslo `bool_from_string(value, default=None) is False`. */
function isFalse(value: unknown): boolean {
  if (typeof value === 'boolean') return !value;
  const text = String(value).trim().toLowerCase();
  return ['0', 'f', 'false', 'off', 'n', 'no'].includes(text);
}

export function nodePatchAction(operation: PatchOperation): Action {
  const field = rootField(operation.path);
  if (field === 'automated_clean') {
    return operation.op !== 'remove' && isFalse(operation.value)
      ? 'node:disable_cleaning'
      : 'node:update:other';
  }
  const action = Object.hasOwn(NODE_PATCH_ACTIONS, field) ? NODE_PATCH_ACTIONS[field] : undefined;
  if (action) return action;
  if (field.startsWith('driver') || field.endsWith('_interface')) return 'node:update:driver_interfaces';
  if (field.startsWith('retired')) return 'node:update:retired';
  return 'node:update:other';
}

/**
 * May the principal apply this PATCH to the node? Every operation's action must be
 * allowed (Ironic checks each field policy; an empty patch checks `node:update`). A
 * node the member cannot see is `not-found` whatever the patch.
 */
export function decideNodePatch(
  principal: Principal,
  node: Resource,
  patch: readonly PatchOperation[],
): Decision {
  const actions = new Set<Action>(patch.map(nodePatchAction));
  if (actions.size === 0) actions.add('node:update');
  let decision: Decision = 'allow';
  for (const action of actions) {
    const verdict = decide(principal, action, node);
    if (verdict === 'not-found') return 'not-found';
    if (verdict === 'forbidden') decision = 'forbidden';
  }
  return decision;
}

/**
 * The root fields this principal may patch on the node: undefined for every field (an
 * admin), an empty list when it may patch none.
 */
export function patchableNodeFields(principal: Principal, node: Resource): readonly string[] | undefined {
  if (principal.kind !== 'agent' && principal.role === 'admin') return undefined;
  return Object.keys(NODE_PATCH_ACTIONS).filter(
    (field) => decide(principal, NODE_PATCH_ACTIONS[field] as Action, node) === 'allow',
  );
}
