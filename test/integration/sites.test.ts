/** /v1/sites: create (with its SQS FIFO command queue), list, show, patch, delete. */
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsDeadLetterQueue, queueName, siteCommandQueue } from '../../infra/resources.ts';
import { SiteRepository } from '../../lambda/adapters/dynamo/site-repository.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

let stack: ChannelStack;
beforeAll(async () => {
  stack = await startChannel();
});
afterAll(() => stack?.close());

const call = (...args: Parameters<ChannelStack['api']['call']>) => stack.api.call(...args);

async function queueExists(name: string): Promise<boolean> {
  try {
    await stack.sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    return true;
  } catch (error) {
    if ((error as Error).name.includes('NonExistentQueue') || (error as Error).name === 'QueueDoesNotExist')
      return false;
    throw error;
  }
}

describe('create', () => {
  it('creates the site and its FIFO command queue, dead-lettering to the commands DLQ', async () => {
    const created = await call('POST', '/v1/sites', {
      body: { name: 'fra1', description: 'Frankfurt 1', location: 'Frankfurt, DE' },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`${stack.api.url}/v1/sites/fra1`);
    expect(created.body).toMatchObject({
      name: 'fra1',
      description: 'Frankfurt 1',
      location: 'Frankfurt, DE',
      default: false,
      updated_at: null,
    });
    const name = queueName(stack.api.prefix, siteCommandQueue('fra1'));
    expect(created.body.queue_url).toMatch(new RegExp(`/${name.replace('.', '\\.')}$`));
    const { Attributes = {} } = await stack.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: created.body.queue_url, AttributeNames: ['All'] }),
    );
    expect(Attributes.FifoQueue).toBe('true');
    expect(Attributes.VisibilityTimeout).toBe(String(siteCommandQueue('fra1').visibilityTimeoutSeconds));
    const redrive = JSON.parse(Attributes.RedrivePolicy ?? '{}');
    expect(redrive.deadLetterTargetArn).toMatch(
      new RegExp(`:${queueName(stack.api.prefix, commandsDeadLetterQueue).replace('.', '\\.')}$`),
    );
    expect(redrive.maxReceiveCount).toBe(10);
    const shown = await call('GET', '/v1/sites/fra1');
    expect(shown.body).toStrictEqual(created.body);
  });

  it('gives every valid site name a valid queue: 64 characters, dots (found by schemathesis: a 500)', async () => {
    const long = 'z'.repeat(63) + '0';
    const names = [long, `${'z'.repeat(63)}1`, 'dc.fra-1', 'dc_fra-1'];
    const queues = new Set<string>();
    for (const name of names) {
      const created = await call('POST', '/v1/sites', { body: { name } });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const queue = queueName(stack.api.prefix, siteCommandQueue(name));
      expect(queue.length).toBeLessThanOrEqual(80);
      expect(queue).toMatch(/^[A-Za-z0-9_-]+\.fifo$/);
      expect(created.body.queue_url).toMatch(new RegExp(`/${queue.replace('.', '\\.')}$`));
      queues.add(queue);
    }
    expect(queues.size).toBe(names.length); // near names stay apart
    // A command reaches the agent through the hashed queue, and the site deletes cleanly.
    const node = await call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', conductor_group: long },
    });
    expect(node.status).toBe(201);
    expect(
      (await call('PUT', `/v1/nodes/${node.body.uuid}/states/power`, { body: { target: 'power on' } }))
        .status,
    ).toBe(202);
    const agent = await stack.enroll(long, 'long-site-agent');
    const socket = await stack.connect(agent.credential);
    const [command] = await socket.pull();
    expect(command?.node).toBe(node.body.uuid);
    await socket.close();
    expect(queueName(stack.api.prefix, siteCommandQueue('fra1'))).toBe(
      `${stack.api.prefix}-SiteCommands-fra1.fifo`,
    );
  });

  it('makes it the default site when asked', async () => {
    const created = await call('POST', '/v1/sites', { body: { name: 'ams1', default: true } });
    expect(created.status).toBe(201);
    expect(created.body.default).toBe(true);
    const node = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } });
    expect(node.body.conductor_group).toBe('ams1');
    expect((await call('GET', `/v1/sites/${stack.api.site}`)).body.default).toBe(false);
  });

  it('refuses a duplicate, a bad name, unknown fields (400/409)', async () => {
    expect((await call('POST', '/v1/sites', { body: { name: 'fra1' } })).status).toBe(409);
    for (const name of ['FRA1', 'has space', '', 'x'.repeat(65), 'a/b']) {
      expect((await call('POST', '/v1/sites', { body: { name } })).status, name).toBe(400);
    }
    expect((await call('POST', '/v1/sites', { body: { name: 'lon1', color: 'red' } })).status).toBe(400);
    expect((await call('POST', '/v1/sites', { body: { name: 'lon1', description: 5 } })).status).toBe(400);
    expect((await call('GET', '/v1/sites/lon1')).status).toBe(404);
  });

  it('is for admins; readers see sites, members nothing', async () => {
    const { reader, member1 } = stack.api;
    expect((await call('POST', '/v1/sites', { as: reader, body: { name: 'lon2' } })).status).toBe(403);
    expect((await call('GET', '/v1/sites', { as: reader })).status).toBe(200);
    expect((await call('GET', '/v1/sites/fra1', { as: reader })).status).toBe(200);
    expect((await call('GET', '/v1/sites', { as: member1 })).status).toBe(403);
    expect((await call('PATCH', '/v1/sites/fra1', { as: reader, body: [] })).status).toBe(403);
    expect((await call('DELETE', '/v1/sites/fra1', { as: reader })).status).toBe(403);
    expect((await call('GET', '/v1/sites', { as: null })).status).toBe(401);
  });
});

