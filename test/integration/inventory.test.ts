/** Node inventories (inspection data): the repository on moto, and GET /v1/nodes/{node}/inventory (1.81). */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_COMPRESSED_INVENTORY_BYTES,
  NODE_INVENTORY_KIND,
  NodeInventoryRepository,
} from '../../lambda/adapters/dynamo/node-inventory-repository.ts';
import { DomainError } from '../../lambda/domain/errors.ts';
import { applyInspection } from '../../lambda/domain/inspection/apply.ts';
import { checkInventory } from '../../lambda/domain/inspection/inventory.ts';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
let repo: NodeInventoryRepository;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  repo = new NodeInventoryRepository(api.deps.store);
}, 60_000);
afterAll(() => api?.close());

const GiB = 1024 ** 3;
const INVENTORY = {
  cpu: {
    model_name: 'Xeon',
    frequency: '2400',
    count: 8,
    architecture: 'x86_64',
    flags: [],
    socket_count: 1,
  },
  memory: { total: 34_359_738_368, physical_mb: 32_768 },
  disks: [
    {
      name: '/dev/sda',
      model: 'm',
      size: 480 * GiB,
      rotational: false,
      wwn: null,
      serial: 's',
      vendor: 'v',
      by_path: null,
    },
  ],
  interfaces: [
    {
      name: 'eno1',
      mac_address: '52:54:00:CC:00:01',
      ipv4_address: '10.0.0.9',
      has_carrier: true,
      driver: 'e1000',
      speed_mbps: 1000,
    },
  ],
  system_vendor: { product_name: 'VM', serial_number: null, manufacturer: 'QEMU' },
  boot: { current_boot_mode: 'uefi', pxe_interface: '52:54:00:cc:00:01' },
  hostname: 'inspected',
};

async function createNode(name: string, owner = 'p1', lessee: string | null = null): Promise<string> {
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', name, owner, ...(lessee ? { lessee } : {}) },
  });
  expect(created.status).toBe(201);
  return created.body.uuid as string;
}

/** What the inspect flow will do: check the inventory, apply it, store it with its plugin data. */
async function inspect(uuid: string): Promise<{ inventory: unknown; plugin_data: unknown }> {
  const inventory = checkInventory(INVENTORY);
  const outcome = applyInspection({ uuid, properties: {} }, inventory);
  const data = {
    inventory: inventory as unknown as Record<string, unknown>,
    plugin_data: outcome.pluginData as unknown as Record<string, unknown>,
  };
  await repo.put(uuid, data, new Date().toISOString());
  return JSON.parse(JSON.stringify(data));
}

describe('NodeInventoryRepository', () => {
  it('stores, reads back, replaces; compressed in a binary attribute', async () => {
    const uuid = await createNode('inv-repo');
    expect(await repo.get(uuid)).toBeUndefined();
    const stored = await inspect(uuid);
    const first = await repo.get(uuid);
    expect({ inventory: first?.inventory, plugin_data: first?.plugin_data }).toStrictEqual(stored);
    expect(first?.updated_at).toBeNull();
    const raw = await api.deps.store.get<{ data: Uint8Array; encoding: string }>(NODE_INVENTORY_KIND, uuid);
    expect(raw?.doc.encoding).toBe('json+gzip');
    expect(raw?.doc.data).toBeInstanceOf(Uint8Array);
    expect(raw?.version).toBe(1);

    await repo.put(uuid, { inventory: { replaced: true }, plugin_data: {} }, new Date().toISOString());
    const second = await repo.get(uuid);
    expect(second?.inventory).toStrictEqual({ replaced: true });
    expect(second?.created_at).toBe(first?.created_at);
    expect(second?.updated_at).not.toBeNull();

    await repo.delete(uuid);
    expect(await repo.get(uuid)).toBeUndefined();
  });

  it('is deleted with its node', async () => {
    const uuid = await createNode('inv-cascade');
    await inspect(uuid);
    const deleted = await api.call('DELETE', `/v1/nodes/${uuid}`);
    expect(deleted.status).toBe(204);
    expect(await repo.get(uuid)).toBeUndefined();
    expect(await api.deps.store.get(NODE_INVENTORY_KIND, uuid)).toBeUndefined();
  });

  it('refuses a node that does not exist', async () => {
    const missing = '0d2d3f5e-8b3a-4c7a-9c2e-4a5b6c7d8e9f';
    await expect(
      repo.put(missing, { inventory: {}, plugin_data: {} }, new Date().toISOString()),
    ).rejects.toThrow(`Node ${missing} could not be found.`);
  });

  it('refuses what is too large compressed, clearly, and stores nothing', async () => {
    const uuid = await createNode('inv-too-large');
    // Random bytes do not compress: past what one record holds, even gzipped.
    const noise = randomBytes(MAX_COMPRESSED_INVENTORY_BYTES).toString('base64');
    const error = await repo
      .put(uuid, { inventory: { ...INVENTORY }, plugin_data: { noise } }, new Date().toISOString())
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).kind).toBe('too-large');
    expect((error as DomainError).message).toMatch(
      new RegExp(
        `^The inspection data of node ${uuid} is \\d+ bytes compressed \\(\\d+ as JSON\\); at most ${MAX_COMPRESSED_INVENTORY_BYTES} can be stored\\.$`,
      ),
    );
    expect(await repo.get(uuid)).toBeUndefined();
  });
});

describe('GET /v1/nodes/{node}/inventory', () => {
  let uuid: string;
  let stored: { inventory: unknown; plugin_data: unknown };
  beforeAll(async () => {
    uuid = await createNode('inv-api', 'p1', 'p3');
    stored = await inspect(uuid);
  });

  it('answers the inventory and plugin data at 1.81, by UUID or name', async () => {
    const shown = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { version: '1.81' });
    expect(shown.status).toBe(200);
    expect(shown.body).toStrictEqual(stored);
    const byName = await api.call('GET', '/v1/nodes/inv-api/inventory');
    expect(byName.body).toStrictEqual(stored);
    expect((shown.body.inventory.interfaces[0] as { mac_address: string }).mac_address).toBe(
      '52:54:00:cc:00:01',
    );
  });

  it('is an unknown path below 1.81', async () => {
    const old = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { version: '1.80' });
    expect(old.status).toBe(404);
    expect(old.fault?.faultstring).toBe('The resource could not be found.');
    const none = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { version: null });
    expect(none.status).toBe(404);
  });

  it("404s with Ironic's message for a node never inspected, and for an unknown node", async () => {
    const fresh = await createNode('inv-none');
    const missing = await api.call('GET', `/v1/nodes/${fresh}/inventory`);
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(`Node inventory record for node ${fresh} could not be found.`);
    const unknown = await api.call('GET', '/v1/nodes/no-such-node/inventory');
    expect(unknown.status).toBe(404);
    expect(unknown.fault?.faultstring).toBe('Node no-such-node could not be found.');
  });

  it('lets system readers and the owner project read it, not another project', async () => {
    expect((await api.call('GET', `/v1/nodes/${uuid}/inventory`, { role: 'reader' })).status).toBe(200);
    const owner = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { role: 'member', project: 'p1' });
    expect(owner.status).toBe(200);
    expect(owner.body).toStrictEqual(stored);
    const other = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { role: 'member', project: 'p2' });
    expect(other.status).toBe(404);
    expect(JSON.stringify(other.body)).not.toContain('x86_64');
    const anonymous = await api.call('GET', `/v1/nodes/${uuid}/inventory`, { as: null });
    expect(anonymous.status).toBe(401);
  });
});
