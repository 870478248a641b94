/** Volume connectors and targets, and node VIFs, through the api handler on moto (exchanges 106-107). */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portParent } from '../../lambda/adapters/dynamo/port-repository.ts';
import { conflict } from '../../lambda/domain/errors.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange } from '../support/reference.ts';

// The real router (buildRouter) with real HTTP Basic users: admin, reader, and members of
// projects p1 and p2 (`role`/`project` in a call pick the user).
let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

async function newNode(name?: string): Promise<string> {
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', ...(name ? { name } : {}) },
  });
  expect(created.status).toBe(201);
  return created.body.uuid;
}

async function setNode(uuid: string, changes: Partial<Node>): Promise<void> {
  const stored = await api.deps.nodes.get(uuid);
  await api.deps.nodes.update(stored!.node, { ...stored!.node, ...changes }, stored!.version);
}

async function count(kind: 'connectors' | 'targets'): Promise<number> {
  return (await api.call('GET', `/v1/volume/${kind}`)).body[kind].length;
}

describe('volume root and empty collections (exchange 106)', () => {
  it('lists no connector yet, exactly as exchange 106', async () => {
    const list = await api.call('GET', '/v1/volume/connectors');
    expect(list.status).toBe(exchange(106).response.status);
    expect(list.body).toStrictEqual(exchange(106).response.body);
    expect((await api.call('GET', '/v1/volume/targets')).body).toStrictEqual({ targets: [] });
  });

  it('links to connectors and targets, for all and per node', async () => {
    const root = await api.call('GET', '/v1/volume');
    expect(root.body).toStrictEqual({
      links: [
        { href: `${api.url}/v1/volume/`, rel: 'self' },
        { href: `${api.url}/volume/`, rel: 'bookmark' },
      ],
      connectors: [
        { href: `${api.url}/v1/volume/connectors`, rel: 'self' },
        { href: `${api.url}/volume/connectors`, rel: 'bookmark' },
      ],
      targets: [
        { href: `${api.url}/v1/volume/targets`, rel: 'self' },
        { href: `${api.url}/volume/targets`, rel: 'bookmark' },
      ],
    });
    await newNode('vol-root');
    const perNode = await api.call('GET', '/v1/nodes/vol-root/volume');
    expect(perNode.body.targets[0].href).toBe(`${api.url}/v1/nodes/vol-root/volume/targets`);
  });

  it('does not exist below 1.32', async () => {
    expect((await api.call('GET', '/v1/volume', { version: '1.31' })).status).toBe(404);
    expect((await api.call('GET', '/v1/volume/connectors', { version: '1.31' })).status).toBe(404);
    const post = await api.call('POST', '/v1/volume/targets', { body: {}, version: '1.31' });
    expect(post.status).toBe(404);
    expect((await api.call('GET', '/v1/volume/connectors', { version: '1.32' })).status).toBe(200);
  });
});

