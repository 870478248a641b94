/**
 * /v1/allocations (1.52+) and /v1/nodes/{node}/allocation, with Ironic 21.4's semantics
 * (reference exchanges 100-102).
 *
 * Ironic creates an allocation in state `allocating` and lets a conductor find a node
 * later. Metalplane creates it the same way, then does the conductor's matching at
 * once: candidate nodes (available, with a power state, not in maintenance, not
 * associated, of the resource class, with the traits, in the candidate list and the
 * owner's project), tried in random order (a node named like the allocation first);
 * the node is reserved (allocation_uuid and instance_uuid set) and the allocation made
 * `active` in one transaction conditional on both versions read, so two allocations can
 * never take one node. When no node fits, the allocation is `error` with Ironic's
 * last_error. If the process dies between the two steps, the allocation stays
 * `allocating`, as Ironic's would with a dead conductor.
 */
import {
  AllocationRepository,
  type VersionedAllocation,
} from '../../adapters/dynamo/allocation-repository.ts';
import { conflict, DomainError, forbidden, invalid, notAcceptable, notFound } from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike } from '../../domain/identifiers.ts';
import {
  ALLOCATION_BACKFILL_SINCE,
  ALLOCATION_OWNER_SINCE,
  ALLOCATION_SCHEMA,
  ALLOCATION_UPDATE_SINCE,
  ALLOCATIONS_SINCE,
  type Allocation,
  activateAllocation,
  allocationFailure,
  allocationFields,
  backfillErrors,
  candidateNodes,
  checkAllocationName,
  createAllocation,
  deallocationRefusal,
  failAllocation,
  patchAllocation,
  releaseNode,
  renderAllocation,
  reserveNode,
  stillSuitable,
  tryOrder,
  validateAllocationCreate,
} from '../../domain/inventory/allocation.ts';
import { patchValues, requireUuid, requireUuidOrName } from '../../domain/inventory/common.ts';
import { PATCH_SCHEMA } from '../../domain/json-patch.ts';
import type { Node } from '../../domain/nodes/node.ts';
import { ApiError } from '../../http/errors.ts';
import type { ApiRequest, ApiResponse } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, authorizeNode, listingProject } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseFields, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

const LIST_PARAMS = [
  'node',
  'resource_class',
  'state',
  'owner',
  'limit',
  'marker',
  'sort_key',
  'sort_dir',
  'fields',
];
/** Reading a node again after a concurrent change: how many times before giving up. */
const ATTEMPTS = 3;
/** At most this many nodes are considered for one allocation. */
const CANDIDATE_POOL = 1000;

export const ALLOCATION_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/allocations': {
    summary: 'List allocations (node, resource_class, state, owner; limit/marker, sort, fields)',
    tag: 'allocations',
  },
  'POST /v1/allocations': {
    summary: 'Create an allocation: reserve an available node of a resource class',
    tag: 'allocations',
    requestSchema: ALLOCATION_SCHEMA,
    status: 201,
  },
  'GET /v1/allocations/{allocation}': { summary: 'Show an allocation by UUID or name', tag: 'allocations' },
  'PATCH /v1/allocations/{allocation}': {
    summary: 'Update the name or extra of an allocation (JSON Patch)',
    tag: 'allocations',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/allocations/{allocation}': {
    summary: 'Delete an allocation, releasing its node',
    tag: 'allocations',
    status: 204,
  },
  'GET /v1/nodes/{node}/allocation': { summary: 'Show the allocation of a node', tag: 'allocations' },
  'DELETE /v1/nodes/{node}/allocation': {
    summary: 'Delete the allocation of a node',
    tag: 'allocations',
    status: 204,
  },
};

/** Ironic's `_route`: below 1.52 a GET is 404 and anything else 405. */
function allocationsGate(request: ApiRequest): void {
  if (request.version.minor >= ALLOCATIONS_SINCE) return;
  const message = 'The API version does not allow allocations';
  if (request.method === 'GET') throw notFound(message);
  throw new ApiError(405, message);
}

