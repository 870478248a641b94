/**
 * /v1/nodes: create, show, list, patch, delete, states, maintenance and traits, with
 * Ironic's semantics (see `../shared/ironic-reference/`).
 */

import { HistoryRepository } from '../../adapters/dynamo/history-repository.ts';
import type { WriteOp } from '../../adapters/dynamo/inventory-store.ts';
import { mustExist } from '../../adapters/dynamo/node-repository.ts';
import { StaleDefaultSite } from '../../adapters/dynamo/site-repository.ts';
import {
  ConcurrentChange,
  conflict,
  forbidden,
  invalid,
  notAcceptable,
  notFound,
} from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike, isValidLogicalName, validateTrait } from '../../domain/identifiers.ts';
import {
  DELETE_ALLOWED_STATES,
  defaultListFields,
  selectableFields,
  VALID_FAULTS,
} from '../../domain/nodes/fields.ts';
import {
  createNode,
  type Node,
  normalizeSiteName,
  patchNode,
  validateNodeCreate,
} from '../../domain/nodes/node.ts';
import { renderNode } from '../../domain/nodes/render.ts';
import { PROVISION_STATES } from '../../domain/provisioning/states.ts';
import { validator } from '../../domain/schema.ts';
import type { ApiRequest, ApiResponse } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, authorizeNode, listingProject, patchableFields } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseBoolean, parseListParams } from '../listing.ts';

/** Parents of everything a node owns, deleted with it (see NodeRepository.deleteCascade). */
const NODE_CHILD_KINDS = [
  'port',
  'portgroup',
  'volume_connector',
  'volume_target',
  'bios_setting',
  'allocation',
];

/** Filters of GET /v1/nodes: query parameter → [node field, minimum microversion]. */
const STRING_FILTERS: Readonly<Record<string, readonly [string, number]>> = {
  driver: ['driver', 16],
  provision_state: ['provision_state', 9],
  resource_class: ['resource_class', 21],
  conductor_group: ['conductor_group', 46],
  owner: ['owner', 50],
  lessee: ['lessee', 65],
  fault: ['fault', 42],
  instance_uuid: ['instance_uuid', 1],
  chassis_uuid: ['chassis_uuid', 1],
  shard: ['shard', 82],
};
const BOOLEAN_FILTERS: Readonly<Record<string, readonly [string, number]>> = {
  maintenance: ['maintenance', 1],
  retired: ['retired', 61],
};
const LIST_PARAMS = ['limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'detail', 'associated', 'project'];

export async function resolveNode(
  deps: Dependencies,
  ident: string,
): Promise<{ node: Node; version: number }> {
  let uuid: string | undefined;
  if (isUuidLike(ident)) uuid = canonicalUuid(ident);
  else if (isValidLogicalName(ident)) uuid = await deps.nodes.uuidForName(ident);
  const found = uuid ? await deps.nodes.get(uuid) : undefined;
  if (!found) throw notFound(`Node ${ident} could not be found.`);
  return found;
}

/** Attempts of `actOnCurrentNode` before a concurrent change is the client's 409. */
const CURRENT_NODE_ATTEMPTS = 3;

/**
 * Runs `act` on the node as stored now, and again on a fresh read when its write lost to
 * a concurrent one that took no lock (the power sync recording a state, a heartbeat's
 * callback): the request is checked again on the node it now applies to, as if it had come
 * a moment later. A node locked by a task stays Ironic's 409 NodeLocked at once.
 */
export async function actOnCurrentNode<T>(
  deps: Dependencies,
  ident: string,
  act: (found: { node: Node; version: number }) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const found = await resolveNode(deps, ident);
    try {
      return await act(found);
    } catch (error) {
      if (!(error instanceof ConcurrentChange) || attempt >= CURRENT_NODE_ATTEMPTS) throw error;
    }
  }
}

function nodeUrl(request: ApiRequest, uuid: string): string {
  return `${request.baseUrl}/v1/nodes/${uuid}`;
}

function render(request: ApiRequest, node: Node, fields?: readonly string[]) {
  return renderNode(node, {
    minor: request.version.minor,
    baseUrl: request.baseUrl,
    ...(fields ? { fields } : {}),
  });
}

