/**
 * Provisioning end to end through the API alone: the conductor's flows, the command
 * channel and the real agent process (fake hardware), its boot files and servers, the
 * images it syncs from moto S3, the deploy callback, and Ironic's refusals and timeouts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess } from '../../agent/testing/agent-process.ts';
import { tick } from '../../lambda/conductor/tick.ts';
import { freePort } from '../../local/moto.ts';
import { type ChannelStack, nodeReaches, startChannel } from '../support/channel.ts';
import { uploadKernelRamdisk } from '../support/images.ts';
import { siteAgentConfig } from '../support/ramdisk-site.ts';

let stack: ChannelStack;
let agent: AgentProcess;
let httpPort: number;
let tftpPort: number;
const SITE = 'prov';

function agentConfig(): string {
  return siteAgentConfig(stack, httpPort, ['  dhcp_hosts_dir: ./dhcp-hosts']).replace(
    /^(tftp:\n.*\n.*\n {2}port:) 0$/m,
    `$1 ${tftpPort}`,
  );
}

beforeAll(async () => {
  stack = await startChannel({ syncWaitMs: 15_000 });
  expect((await stack.createSite(SITE)).status).toBe(201);
  expect((await stack.createSite('idle')).status).toBe(201);
  httpPort = await freePort();
  tftpPort = await freePort();
  const { credential } = await stack.enroll(SITE, 'test-agent');
  agent = new AgentProcess().writeConfig(agentConfig());
  await agent.writeCredential(credential);
  await agent.start();
}, 90_000);

afterAll(async () => {
  await agent?.cleanup();
  await stack?.close();
});

async function node(uuid: string) {
  return (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;
}

async function provision(
  uuid: string,
  target: string,
  extra: Record<string, unknown> = {},
  version = '1.82',
) {
  return stack.api.call('PUT', `/v1/nodes/${uuid}/states/provision`, { body: { target, ...extra }, version });
}

/** Waits for the node to reach `state` with nothing in flight. */
const reaches = (uuid: string, state: string, timeoutMs = 20_000) =>
  nodeReaches(node, uuid, state, timeoutMs);