describe('volume connectors', () => {
  let node: string;
  let uuid: string;
  beforeAll(async () => {
    node = await newNode('conn-node');
  });

  it('creates, shows, lists in Ironic default fields', async () => {
    const created = await api.call('POST', '/v1/volume/connectors', {
      body: {
        node_uuid: node,
        type: 'iqn',
        connector_id: 'iqn.2017-05.org.openstack:node-1',
        extra: { a: 1 },
      },
    });
    expect(created.status).toBe(201);
    uuid = created.body.uuid;
    expect(created.headers.get('location')).toBe(`${api.url}/v1/volume/connectors/${uuid}`);
    expect(Object.keys(created.body)).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'connector_id',
      'extra',
      'type',
      'links',
      'node_uuid',
    ]);
    expect(created.body).toMatchObject({ node_uuid: node, type: 'iqn', extra: { a: 1 }, updated_at: null });
    expect(created.body.links[0].href).toBe(`${api.url}/v1/volume/connectors/${uuid}`);
    const shown = await api.call('GET', `/v1/volume/connectors/${uuid}`);
    expect(shown.body).toStrictEqual(created.body);
    const list = await api.call('GET', '/v1/volume/connectors');
    expect(list.body.connectors).toStrictEqual([
      {
        uuid,
        connector_id: 'iqn.2017-05.org.openstack:node-1',
        type: 'iqn',
        links: created.body.links,
        node_uuid: node,
      },
    ]);
    const detail = await api.call('GET', '/v1/volume/connectors?detail=True', { version: '1.32' });
    expect(detail.body.connectors[0]).toStrictEqual(created.body);
    const both = await api.call('GET', '/v1/volume/connectors?detail=True&fields=uuid');
    expect(both.status).toBe(400);
    expect(both.fault?.faultstring).toBe("Can't fetch a subset of fields with 'detail' set");
    const byNode = await api.call('GET', '/v1/nodes/conn-node/volume/connectors');
    expect(byNode.body.connectors.map((c: { uuid: string }) => c.uuid)).toStrictEqual([uuid]);
    const byQuery = await api.call('GET', `/v1/volume/connectors?node=${node}`);
    expect(byQuery.body.connectors.map((c: { uuid: string }) => c.uuid)).toStrictEqual([uuid]);
  });

  it.each([
    [
      { type: 'iqn', connector_id: 'x' },
      400,
      "Schema error for connector: 'node_uuid' is a required property",
    ],
    [
      { node_uuid: 'NODE', type: 'fc', connector_id: 'x' },
      400,
      "Schema error for connector: 'fc' is not one of ['iqn', 'ip', 'mac', 'wwnn', 'wwpn', 'port', 'portgroup']",
    ],
    [
      { node_uuid: 'not-a-uuid', type: 'ip', connector_id: 'x' },
      400,
      'Expected UUID for node_uuid: not-a-uuid',
    ],
    [
      { node_uuid: '00000000-0000-0000-0000-0000000000aa', type: 'ip', connector_id: '10.0.0.1' },
      400,
      'Node 00000000-0000-0000-0000-0000000000aa could not be found.',
    ],
    [
      { node_uuid: 'NODE', type: 'iqn', connector_id: 'iqn.2017-05.org.openstack:node-1' },
      409,
      'A volume connector with type iqn and connector ID iqn.2017-05.org.openstack:node-1 already exists.',
    ],
    [
      { node_uuid: 'NODE', type: 'ip', connector_id: 'x', bogus: 1 },
      400,
      "Schema error for connector: Additional properties are not allowed ('bogus' was unexpected)",
    ],
  ])('body #%# is refused and nothing is written', async (body, status, message) => {
    const before = await count('connectors');
    const payload = JSON.parse(JSON.stringify(body).replace('NODE', node));
    const refused = await api.call('POST', '/v1/volume/connectors', { body: payload });
    expect(refused.status).toBe(status);
    expect(refused.fault?.faultstring).toBe(message);
    expect(await count('connectors')).toBe(before);
  });

  it('changes only while the node is powered off', async () => {
    const patch = [{ op: 'replace', path: '/connector_id', value: 'iqn.2017-05.org.openstack:node-2' }];
    const refused = await api.call('PATCH', `/v1/volume/connectors/${uuid}`, { body: patch });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      `The requested action "volume connector update" can not be performed on node "${node}" while it is in state "None".`,
    );
    await setNode(node, { power_state: 'power off' });
    const patched = await api.call('PATCH', `/v1/volume/connectors/${uuid}`, { body: patch });
    expect(patched.status).toBe(200);
    expect(patched.body.connector_id).toBe('iqn.2017-05.org.openstack:node-2');
    expect(patched.body.updated_at).not.toBeNull();
    // the old (type, connector_id) is free again
    const reuse = await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: node, type: 'iqn', connector_id: 'iqn.2017-05.org.openstack:node-1' },
    });
    expect(reuse.status).toBe(201);
  });

  it.each([
    [
      [{ op: 'replace', path: '/uuid', value: 'x' }],
      'Cannot patch /uuid. Only the following can be updated: connector_id, extra, node_uuid, type',
    ],
    [
      [{ op: 'replace', path: '/node_uuid', value: 'nope' }],
      'Expected a UUID for node_uuid, but received nope.',
    ],
    [
      [{ op: 'replace', path: '/type', value: 'fc' }],
      "Schema error for patch: 'fc' is not one of ['iqn', 'ip', 'mac', 'wwnn', 'wwpn', 'port', 'portgroup']",
    ],
    [
      [{ op: 'replace', path: '/node_uuid', value: '00000000-0000-0000-0000-0000000000bb' }],
      'Node 00000000-0000-0000-0000-0000000000bb could not be found.',
    ],
  ])('patch #%# is refused with 400 and changes nothing', async (patch, message) => {
    const before = await api.deps.store.get('volume_connector', uuid);
    const refused = await api.call('PATCH', `/v1/volume/connectors/${uuid}`, { body: patch });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect((await api.deps.store.get('volume_connector', uuid))?.version).toBe(before?.version);
  });

  it('deletes only while the node is powered off; unknown is 404', async () => {
    await setNode(node, { power_state: 'power on' });
    const refused = await api.call('DELETE', `/v1/volume/connectors/${uuid}`);
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toContain('"volume connector deletion"');
    await setNode(node, { power_state: 'power off' });
    expect((await api.call('DELETE', `/v1/volume/connectors/${uuid}`)).status).toBe(204);
    const missing = await api.call('GET', `/v1/volume/connectors/${uuid}`);
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(`Volume connector ${uuid} could not be found.`);
    expect((await api.call('GET', '/v1/volume/connectors/nope')).fault?.faultstring).toBe(
      'Expected UUID for connector_uuid: nope',
    );
  });

  it('readers read but do not write', async () => {
    expect((await api.call('GET', '/v1/volume/connectors', { role: 'reader' })).status).toBe(200);
    const refused = await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: node, type: 'ip', connector_id: '10.9.9.9' },
      role: 'reader',
    });
    expect(refused.status).toBe(403);
  });
});

