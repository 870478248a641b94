/** Roles and decisions: the policy table, project scoping, 403 versus 404, agents, node PATCH. */
import { describe, expect, it } from 'vitest';
import {
  ACTIONS,
  type Action,
  canAgentAccessSite,
  canRead,
  canSeeSecrets,
  canWrite,
  decide,
  decideNodePatch,
  isAction,
  NODE_PATCH_ACTIONS,
  nodePatchAction,
  POLICY,
  patchableNodeFields,
  visibleProjectsFilter,
} from '../../lambda/domain/auth/policy.ts';
import type { Principal, Resource } from '../../lambda/domain/auth/principal.ts';
import { DomainError } from '../../lambda/domain/errors.ts';

const admin: Principal = { kind: 'user', name: 'root', role: 'admin' };
const noauth: Principal = { kind: 'noauth', name: 'noauth', role: 'admin' };
const reader: Principal = { kind: 'token', name: 'auditor', role: 'reader' };
const member: Principal = { kind: 'user', name: 'alice', role: 'member', project: 'acme' };
const projectless: Principal = { kind: 'user', name: 'lost', role: 'member' };
const emptyProject: Principal = { kind: 'user', name: 'lost', role: 'member', project: '' };
const agent: Principal = { kind: 'agent', name: 'fra1-agent-1', role: 'admin', site: 'fra1' };

const owned: Resource = { kind: 'node', owner: 'acme', lessee: null };
const leased: Resource = { kind: 'node', owner: 'provider', lessee: 'acme' };
const foreign: Resource = { kind: 'node', owner: 'other', lessee: 'someone' };
const unowned: Resource = { kind: 'node', owner: null, lessee: null };

const WRITE_VERB = /(create|update|delete|set|attach|detach|inject|passthru|validate|enroll|disable|clear)/;
const nodeBound = ACTIONS.filter((action) => /^(node|port|portgroup):/.test(action));

describe('the table', () => {
  it('names every action with valid grants and a basis', () => {
    expect(ACTIONS.length).toBeGreaterThan(90);
    for (const action of ACTIONS) {
      const rule = POLICY[action];
      expect(['all', 'project', 'owner', 'self', 'none']).toContain(rule.reader);
      expect(['all', 'project', 'owner', 'self', 'none']).toContain(rule.member);
      // A reader sees everything or nothing of a kind: project scoping is for members.
      expect(['all', 'self', 'none']).toContain(rule.reader);
      expect(rule.basis.length).toBeGreaterThan(0);
    }
  });

  it('gives a reader no write, anywhere (its own tokens aside)', () => {
    for (const action of ACTIONS) {
      if (action.startsWith('token:')) continue;
      if (WRITE_VERB.test(action.split(':').slice(1).join(':'))) {
        expect(decide(reader, action, foreign), action).toBe('forbidden');
      }
    }
  });

  it('knows its actions and nothing else', () => {
    expect(isAction('node:get')).toBe(true);
    expect(isAction('baremetal:node:get')).toBe(false);
    expect(isAction('constructor')).toBe(false);
    expect(isAction('__proto__')).toBe(false);
  });
});

describe('admin', () => {
  it.each([admin, noauth])('may do every action, on anything ($kind)', (principal) => {
    for (const action of ACTIONS) {
      expect(decide(principal, action), action).toBe('allow');
      expect(decide(principal, action, foreign), action).toBe('allow');
    }
  });

  it('an unknown action is refused even to an admin (fail closed)', () => {
    expect(decide(admin, 'node:explode' as Action)).toBe('forbidden');
    expect(decide(admin, 'toString' as Action)).toBe('forbidden');
  });
});