describe('fake-hardware (fake boot and deploy)', () => {
  it('enroll → manageable → available → active → available through the API alone, with history', async () => {
    const uuid = await stack.createNode(SITE);
    const manage = await provision(uuid, 'manage');
    expect(manage.status).toBe(202);
    expect(manage.headers.get('location')).toBe(`${stack.api.url}/v1/nodes/${uuid}/states`);
    const manageable = await reaches(uuid, 'manageable');
    expect(manageable.power_state).toBe('power off');
    expect(manageable.last_error).toBeNull();
    expect((await provision(uuid, 'provide')).status).toBe(202);
    await reaches(uuid, 'available');
    expect((await provision(uuid, 'active')).status).toBe(202);
    const active = await reaches(uuid, 'active');
    expect(active.power_state).toBe('power on');
    expect(active.target_provision_state).toBeNull();
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    const available = await reaches(uuid, 'available');
    expect(available.power_state).toBe('power off');

    const history = (await stack.api.call('GET', `/v1/nodes/${uuid}/history?detail=true`)).body.history;
    const moves = history.map(
      (event: { event: string }) => /moved to provision state "([^"]+)"/.exec(event.event)?.[1],
    );
    expect(moves).toEqual([
      'verifying',
      'manageable',
      'cleaning',
      'available',
      'deploying',
      'active',
      'deleting',
      'cleaning',
      'available',
    ]);
    expect(history.every((event: { severity: string }) => event.severity === 'INFO')).toBe(true);
  }, 60_000);

  it('refuses invalid transitions with Ironic’s status and message, and writes nothing', async () => {
    const uuid = await stack.createNode(SITE);
    const deploy = await provision(uuid, 'active');
    expect(deploy.status).toBe(400);
    expect(deploy.fault?.faultstring).toBe(
      `The requested action "active" can not be performed on node "${uuid}" while it is in state "enroll".`,
    );
    const bogus = await provision(uuid, 'sideways');
    expect(bogus.status).toBe(400);
    const tooOld = await provision(uuid, 'manage', {}, '1.3');
    expect(tooOld.status).toBe(406);
    const after = await node(uuid);
    expect(after.provision_state).toBe('enroll');
    expect(after.last_error).toBeNull();
    expect((await stack.api.call('GET', `/v1/nodes/${uuid}/history`)).body.history).toEqual([]);
  });

  it('a second action while one is in flight is 409; expiry fails the action with last_error', async () => {
    // Site "idle" has no agent: the first command waits.
    const uuid = await stack.createNode('idle');
    expect((await provision(uuid, 'manage')).status).toBe(202);
    const verifying = await node(uuid);
    expect(verifying.provision_state).toBe('verifying');
    expect(verifying.target_provision_state).toBe('manageable');
    expect(verifying.reservation).toBe('idle');
    const again = await provision(uuid, 'manage');
    expect(again.status).toBe(409);
    expect(again.fault?.faultstring).toBe(
      `Node ${uuid} is locked by host idle, please retry after the current operation is completed.`,
    );
    expect(
      (await stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, { body: { target: 'power on' } }))
        .status,
    ).toBe(409);
    const [command] = (await stack.api.call('GET', `/v1/nodes/${uuid}/commands`)).body.commands;
    const stored = await stack.runtime.commands.get(command.id);
    expect(await stack.runtime.queue.expire(stored!.command, stored!.receipt)).toBe(true);
    const failed = await node(uuid);
    // A failed verification goes back to enroll (Ironic's verify failure).
    expect(failed.provision_state).toBe('enroll');
    expect(failed.reservation).toBeNull();
    expect(failed.last_error).toMatch(
      /^Failed to verify node: read_power failed: Command power\.get .* expired/,
    );
    const history = (await stack.api.call('GET', `/v1/nodes/${uuid}/history`)).body.history;
    expect(history.some((event: { severity: string }) => event.severity === 'ERROR')).toBe(true);
  });
});

describe('the other verbs (fake-hardware)', () => {
  async function manageable(): Promise<string> {
    const uuid = await stack.createNode(SITE);
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    return uuid;
  }

  it('inspect records when it ran; adopt makes a node active without deploying; rebuild redeploys', async () => {
    const inspected = await manageable();
    expect((await provision(inspected, 'inspect')).status).toBe(202);
    const after = await reaches(inspected, 'manageable');
    expect(after.inspection_started_at).not.toBeNull();
    expect(after.inspection_finished_at).not.toBeNull();

    const adopted = await manageable();
    expect((await provision(adopted, 'adopt')).status).toBe(202);
    await reaches(adopted, 'active');

    expect((await provision(adopted, 'rebuild')).status).toBe(202);
    const rebuilt = await reaches(adopted, 'active');
    expect(rebuilt.power_state).toBe('power on');
    const moves = (await stack.api.call('GET', `/v1/nodes/${adopted}/history`)).body.history.map(
      (event: { event: string }) => /moved to provision state "([^"]+)"/.exec(event.event)?.[1],
    );
    expect(moves.slice(-4)).toEqual(['adopting', 'active', 'deploying', 'active']);
  }, 60_000);

  it('manual clean runs the power and boot steps and returns to manageable; unknown steps are refused', async () => {
    const uuid = await manageable();
    const cleaned = await provision(uuid, 'clean', {
      clean_steps: [
        { interface: 'power', step: 'power_on' },
        { interface: 'management', step: 'set_boot_device', args: { boot_device: 'pxe' } },
        { interface: 'power', step: 'power_off' },
      ],
    });
    expect(cleaned.status).toBe(202);
    const back = await reaches(uuid, 'manageable');
    expect(back.power_state).toBe('power off');
    expect(back.clean_step).toEqual({});
    const actions = (await stack.api.call('GET', `/v1/nodes/${uuid}/commands`)).body.commands
      .map((c: { action: string }) => c.action)
      .slice(0, 3)
      .reverse();
    expect(actions).toEqual(['power.set', 'management.set_boot_device', 'power.set']);
    const erase = await provision(uuid, 'clean', {
      clean_steps: [{ interface: 'deploy', step: 'erase_devices' }],
    });
    expect(erase.status).toBe(400);
    expect(erase.fault?.faultstring).toMatch(/Clean step deploy\.erase_devices is not supported/);
    expect((await node(uuid)).provision_state).toBe('manageable');
  }, 60_000);

  it('abort: refused in wait call-back (Ironic 21.4), a clean wait ends clean failed; manage recovers', async () => {
    const waiting = await stack.createNode(SITE);
    await stack.api.deps.nodes.modify(waiting, (n) => ({
      ...n,
      provision_state: 'wait call-back',
      target_provision_state: 'active',
    }));
    const refused = await provision(waiting, 'abort');
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toMatch(
      /can not be performed .* while it is in state "wait call-back"/,
    );

    const cleaning = await stack.createNode(SITE);
    await stack.api.deps.nodes.modify(cleaning, (n) => ({
      ...n,
      provision_state: 'clean wait',
      target_provision_state: 'available',
    }));
    expect((await provision(cleaning, 'abort')).status).toBe(202);
    expect((await node(cleaning)).provision_state).toBe('clean failed');
    expect((await provision(cleaning, 'manage')).status).toBe(202);
    await reaches(cleaning, 'manageable');
  }, 30_000);
});

