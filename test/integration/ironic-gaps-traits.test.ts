/**
 * Adding one trait (`PUT /v1/nodes/{node}/traits/{trait}`) answers as Ironic 21.4 does
 * (exchange 081; NodeTraitsController.put): 204, no body, and a `Location` header built
 * from the node as the path names it (UUID or name) and the trait. Setting all traits
 * (exchange 080) has no Location; a refused trait (exchange 082) writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api?.close());

async function newNode(name?: string): Promise<string> {
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', ...(name ? { name } : {}) },
  });
  expect(created.status).toBe(201);
  return created.body.uuid;
}

describe('trait add (exchange 081)', () => {
  it('answers 204 with Ironic’s Location header and no body', async () => {
    const { request, response } = exchange(81);
    const node = await newNode();
    const recorded = request.path.split('/')[3] as string;
    const added = await api.call('PUT', request.path.replace(recorded, node));
    expect(added.status).toBe(response.status);
    expect(added.body).toBeUndefined();
    const location = rehost(response.headers.Location as string, api.url).replace(recorded, node);
    expect(added.headers.get('location')).toBe(location);
    expect(location).toBe(`${api.url}/v1/nodes/${node}/traits/CUSTOM_FAST`);
    expect((await api.call('GET', `/v1/nodes/${node}/traits`)).body).toStrictEqual({
      traits: ['CUSTOM_FAST'],
    });
  });

  it('names the node as the path does (a name stays a name), also when the trait is there', async () => {
    const node = await newNode('trait-loc');
    const first = await api.call('PUT', '/v1/nodes/trait-loc/traits/HW_CPU_X86_VMX');
    expect(first.status).toBe(204);
    expect(first.headers.get('location')).toBe(`${api.url}/v1/nodes/trait-loc/traits/HW_CPU_X86_VMX`);
    const again = await api.call('PUT', '/v1/nodes/trait-loc/traits/HW_CPU_X86_VMX');
    expect(again.status).toBe(204);
    expect(again.headers.get('location')).toBe(`${api.url}/v1/nodes/trait-loc/traits/HW_CPU_X86_VMX`);
    expect((await api.call('GET', `/v1/nodes/${node}/traits`)).body).toStrictEqual({
      traits: ['HW_CPU_X86_VMX'],
    });
  });

  it('setting all traits (exchange 080) has no Location', async () => {
    const { request, response } = exchange(80);
    const node = await newNode();
    const set = await api.call('PUT', `/v1/nodes/${node}/traits`, { body: request.body });
    expect(set.status).toBe(response.status);
    expect(set.headers.get('location')).toBeNull();
    expect('Location' in response.headers).toBe(false);
  });

  it('a refused trait (exchange 082) has no Location and changes nothing', async () => {
    const { response } = exchange(82);
    const node = await newNode();
    expect((await api.call('PUT', `/v1/nodes/${node}/traits/CUSTOM_KEEP`)).status).toBe(204);
    const before = await api.deps.nodes.get(node);
    const refused = await api.call('PUT', `/v1/nodes/${node}/traits/lowercase`);
    expect(refused.status).toBe(response.status);
    expect(refused.headers.get('location')).toBeNull();
    expect((await api.deps.nodes.get(node))?.version).toBe(before?.version);
    const missing = await api.call('PUT', '/v1/nodes/no-such-trait-node/traits/CUSTOM_X');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('location')).toBeNull();
  });
});
