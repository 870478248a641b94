/** Allocations through the api handler on moto, compared with Ironic's recorded answers (100-102). */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

// The real router (buildRouter) with real HTTP Basic users: admin, reader, and members of
// projects p1 and p2 (`role`/`project` in a call pick the user).
let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

/** A node of the resource class, put in a state (the conductor that would do it comes later). */
async function node(
  resourceClass: string,
  changes: Partial<Node> = {},
  traits: string[] = [],
): Promise<Node> {
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', resource_class: resourceClass },
  });
  expect(created.status).toBe(201);
  if (traits.length > 0) {
    expect(
      (await api.call('PUT', `/v1/nodes/${created.body.uuid}/traits`, { body: { traits } })).status,
    ).toBe(204);
  }
  const stored = await api.deps.nodes.get(created.body.uuid);
  const after = { ...stored!.node, provision_state: 'available', power_state: 'power off', ...changes };
  await api.deps.nodes.update(stored!.node, after, stored!.version);
  return after;
}

const storedNode = async (uuid: string) => (await api.deps.nodes.get(uuid))!.node;

async function count(): Promise<number> {
  return (await api.call('GET', '/v1/allocations')).body.allocations.length;
}

/** The recorded allocation with its UUIDs and times replaced by ours. */
function reference(n: number, uuid: string, nodeUuid: string | null): any {
  const body = JSON.stringify(rehost(exchange(n).response.body, api.url))
    .replaceAll('d223fa5e-6200-4dca-986e-aaaaa1645acf', uuid)
    .replaceAll('84ad7549-afa9-4cd1-94b0-ad2d01fae276', nodeUuid ?? 'none');
  return JSON.parse(body);
}

const times = (allocation: any) => ({
  ...allocation,
  created_at: 'T',
  updated_at: allocation.updated_at && 'T',
});

describe('allocation create, show, list (exchanges 100-102)', () => {
  let uuid: string;
  let small: Node;

  it('creates as exchange 100 and reserves a matching node at once (shown as exchange 101)', async () => {
    await node('baremetal.large');
    small = await node('baremetal.small');
    const created = await api.call('POST', '/v1/allocations', { body: exchange(100).request.body });
    expect(created.status).toBe(201);
    uuid = created.body.uuid;
    expect(created.headers.get('location')).toBe(`${api.url}/v1/allocations/${uuid}`);
    // Ironic answers before its conductor has matched (state allocating, no node);
    // Metalplane has matched already: the answer is exchange 101's.
    const recorded = reference(100, uuid, null);
    expect(Object.keys(created.body)).toStrictEqual(Object.keys(recorded));
    expect({ ...times(created.body), state: 'allocating', node_uuid: null, updated_at: null }).toStrictEqual(
      times(recorded),
    );
    expect(times(created.body)).toStrictEqual(times(reference(101, uuid, small.uuid)));
    expect(created.body.updated_at).not.toBeNull();
    const reserved = await storedNode(small.uuid);
    expect(reserved.allocation_uuid).toBe(uuid);
    expect(reserved.instance_uuid).toBe(uuid);
  });

  it('shows by name (exchange 101) and lists (exchange 102)', async () => {
    const shown = await api.call('GET', '/v1/allocations/alloc-0');
    expect(times(shown.body)).toStrictEqual(times(reference(101, uuid, small.uuid)));
    const byUuid = await api.call('GET', `/v1/allocations/${uuid}`);
    expect(byUuid.body).toStrictEqual(shown.body);
    const list = await api.call('GET', '/v1/allocations');
    const recorded = reference(102, uuid, small.uuid);
    expect(list.body.allocations.map(times)).toStrictEqual(recorded.allocations.map(times));
    expect(Object.keys(list.body)).toStrictEqual(['allocations']);
  });

  it('shows the allocation of its node; fields select', async () => {
    const viaNode = await api.call('GET', `/v1/nodes/${small.uuid}/allocation`);
    expect(viaNode.status).toBe(200);
    expect(viaNode.body.uuid).toBe(uuid);
    const some = await api.call('GET', `/v1/allocations/${uuid}?fields=state,uuid`);
    expect(Object.keys(some.body)).toStrictEqual(['uuid', 'state', 'links']);
    expect((await api.call('GET', `/v1/allocations/${uuid}?fields=bogus`)).status).toBe(400);
    const other = await node('baremetal.unused');
    const none = await api.call('GET', `/v1/nodes/${other.uuid}/allocation`);
    expect(none.status).toBe(404);
    expect(none.fault?.faultstring).toBe(`Allocation for node ${other.uuid} was not found`);
  });

  it('a taken name is 409 and writes nothing', async () => {
    const before = await count();
    const refused = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'baremetal.small', name: 'alloc-0' },
    });
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toBe('An allocation with name alloc-0 already exists.');
    expect(await count()).toBe(before);
  });

  it('unknown allocation is 404 with Ironic message', async () => {
    const missing = await api.call('GET', '/v1/allocations/nothing-here');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Allocation nothing-here could not be found.');
  });
});

