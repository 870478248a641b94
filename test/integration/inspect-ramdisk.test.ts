/**
 * In-band inspection and cleaning on the Metalplane ramdisk, end to end: the real API,
 * conductor, command queue and WebSocket channel (`startChannel`), an in-process agent
 * (`startAgent`, fake-hardware: no BMC) that syncs the deploy ramdisk image from moto S3
 * and writes its boot files, and a fake ramdisk (test/support/fake-ramdisk.ts) that reads
 * `mp.url`/`mp.token` from the iPXE script the agent wrote and answers the steps.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ipxeScriptPath } from '../../agent/boot/render.ts';
import { RAMDISK_WAIT_TIMEOUT_ENV } from '../../lambda/config.ts';
import type { RamdiskStep } from '../../protocol/ramdisk.ts';
import { type ChannelStack, nodeReaches } from '../support/channel.ts';
import { type FakeRamdisk, fakeInventory, type StepOutcome } from '../support/fake-ramdisk.ts';
import { uploadKernelRamdisk } from '../support/images.ts';
import { type RamdiskSite, ramdiskSiteHooks, startRamdiskSite } from '../support/ramdisk-site.ts';

const SITE = 'inspect';
let site: RamdiskSite;
let stack: ChannelStack;
let dir: string;
let image: string;

beforeAll(async () => {
  site = await startRamdiskSite(SITE, { hostname: 'inspect-agent', tempPrefix: 'inspect-ramdisk-' });
  ({ stack, dir } = site);
  const kernel = Buffer.from('metalplane ramdisk kernel '.repeat(500));
  const initrd = Buffer.from('metalplane ramdisk initrd '.repeat(700));
  image = await uploadKernelRamdisk(stack.api, `mp-ramdisk-${Date.now()}`, kernel, initrd);
}, 120_000);

ramdiskSiteHooks(() => site);

afterEach(() => {
  delete process.env[RAMDISK_WAIT_TIMEOUT_ENV];
});

const api: RamdiskSite['api'] = (...args) => site.api(...args);

const node = (uuid: string) => site.node(uuid);

/** Waits for the node to reach `state` with nothing in flight. */
const reaches = (uuid: string, state: string, timeoutMs = 30_000) =>
  nodeReaches(node, uuid, state, timeoutMs);

