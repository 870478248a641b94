/**
 * The command channel end to end, on moto: the real api handler, the real agents handler
 * behind the local WebSocket gateway, and a `ws` client playing the agent (enrolled
 * through the API, connected with its credential).
 */
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Command } from '../../protocol/messages.ts';
import { CURRENT_FEATURES, PROTOCOL_VERSION } from '../../protocol/versions.ts';
import {
  type AgentSocket,
  type ChannelStack,
  type EnrolledAgent,
  startChannel,
  waitFor,
} from '../support/channel.ts';

/** Short, so a redelivery can be waited for. */
const VISIBILITY_SECONDS = 2;

let stack: ChannelStack;
let agentA: EnrolledAgent;
let agentB: EnrolledAgent;
let nodeA1: string;
let nodeA2: string;
let nodeB1: string;
const queueUrls: Record<string, string> = {};

beforeAll(async () => {
  stack = await startChannel({ visibilityTimeoutSeconds: VISIBILITY_SECONDS });
  for (const site of ['ch-a', 'ch-b']) {
    const created = await stack.createSite(site);
    expect(created.status).toBe(201);
    queueUrls[site] = created.body.queue_url;
  }
  agentA = await stack.enroll('ch-a', 'ch-a-agent');
  agentB = await stack.enroll('ch-b', 'ch-b-agent');
  nodeA1 = await stack.createNode('ch-a', {
    name: 'ch-a-node-1',
    driver_info: { ipmi_address: '10.0.0.1', ipmi_password: 'secret-a1' },
  });
  nodeA2 = await stack.createNode('ch-a', { name: 'ch-a-node-2' });
  nodeB1 = await stack.createNode('ch-b', { name: 'ch-b-node-1' });
});

afterAll(() => stack?.close());

async function enqueue(node: string, action = 'noop', extra: Record<string, unknown> = {}) {
  const queued = await stack.api.call('POST', `/v1/nodes/${node}/commands`, { body: { action, ...extra } });
  expect(queued.status).toBe(202);
  return queued.body as { id: string; status: string };
}

async function record(node: string, id: string) {
  const shown = await stack.api.call('GET', `/v1/nodes/${node}/commands/${id}`);
  expect(shown.status).toBe(200);
  return shown.body;
}

/** Messages in the site's queue: visible + in flight. */
async function queueDepth(site: string): Promise<number> {
  const { Attributes = {} } = await stack.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrls[site],
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages) + Number(Attributes.ApproximateNumberOfMessagesNotVisible)
  );
}

function result(
  command: Command,
  status: 'succeeded' | 'failed' = 'succeeded',
  extra: Record<string, unknown> = {},
) {
  return {
    v: 1,
    type: 'command_result',
    command_id: command.id,
    receipt: command.receipt,
    status,
    finished_at: new Date().toISOString(),
    ...extra,
  };
}

async function succeeded(node: string, id: string) {
  return waitFor(async () => {
    const shown = await record(node, id);
    return shown.status === 'succeeded' ? shown : undefined;
  }, `command ${id} to succeed`);
}

/** Finishes whatever is left for the agent, so that a test starts from an empty queue. */
async function drain(socket: AgentSocket): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const commands = await socket.pull();
    if (commands.length === 0) return;
    for (const command of commands) socket.send(result(command));
    for (const command of commands) await succeeded(command.node, command.id);
  }
  throw new Error('the queue did not drain');
}