describe('volume targets', () => {
  let first: string;
  let second: string;
  beforeAll(async () => {
    first = await newNode('target-node-1');
    second = await newNode('target-node-2');
  });

  it('creates; a boot index is unique per node only', async () => {
    const created = await api.call('POST', '/v1/volume/targets', {
      body: {
        node_uuid: first,
        volume_type: 'iscsi',
        volume_id: 'vol-1',
        boot_index: 0,
        properties: { lun: 1 },
      },
    });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body)).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'boot_index',
      'extra',
      'properties',
      'volume_id',
      'volume_type',
      'links',
      'node_uuid',
    ]);
    expect(created.body).toMatchObject({ boot_index: 0, properties: { lun: 1 }, extra: {} });
    const before = await count('targets');
    const taken = await api.call('POST', '/v1/volume/targets', {
      body: { node_uuid: first, volume_type: 'iscsi', volume_id: 'vol-2', boot_index: 0 },
    });
    expect(taken.status).toBe(409);
    expect(taken.fault?.faultstring).toBe(
      "A volume target with boot index '0' for the same node already exists.",
    );
    expect(await count('targets')).toBe(before);
    const other = await api.call('POST', '/v1/volume/targets', {
      body: { node_uuid: second, volume_type: 'iscsi', volume_id: 'vol-2', boot_index: 0 },
    });
    expect(other.status).toBe(201);
    const list = await api.call('GET', '/v1/volume/targets?node=target-node-1');
    expect(list.body.targets).toStrictEqual([
      {
        uuid: created.body.uuid,
        boot_index: 0,
        volume_id: 'vol-1',
        volume_type: 'iscsi',
        links: created.body.links,
        node_uuid: first,
      },
    ]);
  });

  it.each([
    [
      { volume_type: 'iscsi', volume_id: 'v', boot_index: 1 },
      "Schema error for target: 'node_uuid' is a required property",
    ],
    [
      { node_uuid: 'NODE', volume_type: 'iscsi', volume_id: 'v', boot_index: 'one' },
      "Schema error for target: 'one' is not of type 'integer'",
    ],
    [
      { node_uuid: 'NODE', volume_type: 'iscsi', volume_id: 'v', boot_index: 1.5 },
      "Schema error for target: 1.5 is not of type 'integer'",
    ],
    [
      { node_uuid: 'NODE', volume_type: 'iscsi', volume_id: 'v', boot_index: 1, properties: [] },
      "Schema error for target: [] is not of type 'object', 'null'",
    ],
  ])('body #%# is refused and nothing is written', async (body, message) => {
    const before = await count('targets');
    const payload = JSON.parse(JSON.stringify(body).replace('NODE', first));
    const refused = await api.call('POST', '/v1/volume/targets', { body: payload });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect(await count('targets')).toBe(before);
  });

  it('patches the boot index (node powered off), moving its uniqueness', async () => {
    await setNode(first, { power_state: 'power off' });
    const [target] = (await api.call('GET', `/v1/nodes/${first}/volume/targets`)).body.targets;
    const patched = await api.call('PATCH', `/v1/volume/targets/${target.uuid}`, {
      body: [
        { op: 'replace', path: '/boot_index', value: 3 },
        { op: 'remove', path: '/properties' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ boot_index: 3, properties: {} });
    const reuse = await api.call('POST', '/v1/volume/targets', {
      body: { node_uuid: first, volume_type: 'iscsi', volume_id: 'vol-3', boot_index: 0 },
    });
    expect(reuse.status).toBe(201);
    const clash = await api.call('PATCH', `/v1/volume/targets/${target.uuid}`, {
      body: [{ op: 'replace', path: '/boot_index', value: 0 }],
    });
    expect(clash.status).toBe(409);
  });

  it("a node's deletion removes its connectors and targets and frees their unique values", async () => {
    await setNode(second, { power_state: 'power off' });
    await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: second, type: 'wwpn', connector_id: '50:01:43:80:12:34:56:78' },
    });
    expect((await api.call('DELETE', '/v1/nodes/target-node-2')).status).toBe(204);
    expect((await api.call('GET', `/v1/volume/targets?node=${first}`)).body.targets.length).toBe(2);
    const all = await api.call('GET', '/v1/volume/targets');
    expect(all.body.targets.every((t: { node_uuid: string }) => t.node_uuid !== second)).toBe(true);
    const again = await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: first, type: 'wwpn', connector_id: '50:01:43:80:12:34:56:78' },
    });
    expect(again.status).toBe(201);
  });
});

