/**
 * /v1/ports and /v1/portgroups (and their node and port-group sub-resources) with
 * Ironic's semantics (see `../shared/ironic-reference/`, exchanges 054-066).
 *
 * A port or port group is seen by whoever may see its node, and changed by whoever may
 * change it (`authorizeNode`); to a project-scoped caller, those of other projects'
 * nodes do not exist (404, or 400 "Node ... could not be found." where Ironic answers
 * 400). Such a caller must name a node, a port group or an address to list: listing
 * the whole fleet's ports is for admins and readers (403 otherwise).
 */

import type { WriteOp } from '../../adapters/dynamo/inventory-store.ts';
import { PortRepository, portMissing } from '../../adapters/dynamo/port-repository.ts';
import { PortgroupRepository, portgroupMissing } from '../../adapters/dynamo/portgroup-repository.ts';
import { conflict, DomainError, forbidden, invalid, notAcceptable, notFound } from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike, isValidLogicalName, normalizeMac } from '../../domain/identifiers.ts';
import { PATCH_SCHEMA } from '../../domain/json-patch.ts';
import type { Node } from '../../domain/nodes/node.ts';
import {
  checkPortCreate,
  createPort,
  PORT_CREATE_SCHEMA,
  PORT_DEFAULT_FIELDS,
  type Port,
  patchPort,
  portSelectableFields,
  rejectNewerPortFields,
  renderPort,
  strictBoolean,
} from '../../domain/ports/port.ts';
import {
  checkPortgroupCreate,
  createPortgroup,
  PORTGROUP_CREATE_SCHEMA,
  PORTGROUP_DEFAULT_FIELDS,
  PORTGROUP_FIELDS,
  PORTGROUP_SUBRESOURCES_SINCE,
  PORTGROUPS_SINCE,
  type Portgroup,
  patchPortgroup,
  rejectNewerPortgroupFields,
  renderPortgroup,
} from '../../domain/ports/portgroup.ts';
import type { ApiRequest, ApiResponse } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, authorizeNode, listingProject } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseFields, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