describe('matching', () => {
  it('no node of the class: state error with Ironic last_error', async () => {
    const created = await api.call('POST', '/v1/allocations', { body: { resource_class: 'baremetal.none' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      state: 'error',
      node_uuid: null,
      last_error: `Failed to process allocation ${created.body.uuid}: no available nodes match the resource class baremetal.none.`,
    });
  });

  it('skips nodes in maintenance, not available, without power state, or associated', async () => {
    await node('rc.skip', { maintenance: true });
    await node('rc.skip', { provision_state: 'manageable' });
    await node('rc.skip', { power_state: null });
    await node('rc.skip', { instance_uuid: '11111111-2222-3333-4444-555555555555' });
    const created = await api.call('POST', '/v1/allocations', { body: { resource_class: 'rc.skip' } });
    expect(created.body.state).toBe('error');
    const good = await node('rc.skip');
    const again = await api.call('POST', '/v1/allocations', { body: { resource_class: 'rc.skip' } });
    expect(again.body).toMatchObject({ state: 'active', node_uuid: good.uuid, last_error: null });
  });

  it('requires the traits', async () => {
    await node('rc.traits', {}, ['CUSTOM_A']);
    const wanted = await node('rc.traits', {}, ['CUSTOM_A', 'CUSTOM_GPU']);
    const missing = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.traits', traits: ['CUSTOM_NVME'] },
    });
    expect(missing.body.state).toBe('error');
    expect(missing.body.last_error).toBe(
      `Failed to process allocation ${missing.body.uuid}: no suitable nodes have the requested traits CUSTOM_NVME.`,
    );
    const found = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.traits', traits: ['CUSTOM_GPU'] },
    });
    expect(found.body).toMatchObject({ state: 'active', node_uuid: wanted.uuid, traits: ['CUSTOM_GPU'] });
  });

  it('takes only a candidate (named or by UUID), in the given order', async () => {
    const a = await node('rc.cand');
    const b = await node('rc.cand');
    await api.call('PATCH', `/v1/nodes/${b.uuid}`, { body: [{ op: 'add', path: '/name', value: 'cand-b' }] });
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.cand', candidate_nodes: ['cand-b'] },
    });
    expect(created.body).toMatchObject({ state: 'active', node_uuid: b.uuid, candidate_nodes: [b.uuid] });
    const none = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.cand', candidate_nodes: [b.uuid] },
    });
    expect(none.body.last_error).toContain(
      'none of the requested nodes are available and match the resource class rc.cand',
    );
    expect((await storedNode(a.uuid)).allocation_uuid).toBeNull();
  });

  it('prefers the node named like the allocation', async () => {
    for (let i = 0; i < 3; i++) await node('rc.named');
    const named = await node('rc.named');
    await api.call('PATCH', `/v1/nodes/${named.uuid}`, {
      body: [{ op: 'add', path: '/name', value: 'host-7' }],
    });
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.named', name: 'host-7' },
    });
    expect(created.body.node_uuid).toBe(named.uuid);
  });

  it('two allocations racing for one node: one gets it, the other fails, the node holds one', async () => {
    const only = await node('rc.race');
    const results = await Promise.all(
      [0, 1, 2].map(() => api.call('POST', '/v1/allocations', { body: { resource_class: 'rc.race' } })),
    );
    expect(results.every((result) => result.status === 201)).toBe(true);
    const active = results.filter((result) => result.body.state === 'active');
    expect(active.length).toBe(1);
    expect(results.filter((result) => result.body.state === 'error').length).toBe(2);
    expect((await storedNode(only.uuid)).allocation_uuid).toBe(active[0]?.body.uuid);
  });

  it('backfills a deployed node (1.58+): class from the node, UUID from its instance', async () => {
    const instance = '0f6b8f2e-3c2b-4c55-9a3c-7d3c1b2a4e5f';
    const deployed = await node('rc.backfill', { provision_state: 'active', instance_uuid: instance });
    const created = await api.call('POST', '/v1/allocations', { body: { node: deployed.uuid } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      uuid: instance,
      state: 'active',
      node_uuid: deployed.uuid,
      resource_class: 'rc.backfill',
    });
    expect((await storedNode(deployed.uuid)).allocation_uuid).toBe(instance);
  });

  it('refuses to backfill a node that is not deployed, keeping the allocation in error as Ironic does', async () => {
    const idle = await node('rc.backfill2');
    const refused = await api.call('POST', '/v1/allocations', { body: { node: idle.uuid, name: 'bf-2' } });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toContain(
      'Node must be in the "active" state, but the current state is "available"',
    );
    const kept = await api.call('GET', '/v1/allocations/bf-2');
    expect(kept.body).toMatchObject({ state: 'error', node_uuid: null });
    expect((await storedNode(idle.uuid)).allocation_uuid).toBeNull();
    const tooOld = await api.call('POST', '/v1/allocations', { body: { node: idle.uuid }, version: '1.57' });
    expect(tooOld.status).toBe(400);
    expect(tooOld.fault?.faultstring).toBe('Cannot set node when creating an allocation in this API version');
  });
});

