/**
 * Schema validators, by name. Run from the sources (the control plane's Lambdas, tests, the
 * agent from `agent/cli.ts`) a validator is compiled by Ajv at its first call, not at
 * import: compiling (and Ajv's meta-schema compilation behind the first compile of an
 * instance) costs tens of ms, which every cold start of a Lambda importing this module
 * would pay for validators its request may never use (issue 18). Called, and read
 * (`errors`, `schema` ...), as the `ValidateFunction` Ajv's `compile` returns.
 *
 * The agent as shipped (the esbuild bundle, scripts/agent-bundle.ts) does not load Ajv:
 * this module is replaced in the bundle by Ajv's standalone code for every validator
 * registered here, generated at bundle time from the same schemas and options (compiling
 * schemas at run time held ~20 MiB of the agent's idle RSS: docs/agent.md, "Footprint").
 * The name is what ties a call site to its precompiled function: unique, stable.
 */
import { Ajv2020, type AnySchema, type ValidateFunction } from 'ajv/dist/2020.js';

export { errorsText } from './validator-errors.ts';

/** The Ajv options a validator is compiled with (`allErrors` is always off); one Ajv per set. */
export interface ValidatorOptions {
  readonly strict: boolean;
  readonly allowUnionTypes?: boolean;
}

export interface RegisteredValidator {
  readonly options: ValidatorOptions;
  readonly schema: AnySchema;
}

/** False here; true in the agent bundle, where the validators are Ajv standalone code. */
export const VALIDATORS_PRECOMPILED: boolean = false;

const registry = new Map<string, RegisteredValidator>();
const instances = new Map<string, Ajv2020>();

/** Every validator made by `lazyValidator` in this process, by name (what the bundle precompiles). */
export function registeredValidators(): ReadonlyMap<string, RegisteredValidator> {
  return registry;
}

/** Ajv's options for a validator of `options` (the bundle's generator compiles with the same). */
export function ajvOptions(options: ValidatorOptions): {
  strict: boolean;
  allowUnionTypes: boolean;
  allErrors: false;
} {
  return { strict: options.strict, allowUnionTypes: options.allowUnionTypes ?? false, allErrors: false };
}

function ajvFor(options: ValidatorOptions): Ajv2020 {
  const key = JSON.stringify(ajvOptions(options));
  let ajv = instances.get(key);
  if (!ajv) {
    ajv = new Ajv2020(ajvOptions(options));
    instances.set(key, ajv);
  }
  return ajv;
}

export function lazyValidator<T>(
  name: string,
  options: ValidatorOptions,
  schema: AnySchema,
): ValidateFunction<T> {
  const known = registry.get(name);
  if (known && known.schema !== schema) throw new Error(`validator ${JSON.stringify(name)} defined twice`);
  registry.set(name, { options, schema });
  let compiled: ValidateFunction<T> | undefined;
  const get = (): ValidateFunction<T> => {
    compiled ??= ajvFor(options).compile<T>(schema);
    return compiled;
  };
  const validate = function (this: unknown, data: unknown, context?: unknown) {
    return (get() as (this: unknown, data: unknown, context?: unknown) => boolean).call(this, data, context);
  } as ValidateFunction<T>;
  Object.defineProperties(validate, {
    errors: {
      get: () => compiled?.errors,
      set: (errors: ValidateFunction<T>['errors']) => {
        get().errors = errors;
      },
      enumerable: true,
    },
    schema: { get: () => get().schema, enumerable: true },
    schemaEnv: { get: () => get().schemaEnv, enumerable: true },
    evaluated: { get: () => get().evaluated, enumerable: true },
    source: { get: () => get().source, enumerable: true },
  });
  return validate;
}
