/**
 * The port group (a bond of a node's ports): stored form, creation, patching and
 * rendering with Ironic's schema and messages (Ironic 21.4's
 * `api/controllers/v1/portgroup.py`). Port groups exist from API 1.23; `mode` and
 * `properties` may be set from 1.26. Pure, like the port.
 */
import { invalid, notAcceptable } from '../errors.ts';
import { isUuidLike, isValidLogicalName, normalizeMac } from '../identifiers.ts';
import { applyPatch, checkPatchAllowed, type PatchOp, rootField, validatePatch } from '../json-patch.ts';
import type { JsonObject } from '../nodes/node.ts';
import { validator } from '../schema.ts';
import { checkReference, strictBoolean } from './port.ts';

export interface Portgroup {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  address: string | null;
  extra: JsonObject;
  internal_info: JsonObject;
  mode: string;
  name: string | null;
  properties: JsonObject;
  standalone_ports_supported: boolean;
  node_uuid: string;
}

/** The API version that brought port groups, and the one that brought their sub-resources. */
export const PORTGROUPS_SINCE = 23;
export const PORTGROUP_SUBRESOURCES_SINCE = 24;
/** `mode` and `properties` may be given (and asked for in `fields`) from 1.26. */
const MODE_PROPERTIES_SINCE = 26;

/** Ironic's `[DEFAULT]default_portgroup_mode`. */
export const DEFAULT_PORTGROUP_MODE = 'active-backup';

/** Ironic's field order (Ironic shows every field from 1.23 on, mode and properties too). */
export const PORTGROUP_FIELDS = [
  'uuid',
  'created_at',
  'updated_at',
  'address',
  'extra',
  'internal_info',
  'mode',
  'name',
  'properties',
  'standalone_ports_supported',
  'node_uuid',
  'links',
  'ports',
] as const;

export const PORTGROUP_DEFAULT_FIELDS = ['uuid', 'address', 'name'] as const;

export const PORTGROUP_PATCHABLE_FIELDS = [
  'address',
  'extra',
  'mode',
  'name',
  'node_uuid',
  'properties',
  'standalone_ports_supported',
] as const;

/** Ironic's PORTGROUP_SCHEMA. */
export const PORTGROUP_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    address: { type: ['string', 'null'] },
    extra: { type: ['object', 'null'] },
    mode: { type: ['string', 'null'] },
    name: { type: ['string', 'null'] },
    node_uuid: { type: 'string' },
    properties: { type: ['object', 'null'] },
    standalone_ports_supported: { type: ['string', 'boolean', 'null'] },
    uuid: { type: ['string', 'null'] },
  },
  required: ['node_uuid'],
  additionalProperties: false,
} as const;

export type PortgroupCreateBody = Partial<
  Record<keyof typeof PORTGROUP_CREATE_SCHEMA.properties, unknown>
> & { node_uuid: string };

const validatePortgroupCreate = validator<PortgroupCreateBody>('portgroup', PORTGROUP_CREATE_SCHEMA);
const validatePatchedPortgroup = validator<PortgroupCreateBody>('patch', PORTGROUP_CREATE_SCHEMA);

function optionalMac(value: unknown): string | null {
  return value === undefined || value === null ? null : normalizeMac(value, 'address');
}

/** Ironic's PORTGROUP_VALIDATOR_EXTRA, in its order, then the version and name checks. */
export function checkPortgroupCreate(body: unknown, minor: number): PortgroupCreateBody {
  const checked = validatePortgroupCreate(body);
  optionalMac(checked.address);
  checkReference(checked.node_uuid, 'node_uuid');
  strictBoolean(checked.standalone_ports_supported, 'standalone_ports_supported');
  if (checked.uuid !== undefined && checked.uuid !== null && !isUuidLike(checked.uuid))
    throw invalid(`Expected UUID for uuid: ${String(checked.uuid)}`);
  if (minor < MODE_PROPERTIES_SINCE && (checked.mode || checked.properties)) {
    throw notAcceptable('Request not acceptable.');
  }
  if (checked.name && !isValidLogicalName(checked.name)) {
    throw invalid(`Cannot create portgroup with invalid name '${String(checked.name)}'`);
  }
  return checked;
}

export interface NewPortgroupContext {
  readonly uuid: string;
  readonly now: string;
  /** The resolved node (canonical UUID). */
  readonly nodeUuid: string;
}

