/**
 * Ajv's `errorsText`, without an Ajv instance (the agent bundle has none: lazy-validator.ts):
 * `${dataVar}${instancePath} ${message}` of each error, joined by `separator`.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';

export function errorsText(
  errors: readonly ErrorObject[] | null | undefined,
  { separator = ', ', dataVar = 'data' }: { separator?: string; dataVar?: string } = {},
): string {
  if (!errors || errors.length === 0) return 'No errors';
  return errors.map((e) => `${dataVar}${e.instancePath} ${e.message}`).join(separator);
}
