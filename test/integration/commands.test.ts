/**
 * Commands through the API (admin): queued durably (record + FIFO message), listed per
 * node, and expired by the conductor's tick with a clear `last_error` on the node.
 */
import { GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tick } from '../../lambda/conductor/tick.ts';
import { type ChannelStack, type EnrolledAgent, startChannel, waitFor } from '../support/channel.ts';

let stack: ChannelStack;
let agent: EnrolledAgent;
let node: string;
let queueUrl: string;

beforeAll(async () => {
  stack = await startChannel();
  const site = await stack.createSite('cmd-a');
  queueUrl = site.body.queue_url;
  agent = await stack.enroll('cmd-a', 'cmd-a-agent');
  node = await stack.createNode('cmd-a', { name: 'cmd-node' });
});
afterAll(() => stack?.close());

const call = (...args: Parameters<ChannelStack['api']['call']>) => stack.api.call(...args);

async function visibleMessages(): Promise<number> {
  const { Attributes = {} } = await stack.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible)
  );
}

/** Settles every open command of the queue (so each test starts from an empty one). */
async function drainAll(): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const polled = await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0&max=10');
    if (polled.body.commands.length === 0) return;
    for (const command of polled.body.commands) {
      await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
        v: 1,
        type: 'command_result',
        command_id: command.id,
        receipt: command.receipt,
        status: 'succeeded',
        finished_at: new Date().toISOString(),
      });
    }
  }
}

describe('POST /v1/nodes/{node}/commands', () => {
  it('answers 202 with a queued record once the record and the FIFO message exist', async () => {
    const before = await visibleMessages();
    const queued = await call('POST', `/v1/nodes/cmd-node/commands`, {
      body: { action: 'sleep', args: { ms: 10 }, deadline_seconds: 120 },
    });
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({
      node,
      site: 'cmd-a',
      action: 'sleep',
      args: { ms: 10 },
      status: 'queued',
      attempts: 0,
      result: null,
      error: null,
      requested_by: stack.api.admin.username,
    });
    const deadline = Date.parse(queued.body.deadline) - Date.parse(queued.body.created_at);
    expect(deadline).toBe(120_000);
    expect(queued.headers.get('location')).toBe(
      `${stack.api.url}/v1/nodes/${node}/commands/${queued.body.id}`,
    );
    expect(await visibleMessages()).toBe(before + 1);
    // The message: group = node, deduplication id = command id.
    const { Messages = [] } = await stack.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 0,
        MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
      }),
    );
    const message = Messages.find((m) => JSON.parse(m.Body ?? '{}').id === queued.body.id);
    expect(message?.Attributes).toMatchObject({
      MessageGroupId: node,
      MessageDeduplicationId: queued.body.id,
    });
    await drainAll();
  });

  it('defaults the deadline to 10 minutes and args to {}', async () => {
    const queued = await call('POST', `/v1/nodes/${node}/commands`, { body: { action: 'noop' } });
    expect(queued.status).toBe(202);
    expect(queued.body.args).toStrictEqual({});
    expect(Date.parse(queued.body.deadline) - Date.parse(queued.body.created_at)).toBe(600_000);
    await drainAll();
  });

  it('refuses bad actions, args, deadlines, unknown nodes, and non-admins', async () => {
    const bad = [
      { action: 'Power On' },
      { action: '' },
      { action: 'noop', args: [1] },
      { action: 'noop', args: { blob: 'x'.repeat(9000) } },
      { action: 'noop', deadline_seconds: 0 },
      { action: 'noop', deadline_seconds: 86_401 },
      { action: 'noop', deadline_seconds: 1.5 },
      { action: 'noop', extra: true },
      {},
    ];
    for (const body of bad) {
      expect(
        (await call('POST', `/v1/nodes/${node}/commands`, { body })).status,
        JSON.stringify(body).slice(0, 60),
      ).toBe(400);
    }
    expect((await call('POST', '/v1/nodes/no-such-node/commands', { body: { action: 'noop' } })).status).toBe(
      404,
    );
    for (const as of [stack.api.reader, stack.api.member1]) {
      expect(
        (await call('POST', `/v1/nodes/${node}/commands`, { as, body: { action: 'noop' } })).status,
      ).toBe(403);
      expect((await call('GET', `/v1/nodes/${node}/commands`, { as })).status).toBe(403);
    }
  });
});

