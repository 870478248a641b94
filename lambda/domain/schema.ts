/**
 * Request-body validation with JSON Schema (Ajv, draft 2020-12), reporting the first
 * error the way Ironic's jsonschema does ("Schema error for node: Additional properties
 * are not allowed ('foo' was unexpected)"). The same schemas feed the OpenAPI document.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { invalid } from './errors.ts';
import { pythonRepr } from './python-repr.ts';

export type JsonSchema = Record<string, unknown>;

// Built at the first validation, not at import (a cold start that validates nothing pays nothing: issue 18).
let ajv: Ajv2020 | undefined;

export interface Validator<T> {
  (value: unknown): T;
  readonly schema: JsonSchema;
}

/** A validator that throws `invalid("Schema error for <what>: ...")` on the first error. */
export function validator<T>(what: string, schema: JsonSchema): Validator<T> {
  let compiled: ValidateFunction | undefined;
  const validate = ((value: unknown): T => {
    ajv ??= new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true });
    compiled ??= ajv.compile(schema);
    if (!compiled(value)) {
      const [first] = compiled.errors ?? [];
      throw invalid(`Schema error for ${what}: ${first ? describe(first, value) : 'invalid'}`);
    }
    return value as T;
  }) as Validator<T>;
  Object.defineProperty(validate, 'schema', { value: schema });
  return validate;
}

/** The value an error points at (`instancePath` is a JSON pointer). */
function valueAt(root: unknown, pointer: string): unknown {
  let current = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    current =
      current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}

const JSON_TYPE_NAMES: Record<string, string> = {
  integer: 'integer',
  number: 'number',
  string: 'string',
  boolean: 'boolean',
  object: 'object',
  array: 'array',
  null: 'null',
};

/** The message Python's jsonschema writes for the same failure. */
function describe(error: ErrorObject, root: unknown): string {
  const value = valueAt(root, error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperties':
      return `Additional properties are not allowed (${pythonRepr(params.additionalProperty)} was unexpected)`;
    case 'required':
      return `${pythonRepr(params.missingProperty)} is a required property`;
    case 'type': {
      const types = String(params.type)
        .split(',')
        .map((type) => JSON_TYPE_NAMES[type] ?? type);
      return `${pythonRepr(value)} is not of type ${types.map((type) => pythonRepr(type)).join(', ')}`;
    }
    case 'enum':
      return `${pythonRepr(value)} is not one of ${pythonRepr(params.allowedValues)}`;
    case 'const':
      return `${pythonRepr(params.allowedValue)} was expected`;
    case 'pattern':
      return `${pythonRepr(value)} does not match ${pythonRepr(params.pattern)}`;
    case 'maxLength':
      return `${pythonRepr(value)} is too long`;
    case 'minLength':
      return `${pythonRepr(value)} is too short`;
    case 'maxItems':
      return `${pythonRepr(value)} is too long`;
    case 'minItems':
      return `${pythonRepr(value)} is too short`;
    case 'minimum':
      return `${pythonRepr(value)} is less than the minimum of ${params.limit}`;
    case 'maximum':
      return `${pythonRepr(value)} is greater than the maximum of ${params.limit}`;
    case 'maxProperties':
      return `${pythonRepr(value)} has too many properties`;
    case 'anyOf':
    case 'oneOf':
      return `${pythonRepr(value)} is not valid under any of the given schemas`;
    default:
      return `${error.instancePath || 'value'} ${error.message ?? 'is invalid'}`;
  }
}
