/** The local stack's noauth mode still knows agents by their credential (the agent routes need it). */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ChannelStack, startChannel } from '../support/channel.ts';

let stack: ChannelStack;
beforeAll(async () => {
  stack = await startChannel({ auth: 'noauth' });
  expect((await stack.createSite('na')).status).toBe(201);
});
afterAll(() => stack?.close());

it('authenticates agent credentials, refuses bad ones, and keeps noauth callers off agent routes', async () => {
  const agent = await stack.enroll('na', 'na-agent');
  const polled = await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0');
  expect(polled).toMatchObject({ status: 200, body: { type: 'commands', commands: [] } });
  const forged = `${agent.credential.slice(0, -4)}${agent.credential.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
  expect((await stack.asAgent(forged, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
  // Everyone else is the noauth admin, which is no agent.
  expect((await stack.api.call('GET', '/v1/agent/commands?wait=0')).status).toBe(403);
  expect((await stack.api.call('GET', '/v1/sites/na')).status).toBe(200);
});
