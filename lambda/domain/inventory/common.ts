/**
 * What the smaller inventory resources (chassis, allocations, deploy templates, volume
 * connectors and targets, BIOS settings) share: Ironic's links and field selection,
 * its argument checks ("Expected UUID for ..."), and JSON Patch as Ironic applies it to
 * these objects (allowed root fields named in Ironic's own order, a removed root field
 * reset to its null value, the result validated again against the creation schema).
 */
import { invalid } from '../errors.ts';
import { canonicalUuid, isUuidLike, isValidLogicalName, validateTrait } from '../identifiers.ts';
import { applyPatch, type PatchOp, rootField, validatePatch } from '../json-patch.ts';
import type { Json, JsonObject } from '../nodes/node.ts';
import { pythonRepr } from '../python-repr.ts';

export type { Json, JsonObject };

export interface Link {
  readonly href: string;
  readonly rel: string;
}

/** Ironic's `link.make_link` pair: `self` under `/v1`, `bookmark` without it. */
export function links(baseUrl: string, path: string): Link[] {
  return [
    { href: `${baseUrl}/v1/${path}`, rel: 'self' },
    { href: `${baseUrl}/${path}`, rel: 'bookmark' },
  ];
}

/**
 * Ironic's `sanitize_dict`: keeps the requested fields and `links`, in the order of the
 * full view (not the order of `fields`). Undefined `fields` keeps everything.
 */
export function selectFields(
  view: Record<string, unknown>,
  fields: readonly string[] | undefined,
): Record<string, unknown> {
  if (!fields) return view;
  const wanted = new Set(fields);
  return Object.fromEntries(Object.entries(view).filter(([key]) => key === 'links' || wanted.has(key)));
}

/** Ironic's `args.uuid`: the canonical UUID, or "Expected UUID for <name>: <value>". */
export function requireUuid(value: unknown, name: string): string {
  if (!isUuidLike(value)) throw invalid(`Expected UUID for ${name}: ${String(value)}`);
  return canonicalUuid(value);
}

/** Ironic's `args.uuid_or_name`. */
export function requireUuidOrName(value: string, name: string): string {
  if (!isUuidLike(value) && !isValidLogicalName(value)) {
    throw invalid(`Expected UUID or name for ${name}: ${value}`);
  }
  return value;
}

/** Ironic's `args.name`. */
export function requireName(value: string, name: string): string {
  if (!isValidLogicalName(value)) throw invalid(`Expected name for ${name}: ${value}`);
  return value;
}

/**
 * Ironic's TRAITS_SCHEMA as jsonschema words its failures: a string of 1 to 255
 * characters that is a standard or a CUSTOM_ trait.
 */
export function traitSchemaError(value: unknown): string | undefined {
  if (typeof value !== 'string') return `${pythonRepr(value)} is not of type 'string'`;
  if (value.length === 0) return `${pythonRepr(value)} is too short`;
  if (value.length > 255) return `${pythonRepr(value)} is too long`;
  try {
    validateTrait(value);
    return undefined;
  } catch {
    return `${pythonRepr(value)} is not valid under any of the given schemas`;
  }
}

/** The smallest magnitude DynamoDB stores; the largest is the SDK's (Number.MAX_SAFE_INTEGER). */
const MIN_MAGNITUDE = 1e-130;

/**
 * Refuses (400) a number the inventory table cannot hold — beyond ±(2^53 - 1), which
 * the DynamoDB SDK will not marshal, or nearer to zero than 1e-130 — anywhere in a
 * body, instead of failing the write with a 500.
 */
export function assertStorable(value: unknown, what: string): void {
  if (typeof value === 'number') {
    const magnitude = Math.abs(value);
    if (magnitude > Number.MAX_SAFE_INTEGER || (magnitude !== 0 && magnitude < MIN_MAGNITUDE)) {
      throw invalid(
        `Schema error for ${what}: ${pythonRepr(value)} is out of the range of numbers Metalplane stores (magnitudes from 1e-130 to 2**53 - 1)`,
      );
    }
  } else if (Array.isArray(value)) {
    for (const item of value) assertStorable(item, what);
  } else if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) assertStorable(item, what);
  }
}

/** Ironic's `patch_validate_allowed_fields`, naming the allowed fields in the given order. */
export function checkPatchFields(patch: readonly PatchOp[], allowed: readonly string[]): void {
  for (const op of patch) {
    if (!allowed.includes(rootField(op.path))) {
      throw invalid(`Cannot patch ${op.path}. Only the following can be updated: ${allowed.join(', ')}`);
    }
  }
}

export interface PatchRules {
  /** Root fields a patch may touch, in Ironic's order (for the message). */
  readonly allowed: readonly string[];
  /** Root fields that hold objects: removing one resets it to `{}` (FlexibleDictField). */
  readonly objectFields: readonly string[];
}

/**
 * Applies an Ironic JSON Patch to a copy of `doc`: the patch must be well formed and
 * touch only allowed root fields; a failing op fails the whole patch; a removed root
 * field becomes `{}` (objects) or `null`. Nothing is written here.
 */
export function patchDocument<T extends object>(doc: T, body: unknown, rules: PatchRules): T {
  const patch = validatePatch(body);
  checkPatchFields(patch, rules.allowed);
  const patched = applyPatch(doc as Record<string, unknown>, patch);
  for (const op of patch) {
    const field = rootField(op.path);
    if (op.op === 'remove' && op.path === `/${field}`) {
      patched[field] = rules.objectFields.includes(field) ? {} : null;
    }
  }
  return patched as T;
}

/** The patch values written at one path (Ironic's `get_patch_values`). */
export function patchValues(body: unknown, path: string): unknown[] {
  if (!Array.isArray(body)) return [];
  return body
    .filter(
      (op): op is PatchOp =>
        op !== null &&
        typeof op === 'object' &&
        (op as PatchOp).path === path &&
        ((op as PatchOp).op === 'add' || (op as PatchOp).op === 'replace'),
    )
    .map((op) => op.value);
}

/** The schema's properties of a patched document (Ironic prunes the rest before validating). */
export function schemaView(doc: object, schema: { properties: Record<string, unknown> }): JsonObject {
  const source = doc as Record<string, unknown>;
  const view: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    if (key in source) view[key] = source[key];
  }
  return view as JsonObject;
}