const nodeLocked = (node: Node) =>
  conflict(
    `Node ${node.uuid} is locked by host ${node.reservation}, please retry after the current operation is completed.`,
  );

function isConflict(error: unknown): boolean {
  return error instanceof DomainError && error.kind === 'conflict';
}

function checkOwnerFields(request: ApiRequest, fields: readonly string[] | undefined): void {
  if (fields?.includes('owner') && request.version.minor < ALLOCATION_OWNER_SINCE) {
    throw notAcceptable('Request not acceptable.');
  }
}

function requestedFields(request: ApiRequest): string[] | undefined {
  const raw = request.query.fields;
  if (raw === undefined) return undefined;
  const fields = raw
    .split(',')
    .map((field) => field.trim())
    .filter(Boolean);
  checkOwnerFields(request, fields);
  return parseFields(raw, allocationFields(request.version.minor));
}

function render(request: ApiRequest, allocation: Allocation, fields?: readonly string[]) {
  return renderAllocation(allocation, { baseUrl: request.baseUrl, minor: request.version.minor, fields });
}

/** The allocations service: creation with matching or backfilling, and deletion. */
class Allocations {
  readonly repo: AllocationRepository;
  private readonly deps: Dependencies;

  constructor(deps: Dependencies) {
    this.deps = deps;
    this.repo = new AllocationRepository(deps.store);
  }

  async resolve(ident: string, name = 'allocation_ident'): Promise<VersionedAllocation> {
    requireUuidOrName(ident, name);
    const uuid = isUuidLike(ident) ? canonicalUuid(ident) : await this.repo.uuidForName(ident);
    const found = uuid ? await this.repo.get(uuid) : undefined;
    if (!found) throw notFound(`Allocation ${ident} could not be found.`);
    return found;
  }

