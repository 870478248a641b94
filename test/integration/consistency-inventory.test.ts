/**
 * Node and site deletion against concurrent children, on moto through the real api
 * handler. moto's indexes are never behind, so where DynamoDB's eventually consistent
 * byParent / bySite indexes could be, the test makes them so: a spy on the store's index
 * read hides a fresh item, or runs the competing write at that exact point.
 */
import { DeleteCommand, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { inventoryTable } from '../../infra/resources.ts';
import { documentClient, tableFromEnv } from '../../lambda/adapters/dynamo/client.ts';
import type { ChildRef } from '../../lambda/adapters/dynamo/inventory-store.ts';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
let macs = 0;

beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api?.close());
afterEach(() => vi.restoreAllMocks());

/** A MAC address not used before in this file. */
const nextMac = () => {
  macs++;
  return `52:54:00:00:${((macs >> 8) & 0xff).toString(16).padStart(2, '0')}:${(macs & 0xff).toString(16).padStart(2, '0')}`;
};

async function createNode(extra: Record<string, unknown> = {}): Promise<string> {
  const created = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', ...extra } });
  expect(created.status).toBe(201);
  return created.body.uuid as string;
}

const createPort = (node: string, address = nextMac()) =>
  api.call('POST', '/v1/ports', { body: { node_uuid: node, address } });

async function raw(pk: string, sk: string) {
  const { Item } = await documentClient().send(
    new GetCommand({ TableName: tableFromEnv(inventoryTable.envVar), Key: { pk, sk }, ConsistentRead: true }),
  );
  return Item;
}

/** Nothing of the node is left: no node, no ledger, none of the given children. */
async function expectGone(node: string, ports: readonly string[]) {
  expect((await api.call('GET', `/v1/nodes/${node}`)).status).toBe(404);
  expect(await raw(`node#${node}`, 'children')).toBeUndefined();
  for (const port of ports) expect(await raw(`port#${port}`, 'item')).toBeUndefined();
}

describe('deleting a node with many children', () => {
  it('deletes 120 ports, 3 portgroups and volume records, and releases every MAC', async () => {
    const node = await createNode();
    const ports: string[] = [];
    const addresses: string[] = [];
    for (let batch = 0; batch < 12; batch++) {
      const created = await Promise.all(Array.from({ length: 10 }, () => createPort(node)));
      for (const port of created) {
        expect(port.status).toBe(201);
        ports.push(port.body.uuid);
        addresses.push(port.body.address);
      }
    }
    for (let i = 0; i < 3; i++) {
      const group = await api.call('POST', '/v1/portgroups', {
        body: { node_uuid: node, name: `cons-many-pg-${i}`, address: nextMac() },
      });
      expect(group.status).toBe(201);
    }
    const connector = await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: node, type: 'iqn', connector_id: 'iqn.2026-01.org.example:cons-many' },
    });
    expect(connector.status).toBe(201);
    const target = await api.call('POST', '/v1/volume/targets', {
      body: { node_uuid: node, volume_type: 'iscsi', boot_index: 0, volume_id: 'cons-many-volume' },
    });
    expect(target.status).toBe(201);

    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    await expectGone(node, ports);
    expect((await api.call('GET', '/v1/portgroups/cons-many-pg-0')).status).toBe(404);
    expect((await api.call('GET', `/v1/volume/connectors/${connector.body.uuid}`)).status).toBe(404);
    // Every unique value went with its record: the MACs and names can be used again.
    const other = await createNode();
    expect((await createPort(other, addresses[0])).status).toBe(201);
    expect((await createPort(other, addresses[119])).status).toBe(201);
    const group = await api.call('POST', '/v1/portgroups', {
      body: { node_uuid: other, name: 'cons-many-pg-2' },
    });
    expect(group.status).toBe(201);
  });

  it('interrupted half way, refuses new children, and a retried DELETE finishes the job', async () => {
    const node = await createNode();
    const ports: string[] = [];
    for (let i = 0; i < 60; i++) {
      const port = await createPort(node);
      expect(port.status).toBe(201);
      ports.push(port.body.uuid);
    }
    const store = api.deps.store;
    const original = store.childPage.bind(store);
    let pages = 0;
    const spy = vi.spyOn(store, 'childPage').mockImplementation(async (parentPk, startKey) => {
      // The Lambda dies after deleting the first page of ports.
      if (parentPk.startsWith('port@') && ++pages === 2) throw new Error('injected: the Lambda stopped here');
      return original(parentPk, startKey);
    });
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(500);
    spy.mockRestore();
    const left = (await api.call('GET', `/v1/nodes/${node}/ports?limit=100`)).body.ports as unknown[];
    expect(left.length).toBeGreaterThan(0);
    expect(left.length).toBeLessThan(60);
    // Still there, but closed: nothing can join it any more.
    const refused = await createPort(node);
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toContain('is being deleted');

    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    await expectGone(node, ports);
  });
});

