/**
 * Allocations (API 1.52+): a request for a node of a resource class, with traits and
 * an optional list of candidates (Ironic 21.4's `api/controllers/v1/allocation.py` and
 * `conductor/allocations.py`). Pure: which node matches, and the messages Ironic
 * records when none does. Reserving the node is the caller's (one transaction).
 */
import { invalid } from '../errors.ts';
import { isValidLogicalName } from '../identifiers.ts';
import type { Node } from '../nodes/node.ts';
import { pythonRepr } from '../python-repr.ts';
import { validator } from '../schema.ts';
import {
  assertStorable,
  type JsonObject,
  links,
  patchDocument,
  schemaView,
  selectFields,
  traitSchemaError,
} from './common.ts';

export type AllocationState = 'allocating' | 'active' | 'error';

export interface Allocation {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  name: string | null;
  resource_class: string | null;
  traits: string[];
  /** Node UUIDs, in the order the client gave them. */
  candidate_nodes: string[];
  extra: JsonObject;
  owner: string | null;
  state: AllocationState;
  last_error: string | null;
  node_uuid: string | null;
}

/** Allocations appeared in 1.52; PATCH in 1.57; backfilling (`node`) in 1.58; owner in 1.60. */
export const ALLOCATIONS_SINCE = 52;
export const ALLOCATION_UPDATE_SINCE = 57;
export const ALLOCATION_BACKFILL_SINCE = 58;
export const ALLOCATION_OWNER_SINCE = 60;

/** Ironic's ALLOCATION_SCHEMA (trait items are checked after, with TRAITS_SCHEMA's words). */
export const ALLOCATION_SCHEMA = {
  type: 'object',
  properties: {
    candidate_nodes: { type: ['array', 'null'], items: { type: 'string' } },
    extra: { type: ['object', 'null'] },
    name: { type: ['string', 'null'] },
    node: { type: ['string', 'null'] },
    owner: { type: ['string', 'null'] },
    resource_class: { type: ['string', 'null'], maxLength: 80 },
    traits: { type: ['array', 'null'], items: {} },
    uuid: { type: ['string', 'null'] },
  },
  additionalProperties: false,
} as const;

export interface AllocationBody {
  candidate_nodes?: string[] | null;
  extra?: JsonObject | null;
  name?: string | null;
  node?: string | null;
  owner?: string | null;
  resource_class?: string | null;
  traits?: unknown[] | null;
  uuid?: string | null;
}

const validateSchema = validator<AllocationBody>('allocation', ALLOCATION_SCHEMA);
const validatePatchedSchema = validator<AllocationBody>('patch', ALLOCATION_SCHEMA);

function checkTraits(body: AllocationBody, what: string): void {
  for (const trait of body.traits ?? []) {
    const error = traitSchemaError(trait);
    if (error) throw invalid(`Schema error for ${what}: ${error}`);
  }
}

export function validateAllocationCreate(value: unknown): AllocationBody {
  const body = validateSchema(value);
  checkTraits(body, 'allocation');
  assertStorable(body, 'allocation');
  return body;
}

/** Root fields a JSON Patch may touch (Ironic's PATCH_ALLOWED_FIELDS, in its order). */
export const ALLOCATION_PATCHABLE = ['name', 'extra'] as const;

export function checkAllocationName(name: unknown, verb: 'create' | 'update'): void {
  if (name !== null && name !== undefined && name !== '' && !isValidLogicalName(name)) {
    throw invalid(`Cannot ${verb} allocation with invalid name '${String(name)}'`);
  }
}

export interface NewAllocation {
  readonly uuid: string;
  readonly now: string;
  readonly resourceClass: string;
  readonly candidateNodes: readonly string[];
}

export function createAllocation(body: AllocationBody, context: NewAllocation): Allocation {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    name: body.name || null,
    resource_class: context.resourceClass,
    traits: [...((body.traits as string[] | null | undefined) ?? [])],
    candidate_nodes: [...context.candidateNodes],
    extra: body.extra ?? {},
    owner: body.owner ?? null,
    state: 'allocating',
    last_error: null,
    node_uuid: null,
  };
}

