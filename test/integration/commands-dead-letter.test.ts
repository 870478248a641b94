/**
 * A command whose message reached the dead-letter queue (delivered 10 times, never
 * finished) fails at the next conductor tick, not at its deadline, and its node says why.
 */
import { GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { commandsDeadLetterQueue, queueName } from '../../infra/resources.ts';
import { tick } from '../../lambda/conductor/tick.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

let stack: ChannelStack;

beforeAll(async () => {
  stack = await startChannel();
  expect((await stack.createSite('dlq')).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

it('the tick fails a dead-lettered command at once, with last_error, and empties the dead-letter queue', async () => {
  const node = await stack.createNode('dlq');
  const created = await stack.api.call('POST', `/v1/nodes/${node}/commands`, {
    body: { action: 'noop', deadline_seconds: 3600 },
  });
  expect(created.status).toBe(202);
  const id = created.body.id as string;
  const { QueueUrl } = await stack.sqs.send(
    new GetQueueUrlCommand({ QueueName: queueName(stack.api.prefix, commandsDeadLetterQueue) }),
  );
  // What SQS's redrive does after the 10th receive: the same message, in the dead-letter queue.
  await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl,
      MessageBody: JSON.stringify({ v: 1, id, node, action: 'noop' }),
      MessageGroupId: node,
      MessageDeduplicationId: id,
    }),
  );
  // And a stray message naming no command: removed, nothing else happens.
  await stack.sqs.send(
    new SendMessageCommand({
      QueueUrl,
      MessageBody: 'garbage',
      MessageGroupId: 'x',
      MessageDeduplicationId: 'x',
    }),
  );
  const report = await tick(stack.runtime);
  expect(report.deadLettered).toBe(1);
  const command = (await stack.api.call('GET', `/v1/nodes/${node}/commands/${id}`)).body;
  expect(command.status).toBe('failed');
  expect(command.error).toMatch(
    /could not be delivered: the agent of site dlq received it \d+ times without a result/,
  );
  const shown = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
  expect(shown.last_error).toBe(command.error);
  const left = await stack.sqs.send(
    new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 0, MaxNumberOfMessages: 10 }),
  );
  expect(left.Messages ?? []).toHaveLength(0);
  expect((await tick(stack.runtime)).deadLettered).toBe(0);
});

it('a conductor that fails after a result is retried by the tick: the node is never left locked', async () => {
  const { createAgentRuntime } = await import('../../lambda/agents/channel.ts');
  let clock = Date.now();
  const runtime = createAgentRuntime({
    store: stack.api.deps.store,
    createMissingQueues: true,
    now: () => new Date(clock),
  });
  const node = await stack.createNode('dlq');
  expect(
    (await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, { body: { target: 'power on' } })).status,
  ).toBe(202);
  const locked = (await stack.api.deps.nodes.get(node))!.node;
  const commandId = locked.task!.command;
  // The conductor breaks once, after the result is stored (a throttled write, a crash).
  const original = runtime.conductor.commandFinished.bind(runtime.conductor);
  let failures = 0;
  runtime.conductor.commandFinished = async (command) => {
    if (failures++ === 0) throw new Error('simulated outage');
    return original(command);
  };
  await runtime.queue.complete('dlq', {
    command_id: commandId,
    receipt: 'no-such-receipt',
    status: 'succeeded',
    result: { power_state: 'power on' },
    finished_at: new Date(clock).toISOString(),
  });
  expect((await stack.api.deps.nodes.get(node))!.node.reservation).not.toBeNull();
  // Before the recheck time nothing happens; after it, the tick settles it.
  await runtime.queue.expireOverdue();
  expect((await stack.api.deps.nodes.get(node))!.node.reservation).not.toBeNull();
  clock += 10 * 60_000;
  await runtime.queue.expireOverdue();
  const after = (await stack.api.deps.nodes.get(node))!.node;
  expect(after.reservation).toBeNull();
  expect(after.power_state).toBe('power on');
  expect(after.target_power_state).toBeNull();
  expect(failures).toBe(2);
  // Settled: a later tick does not touch it again.
  clock += 10 * 60_000;
  await runtime.queue.expireOverdue();
  expect(failures).toBe(2);
});
