/**
 * Power and boot device end to end: the API, the conductor, the command channel and the
 * real agent process, driving fake hardware and real `ipmi_sim` BMCs through ipmitool;
 * and the periodic power sync picking up what changed behind Metalplane's back.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { type SimulatedBmc, startBmc } from '../support/bmc.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';

let stack: ChannelStack;
let agent: AgentProcess;
const bmcs: SimulatedBmc[] = [];
let silentPort: number;

const SITE = 'pwr';

beforeAll(async () => {
  stack = await startChannel({ syncWaitMs: 15_000 });
  expect((await stack.createSite(SITE)).status).toBe(201);
  expect((await stack.createSite('nobody')).status).toBe(201);
  bmcs.push(await startBmc(), await startBmc());
  silentPort = await freePort();
  const { credential } = await stack.enroll(SITE, 'test-agent');
  agent = new AgentProcess().writeConfig(
    testConfig({
      url: stack.api.url,
      websocketUrl: stack.gateway.url,
      extra: [
        'drivers: [fake-hardware, ipmi]',
        'power_sync:',
        '  interval: 1s',
        '  timeout: 1500ms',
        '  concurrency: 4',
        'ipmi:',
        '  command_timeout: 8s',
        '  min_command_interval: 0',
        '  retries: 0',
      ].join('\n'),
    }),
  );
  await agent.writeCredential(credential);
  await agent.start();
}, 90_000);

afterAll(async () => {
  await agent?.cleanup();
  await Promise.all(bmcs.map((bmc) => bmc.stop()));
  await stack?.close();
});

const ipmiInfo = (port: number, password = 'password') => ({
  ipmi_address: '127.0.0.1',
  ipmi_port: port,
  ipmi_username: 'admin',
  ipmi_password: password,
  ipmi_cipher_suite: 3,
});

async function ipmiNode(port: number, password?: string, site = SITE): Promise<string> {
  return stack.createNode(site, { driver: 'ipmi', driver_info: ipmiInfo(port, password) });
}

async function states(node: string) {
  return (await stack.api.call('GET', `/v1/nodes/${node}/states`)).body;
}

/** Waits for the action to end (target_power_state cleared), answers the states. */
async function settled(node: string, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      // One read: the node's fields and its lock from the same snapshot (reading the states
      // first and the lock after could pair a stale state with an ended task).
      const full = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
      return full.target_power_state === null && full.reservation === null ? full : undefined;
    },
    `node ${node} to settle`,
    timeoutMs,
  );
}

async function power(node: string, target: string, extra: Record<string, unknown> = {}, version = '1.82') {
  return stack.api.call('PUT', `/v1/nodes/${node}/states/power`, { body: { target, ...extra }, version });
}

/** Turns a BMC's power on behind Metalplane's back, with plain ipmitool. */
function outOfBandPowerOn(bmc: SimulatedBmc): void {
  const target = [
    '-I',
    'lanplus',
    '-H',
    '127.0.0.1',
    '-p',
    String(bmc.port),
    '-U',
    'admin',
    '-P',
    'password',
    '-C',
    '3',
  ];
  execFileSync('ipmitool', [...target, 'power', 'on']);
}

/** Ironic's provision states outside `enroll` are synced; tests put nodes there directly. */
async function makeManageable(node: string): Promise<void> {
  await stack.api.deps.nodes.modify(node, (n) => ({ ...n, provision_state: 'manageable' }));
}

