/**
 * The real `baremetal` CLI driving a node through power, boot device, validation and the
 * whole provision cycle (with its own `--wait` polling), against the control plane and a
 * real agent process with fake hardware: an operator's day with the tools they know.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';

const run = promisify(execFile);
const BAREMETAL = join(import.meta.dirname, '..', '..', '.venv', 'bin', 'baremetal');

let stack: ChannelStack;
let agent: AgentProcess;

beforeAll(async () => {
  if (!existsSync(BAREMETAL)) throw new Error(`${BAREMETAL} is missing: run 'npm run setup:venv'`);
  stack = await startChannel();
  expect((await stack.createSite('cli')).status).toBe(201);
  const { credential } = await stack.enroll('cli', 'cli-agent');
  agent = new AgentProcess().writeConfig(
    testConfig({
      url: stack.api.url,
      websocketUrl: stack.gateway.url,
      extra: 'power_sync:\n  enabled: false',
    }),
  );
  await agent.writeCredential(credential);
  await agent.start();
}, 90_000);

afterAll(async () => {
  await agent?.cleanup();
  await stack?.close();
});

async function baremetal(...args: string[]): Promise<string> {
  const { username, password } = stack.api.admin;
  const { stdout } = await run(
    BAREMETAL,
    [
      '--os-auth-type',
      'http_basic',
      '--os-endpoint',
      stack.api.url,
      '--os-username',
      username,
      '--os-password',
      password,
      ...args,
    ],
    { timeout: 90_000, env: { ...process.env, OS_CLOUD: '' } },
  );
  return stdout;
}

const json = async (...args: string[]) => JSON.parse(await baremetal(...args, '-f', 'json'));

describe('baremetal CLI: power, boot device, validate, provision', () => {
  it('runs a node through its life', async () => {
    const created = await json(
      'node',
      'create',
      '--driver',
      'fake-hardware',
      '--name',
      'life-1',
      '--conductor-group',
      'cli',
    );
    expect(created.provision_state).toBe('enroll');

    await baremetal('node', 'power', 'on', 'life-1');
    await waitFor(
      async () => ((await json('node', 'show', 'life-1')).power_state === 'power on' ? true : undefined),
      'power on',
      30_000,
    );
    await baremetal('node', 'power', 'off', 'life-1', '--power-timeout', '30');
    await waitFor(
      async () => ((await json('node', 'show', 'life-1')).power_state === 'power off' ? true : undefined),
      'power off',
      30_000,
    );

    await baremetal('node', 'boot', 'device', 'set', 'life-1', 'pxe', '--persistent');
    expect(await json('node', 'boot', 'device', 'show', 'life-1')).toEqual({
      boot_device: 'pxe',
      persistent: true,
    });
    expect(await json('node', 'boot', 'device', 'show', 'life-1', '--supported')).toEqual({
      supported_boot_devices: 'pxe',
    });

    const validation = await json('node', 'validate', 'life-1');
    expect(validation).toContainEqual({ Interface: 'power', Result: true, Reason: '' });

    await baremetal('node', 'manage', 'life-1', '--wait', '60');
    expect((await json('node', 'show', 'life-1')).provision_state).toBe('manageable');
    await baremetal('node', 'provide', 'life-1', '--wait', '60');
    expect((await json('node', 'show', 'life-1')).provision_state).toBe('available');
    await baremetal('node', 'deploy', 'life-1', '--wait', '60');
    const active = await json('node', 'show', 'life-1');
    expect(active).toMatchObject({ provision_state: 'active', power_state: 'power on' });
    await baremetal('node', 'undeploy', 'life-1', '--wait', '60');
    expect((await json('node', 'show', 'life-1')).provision_state).toBe('available');

    const history = await json('node', 'history', 'list', 'life-1');
    expect(history.length).toBeGreaterThanOrEqual(9);
  }, 240_000);
});
