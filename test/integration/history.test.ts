/** Node history through the api handler on moto (exchange 099), events written by the repository. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HistoryRepository } from '../../lambda/adapters/dynamo/history-repository.ts';
import { type HistoryEvent, historyEvent } from '../../lambda/domain/history/history.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

let api: TestApi;
let history: HistoryRepository;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  history = new HistoryRepository(api.deps.store);
});
afterAll(() => api?.close());

async function createNode(body: Record<string, unknown>): Promise<Node> {
  const created = await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', ...body } });
  expect(created.status).toBe(201);
  const found = await api.deps.nodes.get(created.body.uuid as string);
  if (!found) throw new Error('node vanished');
  return found.node;
}

/** What the conductor will do: record events, one millisecond apart, oldest first. */
async function record(node: Node, count: number, start = 0): Promise<HistoryEvent[]> {
  const events = Array.from({ length: count }, (_, i) =>
    historyEvent({
      uuid: randomUUID(),
      now: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, start + i)).toISOString().replace('Z', '000+00:00'),
      nodeUuid: node.uuid,
      event: `event ${start + i}`,
      eventType: 'deploying',
      error: (start + i) % 2 === 1,
      conductor: 'fra1-agent-1',
      user: 'admin-user',
    }),
  );
  for (let i = 0; i < events.length; i += 100) await history.record(node, events.slice(i, i + 100));
  return events;
}