/**
 * The site a new node joins, and the checks its creating transaction needs for it: an
 * explicit conductor_group is checked by the repository (the site must exist); the
 * default site, as this container last read it unless `fresh`, must still be the default.
 */
async function siteForNewNode(
  deps: Dependencies,
  given: unknown,
  fresh: boolean,
): Promise<{ site: string; checks: WriteOp[] }> {
  if (given !== undefined && given !== null && given !== '') {
    return { site: normalizeSiteName(given), checks: [] };
  }
  const fallback = await deps.sites.defaultForNewNode(fresh);
  if (!fallback) {
    throw invalid(
      'No conductor_group (site) was given and no default site is set: give conductor_group, or set a default site.',
    );
  }
  return { site: fallback.name, checks: [fallback.check] };
}

function listQuery(request: ApiRequest) {
  const minor = request.version.minor;
  const equals: Record<string, string | boolean | null> = {};
  for (const [name, value] of Object.entries(request.query)) {
    const stringFilter = STRING_FILTERS[name];
    const booleanFilter = BOOLEAN_FILTERS[name];
    const filter = stringFilter ?? booleanFilter;
    if (!filter) {
      if (!LIST_PARAMS.includes(name)) throw invalid(`Unknown argument: "${name}"`);
      continue;
    }
    if (filter[1] > minor) {
      // Ironic's check_for_invalid_state_and_allow_filter raises a bare NotAcceptable.
      throw notAcceptable(
        name === 'provision_state'
          ? 'Request not acceptable.'
          : `Request not acceptable. The minimal required API version should be 1.${filter[1]}`,
      );
    }
    equals[filter[0]] = booleanFilter
      ? (parseBoolean(value, name) as boolean)
      : normalizeFilterValue(name, value);
  }
  const associated = parseBoolean(request.query.associated, 'associated');
  return { equals, ...(associated !== undefined ? { associated } : {}) };
}

/**
 * A string filter's value, checked as Ironic's `NodesController.get_all` checks it: UUIDs
 * (`args.uuid`), the provision state against the state machine's states
 * (`check_for_invalid_state_and_allow_filter`), the fault against VALID_FAULTS
 * (`check_allow_filter_by_fault`); the others (driver, resource_class, owner ...) are any
 * string, an unknown one matching nothing.
 */
function normalizeFilterValue(name: string, value: string): string {
  if (name === 'conductor_group') return value.toLowerCase();
  if (name === 'instance_uuid' || name === 'chassis_uuid') {
    if (!isUuidLike(value)) throw invalid(`Expected UUID for ${name}: ${value}`);
    return canonicalUuid(value);
  }
  if (name === 'provision_state' && !(PROVISION_STATES as readonly string[]).includes(value))
    throw invalid(`Provision state "${value}" is not valid`);
  if (name === 'fault' && !(VALID_FAULTS as readonly string[]).includes(value)) {
    throw invalid(
      `Unrecognized fault "${value}" is specified, allowed faults are (${VALID_FAULTS.map((fault) => `'${fault}'`).join(', ')})`,
    );
  }
  return value;
}

function listHandler(deps: Dependencies, detailPath: boolean) {
  return async (request: ApiRequest): Promise<ApiResponse> => {
    authorize(request, 'node:list');
    const minor = request.version.minor;
    const params = parseListParams(request, {
      sortKeys: ['id', 'created_at', 'name'],
      selectable: ['uuid', ...selectableFields(minor)],
      defaultFields: defaultListFields(minor),
      detailPath,
    });
    const { equals, associated } = listQuery(request);
    // As Ironic's check_list_policy: a caller limited to its project may name only that
    // one; asking for another is 403, never a look at its nodes.
    const scope = listingProject(request);
    const asked = request.query.project;
    if (scope !== undefined && asked !== undefined && asked !== scope) {
      throw forbidden('Access was denied to the following resource: baremetal:node:list_all');
    }
    const project = asked ?? scope;
    if (project !== undefined && params.sortKey === 'name') {
      throw invalid('sort_key=name is not available when listing by project: use the default order.');
    }
    const page = await deps.nodes.list({
      limit: params.limit,
      ...(params.marker ? { markerUuid: params.marker } : {}),
      sortKey: params.sortKey === 'name' ? 'name' : 'created_at',
      descending: params.descending,
      equals,
      ...(associated !== undefined ? { associated } : {}),
      ...(project !== undefined ? { project } : {}),
    });
    const body: Record<string, unknown> = {
      nodes: page.nodes.map((node) => render(request, node, params.fields)),
    };
    const last = page.nodes.at(-1);
    if (page.more && last)
      body.next = nextLink(request, detailPath ? 'nodes/detail' : 'nodes', params, last.uuid);
    return json(body);
  };
}