describe('reader', () => {
  it.each([
    'node:list',
    'node:get',
    'node:get:driver_info',
    'node:get:last_error',
    'node:get_states',
    'node:traits:list',
    'node:vif:list',
    'node:history:get',
    'port:list',
    'port:get',
    'portgroup:get',
    'chassis:get',
    'driver:get',
    'driver:get_properties',
    'conductor:get',
    'deploy_template:get',
    'allocation:get',
    'allocation:list',
    'user:list',
    'user:get',
    'site:list',
    'agent:get',
  ] as Action[])('may %s anything', (action) => {
    expect(decide(reader, action, foreign)).toBe('allow');
    expect(decide(reader, action, unowned)).toBe('allow');
  });

  it.each([
    'node:create',
    'node:update',
    'node:update_extra',
    'node:delete',
    'node:set_power_state',
    'node:set_provision_state',
    'node:set_maintenance',
    'node:validate',
    'node:vendor_passthru',
    'node:get_boot_device',
    'node:get_console',
    'port:create',
    'portgroup:delete',
    'chassis:update',
    'allocation:create',
    'user:create',
    'site:delete',
    'agent:enroll',
  ] as Action[])('may not %s (403: a reader sees everything, nothing is concealed)', (action) => {
    expect(decide(reader, action, foreign)).toBe('forbidden');
  });
});

describe('member', () => {
  it('sees nodes it owns or leases, and nothing else exists for it (404)', () => {
    expect(decide(member, 'node:get', owned)).toBe('allow');
    expect(decide(member, 'node:get', leased)).toBe('allow');
    expect(decide(member, 'node:get', foreign)).toBe('not-found');
    expect(decide(member, 'node:get', unowned)).toBe('not-found');
  });

  it('a node outside its project is not-found for every node, port and portgroup action', () => {
    for (const action of nodeBound) {
      for (const kind of ['node', 'port', 'portgroup'] as const) {
        expect(decide(member, action, { ...foreign, kind }), `${action} on ${kind}`).toBe('not-found');
      }
    }
  });

  it('matches projects exactly (case, null, empty)', () => {
    expect(decide(member, 'node:get', { kind: 'node', owner: 'ACME' })).toBe('not-found');
    expect(decide(member, 'node:get', { kind: 'node', owner: 'acme ' })).toBe('not-found');
    expect(decide(member, 'node:get', { kind: 'node' })).toBe('not-found');
    expect(decide(emptyProject, 'node:get', { kind: 'node', owner: '', lessee: '' })).toBe('not-found');
  });

  // Expected decisions written out by hand (not derived from the table), per Ironic's defaults.
  const expectations: [Action, owner: 'allow' | 'forbidden', lessee: 'allow' | 'forbidden'][] = [
    ['node:get', 'allow', 'allow'],
    ['node:get_states', 'allow', 'allow'],
    ['node:traits:list', 'allow', 'allow'],
    ['node:vif:list', 'allow', 'allow'],
    ['node:get:driver_info', 'allow', 'forbidden'],
    ['node:get:last_error', 'allow', 'forbidden'],
    ['node:get:driver_internal_info', 'allow', 'forbidden'],
    ['node:history:get', 'allow', 'forbidden'],
    ['node:update', 'allow', 'allow'],
    ['node:update_extra', 'allow', 'allow'],
    ['node:update_instance_info', 'allow', 'allow'],
    ['node:update:name', 'allow', 'forbidden'],
    ['node:update:lessee', 'allow', 'forbidden'],
    ['node:update:properties', 'allow', 'forbidden'],
    ['node:update:owner', 'forbidden', 'forbidden'],
    ['node:update:driver_info', 'forbidden', 'forbidden'],
    ['node:update:driver_interfaces', 'forbidden', 'forbidden'],
    ['node:update:conductor_group', 'forbidden', 'forbidden'],
    ['node:update:other', 'forbidden', 'forbidden'],
    ['node:disable_cleaning', 'forbidden', 'forbidden'],
    ['node:set_provision_state', 'allow', 'allow'],
    ['node:set_power_state', 'allow', 'allow'],
    ['node:set_maintenance', 'allow', 'allow'],
    ['node:clear_maintenance', 'allow', 'allow'],
    ['node:validate', 'allow', 'allow'],
    ['node:vif:attach', 'allow', 'allow'],
    ['node:set_boot_device', 'allow', 'forbidden'],
    ['node:get_boot_device', 'allow', 'forbidden'],
    ['node:inject_nmi', 'allow', 'forbidden'],
    ['node:get_console', 'allow', 'forbidden'],
    ['node:traits:set', 'allow', 'forbidden'],
    ['node:traits:delete', 'allow', 'forbidden'],
    ['node:create', 'forbidden', 'forbidden'],
    ['node:delete', 'forbidden', 'forbidden'],
    ['node:vendor_passthru', 'forbidden', 'forbidden'],
    ['node:update_owner_provisioned', 'forbidden', 'forbidden'],
    ['port:get', 'allow', 'allow'],
    ['port:create', 'allow', 'forbidden'],
    ['port:update', 'allow', 'forbidden'],
    ['port:delete', 'allow', 'forbidden'],
    ['portgroup:get', 'allow', 'allow'],
    ['portgroup:create', 'allow', 'forbidden'],
    ['portgroup:delete', 'allow', 'forbidden'],
    ['chassis:get', 'forbidden', 'forbidden'],
    ['driver:get', 'forbidden', 'forbidden'],
    ['conductor:get', 'forbidden', 'forbidden'],
    ['deploy_template:get', 'forbidden', 'forbidden'],
  ];

  it.each(expectations)('%s: owner → %s, lessee → %s', (action, asOwner, asLessee) => {
    expect(decide(member, action, owned)).toBe(asOwner);
    expect(decide(member, action, leased)).toBe(asLessee);
    // Owning and leasing at once gives the owner's rights.
    expect(decide(member, action, { kind: 'node', owner: 'acme', lessee: 'acme' })).toBe(asOwner);
  });

  it.each([
    ['node:list', 'allow'],
    ['port:list', 'allow'],
    ['portgroup:list', 'allow'],
    ['allocation:list', 'allow'],
    ['allocation:create', 'allow'],
    ['allocation:create_restricted', 'forbidden'],
    ['node:create', 'forbidden'],
    ['chassis:create', 'forbidden'],
    ['chassis:get', 'forbidden'],
    ['driver:get', 'forbidden'],
    ['deploy_template:create', 'forbidden'],
    ['user:list', 'forbidden'],
    ['user:create', 'forbidden'],
    ['site:list', 'forbidden'],
    ['site:create', 'forbidden'],
    ['agent:enroll', 'forbidden'],
  ] as [Action, string][])('collection action %s → %s', (action, expected) => {
    expect(decide(member, action)).toBe(expected);
  });

  it('an object-level action without its object is refused (fail closed)', () => {
    expect(decide(member, 'node:get')).toBe('forbidden');
    expect(decide(member, 'node:set_provision_state')).toBe('forbidden');
    expect(decide(member, 'port:create')).toBe('forbidden');
  });

  it('allocations follow their own owner (no lessee), concealed when foreign', () => {
    const mine: Resource = { kind: 'allocation', owner: 'acme' };
    const theirs: Resource = { kind: 'allocation', owner: 'other', lessee: 'acme' };
    for (const action of ['allocation:get', 'allocation:update', 'allocation:delete'] as Action[]) {
      expect(decide(member, action, mine)).toBe('allow');
      expect(decide(member, action, theirs)).toBe('not-found');
    }
  });

  it('without a project, a member sees and lists nothing', () => {
    for (const principal of [projectless, emptyProject]) {
      expect(decide(principal, 'node:get', unowned)).toBe('not-found');
      expect(decide(principal, 'node:get', { kind: 'node', owner: '' })).toBe('not-found');
      expect(decide(principal, 'node:list')).toBe('forbidden');
      expect(decide(principal, 'allocation:create')).toBe('forbidden');
      expect(() => visibleProjectsFilter(principal)).toThrow(DomainError);
    }
  });
});

