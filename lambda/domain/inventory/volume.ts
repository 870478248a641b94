/**
 * Volume connectors and targets (API 1.32+): how a node reaches remote storage and
 * which volumes it boots from (Ironic 21.4's `api/controllers/v1/volume*.py`). Stored
 * and validated; booting from volume is a storage interface's business, not this one's.
 * Pure.
 */
import { invalid } from '../errors.ts';
import { isUuidLike } from '../identifiers.ts';
import type { Node } from '../nodes/node.ts';
import { validator } from '../schema.ts';
import {
  assertStorable,
  type JsonObject,
  links,
  patchDocument,
  patchValues,
  requireUuid,
  schemaView,
  selectFields,
} from './common.ts';

export const VOLUME_SINCE = 32;

export const CONNECTOR_TYPES = ['iqn', 'ip', 'mac', 'wwnn', 'wwpn', 'port', 'portgroup'] as const;

export interface VolumeConnector {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  node_uuid: string;
  type: string;
  connector_id: string;
  extra: JsonObject;
}

export interface VolumeTarget {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  node_uuid: string;
  volume_type: string;
  volume_id: string;
  boot_index: number;
  properties: JsonObject;
  extra: JsonObject;
}

/** Ironic's CONNECTOR_SCHEMA. */
export const CONNECTOR_SCHEMA = {
  type: 'object',
  properties: {
    // Not in Ironic's schema (its column holds 255): the value is part of a unique key here.
    connector_id: { type: 'string', maxLength: 255 },
    extra: { type: ['object', 'null'] },
    node_uuid: { type: 'string' },
    type: { type: 'string', enum: [...CONNECTOR_TYPES] },
    uuid: { type: ['string', 'null'] },
  },
  required: ['connector_id', 'node_uuid', 'type'],
  additionalProperties: false,
} as const;

/** Ironic's TARGET_SCHEMA. */
export const TARGET_SCHEMA = {
  type: 'object',
  properties: {
    boot_index: { type: 'integer' },
    extra: { type: ['object', 'null'] },
    node_uuid: { type: 'string' },
    properties: { type: ['object', 'null'] },
    volume_id: { type: 'string' },
    volume_type: { type: 'string' },
    uuid: { type: ['string', 'null'] },
  },
  required: ['boot_index', 'node_uuid', 'volume_id', 'volume_type'],
  additionalProperties: false,
} as const;

export interface ConnectorBody {
  connector_id: string;
  extra?: JsonObject | null;
  node_uuid: string;
  type: string;
  uuid?: string | null;
}

export interface TargetBody {
  boot_index: number;
  extra?: JsonObject | null;
  node_uuid: string;
  properties?: JsonObject | null;
  volume_id: string;
  volume_type: string;
  uuid?: string | null;
}

export const CONNECTOR_PATCHABLE = ['connector_id', 'extra', 'node_uuid', 'type'] as const;
export const TARGET_PATCHABLE = [
  'boot_index',
  'extra',
  'node_uuid',
  'properties',
  'volume_id',
  'volume_type',
] as const;

export const CONNECTOR_DEFAULT_FIELDS = ['uuid', 'node_uuid', 'type', 'connector_id'] as const;
export const TARGET_DEFAULT_FIELDS = ['uuid', 'node_uuid', 'volume_type', 'boot_index', 'volume_id'] as const;
export const CONNECTOR_FIELDS = [
  'uuid',
  'created_at',
  'updated_at',
  'connector_id',
  'extra',
  'type',
  'links',
  'node_uuid',
];
export const TARGET_FIELDS = [
  'uuid',
  'created_at',
  'updated_at',
  'boot_index',
  'extra',
  'properties',
  'volume_id',
  'volume_type',
  'links',
  'node_uuid',
];

const connectorSchema = validator<ConnectorBody>('connector', CONNECTOR_SCHEMA);
const patchedConnectorSchema = validator<ConnectorBody>('patch', CONNECTOR_SCHEMA);
const targetSchema = validator<TargetBody>('target', TARGET_SCHEMA);
const patchedTargetSchema = validator<TargetBody>('patch', TARGET_SCHEMA);

/** The schema, then node_uuid and uuid as UUIDs (canonical form). */
export function validateConnectorCreate(value: unknown): ConnectorBody {
  const body = canonicalIds(connectorSchema(value));
  assertStorable(body, 'connector');
  return body;
}

export function validateTargetCreate(value: unknown): TargetBody {
  const body = canonicalIds(targetSchema(value));
  assertStorable(body, 'target');
  return body;
}