describe('a command, from the API to the agent and back, over the WebSocket', () => {
  it('wake → pull → commands → ack → result: succeeded, and the queue message deleted', async () => {
    const socket = await stack.connect(agentA.credential);
    socket.send({
      v: 1,
      type: 'hello',
      hostname: agentA.hostname,
      agent_version: '0.1.0',
      drivers: ['fake-hardware'],
    });
    await waitFor(async () => {
      const conductor = await stack.api.call('GET', `/v1/conductors/${agentA.hostname}`);
      return conductor.body?.alive === true ? true : undefined;
    }, 'the agent to be alive after hello');

    const queued = await enqueue(nodeA1, 'sleep', { args: { ms: 5 } });
    expect(queued.status).toBe('queued');
    // Accepted means durable: the record and the message exist when the API answered.
    expect(await queueDepth('ch-a')).toBe(1);
    await socket.next('wake');

    const [command, ...others] = await socket.pull();
    expect(others).toStrictEqual([]);
    expect(command).toMatchObject({
      id: queued.id,
      node: nodeA1,
      action: 'sleep',
      args: { ms: 5 },
      attempt: 1,
    });
    expect(command?.receipt.length).toBeGreaterThan(0);
    expect(await record(nodeA1, queued.id)).toMatchObject({ status: 'delivered', attempts: 1 });

    socket.send({ v: 1, type: 'command_ack', command_id: queued.id, receipt: command!.receipt });
    await waitFor(
      async () => ((await record(nodeA1, queued.id)).status === 'running' ? true : undefined),
      'running',
    );

    socket.send(result(command!, 'succeeded', { result: { slept_ms: 5 } }));
    const finished = await waitFor(async () => {
      const shown = await record(nodeA1, queued.id);
      return shown.status === 'succeeded' ? shown : undefined;
    }, 'succeeded');
    expect(finished).toMatchObject({ result: { slept_ms: 5 }, error: null, attempts: 1 });
    expect(finished.finished_at).not.toBeNull();
    await waitFor(async () => ((await queueDepth('ch-a')) === 0 ? true : undefined), 'the queue to be empty');

    // A second result for a finished command changes nothing.
    socket.send(result(command!, 'failed', { error: 'late' }));
    socket.send({ v: 1, type: 'heartbeat', sent_at: new Date().toISOString() });
    await waitFor(
      () =>
        stack.logs.some((line) => line.message.startsWith('result for a finished command'))
          ? true
          : undefined,
      'the duplicate result to be seen',
    );
    expect(await record(nodeA1, queued.id)).toMatchObject({
      status: 'succeeded',
      result: { slept_ms: 5 },
      error: null,
    });
    await socket.close();
  });

  it('wakes a connected agent: the wake arrives unasked, and the pull it prompts finds the command', async () => {
    // How fast is a figure (bench/dispatch: API 202 → the agent starts the command); here,
    // that the wake comes at all, with no poll from the agent before it.
    const socket = await stack.connect(agentA.credential);
    for (let i = 0; i < 3; i++) {
      const wakes = socket.count('wake');
      const queued = await enqueue(nodeA2);
      await waitFor(() => (socket.count('wake') > wakes ? true : undefined), 'the wake');
      expect(socket.count('commands')).toBe(0); // nothing asked for, nothing answered
      const [command] = await socket.pull();
      expect(command?.id).toBe(queued.id);
      socket.send(result(command!));
      await waitFor(
        async () => ((await record(nodeA2, queued.id)).status === 'succeeded' ? true : undefined),
        'done',
      );
      // The record turns succeeded before the queue message is deleted, and the node's FIFO
      // group stays closed until then: the next round's pull, made on its wake, would find
      // nothing (a flake, one run in a few dozen). Wait for the delete first.
      await waitFor(
        async () => ((await queueDepth('ch-a')) === 0 ? true : undefined),
        'the queue to be empty',
      );
    }
    await socket.close();
  });
});

describe('order', () => {
  it("holds a node's next command while its previous one is in flight; other nodes go on", async () => {
    const socket = await stack.connect(agentA.credential);
    await drain(socket);
    const first = await enqueue(nodeA1, 'noop');
    const [c1, ...rest1] = await socket.pull();
    expect(c1?.id).toBe(first.id);
    expect(rest1).toStrictEqual([]);

    const second = await enqueue(nodeA1, 'noop');
    const other = await enqueue(nodeA2, 'noop');
    const delivered = await socket.pull();
    // Node A1's second command stays hidden behind the first; node A2's is delivered.
    expect(delivered.map((command) => command.id)).toStrictEqual([other.id]);
    expect((await record(nodeA1, second.id)).status).toBe('queued');

    socket.send(result(c1!));
    socket.send(result(delivered[0]!));
    await waitFor(
      async () => ((await record(nodeA1, first.id)).status === 'succeeded' ? true : undefined),
      'first done',
    );
    // The record turns succeeded before the queue message is deleted (the node first, what a
    // client waits for; `CommandQueue.complete`), and SQS keeps the node's group closed
    // until that delete: pull until the group opens (bounded), never a sleep.
    const next = await waitFor(async () => {
      const pulled = await socket.pull();
      return pulled.length > 0 ? pulled : undefined;
    }, 'the group to open after the delete');
    expect(next.map((command) => command.id)).toStrictEqual([second.id]);
    socket.send(result(next[0]!));
    await waitFor(
      async () => ((await record(nodeA1, second.id)).status === 'succeeded' ? true : undefined),
      'second done',
    );
    await socket.close();
  });

  it("hands a node's queued commands out in the order they were accepted", async () => {
    const socket = await stack.connect(agentA.credential);
    await drain(socket);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await enqueue(nodeA1, 'noop', { args: { i } })).id);
    // One receive may return several of one node's commands: in order, for the agent to
    // run one after the other (SQS FIFO semantics).
    const seen: string[] = [];
    for (let round = 0; round < 8 && seen.length < ids.length; round++) {
      const batch = await socket.pull(2);
      for (const command of batch) {
        seen.push(command.id);
        socket.send(result(command));
      }
      const last = batch.at(-1);
      if (last)
        await waitFor(
          async () => ((await record(nodeA1, last.id)).status === 'succeeded' ? true : undefined),
          'batch done',
        );
    }
    expect(seen).toStrictEqual(ids);
    await socket.close();
  });
});