describe('self-service rules (tokens, own user)', () => {
  const ownTokens: Resource = { kind: 'token', user: 'alice' };
  const othersTokens: Resource = { kind: 'token', user: 'bob' };

  it.each(['token:list', 'token:get', 'token:create', 'token:delete'] as Action[])(
    '%s: own only, admin any',
    (action) => {
      expect(decide(member, action, ownTokens)).toBe('allow');
      expect(decide(member, action, othersTokens)).toBe('forbidden');
      expect(decide({ ...reader, name: 'alice' }, action, ownTokens)).toBe('allow');
      expect(decide(reader, action, ownTokens)).toBe('forbidden');
      expect(decide(member, action)).toBe('forbidden');
      expect(decide(member, action, { kind: 'token', user: null })).toBe('forbidden');
      expect(decide(admin, action, othersTokens)).toBe('allow');
      expect(decide({ ...agent, name: 'alice' }, action, ownTokens)).toBe('forbidden');
    },
  );

  it('a member reads its own user record only; a reader reads any', () => {
    expect(decide(member, 'user:get', { kind: 'user', user: 'alice' })).toBe('allow');
    expect(decide(member, 'user:get', { kind: 'user', user: 'bob' })).toBe('forbidden');
    expect(decide(reader, 'user:get', { kind: 'user', user: 'bob' })).toBe('allow');
    expect(decide(member, 'user:update', { kind: 'user', user: 'alice' })).toBe('forbidden');
  });
});

