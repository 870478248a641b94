/** The OpenAPI document matches the routes exactly and is a valid OpenAPI 3.1 document. */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRouter } from '../../lambda/api/app.ts';
import { OPERATIONS } from '../../lambda/api/openapi.ts';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api.close());

describe('OpenAPI', () => {
  it('documents every route, and documents nothing that is not a route', () => {
    const routes = buildRouter(api.deps)
      .patterns()
      .flatMap(({ pattern, methods }) => methods.map((method) => `${method} ${pattern}`))
      .sort();
    expect(Object.keys(OPERATIONS).sort()).toStrictEqual(routes);
  });

  it('is served at /v1/openapi.json and validates as OpenAPI 3.1', async () => {
    const served = await api.call('GET', '/v1/openapi.json');
    expect(served.status).toBe(200);
    expect(served.body.openapi).toBe('3.1.0');
    expect(served.body.paths['/v1/nodes/{node}'].patch.requestBody).toBeDefined();
    const result = await new Validator().validate(served.body);
    expect(result.errors ?? []).toStrictEqual([]);
    expect(result.valid).toBe(true);
  });
});
