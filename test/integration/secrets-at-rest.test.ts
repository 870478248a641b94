/**
 * BMC secrets sealed at rest with KMS (moto's), end to end: the real api and agents
 * handlers, a `ws` client playing the site's agent. Whatever the API is given, no table
 * item (nodes, history, commands, connections) and no log line holds a secret in clear;
 * the agent alone receives them, opened, over its authenticated channel.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandsTable, connectionsTable, inventoryTable } from '../../infra/resources.ts';
import { documentClient } from '../../lambda/adapters/dynamo/client.ts';
import { isSealed } from '../../lambda/domain/auth/sealing.ts';
import {
  type AgentSocket,
  type ChannelStack,
  type EnrolledAgent,
  startChannel,
  waitFor,
} from '../support/channel.ts';

const SITE = 'vault';
let stack: ChannelStack;
let agent: EnrolledAgent;
let socket: AgentSocket;
/** Distinct per run, so a match can only be a leak of this run's values. */
const tag = Math.random().toString(36).slice(2, 10);
const SECRETS = {
  bmcPassword: `bmc-pass-${tag}`,
  nestedToken: `nested-token-${tag}`,
  configdrive: `configdrive-${tag}`,
  commandPassword: `cmd-pass-${tag}`,
};

/** Every item of the three tables, and every log line, as one text. */
async function everythingStored(): Promise<string> {
  const db = documentClient();
  const items: unknown[] = [];
  for (const table of [inventoryTable, commandsTable, connectionsTable]) {
    let start: Record<string, unknown> | undefined;
    for (let page = 0; page < 1000; page++) {
      const answer = await db.send(
        new ScanCommand({
          TableName: process.env[table.envVar],
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      items.push(...(answer.Items ?? []));
      start = answer.LastEvaluatedKey;
      if (!start) break;
    }
  }
  return JSON.stringify({ items, logs: stack.logs, gateway: stack.gatewayLogs });
}

function expectNoSecretIn(text: string): void {
  for (const secret of Object.values(SECRETS)) {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(Buffer.from(secret).toString('base64'));
  }
}

beforeAll(async () => {
  stack = await startChannel({ auth: 'basic' });
  expect((await stack.createSite(SITE)).status).toBe(201);
  agent = await stack.enroll(SITE, 'vault-agent');
  socket = await stack.connect(agent.credential);
  socket.send({
    v: 1,
    type: 'hello',
    hostname: agent.hostname,
    agent_version: '0.1.0',
    drivers: ['fake-hardware'],
  });
});

afterAll(() => stack?.close());

async function node(extra: Record<string, unknown> = {}): Promise<string> {
  return stack.createNode(SITE, {
    driver_info: {
      ipmi_address: '10.1.2.3',
      ipmi_username: 'root',
      ipmi_password: SECRETS.bmcPassword,
      extra_settings: { auth_token: SECRETS.nestedToken },
    },
    instance_info: { configdrive: SECRETS.configdrive, image_source: 'http://images/x.img' },
    ...extra,
  });
}

/** Pulls until the agent holds the command `id`; answers it as the agent received it. */
async function delivered(id: string) {
  return waitFor(async () => (await socket.pull()).find((command) => command.id === id), `command ${id}`);
}

describe('secrets at rest', () => {
  it('a node created and patched with secrets: sealed in its item, masked by the API, opened for its agent only', async () => {
    const uuid = await node();
    const patched = await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [
        { op: 'add', path: '/driver_info/ipmi_password', value: SECRETS.bmcPassword },
        { op: 'add', path: '/extra/note', value: 'patched' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body.driver_info.ipmi_password).toBe('******');

    const stored = (await stack.api.deps.nodes.get(uuid))!;
    expect(isSealed(stored.node.driver_info.ipmi_password)).toBe(true);
    expect(isSealed((stored.node.driver_info.extra_settings as Record<string, unknown>).auth_token)).toBe(
      true,
    );
    expect(isSealed(stored.node.instance_info.configdrive)).toBe(true);
    // What is not secret stays readable (filters, validation, the operator's view).
    expect(stored.node.driver_info.ipmi_address).toBe('10.1.2.3');
    expect(stored.node.driver_info.ipmi_username).toBe('root');

    const shown = await stack.api.call('GET', `/v1/nodes/${uuid}`);
    expect(shown.body.driver_info).toMatchObject({ ipmi_password: '******', ipmi_address: '10.1.2.3' });

    const forAgent = await stack.asAgent(agent.credential, 'GET', `/v1/agent/nodes/${uuid}`);
    expect(forAgent.status).toBe(200);
    expect(forAgent.body.driver_info).toMatchObject({
      ipmi_password: SECRETS.bmcPassword,
      extra_settings: { auth_token: SECRETS.nestedToken },
    });
    expect(forAgent.body.instance_info.configdrive).toBe(SECRETS.configdrive);

    const synced = await stack.asAgent(agent.credential, 'GET', '/v1/agent/nodes');
    const mine = (synced.body.nodes as Array<{ uuid: string; driver_info: Record<string, unknown> }>).find(
      (entry) => entry.uuid === uuid,
    );
    expect(mine?.driver_info.ipmi_password).toBe(SECRETS.bmcPassword);
    expectNoSecretIn(await everythingStored());
  });

  it('a power command carries the sealed password in its record and the clear one to its agent', async () => {
    const uuid = await node();
    expect(
      (await stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, { body: { target: 'power on' } }))
        .status,
    ).toBe(202);
    const [queued] = (await stack.api.call('GET', `/v1/nodes/${uuid}/commands`)).body.commands as Array<{
      id: string;
    }>;
    const command = await delivered(queued!.id);
    expect(command.args).toMatchObject({ driver_info: { ipmi_password: SECRETS.bmcPassword } });
    socket.send({ v: 1, type: 'command_ack', command_id: command.id, receipt: command.receipt });
    socket.send({
      v: 1,
      type: 'command_result',
      command_id: command.id,
      receipt: command.receipt,
      status: 'succeeded',
      result: { power_state: 'power on' },
      finished_at: new Date().toISOString(),
    });
    await waitFor(async () => {
      const shown = await stack.api.call('GET', `/v1/nodes/${uuid}`);
      return shown.body.power_state === 'power on' ? true : undefined;
    }, 'the node to be powered on');

    // Arguments an admin hands a command directly are sealed as well.
    const direct = await stack.api.call('POST', `/v1/nodes/${uuid}/commands`, {
      body: { action: 'noop', args: { bmc: { password: SECRETS.commandPassword } } },
    });
    expect(direct.status).toBe(202);
    const shown = await stack.api.call('GET', `/v1/nodes/${uuid}/commands/${direct.body.id}`);
    expect(shown.body.args.bmc.password).toBe('******');
    const handed = await delivered(direct.body.id as string);
    expect(handed.args).toStrictEqual({ bmc: { password: SECRETS.commandPassword } });

    expectNoSecretIn(await everythingStored());
  });

  it('a sealed value moved to another node does not open: its command fails with the reason, the BMC never sees it', async () => {
    const victim = await node();
    const thief = await node({ driver_info: { ipmi_address: '10.9.9.9' } });
    const sealed = (await stack.api.deps.nodes.get(victim))?.node.driver_info.ipmi_password;
    // Someone with write access to the table (not to KMS) copies the victim's password.
    await stack.api.deps.nodes.modify(thief, (found) => ({
      ...found,
      driver_info: { ...found.driver_info, ipmi_password: sealed as string },
    }));
    expect(
      (await stack.api.call('PUT', `/v1/nodes/${thief}/states/power`, { body: { target: 'power on' } }))
        .status,
    ).toBe(202);
    const failed = await waitFor(async () => {
      socket.send({ v: 1, type: 'pull', max: 10 });
      const [command] = (await stack.api.call('GET', `/v1/nodes/${thief}/commands`)).body.commands as Array<{
        status: string;
        error: string | null;
      }>;
      return command?.status === 'failed' ? command : undefined;
    }, 'the command to fail');
    expect(failed.error).toContain("The command's secrets could not be decrypted");
    // The command's record turns failed first, then its task ends on the node: wait for that.
    const shown = await waitFor(async () => {
      const current = (await stack.api.call('GET', `/v1/nodes/${thief}`)).body;
      return current.reservation === null && current.last_error !== null ? current : undefined;
    }, "the node's task to end");
    expect(shown.last_error).toContain('could not be decrypted');
    expect(shown.power_state).not.toBe('power on');
  });
});