describe('list', () => {
  it('lists by name, with limit and a next link', async () => {
    const all = await call('GET', '/v1/sites');
    const names = all.body.sites.map((site: { name: string }) => site.name);
    expect(names).toStrictEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['ams1', 'fra1', stack.api.site]));
    const first = await call('GET', '/v1/sites?limit=1');
    expect(first.body.sites).toHaveLength(1);
    expect(first.body.next).toBe(`${stack.api.url}/v1/sites?limit=1&marker=${names[0]}`);
    const second = await call('GET', first.body.next.slice(stack.api.url.length));
    expect(second.body.sites[0].name).toBe(names[1]);
  });
});

describe('patch', () => {
  it('changes description and location, clears them with remove', async () => {
    const patched = await call('PATCH', '/v1/sites/fra1', {
      body: [
        { op: 'replace', path: '/description', value: 'Frankfurt one' },
        { op: 'replace', path: '/location', value: 'Equinix FR5' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ description: 'Frankfurt one', location: 'Equinix FR5' });
    expect(patched.body.updated_at).not.toBeNull();
    const cleared = await call('PATCH', '/v1/sites/fra1', { body: [{ op: 'remove', path: '/location' }] });
    expect(cleared.body.location).toBeNull();
    expect((await call('GET', '/v1/sites/fra1')).body).toMatchObject({
      description: 'Frankfurt one',
      location: null,
    });
  });

  it('moves the default', async () => {
    const made = await call('PATCH', '/v1/sites/fra1', {
      body: [{ op: 'replace', path: '/default', value: true }],
    });
    expect(made.body.default).toBe(true);
    expect((await call('GET', '/v1/sites/ams1')).body.default).toBe(false);
    const unset = await call('PATCH', '/v1/sites/fra1', {
      body: [{ op: 'replace', path: '/default', value: false }],
    });
    expect(unset.body.default).toBe(false);
    const node = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } });
    expect(node.status).toBe(400);
    await call('PATCH', '/v1/sites/ams1', { body: [{ op: 'replace', path: '/default', value: true }] });
  });

  it('refuses other fields and wrong types', async () => {
    expect(
      (await call('PATCH', '/v1/sites/fra1', { body: [{ op: 'replace', path: '/name', value: 'x' }] }))
        .status,
    ).toBe(400);
    expect(
      (await call('PATCH', '/v1/sites/fra1', { body: [{ op: 'replace', path: '/queue_url', value: 'x' }] }))
        .status,
    ).toBe(400);
    expect(
      (await call('PATCH', '/v1/sites/fra1', { body: [{ op: 'replace', path: '/default', value: 'yes' }] }))
        .status,
    ).toBe(400);
    expect(
      (await call('PATCH', '/v1/sites/fra1', { body: [{ op: 'replace', path: '/description', value: 3 }] }))
        .status,
    ).toBe(400);
    expect((await call('PATCH', '/v1/sites/nowhere', { body: [] })).status).toBe(404);
  });
});

