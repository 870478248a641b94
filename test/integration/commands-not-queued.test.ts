/**
 * A task's command that never reached its queue (`SendMessage` failed after the record
 * was written), and the node's lock whose undo failed too: the chaos harness's seeds
 * 33218 and 33224 (`npm run chaos`) left such a node locked forever. The queue had
 * settled the failed record at once, so the tick never looked at it again, and the
 * conductor's undo of the lock had failed (its write hit the injected `result→node`).
 *
 * Now the record stays in the tick's index (unsettled) when it fails unqueued, and the
 * tick's recheck hands it to the conductor, whose task handler ends the task and the
 * lock. Faults are injected at the exact calls (the runtime's SQS client, the node
 * repository's `modify`), not by timing.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tick } from '../../lambda/conductor/tick.ts';
import { NOT_QUEUED } from '../../lambda/domain/commands/command.ts';
import { createControlPlane as createAgentRuntime } from '../../lambda/runtime.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

let stack: ChannelStack;

beforeAll(async () => {
  stack = await startChannel();
  expect((await stack.createSite('unqueued')).status).toBe(201);
});

afterAll(() => stack?.close());

/** The next `SendMessage` of the control plane fails (once), as an SQS outage would. */
function failNextSend(): void {
  const client = stack.runtimeSqs;
  const send = client.send.bind(client) as (command: unknown) => Promise<unknown>;
  let armed = true;
  (client as { send: unknown }).send = (command: unknown) => {
    if (armed && command instanceof SendMessageCommand) {
      armed = false;
      (client as { send: unknown }).send = send;
      return Promise.reject(new Error('injected: SendMessage failed'));
    }
    return send(command);
  };
}

/** The next `modify` of a node (the conductor's undo of the lock) fails (once). */
function failNextNodeModify(): void {
  const nodes = stack.runtime.provisioning.nodes;
  const modify = nodes.modify.bind(nodes);
  nodes.modify = () => {
    nodes.modify = modify;
    return Promise.reject(new Error('injected: node write failed'));
  };
}

async function stored(node: string) {
  const found = await stack.runtime.provisioning.nodes.get(node);
  if (!found) throw new Error(`node ${node} not found`);
  return found.node;
}

async function lastCommand(node: string) {
  const [latest] = (await stack.runtime.commands.ofNode(node, 1)).commands;
  if (!latest) throw new Error(`node ${node} has no command`);
  return latest;
}

/** Whether the tick's index still holds the command (looking far ahead in time). */
async function inTickIndex(id: string): Promise<boolean> {
  const future = new Date(Date.now() + 2 * 86_400_000).toISOString();
  return (await stack.runtime.commands.overdue(future, 1000)).some(({ command }) => command.id === id);
}

/** One tick on a clock past the recheck of unsettled commands (120 s). */
async function tickAfterRecheck(): Promise<void> {
  const later = createAgentRuntime({
    store: stack.store,
    sqs: stack.runtimeSqs,
    now: () => new Date(Date.now() + 10 * 60_000),
  });
  await tick(later);
}

describe('a task command that could not be queued', () => {
  it('whose lock could not be undone either: the tick ends the task, the node is unlocked with last_error', async () => {
    const node = await stack.createNode('unqueued', { name: 'unqueued-stuck' });
    failNextSend();
    failNextNodeModify();
    const answer = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
      body: { target: 'power on' },
    });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    // The fault as the chaos run saw it: locked, its command failed unqueued.
    const locked = await stored(node);
    expect(locked.reservation).not.toBeNull();
    const command = await lastCommand(node);
    expect(command.id).toBe(locked.task?.command);
    expect(command.status).toBe('failed');
    expect(command.attempts).toBe(0);
    expect(command.error?.startsWith(NOT_QUEUED)).toBe(true);
    expect(await inTickIndex(command.id)).toBe(true);

    await tickAfterRecheck();
    const after = await stored(node);
    expect(after.reservation).toBeNull();
    expect(after.task).toBeNull();
    expect(after.target_power_state).toBeNull();
    expect(after.last_error).toContain('injected: SendMessage failed');
    expect(await inTickIndex(command.id)).toBe(false);
  });

  it('whose lock was undone: the node is unlocked at once, and the recheck writes no last_error', async () => {
    const node = await stack.createNode('unqueued', { name: 'unqueued-undone' });
    failNextSend();
    const answer = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
      body: { target: 'power on' },
    });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    const undone = await stored(node);
    expect(undone.reservation).toBeNull();
    expect(undone.target_power_state).toBeNull();
    const command = await lastCommand(node);
    expect(command.status).toBe('failed');
    expect(await inTickIndex(command.id)).toBe(true);

    await tickAfterRecheck();
    expect((await stored(node)).last_error).toBeNull();
    expect(await inTickIndex(command.id)).toBe(false);
  });
});