export const validateTraitsBody = validator<{ traits: string[] }>('traits', {
  type: 'object',
  properties: { traits: { type: 'array', items: { type: 'string' }, maxItems: 50 } },
  required: ['traits'],
  additionalProperties: false,
});

export const validateMaintenanceBody = validator<{ reason?: string | null }>('maintenance', {
  type: 'object',
  properties: { reason: { type: ['string', 'null'], maxLength: 255 } },
  additionalProperties: false,
});

/** Ironic's rules for deleting a node (checked again on each round of the deletion). */
function checkDeletable(node: Node): void {
  if (node.protected)
    throw forbidden(`Node ${node.uuid} is protected and cannot be undeployed, rebuilt or deleted`);
  if (!node.maintenance && !(DELETE_ALLOWED_STATES as readonly string[]).includes(node.provision_state)) {
    throw conflict(
      `Can not delete node "${node.uuid}" while it is in provision state "${node.provision_state}". Valid provision states to perform deletion are: "('${DELETE_ALLOWED_STATES.join("', '")}')", or set the node into maintenance mode`,
    );
  }
  if (node.reservation) {
    throw conflict(
      `Node ${node.uuid} is locked by host ${node.reservation}, please retry after the current operation is completed.`,
    );
  }
}

export function registerNodeRoutes(router: Router, deps: Dependencies): void {
  router.on('GET', '/v1/nodes', listHandler(deps, false));
  router.on('GET', '/v1/nodes/detail', listHandler(deps, true));

  router.on('POST', '/v1/nodes', async (request) => {
    authorize(request, 'node:create');
    const body = validateNodeCreate(jsonBody(request));
    const uuid = body.uuid === undefined || body.uuid === null ? deps.newUuid() : String(body.uuid);
    if (!isUuidLike(uuid)) throw invalid(`Expected a UUID but received ${uuid}.`);
    // A second attempt only when the remembered default site was stale: read it afresh.
    for (let attempt = 1; ; attempt++) {
      const { site, checks } = await siteForNewNode(deps, body.conductor_group, attempt > 1);
      const node = createNode(body, {
        uuid: canonicalUuid(uuid),
        now: deps.now(),
        minor: request.version.minor,
        site,
      });
      // The site's existence is checked by the repository, in the creating transaction.
      if (node.chassis_uuid)
        checks.push(
          mustExist(
            'chassis',
            node.chassis_uuid,
            invalid(`Chassis ${node.chassis_uuid} could not be found.`),
          ),
        );
      try {
        await deps.nodes.create(node, checks);
      } catch (error) {
        if (error instanceof StaleDefaultSite && attempt < 2) continue;
        throw error;
      }
      return json(render(request, node), 201, { Location: nodeUrl(request, node.uuid) });
    }
  });

  router.on('GET', '/v1/nodes/{node}', async (request) => {
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get', node);
    const fields = request.query.fields;
    const selected =
      fields === undefined
        ? undefined
        : fields
            .split(',')
            .map((field) => field.trim())
            .filter(Boolean);
    if (selected) {
      const selectable = ['uuid', ...selectableFields(request.version.minor)];
      const bad = selected.find((field) => !selectable.includes(field));
      if (bad) throw invalid(`Field ${bad} is not a valid field.`);
    }
    return json(render(request, node, selected));
  });

  router.on('PATCH', '/v1/nodes/{node}', async (request) => {
    const { node, version } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:update', node);
    const allowedFields = patchableFields(request, node);
    const patched = patchNode(node, jsonBody(request), {
      minor: request.version.minor,
      now: deps.now(),
      ...(allowedFields ? { allowedFields } : {}),
    });
    // A new site's existence is checked by the repository, in the same transaction.
    const checks: WriteOp[] = [];
    if (patched.chassis_uuid && patched.chassis_uuid !== node.chassis_uuid) {
      checks.push(
        mustExist(
          'chassis',
          patched.chassis_uuid,
          invalid(`Chassis ${patched.chassis_uuid} could not be found.`),
        ),
      );
    }
    await deps.nodes.update(node, patched, version, checks);
    return json(render(request, patched));
  });

  router.on('DELETE', '/v1/nodes/{node}', async (request) => {
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:delete', node);
    await deps.nodes.deleteCascade(
      node.uuid,
      NODE_CHILD_KINDS.map((kind) => `${kind}@node#${node.uuid}`),
      checkDeletable,
    );
    // History is too long for the node's transaction: removed right after, in batches.
    await new HistoryRepository(deps.store).deleteForNode(node);
    return noContent();
  });

  router.on('GET', '/v1/nodes/{node}/states', async (request) => {
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get', node);
    const minor = request.version.minor;
    const states: Record<string, unknown> = {
      console_enabled: node.console_enabled,
      last_error: node.last_error,
      power_state: node.power_state,
      provision_state: minor < 2 && node.provision_state === 'available' ? null : node.provision_state,
      target_power_state: node.target_power_state,
      target_provision_state: node.target_provision_state,
      provision_updated_at: node.provision_updated_at,
    };
    if (minor >= 12)
      Object.assign(states, { raid_config: node.raid_config, target_raid_config: node.target_raid_config });
    if (minor >= 75) Object.assign(states, { boot_mode: node.boot_mode, secure_boot: node.secure_boot });
    return json(states);
  });

  router.on('PUT', '/v1/nodes/{node}/maintenance', async (request) => {
    const { node, version } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:set_maintenance', node);
    const body = request.body?.trim() ? validateMaintenanceBody(jsonBody(request)) : {};
    const reason = body.reason ?? request.query.reason ?? null;
    await deps.nodes.update(
      node,
      { ...node, maintenance: true, maintenance_reason: reason, updated_at: deps.now() },
      version,
    );
    return noContent(202);
  });

  router.on('DELETE', '/v1/nodes/{node}/maintenance', async (request) => {
    const { node, version } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:set_maintenance', node);
    const updated = {
      ...node,
      maintenance: false,
      maintenance_reason: null,
      fault: null,
      updated_at: deps.now(),
    };
    await deps.nodes.update(node, updated, version);
    return noContent(202);
  });

  registerTraitRoutes(router, deps);
}