describe('a child created while its node is being deleted', () => {
  it('created between the index read and the deletion: refused (409), nothing orphaned', async () => {
    const node = await createNode();
    const first = await createPort(node);
    expect(first.status).toBe(201);
    const store = api.deps.store;
    const original = store.childPage.bind(store);
    let competing: Awaited<ReturnType<typeof createPort>> | undefined;
    const address = nextMac();
    vi.spyOn(store, 'childPage').mockImplementation(async (parentPk, startKey) => {
      const page = await original(parentPk, startKey);
      // Right after the index was read, another request adds a port to the node.
      if (parentPk.startsWith('port@') && !competing) competing = await createPort(node, address);
      return page;
    });
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    expect(competing?.status).toBe(409);
    await expectGone(node, [first.body.uuid]);
    // The refused port claimed nothing: its MAC is free.
    expect(await api.deps.store.lookupUnique('port-address', address)).toBeUndefined();
  });

  it('committed just before the deletion but not yet in the index: deleted with the node', async () => {
    const node = await createNode();
    const visible = await createPort(node);
    const lagging = await createPort(node);
    const group = await api.call('POST', '/v1/portgroups', { body: { node_uuid: node, address: nextMac() } });
    expect([visible.status, lagging.status, group.status]).toStrictEqual([201, 201, 201]);
    const hidden = new Set([lagging.body.uuid as string, group.body.uuid as string]);
    const store = api.deps.store;
    const original = store.childPage.bind(store);
    // The index has not caught up with the last port and the group (DynamoDB's GSI lag).
    vi.spyOn(store, 'childPage').mockImplementation(async (parentPk, startKey) => {
      const page = await original(parentPk, startKey);
      return { ...page, children: page.children.filter((child: ChildRef) => !hidden.has(child.id)) };
    });
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    await expectGone(node, [visible.body.uuid, lagging.body.uuid]);
    expect(await raw(`portgroup#${group.body.uuid}`, 'item')).toBeUndefined();
    expect(await api.deps.store.lookupUnique('port-address', lagging.body.address)).toBeUndefined();
  });

  it('a port moved onto a node being deleted is refused too', async () => {
    const node = await createNode();
    const elsewhere = await createNode();
    const port = await createPort(elsewhere);
    expect(port.status).toBe(201);
    const store = api.deps.store;
    const original = store.childPage.bind(store);
    let moved: Awaited<ReturnType<typeof createPort>> | undefined;
    vi.spyOn(store, 'childPage').mockImplementation(async (parentPk, startKey) => {
      if (!moved) {
        moved = await api.call('PATCH', `/v1/ports/${port.body.uuid}`, {
          body: [{ op: 'replace', path: '/node_uuid', value: node }],
        });
      }
      return original(parentPk, startKey);
    });
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    expect(moved?.status).toBe(409);
    expect((await api.call('GET', `/v1/ports/${port.body.uuid}`)).body.node_uuid).toBe(elsewhere);
  });

  it('children written before node ledgers existed are still deleted with their node', async () => {
    const node = await createNode();
    const port = await createPort(node);
    expect(port.status).toBe(201);
    // As an item written by the previous version: no ledger beside the node.
    await documentClient().send(
      new DeleteCommand({
        TableName: tableFromEnv(inventoryTable.envVar),
        Key: { pk: `node#${node}`, sk: 'children' },
      }),
    );
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    await expectGone(node, [port.body.uuid]);
  });
});

describe('deleting a site while a node is created in it', () => {
  async function createSite(name: string) {
    const created = await api.call('POST', '/v1/sites', { body: { name } });
    expect(created.status).toBe(201);
  }

  it('a node committed after the index read (not yet indexed) blocks the deletion: 409', async () => {
    await createSite('cons-site-a');
    const store = api.deps.store;
    const original = store.query.bind(store);
    let node: string | undefined;
    vi.spyOn(store, 'query').mockImplementation(async (query) => {
      const page = await original(query);
      if (query.index === 'bySite' && !node) {
        // Right after the index read another request creates a node in the site; the
        // index answer stays the one read before it.
        node = await createNode({ conductor_group: 'cons-site-a' });
      }
      return page;
    });
    const refused = await api.call('DELETE', '/v1/sites/cons-site-a');
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toContain('still has nodes');
    vi.restoreAllMocks();
    expect((await api.call('GET', '/v1/sites/cons-site-a')).status).toBe(200);
    expect((await api.call('GET', `/v1/nodes/${node}`)).body.conductor_group).toBe('cons-site-a');
    // Once the node is gone, the site goes.
    expect((await api.call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    expect((await api.call('DELETE', '/v1/sites/cons-site-a')).status).toBe(204);
  });

  it('a node created after the deletion committed fails itself: no node in a deleted site', async () => {
    await createSite('cons-site-b');
    expect((await api.call('DELETE', '/v1/sites/cons-site-b')).status).toBe(204);
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', conductor_group: 'cons-site-b' },
    });
    expect(created.status).toBe(400);
    expect(created.fault?.faultstring).toContain('does not exist');
  });

  it('moving a node into the site counts too; moving it out again frees the site', async () => {
    await createSite('cons-site-c');
    const node = await createNode();
    const store = api.deps.store;
    const original = store.query.bind(store);
    let moved = false;
    vi.spyOn(store, 'query').mockImplementation(async (query) => {
      const page = await original(query);
      if (query.index === 'bySite' && !moved) {
        moved = true;
        const patched = await api.call('PATCH', `/v1/nodes/${node}`, {
          body: [{ op: 'replace', path: '/conductor_group', value: 'cons-site-c' }],
        });
        expect(patched.status).toBe(200);
      }
      return page;
    });
    expect((await api.call('DELETE', '/v1/sites/cons-site-c')).status).toBe(409);
    vi.restoreAllMocks();
    const back = await api.call('PATCH', `/v1/nodes/${node}`, {
      body: [{ op: 'replace', path: '/conductor_group', value: api.site }],
    });
    expect(back.status).toBe(200);
    expect((await api.call('DELETE', '/v1/sites/cons-site-c')).status).toBe(204);
  });
});