describe('delete', () => {
  it('is refused while nodes are in the site (409), then deletes the site and its queue', async () => {
    const created = await call('POST', '/v1/sites', { body: { name: 'del1' } });
    expect(created.status).toBe(201);
    const node = await call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', conductor_group: 'del1' },
    });
    expect(node.status).toBe(201);
    const refused = await call('DELETE', '/v1/sites/del1');
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toMatch(/still has nodes/);
    expect((await call('GET', '/v1/sites/del1')).status).toBe(200);

    expect((await call('DELETE', `/v1/nodes/${node.body.uuid}`)).status).toBe(204);
    expect((await call('DELETE', '/v1/sites/del1')).status).toBe(204);
    expect((await call('GET', '/v1/sites/del1')).status).toBe(404);
    expect(await queueExists(queueName(stack.api.prefix, siteCommandQueue('del1')))).toBe(false);
    expect((await call('DELETE', '/v1/sites/del1')).status).toBe(404);
  });

  it('is refused while an agent is enrolled in the site', async () => {
    expect((await call('POST', '/v1/sites', { body: { name: 'del2' } })).status).toBe(201);
    const agent = await stack.enroll('del2', 'del2-agent');
    const refused = await call('DELETE', '/v1/sites/del2');
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toMatch(/del2-agent/);
    expect((await call('DELETE', `/v1/agents/${agent.hostname}`)).status).toBe(204);
    expect((await call('DELETE', '/v1/sites/del2')).status).toBe(204);
  });

  it('clears the default when the default site goes', async () => {
    expect((await call('POST', '/v1/sites', { body: { name: 'del3', default: true } })).status).toBe(201);
    expect((await call('DELETE', '/v1/sites/del3')).status).toBe(204);
    const node = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } });
    expect(node.status).toBe(400);
    await call('PATCH', '/v1/sites/ams1', { body: [{ op: 'replace', path: '/default', value: true }] });
  });
});

describe('the default site of a new node', () => {
  // The API remembers the default site it last read and has the creating transaction check
  // it is still the default. `elsewhere` is another container's repository on the same table.
  const siteRecord = (name: string) => ({
    name,
    description: null,
    location: null,
    created_at: stack.api.deps.now(),
    updated_at: null,
  });

  it('is the default as it is now, though this API last read another', async () => {
    const elsewhere = new SiteRepository(stack.api.deps.store);
    expect((await call('POST', '/v1/sites', { body: { name: 'dflt-a', default: true } })).status).toBe(201);
    const first = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n1' } });
    expect(first.body.conductor_group).toBe('dflt-a');

    await elsewhere.create(siteRecord('dflt-b'), { makeDefault: true });
    const second = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n2' } });
    expect(second.status).toBe(201);
    expect(second.body.conductor_group).toBe('dflt-b');
    expect((await call('GET', '/v1/nodes/dflt-n2')).body.conductor_group).toBe('dflt-b');

    // No default any more: refused, and nothing written.
    await elsewhere.clearDefault('dflt-b');
    const third = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n3' } });
    expect(third.status).toBe(400);
    expect(third.fault?.faultstring).toMatch(/no default site is set/);
    expect((await call('GET', '/v1/nodes/dflt-n3')).status).toBe(404);

    // The default comes back elsewhere: the next create finds it.
    await elsewhere.setDefault('dflt-a');
    const fourth = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n4' } });
    expect(fourth.body.conductor_group).toBe('dflt-a');

    for (const name of ['dflt-n1', 'dflt-n2', 'dflt-n4'])
      expect((await call('DELETE', `/v1/nodes/${name}`)).status).toBe(204);
    await call('PATCH', '/v1/sites/ams1', { body: [{ op: 'replace', path: '/default', value: true }] });
  });

  it('is read again when it went away with its site', async () => {
    const elsewhere = new SiteRepository(stack.api.deps.store);
    expect((await call('POST', '/v1/sites', { body: { name: 'dflt-c', default: true } })).status).toBe(201);
    const first = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n5' } });
    expect(first.body.conductor_group).toBe('dflt-c');
    expect((await call('DELETE', '/v1/nodes/dflt-n5')).status).toBe(204);

    const found = await elsewhere.getVersioned('dflt-c');
    await elsewhere.delete('dflt-c', found?.version ?? -1);
    const refused = await call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'dflt-n6' } });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toMatch(/no default site is set/);
    expect((await call('GET', '/v1/nodes/dflt-n6')).status).toBe(404);
    await call('PATCH', '/v1/sites/ams1', { body: [{ op: 'replace', path: '/default', value: true }] });
  });
});
