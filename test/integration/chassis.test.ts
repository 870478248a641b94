/** Chassis through the api handler on moto, compared with Ironic's recorded answers (016-018, 108). */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

// The real router (buildRouter) with real HTTP Basic users: admin, reader, and members of
// projects p1 and p2 (`role`/`project` in a call pick the user).
let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

/** The recorded answer on our host with its chassis UUID and times replaced. */
function expected(n: number, uuid: string): any {
  const body = rehost(exchange(n).response.body, api.url) as any;
  const recorded = 'd6ed53cb-60dd-4f82-8bb4-62e8701525b7';
  return JSON.parse(JSON.stringify(body).replaceAll(recorded, uuid));
}

const times = (chassis: any) => ({ ...chassis, created_at: 'T', updated_at: chassis.updated_at && 'T' });

describe('chassis create, list, show (exchanges 016-018)', () => {
  let uuid: string;

  it('creates as exchange 016, field for field, with a Location', async () => {
    const created = await api.call('POST', '/v1/chassis', { body: exchange(16).request.body });
    expect(created.status).toBe(201);
    uuid = created.body.uuid;
    expect(created.headers.get('location')).toBe(`${api.url}/v1/chassis/${uuid}`);
    const reference = expected(16, uuid);
    expect(Object.keys(created.body)).toStrictEqual(Object.keys(reference));
    expect(times(created.body)).toStrictEqual(times(reference));
    expect(created.body.updated_at).toBeNull();
    expect(Date.parse(created.body.created_at)).not.toBeNaN();
  });

  it('lists as exchange 017 and shows as exchange 018', async () => {
    const list = await api.call('GET', '/v1/chassis');
    expect(list.status).toBe(200);
    expect(list.body).toStrictEqual(expected(17, uuid));
    const shown = await api.call('GET', `/v1/chassis/${uuid}`);
    expect(times(shown.body)).toStrictEqual(times(expected(18, uuid)));
  });

  it('detail lists full chassis; fields select (plus links)', async () => {
    const detail = await api.call('GET', '/v1/chassis/detail');
    expect(detail.body.chassis[0]).toHaveProperty('extra', { row: 'b' });
    expect(detail.body.chassis[0]).toHaveProperty('nodes');
    const detailTrue = await api.call('GET', '/v1/chassis?detail=True');
    expect(detailTrue.body).toStrictEqual(detail.body);
    const some = await api.call('GET', `/v1/chassis/${uuid}?fields=extra,uuid`);
    expect(Object.keys(some.body)).toStrictEqual(['uuid', 'extra', 'links']);
    const bad = await api.call('GET', `/v1/chassis/${uuid}?fields=bogus`);
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe('Field bogus is not a valid field.');
    const tooOld = await api.call('GET', `/v1/chassis/${uuid}?fields=uuid`, { version: '1.7' });
    expect(tooOld.status).toBe(406);
    const both = await api.call('GET', '/v1/chassis/detail?fields=uuid');
    expect(both.status).toBe(400);
  });

  it('creates with a given UUID; refuses a duplicate UUID (409) and a bad one (400)', async () => {
    const given = '4a5e3d0c-8a4f-4b7e-9f55-1f0e6c0f7a11';
    const created = await api.call('POST', '/v1/chassis', { body: { uuid: given.toUpperCase() } });
    expect(created.status).toBe(201);
    expect(created.body.uuid).toBe(given);
    expect(created.body).toMatchObject({ description: null, extra: {} });
    const again = await api.call('POST', '/v1/chassis', { body: { uuid: given } });
    expect(again.status).toBe(409);
    expect(again.fault?.faultstring).toBe(`A chassis with UUID ${given} already exists.`);
    const bad = await api.call('POST', '/v1/chassis', { body: { uuid: 'nope' } });
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe('Expected UUID for uuid: nope');
  });

  it.each([
    [{ foo: 1 }, "Schema error for chassis: Additional properties are not allowed ('foo' was unexpected)"],
    [{ description: 5 }, "Schema error for chassis: 5 is not of type 'string', 'null'"],
    [{ description: 'x'.repeat(256) }, `Schema error for chassis: '${'x'.repeat(256)}' is too long`],
    [{ extra: [] }, "Schema error for chassis: [] is not of type 'object', 'null'"],
    [[], "Schema error for chassis: [] is not of type 'object'"],
  ])('refuses bad body #%# with 400 and writes nothing', async (body, message) => {
    const before = (await api.call('GET', '/v1/chassis')).body.chassis.length;
    const refused = await api.call('POST', '/v1/chassis', { body });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect((await api.call('GET', '/v1/chassis')).body.chassis.length).toBe(before);
  });

  it('malformed JSON is 400, not 500', async () => {
    const refused = await api.call('POST', '/v1/chassis', { rawBody: '{"description": ' });
    expect(refused.status).toBe(400);
  });

  it('unknown chassis is 404; a non-UUID is 400', async () => {
    const missing = await api.call('GET', '/v1/chassis/00000000-0000-0000-0000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(
      'Chassis 00000000-0000-0000-0000-000000000000 could not be found.',
    );
    const bad = await api.call('GET', '/v1/chassis/rack-12');
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe('Expected UUID for chassis_uuid: rack-12');
  });
});

