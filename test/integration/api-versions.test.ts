/**
 * GET / and GET /v1 through the local HTTP gateway and the real api handler, compared
 * field for field with what Ironic answered (the reference exchanges).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

// The reference was recorded from an Ironic in noauth mode: compare against ours in noauth.
let api: TestApi;
let gateway: { url: string };

beforeAll(async () => {
  api = await startApi();
  gateway = { url: api.url };
});
afterAll(() => api.close());

async function replay(number: number) {
  const { request, response: expected } = exchange(number);
  const response = await fetch(`${gateway.url}${request.path}`, {
    method: request.method,
    headers: request.headers,
  });
  const body = response.status === 204 ? undefined : await response.json();
  return { expected: rehost(expected, gateway.url), response, body };
}

/** The headers Ironic sent, compared by name case-insensitively. */
function expectHeaders(response: Response, expected: Record<string, string>) {
  for (const [name, value] of Object.entries(expected)) {
    expect(response.headers.get(name), name).toBe(value);
  }
}

describe('version documents', () => {
  it.each([
    [1, 'root document'],
    [2, 'v1 without a version header (1.1)'],
    [3, 'v1 at 1.82'],
    [4, 'v1 at latest'],
  ])('exchange %i: %s matches Ironic field for field', async (number) => {
    const { expected, response, body } = await replay(number);
    expect(response.status).toBe(expected.status);
    expectHeaders(response, expected.headers);
    expect(body).toStrictEqual(expected.body);
  });

  it('GET / carries no version headers, as Ironic', async () => {
    const response = await fetch(`${gateway.url}/`);
    expect(response.headers.get('x-openstack-ironic-api-version')).toBeNull();
    expect(response.headers.get('x-openstack-ironic-api-minimum-version')).toBeNull();
  });

  it('answers with a trailing slash too', async () => {
    const response = await fetch(`${gateway.url}/v1/`, {
      headers: { 'X-OpenStack-Ironic-API-Version': '1.50' },
    });
    const body = (await response.json()) as Record<string, unknown>;
    expect(response.headers.get('x-openstack-ironic-api-version')).toBe('1.50');
    // conductors came at 1.49, allocations at 1.52
    expect(body).toHaveProperty('conductors');
    expect(body).not.toHaveProperty('allocations');
  });
});

describe('microversion negotiation errors', () => {
  it.each([
    [5, 'too high'],
    [6, 'too low'],
    [7, 'malformed'],
  ])('exchange %i: %s version is 406 exactly as Ironic', async (number) => {
    const { expected, response, body } = await replay(number);
    expect(response.status).toBe(406);
    expectHeaders(response, expected.headers);
    // The error_message string itself is compared, byte for byte.
    expect(body).toStrictEqual(expected.body);
    if (number === 7) expect(response.headers.get('x-openstack-ironic-api-minimum-version')).toBeNull();
  });

  it('a major version other than 1 is 406', async () => {
    const response = await fetch(`${gateway.url}/v1`, {
      headers: { 'X-OpenStack-Ironic-API-Version': '2.1' },
    });
    expect(response.status).toBe(406);
    const fault = JSON.parse(((await response.json()) as { error_message: string }).error_message);
    expect(fault.description).toMatch(/^Mutually exclusive versions requested/);
  });
});

describe('errors', () => {
  it('exchange 109: DELETE /v1 is 405 with Ironic body and headers', async () => {
    const { expected, response, body } = await replay(109);
    expect(response.status).toBe(405);
    expectHeaders(response, expected.headers);
    expect(body).toStrictEqual(expected.body);
  });

  it('an unknown path is 404 in Ironic error format', async () => {
    const response = await fetch(`${gateway.url}/v1/no-such-thing`, {
      headers: { 'X-OpenStack-Ironic-API-Version': '1.82' },
    });
    expect(response.status).toBe(404);
    expect(response.headers.get('x-openstack-ironic-api-version')).toBe('1.82');
    const fault = JSON.parse(((await response.json()) as { error_message: string }).error_message);
    expect(fault).toStrictEqual({
      faultcode: 'Client',
      faultstring: 'The resource could not be found.',
      debuginfo: null,
    });
  });

  it('every response carries a request id', async () => {
    const response = await fetch(`${gateway.url}/v1`);
    expect(response.headers.get('x-openstack-request-id')).toMatch(/^req-[0-9a-f-]{36}$/);
  });
});

describe('links follow the request host', () => {
  it('uses X-Forwarded-Proto and X-Forwarded-Host behind a proxy', async () => {
    const response = await fetch(`${gateway.url}/v1`, {
      headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'bm.example.com' },
    });
    const body = (await response.json()) as { links: Array<{ href: string }> };
    expect(body.links[0]?.href).toBe('https://bm.example.com/v1/');
  });

  it('ignores a forged host that is not a plain host[:port]', async () => {
    const response = await fetch(`${gateway.url}/v1`, {
      headers: { 'X-Forwarded-Host': 'evil.com/"><script>' },
    });
    const body = (await response.json()) as { links: Array<{ href: string }> };
    expect(body.links[0]?.href).toBe(`${gateway.url}/v1/`);
  });
});