  /** Records the failure (unless the allocation changed meanwhile) and returns the result. */
  async fail(current: VersionedAllocation, lastError: string): Promise<VersionedAllocation> {
    let state = current;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const failed = failAllocation(state.allocation, lastError, this.deps.now());
      try {
        await this.repo.update(state.allocation, failed, state.version);
        return { allocation: failed, version: state.version + 1 };
      } catch (error) {
        if (!isConflict(error)) throw error;
        const again = await this.repo.get(state.allocation.uuid);
        if (again?.allocation.state !== 'allocating') return again ?? state;
        state = again;
      }
    }
    return state;
  }

  /** Nodes the allocation may take, before the per-node checks. */
  private async pool(allocation: Allocation): Promise<Node[]> {
    if (allocation.candidate_nodes.length > 0) {
      const found = await Promise.all(allocation.candidate_nodes.map((uuid) => this.deps.nodes.get(uuid)));
      return found.flatMap((entry) => (entry ? [entry.node] : []));
    }
    const page = await this.deps.nodes.list({
      limit: CANDIDATE_POOL,
      sortKey: 'created_at',
      descending: false,
      equals: {
        provision_state: 'available',
        resource_class: allocation.resource_class,
        maintenance: false,
      },
      associated: false,
      ...(allocation.owner !== null ? { project: allocation.owner } : {}),
    });
    return page.nodes;
  }

  /** The conductor's `do_allocate`, done at once. */
  async allocate(created: VersionedAllocation): Promise<VersionedAllocation> {
    let current = created;
    const holder = await this.deps.nodes.uuidForInstance(current.allocation.uuid);
    if (holder) {
      return this.fail(
        current,
        `Unexpected exception during allocation: Instance ${current.allocation.uuid} is already associated with a node, it cannot be associated with this other node ${holder}`,
      );
    }
    const found = candidateNodes(current.allocation, await this.pool(current.allocation));
    if ('error' in found) return this.fail(current, allocationFailure(current.allocation, found.error));
    let locked = 0;
    for (const candidate of tryOrder(current.allocation, found.nodes)) {
      for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
        const fresh = await this.deps.nodes.get(candidate.uuid);
        if (!fresh || !stillSuitable(current.allocation, fresh.node)) break;
        if (fresh.node.reservation) {
          locked++;
          break;
        }
        const now = this.deps.now();
        const active = activateAllocation(current.allocation, fresh.node.uuid, now);
        try {
          await this.deps.nodes.update(
            fresh.node,
            reserveNode(fresh.node, active, now),
            fresh.version,
            this.repo.replaceOps(current.allocation, active, current.version),
          );
          return { allocation: active, version: current.version + 1 };
        } catch (error) {
          if (!isConflict(error)) throw error;
          // The node or the allocation changed meanwhile: read both again.
          const again = await this.repo.get(current.allocation.uuid);
          if (again?.allocation.state !== 'allocating') return again ?? current;
          current = again;
        }
      }
    }
    const error =
      locked > 0
        ? `could not reserve any of ${locked} suitable nodes`
        : 'all nodes were filtered out during reservation';
    return this.fail(current, allocationFailure(current.allocation, error));
  }

  /**
   * The conductor's `backfill_allocation` (1.58+): the allocation records a node that
   * is already deployed. A node that does not fit fails the allocation (kept in state
   * `error`, as Ironic keeps it) and the request (400 here, where Ironic answers 500).
   */
  async backfill(created: VersionedAllocation, nodeUuid: string): Promise<VersionedAllocation> {
    let current = created;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const fresh = await this.deps.nodes.get(nodeUuid);
      if (!fresh) {
        await this.fail(current, `Node ${nodeUuid} could not be found.`);
        throw invalid(`Node ${nodeUuid} could not be found.`);
      }
      const node = fresh.node;
      const errors = backfillErrors(current.allocation, node);
      if (errors) {
        const failed = await this.fail(current, allocationFailure(current.allocation, errors));
        throw invalid(failed.allocation.last_error ?? errors);
      }
      if (node.reservation) {
        const error = nodeLocked(node);
        await this.fail(current, `Unexpected exception during allocation: ${error.message}`);
        throw error;
      }
      const holder = await this.deps.nodes.uuidForInstance(current.allocation.uuid);
      const associated =
        (node.instance_uuid !== null && node.instance_uuid !== current.allocation.uuid) ||
        (node.allocation_uuid !== null && node.allocation_uuid !== current.allocation.uuid);
      if (associated || (holder && holder !== node.uuid)) {
        const message = associated
          ? `Node ${node.uuid} is associated with instance ${node.instance_uuid}.`
          : `Instance ${current.allocation.uuid} is already associated with a node, it cannot be associated with this other node ${node.uuid}`;
        await this.fail(current, message);
        throw conflict(message);
      }
      const now = this.deps.now();
      const active = activateAllocation(current.allocation, node.uuid, now);
      try {
        await this.deps.nodes.update(
          node,
          reserveNode(node, active, now),
          fresh.version,
          this.repo.replaceOps(current.allocation, active, current.version),
        );
        return { allocation: active, version: current.version + 1 };
      } catch (error) {
        if (!isConflict(error)) throw error;
        const again = await this.repo.get(current.allocation.uuid);
        if (again?.allocation.state !== 'allocating') return again ?? current;
        current = again;
      }
    }
    throw conflict(`Node ${nodeUuid} kept changing while the allocation was recorded; retry.`);
  }

  /** Deletes the allocation and releases its node (Ironic's destroy_allocation). */
  async delete(found: VersionedAllocation): Promise<void> {
    let current = found;
    for (let attempt = 1; ; attempt++) {
      const { allocation, version } = current;
      const fresh = allocation.node_uuid ? await this.deps.nodes.get(allocation.node_uuid) : undefined;
      const holds = fresh !== undefined && fresh.node.allocation_uuid === allocation.uuid;
      if (fresh && holds) {
        const refusal = deallocationRefusal(allocation, fresh.node);
        if (refusal) throw conflict(refusal);
        if (fresh.node.reservation) throw nodeLocked(fresh.node);
      }
      try {
        if (fresh && holds) {
          await this.deps.nodes.update(
            fresh.node,
            releaseNode(fresh.node, this.deps.now()),
            fresh.version,
            this.repo.deleteOps(allocation, version),
          );
        } else {
          await this.repo.delete(allocation, version);
        }
        return;
      } catch (error) {
        if (!isConflict(error) || attempt >= ATTEMPTS) throw error;
        // The node or the allocation changed meanwhile: read both again.
        const again = await this.repo.get(allocation.uuid);
        if (!again) return;
        current = again;
      }
    }
  }
}