function registerTraitRoutes(router: Router, deps: Dependencies): void {
  const traitsGate = (request: ApiRequest) => {
    if (request.version.minor < 37) throw notFound('The resource could not be found.');
  };
  const update = async (request: ApiRequest, change: (traits: string[]) => string[]) => {
    traitsGate(request);
    const { node, version } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:traits:set', node);
    const traits = [...new Set(change([...node.traits]))].sort();
    if (traits.length > 50) throw invalid('A node may have at most 50 traits.');
    await deps.nodes.update(node, { ...node, traits, updated_at: deps.now() }, version);
    return noContent(204);
  };

  router.on('GET', '/v1/nodes/{node}/traits', async (request) => {
    traitsGate(request);
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get', node);
    return json({ traits: [...node.traits].sort() });
  });
  router.on('PUT', '/v1/nodes/{node}/traits', (request) =>
    update(request, () =>
      validateTraitsBody(jsonBody(request)).traits.map((trait) => validateTrait(trait, 'traits')),
    ),
  );
  router.on('DELETE', '/v1/nodes/{node}/traits', (request) => update(request, () => []));
  router.on('PUT', '/v1/nodes/{node}/traits/{trait}', async (request) => {
    const trait = request.params.trait as string;
    await update(request, (traits) => [...traits, validateTrait(trait)]);
    // As Ironic (NodeTraitsController.put): the node as the path names it, UUID or name.
    const location = `${request.baseUrl}/v1/nodes/${encodeURIComponent(request.params.node as string)}/traits/${encodeURIComponent(trait)}`;
    return noContent(204, { Location: location });
  });
  router.on('DELETE', '/v1/nodes/{node}/traits/{trait}', async (request) => {
    const trait = request.params.trait as string;
    return update(request, (traits) => {
      if (!traits.includes(trait))
        throw notFound(`Node ${request.params.node} doesn't have a trait ${trait}`);
      return traits.filter((existing) => existing !== trait);
    });
  });
}
