/**
 * The `redfish` hardware type end to end through the API alone: the control plane on
 * moto, a real agent process (driver redfish) and a real Redfish service, sushy-tools'
 * emulator (fake systems) behind the lab's wrapper (sessions, power applied at once, Nmi,
 * BootSourceOverrideEnabled kept). Each assertion reads the emulator back over Redfish.
 * Virtual media: a catalog ISO the agent syncs from moto S3 and serves from its HTTP tree;
 * the emulator downloads it on InsertMedia, as a BMC does.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { type ChannelStack, nodeReaches, startChannel, waitFor } from '../support/channel.ts';
import { uploadIso } from '../support/images.ts';
import { startRedfishAgent } from '../support/redfish-agent.ts';
import { type SushyEmulator, startSushy } from '../support/sushy.ts';

const SITE = 'rf';
let stack: ChannelStack;
let agent: AgentProcess;
let bmc: SushyEmulator;
let httpPort: number;

beforeAll(async () => {
  httpPort = await freePort();
  const [channel, emulator] = await Promise.all([
    startChannel({ syncWaitMs: 15_000 }),
    startSushy({ wrapper: true, systems: 4, name: 'rf', password: 'rf-S3cret-pw' }),
  ]);
  stack = channel;
  bmc = emulator;
  expect((await stack.createSite(SITE)).status).toBe(201);
  agent = await startRedfishAgent(stack, SITE, 'rf-agent', {
    httpPort,
    powerSync: { interval: '1s', timeout: '3s' },
    redfish: { request_timeout: '8s', min_request_interval: '0ms', poll_interval: '100ms' },
  });
}, 120_000);

afterAll(async () => {
  await agent?.cleanup();
  await bmc?.stop();
  await stack?.close();
});

/** A GET of the emulator, as any Redfish client would (Basic auth). */
async function redfishGet(path: string): Promise<Record<string, any>> {
  const auth = Buffer.from(`${bmc.username}:${bmc.password}`).toString('base64');
  const answer = await fetch(`${bmc.url}${path}`, {
    headers: { Authorization: `Basic ${auth}` },
    signal: AbortSignal.timeout(10_000),
  });
  expect(answer.status).toBe(200);
  return (await answer.json()) as Record<string, any>;
}

const system = (i: number) => bmc.systems[i] as (typeof bmc.systems)[number];

async function redfishNode(i: number, extra: Record<string, unknown> = {}): Promise<string> {
  return stack.createNode(SITE, {
    driver: 'redfish',
    driver_info: {
      redfish_address: bmc.url,
      redfish_system_id: system(i).path,
      redfish_username: bmc.username,
      redfish_password: bmc.password,
      redfish_auth_type: 'session',
    },
    ...extra,
  });
}

const read = async (uuid: string) => (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;

const api = (method: string, path: string, body?: unknown) =>
  stack.api.call(method, path, body === undefined ? {} : { body });

/** Waits for the node to be free again (no task, no target power state); answers it. */
async function settled(uuid: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const node = (await api('GET', `/v1/nodes/${uuid}`)).body;
      return node.reservation === null && node.target_power_state === null ? node : undefined;
    },
    `node ${uuid} to settle`,
    timeoutMs,
  );
}

