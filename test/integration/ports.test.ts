/**
 * Ports and port groups through the api handler on moto, compared with Ironic's recorded
 * answers (exchanges 054-066).
 *
 * The harness is this file's own (the version, node and port routes on the local HTTP
 * gateway) so that it can act as callers of several roles: the `x-test-as` header picks
 * the principal (admin by default; `member-p1`, `member-p2`, `reader`).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../lambda/api/access.ts';
import { type Dependencies, dependenciesFromEnv } from '../../lambda/api/dependencies.ts';
import { registerNodeRoutes } from '../../lambda/api/routes/nodes.ts';
import { registerPortRoutes } from '../../lambda/api/routes/ports.ts';
import { registerVersionRoutes } from '../../lambda/api/routes/versions.ts';
import { createApiHandler } from '../../lambda/http/middlewares.ts';
import { Router } from '../../lambda/http/router.ts';
import { type HttpGateway, startHttpGateway } from '../../local/http-gateway.ts';
import { isolatedResources } from '../support/aws.ts';
import { exchange, rehost } from '../support/reference.ts';

const PRINCIPALS: Record<string, Principal> = {
  admin: { kind: 'user', name: 'admin', role: 'admin' },
  reader: { kind: 'user', name: 'reader', role: 'reader' },
  'member-p1': { kind: 'user', name: 'm1', role: 'member', project: 'p1' },
  'member-p2': { kind: 'user', name: 'm2', role: 'member', project: 'p2' },
};

interface Call {
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly version?: string;
  readonly as?: keyof typeof PRINCIPALS;
}

interface Result {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  readonly fault?: { faultcode: string; faultstring: string };
}

let gateway: HttpGateway;
let deps: Dependencies;
let router: Router;

async function call(method: string, path: string, options: Call = {}): Promise<Result> {
  const headers: Record<string, string> = {
    'X-OpenStack-Ironic-API-Version': options.version ?? '1.82',
    'x-test-as': options.as ?? 'admin',
  };
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  const parsed = text === '' ? undefined : JSON.parse(text);
  const fault =
    parsed && typeof parsed.error_message === 'string' ? JSON.parse(parsed.error_message) : undefined;
  return { status: response.status, headers: response.headers, body: parsed, fault };
}

beforeAll(async () => {
  await isolatedResources();
  deps = dependenciesFromEnv();
  router = new Router();
  registerVersionRoutes(router);
  registerNodeRoutes(router, deps);
  registerPortRoutes(router, deps);
  const authenticate = async (headers: Readonly<Record<string, string>>) =>
    PRINCIPALS[headers['x-test-as'] ?? 'admin'];
  gateway = await startHttpGateway({
    handler: createApiHandler(router, new Logger({ logLevel: 'SILENT' }), authenticate),
  });
  await deps.sites.create(
    { name: 'test-site', description: null, location: null, created_at: deps.now(), updated_at: null },
    { makeDefault: true },
  );
});
afterAll(() => gateway.close());

let macCounter = 0;
/** A MAC address no other test uses. */
function freshMac(): string {
  macCounter += 1;
  const hex = macCounter.toString(16).padStart(6, '0');
  return `52:54:01:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

async function createNode(extra: Record<string, unknown> = {}): Promise<string> {
  const created = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', ...extra } });
  expect(created.status).toBe(201);
  return created.body.uuid;
}

async function createPort(node: string, body: Record<string, unknown> = {}): Promise<any> {
  const created = await call('POST', '/v1/ports', {
    body: { address: freshMac(), node_uuid: node, ...body },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body;
}

/** The uuid of every port the fleet-wide listing shows. */
async function allPortUuids(): Promise<string[]> {
  const listed = await call('GET', '/v1/ports');
  expect(listed.status).toBe(200);
  return listed.body.ports.map((port: { uuid: string }) => port.uuid);
}

describe('port create (exchanges 054-057)', () => {
  it('matches exchange 054 field for field (but uuid, node and times)', async () => {
    const node = await createNode();
    const { request, response } = exchange(54);
    const body = {
      ...(request.body as Record<string, unknown>),
      node_uuid: node,
      address: '52:54:00:AA:BB:CC',
    };
    const created = await call('POST', '/v1/ports', { body });
    expect(created.status).toBe(201);
    const uuid = created.body.uuid as string;
    expect(created.headers.get('location')).toBe(`${gateway.url}/v1/ports/${uuid}`);
    const expected = rehost(response.body as Record<string, any>, gateway.url);
    expect(Object.keys(created.body)).toStrictEqual(Object.keys(expected));
    const normalize = (port: Record<string, any>) =>
      JSON.parse(
        JSON.stringify({ ...port, created_at: 'T' })
          .replaceAll(port.uuid, 'U')
          .replaceAll(port.node_uuid, 'N'),
      );
    expect(normalize(created.body)).toStrictEqual(normalize(expected));
    expect(created.body.node_uuid).toBe(node);
    expect(created.body.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);

    // 055: the same MAC again, in any spelling, is 409 with Ironic's message.
    for (const address of ['52:54:00:aa:bb:cc', '52-54-00-AA-BB-CC', '525400aabbcc']) {
      const duplicate = await call('POST', '/v1/ports', { body: { address, node_uuid: node } });
      expect(duplicate.status).toBe(exchange(55).response.status);
      expect(duplicate.fault?.faultstring).toBe('A port with MAC address 52:54:00:aa:bb:cc already exists.');
    }
    await call('DELETE', `/v1/ports/${uuid}`);
  });

  it('refuses a bad MAC with 400 (056) and writes nothing', async () => {
    const node = await createNode();
    const before = await allPortUuids();
    const refused = await call('POST', '/v1/ports', { body: { address: 'zz:zz', node_uuid: node } });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      JSON.parse((exchange(56).response.body as { error_message: string }).error_message).faultstring,
    );
    expect(await allPortUuids()).toStrictEqual(before);
    expect((await call('GET', `/v1/nodes/${node}/ports`)).body.ports).toStrictEqual([]);
  });

  it('refuses an unknown node with 400 (057), and a node name as Ironic does (not a UUID)', async () => {
    const refused = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: '00000000-0000-0000-0000-000000000000' },
    });
    expect(refused.status).toBe(exchange(57).response.status);
    expect(refused.fault?.faultstring).toBe('Node 00000000-0000-0000-0000-000000000000 could not be found.');
    const unknownName = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: 'no-such-node' },
    });
    expect(unknownName.status).toBe(400);
    expect(unknownName.fault?.faultstring).toBe('Expected UUID for node_uuid: no-such-node');
    const notAName = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: 'bad name' },
    });
    expect(notAName.status).toBe(400);
    expect(notAName.fault?.faultstring).toBe('Expected UUID for node_uuid: bad name');

    const node = await createNode({ name: 'port-by-name' });
    const byName = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: 'port-by-name' },
    });
    expect(byName.status).toBe(400);
    expect(byName.fault?.faultstring).toBe('Expected UUID for node_uuid: port-by-name');
    expect((await call('GET', `/v1/nodes/${node}/ports`)).body.ports).toStrictEqual([]);
  });

  it('normalizes MAC spellings to lower-case colon form', async () => {
    const node = await createNode();
    const cases: Array<[string, string]> = [
      ['52:54:02:AB:CD:EF', '52:54:02:ab:cd:ef'],
      ['52-54-02-AB-CD-F0', '52:54:02:ab:cd:f0'],
      ['525402ABCDF1', '52:54:02:ab:cd:f1'],
    ];
    for (const [given, stored] of cases) {
      const created = await call('POST', '/v1/ports', { body: { address: given, node_uuid: node } });
      expect(created.status).toBe(201);
      expect(created.body.address).toBe(stored);
      const found = await call('GET', `/v1/ports?address=${given}`);
      expect(found.body.ports.map((port: { uuid: string }) => port.uuid)).toStrictEqual([created.body.uuid]);
    }
  });

  it('applies Ironic defaults and the body rules', async () => {
    const node = await createNode();
    const plain = await createPort(node);
    expect(plain.pxe_enabled).toBe(true);
    expect(plain.is_smartnic).toBe(false);
    expect(plain.local_link_connection).toStrictEqual({});
    expect(plain.portgroup_uuid).toBeNull();

    const cases: Array<[Record<string, unknown>, number, string]> = [
      [
        { foo: 1 },
        400,
        "Schema error for port: Additional properties are not allowed ('foo' was unexpected)",
      ],
      [{ pxe_enabled: 'maybe' }, 400, "Invalid pxe_enabled: Unrecognized value 'maybe'"],
      [{ physical_network: '' }, 400, 'A non-empty value is required when setting physical_network'],
      [{ is_smartnic: true }, 400, 'Smart NIC port must have port_id and hostname in local_link_connection'],
      [{ local_link_connection: { port_id: 'Eth1' } }, 400, 'Schema error for local_link_connection:'],
      [
        { local_link_connection: { port_id: 'Eth1', switch_id: 'not-a-mac' } },
        400,
        'Expected a MAC address or OpenFlow datapath ID but received not-a-mac.',
      ],
      [{ uuid: 'nope' }, 400, 'Expected UUID for uuid: nope'],
      [
        { portgroup_uuid: '00000000-0000-0000-0000-000000000000' },
        400,
        'Portgroup 00000000-0000-0000-0000-000000000000 could not be found.',
      ],
      [{ address: 42 }, 400, "Schema error for port: 42 is not of type 'string'"],
    ];
    const before = await allPortUuids();
    for (const [body, status, message] of cases) {
      const refused = await call('POST', '/v1/ports', {
        body: { address: freshMac(), node_uuid: node, ...body },
      });
      expect(refused.status, JSON.stringify(body)).toBe(status);
      expect(refused.fault?.faultstring).toContain(message);
    }
    expect(await allPortUuids()).toStrictEqual(before);

    const datapath = await createPort(node, {
      local_link_connection: { port_id: 'Eth1', switch_id: '00000A1B2C3D4E5F', switch_info: 'tor-1' },
      pxe_enabled: 'false',
      physical_network: 'physnet1',
    });
    expect(datapath.local_link_connection).toStrictEqual({
      port_id: 'Eth1',
      switch_id: '00000a1b2c3d4e5f',
      switch_info: 'tor-1',
    });
    expect(datapath.pxe_enabled).toBe(false);
    expect(datapath.physical_network).toBe('physnet1');
    const smartnic = await createPort(node, {
      is_smartnic: true,
      local_link_connection: { port_id: 'rep0-0', hostname: 'dpu-1' },
    });
    expect(smartnic.is_smartnic).toBe(true);
  });

  it('answers 400, never 500, to malformed or odd bodies', async () => {
    const bodies = ['{"address": ', '[]', '"text"', 'null', '{}'];
    for (const rawBody of bodies) {
      const refused = await call('POST', '/v1/ports', { rawBody });
      expect(refused.status, rawBody).toBe(400);
      expect(refused.fault?.faultcode).toBe('Client');
    }
  });

  it('gates fields by microversion: hidden below their version, 406 when given', async () => {
    const node = await createNode();
    const port = await createPort(node);
    const at = async (version: string) =>
      Object.keys((await call('GET', `/v1/ports/${port.uuid}`, { version })).body);
    expect(await at('1.1')).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'address',
      'extra',
      'node_uuid',
      'links',
    ]);
    expect(await at('1.19')).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'address',
      'extra',
      'internal_info',
      'local_link_connection',
      'pxe_enabled',
      'node_uuid',
      'links',
    ]);
    expect(await at('1.52')).not.toContain('is_smartnic');
    expect(await at('1.53')).toContain('is_smartnic');
    const tooNew = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: node, pxe_enabled: true },
      version: '1.18',
    });
    expect(tooNew.status).toBe(406);
    const networkType = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: node, local_link_connection: { network_type: 'unmanaged' } },
      version: '1.63',
    });
    expect(networkType.status).toBe(406);
    expect(
      (await call('GET', `/v1/ports/${port.uuid}?fields=physical_network`, { version: '1.33' })).status,
    ).toBe(406);
  });
});

describe('port list, show, patch, delete (exchanges 058-064)', () => {
  let node: string;
  let port: any;
  beforeAll(async () => {
    node = await createNode({ name: 'list-node' });
    port = await createPort(node, {
      local_link_connection: { switch_id: '0a:1b:2c:3d:4e:5f', port_id: 'Ethernet1/1' },
    });
  });

  it('lists uuid, address and links by default (058), everything with /detail (059)', async () => {
    const listed = await call('GET', '/v1/ports');
    expect(listed.status).toBe(200);
    const mine = listed.body.ports.find((entry: { uuid: string }) => entry.uuid === port.uuid);
    const expected = (exchange(58).response.body as { ports: Record<string, unknown>[] }).ports[0] as object;
    expect(Object.keys(mine)).toStrictEqual(Object.keys(expected));
    expect(mine.links).toStrictEqual([
      { href: `${gateway.url}/v1/ports/${port.uuid}`, rel: 'self' },
      { href: `${gateway.url}/ports/${port.uuid}`, rel: 'bookmark' },
    ]);
    const detailed = await call('GET', '/v1/ports/detail');
    const full = detailed.body.ports.find((entry: { uuid: string }) => entry.uuid === port.uuid);
    const expectedFull = (exchange(59).response.body as { ports: Record<string, unknown>[] })
      .ports[0] as object;
    expect(Object.keys(full)).toStrictEqual(Object.keys(expectedFull));
    expect(full).toStrictEqual(port);
    expect((await call('GET', '/v1/ports?detail=True')).body.ports).toContainEqual(port);
  });

  it('filters by node (060, by uuid or name, and node_uuid) and address (061)', async () => {
    const other = await createNode();
    await createPort(other);
    for (const query of [`node=${node}`, 'node=list-node', `node_uuid=${node}`]) {
      const listed = await call('GET', `/v1/ports?${query}`);
      expect(listed.status).toBe(200);
      expect(listed.body.ports).toStrictEqual([
        { uuid: port.uuid, address: port.address, links: port.links },
      ]);
    }
    const byAddress = await call('GET', `/v1/ports?address=${port.address.toUpperCase()}`);
    expect(byAddress.body).toStrictEqual({
      ports: [{ uuid: port.uuid, address: port.address, links: port.links }],
    });
    expect((await call('GET', '/v1/ports?address=52:54:0f:00:00:00')).body.ports).toStrictEqual([]);
    const badAddress = await call('GET', '/v1/ports?address=zz');
    expect(badAddress.status).toBe(400);
    expect(badAddress.fault?.faultstring).toBe('Expected valid MAC address for address: zz');
    const unknownNode = await call('GET', '/v1/ports?node=00000000-0000-0000-0000-000000000000');
    expect(unknownNode.status).toBe(404);
    expect(unknownNode.fault?.faultstring).toBe(
      'Node 00000000-0000-0000-0000-000000000000 could not be found.',
    );
    expect((await call('GET', '/v1/ports?node_uuid=list-node')).status).toBe(400);
    expect((await call('GET', '/v1/ports?bogus=1')).status).toBe(400);
  });

  it('lists a node’s ports as a sub-resource (062), with /detail', async () => {
    const listed = await call('GET', `/v1/nodes/${node}/ports`);
    expect(listed.status).toBe(200);
    expect(listed.body).toStrictEqual({
      ports: [{ uuid: port.uuid, address: port.address, links: port.links }],
    });
    expect((await call('GET', '/v1/nodes/list-node/ports/detail')).body).toStrictEqual({ ports: [port] });
    const missing = await call('GET', '/v1/nodes/00000000-0000-0000-0000-000000000000/ports');
    expect(missing.status).toBe(404);
  });

  it('pages with limit and marker, with a next link', async () => {
    const paged = await createNode();
    const created = [await createPort(paged), await createPort(paged), await createPort(paged)];
    const first = await call('GET', `/v1/nodes/${paged}/ports?limit=2`);
    expect(first.body.ports.map((entry: { uuid: string }) => entry.uuid)).toStrictEqual(
      created.slice(0, 2).map((entry) => entry.uuid),
    );
    const next = new URL(first.body.next);
    expect(next.pathname).toBe(`/v1/nodes/${paged}/ports`);
    expect(next.searchParams.get('marker')).toBe(created[1].uuid);
    const second = await call('GET', `${next.pathname}${next.search}`);
    expect(second.body.ports.map((entry: { uuid: string }) => entry.uuid)).toStrictEqual([created[2].uuid]);
    expect(second.body.next).toBeUndefined();
    const descending = await call('GET', `/v1/nodes/${paged}/ports?sort_dir=desc`);
    expect(descending.body.ports.map((entry: { uuid: string }) => entry.uuid)).toStrictEqual(
      created.map((entry) => entry.uuid).reverse(),
    );
    const fields = await call('GET', `/v1/nodes/${paged}/ports?fields=uuid,pxe_enabled&limit=1`);
    expect(Object.keys(fields.body.ports[0])).toStrictEqual(['uuid', 'pxe_enabled', 'links']);
    expect(new URL(fields.body.next).searchParams.get('fields')).toBe('uuid,pxe_enabled');
    expect((await call('GET', '/v1/ports?marker=00000000-0000-0000-0000-000000000000')).status).toBe(404);
    expect((await call('GET', '/v1/ports?sort_key=address')).status).toBe(400);
  });

  it('shows a port (063); unknown is 404, a non-UUID 400', async () => {
    const shown = await call('GET', `/v1/ports/${port.uuid}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toStrictEqual(port);
    expect(Object.keys(shown.body)).toStrictEqual(Object.keys(exchange(63).response.body as object));
    const selected = await call('GET', `/v1/ports/${port.uuid}?fields=address,node_uuid`);
    expect(selected.body).toStrictEqual({ address: port.address, node_uuid: node, links: port.links });
    const missing = await call('GET', '/v1/ports/00000000-0000-0000-0000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Port 00000000-0000-0000-0000-000000000000 could not be found.');
    const notUuid = await call('GET', '/v1/ports/52:54:00:aa:bb:cc');
    expect(notUuid.status).toBe(400);
    expect(notUuid.fault?.faultstring).toBe('Expected UUID for port_uuid: 52:54:00:aa:bb:cc');
  });

  it('patches a port (064): only the patched field and updated_at change', async () => {
    const { request, response } = exchange(64);
    const patched = await call('PATCH', `/v1/ports/${port.uuid}`, { body: request.body });
    expect(patched.status).toBe(200);
    expect(Object.keys(patched.body)).toStrictEqual(Object.keys(response.body as object));
    expect(patched.body.pxe_enabled).toBe(false);
    expect(patched.body.updated_at).toMatch(/\+00:00$/);
    expect({ ...patched.body, pxe_enabled: true, updated_at: null }).toStrictEqual(port);
    expect((await call('GET', `/v1/ports/${port.uuid}`)).body).toStrictEqual(patched.body);
    port = patched.body;
  });

  it('refuses read-only and invalid patches with Ironic messages, changing nothing', async () => {
    const cases: Array<[unknown, number, string]> = [
      [
        [{ op: 'replace', path: '/uuid', value: '00000000-0000-0000-0000-000000000000' }],
        400,
        'Cannot patch /uuid. Only the following can be updated: address, extra, is_smartnic, local_link_connection, node_uuid, physical_network, portgroup_uuid, pxe_enabled',
      ],
      [[{ op: 'replace', path: '/internal_info', value: {} }], 400, 'Cannot patch /internal_info.'],
      [[{ op: 'replace', path: '/address', value: 'zz' }], 400, 'Expected valid MAC address for address: zz'],
      [[{ op: 'remove', path: '/address' }], 400, "Schema error for patch: 'address' is a required property"],
      [[{ op: 'replace', path: '/pxe_enabled', value: 'sometimes' }], 400, 'Invalid pxe_enabled'],
      [
        [{ op: 'replace', path: '/node_uuid', value: '00000000-0000-0000-0000-000000000000' }],
        400,
        'Node 00000000-0000-0000-0000-000000000000 could not be found.',
      ],
      [[{ op: 'remove', path: '/extra/nothing' }], 400, "can't remove a non-existent object 'nothing'"],
      [[{ op: 'replace', path: '/physical_network', value: 'x' }], 406, 'Request not acceptable.'],
      [{ op: 'replace' }, 400, 'Schema error for patch'],
    ];
    for (const [body, status, message] of cases) {
      const version = status === 406 ? '1.33' : '1.82';
      const refused = await call('PATCH', `/v1/ports/${port.uuid}`, { body, version });
      expect(refused.status, JSON.stringify(body)).toBe(status);
      expect(refused.fault?.faultstring).toContain(message);
    }
    expect((await call('GET', `/v1/ports/${port.uuid}`)).body).toStrictEqual(port);
  });

  it('moves the MAC claim with an address change, atomically', async () => {
    const mover = await createPort(node);
    const taken = await createPort(node);
    const clash = await call('PATCH', `/v1/ports/${mover.uuid}`, {
      body: [{ op: 'replace', path: '/address', value: taken.address }],
    });
    expect(clash.status).toBe(409);
    expect(clash.fault?.faultstring).toBe(`A port with MAC address ${taken.address} already exists.`);
    expect((await call('GET', `/v1/ports/${mover.uuid}`)).body.address).toBe(mover.address);

    const fresh = freshMac();
    const moved = await call('PATCH', `/v1/ports/${mover.uuid}`, {
      body: [{ op: 'replace', path: '/address', value: fresh.toUpperCase() }],
    });
    expect(moved.status).toBe(200);
    expect(moved.body.address).toBe(fresh);
    // The old MAC is free again, the new one is taken.
    const reuse = await call('POST', '/v1/ports', { body: { address: mover.address, node_uuid: node } });
    expect(reuse.status).toBe(201);
    const again = await call('POST', '/v1/ports', { body: { address: fresh, node_uuid: node } });
    expect(again.status).toBe(409);
    expect((await call('GET', `/v1/ports?address=${fresh}`)).body.ports[0].uuid).toBe(mover.uuid);
  });

  it('moves a port to another node (by UUID), listed under its new node only', async () => {
    const target = await createNode({ name: 'move-target' });
    const moving = await createPort(node);
    const moved = await call('PATCH', `/v1/ports/${moving.uuid}`, {
      body: [{ op: 'replace', path: '/node_uuid', value: target }],
    });
    expect(moved.status).toBe(200);
    expect(moved.body.node_uuid).toBe(target);
    const uuids = async (path: string) =>
      (await call('GET', path)).body.ports.map((entry: { uuid: string }) => entry.uuid);
    expect(await uuids(`/v1/nodes/${target}/ports`)).toStrictEqual([moving.uuid]);
    expect(await uuids(`/v1/nodes/${node}/ports`)).not.toContain(moving.uuid);
  });

  it('deletes a port and frees its MAC', async () => {
    const doomed = await createPort(node);
    const deleted = await call('DELETE', `/v1/ports/${doomed.uuid}`);
    expect(deleted.status).toBe(204);
    expect((await call('GET', `/v1/ports/${doomed.uuid}`)).status).toBe(404);
    expect((await call('DELETE', `/v1/ports/${doomed.uuid}`)).status).toBe(404);
    const reuse = await call('POST', '/v1/ports', { body: { address: doomed.address, node_uuid: node } });
    expect(reuse.status).toBe(201);
  });
});

