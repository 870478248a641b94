/** /v1/drivers and /v1/conductors in Ironic's shapes, with agents as conductors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentRecord } from '../../lambda/domain/conductors.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api.close());

async function putAgent(agent: AgentRecord) {
  await api.deps.store.write([
    {
      type: 'create',
      item: {
        kind: 'agent',
        id: agent.hostname,
        doc: agent,
        listSk: `${agent.created_at}#${agent.hostname}`,
        indexes: { kindPk: 'agent' },
      },
      onConflict: new Error('exists') as never,
    },
  ]);
}

describe('drivers', () => {
  it('lists every hardware type with no hosts while no agent is alive', async () => {
    const listed = await api.call('GET', '/v1/drivers');
    expect(listed.status).toBe(200);
    expect(listed.body.drivers.map((driver: { name: string }) => driver.name)).toStrictEqual([
      'fake-hardware',
      'ipmi',
      'redfish',
    ]);
    expect(listed.body.drivers.every((driver: { hosts: string[] }) => driver.hosts.length === 0)).toBe(true);
  });

  it('shows fake-hardware as Ironic does (exchange 010), hosts from alive agents', async () => {
    const now = new Date().toISOString();
    await putAgent({
      hostname: 'anchor-conductor',
      site: api.site,
      drivers: ['fake-hardware', 'ipmi'],
      created_at: now,
      updated_at: null,
      last_heartbeat: now,
    });
    await putAgent({
      hostname: 'dead-agent',
      site: api.site,
      drivers: ['fake-hardware'],
      created_at: now,
      updated_at: null,
      last_heartbeat: '2020-01-01T00:00:00Z',
    });
    const shown = await api.call('GET', '/v1/drivers/fake-hardware');
    const expected = rehost(exchange(10).response.body as Record<string, string[]>, api.url);
    // Metalplane does not implement cinder storage: not offered.
    expected.enabled_storage_interfaces = ['noop'];
    // Metalplane's in-band inspection and rescue on its ramdisk (Ironic's `agent`
    // inspect and rescue interfaces) are enabled too.
    expected.enabled_inspect_interfaces = ['no-inspect', 'fake', 'agent'];
    expected.enabled_rescue_interfaces = ['no-rescue', 'fake', 'agent'];
    expect(shown.body).toStrictEqual(expected);
    const listed = await api.call('GET', '/v1/drivers');
    // The recorded Ironic enables fake-hardware and ipmi only; Metalplane lists its
    // redfish type too, without hosts while no alive agent drives it.
    const recorded = rehost(exchange(8).response.body, api.url) as { drivers: Array<{ name: string }> };
    expect(listed.body.drivers.filter((d: { name: string }) => d.name !== 'redfish')).toStrictEqual(
      recorded.drivers,
    );
    expect(listed.body.drivers.find((d: { name: string }) => d.name === 'redfish')).toMatchObject({
      name: 'redfish',
      hosts: [],
      type: 'dynamic',
    });
  });

  it('unknown driver is 404 with Ironic message (exchange 012)', async () => {
    const missing = await api.call('GET', '/v1/drivers/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toStrictEqual(exchange(12).response.body);
  });

  it('ipmi properties are Ironic’s, key for key and text for text (exchange 011)', async () => {
    const properties = await api.call('GET', '/v1/drivers/ipmi/properties');
    expect(properties.body.ipmi_address).toBe('IP address or hostname of the node. Required.');
    expect(properties.body).toStrictEqual(exchange(11).response.body);
  });

  it('redfish: Ironic’s properties, validation messages, and the password masked', async () => {
    const properties = await api.call('GET', '/v1/drivers/redfish/properties');
    expect(properties.status).toBe(200);
    expect(Object.keys(properties.body)).toEqual(
      expect.arrayContaining([
        'redfish_address',
        'redfish_system_id',
        'redfish_username',
        'redfish_password',
        'redfish_verify_ca',
        'redfish_auth_type',
        'deploy_kernel',
      ]),
    );
    expect(properties.body.redfish_address).toMatch(/^The URL address to the Redfish controller\./);
    const shown = await api.call('GET', '/v1/drivers/redfish');
    expect(shown.body.default_power_interface).toBe('redfish');
    expect(shown.body.default_management_interface).toBe('redfish');
    expect(shown.body.default_deploy_interface).toBe('direct');

    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'redfish', conductor_group: api.site },
    });
    expect(created.status).toBe(201);
    const uuid = created.body.uuid as string;
    const reason = async () => (await api.call('GET', `/v1/nodes/${uuid}/validate`)).body.power;
    expect(await reason()).toEqual({
      result: false,
      reason: `Missing the following Redfish properties in node ${uuid} driver_info: ['redfish_address']`,
    });
    const set = (driver_info: Record<string, unknown>) =>
      api.call('PATCH', `/v1/nodes/${uuid}`, {
        body: [{ op: 'replace', path: '/driver_info', value: driver_info }],
      });
    const base = {
      redfish_address: 'bmc.example.com',
      redfish_username: 'admin',
      redfish_password: 's3cret',
    };
    expect((await set({ ...base, redfish_auth_type: 'digest' })).status).toBe(200);
    expect((await reason()).reason).toBe(
      `Invalid value "digest" set in driver_info/redfish_auth_type on node ${uuid}. The value should be one of "basic", "session" or "auto".`,
    );
    expect((await set({ ...base, redfish_verify_ca: 'maybe' })).status).toBe(200);
    expect((await reason()).reason).toBe(
      `Invalid value type set in driver_info/redfish_verify_ca on node ${uuid}. The value should be a Boolean or the path to a file/directory, not "maybe"`,
    );
    expect((await set({ ...base, redfish_address: 'ftp://bmc' })).status).toBe(200);
    expect((await reason()).reason).toBe(
      `Invalid Redfish address ftp://bmc set in driver_info/redfish_address on node ${uuid}`,
    );
    const good = await set({
      ...base,
      redfish_verify_ca: '/etc/metalplane/bmc-ca.pem',
      redfish_auth_type: 'session',
    });
    expect(good.body.driver_info.redfish_password).toBe('******');
    expect(await reason()).toEqual({ result: true });
    // The supported boot devices of a redfish node come from its BMC (test/integration/redfish.test.ts).
  });
});

describe('conductors', () => {
  it('lists agents as conductors with conductor_group = site and alive', async () => {
    const listed = await api.call('GET', '/v1/conductors');
    const byName = Object.fromEntries(
      listed.body.conductors.map((c: { hostname: string }) => [c.hostname, c]),
    );
    expect(byName['anchor-conductor']).toStrictEqual({
      hostname: 'anchor-conductor',
      conductor_group: api.site,
      links: rehost(exchange(13).response.body as any, api.url).conductors[0].links,
      alive: true,
    });
    expect(byName['dead-agent'].alive).toBe(false);
    const detail = await api.call('GET', '/v1/conductors?detail=True');
    expect(Object.keys(detail.body.conductors[0])).toStrictEqual(
      Object.keys((exchange(14).response.body as any).conductors[0]),
    );
  });

  it('is not there below 1.49', async () => {
    expect((await api.call('GET', '/v1/conductors', { version: '1.48' })).status).toBe(404);
  });
});