/** The API description of these routes, for `OPERATIONS` in `../openapi.ts`. */
export const PORT_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/ports': {
    summary: 'List ports (node, portgroup, address filters; limit/marker; fields)',
    tag: 'ports',
  },
  'GET /v1/ports/detail': { summary: 'List ports with every field', tag: 'ports' },
  'POST /v1/ports': {
    summary: 'Create a port',
    tag: 'ports',
    requestSchema: PORT_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/ports/{port}': { summary: 'Show a port', tag: 'ports' },
  'PATCH /v1/ports/{port}': {
    summary: 'Update a port with an RFC 6902 JSON Patch',
    tag: 'ports',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/ports/{port}': { summary: 'Delete a port', tag: 'ports', status: 204 },
  'GET /v1/nodes/{node}/ports': { summary: 'List the ports of a node', tag: 'ports' },
  'GET /v1/nodes/{node}/ports/detail': { summary: 'List the ports of a node with every field', tag: 'ports' },
  'GET /v1/portgroups/{portgroup}/ports': { summary: 'List the ports of a port group', tag: 'ports' },
  'GET /v1/portgroups/{portgroup}/ports/detail': {
    summary: 'List the ports of a port group with every field',
    tag: 'ports',
  },
  'GET /v1/portgroups': {
    summary: 'List port groups (node, address filters; limit/marker; fields)',
    tag: 'portgroups',
  },
  'GET /v1/portgroups/detail': { summary: 'List port groups with every field', tag: 'portgroups' },
  'POST /v1/portgroups': {
    summary: 'Create a port group',
    tag: 'portgroups',
    requestSchema: PORTGROUP_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/portgroups/{portgroup}': { summary: 'Show a port group by UUID or name', tag: 'portgroups' },
  'PATCH /v1/portgroups/{portgroup}': {
    summary: 'Update a port group with an RFC 6902 JSON Patch',
    tag: 'portgroups',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/portgroups/{portgroup}': {
    summary: 'Delete a port group (it must have no ports)',
    tag: 'portgroups',
    status: 204,
  },
  'GET /v1/nodes/{node}/portgroups': { summary: 'List the port groups of a node', tag: 'portgroups' },
  'GET /v1/nodes/{node}/portgroups/detail': {
    summary: 'List the port groups of a node with every field',
    tag: 'portgroups',
  },
};

const SORT_KEYS = ['id', 'created_at'];
const PAGING_PARAMS = ['limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'detail'];
const PORT_LIST_PARAMS = [...PAGING_PARAMS, 'node', 'node_uuid', 'address', 'portgroup'];
const PORTGROUP_LIST_PARAMS = [...PAGING_PARAMS, 'node', 'address'];
/** `?fields=` came with 1.8; `?node=<name>` with node names (1.5). */
const FIELDS_SINCE = 8;
const NODE_NAMES_SINCE = 5;

interface Repositories {
  readonly ports: PortRepository;
  readonly portgroups: PortgroupRepository;
}

/** Runs an access check; a "does not exist to you" answer becomes `error` (Ironic's wording). */
function conceal(check: () => void, error: DomainError): void {
  try {
    check();
  } catch (caught) {
    if (caught instanceof DomainError && caught.kind === 'not-found') throw error;
    throw caught;
  }
}

/** The node a request body names (UUID or name); unknown is 400, as Ironic answers for a body. */
async function nodeForBody(deps: Dependencies, ident: string): Promise<Node> {
  try {
    return (await resolveNode(deps, ident)).node;
  } catch (caught) {
    if (caught instanceof DomainError && caught.kind === 'not-found')
      throw invalid(`Node ${ident} could not be found.`);
    throw caught;
  }
}

/** A node a caller means to use in a write: it must exist and be visible to them. */
async function writableNode(
  deps: Dependencies,
  request: ApiRequest,
  ident: string,
  action: string,
): Promise<Node> {
  const node = await nodeForBody(deps, ident);
  const missing = invalid(`Node ${ident} could not be found.`);
  conceal(() => authorizeNode(request, action.replace(/:\w+$/, ':get'), node), missing);
  authorizeNode(request, action, node);
  return node;
}

/** The node of an existing port or group; one deleted meanwhile makes its child vanish too. */
async function ownerNode(deps: Dependencies, uuid: string, missing: DomainError): Promise<Node> {
  const found = await deps.nodes.get(uuid);
  if (!found) throw missing;
  return found.node;
}

function checkQueryNames(request: ApiRequest, allowed: readonly string[]): void {
  for (const name of Object.keys(request.query)) {
    if (!allowed.includes(name)) throw invalid(`Unknown argument: "${name}"`);
  }
}

function splitFields(raw: string | undefined): string[] | undefined {
  return raw
    ?.split(',')
    .map((field) => field.trim())
    .filter(Boolean);
}

function checkFieldsVersion(request: ApiRequest, fields: readonly string[] | undefined): void {
  if (fields !== undefined && request.version.minor < FIELDS_SINCE)
    throw notAcceptable('Request not acceptable.');
}

function portgroupsGate(request: ApiRequest, since = PORTGROUPS_SINCE): void {
  if (request.version.minor < since) throw notFound('The resource could not be found.');
}

async function resolvePortgroup(
  repos: Repositories,
  ident: string,
): Promise<{ portgroup: Portgroup; version: number }> {
  let uuid: string | undefined;
  if (isUuidLike(ident)) uuid = canonicalUuid(ident);
  else if (isValidLogicalName(ident)) uuid = await repos.portgroups.uuidForName(ident);
  else throw invalid(`Expected a logical name or UUID but received ${ident}.`);
  const found = uuid ? await repos.portgroups.get(uuid) : undefined;
  if (!found) throw portgroupMissing(ident);
  return found;
}

/** A port group a body names: unknown is 400 (Ironic changes the 404 for bodies). */
async function portgroupForBody(repos: Repositories, ident: string) {
  try {
    return await resolvePortgroup(repos, ident);
  } catch (caught) {
    if (caught instanceof DomainError && caught.kind === 'not-found')
      throw invalid(`Portgroup ${ident} could not be found.`);
    throw caught;
  }
}

function portUuidParam(request: ApiRequest): string {
  const ident = request.params.port as string;
  if (!isUuidLike(ident)) throw invalid(`Expected UUID for port_uuid: ${ident}`);
  return canonicalUuid(ident);
}

async function visiblePort(
  deps: Dependencies,
  repos: Repositories,
  request: ApiRequest,
  action: string,
): Promise<{ port: Port; version: number; node: Node }> {
  const uuid = portUuidParam(request);
  const missing = portMissing(request.params.port as string);
  const found = await repos.ports.get(uuid);
  if (!found) throw missing;
  const node = await ownerNode(deps, found.port.node_uuid, missing);
  conceal(() => authorizeNode(request, 'port:get', node), missing);
  authorizeNode(request, action, node);
  return { ...found, node };
}

async function visiblePortgroup(
  deps: Dependencies,
  repos: Repositories,
  request: ApiRequest,
  action: string,
): Promise<{ portgroup: Portgroup; version: number; node: Node }> {
  const ident = request.params.portgroup as string;
  const found = await resolvePortgroup(repos, ident);
  const missing = portgroupMissing(ident);
  const node = await ownerNode(deps, found.portgroup.node_uuid, missing);
  conceal(() => authorizeNode(request, 'portgroup:get', node), missing);
  authorizeNode(request, action, node);
  return { ...found, node };
}

/** A node to list under: it must exist and be visible (404 otherwise, as Ironic). */
async function visibleNode(
  deps: Dependencies,
  request: ApiRequest,
  ident: string,
  action: string,
): Promise<Node> {
  const { node } = await resolveNode(deps, ident);
  conceal(() => authorizeNode(request, action, node), notFound(`Node ${ident} could not be found.`));
  return node;
}

/** True when the caller may read the node (a project-scoped caller only its own). */
function canRead(request: ApiRequest, action: string, node: Node | undefined): boolean {
  if (!node) return false;
  try {
    authorizeNode(request, action, node);
    return true;
  } catch (caught) {
    if (caught instanceof DomainError && (caught.kind === 'not-found' || caught.kind === 'forbidden'))
      return false;
    throw caught;
  }
}

type PortScope = 'all' | 'node' | 'portgroup';

function portListHandler(deps: Dependencies, repos: Repositories, scope: PortScope, detailPath: boolean) {
  return async (request: ApiRequest): Promise<ApiResponse> => {
    if (scope === 'portgroup') portgroupsGate(request, PORTGROUP_SUBRESOURCES_SINCE);
    authorize(request, 'port:list');
    const { query } = request;
    const minor = request.version.minor;
    checkQueryNames(request, PORT_LIST_PARAMS);
    const requested = splitFields(query.fields);
    checkFieldsVersion(request, requested);
    if (requested) rejectNewerPortFields(requested, minor);
    const params = parseListParams(request, {
      sortKeys: SORT_KEYS,
      selectable: portSelectableFields(),
      defaultFields: [...PORT_DEFAULT_FIELDS],
      detailPath,
    });

    let nodeIdent: string | undefined;
    if (scope === 'node') nodeIdent = request.params.node as string;
    else if (query.node_uuid !== undefined) {
      if (!isUuidLike(query.node_uuid)) throw invalid(`Expected UUID for node_uuid: ${query.node_uuid}`);
      nodeIdent = query.node_uuid;
    } else if (query.node !== undefined) {
      if (minor < NODE_NAMES_SINCE && !isUuidLike(query.node)) throw notAcceptable('Request not acceptable.');
      nodeIdent = query.node;
    }
    const portgroupIdent = scope === 'portgroup' ? (request.params.portgroup as string) : query.portgroup;
    if (scope !== 'portgroup' && portgroupIdent !== undefined && minor < PORTGROUP_SUBRESOURCES_SINCE)
      throw notAcceptable('Request not acceptable.');
    if (nodeIdent !== undefined && portgroupIdent !== undefined) throw forbidden('Not authorized.');
    const address = query.address !== undefined ? normalizeMac(query.address, 'address') : undefined;

    let nodeUuid: string | undefined;
    let portgroupUuid: string | undefined;
    if (nodeIdent !== undefined) {
      nodeUuid = (await visibleNode(deps, request, nodeIdent, 'port:get')).uuid;
    } else if (portgroupIdent !== undefined) {
      const { portgroup } = await resolvePortgroup(repos, portgroupIdent);
      const node = await ownerNode(deps, portgroup.node_uuid, portgroupMissing(portgroupIdent));
      conceal(() => authorizeNode(request, 'port:get', node), portgroupMissing(portgroupIdent));
      [nodeUuid, portgroupUuid] = [node.uuid, portgroup.uuid];
    } else if (address === undefined && listingProject(request) !== undefined) {
      throw forbidden(
        'Listing every port needs the admin or reader role: give node, portgroup or address to list the ports of your nodes.',
      );
    }

    const page = await repos.ports.list({
      limit: params.limit,
      ...(params.marker ? { markerUuid: canonicalUuid(params.marker) } : {}),
      descending: params.descending,
      ...(nodeUuid !== undefined ? { nodeUuid } : {}),
      ...(portgroupUuid !== undefined ? { portgroupUuid } : {}),
      ...(address !== undefined ? { address } : {}),
    });
    let ports = page.ports;
    if (nodeUuid === undefined && listingProject(request) !== undefined) {
      // By address only: the one port, if its node is the caller's.
      const visible = await Promise.all(
        ports.map(async (port) => canRead(request, 'port:get', (await deps.nodes.get(port.node_uuid))?.node)),
      );
      ports = ports.filter((_port, i) => visible[i]);
    }
    const body: Record<string, unknown> = {
      ports: ports.map((port) =>
        renderPort(port, {
          minor,
          baseUrl: request.baseUrl,
          ...(params.fields ? { fields: params.fields } : {}),
        }),
      ),
    };
    const last = page.ports.at(-1);
    if (page.more && last) {
      const base =
        scope === 'node'
          ? `nodes/${nodeIdent}/ports`
          : scope === 'portgroup'
            ? `portgroups/${portgroupIdent}/ports`
            : 'ports';
      body.next = nextLink(request, detailPath ? `${base}/detail` : base, params, last.uuid);
    }
    return json(body);
  };
}

function portgroupListHandler(deps: Dependencies, repos: Repositories, byNode: boolean, detailPath: boolean) {
  return async (request: ApiRequest): Promise<ApiResponse> => {
    portgroupsGate(request, byNode ? PORTGROUP_SUBRESOURCES_SINCE : PORTGROUPS_SINCE);
    authorize(request, 'portgroup:list');
    const { query } = request;
    checkQueryNames(request, PORTGROUP_LIST_PARAMS);
    const requested = splitFields(query.fields);
    rejectNewerPortgroupFields(requested, request.version.minor);
    const params = parseListParams(request, {
      sortKeys: SORT_KEYS,
      selectable: [...PORTGROUP_FIELDS],
      defaultFields: [...PORTGROUP_DEFAULT_FIELDS],
      detailPath,
    });
    const nodeIdent = byNode ? (request.params.node as string) : query.node;
    const address = query.address !== undefined ? normalizeMac(query.address, 'address') : undefined;
    let nodeUuid: string | undefined;
    if (nodeIdent !== undefined) {
      nodeUuid = (await visibleNode(deps, request, nodeIdent, 'portgroup:get')).uuid;
    } else if (address === undefined && listingProject(request) !== undefined) {
      throw forbidden(
        'Listing every port group needs the admin or reader role: give node or address to list the port groups of your nodes.',
      );
    }
    const page = await repos.portgroups.list({
      limit: params.limit,
      ...(params.marker ? { markerUuid: canonicalUuid(params.marker) } : {}),
      descending: params.descending,
      ...(nodeUuid !== undefined ? { nodeUuid } : {}),
      ...(address !== undefined ? { address } : {}),
    });
    let portgroups = page.portgroups;
    if (nodeUuid === undefined && listingProject(request) !== undefined) {
      const visible = await Promise.all(
        portgroups.map(async (group) =>
          canRead(request, 'portgroup:get', (await deps.nodes.get(group.node_uuid))?.node),
        ),
      );
      portgroups = portgroups.filter((_group, i) => visible[i]);
    }
    const body: Record<string, unknown> = {
      portgroups: portgroups.map((group) =>
        renderPortgroup(group, {
          baseUrl: request.baseUrl,
          ...(params.fields ? { fields: params.fields } : {}),
        }),
      ),
    };
    const last = page.portgroups.at(-1);
    if (page.more && last) {
      const base = byNode ? `nodes/${nodeIdent}/portgroups` : 'portgroups';
      body.next = nextLink(request, detailPath ? `${base}/detail` : base, params, last.uuid);
    }
    return json(body);
  };
}

export function registerPortRoutes(router: Router, deps: Dependencies): void {
  const repos: Repositories = {
    ports: new PortRepository(deps.store),
    portgroups: new PortgroupRepository(deps.store),
  };
  registerPorts(router, deps, repos);
  registerPortgroups(router, deps, repos);
}

function registerPorts(router: Router, deps: Dependencies, repos: Repositories): void {
  router.on('GET', '/v1/ports', portListHandler(deps, repos, 'all', false));
  router.on('GET', '/v1/ports/detail', portListHandler(deps, repos, 'all', true));
  router.on('GET', '/v1/nodes/{node}/ports', portListHandler(deps, repos, 'node', false));
  router.on('GET', '/v1/nodes/{node}/ports/detail', portListHandler(deps, repos, 'node', true));
  router.on('GET', '/v1/portgroups/{portgroup}/ports', portListHandler(deps, repos, 'portgroup', false));
  router.on(
    'GET',
    '/v1/portgroups/{portgroup}/ports/detail',
    portListHandler(deps, repos, 'portgroup', true),
  );

  router.on('POST', '/v1/ports', async (request) => {
    const minor = request.version.minor;
    const body = checkPortCreate(jsonBody(request), minor);
    const node = await writableNode(deps, request, body.node_uuid, 'port:create');
    // The node's existence (and that it is not being deleted) is checked by the repository.
    const checks: WriteOp[] = [];
    let portgroup: Portgroup | null = null;
    if (body.portgroup_uuid !== undefined && body.portgroup_uuid !== null) {
      const found = await portgroupForBody(repos, body.portgroup_uuid as string);
      portgroup = found.portgroup;
      if (portgroup.node_uuid !== node.uuid) {
        throw invalid('Port can not be added to a portgroup belonging to a different node.');
      }
      // As Ironic: only an explicit pxe_enabled=True is refused (the default is not checked).
      if (strictBoolean(body.pxe_enabled, 'pxe_enabled') === true && !portgroup.standalone_ports_supported) {
        throw conflict(
          `Port group ${portgroup.uuid} doesn't support standalone ports. This port cannot be created as a member of that portgroup as the port's 'pxe_enabled' field was set to True.`,
        );
      }
      checks.push(repos.portgroups.touch(portgroup, found.version));
    }
    const uuid =
      body.uuid === undefined || body.uuid === null ? deps.newUuid() : canonicalUuid(body.uuid as string);
    const port = createPort(body, {
      uuid,
      now: deps.now(),
      minor,
      nodeUuid: node.uuid,
      portgroupUuid: portgroup?.uuid ?? null,
    });
    await repos.ports.create(port, checks);
    return json(renderPort(port, { minor, baseUrl: request.baseUrl }), 201, {
      Location: `${request.baseUrl}/v1/ports/${port.uuid}`,
    });
  });

  router.on('GET', '/v1/ports/{port}', async (request) => {
    const { port } = await visiblePort(deps, repos, request, 'port:get');
    const fields = splitFields(request.query.fields);
    checkFieldsVersion(request, fields);
    if (fields) {
      rejectNewerPortFields(fields, request.version.minor);
      parseFields(request.query.fields as string, portSelectableFields());
    }
    return json(
      renderPort(port, {
        minor: request.version.minor,
        baseUrl: request.baseUrl,
        ...(fields ? { fields } : {}),
      }),
    );
  });

  router.on('PATCH', '/v1/ports/{port}', async (request) => {
    const { port, version } = await visiblePort(deps, repos, request, 'port:update');
    const minor = request.version.minor;
    const patched = patchPort(port, jsonBody(request), { minor, now: deps.now() });
    const checks: WriteOp[] = [];
    if (patched.node_uuid !== port.node_uuid) {
      const ident = patched.node_uuid;
      const node = await writableNode(deps, request, ident, 'port:update');
      // Joining the node's ledger (the repository) checks it exists.
      patched.node_uuid = node.uuid;
    }
    if (patched.portgroup_uuid !== null) {
      const joining = patched.portgroup_uuid !== port.portgroup_uuid;
      const found = joining
        ? await portgroupForBody(repos, patched.portgroup_uuid)
        : await repos.portgroups.get(patched.portgroup_uuid);
      if (found) {
        const { portgroup } = found;
        patched.portgroup_uuid = portgroup.uuid;
        if (portgroup.node_uuid !== patched.node_uuid) {
          throw invalid('Port can not be added to a portgroup belonging to a different node.');
        }
        const pxeChanged = patched.pxe_enabled !== port.pxe_enabled;
        if ((joining || pxeChanged) && patched.pxe_enabled && !portgroup.standalone_ports_supported) {
          throw conflict(
            `Port group ${portgroup.uuid} doesn't support standalone ports. This port cannot be a member of that portgroup as the port's 'pxe_enabled' field is set to True.`,
          );
        }
        if (joining || patched.node_uuid !== port.node_uuid)
          checks.push(repos.portgroups.touch(portgroup, found.version));
      } else {
        // The group vanished after the port joined it: the port is no longer in a group.
        patched.portgroup_uuid = null;
      }
    }
    await repos.ports.update(port, patched, version, checks);
    return json(renderPort(patched, { minor, baseUrl: request.baseUrl }));
  });

  router.on('DELETE', '/v1/ports/{port}', async (request) => {
    const { port, version } = await visiblePort(deps, repos, request, 'port:delete');
    await repos.ports.delete(port, version);
    return noContent();
  });
}

function registerPortgroups(router: Router, deps: Dependencies, repos: Repositories): void {
  router.on('GET', '/v1/portgroups', portgroupListHandler(deps, repos, false, false));
  router.on('GET', '/v1/portgroups/detail', portgroupListHandler(deps, repos, false, true));
  router.on('GET', '/v1/nodes/{node}/portgroups', portgroupListHandler(deps, repos, true, false));
  router.on('GET', '/v1/nodes/{node}/portgroups/detail', portgroupListHandler(deps, repos, true, true));

  router.on('POST', '/v1/portgroups', async (request) => {
    portgroupsGate(request);
    const body = checkPortgroupCreate(jsonBody(request), request.version.minor);
    const node = await writableNode(deps, request, body.node_uuid, 'portgroup:create');
    const uuid =
      body.uuid === undefined || body.uuid === null ? deps.newUuid() : canonicalUuid(body.uuid as string);
    const portgroup = createPortgroup(body, { uuid, now: deps.now(), nodeUuid: node.uuid });
    // The node's existence (and that it is not being deleted) is checked by the repository.
    await repos.portgroups.create(portgroup);
    return json(renderPortgroup(portgroup, { baseUrl: request.baseUrl }), 201, {
      Location: `${request.baseUrl}/v1/portgroups/${portgroup.uuid}`,
    });
  });

  router.on('GET', '/v1/portgroups/{portgroup}', async (request) => {
    portgroupsGate(request);
    const { portgroup } = await visiblePortgroup(deps, repos, request, 'portgroup:get');
    const fields = splitFields(request.query.fields);
    if (fields) {
      rejectNewerPortgroupFields(fields, request.version.minor);
      parseFields(request.query.fields as string, [...PORTGROUP_FIELDS]);
    }
    return json(renderPortgroup(portgroup, { baseUrl: request.baseUrl, ...(fields ? { fields } : {}) }));
  });

  router.on('PATCH', '/v1/portgroups/{portgroup}', async (request) => {
    portgroupsGate(request);
    const { portgroup, version } = await visiblePortgroup(deps, repos, request, 'portgroup:update');
    const patched = patchPortgroup(portgroup, jsonBody(request), {
      minor: request.version.minor,
      now: deps.now(),
      ident: request.params.portgroup as string,
    });
    const checks: WriteOp[] = [];
    if (patched.node_uuid !== portgroup.node_uuid) {
      const ident = patched.node_uuid;
      const node = await writableNode(deps, request, ident, 'portgroup:update');
      patched.node_uuid = node.uuid;
      if (node.uuid !== portgroup.node_uuid) {
        // Joining the new node's ledger (the repository) checks it exists.
        if (await repos.ports.anyInPortgroup(portgroup.node_uuid, portgroup.uuid))
          throw portgroupNotEmpty(portgroup);
      }
    }
    await repos.portgroups.update(portgroup, patched, version, checks);
    return json(renderPortgroup(patched, { baseUrl: request.baseUrl }));
  });

  router.on('DELETE', '/v1/portgroups/{portgroup}', async (request) => {
    portgroupsGate(request);
    const { portgroup, version } = await visiblePortgroup(deps, repos, request, 'portgroup:delete');
    if (await repos.ports.anyInPortgroup(portgroup.node_uuid, portgroup.uuid))
      throw portgroupNotEmpty(portgroup);
    await repos.portgroups.delete(portgroup, version);
    return noContent();
  });
}

/** Ironic's PortgroupNotEmpty (an Invalid: 400). */
const portgroupNotEmpty = (portgroup: Portgroup) =>
  invalid(`Cannot complete the requested action because portgroup ${portgroup.uuid} contains ports.`);