describe('chassis patch and delete', () => {
  let uuid: string;
  beforeAll(async () => {
    uuid = (await api.call('POST', '/v1/chassis', { body: { description: 'rack 7', extra: { a: 1 } } })).body
      .uuid;
  });

  it('patches description and extra; removing them resets to null and {}', async () => {
    const patched = await api.call('PATCH', `/v1/chassis/${uuid}`, {
      body: [
        { op: 'replace', path: '/description', value: 'rack 8' },
        { op: 'add', path: '/extra/b', value: 2 },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ description: 'rack 8', extra: { a: 1, b: 2 } });
    expect(patched.body.updated_at).not.toBeNull();
    const removed = await api.call('PATCH', `/v1/chassis/${uuid}`, {
      body: [
        { op: 'remove', path: '/description' },
        { op: 'remove', path: '/extra' },
      ],
    });
    expect(removed.body).toMatchObject({ description: null, extra: {} });
    expect((await api.call('GET', `/v1/chassis/${uuid}`)).body.extra).toStrictEqual({});
  });

  it.each([
    [
      [{ op: 'replace', path: '/created_at', value: 'x' }],
      'Cannot patch /created_at. Only the following can be updated: uuid, extra, description',
    ],
    [
      [{ op: 'replace', path: '/uuid', value: '4a5e3d0c-8a4f-4b7e-9f55-1f0e6c0f7a12' }],
      'Cannot overwrite UUID for an existing Chassis.',
    ],
    [
      [{ op: 'replace', path: '/description', value: 7 }],
      "Schema error for patch: 7 is not of type 'string', 'null'",
    ],
    [
      [{ op: 'remove', path: '/extra/missing' }],
      "Couldn't apply patch '{'op': 'remove', 'path': '/extra/missing'}'. Reason: can't remove a non-existent object 'missing'",
    ],
    [{ op: 'add' }, "Schema error for patch: {'op': 'add'} is not of type 'array'"],
  ])('refuses patch %j with 400 and changes nothing', async (patch, message) => {
    const before = await api.deps.store.get('chassis', uuid);
    const refused = await api.call('PATCH', `/v1/chassis/${uuid}`, { body: patch });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect((await api.deps.store.get('chassis', uuid))?.version).toBe(before?.version);
  });

  it('lists the nodes of a chassis with the node default fields; refuses to delete it (exchange 108)', async () => {
    const node = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', name: 'in-chassis', chassis_uuid: uuid },
    });
    expect(node.status).toBe(201);
    await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'elsewhere' } });
    const nodes = await api.call('GET', `/v1/chassis/${uuid}/nodes`);
    expect(nodes.status).toBe(200);
    expect(nodes.body.nodes.map((n: { uuid: string }) => n.uuid)).toStrictEqual([node.body.uuid]);
    expect(Object.keys(nodes.body.nodes[0])).toStrictEqual([
      'uuid',
      'instance_uuid',
      'maintenance',
      'name',
      'power_state',
      'provision_state',
      'links',
    ]);
    const detail = await api.call('GET', `/v1/chassis/${uuid}/nodes/detail`);
    expect(detail.body.nodes[0]).toHaveProperty('driver', 'fake-hardware');

    const refused = await api.call('DELETE', `/v1/chassis/${uuid}`);
    const reference = JSON.parse((exchange(108).response.body as { error_message: string }).error_message);
    expect(refused.status).toBe(exchange(108).response.status);
    expect(refused.fault?.faultstring).toBe(
      reference.faultstring.replace('d6ed53cb-60dd-4f82-8bb4-62e8701525b7', uuid),
    );
    expect((await api.call('GET', `/v1/chassis/${uuid}`)).status).toBe(200);

    expect((await api.call('DELETE', `/v1/nodes/${node.body.uuid}`)).status).toBe(204);
    expect((await api.call('DELETE', `/v1/chassis/${uuid}`)).status).toBe(204);
    expect((await api.call('GET', `/v1/chassis/${uuid}`)).status).toBe(404);
    expect((await api.call('DELETE', `/v1/chassis/${uuid}`)).status).toBe(404);
    expect((await api.call('GET', `/v1/chassis/${uuid}/nodes`)).status).toBe(404);
  });

  it('a node cannot join a chassis that does not exist', async () => {
    const refused = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', chassis_uuid: '00000000-0000-0000-0000-00000000c0de' },
    });
    expect(refused.status).toBe(400);
  });
});