describe('fake-hardware', () => {
  it('powers on, off and reboots through the agent; the node shows the outcome', async () => {
    const node = await stack.createNode(SITE);
    const on = await power(node, 'power on');
    expect(on.status).toBe(202);
    expect(on.headers.get('location')).toBe(`${stack.api.url}/v1/nodes/${node}/states`);
    expect((await settled(node)).power_state).toBe('power on');
    expect((await power(node, 'power off')).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power off');
    expect((await power(node, 'rebooting')).status).toBe(202);
    const after = await settled(node);
    expect(after.power_state).toBe('power on');
    expect(after.last_error).toBeNull();
    expect((await power(node, 'soft power off', { timeout: 30 })).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power off');
  }, 60_000);

  it('refuses what Ironic refuses, with its status and message', async () => {
    const node = await stack.createNode(SITE);
    const bad = await power(node, 'sideways');
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe(
      `The requested action "sideways" can not be performed on node "${node}" while it is in state "None".`,
    );
    expect((await power(node, 'soft power off', {}, '1.26')).status).toBe(406);
    expect((await power(node, 'power on', { timeout: 5 }, '1.26')).status).toBe(406);
    const zero = await power(node, 'power on', { timeout: -1 });
    expect(zero.status).toBe(400);
    expect(zero.fault?.faultstring).toBe('timeout has to be positive integer');
    expect((await power(node, 'power on', { timeout: 'soon' })).status).toBe(400);
    // Nothing of it was recorded.
    expect((await states(node)).target_power_state).toBeNull();
    expect((await stack.api.call('GET', `/v1/nodes/${node}/commands`)).body.commands).toHaveLength(0);
  });

  it('locks the node while an action is in flight: a second one is 409, expiry releases it with last_error', async () => {
    // Site "nobody" has no agent: the command waits.
    const node = await stack.createNode('nobody');
    expect((await power(node, 'power on')).status).toBe(202);
    const locked = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
    expect(locked.target_power_state).toBe('power on');
    expect(locked.reservation).toBe('nobody');
    const second = await power(node, 'power off');
    expect(second.status).toBe(409);
    expect(second.fault?.faultstring).toBe(
      `Node ${node} is locked by host nobody, please retry after the current operation is completed.`,
    );
    const boot = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
      body: { boot_device: 'pxe' },
    });
    expect(boot.status).toBe(409);
    // The deadline passes (the tick's path): the task fails and the lock goes.
    const [command] = (await stack.api.call('GET', `/v1/nodes/${node}/commands`)).body.commands;
    const stored = await stack.runtime.commands.get(command.id);
    expect(await stack.runtime.queue.expire(stored!.command, stored!.receipt)).toBe(true);
    const after = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
    expect(after.reservation).toBeNull();
    expect(after.target_power_state).toBeNull();
    expect(after.power_state).toBeNull();
    expect(after.last_error).toMatch(
      /^Failed to change power state to 'power on' by 'power on': Command power\.set .* expired/,
    );
  });

  it('sets and reads the boot device; only PXE is supported, as Ironic fake', async () => {
    const node = await stack.createNode(SITE);
    const supported = await stack.api.call('GET', `/v1/nodes/${node}/management/boot_device/supported`);
    expect(supported.body).toEqual({ supported_boot_devices: ['pxe'] });
    const set = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
      body: { boot_device: 'pxe', persistent: true },
    });
    expect(set.status).toBe(204);
    const got = await stack.api.call('GET', `/v1/nodes/${node}/management/boot_device`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ boot_device: 'pxe', persistent: true });
    const disk = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
      body: { boot_device: 'disk' },
    });
    expect(disk.status).toBe(400);
    expect(disk.fault?.faultstring).toBe('Invalid boot device disk specified.');
    const floppy = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
      body: { boot_device: 'floppy' },
    });
    expect(floppy.fault?.faultstring).toBe('Invalid boot device floppy specified.');
    const notBool = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
      body: { boot_device: 'pxe', persistent: 'maybe' },
    });
    expect(notBool.status).toBe(400);
    expect((await settled(node)).last_error).toBeNull();
  }, 30_000);

  it('injects an NMI (1.29+): 204 through the agent, Ironic’s refusals first', async () => {
    const node = await stack.createNode(SITE);
    const nmi = (body: unknown, version = '1.82') =>
      stack.api.call('PUT', `/v1/nodes/${node}/management/inject_nmi`, { body, version });
    expect((await nmi({}, '1.28')).status).toBe(404);
    const extra = await nmi({ force: true });
    expect(extra.status).toBe(400);
    expect(extra.fault?.faultstring).toBe('Unknown argument: "force"');
    const before = (await stack.api.call('GET', `/v1/nodes/${node}/commands`)).body.commands.length;
    expect((await nmi({})).status).toBe(204);
    const commands = (await stack.api.call('GET', `/v1/nodes/${node}/commands`)).body.commands;
    expect(commands.length).toBe(before + 1);
    expect(commands[0]).toMatchObject({ action: 'management.inject_nmi', status: 'succeeded' });
    expect((await settled(node)).last_error).toBeNull();
  }, 30_000);

  it('changes boot mode and secure boot (1.76+): 202, then the node shows them', async () => {
    const node = await stack.createNode(SITE);
    const put = (what: string, body: unknown, version = '1.82') =>
      stack.api.call('PUT', `/v1/nodes/${node}/states/${what}`, { body, version });
    const old = await put('boot_mode', { target: 'bios' }, '1.75');
    expect(old.status).toBe(404);
    expect(old.fault?.faultstring).toBe('This endpoint is supported starting with the API version 1.76');
    const bad = await put('boot_mode', { target: 'legacy' });
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe(
      'Invalid boot mode legacy requested for node. Allowed boot modes are: bios, uefi',
    );
    const started = await put('boot_mode', { target: 'bios' });
    expect(started.status).toBe(202);
    expect(started.headers.get('location')).toBe(`${stack.api.url}/v1/nodes/${node}/states`);
    await settled(node);
    const shown = async () => (await stack.api.call('GET', `/v1/nodes/${node}`, { version: '1.82' })).body;
    expect((await shown()).boot_mode).toBe('bios');
    expect((await put('secure_boot', { target: 'maybe' })).status).toBe(400);
    expect((await put('secure_boot', { target: 'true' })).status).toBe(202);
    await settled(node);
    const after = await shown();
    expect(after).toMatchObject({ boot_mode: 'bios', secure_boot: true, last_error: null });
    // A node moving on its own refuses (Ironic's UNSTABLE_STATES), nothing written.
    await stack.api.deps.nodes.modify(node, (n) => ({ ...n, provision_state: 'cleaning' }));
    const moving = await put('boot_mode', { target: 'uefi' });
    expect(moving.status).toBe(409);
    expect(moving.fault?.faultstring).toMatch(/^Node is in cleaning state\. Since node is transitioning/);
    expect((await shown()).boot_mode).toBe('bios');
  }, 30_000);

  it('lists and reads indicators as Ironic fake does; setting one is unsupported there', async () => {
    const node = await stack.createNode(SITE);
    const base = `/v1/nodes/${node}/management/indicators`;
    const listed = await stack.api.call('GET', base);
    expect(listed.status).toBe(200);
    expect(listed.body.indicators.map((i: { name: string }) => i.name)).toEqual([
      'led-0@chassis',
      'led@system',
    ]);
    expect(listed.body.indicators[1]).toEqual({
      name: 'led@system',
      component: 'system',
      readonly: false,
      states: ['blinking', 'off', 'on'],
      links: [
        { href: `${stack.api.url}/v1/nodes/${node}/management/indicators/led@system`, rel: 'self' },
        { href: `${stack.api.url}/nodes/${node}/management/indicators/led@system`, rel: 'bookmark' },
      ],
    });
    expect((await stack.api.call('GET', `${base}/led@system`)).body).toEqual({ state: 'on' });
    const malformed = await stack.api.call('GET', `${base}/led`);
    expect(malformed.status).toBe(400);
    expect(malformed.fault?.faultstring).toBe('Malformed indicator name "led"');
    const badComponent = await stack.api.call('GET', `${base}/led@toaster`);
    expect(badComponent.fault?.faultstring).toBe('Invalid component toaster specified.');
    const badState = await stack.api.call('PUT', `${base}/led@system`, { body: { state: 'dim' } });
    expect(badState.status).toBe(400);
    expect(badState.fault?.faultstring).toBe('Invalid indicator state dim specified.');
    const unsupported = await stack.api.call('PUT', `${base}/led@system`, { body: { state: 'blinking' } });
    expect(unsupported.status).toBe(500);
    expect(unsupported.fault?.faultstring).toBe(
      'Driver fake-hardware does not support set_indicator_state (disabled or not implemented).',
    );
    expect((await settled(node)).last_error).toBeNull();
  }, 30_000);

  it('validates per interface with Ironic’s shape', async () => {
    const node = await stack.createNode(SITE);
    const fake = await stack.api.call('GET', `/v1/nodes/${node}/validate`);
    expect(fake.status).toBe(200);
    expect(Object.keys(fake.body)).toEqual([
      'boot',
      'deploy',
      'management',
      'network',
      'power',
      'bios',
      'console',
      'inspect',
      'raid',
      'rescue',
      'storage',
    ]);
    expect(fake.body.power).toEqual({ result: true });
    const bare = await stack.createNode(SITE, { driver: 'ipmi' });
    const ipmi = (await stack.api.call('GET', `/v1/nodes/${bare}/validate`)).body;
    expect(ipmi.power).toEqual({
      result: false,
      reason: "Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].",
    });
    expect(ipmi.management.result).toBe(false);
    expect(ipmi.console.result).toBe(false);
    expect(ipmi.boot).toEqual({
      result: false,
      reason: `Node ${bare} does not have any port associated with it.`,
    });
    expect(ipmi.network).toEqual({ result: true });
    // And the same check refuses a power action up front.
    const refused = await power(bare, 'power on');
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(ipmi.power.reason);
  });
});

