/**
 * `metalplane` driving a node through power, boot device, validation and the provision
 * cycle with `--wait`, against the control plane and a real agent process with fake
 * hardware (as test/compat/baremetal-cli-lifecycle.test.ts does with the `baremetal` CLI).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import { metalplaneCli, osEnv } from '../support/cli.ts';

const root = new URL('../..', import.meta.url).pathname;
let stack: ChannelStack;
let agent: AgentProcess;

beforeAll(async () => {
  stack = await startChannel();
  expect((await stack.createSite('mpcli')).status).toBe(201);
  const { credential } = await stack.enroll('mpcli', 'mpcli-agent');
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

const { ok, json } = metalplaneCli(() => ({ HOME: root, ...osEnv(stack.api) }));

describe('metalplane node: power, boot device, validate, provision --wait', () => {
  it('runs a node through its life', async () => {
    const created = await json(
      'node',
      'create',
      '--driver',
      'fake-hardware',
      '--name',
      'mp-life',
      '--conductor-group',
      'mpcli',
    );
    expect(created.provision_state).toBe('enroll');

    await ok('node', 'power', 'on', 'mp-life');
    await waitFor(
      async () => ((await json('node', 'show', 'mp-life')).power_state === 'power on' ? true : undefined),
      'power on',
      30_000,
    );
    await ok('node', 'power', 'off', 'mp-life', '--power-timeout', '30');
    await waitFor(
      async () => ((await json('node', 'show', 'mp-life')).power_state === 'power off' ? true : undefined),
      'power off',
      30_000,
    );

    await ok('node', 'boot', 'device', 'set', 'mp-life', 'pxe', '--persistent');
    expect(await json('node', 'boot', 'device', 'show', 'mp-life')).toEqual({
      boot_device: 'pxe',
      persistent: true,
    });
    expect(await json('node', 'boot', 'device', 'show', 'mp-life', '--supported')).toEqual({
      supported_boot_devices: 'pxe',
    });
    expect(await json('node', 'validate', 'mp-life')).toContainEqual({
      Interface: 'power',
      Result: true,
      Reason: '',
    });

    await ok('node', 'manage', 'mp-life', '--wait', '60');
    expect((await json('node', 'show', 'mp-life')).provision_state).toBe('manageable');
    await ok('node', 'provide', 'mp-life', '--wait', '60');
    expect((await json('node', 'show', 'mp-life')).provision_state).toBe('available');
    expect(
      (await json('node', 'list', '--provision-state', 'available')).map((n: { name: string }) => n.name),
    ).toStrictEqual(['mp-life']);
    await ok('node', 'deploy', 'mp-life', '--wait', '60');
    expect(await json('node', 'show', 'mp-life', '-c', 'provision_state', '-c', 'power_state')).toStrictEqual(
      {
        provision_state: 'active',
        power_state: 'power on',
      },
    );
    await ok('node', 'reboot', 'mp-life');
    await ok('node', 'undeploy', 'mp-life', '--wait', '60');
    expect((await json('node', 'show', 'mp-life')).provision_state).toBe('available');

    const history = await json('node', 'history', 'list', 'mp-life');
    expect(history.length).toBeGreaterThanOrEqual(9);
    expect(Object.keys(history[0])).toStrictEqual(['uuid', 'created_at', 'severity', 'event']);
    const table = await ok('node', 'history', 'list', 'mp-life');
    expect(table).toMatch(/\| UUID +\| Created At +\| Severity +\| Event +\|/);

    const conductors = await json('conductor', 'list');
    expect(conductors).toContainEqual(
      expect.objectContaining({ hostname: 'mpcli-agent', conductor_group: 'mpcli' }),
    );
    const agents = await json('agent', 'list', '--site', 'mpcli');
    expect(agents).toStrictEqual([
      expect.objectContaining({ hostname: 'mpcli-agent', site: 'mpcli', alive: true }),
    ]);
  }, 240_000);
});
