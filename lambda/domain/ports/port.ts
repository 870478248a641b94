/**
 * The port (a NIC of a node): its stored form, creation from an API body, patching and
 * rendering at a microversion, with Ironic's schema and messages (Ironic 21.4's
 * `api/controllers/v1/port.py`). Pure: ids, times and the existence of the node and
 * port group a port refers to are the caller's business.
 */
import { invalid, notAcceptable } from '../errors.ts';
import { isUuidLike, isValidLogicalName, normalizeMac } from '../identifiers.ts';
import { applyPatch, checkPatchAllowed, type PatchOp, rootField, validatePatch } from '../json-patch.ts';
import type { JsonObject } from '../nodes/node.ts';
import { pythonRepr } from '../python-repr.ts';
import { validator } from '../schema.ts';

/** A port as stored. `node_uuid` and `portgroup_uuid` are canonical UUIDs. */
export interface Port {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  address: string;
  extra: JsonObject;
  internal_info: JsonObject;
  is_smartnic: boolean;
  local_link_connection: JsonObject;
  physical_network: string | null;
  pxe_enabled: boolean;
  node_uuid: string;
  portgroup_uuid: string | null;
}

/** The fields of a port as Ironic shows them, in Ironic's order, with the version of each. */
export const PORT_FIELDS: ReadonlyArray<readonly [field: string, sinceMinor: number]> = [
  ['uuid', 1],
  ['created_at', 1],
  ['updated_at', 1],
  ['address', 1],
  ['extra', 1],
  ['internal_info', 18],
  ['is_smartnic', 53],
  ['local_link_connection', 19],
  ['physical_network', 34],
  ['pxe_enabled', 19],
  ['node_uuid', 1],
  ['links', 1],
  ['portgroup_uuid', 24],
];

const SINCE = new Map(PORT_FIELDS);

/** `local_link_connection/network_type` came with 1.64. */
const NETWORK_TYPE_SINCE = 64;
/** Validates without version gating (gating comes after the format checks, as in Ironic). */
const MAX_MINOR = Number.MAX_SAFE_INTEGER;

/** What `GET /v1/ports` shows per port without `fields` or `detail`. */
export const PORT_DEFAULT_FIELDS = ['uuid', 'address'] as const;

/** Root fields a JSON Patch may touch (Ironic's PATCH_ALLOWED_FIELDS). */
export const PORT_PATCHABLE_FIELDS = [
  'address',
  'extra',
  'is_smartnic',
  'local_link_connection',
  'node_uuid',
  'physical_network',
  'portgroup_uuid',
  'pxe_enabled',
] as const;

/** Ironic's PORT_SCHEMA: what `POST /v1/ports` accepts. */
export const PORT_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    address: { type: 'string' },
    extra: { type: ['object', 'null'] },
    is_smartnic: { type: ['string', 'boolean', 'null'] },
    local_link_connection: { type: ['null', 'object'] },
    node_uuid: { type: 'string' },
    physical_network: { type: ['string', 'null'], maxLength: 64 },
    portgroup_uuid: { type: ['string', 'null'] },
    pxe_enabled: { type: ['string', 'boolean', 'null'] },
    uuid: { type: ['string', 'null'] },
  },
  required: ['address', 'node_uuid'],
  additionalProperties: false,
} as const;

export type PortCreateBody = Partial<Record<keyof typeof PORT_CREATE_SCHEMA.properties, unknown>> & {
  address: string;
  node_uuid: string;
};

export const validatePortCreate = validator<PortCreateBody>('port', PORT_CREATE_SCHEMA);
/** A patched port is checked against the same schema, named `patch` in messages (as Ironic). */
const validatePatchedPort = validator<PortCreateBody>('patch', PORT_CREATE_SCHEMA);

const LOCAL_LINK_PROPERTIES = {
  port_id: { type: 'string' },
  switch_id: { type: 'string' },
  hostname: { type: 'string' },
  switch_info: { type: 'string' },
  network_type: { type: 'string', enum: ['managed', 'unmanaged'] },
} as const;