describe('refusals write nothing', () => {
  it.each([
    [{}, 400, 'The resource_class field is mandatory when not backfilling'],
    [
      { resource_class: 'x', foo: 1 },
      400,
      "Schema error for allocation: Additional properties are not allowed ('foo' was unexpected)",
    ],
    [
      { resource_class: 'x', traits: ['lower'] },
      400,
      "Schema error for allocation: 'lower' is not valid under any of the given schemas",
    ],
    [{ resource_class: 'x', name: 'bad name' }, 400, "Cannot create allocation with invalid name 'bad name'"],
    [{ resource_class: 'x', uuid: 'nope' }, 400, 'Expected UUID for uuid: nope'],
    [{ resource_class: 'x'.repeat(81) }, 400, `Schema error for allocation: '${'x'.repeat(81)}' is too long`],
    [{ resource_class: 'x', candidate_nodes: ['ghost'] }, 400, 'Nodes cannot be found: ghost'],
    [{ resource_class: 'x', node: 'ghost' }, 400, 'Node ghost could not be found.'],
  ])('body #%# is refused', async (body, status, message) => {
    const before = await count();
    const refused = await api.call('POST', '/v1/allocations', { body });
    expect(refused.status).toBe(status);
    expect(refused.fault?.faultstring).toBe(message);
    expect(await count()).toBe(before);
  });

  it('owner needs 1.60; below it is hidden', async () => {
    const old = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'x', owner: 'p1' },
      version: '1.59',
    });
    expect(old.status).toBe(406);
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.owned', owner: 'p1' },
    });
    expect(created.body.owner).toBe('p1');
    const shown = await api.call('GET', `/v1/allocations/${created.body.uuid}`, { version: '1.59' });
    expect(shown.body).not.toHaveProperty('owner');
    expect((await api.call('GET', '/v1/allocations?owner=p1', { version: '1.59' })).status).toBe(406);
    const mine = await api.call('GET', '/v1/allocations?owner=p1');
    expect(mine.body.allocations.map((a: { uuid: string }) => a.uuid)).toStrictEqual([created.body.uuid]);
  });

  it('allocations do not exist below 1.52: GET 404, POST 405', async () => {
    expect((await api.call('GET', '/v1/allocations', { version: '1.51' })).status).toBe(404);
    const post = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'x' },
      version: '1.51',
    });
    expect(post.status).toBe(405);
    expect((await api.call('GET', '/v1/allocations', { version: '1.52' })).status).toBe(200);
  });

  it('readers cannot create; project members see only their own', async () => {
    const refused = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'x' },
      role: 'reader',
    });
    expect(refused.status).toBe(403);
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.p2', owner: 'p2' },
    });
    const seen = await api.call('GET', '/v1/allocations', { role: 'member', project: 'p2' });
    expect(seen.body.allocations.map((a: { uuid: string }) => a.uuid)).toStrictEqual([created.body.uuid]);
    const foreign = await api.call('GET', '/v1/allocations/alloc-0', { role: 'member', project: 'p2' });
    expect(foreign.status).toBe(404);
  });
});

