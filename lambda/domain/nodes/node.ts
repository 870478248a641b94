/**
 * The node: its stored form, creation from an API body, patching, and validation of the
 * result. Pure: ids, times and the existence of referenced records come from callers.
 */
import { forbidden, invalid, notAcceptable } from '../errors.ts';
import { type HardwareType, INTERFACE_NAMES, type InterfaceName } from '../hardware/interfaces.ts';
import { hardwareType } from '../hardware/registry.ts';
import { isUuidLike, isValidLogicalName } from '../identifiers.ts';
import { applyPatch, checkPatchAllowed, type PatchOp, validatePatch } from '../json-patch.ts';
import { validator } from '../schema.ts';
import { fieldSince, UPDATABLE_FIELDS } from './fields.ts';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** What a locked node is doing: the agent command the conductor waits for. */
export interface NodeTask {
  /** The command's id; empty while the task waits without a command (held). */
  readonly command: string;
  /** The command's action (`power.set`, `management.set_boot_device` ...), or `hold`. */
  readonly action: string;
  /** Which conductor handler finishes it (default: the action's). */
  readonly kind?: string;
  readonly started_at: string;
  /** What the conductor needs to finish it (e.g. the power target). */
  readonly args: Record<string, unknown>;
}

/** A node as stored: every Ironic field except the computed ones (links, conductor). */
export interface Node {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  name: string | null;
  driver: string;
  driver_info: JsonObject;
  driver_internal_info: JsonObject;
  extra: JsonObject;
  properties: JsonObject;
  instance_info: JsonObject;
  instance_uuid: string | null;
  chassis_uuid: string | null;
  allocation_uuid: string | null;
  conductor_group: string;
  resource_class: string | null;
  description: string | null;
  owner: string | null;
  lessee: string | null;
  shard: string | null;
  maintenance: boolean;
  maintenance_reason: string | null;
  fault: string | null;
  protected: boolean;
  protected_reason: string | null;
  retired: boolean;
  retired_reason: string | null;
  automated_clean: boolean | null;
  console_enabled: boolean;
  power_state: string | null;
  target_power_state: string | null;
  provision_state: string;
  target_provision_state: string | null;
  provision_updated_at: string | null;
  last_error: string | null;
  reservation: string | null;
  /**
   * Internal, never rendered: the conductor's action in flight (the command whose result
   * releases `reservation`). Absent on nodes no action has touched.
   */
  task?: NodeTask | null;
  /**
   * Internal, never rendered: the site whose node count includes this node (the
   * repository's bookkeeping, so that a site with nodes cannot be deleted). Absent on
   * nodes written before sites counted their nodes.
   */
  counted_in_site?: string | null;
  /** Internal, never rendered: the SHA-256 of the deploy's single-use callback token. */
  deploy_callback?: { token_sha256: string; issued_at: string; received_at?: string } | null;
  inspection_started_at: string | null;
  inspection_finished_at: string | null;
  clean_step: JsonObject;
  deploy_step: JsonObject;
  raid_config: JsonObject;
  target_raid_config: JsonObject;
  network_data: JsonObject;
  boot_mode: string | null;
  secure_boot: boolean | null;
  traits: string[];
  bios_interface: string;
  boot_interface: string;
  console_interface: string;
  deploy_interface: string;
  inspect_interface: string;
  management_interface: string;
  network_interface: string;
  power_interface: string;
  raid_interface: string;
  rescue_interface: string;
  storage_interface: string;
  vendor_interface: string;
}

const stringOrNull = { type: ['string', 'null'] };
const objectOrNull = { type: ['object', 'null'] };
const boolish = { type: ['string', 'boolean', 'null'] };

/** Ironic's NODE_SCHEMA: what `POST /v1/nodes` accepts (unknown fields are refused). */
export const NODE_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    automated_clean: boolish,
    ...Object.fromEntries(INTERFACE_NAMES.map((name) => [`${name}_interface`, stringOrNull])),
    boot_mode: stringOrNull,
    chassis_uuid: stringOrNull,
    conductor_group: { type: ['string', 'null'], maxLength: 255 },
    console_enabled: boolish,
    description: { type: ['string', 'null'], maxLength: 4096 },
    driver: { type: 'string', maxLength: 255 },
    driver_info: objectOrNull,
    extra: objectOrNull,
    instance_info: objectOrNull,
    instance_uuid: stringOrNull,
    lessee: { type: ['string', 'null'], maxLength: 255 },
    maintenance: boolish,
    name: stringOrNull,
    network_data: objectOrNull,
    owner: { type: ['string', 'null'], maxLength: 255 },
    properties: objectOrNull,
    protected: boolish,
    protected_reason: stringOrNull,
    resource_class: { type: ['string', 'null'], maxLength: 80 },
    retired: boolish,
    retired_reason: stringOrNull,
    secure_boot: boolish,
    shard: { type: ['string', 'null'], maxLength: 255 },
    uuid: stringOrNull,
  },
  required: ['driver'],
  additionalProperties: false,
} as const;

export type NodeCreateBody = Partial<Record<keyof typeof NODE_CREATE_SCHEMA.properties, unknown>> & {
  driver: string;
};

