/**
 * Deploy templates (API 1.55+): named sets of deploy steps a node runs when its
 * instance asks for the trait of the same name (Ironic 21.4's
 * `api/controllers/v1/deploy_template.py`). Pure.
 */

import { maskSecrets } from '../auth/secrets.ts';
import { type DomainError, invalid } from '../errors.ts';
import { pythonRepr } from '../python-repr.ts';
import { validator } from '../schema.ts';
import {
  assertStorable,
  type JsonObject,
  links,
  patchDocument,
  requireUuid,
  schemaView,
  selectFields,
  traitSchemaError,
} from './common.ts';

export const DEPLOY_TEMPLATES_SINCE = 55;

export interface DeployStep {
  interface: string;
  step: string;
  args: JsonObject;
  priority: number;
}

export interface DeployTemplate {
  uuid: string;
  created_at: string;
  updated_at: string | null;
  name: string;
  steps: DeployStep[];
  extra: JsonObject;
}

/** Interfaces a deploy step may belong to (Ironic 21.4's DEPLOYING_INTERFACE_PRIORITY). */
export const DEPLOY_STEP_INTERFACES = ['power', 'management', 'deploy', 'bios', 'raid'] as const;

/** Ironic's DEPLOY_STEP_SCHEMA (priority's anyOf is checked after, with jsonschema's words). */
export const DEPLOY_STEP_SCHEMA = {
  type: 'object',
  properties: {
    args: { type: 'object' },
    interface: { type: 'string', enum: [...DEPLOY_STEP_INTERFACES] },
    priority: {},
    step: { type: 'string', minLength: 1 },
  },
  required: ['interface', 'step', 'args', 'priority'],
  additionalProperties: false,
} as const;

/** Ironic 21.4's TEMPLATE_SCHEMA (the name's TRAITS_SCHEMA is checked after). */
export const DEPLOY_TEMPLATE_SCHEMA = {
  type: 'object',
  properties: {
    extra: { type: ['object', 'null'] },
    name: { type: 'string' },
    steps: { type: 'array', items: DEPLOY_STEP_SCHEMA, minItems: 1 },
    uuid: { type: ['string', 'null'] },
  },
  required: ['steps', 'name'],
  additionalProperties: false,
} as const;

export interface DeployTemplateBody {
  extra?: JsonObject | null;
  name: string;
  steps: Array<{ interface: string; step: string; args: JsonObject; priority: unknown }>;
  uuid?: string | null;
}

/** Root fields a JSON Patch may touch (Ironic 21.4's PATCH_ALLOWED_FIELDS). */
export const DEPLOY_TEMPLATE_PATCHABLE = ['extra', 'name', 'steps'] as const;
export const DEPLOY_TEMPLATE_DEFAULT_FIELDS = ['uuid', 'name'] as const;
export const DEPLOY_TEMPLATE_FIELDS = ['uuid', 'created_at', 'updated_at', 'name', 'extra', 'links', 'steps'];

const schemaValidators = new Map<string, (value: unknown) => DeployTemplateBody>();

function schemaValidator(what: string) {
  let validate = schemaValidators.get(what);
  if (!validate) {
    validate = validator<DeployTemplateBody>(what, DEPLOY_TEMPLATE_SCHEMA);
    schemaValidators.set(what, validate);
  }
  return validate;
}

/** priority: an integer >= 0, or a string of digits (Ironic's anyOf). */
function validPriority(value: unknown): boolean {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0;
  return typeof value === 'string' && /^[0-9]+$/.test(value);
}

/**
 * Ironic's TEMPLATE_VALIDATOR: the schema, then the name as a trait, then duplicate
 * steps, then the UUID. `what` names the argument in messages ('template' on create,
 * 'patch' after a patch).
 */
export function validateDeployTemplate(value: unknown, what: 'template' | 'patch'): DeployTemplateBody {
  const body = schemaValidator(what)(value);
  const nameError = traitSchemaError(body.name);
  if (nameError) throw invalid(`Schema error for ${what}: ${nameError}`);
  for (const step of body.steps) {
    if (!validPriority(step.priority)) {
      throw invalid(
        `Schema error for ${what}: ${pythonRepr(step.priority)} is not valid under any of the given schemas`,
      );
    }
  }
  const counts = new Map<string, number>();
  for (const step of body.steps) {
    const key = `interface: ${step.interface}, step: ${step.step}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const duplicates = [...counts].filter(([, count]) => count > 1).map(([key]) => key);
  if (duplicates.length > 0) {
    throw invalidTemplate(
      `Duplicate deploy steps. A deploy template cannot have multiple deploy steps with the same interface and step. Duplicates: ${duplicates.join('; ')}`,
    );
  }
  if (body.uuid !== undefined && body.uuid !== null) requireUuid(body.uuid, 'uuid');
  assertStorable(body, what);
  return body;
}

/** Ironic's InvalidDeployTemplate. */
function invalidTemplate(error: string): DomainError {
  return invalid(`Deploy template invalid: ${error}.`);
}

function normalizeSteps(steps: DeployTemplateBody['steps']): DeployStep[] {
  return steps.map((step) => ({
    interface: step.interface,
    step: step.step,
    args: step.args,
    priority: Number(step.priority),
  }));
}

export function createDeployTemplate(
  body: DeployTemplateBody,
  context: { uuid: string; now: string },
): DeployTemplate {
  return {
    uuid: context.uuid,
    created_at: context.now,
    updated_at: null,
    name: body.name,
    steps: normalizeSteps(body.steps),
    extra: body.extra ?? {},
  };
}

export function patchDeployTemplate(template: DeployTemplate, body: unknown, now: string): DeployTemplate {
  const patched = patchDocument(template, body, {
    allowed: DEPLOY_TEMPLATE_PATCHABLE,
    objectFields: ['extra'],
  });
  const valid = validateDeployTemplate(schemaView(patched, DEPLOY_TEMPLATE_SCHEMA), 'patch');
  return {
    ...template,
    name: valid.name,
    steps: normalizeSteps(valid.steps),
    extra: valid.extra ?? {},
    updated_at: now,
  };
}

export interface DeployTemplateRenderOptions {
  readonly baseUrl: string;
  readonly fields?: readonly string[] | undefined;
}

/** A template as Ironic shows it: secrets in step arguments masked. */
export function renderDeployTemplate(
  template: DeployTemplate,
  options: DeployTemplateRenderOptions,
): Record<string, unknown> {
  const view = {
    uuid: template.uuid,
    created_at: template.created_at,
    updated_at: template.updated_at,
    name: template.name,
    extra: template.extra,
    links: links(options.baseUrl, `deploy_templates/${template.uuid}`),
    steps: template.steps.map((step) => ({
      interface: step.interface,
      step: step.step,
      args: maskSecrets(step.args),
      priority: step.priority,
    })),
  };
  return selectFields(view, options.fields);
}
