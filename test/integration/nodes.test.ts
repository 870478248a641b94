/** Nodes through the real api handler on moto, compared with Ironic's recorded answers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSealed } from '../../lambda/domain/auth/sealing.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api.close());

describe('node create', () => {
  it('matches exchange 019 field for field (but uuid, times, conductor, site)', async () => {
    const { request, response } = exchange(19);
    const body = { ...(request.body as Record<string, unknown>) };
    delete body.chassis_uuid;
    const created = await api.call('POST', '/v1/nodes', { body });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`${api.url}/v1/nodes/${created.body.uuid}`);
    const expected = rehost(response.body as Record<string, any>, api.url);
    const uuid = created.body.uuid as string;
    const normalize = (node: Record<string, any>) =>
      JSON.parse(
        JSON.stringify({
          ...node,
          uuid: 'U',
          created_at: 'T',
          conductor: null,
          conductor_group: 'SITE',
          chassis_uuid: null,
        }).replaceAll(node.uuid, 'U'),
      );
    expect(Object.keys(created.body)).toStrictEqual(Object.keys(expected));
    expect(normalize(created.body)).toStrictEqual(normalize(expected));
    expect(created.body.conductor_group).toBe(api.site);
    expect(created.body.driver_info.ipmi_password).toBe('******');
    const stored = await api.deps.nodes.get(uuid);
    // Stored sealed (KMS envelope), and it opens back to what was sent.
    const sealed = stored?.node.driver_info.ipmi_password;
    expect(isSealed(sealed)).toBe(true);
    expect(await api.deps.sealer.open(sealed as string, { node: uuid })).toBe('"secret"');
  });

  it('at 1.1 shows only the 1.1 fields (exchange 021)', async () => {
    const { response } = exchange(21);
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware' },
      version: '1.1',
    });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toStrictEqual(Object.keys(response.body as object).sort());
  });

  it.each([
    [22, { name: 'dup-0', driver: 'fake-hardware' }, 409, 'A node with name dup-0 already exists.'],
    [
      23,
      { name: 'bad name', driver: 'fake-hardware' },
      400,
      "Cannot create node with invalid name 'bad name'",
    ],
    [
      25,
      { driver: 'fake-hardware', foo: 1 },
      400,
      "Schema error for node: Additional properties are not allowed ('foo' was unexpected)",
    ],
  ])('exchange %i: refused with Ironic message', async (_n, body, status, message) => {
    if (status === 409) expect((await api.call('POST', '/v1/nodes', { body })).status).toBe(201);
    const refused = await api.call('POST', '/v1/nodes', { body });
    expect(refused.status).toBe(status);
    expect(refused.fault?.faultstring).toBe(message);
  });

  it('unknown driver is 400 (exchange 024)', async () => {
    const refused = await api.call('POST', '/v1/nodes', { body: { driver: 'nope' } });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toContain(
      'No valid host was found. Reason: No conductor service registered which supports driver nope',
    );
  });

  it('malformed JSON is 400, not 500, and writes nothing', async () => {
    const before = await api.call('GET', '/v1/nodes');
    const refused = await api.call('POST', '/v1/nodes', { rawBody: '{"driver": ' });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultcode).toBe('Client');
    const after = await api.call('GET', '/v1/nodes');
    expect(after.body.nodes.length).toBe(before.body.nodes.length);
  });

  it('refuses a site that does not exist', async () => {
    const refused = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', conductor_group: 'nowhere' },
    });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toContain('Site "nowhere" does not exist');
  });
});

describe('node show, list, patch, delete', () => {
  let uuid: string;
  beforeAll(async () => {
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', name: 'show-me', extra: { rack: '12' } },
    });
    uuid = created.body.uuid;
  });

  it('shows by uuid and by name; unknown is 404 with Ironic message', async () => {
    expect((await api.call('GET', `/v1/nodes/${uuid}`)).body.name).toBe('show-me');
    expect((await api.call('GET', '/v1/nodes/show-me')).body.uuid).toBe(uuid);
    const missing = await api.call('GET', '/v1/nodes/00000000-0000-0000-0000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(
      exchange(30).response.body && 'Node 00000000-0000-0000-0000-000000000000 could not be found.',
    );
  });

  it('fields= selects fields plus links', async () => {
    const shown = await api.call('GET', `/v1/nodes/${uuid}?fields=uuid,name,power_state`);
    expect(Object.keys(shown.body)).toStrictEqual(['uuid', 'name', 'power_state', 'links']);
    const bad = await api.call('GET', `/v1/nodes/${uuid}?fields=bogus`);
    expect(bad.status).toBe(400);
  });

  it('patches add/replace/remove (exchange 045) and keeps the version check', async () => {
    const patched = await api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [
        { op: 'add', path: '/extra/owner_team', value: 'infra' },
        { op: 'add', path: '/driver_info/ipmi_address', value: '10.0.0.6' },
        { op: 'remove', path: '/extra/rack' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.extra).toStrictEqual({ owner_team: 'infra' });
    expect(patched.body.updated_at).not.toBeNull();
  });

  it.each([
    [47, [{ op: 'replace', path: '/provision_state', value: 'active' }]],
    [48, [{ op: 'replace', path: '/uuid', value: 'x' }]],
    [49, [{ op: 'remove', path: '/extra/missing' }]],
    [50, [{ op: 'jump', path: '/extra/x' }]],
    [51, { op: 'add' }],
  ])('exchange %i: bad patch is 400 with Ironic message and changes nothing', async (n, patch) => {
    const before = await api.deps.nodes.get(uuid);
    const refused = await api.call('PATCH', `/v1/nodes/${uuid}`, { body: patch });
    const expected = JSON.parse((exchange(n).response.body as { error_message: string }).error_message);
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(expected.faultstring);
    expect((await api.deps.nodes.get(uuid))?.version).toBe(before?.version);
  });

  it('renaming to a taken name is 409 (exchange 052)', async () => {
    await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'taken-1' } });
    const refused = await api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [{ op: 'replace', path: '/name', value: 'taken-1' }],
    });
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toBe('A node with name taken-1 already exists.');
  });

  it('a rename frees the old name', async () => {
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', name: 'old-name' },
    });
    await api.call('PATCH', `/v1/nodes/${created.body.uuid}`, {
      body: [{ op: 'replace', path: '/name', value: 'new-name' }],
    });
    expect(
      (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'old-name' } })).status,
    ).toBe(201);
    expect((await api.call('GET', '/v1/nodes/new-name')).body.uuid).toBe(created.body.uuid);
  });

  it('two concurrent patches of one node: one wins, the other gets 409, nothing is lost', async () => {
    const created = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } });
    const path = `/v1/nodes/${created.body.uuid}`;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        api.call('PATCH', path, { body: [{ op: 'add', path: `/extra/k${i}`, value: i }] }),
      ),
    );
    const won = results.filter((result) => result.status === 200);
    expect(won.length).toBeGreaterThanOrEqual(1);
    expect(results.every((result) => result.status === 200 || result.status === 409)).toBe(true);
    const final = await api.call('GET', path);
    // every winner's key is there: no lost update
    for (const result of won) {
      const key = Object.keys(result.body.extra)[0] as string;
      expect(final.body.extra).toHaveProperty(key);
    }
    expect(Object.keys(final.body.extra).length).toBe(won.length);
  });

  it('lists with limit and a next link that continues without gaps or repeats', async () => {
    for (let i = 0; i < 5; i++)
      await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: `page-${i}` } });
    const all = (await api.call('GET', '/v1/nodes')).body.nodes.map((node: { uuid: string }) => node.uuid);
    const seen: string[] = [];
    let path: string | undefined = '/v1/nodes?limit=2';
    for (let pages = 0; path && pages < 50; pages++) {
      const page = await api.call('GET', path);
      expect(page.status).toBe(200);
      expect(page.body.nodes.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.nodes.map((node: { uuid: string }) => node.uuid));
      path = page.body.next ? (page.body.next as string).replace(api.url, '') : undefined;
    }
    expect(seen).toStrictEqual(all);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('lists in Ironic default fields, /detail full, sort by name desc', async () => {
    const list = await api.call('GET', '/v1/nodes?limit=1');
    expect(Object.keys(list.body.nodes[0]).sort()).toStrictEqual(
      ['instance_uuid', 'links', 'maintenance', 'name', 'power_state', 'provision_state', 'uuid'].sort(),
    );
    const detail = await api.call('GET', '/v1/nodes/detail?limit=1');
    expect(detail.body.nodes[0]).toHaveProperty('driver_info');
    const sorted = await api.call('GET', '/v1/nodes?sort_key=name&sort_dir=desc');
    const names = sorted.body.nodes.map((node: { name: string | null }) => node.name ?? '');
    expect(names).toStrictEqual([...names].sort().reverse());
  });

  it('filters by provision_state, driver, maintenance and conductor_group', async () => {
    const created = await api.call('POST', '/v1/nodes', { body: { driver: 'ipmi', name: 'ipmi-one' } });
    const byDriver = await api.call('GET', '/v1/nodes?driver=ipmi');
    expect(byDriver.body.nodes.map((node: { uuid: string }) => node.uuid)).toStrictEqual([created.body.uuid]);
    await api.call('PUT', `/v1/nodes/${created.body.uuid}/maintenance`, { body: { reason: 'PSU' } });
    const inMaintenance = await api.call('GET', '/v1/nodes?maintenance=true');
    expect(inMaintenance.body.nodes.map((node: { uuid: string }) => node.uuid)).toStrictEqual([
      created.body.uuid,
    ]);
    const enroll = await api.call('GET', '/v1/nodes?provision_state=enroll');
    const all = (await api.call('GET', '/v1/nodes')).body.nodes as Array<{ provision_state: string }>;
    const expected = all.filter((node) => node.provision_state === 'enroll').length;
    expect(expected).toBeLessThan(all.length); // the 1.1 node is "available"
    expect(enroll.body.nodes.length).toBe(expected);
    const bySite = await api.call('GET', `/v1/nodes?conductor_group=${api.site}`);
    expect(bySite.body.nodes.length).toBeGreaterThan(0);
    const none = await api.call('GET', '/v1/nodes?conductor_group=elsewhere');
    expect(none.body.nodes).toStrictEqual([]);
  });

  it('refuses bad list parameters (exchanges 037, 039)', async () => {
    expect((await api.call('GET', '/v1/nodes?limit=-1')).fault?.faultstring).toBe('Limit must be positive');
    const badSort = await api.call('GET', '/v1/nodes?sort_key=bogus');
    expect(badSort.status).toBe(400);
    expect(badSort.fault?.faultstring).toContain(
      'The sort_key value "bogus" is an invalid field for sorting',
    );
  });

  it('maintenance set and unset (exchanges 077-079)', async () => {
    expect(
      (await api.call('PUT', `/v1/nodes/${uuid}/maintenance`, { body: { reason: 'replacing PSU' } })).status,
    ).toBe(202);
    const shown = await api.call('GET', `/v1/nodes/${uuid}?fields=maintenance,maintenance_reason,fault`);
    expect(shown.body).toMatchObject({ maintenance: true, maintenance_reason: 'replacing PSU', fault: null });
    expect((await api.call('DELETE', `/v1/nodes/${uuid}/maintenance`)).status).toBe(202);
    expect((await api.call('GET', `/v1/nodes/${uuid}`)).body.maintenance).toBe(false);
  });

  it('traits (exchanges 080-084)', async () => {
    expect(
      (
        await api.call('PUT', `/v1/nodes/${uuid}/traits`, {
          body: { traits: ['CUSTOM_GPU', 'HW_CPU_X86_VMX'] },
        })
      ).status,
    ).toBe(204);
    expect((await api.call('PUT', `/v1/nodes/${uuid}/traits/CUSTOM_FAST`)).status).toBe(204);
    const bad = await api.call('PUT', `/v1/nodes/${uuid}/traits/lowercase`);
    expect(bad.status).toBe(400);
    expect(bad.body).toStrictEqual(exchange(82).response.body);
    expect((await api.call('GET', `/v1/nodes/${uuid}/traits`)).body).toStrictEqual(
      exchange(83).response.body,
    );
    expect((await api.call('DELETE', `/v1/nodes/${uuid}/traits/CUSTOM_FAST`)).status).toBe(204);
    expect((await api.call('GET', `/v1/nodes/${uuid}/traits`)).body.traits).toStrictEqual([
      'CUSTOM_GPU',
      'HW_CPU_X86_VMX',
    ]);
  });

  it('states (exchange 044)', async () => {
    const created = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } });
    const states = await api.call('GET', `/v1/nodes/${created.body.uuid}/states`);
    expect(states.body).toStrictEqual(exchange(44).response.body);
  });

  it('deletes, and the name is free again (exchange 110)', async () => {
    await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'doomed' } });
    expect((await api.call('DELETE', '/v1/nodes/doomed')).status).toBe(204);
    expect((await api.call('GET', '/v1/nodes/doomed')).status).toBe(404);
    expect(
      (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'doomed' } })).status,
    ).toBe(201);
  });
});