/** Ironic's LOCAL_LINK_CONN_SCHEMA: a switch port, a Smart NIC, an unmanaged link, or nothing. */
export const LOCAL_LINK_CONNECTION_SCHEMA = {
  anyOf: [
    {
      type: 'object',
      properties: LOCAL_LINK_PROPERTIES,
      required: ['port_id', 'switch_id'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: LOCAL_LINK_PROPERTIES,
      required: ['port_id', 'hostname'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: { ...LOCAL_LINK_PROPERTIES, network_type: { type: 'string', enum: ['unmanaged'] } },
      required: ['network_type'],
      additionalProperties: false,
    },
    { type: 'object', additionalProperties: false },
  ],
} as const;

const validateLocalLink = validator<JsonObject>('local_link_connection', LOCAL_LINK_CONNECTION_SCHEMA);

const OPENFLOW_DATAPATH_ID = /^[0-9a-f]{16}$/i;
const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** oslo's strict bool_from_string as Ironic's `args.boolean` reports it; null stays null. */
export function strictBoolean(value: unknown, name: string): boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (TRUE_STRINGS.includes(text)) return true;
  if (FALSE_STRINGS.includes(text)) return false;
  throw invalid(
    `Invalid ${name}: Unrecognized value '${String(value)}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'`,
  );
}

/** A port group reference: a UUID (canonical later) or, as a friendly extension, a name. */
export function checkReference(value: unknown, field: string): string {
  if (typeof value === 'string' && (isUuidLike(value) || isValidLogicalName(value))) return value;
  throw invalid(`Expected UUID for ${field}: ${String(value)}`);
}

/**
 * A port's `node_uuid`: Ironic's `args.uuid` (PORT_VALIDATOR_EXTRA). A node name is
 * refused as any other non-UUID ("Expected UUID for node_uuid: my-node"), as Ironic
 * refuses the CLI's `port create --node NAME` (`cli-requests.json`).
 */
export function checkNodeUuid(value: unknown): string {
  if (isUuidLike(value)) return value;
  throw invalid(`Expected UUID for node_uuid: ${String(value)}`);
}

/** oslo's `is_int_like`: `str(int(value)) == str(value)`. */
function isIntLike(value: unknown): boolean {
  if (typeof value === 'number') return Number.isInteger(value);
  return typeof value === 'string' && /^(0|-?[1-9][0-9]*)$/.test(value);
}

/**
 * The node a patched `node_uuid` names, checked as Ironic's `PortsController.patch` looks
 * it up (`objects.Node.get`, before the patched port's schema): an integer is a database
 * id (none here: "Node 7 could not be found."), anything else that is not a UUID, a node
 * name included, is InvalidIdentity; both 400.
 */
function checkPatchedNodeIdentity(value: unknown): void {
  if (isIntLike(value)) throw invalid(`Node ${String(value)} could not be found.`);
  if (!isUuidLike(value)) {
    const shown = typeof value === 'string' ? value : pythonRepr(value);
    throw invalid(`Expected a UUID or int but received ${shown}.`);
  }
}

/** Schema check and `switch_id` normalization (a MAC address or an OpenFlow datapath ID). */
export function normalizeLocalLink(value: unknown, minor: number): JsonObject {
  if (value === null || value === undefined) return {};
  const link = { ...validateLocalLink(value) };
  if ('network_type' in link && minor < NETWORK_TYPE_SINCE) throw notAcceptable('Request not acceptable.');
  if (typeof link.switch_id === 'string') {
    const switchId = link.switch_id;
    if (OPENFLOW_DATAPATH_ID.test(switchId)) link.switch_id = switchId.toLowerCase();
    else {
      try {
        link.switch_id = normalizeMac(switchId, 'switch_id');
      } catch {
        throw invalid(`Expected a MAC address or OpenFlow datapath ID but received ${switchId}.`);
      }
    }
  }
  return link;
}

/** Refuses (406) fields newer than the request's microversion, as `_check_allowed_port_fields`. */
export function rejectNewerPortFields(fields: Iterable<string>, minor: number): void {
  for (const field of fields) {
    const since = field === 'local_link_connection/network_type' ? NETWORK_TYPE_SINCE : SINCE.get(field);
    if (since !== undefined && since > minor) throw notAcceptable('Request not acceptable.');
  }
}

/** The checks Ironic makes on every port it stores, created or patched. */
function checkPortRules(port: Port): void {
  if (port.physical_network === '') {
    throw invalid('A non-empty value is required when setting physical_network');
  }
  if (port.is_smartnic) {
    const link = port.local_link_connection;
    if (typeof link.port_id !== 'string' || typeof link.hostname !== 'string') {
      throw invalid('Smart NIC port must have port_id and hostname in local_link_connection');
    }
  }
}

export interface NewPortContext {
  readonly uuid: string;
  readonly now: string;
  readonly minor: number;
  /** The resolved node (canonical UUID). */
  readonly nodeUuid: string;
  /** The resolved port group, if any (canonical UUID). */
  readonly portgroupUuid: string | null;
}

/** Checks a create body (schema, versions, value formats) before any lookup is made. */
export function checkPortCreate(body: unknown, minor: number): PortCreateBody {
  const checked = validatePortCreate(body);
  // Ironic's PORT_VALIDATOR_EXTRA, in its order.
  normalizeMac(checked.address, 'address');
  checkNodeUuid(checked.node_uuid);
  strictBoolean(checked.is_smartnic, 'is_smartnic');
  normalizeLocalLink(checked.local_link_connection, MAX_MINOR);
  if (checked.portgroup_uuid !== undefined && checked.portgroup_uuid !== null)
    checkReference(checked.portgroup_uuid, 'portgroup_uuid');
  strictBoolean(checked.pxe_enabled, 'pxe_enabled');
  if (checked.uuid !== undefined && checked.uuid !== null && !isUuidLike(checked.uuid))
    throw invalid(`Expected UUID for uuid: ${String(checked.uuid)}`);
  rejectNewerPortFields(Object.keys(checked), minor);
  normalizeLocalLink(checked.local_link_connection, minor);
  return checked;
}

export function createPort(body: PortCreateBody, context: NewPortContext): Port {
  const port: Port = {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    address: normalizeMac(body.address, 'address'),
    extra: (body.extra as JsonObject | null | undefined) ?? {},
    internal_info: {},
    is_smartnic: strictBoolean(body.is_smartnic, 'is_smartnic') ?? false,
    local_link_connection: normalizeLocalLink(body.local_link_connection, context.minor),
    physical_network: (body.physical_network as string | null | undefined) ?? null,
    pxe_enabled: strictBoolean(body.pxe_enabled, 'pxe_enabled') ?? true,
    node_uuid: context.nodeUuid,
    portgroup_uuid: context.portgroupUuid,
  };
  checkPortRules(port);
  return port;
}

/**
 * Applies an Ironic JSON Patch to a port. `node_uuid` comes back as the client wrote it
 * (a UUID), `portgroup_uuid` too (a UUID or a name): the caller resolves them when they
 * changed.
 * Nothing is written here, so a refused patch changes nothing.
 */
export function patchPort(port: Port, body: unknown, context: { minor: number; now: string }): Port {
  const patch = validatePatch(body);
  checkPatchAllowed(patch, PORT_PATCHABLE_FIELDS);
  rejectNewerPortFields(patchedFields(patch), context.minor);
  const patched = applyPatch(port as unknown as Record<string, unknown>, patch);
  const removed = new Set<string>();
  for (const op of patch) {
    // Ironic resets a removed root field to nothing; a required one fails the schema below.
    if (op.op === 'remove' && op.path === `/${rootField(op.path)}`) {
      patched[rootField(op.path)] = null;
      removed.add(rootField(op.path));
    }
  }
  if (!removed.has('node_uuid') && patched.node_uuid !== port.node_uuid)
    checkPatchedNodeIdentity(patched.node_uuid);
  const { uuid: _uuid, created_at: _created, updated_at: _updated, internal_info, ...settable } = patched;
  const checked = validatePatchedPort(
    Object.fromEntries(Object.entries(settable).filter(([, value]) => value !== null)),
  );
  const address = normalizeMac(checked.address, 'address');
  const node = checkNodeUuid(checked.node_uuid);
  const portgroup =
    checked.portgroup_uuid === undefined || checked.portgroup_uuid === null
      ? null
      : checkReference(checked.portgroup_uuid, 'portgroup_uuid');
  const result: Port = {
    ...port,
    address,
    extra: (checked.extra as JsonObject | undefined) ?? {},
    internal_info: (internal_info as JsonObject | null) ?? {},
    is_smartnic: strictBoolean(checked.is_smartnic, 'is_smartnic') ?? false,
    local_link_connection: normalizeLocalLink(checked.local_link_connection, context.minor),
    physical_network: (checked.physical_network as string | undefined) ?? null,
    pxe_enabled: strictBoolean(checked.pxe_enabled, 'pxe_enabled') ?? true,
    node_uuid: node,
    portgroup_uuid: portgroup,
    updated_at: context.now,
  };
  checkPortRules(result);
  return result;
}

/** The version-gated fields a patch touches (a root field, or the link's network_type). */
function patchedFields(patch: readonly PatchOp[]): string[] {
  const fields = patch.map((op) => rootField(op.path));
  for (const op of patch) {
    if (op.path.startsWith('/local_link_connection/network_type')) {
      fields.push('local_link_connection/network_type');
    }
    const value = op.value as Record<string, unknown> | null | undefined;
    if (op.path === '/local_link_connection' && value && typeof value === 'object' && 'network_type' in value)
      fields.push('local_link_connection/network_type');
  }
  return fields;
}

/** Fields a client may name in `?fields=` (any field of a port; newer ones get 406). */
export function portSelectableFields(): string[] {
  return PORT_FIELDS.map(([field]) => field);
}

export interface PortRenderOptions {
  readonly minor: number;
  readonly baseUrl: string;
  /** Only these fields (plus links); undefined means every field of the version. */
  readonly fields?: readonly string[];
}

/** A port as the API shows it: Ironic's field order, newer fields hidden, links. */
export function renderPort(port: Port, options: PortRenderOptions): Record<string, unknown> {
  const wanted = options.fields ? new Set(options.fields) : undefined;
  const source = port as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [field, since] of PORT_FIELDS) {
    if (since > options.minor) continue;
    if (wanted && field !== 'links' && !wanted.has(field)) continue;
    out[field] =
      field === 'links'
        ? [
            { href: `${options.baseUrl}/v1/ports/${port.uuid}`, rel: 'self' },
            { href: `${options.baseUrl}/ports/${port.uuid}`, rel: 'bookmark' },
          ]
        : (source[field] ?? null);
  }
  return out;
}
