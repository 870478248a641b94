/**
 * What a route file says of each of its operations for the OpenAPI description
 * (`openapi.ts` gathers the routes' `*_OPERATIONS` into `GET /v1/openapi.json`). A module
 * of its own so that the routes, which `openapi.ts` imports, import nothing back from it.
 */
import type { JsonSchema } from '../domain/schema.ts';

export interface OperationDoc {
  readonly summary: string;
  readonly tag: string;
  readonly requestSchema?: JsonSchema;
  /** The body may be left out (the route then uses its defaults). */
  readonly optionalBody?: boolean;
  /** Status of success (200 unless given). */
  readonly status?: number;
  readonly public?: boolean;
}