describe('redelivery', () => {
  it('delivers again, attempt 2, when no result came before the visibility timeout', async () => {
    const socket = await stack.connect(agentA.credential);
    await drain(socket);
    const queued = await enqueue(nodeA2, 'noop');
    const [first] = await socket.pull();
    expect(first).toMatchObject({ id: queued.id, attempt: 1 });
    // Before the timeout: hidden.
    expect(await socket.pull()).toStrictEqual([]);
    const again = await waitFor(
      async () => {
        const batch = await socket.pull();
        return batch.length > 0 ? batch : undefined;
      },
      'the redelivery',
      (VISIBILITY_SECONDS + 3) * 1000,
    );
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ id: queued.id, attempt: 2 });
    expect(again[0]?.receipt).not.toBe(first?.receipt);
    expect(await record(nodeA2, queued.id)).toMatchObject({ status: 'delivered', attempts: 2 });
    socket.send(result(again[0]!));
    await waitFor(
      async () => ((await record(nodeA2, queued.id)).status === 'succeeded' ? true : undefined),
      'done',
    );
    await waitFor(async () => ((await queueDepth('ch-a')) === 0 ? true : undefined), 'the queue to be empty');
    await socket.close();
  });
});

describe('refused messages', () => {
  it('answers malformed or unauthorized messages with an error, logs them, and does nothing', async () => {
    const socket = await stack.connect(agentA.credential);
    await drain(socket);
    const queued = await enqueue(nodeA1, 'noop');
    const [command] = await socket.pull();
    expect(command?.id).toBe(queued.id);
    const refusedBefore = stack.logs.filter((line) =>
      line.message.startsWith('agent message refused'),
    ).length;

    const bad: unknown[] = [
      'not json',
      { v: 2, type: 'heartbeat', sent_at: new Date().toISOString() },
      { v: 1, type: 'launch_missiles' },
      { v: 1, type: 'pull', max: 11 },
      // A result without its status, and one with an unknown status: nothing changes.
      {
        v: 1,
        type: 'command_result',
        command_id: queued.id,
        receipt: command!.receipt,
        finished_at: new Date().toISOString(),
      },
      { ...result(command!), status: 'done' },
      // Unauthorized: another hostname's hello, a command that does not exist.
      { v: 1, type: 'hello', hostname: agentB.hostname, agent_version: '1', drivers: [] },
      result({ ...command!, id: 'no-such-command' }),
    ];
    for (const message of bad) {
      socket.send(message);
      const error = await socket.next('error');
      expect(error.message.length).toBeGreaterThan(0);
    }
    expect(
      stack.logs.filter((line) => line.message.startsWith('agent message refused')).length - refusedBefore,
    ).toBe(bad.length);
    expect(await record(nodeA1, queued.id)).toMatchObject({ status: 'delivered', result: null });
    const hostnames = (await stack.api.call('GET', `/v1/agents/${agentB.hostname}`)).body;
    expect(hostnames.hostname).toBe(agentB.hostname);
    socket.send(result(command!));
    await waitFor(
      async () => ((await record(nodeA1, queued.id)).status === 'succeeded' ? true : undefined),
      'done',
    );
    await socket.close();
  });

  it('refuses sockets without a valid agent credential (401), and a credential in the query string', async () => {
    await expect(stack.connect(undefined)).rejects.toMatchObject({ status: 401 });
    await expect(stack.connect('mpa_not-a-credential')).rejects.toMatchObject({ status: 401 });
    const forged = `${agentA.credential.slice(0, -4)}AAAA`;
    await expect(stack.connect(forged)).rejects.toMatchObject({ status: 401 });
    const token = await stack.api.call('POST', `/v1/users/${stack.api.admin.username}/tokens`);
    await expect(stack.connect(token.body.token)).rejects.toMatchObject({ status: 401 });
    await expect(
      stack.connect(undefined, { query: `?token=${encodeURIComponent(agentA.credential)}` }),
    ).rejects.toMatchObject({ status: 401 });
  });
});