describe('node deletion', () => {
  it('deletes the node’s ports and port groups and frees their MACs and names', async () => {
    const node = await createNode();
    const group = await call('POST', '/v1/portgroups', {
      body: { node_uuid: node, name: 'cascade-bond', address: freshMac() },
    });
    expect(group.status).toBe(201);
    const ports = [await createPort(node), await createPort(node, { portgroup_uuid: group.body.uuid })];
    expect((await call('DELETE', `/v1/nodes/${node}`)).status).toBe(204);
    for (const port of ports) expect((await call('GET', `/v1/ports/${port.uuid}`)).status).toBe(404);
    expect((await call('GET', `/v1/portgroups/${group.body.uuid}`)).status).toBe(404);
    const all = await allPortUuids();
    for (const port of ports) expect(all).not.toContain(port.uuid);

    const successor = await createNode();
    for (const port of ports) {
      const reuse = await call('POST', '/v1/ports', {
        body: { address: port.address, node_uuid: successor },
      });
      expect(reuse.status).toBe(201);
    }
    const regroup = await call('POST', '/v1/portgroups', {
      body: { node_uuid: successor, name: 'cascade-bond', address: group.body.address },
    });
    expect(regroup.status).toBe(201);
  });
});

describe('port groups (exchanges 065-066)', () => {
  let node: string;
  let group: any;
  beforeAll(async () => {
    node = await createNode({ name: 'bond-node' });
  });

  it('creates a port group as exchange 065, field for field (but uuid, node and times)', async () => {
    const { request, response } = exchange(65);
    const created = await call('POST', '/v1/portgroups', {
      body: { ...(request.body as Record<string, unknown>), node_uuid: node, address: '52:54:00:AA:BB:CD' },
    });
    expect(created.status).toBe(201);
    group = created.body;
    expect(created.headers.get('location')).toBe(`${gateway.url}/v1/portgroups/${group.uuid}`);
    const expected = rehost(response.body as Record<string, any>, gateway.url);
    expect(Object.keys(group)).toStrictEqual(Object.keys(expected));
    const normalize = (value: Record<string, any>) =>
      JSON.parse(
        JSON.stringify({ ...value, created_at: 'T' })
          .replaceAll(value.uuid, 'U')
          .replaceAll(value.node_uuid, 'N'),
      );
    expect(normalize(group)).toStrictEqual(normalize(expected));
  });

  it('lists port groups as exchange 066; by node, address, detail; shows by uuid and name', async () => {
    const listed = await call('GET', '/v1/portgroups');
    expect(listed.status).toBe(200);
    const expected = (exchange(66).response.body as { portgroups: object[] }).portgroups[0] as object;
    const mine = listed.body.portgroups.find((entry: { uuid: string }) => entry.uuid === group.uuid);
    expect(Object.keys(mine)).toStrictEqual(Object.keys(expected));
    expect(mine).toStrictEqual({
      uuid: group.uuid,
      address: group.address,
      name: 'bond0',
      links: group.links,
    });
    expect((await call('GET', `/v1/nodes/${node}/portgroups/detail`)).body).toStrictEqual({
      portgroups: [group],
    });
    expect((await call('GET', '/v1/portgroups?node=bond-node')).body.portgroups).toStrictEqual([mine]);
    expect((await call('GET', '/v1/portgroups?address=52:54:00:AA:BB:CD')).body.portgroups).toStrictEqual([
      mine,
    ]);
    expect((await call('GET', '/v1/portgroups/bond0')).body).toStrictEqual(group);
    expect((await call('GET', `/v1/portgroups/${group.uuid}`)).body).toStrictEqual(group);
    const missing = await call('GET', '/v1/portgroups/bond9');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Portgroup bond9 could not be found.');
    expect((await call('GET', '/v1/portgroups', { version: '1.22' })).status).toBe(404);
    expect((await call('GET', `/v1/nodes/${node}/portgroups`, { version: '1.23' })).status).toBe(404);
  });

  it('defaults mode and enforces unique names and addresses', async () => {
    const plain = await call('POST', '/v1/portgroups', { body: { node_uuid: node } });
    expect(plain.status).toBe(201);
    expect(plain.body.mode).toBe('active-backup');
    expect(plain.body.name).toBeNull();
    expect(plain.body.address).toBeNull();
    expect(plain.body.standalone_ports_supported).toBe(true);
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ name: 'bond0' }, 409, 'A portgroup with name bond0 already exists.'],
      [
        { address: '52-54-00-aa-bb-cd' },
        409,
        'A portgroup with MAC address 52:54:00:aa:bb:cd already exists.',
      ],
      [{ name: 'bad name' }, 400, "Cannot create portgroup with invalid name 'bad name'"],
      [{ address: 'nope' }, 400, 'Expected valid MAC address for address: nope'],
      [
        { node_uuid: '00000000-0000-0000-0000-000000000000' },
        400,
        'Node 00000000-0000-0000-0000-000000000000 could not be found.',
      ],
      [{ ports: [] }, 400, "Additional properties are not allowed ('ports' was unexpected)"],
    ];
    for (const [body, status, message] of cases) {
      const refused = await call('POST', '/v1/portgroups', { body: { node_uuid: node, ...body } });
      expect(refused.status, JSON.stringify(body)).toBe(status);
      expect(refused.fault?.faultstring).toBe(
        message.startsWith('Additional') ? `Schema error for portgroup: ${message}` : message,
      );
    }
    const tooOld = await call('POST', '/v1/portgroups', {
      body: { node_uuid: node, mode: '802.3ad' },
      version: '1.25',
    });
    expect(tooOld.status).toBe(406);
  });

  it('holds ports: a port joins a group of its node only; a group with ports is not deleted', async () => {
    const member = await createPort(node, { portgroup_uuid: group.uuid });
    expect(member.portgroup_uuid).toBe(group.uuid);
    const byName = await createPort(node, { portgroup_uuid: 'bond0' });
    expect(byName.portgroup_uuid).toBe(group.uuid);
    await createPort(node);
    const listed = await call('GET', `/v1/portgroups/${group.uuid}/ports`);
    expect(listed.status).toBe(200);
    expect(listed.body.ports.map((entry: { uuid: string }) => entry.uuid)).toStrictEqual([
      member.uuid,
      byName.uuid,
    ]);
    const filtered = await call('GET', '/v1/ports?portgroup=bond0');
    expect(filtered.body).toStrictEqual(listed.body);
    expect((await call('GET', `/v1/ports?portgroup=bond0&node=${node}`)).status).toBe(403);

    const other = await createNode();
    const foreign = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: other, portgroup_uuid: group.uuid },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.fault?.faultstring).toBe(
      'Port can not be added to a portgroup belonging to a different node.',
    );
    const moveAway = await call('PATCH', `/v1/ports/${member.uuid}`, {
      body: [{ op: 'replace', path: '/node_uuid', value: other }],
    });
    expect(moveAway.status).toBe(400);

    const refused = await call('DELETE', `/v1/portgroups/${group.uuid}`);
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      `Cannot complete the requested action because portgroup ${group.uuid} contains ports.`,
    );
    const nodeChange = await call('PATCH', `/v1/portgroups/${group.uuid}`, {
      body: [{ op: 'replace', path: '/node_uuid', value: other }],
    });
    expect(nodeChange.status).toBe(400);

    for (const port of [member, byName]) {
      const left = await call('PATCH', `/v1/ports/${port.uuid}`, {
        body: [{ op: 'remove', path: '/portgroup_uuid' }],
      });
      expect(left.status).toBe(200);
      expect(left.body.portgroup_uuid).toBeNull();
    }
    expect((await call('GET', `/v1/portgroups/${group.uuid}/ports`)).body.ports).toStrictEqual([]);
  });

  it('refuses pxe-enabled members of a group without standalone ports (409)', async () => {
    const strict = await call('POST', '/v1/portgroups', {
      body: { node_uuid: node, standalone_ports_supported: false },
    });
    expect(strict.status).toBe(201);
    const refused = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: node, portgroup_uuid: strict.body.uuid, pxe_enabled: true },
    });
    expect(refused.status).toBe(409);
    const member = await createPort(node, { portgroup_uuid: strict.body.uuid, pxe_enabled: false });
    const enable = await call('PATCH', `/v1/ports/${member.uuid}`, {
      body: [{ op: 'replace', path: '/pxe_enabled', value: true }],
    });
    expect(enable.status).toBe(409);
  });

  it('patches a group: name and address claims move; mode cannot be removed', async () => {
    const patched = await call('PATCH', '/v1/portgroups/bond0', {
      body: [
        { op: 'replace', path: '/name', value: 'bond1' },
        { op: 'replace', path: '/address', value: '52:54:00:AA:BB:CE' },
        { op: 'add', path: '/extra/vlan', value: 42 },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'bond1', address: '52:54:00:aa:bb:ce', extra: { vlan: 42 } });
    expect((await call('GET', '/v1/portgroups/bond0')).status).toBe(404);
    expect((await call('GET', '/v1/portgroups/bond1')).body.uuid).toBe(group.uuid);
    const reuse = await call('POST', '/v1/portgroups', {
      body: { node_uuid: node, name: 'bond0', address: '52:54:00:aa:bb:cd' },
    });
    expect(reuse.status).toBe(201);
    const mode = await call('PATCH', '/v1/portgroups/bond1', { body: [{ op: 'remove', path: '/mode' }] });
    expect(mode.status).toBe(400);
    expect(mode.fault?.faultstring).toBe("'mode' is a mandatory attribute and can not be removed");
    const badName = await call('PATCH', '/v1/portgroups/bond1', {
      body: [{ op: 'replace', path: '/name', value: 'no spaces' }],
    });
    expect(badName.status).toBe(400);
    expect(badName.fault?.faultstring).toBe(
      "Portgroup bond1: Cannot change name to invalid name 'no spaces'",
    );
    const readOnly = await call('PATCH', '/v1/portgroups/bond1', {
      body: [{ op: 'replace', path: '/internal_info', value: {} }],
    });
    expect(readOnly.status).toBe(400);
  });

  it('deletes an empty group, freeing its name', async () => {
    expect((await call('DELETE', '/v1/portgroups/bond1')).status).toBe(204);
    expect((await call('GET', `/v1/portgroups/${group.uuid}`)).status).toBe(404);
    const reuse = await call('POST', '/v1/portgroups', { body: { node_uuid: node, name: 'bond1' } });
    expect(reuse.status).toBe(201);
  });
});

