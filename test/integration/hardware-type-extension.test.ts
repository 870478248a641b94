/**
 * A hardware type is one folder on each side plus one registry line (docs/architecture.md,
 * "Adding a hardware type"). `toy-hardware` (test/support/toy-hardware/) exists only here:
 * its control-plane half is registered in this process's registry, its agent half given
 * to an in-process agent, and nothing else in Metalplane knows it. Through the real API,
 * conductor, command queue, WebSocket channel and agent it must validate, change power
 * and boot device, and be read by the power sync, like a built-in type.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.ts';
import { silentLogger } from '../../agent/log.ts';
import { type RunningAgent, startAgent } from '../../agent/main.ts';
import { ensureStateDir, writeCredential } from '../../agent/state.ts';
import { testConfig } from '../../agent/testing/agent-process.ts';
import { hardwareTypes } from '../../lambda/domain/hardware/registry.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import { ToyBmcs, toyHardwareModule } from '../support/toy-hardware/agent.ts';
import { toyHardware } from '../support/toy-hardware/control-plane.ts';

const SITE = 'toys';
let stack: ChannelStack;
let agent: RunningAgent;
let dir: string;
const bmcs = new ToyBmcs();

beforeAll(async () => {
  hardwareTypes.register(toyHardware);
  stack = await startChannel({ syncWaitMs: 15_000 });
  expect((await stack.createSite(SITE)).status).toBe(201);
  const { credential } = await stack.enroll(SITE, 'toy-agent');
  dir = mkdtempSync(join(tmpdir(), 'toy-hardware-'));
  const config = parseConfig(
    testConfig({
      url: stack.api.url,
      websocketUrl: stack.gateway.url,
      extra: ['power_sync:', '  interval: 1s', '  timeout: 1500ms'].join('\n'),
    }),
    join(dir, 'config.yaml'),
  );
  await ensureStateDir(config.stateDir);
  await writeCredential(config.stateDir, credential);
  agent = await startAgent(
    { ...config, drivers: ['toy-hardware'] },
    { log: silentLogger, hardware: [toyHardwareModule(bmcs)] },
  );
}, 90_000);

afterAll(async () => {
  await agent?.stop();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const api = (method: string, path: string, body?: unknown) =>
  stack.api.call(method, path, body === undefined ? {} : { body });

async function toyNode(address?: string): Promise<string> {
  return stack.createNode(SITE, {
    driver: 'toy-hardware',
    driver_info: address === undefined ? {} : { toy_address: address },
  });
}

/** Waits until no action is in flight on the node; answers its power state. */
async function settledPower(node: string): Promise<string> {
  return waitFor(
    async () => {
      const full = (await api('GET', `/v1/nodes/${node}`)).body;
      return full.target_power_state === null && full.reservation === null ? full.power_state : undefined;
    },
    `node ${node} to settle`,
    20_000,
  );
}

describe('a hardware type that only tests know', () => {
  it('is served by /v1/drivers with its interfaces and driver_info properties', async () => {
    const listed = await api('GET', '/v1/drivers');
    expect(listed.body.drivers.map((d: { name: string }) => d.name)).toContain('toy-hardware');
    const detail = await stack.api.call('GET', '/v1/drivers/toy-hardware', { version: '1.82' });
    expect(detail.body).toMatchObject({
      default_power_interface: 'toy',
      enabled_management_interfaces: ['toy'],
      default_boot_interface: 'ipxe',
    });
    const properties = await api('GET', '/v1/drivers/toy-hardware/properties');
    expect(Object.keys(properties.body)).toContain('toy_address');
  });

  it("reports its own driver_info problem in validate, and the node's interfaces default to the type's", async () => {
    const node = await toyNode();
    const full = (await stack.api.call('GET', `/v1/nodes/${node}`, { version: '1.82' })).body;
    expect(full).toMatchObject({
      power_interface: 'toy',
      management_interface: 'toy',
      raid_interface: 'no-raid',
    });
    const report = (await api('GET', `/v1/nodes/${node}/validate`)).body;
    expect(report.power).toEqual({
      result: false,
      reason: "Missing the following toy credentials in node's driver_info: ['toy_address'].",
    });
    expect(report.raid.result).toBe(false);
    const patched = await api('PATCH', `/v1/nodes/${node}`, [
      { op: 'add', path: '/driver_info/toy_address', value: 'r1/1' },
    ]);
    expect(patched.status).toBe(200);
    expect((await api('GET', `/v1/nodes/${node}/validate`)).body.power).toEqual({ result: true });
  });

  it('changes power through the agent, and the BMC saw the commands', async () => {
    const node = await toyNode('r1/2');
    expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power on' })).status).toBe(202);
    expect(await settledPower(node)).toBe('power on');
    expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power off' })).status).toBe(202);
    expect(await settledPower(node)).toBe('power off');
    expect(bmcs.bmc('r1/2').commands).toEqual(['on', 'off']);
  });

  it('sets and reads the boot device among the devices its management interface declares', async () => {
    const node = await toyNode('r1/3');
    const supported = await api('GET', `/v1/nodes/${node}/management/boot_device/supported`);
    expect(supported.body).toEqual({ supported_boot_devices: ['pxe', 'disk'] });
    const set = await api('PUT', `/v1/nodes/${node}/management/boot_device`, {
      boot_device: 'pxe',
      persistent: true,
    });
    expect(set.status).toBe(204);
    expect(bmcs.bmc('r1/3')).toMatchObject({ boot: 'pxe', persistent: true });
    const read = await api('GET', `/v1/nodes/${node}/management/boot_device`);
    expect(read.body).toEqual({ boot_device: 'pxe', persistent: true });
    const refused = await api('PUT', `/v1/nodes/${node}/management/boot_device`, { boot_device: 'cdrom' });
    expect(refused.status).toBe(400);
  });

  it("fails a power change with the BMC's error in last_error", async () => {
    const node = await toyNode('r9/9');
    bmcs.unreachable.add('r9/9');
    expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power on' })).status).toBe(202);
    await settledPower(node);
    const full = (await api('GET', `/v1/nodes/${node}`)).body;
    expect(full.last_error).toContain('toy BMC r9/9 does not answer');
    bmcs.unreachable.delete('r9/9');
  });

  it('is read by the power sync through its probe: a change behind its back shows on the node', async () => {
    const node = await toyNode('r2/1');
    // Nodes in `enroll` are not synced (as Ironic's): put this one in `manageable`.
    await stack.api.deps.nodes.modify(node, (n) => ({ ...n, provision_state: 'manageable' }));
    expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power on' })).status).toBe(202);
    expect(await settledPower(node)).toBe('power on');
    bmcs.bmc('r2/1').power = 'power off';
    await waitFor(
      async () =>
        (await api('GET', `/v1/nodes/${node}`)).body.power_state === 'power off' ? true : undefined,
      'the power sync to record power off',
      20_000,
    );
  });
});
