/** The real agent rotates its credential without downtime (SIGHUP / rotate-credential). */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AgentProcess, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';

let stack: ChannelStack;
let agent: AgentProcess;

beforeAll(async () => {
  stack = await startChannel();
  expect((await stack.createSite('rot')).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await agent?.cleanup();
  await stack?.close();
});

async function runsACommand(node: string): Promise<void> {
  const created = await stack.api.call('POST', `/v1/nodes/${node}/commands`, {
    body: { action: 'noop', args: {} },
  });
  expect(created.status).toBe(202);
  await waitFor(
    async () =>
      (await stack.api.call('GET', `/v1/nodes/${node}/commands/${created.body.id}`)).body.status ===
      'succeeded',
    'the command to succeed',
    20_000,
  );
}

it('a new credential is fetched, stored 0600 and used; the old one is refused afterwards', async () => {
  const node = await stack.createNode('rot');
  const { credential: old } = await stack.enroll('rot', 'test-agent');
  agent = new AgentProcess().writeConfig(testConfig({ url: stack.api.url, websocketUrl: stack.gateway.url }));
  await agent.writeCredential(old);
  await agent.start();
  await runsACommand(node);

  process.kill(agent.pid, 'SIGHUP');
  await waitFor(() => agent.lines('credential rotated').length > 0, 'the rotation', 20_000);
  const stored = readFileSync(join(agent.stateDir, 'credential'), 'utf8').trim();
  expect(stored).not.toBe(old);
  expect(stored).toMatch(/^mpa_/);
  expect(statSync(join(agent.stateDir, 'credential')).mode & 0o777).toBe(0o600);
  // The agent keeps working, now on the new credential.
  await runsACommand(node);
  expect(agent.exit).toBeUndefined();
  // Once the new credential has been used, the old one is retired.
  await waitFor(
    async () => (await stack.asAgent(old, 'GET', '/v1/agent/commands?wait=0&max=1')).status === 401,
    'the old credential to be refused',
    20_000,
  );
  expect((await stack.asAgent(stored, 'GET', '/v1/agent/commands?wait=0&max=1')).status).toBe(200);
  expect(JSON.stringify(agent.logs)).not.toContain(stored);
}, 90_000);