describe('list filters and paging', () => {
  it('filters by state, resource_class and node; pages with next', async () => {
    const errors = await api.call('GET', '/v1/allocations?state=error');
    expect(errors.body.allocations.length).toBeGreaterThan(0);
    expect(errors.body.allocations.every((a: { state: string }) => a.state === 'error')).toBe(true);
    const small = await api.call('GET', '/v1/allocations?resource_class=baremetal.small');
    expect(small.body.allocations.map((a: { name: string }) => a.name)).toContain('alloc-0');
    const holder = small.body.allocations.find((a: { name: string }) => a.name === 'alloc-0');
    const byNode = await api.call('GET', `/v1/allocations?node=${holder.node_uuid}`);
    expect(byNode.body.allocations.map((a: { uuid: string }) => a.uuid)).toStrictEqual([holder.uuid]);
    expect((await api.call('GET', '/v1/allocations?node=ghost')).status).toBe(400);
    const all = (await api.call('GET', '/v1/allocations')).body.allocations.map(
      (a: { uuid: string }) => a.uuid,
    );
    const seen: string[] = [];
    let path: string | undefined = '/v1/allocations?limit=3';
    for (let pages = 0; path && pages < 50; pages++) {
      const page = await api.call('GET', path);
      seen.push(...page.body.allocations.map((a: { uuid: string }) => a.uuid));
      path = page.body.next ? (page.body.next as string).replace(api.url, '') : undefined;
    }
    expect(seen).toStrictEqual(all);
    expect((await api.call('GET', '/v1/allocations?detail=True')).status).toBe(400);
    expect((await api.call('GET', '/v1/allocations?sort_key=traits')).status).toBe(400);
  });
});

