/**
 * An agent's channel message holds 128 KiB (API Gateway's WebSocket limit, and the
 * agent's `maxPayload`): a pull answers the commands that fit, in order, releases the
 * others to the queue at once (they come with the next pull, not a visibility timeout
 * later), and fails a command that could never fit, saying why. Large commands are real:
 * a config drive travels in `ramdisk.write_configdrive`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../protocol/messages.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

const SITE = 'reply-size';
let stack: ChannelStack;

beforeAll(async () => {
  stack = await startChannel({ visibilityTimeoutSeconds: 600 });
  expect((await stack.createSite(SITE)).status).toBe(201);
});

afterAll(() => stack?.close());

const padding = (bytes: number) => 'x'.repeat(bytes);

describe('a pull whose commands do not fit in one message', () => {
  it('answers those that fit, hands the rest to the next pull at once, fails one that never fits', async () => {
    const nodes = await Promise.all([0, 1, 2, 3].map((i) => stack.createNode(SITE, { name: `size-${i}` })));
    const queue = stack.runtime.queue;
    const big = (node: string) =>
      queue.enqueue({
        node,
        site: SITE,
        action: 'noop',
        args: { pad: padding(50_000) },
        maxArgsBytes: 256 * 1024,
      });
    const first = await big(nodes[0] as string);
    const second = await big(nodes[1] as string);
    const third = await big(nodes[2] as string);
    const huge = await queue.enqueue({
      node: nodes[3] as string,
      site: SITE,
      action: 'noop',
      args: { pad: padding(MAX_MESSAGE_BYTES) },
      maxArgsBytes: 256 * 1024,
    });

    const answer = await queue.receive(SITE, { max: 10 });
    expect(answer.map((command) => command.id)).toEqual([first.id, second.id]);
    expect(
      Buffer.byteLength(JSON.stringify({ v: 1, type: 'commands', commands: answer })),
    ).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);

    // Released, not hidden for the 600 s visibility timeout: the next pull has it.
    const next = await queue.receive(SITE, { max: 10 });
    expect(next.map((command) => command.id)).toEqual([third.id]);

    const failed = (await stack.runtime.commands.get(huge.id))?.command;
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(/^The command is \d+ bytes, more than an agent's message carries/);
  });
});