/** Registers a kernel+ramdisk image and uploads it through the presigned URLs. */
async function uploadPair(name: string): Promise<{ uuid: string; kernel: Buffer; ramdisk: Buffer }> {
  const kernel = Buffer.from(`kernel of ${name} `.repeat(2000));
  const ramdisk = Buffer.from(`ramdisk of ${name} `.repeat(3000));
  return { uuid: await uploadKernelRamdisk(stack.api, name, kernel, ramdisk), kernel, ramdisk };
}

describe('ramdisk deploy with iPXE boot files', () => {
  it('waits for the image at the site, writes boot files and DHCP entries, waits for the callback, cleans up', async () => {
    const mac = '52:54:00:aa:bb:01';
    const uuid = await stack.createNode(SITE, { boot_interface: 'ipxe', deploy_interface: 'ramdisk' });
    expect(
      (
        await stack.api.call('POST', '/v1/ports', {
          body: { node_uuid: uuid, address: mac, pxe_enabled: true },
        })
      ).status,
    ).toBe(201);
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    await provision(uuid, 'provide');
    await reaches(uuid, 'available');

    // The agent is stopped while the image is made: the deploy must wait for it.
    await agent.kill('SIGTERM');
    const image = await uploadPair(`pair-${Date.now()}`);
    expect(
      (
        await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
          body: [
            { op: 'add', path: '/instance_info/image_source', value: image.uuid },
            { op: 'add', path: '/instance_info/kernel_append_params', value: 'console=ttyS0' },
          ],
        })
      ).status,
    ).toBe(200);
    expect((await provision(uuid, 'active')).status).toBe(202);
    const waiting = await node(uuid);
    expect(waiting.provision_state).toBe('deploying');
    expect(waiting.deploy_step.step).toBe('wait_for_image');
    expect(waiting.reservation).not.toBeNull();

    await agent.start();
    const callbackWait = await reaches(uuid, 'wait call-back', 40_000);
    expect(callbackWait.target_provision_state).toBe('active');
    expect(callbackWait.power_state).toBe('power on');

    // The files are there, keyed by MAC, and served over HTTP (Range) and TFTP.
    const http = join(agent.dir, 'http');
    const tftp = join(agent.dir, 'tftp');
    const script = readFileSync(join(http, 'pxelinux.cfg', '52-54-00-aa-bb-01'), 'utf8');
    expect(script).toMatch(/^#!ipxe/);
    expect(script).toContain(`/images/${image.uuid}/kernel`);
    expect(script).toContain('console=ttyS0');
    const callback = /callback=(\S+)/.exec(script)?.[1];
    expect(callback).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/v1/callback/${uuid}\\?token=`));
    expect(existsSync(join(tftp, 'pxelinux.cfg', '01-52-54-00-aa-bb-01'))).toBe(true);
    expect(readdirSync(join(agent.dir, 'dhcp-hosts'))).toEqual(['ironic-52:54:00:aa:bb:01.conf']);
    const ranged = await fetch(`http://127.0.0.1:${httpPort}/images/${image.uuid}/kernel`, {
      headers: { Range: 'bytes=0-9' },
    });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(image.kernel.subarray(0, 10));
    const viaTftp = execFileSync('curl', [
      '-s',
      `tftp://127.0.0.1:${tftpPort}/pxelinux.cfg/01-52-54-00-aa-bb-01`,
    ]);
    expect(viaTftp.toString()).toContain(uuid);

    // A wrong token is refused; the right one, once, makes the node active.
    const forged = await fetch(`http://127.0.0.1:${httpPort}/v1/callback/${uuid}?token=${'x'.repeat(32)}`);
    expect(forged.status).not.toBe(200);
    expect((await node(uuid)).provision_state).toBe('wait call-back');
    const called = await fetch(callback as string);
    expect(called.status).toBe(200);
    await reaches(uuid, 'active');
    expect((await fetch(callback as string)).status).not.toBe(200);

    // Undeploy: power off, files and DHCP entries gone, instance forgotten.
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    const clean = await reaches(uuid, 'available');
    expect(clean.power_state).toBe('power off');
    expect(clean.instance_info).toEqual({});
    expect(existsSync(join(http, 'pxelinux.cfg', '52-54-00-aa-bb-01'))).toBe(false);
    expect(existsSync(join(tftp, 'pxelinux.cfg', '01-52-54-00-aa-bb-01'))).toBe(false);
    expect(readdirSync(join(agent.dir, 'dhcp-hosts'))).toEqual([]);
  }, 120_000);

  it('a deploy whose callback never comes fails at the timeout with last_error', async () => {
    const uuid = await stack.createNode(SITE, { boot_interface: 'ipxe', deploy_interface: 'ramdisk' });
    await stack.api.call('POST', '/v1/ports', { body: { node_uuid: uuid, address: '52:54:00:aa:bb:02' } });
    const image = await uploadPair(`late-${Date.now()}`);
    await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [{ op: 'add', path: '/instance_info/image_source', value: image.uuid }],
    });
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    await provision(uuid, 'provide');
    await reaches(uuid, 'available');
    await provision(uuid, 'active');
    await reaches(uuid, 'wait call-back', 40_000);
    process.env.METALPLANE_DEPLOY_CALLBACK_TIMEOUT = '0.001';
    try {
      const report = await tick(stack.runtime);
      expect(report.callbackTimeouts).toBeGreaterThanOrEqual(1);
    } finally {
      delete process.env.METALPLANE_DEPLOY_CALLBACK_TIMEOUT;
    }
    const failed = await node(uuid);
    expect(failed.provision_state).toBe('deploy failed');
    expect(failed.last_error).toBe(`Timeout reached while waiting for callback for node ${uuid}`);
    // From deploy failed, undeploy cleans up.
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    await reaches(uuid, 'available');
  }, 90_000);

  it('without the callback (deploy_callback false) the deploy ends at power-on into the boot files', async () => {
    const uuid = await stack.createNode(SITE, { boot_interface: 'ipxe', deploy_interface: 'ramdisk' });
    await stack.api.call('POST', '/v1/ports', { body: { node_uuid: uuid, address: '52:54:00:aa:bb:04' } });
    const image = await uploadPair(`nocb-${Date.now()}`);
    await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [
        { op: 'add', path: '/instance_info/image_source', value: image.uuid },
        { op: 'add', path: '/instance_info/deploy_callback', value: false },
      ],
    });
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    await provision(uuid, 'provide');
    await reaches(uuid, 'available');
    await provision(uuid, 'active');
    const active = await reaches(uuid, 'active', 40_000);
    expect(active.power_state).toBe('power on');
    const script = readFileSync(join(agent.dir, 'http', 'pxelinux.cfg', '52-54-00-aa-bb-04'), 'utf8');
    expect(script).toContain(`/images/${image.uuid}/kernel`);
    expect(script).not.toContain('callback=');
    await provision(uuid, 'deleted');
    await reaches(uuid, 'available');
    expect(existsSync(join(agent.dir, 'http', 'pxelinux.cfg', '52-54-00-aa-bb-04'))).toBe(false);
  }, 90_000);

  it('a deploy without an image or a PXE port is refused up front', async () => {
    const uuid = await stack.createNode(SITE, { boot_interface: 'ipxe', deploy_interface: 'ramdisk' });
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    await provision(uuid, 'provide');
    await reaches(uuid, 'available');
    const noImage = await provision(uuid, 'active');
    expect(noImage.status).toBe(400);
    expect(noImage.fault?.faultstring).toMatch(/instance_info/);
    await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [{ op: 'add', path: '/instance_info/image_source', value: 'no-such-image' }],
    });
    const unknown = await provision(uuid, 'active');
    expect(unknown.status).toBe(400);
    expect(unknown.fault?.faultstring).toMatch(/Image no-such-image .* could not be found/);
    expect((await node(uuid)).provision_state).toBe('available');
  }, 60_000);

  it('a callback that arrives before the reboot step is reported is kept, and the deploy ends active', async () => {
    // Site "idle" has no agent: the test plays the agent's results itself, in order.
    const uuid = await stack.createNode('idle', { boot_interface: 'ipxe', deploy_interface: 'ramdisk' });
    await stack.api.call('POST', '/v1/ports', { body: { node_uuid: uuid, address: '52:54:00:aa:bb:03' } });
    const image = await uploadPair(`early-${Date.now()}`);
    const { provisioning, conductor, commands } = stack.runtime;
    await provisioning.images.putSync(
      {
        image: image.uuid,
        site: 'idle',
        state: 'ready',
        bytes_done: 1,
        bytes_total: 1,
        error: null,
        observed_at: new Date().toISOString(),
        reported_by: 'test',
        updated_at: new Date().toISOString(),
      },
      (await provisioning.images.get(image.uuid))!.image.created_at,
    );
    await stack.api.deps.nodes.modify(uuid, (n) => ({
      ...n,
      provision_state: 'available',
      instance_info: { image_source: image.uuid },
    }));
    expect((await provision(uuid, 'active')).status).toBe(202);
    const succeed = async () => {
      const current = (await stack.api.deps.nodes.get(uuid))!.node;
      const stored = (await commands.get(current.task!.command))!.command;
      const done = { ...stored, status: 'succeeded' as const, result: { power_state: 'power on' } };
      expect(await conductor.commandFinished(done)).toBe(true);
      return stored;
    };
    const prepare = await succeed();
    expect(prepare.action).toBe('boot.prepare');
    // Sealed in the record (only its agent gets it opened); the test opens it as the queue would.
    const sealedToken = prepare.args.callback_token as string;
    expect(sealedToken.startsWith('mpsealed:1:')).toBe(true);
    const token = JSON.parse(await stack.api.deps.sealer.open(sealedToken, { node: uuid })) as string;
    // The API never shows the token.
    const shown = (await stack.api.call('GET', `/v1/nodes/${uuid}/commands/${prepare.id}`)).body;
    expect(shown.args.callback_token).toBe('******');
    await succeed(); // boot device
    // The booted system calls back while the reboot step is still out.
    expect(await provisioning.provisioner.callback('idle', uuid, 'not-the-token-at-all')).toBe('refused');
    expect(await provisioning.provisioner.callback('prov', uuid, token)).toBe('refused');
    expect(await provisioning.provisioner.callback('idle', uuid, token)).toBe('accepted');
    expect((await node(uuid)).provision_state).toBe('deploying');
    expect((await succeed()).action).toBe('power.set'); // reboot
    const active = await node(uuid);
    expect(active.provision_state).toBe('active');
    expect(active.reservation).toBeNull();
  }, 60_000);
});