describe('GET /v1/nodes/{node}/commands', () => {
  it('lists a node’s commands newest first, with limit and next', async () => {
    const other = await stack.createNode('cmd-a');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (await call('POST', `/v1/nodes/${other}/commands`, { body: { action: 'noop', args: { i } } })).body
          .id,
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const listed = await call('GET', `/v1/nodes/${other}/commands`);
    expect(listed.body.commands.map((c: { id: string }) => c.id)).toStrictEqual([...ids].reverse());
    const first = await call('GET', `/v1/nodes/${other}/commands?limit=2`);
    expect(first.body.commands).toHaveLength(2);
    const rest = await call('GET', first.body.next.slice(stack.api.url.length));
    expect(rest.body.commands.map((c: { id: string }) => c.id)).toStrictEqual([ids[0]]);
    const shown = await call('GET', `/v1/nodes/${other}/commands/${ids[1]}`);
    expect(shown.body).toMatchObject({ id: ids[1], args: { i: 1 } });
    expect((await call('GET', `/v1/nodes/${node}/commands/${ids[1]}`)).status).toBe(404);
    await drainAll();
  });
});

/** Lets wall time pass `deadline` (an ISO time the API answered). */
async function pastDeadline(deadline: string): Promise<void> {
  while (Date.now() <= Date.parse(deadline))
    await new Promise((resolve) => setTimeout(resolve, Date.parse(deadline) - Date.now() + 20));
}

describe('expiry', () => {
  it('the tick expires a command past its deadline and sets the node’s last_error', async () => {
    await drainAll();
    // Seconds ahead, so the tick just after is before the deadline however busy the machine.
    const queued = await call('POST', `/v1/nodes/${node}/commands`, {
      body: { action: 'noop', deadline_seconds: 4 },
    });
    expect(queued.status).toBe(202);
    // Not yet overdue: the tick leaves it.
    expect((await tick(stack.runtime)).expired).toBe(0);
    await pastDeadline(queued.body.deadline);
    const report = await tick(stack.runtime);
    expect(report.expired).toBe(1);
    const expected = `Command noop ${queued.body.id} expired: no result from the agent of site cmd-a by ${queued.body.deadline}.`;
    const shown = await call('GET', `/v1/nodes/${node}/commands/${queued.body.id}`);
    expect(shown.body).toMatchObject({ status: 'expired', error: expected });
    expect(shown.body.finished_at).not.toBeNull();
    const nodeShown = await call('GET', `/v1/nodes/${node}`);
    expect(nodeShown.body.last_error).toBe(expected);
    // Once only; and the expired command is never handed to the agent.
    expect((await tick(stack.runtime)).expired).toBe(0);
    const polled = await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0');
    expect(polled.body.commands).toStrictEqual([]);
    await waitFor(
      async () => ((await visibleMessages()) === 0 ? true : undefined),
      'its message to be deleted',
    );
    // A late result changes nothing.
    const late = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'command_result',
      command_id: queued.body.id,
      receipt: 'stale',
      status: 'succeeded',
      finished_at: new Date().toISOString(),
    });
    // Acknowledged all the same (the control plane holds a final state): the agent may forget it.
    expect(late).toMatchObject({ status: 200, body: { type: 'result_ack', command_id: queued.body.id } });
    expect((await call('GET', `/v1/nodes/${node}/commands/${queued.body.id}`)).body.status).toBe('expired');
  });

  it('a command delivered and running but never finished expires too', async () => {
    // Seconds ahead, so that the pull just after still delivers it on a busy machine.
    const queued = await call('POST', `/v1/nodes/${node}/commands`, {
      body: { action: 'noop', deadline_seconds: 4 },
    });
    const polled = await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0');
    const [command] = polled.body.commands;
    expect(command.id).toBe(queued.body.id);
    await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'command_ack',
      command_id: command.id,
      receipt: command.receipt,
    });
    expect((await call('GET', `/v1/nodes/${node}/commands/${command.id}`)).body.status).toBe('running');
    await pastDeadline(queued.body.deadline);
    expect((await tick(stack.runtime)).expired).toBe(1);
    expect((await call('GET', `/v1/nodes/${node}`)).body.last_error).toMatch(
      new RegExp(`^Command noop ${command.id} expired`),
    );
  });

  it('a pull expires an overdue command instead of delivering it', async () => {
    await drainAll();
    const queued = await call('POST', `/v1/nodes/${node}/commands`, {
      body: { action: 'sleep', deadline_seconds: 1 },
    });
    await pastDeadline(queued.body.deadline);
    const polled = await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0');
    expect(polled.body.commands).toStrictEqual([]);
    expect((await call('GET', `/v1/nodes/${node}/commands/${queued.body.id}`)).body.status).toBe('expired');
    expect((await call('GET', `/v1/nodes/${node}`)).body.last_error).toMatch(/^Command sleep .* expired/);
  });
});