describe('redfish power and management through the agent', () => {
  it('powers on, off and reboots; the BMC reads back each state; the password never shows', async () => {
    const node = await redfishNode(0);
    for (const [target, expected] of [
      ['power on', 'On'],
      ['power off', 'Off'],
      ['rebooting', 'On'],
      ['soft power off', 'Off'],
    ] as const) {
      expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target })).status).toBe(202);
      const done = await settled(node);
      expect(done.last_error).toBeNull();
      expect(done.power_state).toBe(expected === 'On' ? 'power on' : 'power off');
      expect((await redfishGet(system(0).path)).PowerState).toBe(expected);
    }
    const commands = JSON.stringify((await api('GET', `/v1/nodes/${node}/commands`)).body);
    expect(commands).toContain('"redfish_password":"******"');
    expect(commands).not.toContain(bmc.password);
    expect(JSON.stringify(agent.logs)).not.toContain(bmc.password);
  }, 120_000);

  it('sets and reads the boot device, persistent or once', async () => {
    const node = await redfishNode(1);
    // The BMC's own list: the emulator allows Pxe, Cd, Hdd (and UefiHttp, no Ironic name) in
    // UEFI mode, no BiosSetup.
    const allowed = (await redfishGet(system(1).path)).Boot[
      'BootSourceOverrideTarget@Redfish.AllowableValues'
    ];
    expect(allowed).not.toContain('BiosSetup');
    const supported = await api('GET', `/v1/nodes/${node}/management/boot_device/supported`);
    expect(supported.status).toBe(200);
    expect(supported.body.supported_boot_devices).toEqual(['pxe', 'disk', 'cdrom']);
    const actions = (await api('GET', `/v1/nodes/${node}/commands`)).body.commands.map(
      (c: { action: string }) => c.action,
    );
    expect(actions).toContain('management.get_supported_boot_devices');
    for (const [device, persistent, target, enabled] of [
      ['pxe', false, 'Pxe', 'Once'],
      ['disk', true, 'Hdd', 'Continuous'],
    ] as const) {
      const set = await api('PUT', `/v1/nodes/${node}/management/boot_device`, {
        boot_device: device,
        persistent,
      });
      expect(set.status).toBe(204);
      const boot = (await redfishGet(system(1).path)).Boot;
      expect(boot).toMatchObject({ BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled });
      const got = await api('GET', `/v1/nodes/${node}/management/boot_device`);
      expect(got.body).toEqual({ boot_device: device, persistent });
    }
    const safe = await api('PUT', `/v1/nodes/${node}/management/boot_device`, { boot_device: 'safe' });
    expect(safe.status).toBe(400);
  }, 60_000);

  it('changes boot mode and secure boot; the node shows them, the BMC holds them', async () => {
    const node = await redfishNode(1);
    expect((await api('PUT', `/v1/nodes/${node}/states/boot_mode`, { target: 'bios' })).status).toBe(202);
    expect((await settled(node)).boot_mode).toBe('bios');
    expect((await redfishGet(system(1).path)).Boot.BootSourceOverrideMode).toBe('Legacy');
    expect((await api('PUT', `/v1/nodes/${node}/states/boot_mode`, { target: 'uefi' })).status).toBe(202);
    expect((await settled(node)).boot_mode).toBe('uefi');
    expect((await api('PUT', `/v1/nodes/${node}/states/secure_boot`, { target: true })).status).toBe(202);
    const done = await settled(node);
    expect(done).toMatchObject({ secure_boot: true, last_error: null });
    expect((await redfishGet(`${system(1).path}/SecureBoot`)).SecureBootEnable).toBe(true);
  }, 60_000);

  it('lists, reads and sets the system LED; injects an NMI', async () => {
    const node = await redfishNode(2);
    const listed = await api('GET', `/v1/nodes/${node}/management/indicators`);
    expect(listed.status).toBe(200);
    const systemLed = `${system(2).uuid}@system`;
    expect(listed.body.indicators.map((i: { name: string }) => i.name)).toContain(systemLed);
    const path = `/v1/nodes/${node}/management/indicators/${systemLed}`;
    expect((await api('PUT', path, { state: 'blinking' })).status).toBe(204);
    expect((await redfishGet(system(2).path)).IndicatorLED).toBe('Blinking');
    expect((await api('GET', path)).body).toEqual({ state: 'blinking' });
    expect((await api('PUT', path, { state: 'off' })).status).toBe(204);
    expect((await api('GET', path)).body).toEqual({ state: 'off' });
    const nmi = await api('PUT', `/v1/nodes/${node}/management/inject_nmi`, {});
    expect(nmi.status).toBe(204);
  }, 60_000);

  it('a wrong password fails with a clear last_error, once, without looping', async () => {
    const node = await stack.createNode(SITE, {
      driver: 'redfish',
      driver_info: {
        redfish_address: bmc.url,
        redfish_system_id: system(3).path,
        redfish_username: bmc.username,
        redfish_password: 'not-the-password',
      },
    });
    expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power on' })).status).toBe(202);
    const done = await settled(node);
    expect(done.last_error).toMatch(/^Failed to change power state to 'power on' by 'power on': .*401/);
    expect(done.last_error).not.toContain('not-the-password');
    expect((await redfishGet(system(3).path)).PowerState).toBe('Off');
  }, 60_000);
});