describe('one site per agent', () => {
  it("an agent of site A cannot pull, ack or finish site B's commands", async () => {
    const socketA = await stack.connect(agentA.credential);
    const socketB = await stack.connect(agentB.credential);
    await drain(socketA);
    await drain(socketB);
    const queued = await enqueue(nodeB1, 'noop');
    await socketB.next('wake');
    expect(await socketA.pull()).toStrictEqual([]);
    const [command] = await socketB.pull();
    expect(command?.id).toBe(queued.id);

    socketA.send({ v: 1, type: 'command_ack', command_id: command!.id, receipt: command!.receipt });
    expect((await socketA.next('error')).message).toMatch(/not a command of site ch-a/);
    socketA.send(result(command!));
    expect((await socketA.next('error')).message).toMatch(/not a command of site ch-a/);
    expect(await record(nodeB1, queued.id)).toMatchObject({ status: 'delivered', result: null });
    expect(await queueDepth('ch-b')).toBe(1);

    // Over HTTPS too.
    const ack = await stack.asAgent(agentA.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'command_ack',
      command_id: command!.id,
      receipt: command!.receipt,
    });
    expect(ack.status).toBe(403);
    const polled = await stack.asAgent(agentA.credential, 'GET', '/v1/agent/commands?wait=0');
    expect(polled.body).toStrictEqual({ v: 1, type: 'commands', commands: [] });

    socketB.send(result(command!));
    await waitFor(
      async () => ((await record(nodeB1, queued.id)).status === 'succeeded' ? true : undefined),
      'done',
    );
    await socketA.close();
    await socketB.close();
  });

  it("an agent reads its own site's nodes with their secrets, and no other site's nodes", async () => {
    const own = await stack.asAgent(agentA.credential, 'GET', `/v1/agent/nodes/${nodeA1}`);
    expect(own.status).toBe(200);
    expect(own.body.driver_info).toStrictEqual({ ipmi_address: '10.0.0.1', ipmi_password: 'secret-a1' });
    expect((await stack.asAgent(agentA.credential, 'GET', '/v1/agent/nodes/ch-a-node-1')).status).toBe(200);
    const foreign = await stack.asAgent(agentA.credential, 'GET', `/v1/agent/nodes/${nodeB1}`);
    expect(foreign.status).toBe(404);
    expect((await stack.asAgent(agentA.credential, 'GET', '/v1/agent/nodes/ch-b-node-1')).status).toBe(404);
    // The Ironic API is not for agents at all.
    for (const path of [
      `/v1/nodes/${nodeB1}`,
      `/v1/nodes/${nodeA1}`,
      '/v1/nodes',
      `/v1/nodes/${nodeB1}/commands`,
      '/v1/sites',
    ]) {
      expect((await stack.asAgent(agentA.credential, 'GET', path)).status, path).toBe(403);
    }
    // A user, even an admin, gets no secrets and no agent routes.
    const masked = await stack.api.call('GET', `/v1/nodes/${nodeA1}`);
    expect(masked.body.driver_info.ipmi_password).toBe('******');
    expect((await stack.api.call('GET', `/v1/agent/nodes/${nodeA1}`)).status).toBe(403);
    expect((await stack.api.call('GET', '/v1/agent/commands?wait=0')).status).toBe(403);
  });
});