export const validateNodeCreate = validator<NodeCreateBody>('node', NODE_CREATE_SCHEMA);

/** The stored fields after a patch must still have these types. */
const validatePatchedNode = validator<Record<string, unknown>>('node', {
  ...NODE_CREATE_SCHEMA,
  properties: { ...NODE_CREATE_SCHEMA.properties, traits: {} },
  additionalProperties: true,
});

const CONDUCTOR_GROUP = /^[a-zA-Z0-9_.-]*$/;

/** oslo's bool_from_string for the fields Ironic accepts as "true"/"false" strings too. */
function toBool(value: unknown, field: string): boolean | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (['1', 't', 'true', 'on', 'y', 'yes'].includes(text)) return true;
  if (['0', 'f', 'false', 'off', 'n', 'no'].includes(text)) return false;
  throw invalid(`Invalid value for ${field}: ${String(value)}. It must be a boolean.`);
}

function requireHardwareType(driver: string, site: string): HardwareType {
  const type = hardwareType(driver);
  if (!type) {
    throw invalid(
      `No valid host was found. Reason: No conductor service registered which supports driver ${driver} for conductor group "${site}".`,
    );
  }
  return type;
}

/** Interfaces: the hardware type's default unless given; a given one must be enabled. */
function resolveInterfaces(type: HardwareType, given: Record<string, unknown>): Record<string, string> {
  const resolved: Record<string, string> = {};
  for (const name of INTERFACE_NAMES) {
    const field = `${name}_interface`;
    const choice = type.interfaces[name];
    const value = given[field];
    if (value === undefined || value === null) {
      resolved[field] = choice.default;
    } else if (typeof value === 'string' && choice.enabled.includes(value)) {
      resolved[field] = value;
    } else {
      throw invalid(
        `Could not find the following interface in the 'ironic.hardware.interfaces.${name}' entrypoint: ${String(value)}. Valid interfaces are ${choice.enabled.join(', ')}.`,
      );
    }
  }
  return resolved;
}

/** Refuses fields newer than the request's microversion, as Ironic does (406). */
export function rejectNewerFields(fields: Iterable<string>, minor: number): void {
  for (const field of fields) {
    const since = fieldSince(field);
    if (since !== undefined && since > minor) throw notAcceptable('Request not acceptable.');
  }
}

export function normalizeSiteName(value: unknown): string {
  const site = typeof value === 'string' ? value.toLowerCase() : '';
  if (!CONDUCTOR_GROUP.test(site)) {
    throw invalid(
      `Invalid conductor_group ${pythonString(site)}: it may contain only letters, digits, '_', '-' and '.'.`,
    );
  }
  return site;
}

function pythonString(text: string): string {
  return `'${text}'`;
}

export interface NewNodeContext {
  readonly uuid: string;
  readonly now: string;
  readonly minor: number;
  /** The site the node goes to (explicit conductor_group, or the default site). */
  readonly site: string;
}

export function createNode(body: NodeCreateBody, context: NewNodeContext): Node {
  rejectNewerFields(
    Object.keys(body).filter((key) => body[key as keyof NodeCreateBody] !== null),
    context.minor,
  );
  const type = requireHardwareType(body.driver, context.site);
  if (body.name !== undefined && body.name !== null && !isValidLogicalName(body.name)) {
    throw invalid(`Cannot create node with invalid name '${String(body.name)}'`);
  }
  const node: Node = {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    name: (body.name as string | null | undefined) ?? null,
    driver: body.driver,
    driver_info: (body.driver_info as JsonObject | null) ?? {},
    driver_internal_info: {},
    extra: (body.extra as JsonObject | null) ?? {},
    properties: (body.properties as JsonObject | null) ?? {},
    instance_info: (body.instance_info as JsonObject | null) ?? {},
    instance_uuid: null,
    chassis_uuid: (body.chassis_uuid as string | null | undefined) ?? null,
    allocation_uuid: null,
    conductor_group: context.site,
    resource_class: (body.resource_class as string | null | undefined) ?? null,
    description: (body.description as string | null | undefined) ?? null,
    owner: (body.owner as string | null | undefined) ?? null,
    lessee: (body.lessee as string | null | undefined) ?? null,
    shard: (body.shard as string | null | undefined) ?? null,
    maintenance: toBool(body.maintenance, 'maintenance') ?? false,
    maintenance_reason: null,
    fault: null,
    protected: toBool(body.protected, 'protected') ?? false,
    protected_reason: (body.protected_reason as string | null | undefined) ?? null,
    retired: toBool(body.retired, 'retired') ?? false,
    retired_reason: (body.retired_reason as string | null | undefined) ?? null,
    automated_clean: toBool(body.automated_clean, 'automated_clean'),
    console_enabled: toBool(body.console_enabled, 'console_enabled') ?? false,
    power_state: null,
    target_power_state: null,
    provision_state: context.minor >= 11 ? 'enroll' : 'available',
    target_provision_state: null,
    provision_updated_at: null,
    last_error: null,
    reservation: null,
    inspection_started_at: null,
    inspection_finished_at: null,
    clean_step: {},
    deploy_step: {},
    raid_config: {},
    target_raid_config: {},
    network_data: (body.network_data as JsonObject | null) ?? {},
    boot_mode: (body.boot_mode as string | null | undefined) ?? null,
    secure_boot: toBool(body.secure_boot, 'secure_boot'),
    traits: [],
    ...(resolveInterfaces(type, body) as Pick<Node, `${InterfaceName}_interface`>),
  };
  if (body.instance_uuid !== undefined && body.instance_uuid !== null)
    node.instance_uuid = checkUuid(body.instance_uuid, 'instance_uuid');
  if (node.chassis_uuid !== null) node.chassis_uuid = checkUuid(node.chassis_uuid, 'chassis_uuid');
  return node;
}