export function patchAllocation(allocation: Allocation, body: unknown, now: string): Allocation {
  const patched = patchDocument(allocation, body, {
    allowed: ALLOCATION_PATCHABLE,
    objectFields: ['extra'],
  });
  const view = schemaView(patched, ALLOCATION_SCHEMA);
  validatePatchedSchema(view);
  checkTraits(view as AllocationBody, 'patch');
  assertStorable(view, 'patch');
  return {
    ...allocation,
    name: (patched.name as string | null) || null,
    extra: (patched.extra as JsonObject | null) ?? {},
    updated_at: now,
  };
}

/** Fields a client may name in `?fields=` at a version. */
export function allocationFields(minor: number): string[] {
  const fields = [
    'uuid',
    'created_at',
    'updated_at',
    'candidate_nodes',
    'extra',
    'last_error',
    'name',
    'owner',
    'resource_class',
    'state',
    'traits',
    'links',
    'node_uuid',
  ];
  return minor >= ALLOCATION_OWNER_SINCE ? fields : fields.filter((field) => field !== 'owner');
}

export interface AllocationRenderOptions {
  readonly baseUrl: string;
  readonly minor: number;
  readonly fields?: readonly string[] | undefined;
}

export function renderAllocation(
  allocation: Allocation,
  options: AllocationRenderOptions,
): Record<string, unknown> {
  const view: Record<string, unknown> = {
    uuid: allocation.uuid,
    created_at: allocation.created_at,
    updated_at: allocation.updated_at,
    candidate_nodes: allocation.candidate_nodes,
    extra: allocation.extra,
    last_error: allocation.last_error,
    name: allocation.name,
    owner: allocation.owner,
    resource_class: allocation.resource_class,
    state: allocation.state,
    traits: allocation.traits,
    links: links(options.baseUrl, `allocations/${allocation.uuid}`),
    node_uuid: allocation.node_uuid,
  };
  if (options.minor < ALLOCATION_OWNER_SINCE) delete view.owner;
  return selectFields(view, options.fields);
}

/** `Failed to process allocation <uuid>: <error>.` (Ironic's AllocationFailed). */
export function allocationFailure(allocation: Allocation, error: string): string {
  return `Failed to process allocation ${allocation.uuid}: ${error}.`;
}

/** The allocation failed: no node, state `error`, `lastError` as Ironic records it. */
export function failAllocation(allocation: Allocation, lastError: string, now: string): Allocation {
  return { ...allocation, state: 'error', node_uuid: null, last_error: lastError, updated_at: now };
}

/** The allocation holds `node`: state `active`. */
export function activateAllocation(allocation: Allocation, nodeUuid: string, now: string): Allocation {
  return { ...allocation, state: 'active', node_uuid: nodeUuid, last_error: null, updated_at: now };
}

/** The node as reserved by the allocation (Ironic sets both in one database update). */
export function reserveNode(node: Node, allocation: Allocation, now: string): Node {
  return { ...node, allocation_uuid: allocation.uuid, instance_uuid: allocation.uuid, updated_at: now };
}

/** The node once its allocation is gone (Ironic clears both with it). */
export function releaseNode(node: Node, now: string): Node {
  return { ...node, allocation_uuid: null, instance_uuid: null, updated_at: now };
}

function traitsMatch(allocation: Allocation, node: Node): boolean {
  return allocation.traits.every((trait) => node.traits.includes(trait));
}

/**
 * Ironic's candidate filter (`_candidate_nodes`): available, powered (a known power
 * state), not in maintenance, not associated, of the resource class, in the candidate
 * list and the owner's project if any. Returns the nodes, or the reason none fits.
 */