describe('HTTPS long polling', () => {
  it('carries the same messages: poll → commands → ack → result', async () => {
    const queued = await enqueue(nodeB1, 'sleep', { args: { ms: 1 } });
    const polled = await stack.asAgent(agentB.credential, 'GET', '/v1/agent/commands?wait=1&max=10');
    expect(polled.status).toBe(200);
    expect(polled.body.type).toBe('commands');
    const [command] = polled.body.commands as Command[];
    expect(command).toMatchObject({ id: queued.id, action: 'sleep', attempt: 1 });
    const ack = await stack.asAgent(agentB.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'command_ack',
      command_id: command!.id,
      receipt: command!.receipt,
    });
    expect(ack.status).toBe(204);
    expect((await record(nodeB1, queued.id)).status).toBe('running');
    const done = await stack.asAgent(agentB.credential, 'POST', '/v1/agent/messages', result(command!));
    // The result is held: the answer says so (the agent may forget it).
    expect(done).toMatchObject({ status: 200, body: { v: 1, type: 'result_ack', command_id: queued.id } });
    expect(await record(nodeB1, queued.id)).toMatchObject({ status: 'succeeded' });
    expect(await queueDepth('ch-b')).toBe(0);
    const malformed = await stack.asAgent(
      agentB.credential,
      'POST',
      '/v1/agent/messages',
      undefined,
      '{"v":1',
    );
    expect(malformed.status).toBe(400);
    const pulled = await stack.asAgent(agentB.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'pull',
      max: 5,
    });
    expect(pulled).toMatchObject({ status: 200, body: { v: 1, type: 'commands', commands: [] } });
  });

  it('waits for a command queued during the poll and answers as soon as it is', async () => {
    // Queue the command once the poll's long receive is on its way to SQS, not after a guess.
    let receiving: () => void = () => {};
    const receiveSent = new Promise<void>((resolve) => {
      receiving = resolve;
    });
    // What each long receive brought back: the answer must come from the receive that was
    // waiting when the command was queued, with nothing waited for after it.
    const longReceives: number[] = [];
    stack.runtimeSqs.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { WaitTimeSeconds?: number };
        if (context.commandName !== 'ReceiveMessageCommand' || (input.WaitTimeSeconds ?? 0) === 0)
          return next(args);
        receiving();
        const output = await next(args);
        longReceives.push((output.output as { Messages?: unknown[] }).Messages?.length ?? 0);
        return output;
      },
      { step: 'finalizeRequest', name: 'watchLongPoll' },
    );
    try {
      const poll = stack.asAgent(agentB.credential, 'GET', '/v1/agent/commands?wait=20&max=10');
      let answered = false;
      void poll.finally(() => {
        answered = true;
      });
      await receiveSent;
      expect(answered).toBe(false);
      const queued = await enqueue(nodeB1, 'noop');
      const polled = await poll;
      expect(polled.body.commands.map((command: Command) => command.id)).toStrictEqual([queued.id]);
      // One long receive, which brought the command: the poll answered with it rather than
      // waiting on (another receive, or the rest of its 20 s) for more.
      expect(longReceives).toEqual([1]);
      const done = await stack.asAgent(
        agentB.credential,
        'POST',
        '/v1/agent/messages',
        result(polled.body.commands[0]),
      );
      expect(done).toMatchObject({ status: 200, body: { type: 'result_ack' } });
    } finally {
      stack.runtimeSqs.middlewareStack.remove('watchLongPoll');
    }
  });

  it('refuses bad parameters', async () => {
    for (const query of ['wait=21', 'max=0', 'max=11', 'wait=x', 'other=1']) {
      expect(
        (await stack.asAgent(agentB.credential, 'GET', `/v1/agent/commands?${query}`)).status,
        query,
      ).toBe(400);
    }
  });
});