export function createPortgroup(body: PortgroupCreateBody, context: NewPortgroupContext): Portgroup {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    address: optionalMac(body.address),
    extra: (body.extra as JsonObject | null | undefined) ?? {},
    internal_info: {},
    mode: (body.mode as string | null | undefined) || DEFAULT_PORTGROUP_MODE,
    name: (body.name as string | null | undefined) || null,
    properties: (body.properties as JsonObject | null | undefined) ?? {},
    standalone_ports_supported:
      strictBoolean(body.standalone_ports_supported, 'standalone_ports_supported') ?? true,
    node_uuid: context.nodeUuid,
  };
}

/**
 * Applies an Ironic JSON Patch to a port group; `node_uuid` comes back as written (the
 * caller resolves it when it changed). `ident` is how the client named the group.
 */
export function patchPortgroup(
  portgroup: Portgroup,
  body: unknown,
  context: { minor: number; now: string; ident: string },
): Portgroup {
  const patch = validatePatch(body);
  if (context.minor < MODE_PROPERTIES_SINCE && touches(patch, ['mode', 'properties'])) {
    throw notAcceptable('Request not acceptable.');
  }
  checkPatchAllowed(patch, PORTGROUP_PATCHABLE_FIELDS);
  for (const op of patch) {
    if (op.op !== 'remove' && op.path === '/name' && op.value && !isValidLogicalName(op.value)) {
      throw invalid(`Portgroup ${context.ident}: Cannot change name to invalid name '${String(op.value)}'`);
    }
  }
  const patched = applyPatch(portgroup as unknown as Record<string, unknown>, patch);
  for (const op of patch) {
    if (op.op !== 'remove' || op.path !== `/${rootField(op.path)}`) continue;
    if (op.path === '/mode') throw invalid("'mode' is a mandatory attribute and can not be removed");
    patched[rootField(op.path)] = null;
  }
  const { uuid: _uuid, created_at: _created, updated_at: _updated, internal_info, ...settable } = patched;
  const checked = validatePatchedPortgroup(
    Object.fromEntries(Object.entries(settable).filter(([, value]) => value !== null)),
  );
  const address = optionalMac(checked.address);
  const node = checkReference(checked.node_uuid, 'node_uuid');
  return {
    ...portgroup,
    address,
    extra: (checked.extra as JsonObject | undefined) ?? {},
    internal_info: (internal_info as JsonObject | null) ?? {},
    mode: (checked.mode as string | undefined) || DEFAULT_PORTGROUP_MODE,
    name: (checked.name as string | undefined) || null,
    properties: (checked.properties as JsonObject | undefined) ?? {},
    standalone_ports_supported:
      strictBoolean(checked.standalone_ports_supported, 'standalone_ports_supported') ?? true,
    node_uuid: node,
    updated_at: context.now,
  };
}

function touches(patch: readonly PatchOp[], fields: readonly string[]): boolean {
  return patch.some((op) => fields.includes(rootField(op.path)));
}

/** `?fields=`: mode and properties need 1.26 (406 below), as Ironic's check. */
export function rejectNewerPortgroupFields(fields: readonly string[] | undefined, minor: number): void {
  if (fields && minor < MODE_PROPERTIES_SINCE && (fields.includes('mode') || fields.includes('properties')))
    throw notAcceptable('Request not acceptable.');
}

export interface PortgroupRenderOptions {
  readonly baseUrl: string;
  /** Only these fields (plus links); undefined means every field and the ports link. */
  readonly fields?: readonly string[];
}

export function renderPortgroup(
  portgroup: Portgroup,
  options: PortgroupRenderOptions,
): Record<string, unknown> {
  const { baseUrl, fields } = options;
  const wanted = fields ? new Set(fields) : undefined;
  const source = portgroup as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const links = (path: string) => [
    { href: `${baseUrl}/v1/${path}`, rel: 'self' },
    { href: `${baseUrl}/${path}`, rel: 'bookmark' },
  ];
  for (const field of PORTGROUP_FIELDS) {
    if (wanted && field !== 'links' && !wanted.has(field)) continue;
    if (field === 'links') out.links = links(`portgroups/${portgroup.uuid}`);
    else if (field === 'ports') out.ports = links(`portgroups/${portgroup.uuid}/ports`);
    else out[field] = source[field] ?? null;
  }
  return out;
}
