/**
 * The stuck command of issue 11, pinned at its two causes.
 *
 * Seen under load in the chaos test: a command stayed `running` (attempts 1) forever,
 * never redelivered and never expired. The agent's `command_ack` and `command_result`
 * for one command are two WebSocket messages, handled by two concurrent invocations; the
 * ack's conditional write (queued|delivered|running → running) and the result's
 * (→ failed) both passed their condition in moto, which applied the result and then the
 * ack attribute by attribute. The record ended `running` with its result set, the result's
 * path had deleted the queue message (no redelivery) and taken the command out of the
 * tick's byOpen index (no expiry).
 *
 * - The emulator now isolates requests as DynamoDB does (local/moto_shim.py; the race
 *   itself is `local-aws.test.ts`): a late ack can no longer reopen a finished command.
 *   Here: an ack that arrives after the result, in exactly that order, changes nothing.
 * - `settle` (leaving byOpen) now applies to finished commands only, so whatever reopens
 *   a command can never also hide it from the tick: an open command that was settled is
 *   still expired at its deadline, with its node's `last_error`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleAgentMessage } from '../../lambda/agents/channel.ts';
import { tick } from '../../lambda/conductor/tick.ts';
import type { Command } from '../../protocol/messages.ts';
import { type AgentSocket, type ChannelStack, startChannel, waitFor } from '../support/channel.ts';

let stack: ChannelStack;
let socket: AgentSocket;
let node: string;

beforeAll(async () => {
  stack = await startChannel({ visibilityTimeoutSeconds: 2 });
  expect((await stack.createSite('late-ack')).status).toBe(201);
  const agent = await stack.enroll('late-ack', 'late-ack-agent');
  node = await stack.createNode('late-ack', { name: 'late-ack-node' });
  socket = await stack.connect(agent.credential);
});

afterAll(() => stack?.close());

async function enqueue(extra: Record<string, unknown> = {}): Promise<string> {
  const queued = await stack.api.call('POST', `/v1/nodes/${node}/commands`, {
    body: { action: 'noop', ...extra },
  });
  expect(queued.status).toBe(202);
  return queued.body.id as string;
}

async function stored(id: string) {
  const found = await stack.runtime.commands.get(id);
  if (!found) throw new Error(`command ${id} not stored`);
  return found;
}

/** Whether the tick's index still holds the command (it looks far ahead in time). */
async function inTickIndex(id: string): Promise<boolean> {
  const future = new Date(Date.now() + 2 * 86_400_000).toISOString();
  const open = await stack.runtime.commands.overdue(future, 1000);
  return open.some(({ command }) => command.id === id);
}

async function pullOne(id: string): Promise<Command> {
  const commands = await socket.pull();
  const command = commands.find((c) => c.id === id);
  if (!command) throw new Error(`command ${id} not delivered: ${JSON.stringify(commands)}`);
  return command;
}

describe('the stuck command: a late ack, and settle racing a result', () => {
  it('an ack that arrives after the result leaves the command finished, out of the tick, its message gone', async () => {
    const id = await enqueue();
    const command = await pullOne(id);
    socket.send({
      v: 1,
      type: 'command_result',
      command_id: id,
      receipt: command.receipt,
      status: 'failed',
      error: 'the BMC said no',
      finished_at: new Date().toISOString(),
    });
    await waitFor(
      async () => ((await stored(id)).command.status === 'failed' ? true : undefined),
      'the result to be stored',
    );
    await waitFor(async () => ((await inTickIndex(id)) ? undefined : true), 'the command to be settled');

    // The ack, in exactly the order that stuck a command: after its result, handled by
    // the agents Lambda's own message handler (awaited, so the order is certain).
    const outcome = await handleAgentMessage(
      stack.runtime,
      { hostname: 'late-ack-agent', site: 'late-ack', credentialId: 'test', credentialExpiresAt: null },
      JSON.stringify({ v: 1, type: 'command_ack', command_id: id, receipt: command.receipt }),
      'websocket',
    );
    expect(outcome.kind).toBe('handled');

    const after = await stored(id);
    expect(after.command).toMatchObject({ status: 'failed', error: 'the BMC said no', attempts: 1 });
    expect(await inTickIndex(id)).toBe(false);
    // And nothing comes back: the message was deleted, the node's next command flows.
    const next = await enqueue();
    expect((await pullOne(next)).attempt).toBe(1);
    socket.send({
      v: 1,
      type: 'command_result',
      command_id: next,
      receipt: (await stored(next)).receipt,
      status: 'succeeded',
      finished_at: new Date().toISOString(),
    });
    await waitFor(
      async () => ((await stored(next)).command.status === 'succeeded' ? true : undefined),
      'the next command to finish',
    );
  });

  it('an open command that was settled stays in the tick’s index and expires at its deadline', async () => {
    const id = await enqueue({ deadline_seconds: 1 });
    const command = await pullOne(id);
    socket.send({ v: 1, type: 'command_ack', command_id: id, receipt: command.receipt });
    await waitFor(
      async () => ((await stored(id)).command.status === 'running' ? true : undefined),
      'running',
    );
    // What the race did: the result's settle landing on a command that is open again.
    await stack.runtime.commands.settle(id);
    expect(await inTickIndex(id)).toBe(true);

    const expired = await waitFor(async () => {
      await tick(stack.runtime);
      const { command: now } = await stored(id);
      return now.status === 'expired' ? now : undefined;
    }, 'the tick to expire it');
    expect(expired.error).toMatch(/expired: no result from the agent/);
    const shown = await stack.api.call('GET', `/v1/nodes/${node}`);
    expect(shown.body.last_error).toBe(expired.error);
  });
});