describe('agents', () => {
  it('never use the Ironic API, whatever role they carry', () => {
    for (const action of ACTIONS) {
      expect(decide(agent, action), action).toBe('forbidden');
      expect(decide(agent, action, { kind: 'node', owner: null }), action).toBe('forbidden');
    }
    expect(() => visibleProjectsFilter(agent)).toThrow(DomainError);
    expect(patchableNodeFields(agent, unowned)).toEqual([]);
  });

  it('reach their own site only', () => {
    expect(canAgentAccessSite(agent, 'fra1')).toBe(true);
    expect(canAgentAccessSite(agent, 'ams1')).toBe(false);
    expect(canAgentAccessSite(agent, 'FRA1')).toBe(false);
    expect(canAgentAccessSite(agent, undefined)).toBe(false);
    expect(canAgentAccessSite(agent, null)).toBe(false);
    expect(canAgentAccessSite({ ...agent, site: '' }, '')).toBe(false);
    expect(canAgentAccessSite({ kind: 'agent', name: 'a', role: 'reader' }, 'fra1')).toBe(false);
    // A user is not an agent, even with a site.
    expect(canAgentAccessSite({ ...admin, site: 'fra1' }, 'fra1')).toBe(false);
  });

  it('only the node site agent sees secrets; no API caller does (Ironic: show_password is "!")', () => {
    expect(canSeeSecrets(agent, 'fra1')).toBe(true);
    expect(canSeeSecrets(agent, 'ams1')).toBe(false);
    for (const principal of [admin, noauth, reader, member])
      expect(canSeeSecrets(principal, 'fra1')).toBe(false);
  });
});

describe('canRead / canWrite', () => {
  it('canRead uses the kind get action', () => {
    expect(canRead(member, owned)).toBe(true);
    expect(canRead(member, { ...leased, kind: 'port' })).toBe(true);
    expect(canRead(member, foreign)).toBe(false);
    expect(canRead(member, { kind: 'chassis' })).toBe(false);
    expect(canRead(reader, { kind: 'chassis' })).toBe(true);
    expect(canRead(reader, { kind: 'token', user: 'someone' })).toBe(false);
    expect(canRead(agent, owned)).toBe(false);
  });

  it('canWrite is decide() === allow', () => {
    expect(canWrite(member, 'port:create', owned)).toBe(true);
    expect(canWrite(member, 'port:create', leased)).toBe(false);
    expect(canWrite(member, 'port:create', foreign)).toBe(false);
    expect(canWrite(reader, 'port:create', owned)).toBe(false);
    expect(canWrite(admin, 'node:delete', foreign)).toBe(true);
  });
});

describe('visibleProjectsFilter', () => {
  it('is undefined (everything) for admins and readers, the project for a member', () => {
    expect(visibleProjectsFilter(admin)).toBeUndefined();
    expect(visibleProjectsFilter(noauth)).toBeUndefined();
    expect(visibleProjectsFilter(reader)).toBeUndefined();
    expect(visibleProjectsFilter(member)).toBe('acme');
  });

  it('is a 403 for a principal with nothing to list', () => {
    try {
      visibleProjectsFilter(projectless);
      expect.unreachable();
    } catch (error) {
      expect((error as DomainError).kind).toBe('forbidden');
    }
  });
});

