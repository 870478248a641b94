/**
 * Commands that outlive their queue's visibility timeout, and failed commands no
 * conductor task awaited: the real api and agents handlers on moto, a `ws` client
 * playing the agent (so the test decides when a command "finishes", nothing depends on
 * how long an action takes).
 */
import { DeleteMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from '../../protocol/messages.ts';
import {
  type AgentSocket,
  type ChannelStack,
  type EnrolledAgent,
  startChannel,
  waitFor,
} from '../support/channel.ts';

/** Short, so that "longer than the visibility timeout" is quick to reach. */
const VISIBILITY_SECONDS = 2;

let stack: ChannelStack;
let agent: EnrolledAgent;
let socket: AgentSocket;
let queueUrl: string;
let slowNode: string;
let witnessNode: string;

beforeAll(async () => {
  stack = await startChannel({ visibilityTimeoutSeconds: VISIBILITY_SECONDS });
  const site = await stack.createSite('cons-cmd');
  expect(site.status).toBe(201);
  queueUrl = site.body.queue_url;
  agent = await stack.enroll('cons-cmd', 'cons-cmd-agent');
  slowNode = await stack.createNode('cons-cmd', { name: 'cons-slow' });
  witnessNode = await stack.createNode('cons-cmd', { name: 'cons-witness' });
  socket = await stack.connect(agent.credential);
});

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

async function enqueue(node: string, body: Record<string, unknown>) {
  const queued = await stack.api.call('POST', `/v1/nodes/${node}/commands`, { body });
  expect(queued.status).toBe(202);
  return queued.body as { id: string };
}

async function record(node: string, id: string) {
  const shown = await stack.api.call('GET', `/v1/nodes/${node}/commands/${id}`);
  expect(shown.status).toBe(200);
  return shown.body as { status: string; attempts: number; error: string | null };
}

const untilStatus = (node: string, id: string, status: string) =>
  waitFor(async () => {
    const shown = await record(node, id);
    return shown.status === status ? shown : undefined;
  }, `command ${id} to be ${status}`);

const ack = (command: Command) =>
  socket.send({ v: 1, type: 'command_ack', command_id: command.id, receipt: command.receipt });

const result = (command: Command, status: 'succeeded' | 'failed', extra: Record<string, unknown> = {}) =>
  socket.send({
    v: 1,
    type: 'command_result',
    command_id: command.id,
    receipt: command.receipt,
    status,
    finished_at: new Date().toISOString(),
    ...extra,
  });

describe('a command running longer than the visibility timeout', () => {
  it('is not delivered again once acknowledged (attempts stays 1) and finishes succeeded', async () => {
    const slow = await enqueue(slowNode, { action: 'noop', deadline_seconds: 3600 });
    // A second command, received with the first and never acknowledged: its redelivery
    // is the proof that the visibility timeout has passed (no sleep, no clock guess).
    const witness = await enqueue(witnessNode, { action: 'noop', deadline_seconds: 3600 });
    const first = await socket.pull();
    expect(first.map((command) => command.id).sort()).toStrictEqual([slow.id, witness.id].sort());
    const slowCommand = first.find((command) => command.id === slow.id) as Command;
    ack(slowCommand);
    await untilStatus(slowNode, slow.id, 'running');

    const again = await waitFor(
      async () => {
        const batch = await socket.pull();
        return batch.length > 0 ? batch : undefined;
      },
      'the witness to be delivered again',
      (VISIBILITY_SECONDS + 5) * 1000,
    );
    expect(again.map((command) => [command.id, command.attempt])).toStrictEqual([[witness.id, 2]]);
    expect(await socket.pull()).toStrictEqual([]);
    expect(await record(slowNode, slow.id)).toMatchObject({ status: 'running', attempts: 1 });

    result(slowCommand, 'succeeded');
    expect(await untilStatus(slowNode, slow.id, 'succeeded')).toMatchObject({ attempts: 1 });
    result(again[0] as Command, 'succeeded');
    await untilStatus(witnessNode, witness.id, 'succeeded');
  });

  it('an acknowledgement whose receipt is stale still marks the command running, and logs', async () => {
    const queued = await enqueue(slowNode, { action: 'noop', deadline_seconds: 3600 });
    const [command] = await socket.pull();
    expect(command?.id).toBe(queued.id);
    // The message is gone from the queue: extending its visibility cannot work.
    await stack.sqs.send(
      new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: (command as Command).receipt }),
    );
    const logged = stack.logs.length;
    ack(command as Command);
    await untilStatus(slowNode, queued.id, 'running');
    const warnings = stack.logs
      .slice(logged)
      .filter((line) => line.message === 'visibility of a running command not extended');
    // moto may accept a deleted message's receipt; AWS refuses it. Either way the ack stood.
    for (const line of warnings) expect(line.extra).toMatchObject({ commandId: queued.id });
    result(command as Command, 'succeeded');
    await untilStatus(slowNode, queued.id, 'succeeded');
  });
});

describe('a failed command no conductor task awaited', () => {
  it("sets its node's last_error, naming the action and the agent's error", async () => {
    const before = await stack.api.call('GET', `/v1/nodes/${slowNode}`);
    expect(before.body.last_error).toBeNull();
    const queued = await enqueue(slowNode, { action: 'noop' });
    const [command] = await socket.pull();
    expect(command?.id).toBe(queued.id);
    ack(command as Command);
    result(command as Command, 'failed', { error: 'the BMC refused the request' });
    await untilStatus(slowNode, queued.id, 'failed');
    const node = await waitFor(async () => {
      const shown = await stack.api.call('GET', `/v1/nodes/${slowNode}`);
      return shown.body.last_error ? shown.body : undefined;
    }, "the node's last_error");
    expect(node.last_error).toBe(
      `Command noop ${queued.id} failed on the agent of site cons-cmd: the BMC refused the request`,
    );
  });
});
