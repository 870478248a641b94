/**
 * The chassis: a group of nodes (Ironic 21.4's `api/controllers/v1/chassis.py`): its
 * stored form, creation, patching and rendering. Pure.
 */
import { invalid } from '../errors.ts';
import { validator } from '../schema.ts';
import {
  assertStorable,
  type JsonObject,
  links,
  patchDocument,
  requireUuid,
  schemaView,
  selectFields,
} from './common.ts';

export interface Chassis {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  description: string | null;
  extra: JsonObject;
}

/** Ironic's CHASSIS_SCHEMA (its property order is the order of the patch message). */
export const CHASSIS_SCHEMA = {
  type: 'object',
  properties: {
    uuid: { type: ['string', 'null'] },
    extra: { type: ['object', 'null'] },
    description: { type: ['string', 'null'], maxLength: 255 },
  },
  additionalProperties: false,
} as const;

export interface ChassisBody {
  uuid?: string | null;
  extra?: JsonObject | null;
  description?: string | null;
}

const validateChassisSchema = validator<ChassisBody>('chassis', CHASSIS_SCHEMA);

export function validateChassisCreate(value: unknown): ChassisBody {
  const body = validateChassisSchema(value);
  assertStorable(body, 'chassis');
  return body;
}
const validatePatchedChassis = validator<ChassisBody>('patch', CHASSIS_SCHEMA);

/** What `GET /v1/chassis` shows per chassis without `fields` or `detail`. */
export const CHASSIS_DEFAULT_FIELDS = ['uuid', 'description'] as const;
/** Fields a client may name in `?fields=`. */
export const CHASSIS_FIELDS = ['uuid', 'created_at', 'updated_at', 'description', 'extra', 'links', 'nodes'];

export function createChassis(body: ChassisBody, context: { uuid: string; now: string }): Chassis {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    description: body.description ?? null,
    extra: body.extra ?? {},
  };
}

/** The UUID of a new chassis: the one given (checked) or a fresh one. */
export function newChassisUuid(body: ChassisBody, fresh: () => string): string {
  return body.uuid === undefined || body.uuid === null ? fresh() : requireUuid(body.uuid, 'uuid');
}

/** Applies an Ironic JSON Patch; a changed UUID is refused as Ironic's database layer does. */
export function patchChassis(chassis: Chassis, body: unknown, now: string): Chassis {
  const patched = patchDocument(chassis, body, {
    allowed: Object.keys(CHASSIS_SCHEMA.properties),
    objectFields: ['extra'],
  });
  const view = schemaView(patched, CHASSIS_SCHEMA);
  validatePatchedChassis(view);
  assertStorable(view, 'patch');
  if (patched.uuid !== null && patched.uuid !== undefined) requireUuid(patched.uuid, 'uuid');
  if (patched.uuid !== chassis.uuid) throw invalid('Cannot overwrite UUID for an existing Chassis.');
  return {
    uuid: chassis.uuid,
    created_at: chassis.created_at,
    updated_at: now,
    description: patched.description ?? null,
    extra: patched.extra ?? {},
  };
}

export interface ChassisRenderOptions {
  readonly baseUrl: string;
  readonly fields?: readonly string[] | undefined;
}

/**
 * A chassis as Ironic 21.4 shows it. Its `nodes` is a list holding the pair of links
 * (not the pair itself): Ironic builds it with a stray trailing comma, and clients see
 * that shape (reference exchanges 016 and 018).
 */
export function renderChassis(chassis: Chassis, options: ChassisRenderOptions): Record<string, unknown> {
  const view = {
    uuid: chassis.uuid,
    created_at: chassis.created_at,
    updated_at: chassis.updated_at,
    description: chassis.description,
    extra: chassis.extra,
    links: links(options.baseUrl, `chassis/${chassis.uuid}`),
    nodes: [links(options.baseUrl, `chassis/${chassis.uuid}/nodes`)],
  };
  return selectFields(view, options.fields);
}
