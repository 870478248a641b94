/**
 * A state request whose node write loses to a concurrent change that took no lock (the
 * power sync recording a power state, say) is run again on the node as it is now, up to
 * three attempts, instead of answering the client 409 at once (`actOnCurrentNode`). A node
 * that keeps changing still gets the 409, with nothing left locked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeRepository } from '../../lambda/adapters/dynamo/node-repository.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

const SITE = 'cc';
let stack: ChannelStack;

beforeAll(async () => {
  stack = await startChannel();
  expect((await stack.createSite(SITE)).status).toBe(201);
});

afterAll(async () => {
  await stack?.close();
});

/**
 * Makes the next `times` node writes of the API lose to a concurrent change: just before
 * each, another writer bumps the node's `extra.interference`. Answers how many writes ran.
 */
async function interfering<T>(uuid: string, times: number, request: () => Promise<T>) {
  // The conductor's runtime has its own repository: patch the class, for this request only.
  const proto = NodeRepository.prototype;
  const original = proto.update;
  let writes = 0;
  let interfering = false; // the interference's own write goes through untouched
  proto.update = async function (this: NodeRepository, ...args: Parameters<typeof original>) {
    if (interfering || args[0].uuid !== uuid) return original.apply(this, args);
    writes++;
    if (writes <= times) {
      interfering = true;
      try {
        await stack.api.deps.nodes.modify(uuid, (node: Node) => ({
          ...node,
          extra: { ...node.extra, interference: writes },
        }));
      } finally {
        interfering = false;
      }
    }
    return original.apply(this, args);
  };
  try {
    return { answer: await request(), writes: () => writes };
  } finally {
    proto.update = original;
  }
}

const node = async (uuid: string) => (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;

describe('a state request racing a concurrent node write', () => {
  it('power: runs again on the current node and is accepted', async () => {
    const uuid = await stack.createNode(SITE);
    const { answer, writes } = await interfering(uuid, 1, () =>
      stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, { body: { target: 'power on' } }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    expect(writes()).toBe(2);
    const shown = await node(uuid);
    expect(shown.extra).toEqual({ interference: 1 }); // the concurrent change is kept
    expect(shown.target_power_state).toBe('power on');
  });

  it('provision: runs again on the current node and is accepted', async () => {
    const uuid = await stack.createNode(SITE);
    const { answer, writes } = await interfering(uuid, 2, () =>
      stack.api.call('PUT', `/v1/nodes/${uuid}/states/provision`, { body: { target: 'manage' } }),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    expect(writes()).toBe(3);
    expect((await node(uuid)).extra).toEqual({ interference: 2 });
  });

  it('a node that keeps changing: 409 after three attempts, nothing locked', async () => {
    const uuid = await stack.createNode(SITE);
    const { answer, writes } = await interfering(uuid, 10, () =>
      stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, { body: { target: 'power on' } }),
    );
    expect(answer.status).toBe(409);
    expect(JSON.stringify(answer.body)).toContain('was changed by another request at the same time');
    expect(writes()).toBe(3);
    const shown = await node(uuid);
    expect(shown.reservation).toBeNull();
    expect(shown.target_power_state).toBeNull();
    expect(shown.extra).toEqual({ interference: 3 });
  });

  it('a node locked by a task: 409 NodeLocked at once, no second attempt', async () => {
    const uuid = await stack.createNode(SITE);
    await stack.api.deps.nodes.modify(uuid, (current: Node) => ({ ...current, reservation: 'elsewhere' }));
    const { answer, writes } = await interfering(uuid, 10, () =>
      stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, { body: { target: 'power on' } }),
    );
    expect(answer.status).toBe(409);
    expect(JSON.stringify(answer.body)).toContain('is locked by host elsewhere');
    expect(writes()).toBe(0);
  });
});