export function candidateNodes(
  allocation: Allocation,
  nodes: readonly Node[],
): { nodes: Node[] } | { error: string } {
  const candidates = new Set(allocation.candidate_nodes);
  const listed = nodes.filter(
    (node) =>
      node.provision_state === 'available' &&
      node.power_state !== null &&
      !node.maintenance &&
      node.instance_uuid === null &&
      node.resource_class === allocation.resource_class &&
      (candidates.size === 0 || candidates.has(node.uuid)) &&
      (allocation.owner === null || node.owner === allocation.owner || node.lessee === allocation.owner),
  );
  if (listed.length === 0) {
    return {
      error:
        candidates.size > 0
          ? `none of the requested nodes are available and match the resource class ${allocation.resource_class}`
          : `no available nodes match the resource class ${allocation.resource_class}`,
    };
  }
  const matching = listed.filter((node) => traitsMatch(allocation, node));
  if (matching.length === 0) {
    return { error: `no suitable nodes have the requested traits ${allocation.traits.join(', ')}` };
  }
  return { nodes: matching };
}

/** Ironic's order of trying: random, but a node named like the allocation first. */
export function tryOrder(allocation: Allocation, nodes: readonly Node[], random = Math.random): Node[] {
  const order = [...nodes];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as Node, order[i] as Node];
  }
  const named = order.findIndex((node) => allocation.name !== null && node.name === allocation.name);
  if (named > 0) order.unshift(...order.splice(named, 1));
  return order;
}

/** Ironic's `_verify_node`: still suitable once read again (just before reserving it). */
export function stillSuitable(allocation: Allocation, node: Node): boolean {
  return (
    !node.maintenance &&
    node.instance_uuid === null &&
    node.allocation_uuid === null &&
    node.provision_state === 'available' &&
    node.resource_class === allocation.resource_class &&
    traitsMatch(allocation, node)
  );
}

/** Why a node cannot be backfilled into the allocation (Ironic's `_do_backfill_allocation`). */
export function backfillErrors(allocation: Allocation, node: Node): string | undefined {
  const errors: string[] = [];
  if (node.provision_state !== 'active') {
    errors.push(`Node must be in the "active" state, but the current state is "${node.provision_state}"`);
  }
  if (allocation.resource_class && node.resource_class !== allocation.resource_class) {
    errors.push(
      `Resource class ${node.resource_class} does not match the requested resource class ${allocation.resource_class}`,
    );
  }
  if (allocation.traits.length > 0 && !traitsMatch(allocation, node)) {
    errors.push(
      `List of traits ${pythonRepr(node.traits)} does not match the requested traits ${pythonRepr(allocation.traits)}`,
    );
  }
  if (allocation.candidate_nodes.length > 0 && !allocation.candidate_nodes.includes(node.uuid)) {
    errors.push(
      `Candidate nodes must be empty or contain the target node, but got ${pythonRepr(allocation.candidate_nodes)}`,
    );
  }
  return errors.length > 0
    ? `Cannot backfill an allocation for node ${node.uuid}: ${errors.join('; ')}`
    : undefined;
}

/** States in which a node may change while a conductor works on it (Ironic's UPDATE_ALLOWED_STATES). */
const UPDATE_ALLOWED_STATES = [
  'deploy failed',
  'inspecting',
  'clean failed',
  'clean wait',
  'inspect wait',
  'rescue failed',
  'unrescue failed',
];

/** Ironic's `verify_node_for_deallocation`: why the allocation cannot be removed, if so. */
export function deallocationRefusal(allocation: Allocation, node: Node): string | undefined {
  if (node.maintenance) return undefined;
  if (node.target_provision_state && !UPDATE_ALLOWED_STATES.includes(node.provision_state)) {
    return `Cannot remove allocation ${allocation.uuid} for node ${node.uuid}, because the node is in state ${node.provision_state} where updates are not allowed (and maintenance mode is off)`;
  }
  if (node.provision_state === 'active') {
    return `Cannot remove allocation ${allocation.uuid} for node ${node.uuid}, because the node is active (and maintenance mode is off)`;
  }
  return undefined;
}