function canonicalIds<T extends { node_uuid: string; uuid?: string | null | undefined }>(body: T): T {
  const node_uuid = requireUuid(body.node_uuid, 'node_uuid');
  const uuid = body.uuid === undefined || body.uuid === null ? body.uuid : requireUuid(body.uuid, 'uuid');
  return { ...body, node_uuid, uuid };
}

export function createConnector(
  body: ConnectorBody,
  context: { uuid: string; now: string },
): VolumeConnector {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    node_uuid: body.node_uuid,
    type: body.type,
    connector_id: body.connector_id,
    extra: body.extra ?? {},
  };
}

export function createTarget(body: TargetBody, context: { uuid: string; now: string }): VolumeTarget {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    node_uuid: body.node_uuid,
    volume_type: body.volume_type,
    volume_id: body.volume_id,
    boot_index: body.boot_index,
    properties: body.properties ?? {},
    extra: body.extra ?? {},
  };
}

/** Ironic checks a node_uuid in a patch before anything else. */
function checkPatchedNodeUuid(body: unknown): void {
  for (const value of patchValues(body, '/node_uuid')) {
    if (!isUuidLike(value)) throw invalid(`Expected a UUID for node_uuid, but received ${String(value)}.`);
  }
}

export function patchConnector(connector: VolumeConnector, body: unknown, now: string): VolumeConnector {
  checkPatchedNodeUuid(body);
  const patched = patchDocument(connector, body, { allowed: CONNECTOR_PATCHABLE, objectFields: ['extra'] });
  const valid = canonicalIds(patchedConnectorSchema(schemaView(patched, CONNECTOR_SCHEMA)));
  assertStorable(valid, 'patch');
  return {
    ...connector,
    node_uuid: valid.node_uuid,
    type: valid.type,
    connector_id: valid.connector_id,
    extra: valid.extra ?? {},
    updated_at: now,
  };
}

export function patchTarget(target: VolumeTarget, body: unknown, now: string): VolumeTarget {
  checkPatchedNodeUuid(body);
  const patched = patchDocument(target, body, {
    allowed: TARGET_PATCHABLE,
    objectFields: ['extra', 'properties'],
  });
  const valid = canonicalIds(patchedTargetSchema(schemaView(patched, TARGET_SCHEMA)));
  assertStorable(valid, 'patch');
  return {
    ...target,
    node_uuid: valid.node_uuid,
    volume_type: valid.volume_type,
    volume_id: valid.volume_id,
    boot_index: valid.boot_index,
    properties: valid.properties ?? {},
    extra: valid.extra ?? {},
    updated_at: now,
  };
}

export function renderConnector(
  connector: VolumeConnector,
  options: { baseUrl: string; fields?: readonly string[] | undefined },
): Record<string, unknown> {
  const view = {
    uuid: connector.uuid,
    created_at: connector.created_at,
    updated_at: connector.updated_at,
    connector_id: connector.connector_id,
    extra: connector.extra,
    type: connector.type,
    links: links(options.baseUrl, `volume/connectors/${connector.uuid}`),
    node_uuid: connector.node_uuid,
  };
  return selectFields(view, options.fields);
}

export function renderTarget(
  target: VolumeTarget,
  options: { baseUrl: string; fields?: readonly string[] | undefined },
): Record<string, unknown> {
  const view = {
    uuid: target.uuid,
    created_at: target.created_at,
    updated_at: target.updated_at,
    boot_index: target.boot_index,
    extra: target.extra,
    properties: target.properties,
    volume_id: target.volume_id,
    volume_type: target.volume_type,
    links: links(options.baseUrl, `volume/targets/${target.uuid}`),
    node_uuid: target.node_uuid,
  };
  return selectFields(view, options.fields);
}

/**
 * `GET /v1/volume` and `GET /v1/nodes/{node}/volume`: links to the two collections.
 * `nodeIdent` is the node as the client named it, as Ironic links it.
 */
export function renderVolumeRoot(baseUrl: string, nodeIdent?: string): Record<string, unknown> {
  const base = nodeIdent === undefined ? 'volume/' : `nodes/${nodeIdent}/volume/`;
  return {
    links: links(baseUrl, base),
    connectors: links(baseUrl, `${base}connectors`),
    targets: links(baseUrl, `${base}targets`),
  };
}

/**
 * Ironic's conductor changes a volume connector or target only while the node is
 * powered off (InvalidStateRequested, 400), and not while another action holds it.
 */
export function volumeChangeRefusal(node: Node, action: string): string | undefined {
  if (node.power_state !== 'power off') {
    return `The requested action "${action}" can not be performed on node "${node.uuid}" while it is in state "${node.power_state ?? 'None'}".`;
  }
  return undefined;
}
