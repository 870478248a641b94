/**
 * Node VIFs with the `noop` network interface, as Ironic 21.4 answers them: list
 * (exchange 107), attach and detach (1.28+). Ironic's NoopNetwork (drivers/modules/network/
 * noop.py) stores nothing: attach and detach answer 204 and the list stays empty; only the
 * API's and the conductor's checks refuse (body, VIF id, node, policy, the node's lock).
 * Every answer, refusal or not, leaves the node and its ports as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange } from '../support/reference.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

let macs = 0;
async function newNode(body: Record<string, unknown> = {}): Promise<string> {
  const created = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', ...body } });
  expect(created.status).toBe(201);
  return created.body.uuid;
}

async function newPort(node: string): Promise<string> {
  macs++;
  const address = `52:54:00:7f:00:${macs.toString(16).padStart(2, '0')}`;
  const created = await api.call('POST', '/v1/ports', {
    body: { node_uuid: node, address, extra: { keep: true } },
  });
  expect(created.status).toBe(201);
  return created.body.uuid;
}

async function setNode(uuid: string, changes: Partial<Node>): Promise<void> {
  const stored = await api.deps.nodes.get(uuid);
  await api.deps.nodes.update(stored!.node, { ...stored!.node, ...changes }, stored!.version);
}

/** What a VIF request could have changed: the stored node and its ports, in full. */
async function state(node: string): Promise<string> {
  const stored = await api.deps.nodes.get(node);
  const ports = await api.call('GET', `/v1/nodes/${node}/ports/detail`);
  const vifs = await api.call('GET', `/v1/nodes/${node}/vifs`);
  return JSON.stringify({ stored, ports: ports.body, vifs: vifs.body });
}

describe('VIF attach and detach with the noop network interface', () => {
  it('attach answers 204 with no body; nothing is kept (the list stays as exchange 107)', async () => {
    const node = await newNode({ name: 'vif-attach' });
    await newPort(node);
    const before = await state(node);
    const attached = await api.call('POST', `/v1/nodes/${node}/vifs`, {
      body: { id: '1974dcfa-836f-41b2-b541-686c100900e5' },
    });
    expect(attached.status).toBe(204);
    expect(attached.body).toBeUndefined();
    expect(attached.headers.get('location')).toBeNull();
    // By name too, with a logical name as the VIF id and extra members (allowed by the schema).
    const byName = await api.call('POST', '/v1/nodes/vif-attach/vifs', {
      body: { id: 'tenant-vif.1', port_uuid: '00000000-0000-0000-0000-000000000000' },
    });
    expect(byName.status).toBe(204);
    const list = await api.call('GET', `/v1/nodes/${node}/vifs`);
    expect(list.status).toBe(exchange(107).response.status);
    expect(list.body).toStrictEqual(exchange(107).response.body);
    expect(await state(node)).toBe(before);
  });

  it('attach needs no free port (NoopNetwork does not take VIFPortIDMixin)', async () => {
    const node = await newNode();
    const before = await state(node);
    const attached = await api.call('POST', `/v1/nodes/${node}/vifs`, { body: { id: 'no-port-vif' } });
    expect(attached.status).toBe(204);
    expect(await state(node)).toBe(before);
  });

  it('detach answers 204, for a VIF never attached too (no VifNotAttached with noop)', async () => {
    const node = await newNode({ name: 'vif-detach' });
    await newPort(node);
    const before = await state(node);
    expect((await api.call('POST', `/v1/nodes/${node}/vifs`, { body: { id: 'vif-d' } })).status).toBe(204);
    const detached = await api.call('DELETE', `/v1/nodes/${node}/vifs/vif-d`);
    expect(detached.status).toBe(204);
    expect(detached.body).toBeUndefined();
    const unknown = await api.call(
      'DELETE',
      '/v1/nodes/vif-detach/vifs/7a5e3a4c-0000-4000-8000-00000000d00d',
    );
    expect(unknown.status).toBe(204);
    expect(await state(node)).toBe(before);
  });

  it('1.67+: port_uuid with portgroup_uuid is 400; before 1.67 they are ignored', async () => {
    const node = await newNode();
    const before = await state(node);
    const both = { id: 'vif-both', port_uuid: 'a', portgroup_uuid: 'b' };
    const refused = await api.call('POST', `/v1/nodes/${node}/vifs`, { body: both, version: '1.67' });
    expect(refused.status).toBe(400);
    expect(refused.fault).toStrictEqual({
      faultcode: 'Client',
      faultstring: 'Cannot specify both port_uuid and portgroup_uuid',
      debuginfo: null,
    });
    const older = await api.call('POST', `/v1/nodes/${node}/vifs`, { body: both, version: '1.66' });
    expect(older.status).toBe(204);
    expect(await state(node)).toBe(before);
  });
});