describe('node VIFs (exchange 107)', () => {
  it('lists none for a noop network interface, exactly as exchange 107', async () => {
    const uuid = await newNode('vif-node');
    const vifs = await api.call('GET', `/v1/nodes/${uuid}/vifs`);
    expect(vifs.status).toBe(exchange(107).response.status);
    expect(vifs.body).toStrictEqual(exchange(107).response.body);
    expect((await api.call('GET', '/v1/nodes/vif-node/vifs')).body).toStrictEqual({ vifs: [] });
  });

  it("with a real network interface, lists the ports' tenant VIFs", async () => {
    const uuid = await newNode();
    await setNode(uuid, { network_interface: 'flat' });
    const port = (id: string, vif?: string) => ({
      type: 'create' as const,
      item: {
        kind: 'port',
        id,
        doc: { uuid: id, internal_info: vif ? { tenant_vif_port_id: vif } : {} },
        listSk: `2026#${id}`,
        indexes: { kindPk: 'port', parentPk: portParent(uuid) },
      },
      onConflict: conflict('exists'),
    });
    await api.deps.store.write([port('p-1', 'vif-a'), port('p-2')]);
    expect((await api.call('GET', `/v1/nodes/${uuid}/vifs`)).body).toStrictEqual({ vifs: [{ id: 'vif-a' }] });
  });

  it('does not exist below 1.28; unknown node is 404', async () => {
    expect((await api.call('GET', '/v1/nodes/vif-node/vifs', { version: '1.27' })).status).toBe(404);
    const missing = await api.call('GET', '/v1/nodes/no-such-node/vifs');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Node no-such-node could not be found.');
  });
});

describe('no 500 from client input', () => {
  it('numbers the table cannot hold and oversized keys are 400, and nothing is written', async () => {
    const node = await newNode();
    await setNode(node, { power_state: 'power off' });
    const before = [await count('connectors'), await count('targets')];
    const cases: Array<[string, unknown]> = [
      ['/v1/volume/targets', { node_uuid: node, volume_type: 'iscsi', volume_id: 'v', boot_index: 1e200 }],
      [
        '/v1/volume/targets',
        { node_uuid: node, volume_type: 'iscsi', volume_id: 'v', boot_index: 1, properties: { x: 1e-200 } },
      ],
      ['/v1/volume/connectors', { node_uuid: node, type: 'ip', connector_id: 'x'.repeat(3000) }],
      ['/v1/volume/connectors', { node_uuid: node, type: 'ip', connector_id: 'y', extra: { n: [2 ** 60] } }],
    ];
    for (const [path, body] of cases) {
      const refused = await api.call('POST', path, { body });
      expect(refused.status).toBe(400);
    }
    expect([await count('connectors'), await count('targets')]).toStrictEqual(before);
    const created = await api.call('POST', '/v1/volume/connectors', {
      body: { node_uuid: node, type: 'mac', connector_id: '52:54:00:12:34:56' },
    });
    const patched = await api.call('PATCH', `/v1/volume/connectors/${created.body.uuid}`, {
      body: [{ op: 'add', path: '/extra/n', value: 1e300 }],
    });
    expect(patched.status).toBe(400);
    expect(patched.fault?.faultstring).toContain('Schema error for patch: 1e+300 is out of the range');
  });
});
