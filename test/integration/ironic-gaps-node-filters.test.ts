/**
 * The values of `GET /v1/nodes` (and `/v1/nodes/detail`) filters, validated as Ironic 21.4's
 * NodesController.get_all validates them (api/controllers/v1/utils.py): provision_state
 * against the state machine's states, fault against faults.VALID_FAULTS, UUID filters with
 * args.uuid, booleans with args.boolean; the valid shapes still answer as exchanges 040-043.
 * Free-form filters (driver, resource_class, owner ...) are not validated by Ironic: an
 * unknown value matches nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange } from '../support/reference.ts';

let api: TestApi;
let node: string;
beforeAll(async () => {
  api = await startApi();
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', name: 'filter-node' },
  });
  expect(created.status).toBe(201);
  node = created.body.uuid;
});
afterAll(() => api?.close());

const BOOLEAN_WORDS = "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'";

describe('node list filter values', () => {
  it.each([
    ['provision_state=bogus', 'Provision state "bogus" is not valid'],
    ['provision_state=', 'Provision state "" is not valid'],
    ['provision_state=ENROLL', 'Provision state "ENROLL" is not valid'],
    ['provision_state=deploy', 'Provision state "deploy" is not valid'],
    [
      'fault=bogus',
      `Unrecognized fault "bogus" is specified, allowed faults are ('power failure', 'clean failure', 'rescue abort failure')`,
    ],
    ['instance_uuid=nope', 'Expected UUID for instance_uuid: nope'],
    ['chassis_uuid=nope', 'Expected UUID for chassis_uuid: nope'],
    [
      'maintenance=perhaps',
      `Invalid maintenance: Unrecognized value 'perhaps', acceptable values are: ${BOOLEAN_WORDS}`,
    ],
    ['retired=Maybe', `Invalid retired: Unrecognized value 'Maybe', acceptable values are: ${BOOLEAN_WORDS}`],
    ['associated=x', `Invalid associated: Unrecognized value 'x', acceptable values are: ${BOOLEAN_WORDS}`],
  ])('?%s is 400 with Ironic’s message, on /v1/nodes and /v1/nodes/detail', async (query, message) => {
    for (const path of ['/v1/nodes', '/v1/nodes/detail']) {
      const refused = await api.call('GET', `${path}?${query}`);
      expect(refused.status, `${path}?${query}`).toBe(400);
      expect(refused.fault).toStrictEqual({ faultcode: 'Client', faultstring: message, debuginfo: null });
    }
  });

  it('every state of the machine is a valid filter (exchange 040 shape), and every fault', async () => {
    const { response } = exchange(40);
    const enroll = await api.call('GET', '/v1/nodes?provision_state=enroll');
    expect(enroll.status).toBe(response.status);
    const first = (response.body as { nodes: Array<Record<string, unknown>> }).nodes[0] as object;
    expect(Object.keys(enroll.body.nodes[0]).sort()).toStrictEqual(Object.keys(first).sort());
    expect(enroll.body.nodes.map((n: { uuid: string }) => n.uuid)).toContain(node);
    for (const state of ['wait call-back', 'clean wait', 'inspect wait', 'unrescue failed', 'available']) {
      const answer = await api.call('GET', `/v1/nodes?provision_state=${encodeURIComponent(state)}`);
      expect(answer.status, state).toBe(200);
      expect(answer.body.nodes).toStrictEqual([]);
    }
    for (const fault of ['power failure', 'clean failure', 'rescue abort failure']) {
      const answer = await api.call('GET', `/v1/nodes?fault=${encodeURIComponent(fault)}`);
      expect(answer.status, fault).toBe(200);
      expect(answer.body.nodes).toStrictEqual([]);
    }
  });

  it('driver, resource_class and conductor_group are not validated (exchanges 041, 043)', async () => {
    expect((await api.call('GET', '/v1/nodes?driver=no-such-driver')).body).toStrictEqual({ nodes: [] });
    expect((await api.call('GET', '/v1/nodes?resource_class=nothing')).body).toStrictEqual({ nodes: [] });
    const driver = await api.call('GET', '/v1/nodes?driver=fake-hardware');
    expect(driver.status).toBe(exchange(41).response.status);
    expect(driver.body.nodes.map((n: { uuid: string }) => n.uuid)).toContain(node);
    expect((await api.call('GET', '/v1/nodes?maintenance=false')).status).toBe(exchange(42).response.status);
    expect((await api.call('GET', '/v1/nodes?conductor_group=')).status).toBe(exchange(43).response.status);
  });

  it('version gates come first: provision_state below 1.9 and fault below 1.42 are 406', async () => {
    const state = await api.call('GET', '/v1/nodes?provision_state=bogus', { version: '1.8' });
    expect(state.status).toBe(406);
    expect(state.fault?.faultstring).toBe('Request not acceptable.');
    const fault = await api.call('GET', '/v1/nodes?fault=bogus', { version: '1.41' });
    expect(fault.status).toBe(406);
    expect(fault.fault?.faultstring).toBe(
      'Request not acceptable. The minimal required API version should be 1.42',
    );
  });
});