function checkUuid(value: unknown, field: string): string {
  if (!isUuidLike(value)) throw invalid(`Expected a UUID for ${field}: ${String(value)}`);
  return value.toLowerCase();
}

/** What a removed root field becomes (Ironic resets it to the field's default). */
function resetValue(node: Node, field: string): unknown {
  if (field.endsWith('_interface')) {
    return hardwareType(node.driver)?.interfaces[field.replace(/_interface$/, '') as InterfaceName]?.default;
  }
  const current = (node as unknown as Record<string, unknown>)[field];
  if (typeof current === 'boolean') return false;
  if (current !== null && typeof current === 'object' && !Array.isArray(current)) return {};
  return null;
}

export interface PatchContext {
  readonly minor: number;
  readonly now: string;
  /** Fields this caller may patch (a member's subset, or all updatable ones). */
  readonly allowedFields?: readonly string[];
}

/**
 * Applies an Ironic JSON Patch to a node; returns the new node. Nothing is written by
 * this function, so a failing patch leaves the stored node as it was.
 */
export function patchNode(node: Node, body: unknown, context: PatchContext): Node {
  const patch = validatePatch(body);
  const allowed = UPDATABLE_FIELDS.filter((field) => (fieldSince(field) ?? 1) <= context.minor);
  checkPatchAllowed(patch, allowed);
  rejectNewerPatch(patch, context.minor);
  const allowedForCaller = context.allowedFields;
  if (allowedForCaller) {
    const refused = patch.find((op) => !allowedForCaller.includes(op.path.split('/')[1] as string));
    if (refused) {
      throw forbidden(
        `Access was denied to ${refused.path}: this role may change only ${[...allowedForCaller].sort().join(', ')}.`,
      );
    }
  }
  const patched = applyPatch(node as unknown as Record<string, unknown>, patch);
  for (const op of patch) {
    const field = op.path.split('/')[1] as string;
    if (op.op === 'remove' && op.path === `/${field}`) patched[field] = resetValue(node, field);
  }
  validatePatchedNode(patched);
  return normalizePatched(node, patched, context.now);
}

function rejectNewerPatch(patch: readonly PatchOp[], minor: number): void {
  rejectNewerFields(
    patch.map((op) => op.path.split('/')[1] as string),
    minor,
  );
}

function normalizePatched(before: Node, patched: Record<string, unknown>, now: string): Node {
  const node = patched as unknown as Node;
  if (typeof node.driver !== 'string')
    throw invalid("Schema error for node: 'driver' is a required property");
  const type = requireHardwareType(node.driver, node.conductor_group);
  if (node.name !== null && node.name !== before.name && !isValidLogicalName(node.name)) {
    throw invalid(`Node name cannot be updated to invalid name '${String(node.name)}'`);
  }
  for (const field of ['maintenance', 'protected', 'retired', 'console_enabled'] as const) {
    node[field] = toBool(node[field], field) ?? false;
  }
  node.automated_clean = toBool(node.automated_clean, 'automated_clean');
  for (const field of ['driver_info', 'extra', 'properties', 'instance_info', 'network_data'] as const) {
    node[field] ??= {};
  }
  node.conductor_group = normalizeSiteName(node.conductor_group ?? '');
  if (node.instance_uuid !== null) node.instance_uuid = checkUuid(node.instance_uuid, 'instance_uuid');
  if (node.chassis_uuid !== null) node.chassis_uuid = checkUuid(node.chassis_uuid, 'chassis_uuid');
  // A driver change re-defaults interfaces the new hardware type does not enable.
  const interfaces: Record<string, unknown> = {};
  for (const name of INTERFACE_NAMES) {
    const field = `${name}_interface`;
    const value = (node as unknown as Record<string, unknown>)[field];
    const changedDriver =
      node.driver !== before.driver && value === (before as unknown as Record<string, unknown>)[field];
    interfaces[field] = changedDriver ? null : value;
  }
  Object.assign(node, resolveInterfaces(type, interfaces));
  if (!node.maintenance) node.maintenance_reason = null;
  if (!node.protected) {
    if (node.protected_reason && node.protected_reason !== before.protected_reason) {
      throw invalid('Cannot set protected_reason when protected is unset');
    }
    node.protected_reason = null;
  }
  node.updated_at = now;
  return node;
}