/** `candidate_nodes` as UUIDs, in the given order (Ironic's check_node_list). */
async function resolveCandidates(deps: Dependencies, idents: readonly string[]): Promise<string[]> {
  const resolved = await Promise.all(
    idents.map(async (ident) => {
      try {
        return (await resolveNode(deps, ident)).node.uuid;
      } catch (error) {
        if (error instanceof DomainError && error.kind === 'not-found') return undefined;
        throw error;
      }
    }),
  );
  const missing = idents.filter((_, i) => resolved[i] === undefined);
  if (missing.length > 0) throw invalid(`Nodes cannot be found: ${[...new Set(missing)].join(', ')}`);
  return resolved as string[];
}

/** A node named in a request body or query: 400 (not 404) when it does not exist. */
async function nodeFromBody(deps: Dependencies, ident: string): Promise<Node> {
  try {
    return (await resolveNode(deps, ident)).node;
  } catch (error) {
    if (error instanceof DomainError && error.kind === 'not-found') throw invalid(error.message);
    throw error;
  }
}

export function registerAllocationRoutes(router: Router, deps: Dependencies): void {
  const service = new Allocations(deps);
  const repo = service.repo;

  router.on('GET', '/v1/allocations', async (request) => {
    allocationsGate(request);
    authorize(request, 'allocation:list');
    const minor = request.version.minor;
    for (const name of Object.keys(request.query)) {
      if (!LIST_PARAMS.includes(name)) throw invalid(`Unknown argument: "${name}"`);
    }
    const { query } = request;
    if (query.owner !== undefined && minor < ALLOCATION_OWNER_SINCE)
      throw notAcceptable('Request not acceptable.');
    const fields = requestedFields(request);
    const parsed = parseListParams(request, {
      sortKeys: ['id', 'created_at', 'name'],
      selectable: allocationFields(minor),
      defaultFields: [],
      detailPath: false,
    });
    const params = { ...parsed, fields };
    const equals: Record<string, string> = {};
    const project = listingProject(request);
    if (project !== undefined) {
      if (query.owner !== undefined && query.owner !== project) {
        throw forbidden('Access was denied to the following resource: baremetal:allocation:list_all');
      }
      equals.owner = project;
    } else if (query.owner !== undefined) {
      equals.owner = query.owner;
    }
    if (query.resource_class !== undefined) equals.resource_class = query.resource_class;
    if (query.state !== undefined) equals.state = query.state;
    if (query.node !== undefined) {
      const node = await nodeFromBody(deps, requireUuidOrName(query.node, 'node'));
      authorizeNode(request, 'node:get', node);
      equals.node_uuid = node.uuid;
    }
    const page = await repo.list({
      limit: params.limit,
      markerUuid: params.marker,
      sortKey: params.sortKey === 'name' ? 'name' : 'created_at',
      descending: params.descending,
      equals,
    });
    const body: Record<string, unknown> = {
      allocations: page.items.map((allocation) => render(request, allocation, fields)),
    };
    const last = page.items.at(-1);
    if (page.more && last) body.next = nextLink(request, 'allocations', params, last.uuid);
    return json(body);
  });

  router.on('POST', '/v1/allocations', async (request) => {
    allocationsGate(request);
    authorize(request, 'allocation:create');
    const minor = request.version.minor;
    const body = validateAllocationCreate(jsonBody(request));
    if (body.uuid !== undefined && body.uuid !== null) body.uuid = requireUuid(body.uuid, 'uuid');
    if (body.owner !== undefined && body.owner !== null && minor < ALLOCATION_OWNER_SINCE) {
      throw notAcceptable('Request not acceptable.');
    }
    checkAllocationName(body.name, 'create');
    let node: Node | undefined;
    if (body.node) {
      if (minor < ALLOCATION_BACKFILL_SINCE) {
        throw invalid('Cannot set node when creating an allocation in this API version');
      }
      node = await nodeFromBody(deps, body.node);
    }
    const resourceClass = body.resource_class || node?.resource_class;
    if (!resourceClass) throw invalid('The resource_class field is mandatory when not backfilling');
    const candidates = await resolveCandidates(deps, body.candidate_nodes ?? []);
    const uuid = body.uuid ?? node?.instance_uuid ?? deps.newUuid();
    const allocation = createAllocation(body, {
      uuid,
      now: deps.now(),
      resourceClass,
      candidateNodes: candidates,
    });
    await repo.create(allocation);
    const created = { allocation, version: 1 };
    const result = node ? await service.backfill(created, node.uuid) : await service.allocate(created);
    return json(render(request, result.allocation), 201, {
      Location: `${request.baseUrl}/v1/allocations/${allocation.uuid}`,
    });
  });

  router.on('GET', '/v1/allocations/{allocation}', async (request) => {
    allocationsGate(request);
    const { allocation } = await service.resolve(request.params.allocation as string);
    authorizeNode(request, 'allocation:get', allocation);
    return json(render(request, allocation, requestedFields(request)));
  });

  router.on('PATCH', '/v1/allocations/{allocation}', async (request) => {
    allocationsGate(request);
    if (request.version.minor < ALLOCATION_UPDATE_SINCE) {
      throw new ApiError(405, 'The API version does not allow updating allocations');
    }
    const { allocation, version } = await service.resolve(request.params.allocation as string);
    authorizeNode(request, 'allocation:update', allocation);
    const body = jsonBody(request);
    for (const name of patchValues(body, '/name')) checkAllocationName(name, 'update');
    const patched = patchAllocation(allocation, body, deps.now());
    await repo.update(allocation, patched, version);
    return json(render(request, patched));
  });

  router.on('DELETE', '/v1/allocations/{allocation}', async (request) => {
    allocationsGate(request);
    const found = await service.resolve(request.params.allocation as string);
    authorizeNode(request, 'allocation:delete', found.allocation);
    await service.delete(found);
    return noContent();
  });

  const nodeAllocation = async (request: ApiRequest) => {
    if (request.version.minor < ALLOCATIONS_SINCE) throw notFound('The resource could not be found.');
    const ident = request.params.node as string;
    const { node } = await resolveNode(deps, ident);
    authorizeNode(request, 'node:get', node);
    const found = await repo.forNode(node.uuid);
    if (!found) throw notFound(`Allocation for node ${ident} was not found`);
    return found;
  };

  router.on('GET', '/v1/nodes/{node}/allocation', async (request): Promise<ApiResponse> => {
    const { allocation } = await nodeAllocation(request);
    authorizeNode(request, 'allocation:get', allocation);
    return json(render(request, allocation, requestedFields(request)));
  });

  router.on('DELETE', '/v1/nodes/{node}/allocation', async (request) => {
    const found = await nodeAllocation(request);
    authorizeNode(request, 'allocation:delete', found.allocation);
    await service.delete(found);
    return noContent();
  });
}
