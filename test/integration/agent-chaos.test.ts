/**
 * No command lost and none executed twice while the real agent is killed (SIGKILL) at
 * random points of commands' lives: the real control plane (API, agents Lambda behind
 * the local WebSocket gateway, SQS FIFO and DynamoDB on moto) and the real agent process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { createAgentsHandler } from '../../lambda/agents/handler.ts';
import { tick } from '../../lambda/conductor/handler.ts';
import { startWebSocketGateway, type WebSocketGateway } from '../../local/ws-gateway.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

const NODES = 10;
const COMMANDS = 200;
const KILL_EVERY = 20;
/**
 * A command whose message SQS moves to the dead-letter queue (10 receives, which a
 * command in flight through many kills can reach) ends only by expiring: the conductor
 * tick runs here as on AWS, and such a command ends `expired`, never lost.
 */
const DEADLINE_SECONDS = 60;

let stack: ChannelStack;
let agent: AgentProcess;
let restarted: WebSocketGateway | undefined;
const started: string[] = [];

function harvest(): void {
  for (const line of agent.lines('command started')) started.push(String(line.command_id));
}

beforeAll(async () => {
  // A short visibility timeout, so a delivery cut by a kill comes back within seconds.
  stack = await startChannel({ visibilityTimeoutSeconds: 2 });
  expect((await stack.createSite('chaos')).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await agent?.cleanup();
  await restarted?.close();
  await stack?.close();
});

describe('agent killed at random, control plane restarted', () => {
  it(`${COMMANDS} commands on ${NODES} nodes through SIGKILLs: every one ends, none runs twice, each node in order`, async () => {
    const nodes = await Promise.all(Array.from({ length: NODES }, () => stack.createNode('chaos')));
    const { credential } = await stack.enroll('chaos', 'test-agent');
    agent = new AgentProcess().writeConfig(
      testConfig({ url: stack.api.url, websocketUrl: stack.gateway.url }),
    );
    await agent.writeCredential(credential);
    await agent.start();

    const random = (() => {
      let state = 7;
      return () => {
        state = (state * 1103515245 + 12345) % 2 ** 31;
        return state / 2 ** 31;
      };
    })();
    const issued: Array<{ id: string; node: string }> = [];
    for (let i = 0; i < COMMANDS; i++) {
      const node = nodes[Math.floor(random() * NODES)] as string;
      const created = await stack.api.call('POST', `/v1/nodes/${node}/commands`, {
        body: {
          action: 'sleep',
          args: { ms: 20 + Math.floor(random() * 100) },
          deadline_seconds: DEADLINE_SECONDS,
        },
      });
      expect(created.status).toBe(202);
      issued.push({ id: created.body.id, node });
      if (i === COMMANDS / 2) {
        // The control plane's WebSocket side restarts: every socket drops, commands keep
        // being accepted meanwhile, and the agent reconnects to the new gateway.
        const port = stack.gateway.port;
        await stack.gateway.close();
        await new Promise((resolve) => setTimeout(resolve, 300));
        restarted = await startWebSocketGateway({
          handler: createAgentsHandler(() => stack.runtime),
          port,
          log: () => undefined,
        });
      }
      if (i % KILL_EVERY === KILL_EVERY - 1) {
        // Let some work be in flight, then cut it at a random point.
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 150)));
        await agent.kill('SIGKILL');
        harvest(); // every line the killed process wrote, up to its death
        await agent.start();
      }
    }

    const terminal = new Set(['succeeded', 'failed', 'expired']);
    const ticker = setInterval(() => void tick(stack.runtime).catch(() => undefined), 2000);
    const describeOpen = async () => {
      const all = await Promise.all(
        issued.map(
          async ({ id, node }) => (await stack.api.call('GET', `/v1/nodes/${node}/commands/${id}`)).body,
        ),
      );
      return JSON.stringify(
        all
          .filter((r) => !terminal.has(r.status))
          .map((r) => ({ id: r.id, node: r.node, status: r.status, attempts: r.attempts })),
      );
    };
    const records = await waitFor(
      async () => {
        const all = await Promise.all(
          issued.map(
            async ({ id, node }) => (await stack.api.call('GET', `/v1/nodes/${node}/commands/${id}`)).body,
          ),
        );
        return all.every((record) => terminal.has(record.status)) ? all : undefined;
      },
      'every command to succeed or fail',
      150_000,
    )
      .finally(() => clearInterval(ticker))
      .catch(async (error: Error) => {
        const open = await describeOpen();
        harvest();
        throw new Error(
          `${error.message}; still open: ${open}; agent log tail: ${JSON.stringify(agent.logs.slice(-15))}`,
        );
      });
    harvest();

    process.stdout.write(
      `chaos: ${records.filter((r) => r.status === 'expired').length} expired, ${started.length} starts, ${records.filter((r) => r.status === 'failed').length} failed, attempts>1: ${records.filter((r) => r.attempts > 1).length}\n`,
    );
    // Nothing lost: every accepted command ended, and most ran to success.
    expect(records).toHaveLength(COMMANDS);
    // The kills did cut deliveries: some commands came back for another attempt.
    expect(records.some((record) => record.attempts > 1)).toBe(true);
    const expired = records.filter((record) => record.status === 'expired');
    expect(expired.length).toBeLessThanOrEqual(COMMANDS / 50);
    const failed = records.filter((record) => record.status === 'failed');
    for (const record of failed) expect(record.error).toMatch(/interrupted|deadline|timed out/);
    expect(failed.length).toBeLessThan(COMMANDS / 4);
    // At most once: no command started twice across all the agent's lives.
    const counts = new Map<string, number>();
    for (const id of started) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect([...counts.entries()].filter(([, count]) => count > 1)).toStrictEqual([]);
    // Per node, commands started in the order they were accepted.
    for (const node of nodes) {
      const order = issued.filter((command) => command.node === node).map((command) => command.id);
      const startedOrder = started.filter((id) => order.includes(id));
      const positions = startedOrder.map((id) => order.indexOf(id));
      expect(positions).toStrictEqual([...positions].sort((a, b) => a - b));
    }
  }, 240_000);
});