/** A manageable fake-hardware node inspected in band, its deploy ramdisk `image`, one PXE port. */
async function ramdiskNode(mac: string, extra: Record<string, unknown> = {}): Promise<string> {
  const uuid = await stack.createNode(SITE, {
    boot_interface: 'ipxe',
    inspect_interface: 'agent',
    driver_info: { deploy_kernel: image, deploy_ramdisk: image },
    ...extra,
  });
  const port = await api('POST', '/v1/ports', { node_uuid: uuid, address: mac, pxe_enabled: true });
  expect(port.status).toBe(201);
  expect((await api('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'manage' })).status).toBe(202);
  await reaches(uuid, 'manageable');
  return uuid;
}

/** The node's ramdisk boots from the boot files the agent wrote for `mac` (`RamdiskSite.bootRamdisk`). */
const bootRamdisk = (
  mac: string,
  run: (step: RamdiskStep) => StepOutcome,
  previous?: string,
): Promise<FakeRamdisk & { token: string; script: string }> =>
  site.bootRamdisk(mac, run, { previous, timeoutMs: 30_000 });

const provision = (uuid: string, target: string, extra: Record<string, unknown> = {}) =>
  api('PUT', `/v1/nodes/${uuid}/states/provision`, { target, ...extra });

describe('in-band inspection (inspect_interface agent)', () => {
  it('boots the ramdisk, applies its inventory (properties, ports, inventory record) → manageable', async () => {
    const booted = '52:54:00:1a:00:01';
    const pxe = '52:54:00:1a:00:02';
    const uuid = await ramdiskNode(booted);
    const inventory = fakeInventory(pxe);
    const reported = {
      ...inventory,
      interfaces: [
        { ...inventory.interfaces[0], name: 'eth1', mac_address: booted },
        ...inventory.interfaces,
      ],
    };
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    const inspecting = await node(uuid);
    expect(inspecting.provision_state).toBe('inspecting');
    expect(inspecting.inspection_started_at).not.toBeNull();

    const ramdisk = await bootRamdisk(booted, (step) =>
      step.name === 'inspect'
        ? { status: 'succeeded', result: { inventory: reported } }
        : { status: 'failed', error: `unexpected ${step.name}` },
    );
    const done = await reaches(uuid, 'manageable');
    expect(done.last_error).toBeNull();
    expect(done.inspection_finished_at).not.toBeNull();
    expect(done.power_state).toBe('power off');
    expect(done.properties).toMatchObject({ cpus: 4, memory_mb: 8192, local_gb: 19, cpu_arch: 'x86_64' });
    expect(ramdisk.ran.map((step) => step.name)).toEqual(['inspect']);

    // A port for the inventory's PXE MAC; the booted NIC's port no longer PXE-enabled.
    const ports = (await api('GET', `/v1/nodes/${uuid}/ports/detail`)).body.ports as Array<{
      address: string;
      pxe_enabled: boolean;
    }>;
    expect(ports.map((p) => [p.address, p.pxe_enabled]).sort()).toEqual([
      [booted, false],
      [pxe, true],
    ]);
    const stored = await api('GET', `/v1/nodes/${uuid}/inventory`, undefined, '1.81');
    expect(stored.status).toBe(200);
    expect(stored.body.inventory).toEqual(reported);
    expect(stored.body.plugin_data.macs).toEqual([pxe]);
    // The boot files are gone.
    expect(existsSync(join(dir, 'http', ipxeScriptPath(booted)))).toBe(false);
  }, 60_000);

  it('waits for the deploy ramdisk image at the site first, as a deploy does', async () => {
    const mac = '52:54:00:1a:00:a1';
    const uuid = await ramdiskNode(mac);
    const fresh = await uploadKernelRamdisk(
      stack.api,
      `mp-ramdisk-late-${Date.now()}`,
      Buffer.from('late kernel '.repeat(300)),
      Buffer.from('late initrd '.repeat(400)),
    );
    const patched = await api('PATCH', `/v1/nodes/${uuid}`, [
      { op: 'replace', path: '/driver_info/deploy_kernel', value: fresh },
      { op: 'replace', path: '/driver_info/deploy_ramdisk', value: fresh },
    ]);
    expect(patched.status).toBe(200);
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    const booted = await bootRamdisk(mac, () => ({
      status: 'succeeded',
      result: { inventory: fakeInventory(mac) },
    }));
    expect(booted.script).toContain(`/images/${fresh}/kernel`);
    const done = await reaches(uuid, 'manageable');
    expect(done.last_error).toBeNull();
  }, 60_000);

  it('skips, with a warning, a port whose MAC another node holds (Ironic: MACAlreadyExists)', async () => {
    const held = '52:54:00:1a:00:91';
    const other = await stack.createNode(SITE);
    expect((await api('POST', '/v1/ports', { node_uuid: other, address: held })).status).toBe(201);
    const booted = '52:54:00:1a:00:92';
    const uuid = await ramdiskNode(booted);
    const inventory = fakeInventory(held);
    const reported = {
      ...inventory,
      interfaces: [
        { ...inventory.interfaces[0], name: 'eth1', mac_address: booted },
        ...inventory.interfaces,
      ],
    };
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    await bootRamdisk(booted, () => ({ status: 'succeeded', result: { inventory: reported } }));
    const done = await reaches(uuid, 'manageable');
    expect(done.properties.cpus).toBe(4);
    const ports = (await api('GET', `/v1/nodes/${uuid}/ports`)).body.ports as Array<{ address: string }>;
    expect(ports.map((p) => p.address)).toEqual([booted]);
    expect(
      stack.logs.some(
        (line) => line.level === 'warn' && line.message.includes(`MAC address ${held} already exists`),
      ),
    ).toBe(true);
  }, 60_000);

  it("fails with the ramdisk's error in last_error → inspect failed", async () => {
    const mac = '52:54:00:1a:00:11';
    const uuid = await ramdiskNode(mac);
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    await bootRamdisk(mac, () => ({ status: 'failed', error: 'no disks found' }));
    const failed = await reaches(uuid, 'inspect failed');
    expect(failed.last_error).toBe(
      `Failed to inspect hardware: ramdisk_inspect failed: ramdisk step inspect failed on node ${uuid}: no disks found`,
    );
    // Cleaned up before failing, as Ironic's error handler does: powered off, the
    // ramdisk's boot files (and so its token) gone.
    expect(failed.power_state).toBe('power off');
    expect(existsSync(join(dir, 'http', ipxeScriptPath(mac)))).toBe(false);
    const commands = (await api('GET', `/v1/nodes/${uuid}/commands`)).body.commands as Array<{
      action: string;
    }>;
    expect(commands.slice(0, 2).map((command) => command.action)).toEqual(['boot.clean', 'power.set']);
  }, 60_000);

  it('fails when the ramdisk never says hello within the wait → inspect failed', async () => {
    process.env[RAMDISK_WAIT_TIMEOUT_ENV] = '2';
    const mac = '52:54:00:1a:00:21';
    const uuid = await ramdiskNode(mac);
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    const failed = await reaches(uuid, 'inspect failed');
    expect(failed.last_error).toMatch(/^Failed to inspect hardware: ramdisk_wait failed: /);
  }, 60_000);

  it('refuses an inventory the checks refuse → inspect failed, nothing stored', async () => {
    const mac = '52:54:00:1a:00:31';
    const uuid = await ramdiskNode(mac);
    expect((await provision(uuid, 'inspect')).status).toBe(202);
    const inventory = fakeInventory(mac);
    await bootRamdisk(mac, () => ({
      status: 'succeeded',
      result: { inventory: { ...inventory, interfaces: [] } },
    }));
    const failed = await reaches(uuid, 'inspect failed');
    expect(failed.last_error).toMatch(/^Failed to inspect hardware: ramdisk_inspect failed: /);
    expect((await api('GET', `/v1/nodes/${uuid}/inventory`, undefined, '1.81')).status).toBe(404);
  }, 60_000);

  it('refuses a node without its deploy ramdisk, and no-inspect as Ironic does', async () => {
    const uuid = await stack.createNode(SITE, { boot_interface: 'ipxe', inspect_interface: 'agent' });
    await api('POST', '/v1/ports', { node_uuid: uuid, address: '52:54:00:1a:00:41', pxe_enabled: true });
    await provision(uuid, 'manage');
    await reaches(uuid, 'manageable');
    const missing = await provision(uuid, 'inspect');
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toContain("Missing are: ['deploy_kernel', 'deploy_ramdisk']");
    const none = await stack.createNode(SITE, { inspect_interface: 'no-inspect' });
    await provision(none, 'manage');
    await reaches(none, 'manageable');
    const refused = await provision(none, 'inspect');
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain(
      'Driver fake-hardware does not support inspect (disabled or not implemented).',
    );
  }, 60_000);
});

describe('cleaning on the ramdisk', () => {
  it('provide runs erase_devices_metadata on the ramdisk → available', async () => {
    const mac = '52:54:00:1a:00:51';
    const uuid = await ramdiskNode(mac);
    expect((await provision(uuid, 'provide')).status).toBe(202);
    const ramdisk = await bootRamdisk(mac, (step) =>
      step.name === 'erase_devices_metadata'
        ? { status: 'succeeded', result: { disks: [{ name: '/dev/vda', method: 'metadata' }] } }
        : { status: 'failed', error: `unexpected ${step.name}` },
    );
    const done = await reaches(uuid, 'available');
    expect(done.last_error).toBeNull();
    expect(done.power_state).toBe('power off');
    expect(ramdisk.ran.map((step) => step.name)).toEqual(['erase_devices_metadata']);
  }, 60_000);

  it('a failed erase fails the cleaning with its error; automated_clean false keeps the power off only', async () => {
    const mac = '52:54:00:1a:00:61';
    const uuid = await ramdiskNode(mac);
    expect((await provision(uuid, 'provide')).status).toBe(202);
    await bootRamdisk(mac, () => ({ status: 'failed', error: 'disk busy' }));
    const failed = await reaches(uuid, 'clean failed');
    expect(failed.last_error).toBe(
      `Clean step erase_devices_metadata failed: ramdisk step erase_devices_metadata failed on node ${uuid}: disk busy`,
    );

    const quick = await ramdiskNode('52:54:00:1a:00:62', { automated_clean: false });
    expect((await provision(quick, 'provide')).status).toBe(202);
    await reaches(quick, 'available');
  }, 60_000);

  it("follows the site's cleaning setting (node's automated_clean → site's → control plane's)", async () => {
    const setCleaning = (value: Record<string, unknown>) =>
      api('PATCH', `/v1/sites/${SITE}`, [{ op: 'replace', path: '/cleaning', value }]);
    const bad = await setCleaning({ automated_clean: 'yes' });
    expect(bad.status).toBe(400);
    expect((await api('GET', `/v1/sites/${SITE}`)).body.cleaning).toEqual({
      automated_clean: null,
      erase_devices: null,
    });
    try {
      // erase_devices on at the site: both steps, in Ironic's priority order.
      const patched = await setCleaning({ erase_devices: true });
      expect(patched.status).toBe(200);
      expect(patched.body.cleaning).toEqual({ automated_clean: null, erase_devices: true });
      const mac = '52:54:00:1a:01:01';
      const uuid = await ramdiskNode(mac);
      expect((await provision(uuid, 'provide')).status).toBe(202);
      const ramdisk = await bootRamdisk(mac, () => ({ status: 'succeeded', result: { disks: [] } }));
      await reaches(uuid, 'available');
      expect(ramdisk.ran.map((step) => step.name)).toEqual(['erase_devices_metadata', 'erase_devices']);

      // automated cleaning off at the site: power off only, no ramdisk boot files written…
      expect((await setCleaning({ automated_clean: false })).status).toBe(200);
      const quickMac = '52:54:00:1a:01:02';
      const quick = await ramdiskNode(quickMac);
      expect((await provision(quick, 'provide')).status).toBe(202);
      const done = await reaches(quick, 'available');
      expect(done.power_state).toBe('power off');
      expect(existsSync(join(dir, 'http', ipxeScriptPath(quickMac)))).toBe(false);

      // …unless the node asks for it: its own automated_clean wins, as in Ironic.
      const mine = '52:54:00:1a:01:03';
      const insisting = await ramdiskNode(mine, { automated_clean: true });
      expect((await provision(insisting, 'provide')).status).toBe(202);
      const booted = await bootRamdisk(mine, () => ({ status: 'succeeded', result: { disks: [] } }));
      await reaches(insisting, 'available');
      expect(booted.ran.map((step) => step.name)).toEqual(['erase_devices_metadata']);
    } finally {
      expect((await api('PATCH', `/v1/sites/${SITE}`, [{ op: 'remove', path: '/cleaning' }])).status).toBe(
        200,
      );
    }
  }, 120_000);

  it('undeploy tears down, then cleans on the ramdisk (deleting → cleaning) → available', async () => {
    const mac = '52:54:00:1a:00:81';
    const uuid = await ramdiskNode(mac);
    await stack.api.deps.nodes.modify(uuid, (n) => ({
      ...n,
      provision_state: 'active',
      instance_info: { image_source: 'gone' },
    }));
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    const ramdisk = await bootRamdisk(mac, () => ({ status: 'succeeded', result: { disks: [] } }));
    const done = await reaches(uuid, 'available');
    expect(done.instance_info).toEqual({});
    expect(done.last_error).toBeNull();
    expect(ramdisk.ran.map((step) => step.name)).toEqual(['erase_devices_metadata']);
    const history = (await api('GET', `/v1/nodes/${uuid}/history`)).body.history as Array<{
      event: string;
    }>;
    expect(history.map((h) => h.event).join('\n')).toMatch(/deleting.*cleaning/s);
  }, 60_000);

  it('manual clean with erase_devices_metadata runs it on the ramdisk → manageable', async () => {
    const mac = '52:54:00:1a:00:71';
    const uuid = await ramdiskNode(mac, { automated_clean: false });
    const started = await provision(uuid, 'clean', {
      clean_steps: [{ interface: 'deploy', step: 'erase_devices_metadata' }],
    });
    expect(started.status).toBe(202);
    const ramdisk = await bootRamdisk(mac, () => ({ status: 'succeeded', result: { disks: [] } }));
    await reaches(uuid, 'manageable');
    expect(ramdisk.ran.map((step) => step.name)).toEqual(['erase_devices_metadata']);
  }, 60_000);
});