describe('node PATCH', () => {
  it.each([
    ['/extra/foo', undefined, 'node:update_extra'],
    ['/extra', {}, 'node:update_extra'],
    ['/instance_info/image_source', 'x', 'node:update_instance_info'],
    ['/description', 'd', 'node:update:description'],
    ['/driver_info/ipmi_address', 'x', 'node:update:driver_info'],
    ['/driver', 'ipmi', 'node:update:driver_interfaces'],
    ['/boot_interface', 'pxe', 'node:update:driver_interfaces'],
    ['/driver_internal_info', {}, 'node:update:driver_interfaces'],
    ['/properties/cpus', 4, 'node:update:properties'],
    ['/owner', 'x', 'node:update:owner'],
    ['/lessee', 'x', 'node:update:lessee'],
    ['/name', 'n', 'node:update:name'],
    ['/retired', true, 'node:update:retired'],
    ['/retired_reason', 'old', 'node:update:retired'],
    ['/conductor_group', 'ams1', 'node:update:conductor_group'],
    ['/chassis_uuid', 'x', 'node:update:chassis_uuid'],
    ['/automated_clean', false, 'node:disable_cleaning'],
    ['/automated_clean', 'off', 'node:disable_cleaning'],
    ['/automated_clean', true, 'node:update:other'],
    ['/automated_clean', null, 'node:update:other'],
    ['/resource_class', 'gpu', 'node:update:other'],
    ['/protected', true, 'node:update:other'],
    ['', {}, 'node:update:other'],
    ['/', {}, 'node:update:other'],
    ['/ext~1ra', {}, 'node:update:other'],
  ] as [string, unknown, Action][])('%s (%j) is guarded by %s', (path, value, action) => {
    expect(nodePatchAction({ op: 'replace', path, value })).toBe(action);
  });

  it('removing automated_clean is not disabling cleaning', () => {
    expect(nodePatchAction({ op: 'remove', path: '/automated_clean' })).toBe('node:update:other');
  });

  it('every listed patch field maps to a known action', () => {
    for (const [field, action] of Object.entries(NODE_PATCH_ACTIONS)) {
      expect(isAction(action), field).toBe(true);
      expect(nodePatchAction({ path: `/${field}` })).toBe(action);
    }
  });

  const patch = (...paths: string[]) => paths.map((path) => ({ op: 'add', path, value: 'v' }));

  it('an owner member patches its safe subset, and nothing beyond', () => {
    expect(decideNodePatch(member, owned, patch('/extra/a', '/name', '/instance_info/x', '/lessee'))).toBe(
      'allow',
    );
    expect(decideNodePatch(member, owned, patch('/extra/a', '/driver_info/ipmi_password'))).toBe('forbidden');
    expect(decideNodePatch(member, owned, patch('/resource_class'))).toBe('forbidden');
    expect(decideNodePatch(member, owned, patch('/owner'))).toBe('forbidden');
  });

  it('a lessee member patches extra, description and instance_info only', () => {
    expect(decideNodePatch(member, leased, patch('/extra/a', '/instance_info/x', '/description'))).toBe(
      'allow',
    );
    expect(decideNodePatch(member, leased, patch('/extra/a', '/name'))).toBe('forbidden');
  });

  it('a node the member cannot see is not-found, whatever the patch', () => {
    expect(decideNodePatch(member, foreign, patch('/extra/a'))).toBe('not-found');
    expect(decideNodePatch(member, foreign, patch('/owner', '/extra/a'))).toBe('not-found');
    expect(decideNodePatch(member, foreign, [])).toBe('not-found');
  });

  it('an empty patch checks node:update', () => {
    expect(decideNodePatch(member, leased, [])).toBe('allow');
    expect(decideNodePatch(reader, leased, [])).toBe('forbidden');
  });

  it('readers patch nothing, admins anything', () => {
    expect(decideNodePatch(reader, owned, patch('/extra/a'))).toBe('forbidden');
    expect(decideNodePatch(admin, foreign, patch('/owner', '/driver_info/x', '/resource_class'))).toBe(
      'allow',
    );
  });

  it('patchableNodeFields lists the fields', () => {
    expect(patchableNodeFields(admin, foreign)).toBeUndefined();
    expect(patchableNodeFields(noauth, foreign)).toBeUndefined();
    expect([...(patchableNodeFields(member, owned) ?? [])].sort()).toEqual(
      [
        'description',
        'extra',
        'instance_info',
        'instance_uuid',
        'lessee',
        'name',
        'network_data',
        'properties',
        'retired',
        'retired_reason',
      ].sort(),
    );
    expect([...(patchableNodeFields(member, leased) ?? [])].sort()).toEqual([
      'description',
      'extra',
      'instance_info',
    ]);
    expect(patchableNodeFields(member, foreign)).toEqual([]);
    expect(patchableNodeFields(reader, owned)).toEqual([]);
  });
});