describe('allocation patch and delete', () => {
  it('patches name and extra (1.57+); refuses other fields, bad and taken names', async () => {
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.patch', name: 'p-1' },
    });
    const path = `/v1/allocations/${created.body.uuid}`;
    const patched = await api.call('PATCH', path, {
      body: [
        { op: 'replace', path: '/name', value: 'p-2' },
        { op: 'add', path: '/extra/k', value: 'v' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'p-2', extra: { k: 'v' } });
    expect((await api.call('GET', '/v1/allocations/p-2')).body.uuid).toBe(created.body.uuid);
    expect((await api.call('GET', '/v1/allocations/p-1')).status).toBe(404);
    const version = async () => (await api.deps.store.get('allocation', created.body.uuid))?.version;
    const before = await version();
    const cases: Array<[unknown, number, string]> = [
      [
        [{ op: 'replace', path: '/resource_class', value: 'y' }],
        400,
        'Cannot patch /resource_class. Only the following can be updated: name, extra',
      ],
      [
        [{ op: 'replace', path: '/name', value: 'bad name' }],
        400,
        "Cannot update allocation with invalid name 'bad name'",
      ],
      [
        [{ op: 'replace', path: '/name', value: 'alloc-0' }],
        409,
        'An allocation with name alloc-0 already exists.',
      ],
    ];
    for (const [body, status, message] of cases) {
      const refused = await api.call('PATCH', path, { body });
      expect(refused.status).toBe(status);
      expect(refused.fault?.faultstring).toBe(message);
    }
    expect(await version()).toBe(before);
    const old = await api.call('PATCH', path, {
      body: [{ op: 'add', path: '/extra/x', value: 1 }],
      version: '1.56',
    });
    expect(old.status).toBe(405);
  });

  it('deletes: the node is released and the name is free again', async () => {
    const free = await node('rc.delete');
    const created = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.delete', name: 'd-1' },
    });
    expect(created.body.node_uuid).toBe(free.uuid);
    expect((await api.call('DELETE', '/v1/allocations/d-1')).status).toBe(204);
    expect((await api.call('GET', '/v1/allocations/d-1')).status).toBe(404);
    const released = await storedNode(free.uuid);
    expect(released).toMatchObject({ allocation_uuid: null, instance_uuid: null });
    const again = await api.call('POST', '/v1/allocations', {
      body: { resource_class: 'rc.delete', name: 'd-1' },
    });
    expect(again.body).toMatchObject({ state: 'active', node_uuid: free.uuid });
    expect((await api.call('DELETE', `/v1/nodes/${free.uuid}/allocation`)).status).toBe(204);
    expect((await storedNode(free.uuid)).allocation_uuid).toBeNull();
  });

  it('refuses to remove the allocation of an active node unless in maintenance', async () => {
    const target = await node('rc.active');
    const created = await api.call('POST', '/v1/allocations', { body: { resource_class: 'rc.active' } });
    const stored = await api.deps.nodes.get(target.uuid);
    await api.deps.nodes.update(
      stored!.node,
      { ...stored!.node, provision_state: 'active' },
      stored!.version,
    );
    const refused = await api.call('DELETE', `/v1/allocations/${created.body.uuid}`);
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toBe(
      `Cannot remove allocation ${created.body.uuid} for node ${target.uuid}, because the node is active (and maintenance mode is off)`,
    );
    expect((await storedNode(target.uuid)).allocation_uuid).toBe(created.body.uuid);
    await api.call('PUT', `/v1/nodes/${target.uuid}/maintenance`, { body: { reason: 'x' } });
    expect((await api.call('DELETE', `/v1/allocations/${created.body.uuid}`)).status).toBe(204);
    expect((await storedNode(target.uuid)).instance_uuid).toBeNull();
  });

  it('deletes an allocation in error (no node)', async () => {
    const failed = await api.call('POST', '/v1/allocations', { body: { resource_class: 'rc.nothing' } });
    expect(failed.body.state).toBe('error');
    expect((await api.call('DELETE', `/v1/allocations/${failed.body.uuid}`)).status).toBe(204);
    expect((await api.call('DELETE', `/v1/allocations/${failed.body.uuid}`)).status).toBe(404);
  });
});

describe('no 500 from client input', () => {
  it('numbers the table cannot hold, long names and odd identifiers are 400', async () => {
    const before = await count();
    const cases: unknown[] = [
      { resource_class: 'x', extra: { n: 2 ** 60 } },
      { resource_class: 'x', name: 'n'.repeat(256) },
      { resource_class: 'x', candidate_nodes: ['x'.repeat(3000)] },
      { resource_class: 'x', traits: [`CUSTOM_${'A'.repeat(300)}`] },
    ];
    for (const body of cases) expect((await api.call('POST', '/v1/allocations', { body })).status).toBe(400);
    expect(await count()).toBe(before);
    expect((await api.call('GET', `/v1/allocations/${'a'.repeat(300)}`)).status).toBe(400);
    expect((await api.call('GET', `/v1/allocations?node=${'a'.repeat(300)}`)).status).toBe(400);
    expect((await api.call('GET', '/v1/allocations?limit=abc')).status).toBe(400);
  });
});