describe('access', () => {
  let ownNode: string;
  let foreignNode: string;
  let ownPort: any;
  let foreignPort: any;
  beforeAll(async () => {
    ownNode = await createNode({ owner: 'p1' });
    foreignNode = await createNode({ owner: 'p2' });
    ownPort = await createPort(ownNode);
    foreignPort = await createPort(foreignNode);
  });

  it('a project member sees the ports of its nodes, and no others', async () => {
    const as = 'member-p1' as const;
    expect((await call('GET', `/v1/ports/${ownPort.uuid}`, { as })).body).toStrictEqual(ownPort);
    const hidden = await call('GET', `/v1/ports/${foreignPort.uuid}`, { as });
    expect(hidden.status).toBe(404);
    expect(hidden.fault?.faultstring).toBe(`Port ${foreignPort.uuid} could not be found.`);
    expect((await call('GET', `/v1/nodes/${ownNode}/ports`, { as })).body.ports).toHaveLength(1);
    expect((await call('GET', `/v1/nodes/${foreignNode}/ports`, { as })).status).toBe(404);
    expect((await call('GET', `/v1/ports?address=${foreignPort.address}`, { as })).body.ports).toStrictEqual(
      [],
    );
    expect((await call('GET', `/v1/ports?address=${ownPort.address}`, { as })).body.ports).toHaveLength(1);
    const everything = await call('GET', '/v1/ports', { as });
    expect(everything.status).toBe(403);
    expect(everything.fault?.faultstring).toContain('give node, portgroup or address');
  });

  it('a project member changes ports of its nodes only; a reader reads everything, writes nothing', async () => {
    const as = 'member-p1' as const;
    const created = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: ownNode },
      as,
    });
    expect(created.status).toBe(201);
    const foreign = await call('POST', '/v1/ports', {
      body: { address: freshMac(), node_uuid: foreignNode },
      as,
    });
    expect(foreign.status).toBe(400);
    expect(foreign.fault?.faultstring).toBe(`Node ${foreignNode} could not be found.`);
    const steal = await call('PATCH', `/v1/ports/${created.body.uuid}`, {
      body: [{ op: 'replace', path: '/node_uuid', value: foreignNode }],
      as,
    });
    expect(steal.status).toBe(400);
    expect((await call('DELETE', `/v1/ports/${foreignPort.uuid}`, { as })).status).toBe(404);
    expect((await call('DELETE', `/v1/ports/${created.body.uuid}`, { as })).status).toBe(204);

    const reader = 'reader' as const;
    expect((await call('GET', '/v1/ports', { as: reader })).status).toBe(200);
    expect((await call('GET', `/v1/ports/${foreignPort.uuid}`, { as: reader })).status).toBe(200);
    const write = await call('PATCH', `/v1/ports/${foreignPort.uuid}`, {
      body: [{ op: 'replace', path: '/pxe_enabled', value: false }],
      as: reader,
    });
    expect(write.status).toBe(403);
    expect((await call('GET', `/v1/ports/${foreignPort.uuid}`)).body).toStrictEqual(foreignPort);
  });
});