describe('ipmi through ipmitool against ipmi_sim', () => {
  it('power on/off/reboot/soft off reach the BMC and are read back', async () => {
    const bmc = bmcs[0] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    expect((await power(node, 'power on')).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power on');
    expect(bmc.power()).toBe('1');
    expect((await power(node, 'power off')).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power off');
    expect(bmc.power()).toBe('0');
    expect((await power(node, 'power on')).status).toBe(202);
    await settled(node);
    expect((await power(node, 'rebooting')).status).toBe(202);
    const rebooted = await settled(node);
    expect(rebooted.power_state).toBe('power on');
    // A reboot is off, then on.
    const calls = readFileSync(join(bmc.dir, 'chassis-state', 'calls.log'), 'utf8')
      .split('\n')
      .filter((line) => / set power /.test(line))
      .map((line) => line.split(' set power ')[1]);
    expect(calls.slice(-2)).toEqual(['0', '1']);
    expect((await power(node, 'soft power off')).status).toBe(202);
    expect((await settled(node, 30_000)).power_state).toBe('power off');
    expect(bmc.power()).toBe('0');
  }, 90_000);

  it('sets the boot device and reads it back; the password never shows', async () => {
    const bmc = bmcs[0] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    const supported = await stack.api.call('GET', `/v1/nodes/${node}/management/boot_device/supported`);
    expect(supported.body.supported_boot_devices).toEqual(['pxe', 'disk', 'cdrom', 'bios', 'safe']);
    for (const device of ['pxe', 'cdrom'] as const) {
      const set = await stack.api.call('PUT', `/v1/nodes/${node}/management/boot_device`, {
        body: { boot_device: device, persistent: false },
      });
      expect(set.status).toBe(204);
      expect(bmc.boot()).toBe(device);
      const got = await stack.api.call('GET', `/v1/nodes/${node}/management/boot_device`);
      expect(got.body.boot_device).toBe(device);
      // ipmi_sim does not keep the persistent flag: it always answers "next boot only".
      expect(got.body.persistent).toBe(false);
    }
    const commands = (await stack.api.call('GET', `/v1/nodes/${node}/commands`)).body.commands;
    expect(commands.length).toBeGreaterThan(0);
    expect(JSON.stringify(commands)).not.toContain('"password"');
    expect(commands[0].args.driver_info.ipmi_password).toBe('******');
    expect(JSON.stringify(agent.logs)).not.toContain('"password"');
  }, 60_000);

  it('inject_nmi reaches the BMC: ipmi_sim refuses power diag, and the API says so', async () => {
    const bmc = bmcs[0] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    const refused = await stack.api.call('PUT', `/v1/nodes/${node}/management/inject_nmi`, { body: {} });
    // ipmi_sim has no diagnostic interrupt (Chassis Control 5): a real BMC's own refusal.
    expect(refused.status).toBe(500);
    expect(refused.fault?.faultstring).toMatch(
      /^IPMI power diag failed for 127\.0\.0\.1: .*Invalid data field in request/,
    );
    expect(refused.fault?.faultstring).not.toContain('password');
    await settled(node); // the lock is released
  }, 60_000);

  it('boot mode: ipmitool has none, so the change fails into last_error as in Ironic', async () => {
    const bmc = bmcs[0] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    const started = await stack.api.call('PUT', `/v1/nodes/${node}/states/boot_mode`, {
      body: { target: 'uefi' },
    });
    expect(started.status).toBe(202);
    const done = await settled(node);
    expect(done.last_error).toBe(
      "Failed to change boot mode to 'uefi: Driver ipmi does not support set_boot_mode (disabled or not implemented).",
    );
    expect((await stack.api.call('GET', `/v1/nodes/${node}`)).body.boot_mode).toBeNull();
  }, 60_000);

  it('a wrong password fails quickly with a clear last_error; the state is unchanged', async () => {
    const bmc = bmcs[1] as SimulatedBmc;
    const node = await ipmiNode(bmc.port, 'wrong-password');
    expect((await power(node, 'power on')).status).toBe(202);
    const after = await settled(node);
    // Quickly means without retrying: one command, failed, run once.
    const finished = agent.lines('command finished', (line) => line.node === node);
    expect(finished).toMatchObject([{ status: 'failed' }]);
    expect(after.power_state).toBeNull();
    expect(after.last_error).toMatch(/^Failed to change power state to 'power on' by 'power on': IPMI/);
    expect(after.last_error).toMatch(/refused the session/);
    expect(bmc.power()).not.toBe('1');
    const got = await stack.api.call('GET', `/v1/nodes/${node}/management/boot_device`);
    expect(got.status).toBe(500);
    expect(got.fault?.faultstring).toMatch(/refused the session/);
  }, 40_000);

  it('an unreachable BMC costs its own timeout and does not hold up another node', async () => {
    const silent = await ipmiNode(silentPort);
    const bmc = bmcs[1] as SimulatedBmc;
    const good = await ipmiNode(bmc.port);
    expect((await power(silent, 'power on')).status).toBe(202);
    expect((await power(good, 'power on')).status).toBe(202);
    expect((await settled(good)).power_state).toBe('power on');
    const failed = await settled(silent, 30_000);
    expect(failed.last_error).toMatch(/no answer/);
    // The good node's command ran while the silent one's was still waiting on its BMC (the
    // agent's log, in order): a silence costs seconds, the dispatch of the next command not.
    const at = (msg: string, node: string) =>
      agent.logs.findIndex((line) => line.msg === msg && line.node === node);
    expect(at('command started', good)).toBeGreaterThanOrEqual(0);
    expect(at('command started', good)).toBeLessThan(at('command finished', silent));
  }, 60_000);
});

describe('power-state sync', () => {
  it('picks up an out-of-band power change', async () => {
    const bmc = bmcs[0] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    expect((await power(node, 'power off')).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power off');
    await makeManageable(node);
    outOfBandPowerOn(bmc);
    await waitFor(
      async () => ((await states(node)).power_state === 'power on' ? true : undefined),
      'the sync to see the change',
      15_000,
    );
  }, 40_000);

  it('with force_power_state_during_sync, drives the hardware back to the recorded state', async () => {
    const bmc = bmcs[1] as SimulatedBmc;
    const node = await ipmiNode(bmc.port);
    expect((await power(node, 'power off')).status).toBe(202);
    expect((await settled(node)).power_state).toBe('power off');
    await makeManageable(node);
    process.env.METALPLANE_FORCE_POWER_STATE_DURING_SYNC = 'true';
    try {
      outOfBandPowerOn(bmc);
      expect(bmc.power()).toBe('1');
      // The sync sees "on", the control plane powers it off again; the record never changes.
      await waitFor(() => (bmc.power() === '0' ? true : undefined), 'the BMC forced back off', 20_000);
      const after = await settled(node);
      expect(after.power_state).toBe('power off');
      expect(stack.logs.some((line) => line.message === 'power state forced back during sync')).toBe(true);
    } finally {
      delete process.env.METALPLANE_FORCE_POWER_STATE_DURING_SYNC;
    }
  }, 40_000);

  it('faults a node whose BMC stops answering, and clears it when it answers again', async () => {
    const port = await freePort();
    const node = await ipmiNode(port);
    await stack.api.deps.nodes.modify(node, (n) => ({
      ...n,
      provision_state: 'manageable',
      power_state: 'power off',
    }));
    const faulted = await waitFor(
      async () => {
        const body = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
        return body.fault === 'power failure' ? body : undefined;
      },
      'the node to be faulted',
      30_000,
    );
    expect(faulted.maintenance).toBe(true);
    expect(faulted.power_state).toBeNull();
    expect(faulted.maintenance_reason).toMatch(/^During sync_power_state, max retries exceeded for node/);
    const revived = await startBmc({ port });
    bmcs.push(revived);
    const recovered = await waitFor(
      async () => {
        const body = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
        return body.fault === null && body.maintenance === false ? body : undefined;
      },
      'the node to recover',
      30_000,
    );
    expect(recovered.power_state).toBe('power off');
    expect(recovered.maintenance_reason).toBeNull();
  }, 90_000);

  it("ignores another site's agent reporting on a node", async () => {
    const node = await stack.createNode(SITE);
    await stack.api.deps.nodes.modify(node, (n) => ({
      ...n,
      provision_state: 'manageable',
      power_state: 'power off',
    }));
    expect((await stack.createSite('other')).status).toBe(201);
    const { credential } = await stack.enroll('other', 'other-agent');
    const sent = await stack.asAgent(credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'power_report',
      reports: [{ node, power_state: 'power on', observed_at: new Date().toISOString() }],
    });
    expect(sent.status).toBe(204);
    expect((await states(node)).power_state).toBe('power off');
    expect(
      stack.logs.some((line) => line.message.startsWith('power report named nodes of another site')),
    ).toBe(true);
    // And its node list holds only its own site's nodes.
    const listed = await stack.asAgent(credential, 'GET', '/v1/agent/nodes');
    expect(listed.status).toBe(200);
    expect(listed.body.nodes).toEqual([]);
  });
});
