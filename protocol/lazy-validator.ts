/**
 * A schema validator compiled at its first call, not at import: compiling (and Ajv's
 * meta-schema compilation behind the first compile of an instance) costs tens of ms, which
 * every cold start of a Lambda importing this module would pay for validators its request
 * may never use (issue 18). Called, and read (`errors`, `schema` ...), as the
 * `ValidateFunction` Ajv's `compile` returns.
 */
import type { Ajv2020, AnySchema, ValidateFunction } from 'ajv/dist/2020.js';

export function lazyValidator<T>(ajv: () => Ajv2020, schema: AnySchema): ValidateFunction<T> {
  let compiled: ValidateFunction<T> | undefined;
  const get = (): ValidateFunction<T> => {
    compiled ??= ajv().compile<T>(schema);
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
