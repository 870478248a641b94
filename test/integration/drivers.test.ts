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
  it('lists both hardware types with no hosts while no agent is alive', async () => {
    const listed = await api.call('GET', '/v1/drivers');
    expect(listed.status).toBe(200);
    expect(listed.body.drivers.map((driver: { name: string }) => driver.name)).toStrictEqual([
      'fake-hardware',
      'ipmi',
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
    expect(listed.body).toStrictEqual(rehost(exchange(8).response.body, api.url));
  });

  it('unknown driver is 404 with Ironic message (exchange 012)', async () => {
    const missing = await api.call('GET', '/v1/drivers/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toStrictEqual(exchange(12).response.body);
  });

  it('ipmi properties describe driver_info fields', async () => {
    const properties = await api.call('GET', '/v1/drivers/ipmi/properties');
    expect(properties.body.ipmi_address).toBe('IP address or hostname of the node. Required.');
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