describe('GET /v1/nodes/{node}/history', () => {
  let node: Node;
  let events: HistoryEvent[];
  beforeAll(async () => {
    node = await createNode({ name: 'history-node', owner: 'p1' });
  });

  it('is empty for a new node, exactly as exchange 099', async () => {
    const list = await api.call('GET', `/v1/nodes/${node.uuid}/history`);
    expect(list.status).toBe(exchange(99).response.status);
    expect(list.body).toStrictEqual(rehost(exchange(99).response.body, api.url));
  });

  it('lists events oldest first with the standard fields, every field with detail', async () => {
    events = await record(node, 5);
    const list = await api.call('GET', '/v1/nodes/history-node/history');
    expect(list.status).toBe(200);
    expect(list.body.history.map((e: { event: string }) => e.event)).toStrictEqual(
      events.map((event) => event.event),
    );
    expect(list.body.history[1]).toStrictEqual({
      uuid: events[1]?.uuid,
      created_at: events[1]?.created_at,
      severity: 'ERROR',
      event: 'event 1',
      links: [{ href: `${api.url}/v1/nodes/${node.uuid}/history/${events[1]?.uuid}`, rel: 'self' }],
    });
    expect(list.body.next).toBeUndefined();
    const detail = await api.call('GET', `/v1/nodes/${node.uuid}/history?detail=True`);
    expect(detail.body.history[0]).toMatchObject({
      severity: 'INFO',
      event_type: 'deploying',
      conductor: 'fra1-agent-1',
      user: 'admin-user',
    });
    const fields = await api.call('GET', `/v1/nodes/${node.uuid}/history?fields=uuid,event_type`);
    expect(Object.keys(fields.body.history[0])).toStrictEqual(['uuid', 'event_type', 'links']);
  });

  it('pages with limit and marker, with a next link a client can follow', async () => {
    const first = await api.call('GET', `/v1/nodes/history-node/history?limit=2&detail=True`);
    expect(first.body.history.map((e: { uuid: string }) => e.uuid)).toStrictEqual(
      events.slice(0, 2).map((e) => e.uuid),
    );
    expect(first.body.next).toBe(
      `${api.url}/v1/nodes/history-node/history?detail=True&limit=2&marker=${events[1]?.uuid}`,
    );
    const seen: string[] = first.body.history.map((e: { uuid: string }) => e.uuid);
    let next: string | undefined = first.body.next;
    while (next) {
      const page = await api.call('GET', next.slice(api.url.length));
      expect(page.status).toBe(200);
      expect(page.body.history[0]).toHaveProperty('event_type');
      seen.push(...page.body.history.map((e: { uuid: string }) => e.uuid));
      next = page.body.next;
    }
    expect(seen).toStrictEqual(events.map((e) => e.uuid));
  });

  it("refuses bad arguments with Ironic's messages", async () => {
    const path = `/v1/nodes/${node.uuid}/history`;
    const cases: Array<[string, number, string]> = [
      ['?limit=0', 400, 'Limit must be positive'],
      ['?limit=two', 400, 'Expected an integer for limit: two'],
      ['?marker=nope', 400, 'Expected UUID for marker: nope'],
      ['?detail=maybe', 400, "Invalid detail: Unrecognized value 'maybe'"],
      ['?sort_key=created_at', 400, 'Unexpected arguments: sort_key'],
      ['?fields=bogus', 400, 'Field bogus is not a valid field.'],
      ['?detail=True&fields=uuid', 400, 'Can not specify ?detail=True and fields in the same request.'],
    ];
    for (const [query, status, message] of cases) {
      const answer = await api.call('GET', `${path}${query}`);
      expect(answer.status, query).toBe(status);
      expect(answer.fault?.faultstring, query).toContain(message);
    }
    const ghost = randomUUID();
    const missing = await api.call('GET', `${path}?marker=${ghost}`);
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(`Node history record ${ghost} could not be found.`);
  });

  it('shows one event with every field, found under its own node only', async () => {
    const event = events[3] as HistoryEvent;
    const shown = await api.call('GET', `/v1/nodes/history-node/history/${event.uuid}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toStrictEqual({
      uuid: event.uuid,
      created_at: event.created_at,
      severity: 'ERROR',
      event_type: 'deploying',
      event: 'event 3',
      conductor: 'fra1-agent-1',
      user: 'admin-user',
      links: [{ href: `${api.url}/v1/nodes/${node.uuid}/history/${event.uuid}`, rel: 'self' }],
    });
    const other = await createNode({ name: 'history-other' });
    const elsewhere = await api.call('GET', `/v1/nodes/history-other/history/${event.uuid}`);
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.fault?.faultstring).toBe(`Node history record ${event.uuid} could not be found.`);
    expect((await api.call('GET', `/v1/nodes/${other.uuid}/history/some-name`)).status).toBe(404);
    const bad = await api.call('GET', `/v1/nodes/${other.uuid}/history/bad%20name`);
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe('Expected UUID or name for event: bad name');
  });

  it('does not exist below 1.78', async () => {
    const event = events[0] as HistoryEvent;
    for (const path of [`/v1/nodes/${node.uuid}/history`, `/v1/nodes/${node.uuid}/history/${event.uuid}`]) {
      expect((await api.call('GET', path, { version: '1.77' })).status).toBe(404);
      expect((await api.call('GET', path, { version: '1.78' })).status).toBe(200);
    }
  });
});

describe('who sees a history (baremetal:node:history:get is SYSTEM_OR_OWNER_READER)', () => {
  let owned: Node;
  let leased: Node;
  beforeAll(async () => {
    owned = await createNode({ owner: 'p1' });
    leased = await createNode({ owner: 'p2', lessee: 'p1' });
    await record(owned, 1);
    await record(leased, 1);
  });

  it("shows a member its own nodes' history, hides others' nodes, refuses a lessee", async () => {
    const own = await api.call('GET', `/v1/nodes/${owned.uuid}/history`, { role: 'member', project: 'p1' });
    expect(own.status).toBe(200);
    expect(own.body.history).toHaveLength(1);
    const hidden = await api.call('GET', `/v1/nodes/${owned.uuid}/history`, {
      role: 'member',
      project: 'p2',
    });
    expect(hidden.status).toBe(404);
    const lessee = await api.call('GET', `/v1/nodes/${leased.uuid}/history`, {
      role: 'member',
      project: 'p1',
    });
    expect(lessee.status).toBe(403);
    const reader = await api.call('GET', `/v1/nodes/${leased.uuid}/history`, { role: 'reader' });
    expect(reader.status).toBe(200);
  });
});

describe('deletion and retention', () => {
  it("a deleted node's history is gone, even for a new node with the same uuid", async () => {
    const node = await createNode({ name: 'doomed' });
    await record(node, 3);
    expect((await api.call('DELETE', `/v1/nodes/${node.uuid}`)).status).toBe(204);
    expect((await api.call('GET', `/v1/nodes/${node.uuid}/history`)).status).toBe(404);
    // Events are keyed by the node's incarnation (uuid and created_at): a node created
    // again with the same uuid does not inherit them, whether or not they are removed yet.
    const again = await createNode({ uuid: node.uuid, name: 'reborn' });
    expect(again.created_at).not.toBe(node.created_at);
    const list = await api.call('GET', `/v1/nodes/${node.uuid}/history`);
    expect(list.status).toBe(200);
    expect(list.body.history).toStrictEqual([]);
    // The old events are removed after the node's own deletion transaction.
    expect(await history.deleteForNode(node)).toBeLessThanOrEqual(3);
    expect((await history.list(node, { limit: 10 })).events).toStrictEqual([]);
  });

  it('deleteForNode removes more events than one transaction holds, and only that node’s', async () => {
    const node = await createNode({});
    const neighbour = await createNode({});
    const events = await record(node, 130);
    await record(neighbour, 2);
    expect(await history.deleteForNode(node)).toBe(130);
    expect((await history.list(node, { limit: 1000 })).events).toStrictEqual([]);
    expect(await api.deps.store.get('node_history', events[129]?.uuid as string)).toBeUndefined();
    expect((await history.list(neighbour, { limit: 1000 })).events).toHaveLength(2);
  });

  it('prune keeps the newest events', async () => {
    const node = await createNode({});
    const events = await record(node, 12);
    expect(await history.prune(node, 5)).toBe(7);
    const kept = await history.list(node, { limit: 100 });
    expect(kept.events.map((e) => e.uuid)).toStrictEqual(events.slice(7).map((e) => e.uuid));
    expect(await history.prune(node, 5)).toBe(0);
  });
});