/** The next `update` of a node (the lock) fails once; `applied`: after DynamoDB took it (a lost answer). */
function failNextNodeUpdate(applied: boolean): void {
  const nodes = stack.runtime.provisioning.nodes;
  const update = nodes.update.bind(nodes);
  nodes.update = async (...args: Parameters<typeof update>) => {
    nodes.update = update;
    if (applied) await update(...args);
    throw new Error('injected: the lock write failed');
  };
}

describe('a task command whose lock write failed', () => {
  it('not applied: no record is left, the node stays free and blameless', async () => {
    const node = await stack.createNode('unqueued', { name: 'unqueued-lock-lost' });
    failNextNodeUpdate(false);
    const answer = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
      body: { target: 'power on' },
    });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    expect((await stored(node)).reservation).toBeNull();
    // The record is written in the lock's transaction: neither was.
    expect((await stack.runtime.commands.ofNode(node, 10)).commands).toEqual([]);
    await tickAfterRecheck();
    expect((await stored(node)).last_error).toBeNull();
  });

  it('refused (a concurrent change at every try): a 409, and no lock nor record is written', async () => {
    const node = await stack.createNode('unqueued', { name: 'unqueued-lock-refused' });
    const nodes = stack.runtime.provisioning.nodes;
    const update = nodes.update.bind(nodes);
    let changes = 0;
    // Someone changes the node between the conductor's read and its lock, every time.
    nodes.update = async (...args: Parameters<typeof update>) => {
      changes++;
      const current = await nodes.get(node);
      if (!current) throw new Error(`node ${node} is gone`);
      await update(current.node, { ...current.node, extra: { touched: changes } }, current.version);
      return update(...args);
    };
    try {
      const answer = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
        body: { target: 'power on' },
      });
      expect(answer.status).toBe(409);
    } finally {
      nodes.update = update;
    }
    expect(changes).toBeGreaterThan(1);
    const after = await stored(node);
    expect(after.reservation).toBeNull();
    expect(after.extra).toEqual({ touched: changes });
    expect((await stack.runtime.commands.ofNode(node, 10)).commands).toEqual([]);
  });

  it('applied, its answer lost: the tick ends the task the lock names, with last_error', async () => {
    const node = await stack.createNode('unqueued', { name: 'unqueued-lock-applied' });
    failNextNodeUpdate(true);
    const answer = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
      body: { target: 'power on' },
    });
    expect(answer.status).toBeGreaterThanOrEqual(500);
    const locked = await stored(node);
    const command = await lastCommand(node);
    expect(locked.task?.command).toBe(command.id);
    expect(command.status).toBe('failed');
    await tickAfterRecheck();
    const after = await stored(node);
    expect(after.reservation).toBeNull();
    expect(after.task).toBeNull();
    expect(after.last_error).toContain("the node's lock was not taken");
  });
});

describe('a task moved on to a command that was never recorded', () => {
  /** The node locked by a task awaiting `awaited`, started `ageMs` ago; and the finished command before it. */
  async function orphan(name: string, awaited: string, ageMs: number) {
    const node = await stack.createNode('unqueued', { name });
    const found = await stack.runtime.provisioning.nodes.get(node);
    if (!found) throw new Error('node not stored');
    const startedAt = new Date(Date.now() - ageMs).toISOString();
    await stack.runtime.provisioning.nodes.update(
      found.node,
      {
        ...found.node,
        reservation: 'unqueued-agent',
        task: { command: awaited, action: 'power.set', started_at: startedAt, args: { target: 'power on' } },
      },
      found.version,
    );
    const previous = await stack.runtime.queue.record({ node, site: 'unqueued', action: 'noop' });
    return { node, previous: { ...previous, status: 'succeeded' as const, attempts: 1 } };
  }

  it('past a minute: the recheck of the command before it ends the task, with last_error', async () => {
    const { node, previous } = await orphan('unqueued-orphan', crypto.randomUUID(), 5 * 60_000);
    await stack.runtime.conductor.finished(previous);
    const after = await stored(node);
    expect(after.reservation).toBeNull();
    expect(after.task).toBeNull();
    expect(after.last_error).toContain('the conductor stopped before recording it');
  });

  it('younger than a minute, or awaiting a recorded command: untouched', async () => {
    const young = await orphan('unqueued-young', crypto.randomUUID(), 0);
    await stack.runtime.conductor.finished(young.previous);
    expect((await stored(young.node)).task).not.toBeNull();

    const recorded = await stack.runtime.queue.record({ node: young.node, site: 'unqueued', action: 'noop' });
    const real = await orphan('unqueued-recorded', recorded.id, 5 * 60_000);
    await stack.runtime.conductor.finished(real.previous);
    expect((await stored(real.node)).task?.command).toBe(recorded.id);
  });
});