describe('redfish power sync and bad BMC answers', () => {
  it('the power sync picks up a change made behind Metalplane’s back (one GET per node and sweep)', async () => {
    const node = await redfishNode(2);
    await stack.api.deps.nodes.modify(node, (n) => ({
      ...n,
      provision_state: 'manageable',
      power_state: 'power off',
    }));
    const auth = Buffer.from(`${bmc.username}:${bmc.password}`).toString('base64');
    const reset = await fetch(`${bmc.url}${system(2).path}/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { Authorization: `Basic ${auth}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ResetType: 'On' }),
      signal: AbortSignal.timeout(10_000),
    });
    expect(reset.status).toBe(204);
    const synced = await waitFor(
      async () => ((await read(node)).power_state === 'power on' ? true : undefined),
      'the sync to record power on',
      30_000,
    );
    expect(synced).toBe(true);
  }, 60_000);

  it('a BMC answering 500 or malformed JSON gives a clear last_error naming it', async () => {
    const server = createServer((request, response) => {
      if (request.url === '/redfish/v1/' || request.url === '/redfish/v1') {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ Systems: { '@odata.id': '/redfish/v1/Systems' } }));
      } else if (request.url?.startsWith('/redfish/v1/Systems/broken')) {
        response.writeHead(500, { 'Content-Type': 'application/json' });
        response.end(
          JSON.stringify({ error: { code: 'Base.1.0.InternalError', message: 'BMC firmware fault 42' } }),
        );
      } else {
        response.writeHead(200, { 'Content-Type': 'application/json' });
        response.end('{"PowerState": "On", ');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const make = (systemId: string) =>
        stack.createNode(SITE, {
          driver: 'redfish',
          driver_info: {
            redfish_address: `http://127.0.0.1:${port}`,
            redfish_system_id: systemId,
            redfish_auth_type: 'basic',
          },
        });
      const broken = await make('/redfish/v1/Systems/broken');
      const garbled = await make('/redfish/v1/Systems/garbled');
      for (const node of [broken, garbled]) {
        expect((await api('PUT', `/v1/nodes/${node}/states/power`, { target: 'power on' })).status).toBe(202);
      }
      expect((await settled(broken)).last_error).toMatch(
        /^Failed to change power state to 'power on'.*BMC firmware fault 42/,
      );
      expect((await settled(garbled)).last_error).toMatch(
        /^Failed to change power state to 'power on'.*malformed JSON/,
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 60_000);
});

describe('redfish-virtual-media boot', () => {
  it('deploys a catalog ISO with no port and no PXE: inserted, CD once, powered on → active; undeploy ejects', async () => {
    const iso = Buffer.concat([Buffer.from('METALPLANE-VMEDIA-TEST-ISO\n'), Buffer.alloc(64 * 1024, 7)]);
    const image = await uploadIso(stack.api, `vmedia-${Date.now()}`, iso);
    const node = await redfishNode(3, {
      boot_interface: 'redfish-virtual-media',
      deploy_interface: 'ramdisk',
      instance_info: { image_source: image, deploy_callback: false },
    });
    await stack.api.deps.nodes.modify(node, (n) => ({ ...n, provision_state: 'available' }));
    const validate = (await api('GET', `/v1/nodes/${node}/validate`)).body;
    expect(validate.boot).toEqual({ result: true });
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' })).status).toBe(202);
    const active = await nodeReaches(read, node, 'active', 90_000);
    expect(active.last_error).toBeNull();
    const cd = await redfishGet(`${system(3).path}/VirtualMedia/Cd`);
    expect(cd.Inserted).toBe(true);
    expect(cd.Image).toBe(`http://127.0.0.1:${httpPort}/images/${image}/iso`);
    const sys = await redfishGet(system(3).path);
    expect(sys.PowerState).toBe('On');
    expect(sys.Boot.BootSourceOverrideTarget).toBe('Cd');
    // No boot file was written for the node: nothing over PXE.
    const files = (await api('GET', `/v1/nodes/${node}/commands`)).body.commands.map(
      (c: { action: string }) => c.action,
    );
    expect(files).not.toContain('boot.prepare');
    expect(files).toContain('management.insert_vmedia');

    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'deleted' })).status).toBe(202);
    await nodeReaches(read, node, 'available', 90_000);
    expect((await redfishGet(`${system(3).path}/VirtualMedia/Cd`)).Inserted).toBe(false);
    expect((await redfishGet(system(3).path)).PowerState).toBe('Off');
  }, 180_000);

  it('refuses a virtual media deploy with no image to boot (400), the node unchanged', async () => {
    // A kernel+ramdisk image is accepted (the agent builds an ISO of it:
    // redfish-vmedia-ramdisk.test.ts); no image at all is the client's error.
    const node = await redfishNode(3, {
      boot_interface: 'redfish-virtual-media',
      deploy_interface: 'ramdisk',
    });
    await stack.api.deps.nodes.modify(node, (n) => ({ ...n, provision_state: 'available' }));
    const refused = await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toMatch(/Missing the following parameters in node's instance_info/);
    const after = (await api('GET', `/v1/nodes/${node}`)).body;
    expect(after).toMatchObject({ provision_state: 'available', reservation: null, last_error: null });
  }, 60_000);
});