describe('chassis listing and access', () => {
  it('pages with limit and next without gaps or repeats; sorts descending', async () => {
    for (let i = 0; i < 4; i++) await api.call('POST', '/v1/chassis', { body: { description: `page ${i}` } });
    const all = (await api.call('GET', '/v1/chassis')).body.chassis.map((c: { uuid: string }) => c.uuid);
    expect(all.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    let path: string | undefined = '/v1/chassis?limit=2';
    for (let pages = 0; path && pages < 20; pages++) {
      const page = await api.call('GET', path);
      expect(page.body.chassis.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.chassis.map((c: { uuid: string }) => c.uuid));
      path = page.body.next ? (page.body.next as string).replace(api.url, '') : undefined;
    }
    expect(seen).toStrictEqual(all);
    const desc = await api.call('GET', '/v1/chassis?sort_dir=desc');
    expect(desc.body.chassis.map((c: { uuid: string }) => c.uuid)).toStrictEqual([...all].reverse());
    expect((await api.call('GET', '/v1/chassis?sort_key=extra')).status).toBe(400);
    expect((await api.call('GET', '/v1/chassis?bogus=1')).status).toBe(400);
    expect((await api.call('GET', '/v1/chassis?marker=00000000-0000-0000-0000-000000000000')).status).toBe(
      404,
    );
  });

  it('readers read but do not write', async () => {
    expect((await api.call('GET', '/v1/chassis', { role: 'reader' })).status).toBe(200);
    const refused = await api.call('POST', '/v1/chassis', { body: {}, role: 'reader' });
    expect(refused.status).toBe(403);
  });
});

describe('no 500 from client input', () => {
  it('numbers the table cannot hold are 400 on create and patch', async () => {
    const refused = await api.call('POST', '/v1/chassis', { body: { extra: { n: 2 ** 60 } } });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      'Schema error for chassis: 1152921504606847000 is out of the range of numbers Metalplane stores (magnitudes from 1e-130 to 2**53 - 1)',
    );
    const created = await api.call('POST', '/v1/chassis', { body: { extra: { n: 2 ** 53 - 1, f: 0.5 } } });
    expect(created.status).toBe(201);
    const patched = await api.call('PATCH', `/v1/chassis/${created.body.uuid}`, {
      body: [{ op: 'add', path: '/extra/tiny', value: 1e-200 }],
    });
    expect(patched.status).toBe(400);
  });
});