describe('VIF refusals, with Ironic messages, writing nothing', () => {
  it.each([
    ['no id', { port_uuid: 'x' }, "Schema error for vif: 'id' is a required property"],
    ['an empty object', {}, "Schema error for vif: 'id' is a required property"],
    ['a number id', { id: 5 }, "Schema error for vif: 5 is not of type 'string'"],
    ['a list body', ['vif'], "Schema error for vif: ['vif'] is not of type 'object'"],
    ['an id with a space', { id: 'bad id' }, 'Expected UUID or name for id: bad id'],
    ['an empty id', { id: '' }, 'Expected UUID or name for id: '],
  ])('attach with %s is 400', async (_label, body, message) => {
    const node = await newNode();
    const before = await state(node);
    const refused = await api.call('POST', `/v1/nodes/${node}/vifs`, { body });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect(await state(node)).toBe(before);
  });

  it('attach with no body is the empty object: 400, id required (Ironic method.body)', async () => {
    const node = await newNode();
    const before = await state(node);
    const refused = await api.call('POST', `/v1/nodes/${node}/vifs`);
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe("Schema error for vif: 'id' is a required property");
    expect(await state(node)).toBe(before);
  });

  it('detach of a malformed VIF id is 400 (args.uuid_or_name)', async () => {
    const node = await newNode();
    const before = await state(node);
    const refused = await api.call('DELETE', `/v1/nodes/${node}/vifs/bad%20id`);
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe('Expected UUID or name for vif_id: bad id');
    expect(await state(node)).toBe(before);
  });

  it('an unknown node is 404; below 1.28 the routes do not exist (404)', async () => {
    const missing = await api.call('POST', '/v1/nodes/no-such-vif-node/vifs', { body: { id: 'v' } });
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Node no-such-vif-node could not be found.');
    const missingDetach = await api.call('DELETE', '/v1/nodes/no-such-vif-node/vifs/v');
    expect(missingDetach.status).toBe(404);
    expect(missingDetach.fault?.faultstring).toBe('Node no-such-vif-node could not be found.');
    const node = await newNode();
    const before = await state(node);
    for (const [method, path, body] of [
      ['GET', `/v1/nodes/${node}/vifs`, undefined],
      ['POST', `/v1/nodes/${node}/vifs`, { id: 'v' }],
      ['DELETE', `/v1/nodes/${node}/vifs/v`, undefined],
    ] as const) {
      const old = await api.call(method, path, { version: '1.27', ...(body ? { body } : {}) });
      expect(old.status, `${method} ${path}`).toBe(404);
    }
    expect(await state(node)).toBe(before);
  });

  it('a locked node: attach and detach are 409 NodeLocked, the list still answers', async () => {
    const node = await newNode();
    await setNode(node, { reservation: 'agent-7' });
    const before = await state(node);
    const message = `Node ${node} is locked by host agent-7, please retry after the current operation is completed.`;
    const attach = await api.call('POST', `/v1/nodes/${node}/vifs`, { body: { id: 'vif-l' } });
    expect(attach.status).toBe(409);
    expect(attach.fault?.faultstring).toBe(message);
    const detach = await api.call('DELETE', `/v1/nodes/${node}/vifs/vif-l`);
    expect(detach.status).toBe(409);
    expect(detach.fault?.faultstring).toBe(message);
    expect((await api.call('GET', `/v1/nodes/${node}/vifs`)).body).toStrictEqual({ vifs: [] });
    expect(await state(node)).toBe(before);
  });

  it('a network interface that is not enabled is 400, as Ironic cannot load it', async () => {
    const node = await newNode();
    await setNode(node, { network_interface: 'flat' });
    const before = await state(node);
    const message =
      "Could not find the following interface in the 'ironic.hardware.interfaces.network' entrypoint: flat. Valid interfaces are ['noop'].";
    const attach = await api.call('POST', `/v1/nodes/${node}/vifs`, { body: { id: 'vif-f' } });
    expect(attach.status).toBe(400);
    expect(attach.fault?.faultstring).toBe(message);
    const detach = await api.call('DELETE', `/v1/nodes/${node}/vifs/vif-f`);
    expect(detach.status).toBe(400);
    expect(detach.fault?.faultstring).toBe(message);
    expect(await state(node)).toBe(before);
  });
});

