/**
 * A port's `node_uuid` is a UUID, as in Ironic 21.4 (api/controllers/v1/port.py):
 * `POST /v1/ports` validates it with `args.uuid` (PORT_VALIDATOR_EXTRA), so a node name is
 * 400 "Expected UUID for node_uuid: <name>" (`cli-requests.json`: the real CLI's
 * `port create --node NAME` gets that 400); `PATCH` looks a changed node_uuid up with
 * `objects.Node.get`, which takes a UUID or an integer id: a name is 400 InvalidIdentity.
 * Nothing is written on a refusal.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, referenceDir } from '../support/reference.ts';

let api: TestApi;
let node: string;
let other: string;
beforeAll(async () => {
  api = await startApi();
  const created = await api.call('POST', '/v1/nodes', {
    body: { driver: 'fake-hardware', name: 'named-node' },
  });
  expect(created.status).toBe(201);
  node = created.body.uuid;
  const second = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: '42' } });
  expect(second.status).toBe(201);
  other = second.body.uuid;
});
afterAll(() => api?.close());

async function portsOf(uuid: string): Promise<unknown> {
  return (await api.call('GET', `/v1/nodes/${uuid}/ports/detail`)).body;
}

describe('port create with a node name', () => {
  it('is 400 "Expected UUID for node_uuid" and creates nothing (the MAC stays free)', async () => {
    const address = '52:54:00:6e:00:01';
    const before = await portsOf(node);
    for (const ident of ['named-node', 'no-such-node', '42']) {
      const refused = await api.call('POST', '/v1/ports', { body: { address, node_uuid: ident } });
      expect(refused.status, ident).toBe(400);
      expect(refused.fault).toStrictEqual({
        faultcode: 'Client',
        faultstring: `Expected UUID for node_uuid: ${ident}`,
        debuginfo: null,
      });
    }
    expect(await portsOf(node)).toStrictEqual(before);
    expect((await api.call('GET', `/v1/ports?address=${address}`)).body.ports).toStrictEqual([]);
    // The UUID (exchange 054's shape) is accepted, in any case.
    const created = await api.call('POST', '/v1/ports', { body: { address, node_uuid: node.toUpperCase() } });
    expect(created.status).toBe(exchange(54).response.status);
    expect(created.body.node_uuid).toBe(node);
  });

  it('replays the real CLI’s `port create --node NAME` (cli-requests.json) with its 400', async () => {
    interface Recorded {
      command: string;
      requests: Array<{ method: string; url: string; api_version: string; body: Record<string, unknown> }>;
      statuses: string[];
    }
    const recorded: Recorded[] = JSON.parse(readFileSync(join(referenceDir, 'cli-requests.json'), 'utf8'));
    const cli = recorded.find((entry) => entry.command.startsWith('baremetal port create'));
    const [request] = cli?.requests ?? [];
    if (!cli || !request) throw new Error('no port create in cli-requests.json');
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', name: request.body.node_uuid },
    });
    expect(created.status).toBe(201);
    const answer = await api.call(request.method, request.url, {
      body: request.body,
      version: request.api_version,
    });
    expect(String(answer.status)).toBe(cli.statuses[0]);
    expect(answer.fault?.faultstring).toBe(`Expected UUID for node_uuid: ${request.body.node_uuid}`);
    expect(await portsOf(created.body.uuid)).toStrictEqual({ ports: [] });
  });
});

describe('port patch of node_uuid', () => {
  it('to a name is 400 InvalidIdentity; to an integer is 400 not found; nothing changes', async () => {
    const port = await api.call('POST', '/v1/ports', {
      body: { address: '52:54:00:6e:00:02', node_uuid: node },
    });
    expect(port.status).toBe(201);
    const uuid = port.body.uuid as string;
    const before = (await api.call('GET', `/v1/ports/${uuid}`)).body;
    const cases: Array<[unknown, string]> = [
      ['named-node', 'Expected a UUID or int but received named-node.'],
      ['no-such-node', 'Expected a UUID or int but received no-such-node.'],
      ['42', 'Node 42 could not be found.'],
      [7, 'Node 7 could not be found.'],
      [null, 'Expected a UUID or int but received None.'],
      [true, 'Expected a UUID or int but received True.'],
      [
        '00000000-0000-0000-0000-000000000000',
        'Node 00000000-0000-0000-0000-000000000000 could not be found.',
      ],
    ];
    for (const [value, message] of cases) {
      const refused = await api.call('PATCH', `/v1/ports/${uuid}`, {
        body: [{ op: 'replace', path: '/node_uuid', value }],
      });
      expect(refused.status, JSON.stringify(value)).toBe(400);
      expect(refused.fault?.faultstring, JSON.stringify(value)).toBe(message);
      expect((await api.call('GET', `/v1/ports/${uuid}`)).body).toStrictEqual(before);
    }
    expect(await portsOf(other)).toStrictEqual({ ports: [] });
    // By UUID the port moves (exchange 064's PATCH answers 200).
    const moved = await api.call('PATCH', `/v1/ports/${uuid}`, {
      body: [{ op: 'replace', path: '/node_uuid', value: other }],
    });
    expect(moved.status).toBe(exchange(64).response.status);
    expect(moved.body.node_uuid).toBe(other);
  });
});