describe('no 500 from client input', () => {
  const ODD_BODIES: unknown[] = [
    null,
    0,
    'x',
    [],
    {},
    { address: null },
    { address: 'zz', node_uuid: 1 },
    { node_uuid: '' },
    { node_uuid: 'a'.repeat(300) },
    { address: '52:54:0e:00:00:01', node_uuid: 'x', extra: { '': 1 } },
    { address: '52:54:0e:00:00:02', node_uuid: '%00' },
    { local_link_connection: [] },
    [{ op: 'add', path: '/extra/x' }],
    [{ op: 'replace', path: '/extra', value: { '': 1 } }],
    [{ op: 'remove', path: '/node_uuid' }],
    [{ op: 'replace', path: '/portgroup_uuid', value: 'a b' }],
    [{ op: 'replace', path: '/local_link_connection', value: { port_id: 1 } }],
    [{ op: 'add', path: '/', value: 1 }],
    [{ op: 'replace', path: '/mode', value: null }],
    [{ op: 'replace', path: '/name', value: 42 }],
  ];
  const SEGMENTS = [
    '%00',
    '..',
    'a'.repeat(300),
    '00000000-0000-0000-0000-000000000000',
    'detail',
    'ÿ',
    'x y',
  ];
  const QUERIES = [
    '',
    '?limit=0',
    '?marker=x',
    '?fields=__proto__',
    '?detail=maybe',
    '?address=%00',
    '?node=..',
    '?portgroup=a%20b',
    '?sort_key=__proto__',
  ];

  it('odd paths, queries and bodies on every port and port group route: never 5xx, nothing written', async () => {
    const node = await createNode({ name: 'fuzz-node' });
    const port = await createPort(node, { extra: { keep: true } });
    const routes = router.patterns().filter(({ pattern }) => /port/.test(pattern));
    let calls = 0;
    for (const { pattern, methods } of routes) {
      for (const method of methods) {
        for (const [i, body] of ODD_BODIES.entries()) {
          const segment = SEGMENTS[i % SEGMENTS.length] as string;
          const path = pattern.replace(/\{(\w+)\}/g, (_m, name: string) =>
            name === 'node' && i % 2 === 0
              ? node
              : name === 'port' && i % 3 === 0
                ? port.uuid
                : encodeURIComponent(segment),
          );
          const query = QUERIES[i % QUERIES.length] as string;
          const before = await call('GET', `/v1/ports/${port.uuid}`);
          const answer = await call(method, `${path}${query}`, method === 'GET' ? {} : { body });
          calls++;
          expect(answer.status, `${method} ${path}${query} ${JSON.stringify(body)}`).toBeLessThan(500);
          if (answer.status >= 400) {
            expect(answer.fault?.faultcode).toBe('Client');
            expect((await call('GET', `/v1/ports/${port.uuid}`)).body).toStrictEqual(before.body);
          }
        }
      }
    }
    expect(calls).toBeGreaterThan(200);
  });
});