describe('VIF authorization (baremetal:node:vif:attach / detach / list)', () => {
  it('the owner and the lessee attach and detach; a reader is 403; another project sees no node', async () => {
    const node = await newNode({ owner: 'p1', lessee: 'p2' });
    const stranger = await newNode({ owner: 'p3' });
    const before = await state(node);
    for (const project of ['p1', 'p2']) {
      const as = { role: 'member' as const, project };
      expect(
        (await api.call('POST', `/v1/nodes/${node}/vifs`, { ...as, body: { id: 'vif-m' } })).status,
      ).toBe(204);
      expect((await api.call('DELETE', `/v1/nodes/${node}/vifs/vif-m`, as)).status).toBe(204);
      expect((await api.call('GET', `/v1/nodes/${node}/vifs`, as)).body).toStrictEqual({ vifs: [] });
    }
    const reader = await api.call('POST', `/v1/nodes/${node}/vifs`, {
      role: 'reader',
      body: { id: 'vif-r' },
    });
    expect(reader.status).toBe(403);
    expect((await api.call('DELETE', `/v1/nodes/${node}/vifs/vif-r`, { role: 'reader' })).status).toBe(403);
    expect((await api.call('GET', `/v1/nodes/${node}/vifs`, { role: 'reader' })).status).toBe(200);
    const other = { role: 'member' as const, project: 'p1' };
    const hidden = await api.call('POST', `/v1/nodes/${stranger}/vifs`, { ...other, body: { id: 'vif-o' } });
    expect(hidden.status).toBe(404);
    expect((await api.call('DELETE', `/v1/nodes/${stranger}/vifs/vif-o`, other)).status).toBe(404);
    expect((await api.call('GET', `/v1/nodes/${stranger}/vifs`, other)).status).toBe(404);
    expect(await state(node)).toBe(before);
  });
});

describe('VIF routes in the OpenAPI document', () => {
  it('describes list, attach (with its request schema) and detach', async () => {
    const doc = (await api.call('GET', '/v1/openapi.json')).body;
    expect(doc.paths['/v1/nodes/{node}/vifs'].get).toBeDefined();
    expect(
      doc.paths['/v1/nodes/{node}/vifs'].post.requestBody.content['application/json'].schema,
    ).toStrictEqual({
      type: 'object',
      properties: { id: { type: 'string' } },
      required: ['id'],
      additionalProperties: true,
    });
    expect(Object.keys(doc.paths['/v1/nodes/{node}/vifs'].post.responses)).toContain('204');
    expect(Object.keys(doc.paths['/v1/nodes/{node}/vifs/{vif_id}'].delete.responses)).toContain('204');
  });
});