describe('heartbeats', () => {
  const hello = (hostname: string, protocol = PROTOCOL_VERSION) => ({
    v: 1,
    type: 'hello',
    hostname,
    agent_version: '9.9.9',
    drivers: ['fake-hardware'],
    protocol_version: protocol,
    features: [...CURRENT_FEATURES],
  });
  const heartbeat = () => ({ v: 1, type: 'heartbeat', sent_at: new Date().toISOString() });
  const stored = (hostname: string) => stack.store!.getWithSides<Record<string, unknown>>('agent', hostname);
  const LONG_AGO = '2020-01-01T00:00:00.000000+00:00';
  const setSide = (hostname: string, attributes?: Record<string, unknown>) =>
    stack.store!.write([
      {
        type: 'side',
        side: { kind: 'agent', id: hostname, name: 'heartbeat' },
        ...(attributes ? { attributes } : {}),
      },
    ]);

  it("a heartbeat writes the agent's heartbeat item only, never its indexed record; reads show the latest", async () => {
    const agent = await stack.enroll('ch-b', 'ch-b-beating');
    const socket = await stack.connect(agent.credential);
    socket.send(hello(agent.hostname));
    await socket.next('welcome');
    const welcomed = await stored(agent.hostname);
    // The hello wrote the record and the heartbeat item, which learned the protocol.
    expect(welcomed.sides.get('heartbeat')).toMatchObject({
      protocol_version: PROTOCOL_VERSION,
      last_heartbeat: welcomed.item?.doc.last_heartbeat,
    });
    // An old heartbeat item, so that the heartbeat's write shows.
    await setSide(agent.hostname, { protocol_version: PROTOCOL_VERSION, last_heartbeat: LONG_AGO });
    socket.send(heartbeat());
    const beaten = await waitFor(async () => {
      const now = await stored(agent.hostname);
      return now.sides.get('heartbeat')?.last_heartbeat !== LONG_AGO ? now : undefined;
    }, 'the heartbeat item to be written');
    // The record (in three indexes) is as the hello left it: same version, same document.
    expect(beaten.item).toStrictEqual(welcomed.item);
    const at = beaten.sides.get('heartbeat')?.last_heartbeat as string;
    expect(Date.parse(at)).toBeGreaterThanOrEqual(Date.parse(welcomed.item?.doc.last_heartbeat as string));
    // One agent, a listing, the repository: each the heartbeat item's time, alive.
    const shown = (await stack.api.call('GET', `/v1/agents/${agent.hostname}`)).body;
    expect(shown).toMatchObject({ alive: true, last_heartbeat: at });
    const listed = (await stack.api.call('GET', '/v1/agents?site=ch-b')).body;
    const inList = (listed.agents as Array<Record<string, unknown>>).find(
      (one) => one.hostname === agent.hostname,
    );
    expect(inList).toMatchObject({ alive: true, last_heartbeat: at });
    expect(
      (await stack.runtime.credentials.agents.all()).find((one) => one.hostname === agent.hostname),
    ).toMatchObject({ last_heartbeat: at });
    await socket.close();
  });

  it('a heartbeat with no heartbeat item yet (a connection older than them) is taken from the record, which writes the item', async () => {
    const agent = await stack.enroll('ch-b', 'ch-b-older');
    const socket = await stack.connect(agent.credential);
    socket.send(hello(agent.hostname));
    await socket.next('welcome');
    await setSide(agent.hostname);
    const before = await stored(agent.hostname);
    expect(before.sides.has('heartbeat')).toBe(false);
    socket.send(heartbeat());
    const after = await waitFor(async () => {
      const now = await stored(agent.hostname);
      return now.sides.has('heartbeat') ? now : undefined;
    }, 'the heartbeat item to be written');
    expect(after.item?.version).toBe((before.item?.version ?? 0) + 1);
    expect(after.sides.get('heartbeat')).toMatchObject({
      protocol_version: PROTOCOL_VERSION,
      last_heartbeat: after.item?.doc.last_heartbeat,
    });
    await socket.close();
  });

  it('the heartbeat of an agent whose protocol is not served is refused, and it is not alive', async () => {
    const agent = await stack.enroll('ch-b', 'ch-b-ancient');
    const socket = await stack.connect(agent.credential);
    socket.send(hello(agent.hostname, PROTOCOL_VERSION - 2));
    await socket.next('error');
    await waitFor(() => socket.closed, 'the socket to be closed');
    expect((await stored(agent.hostname)).sides.get('heartbeat')).toMatchObject({
      protocol_version: PROTOCOL_VERSION - 2,
    });
    const refused = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', heartbeat());
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toContain('is too old');
    expect((await stack.api.call('GET', `/v1/agents/${agent.hostname}`)).body).toMatchObject({
      alive: false,
      last_heartbeat: null,
    });
  });

  it("an agent's deletion takes its heartbeat item with it", async () => {
    const agent = await stack.enroll('ch-b', 'ch-b-leaving');
    const socket = await stack.connect(agent.credential);
    socket.send(hello(agent.hostname));
    await socket.next('welcome');
    await socket.close();
    expect((await stored(agent.hostname)).sides.has('heartbeat')).toBe(true);
    expect((await stack.api.call('DELETE', `/v1/agents/${agent.hostname}`)).status).toBe(204);
    const gone = await stored(agent.hostname);
    expect(gone.item).toBeUndefined();
    expect(gone.sides.size).toBe(0);
  });
});
