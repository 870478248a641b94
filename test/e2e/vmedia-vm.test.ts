/**
 * Redfish virtual media end to end: a qemu VM boots a catalog ISO with no PXE, no DHCP
 * entry and no TFTP at all. The control plane on moto; a real agent process (driver
 * redfish) syncs the ISO from moto S3 and serves it from its HTTP tree; sushy-tools'
 * emulator behind the lab's wrapper is the BMC, its node program (the lab's
 * `fakenode.sh`) starts the VM on power on with the inserted image as its CD
 * (`vm-redfish.sh.tmpl`: `-cdrom`, `-boot order=d`, SeaBIOS for Legacy). Through the API
 * alone: boot mode bios, deploy (ramdisk deploy, boot interface redfish-virtual-media) →
 * active, the VM's serial console shows the ISO's own marker; undeploy ejects and powers
 * off. Recipe: ../shared/lab/redfish/README.md §4.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { type ChannelStack, nodeReaches, startChannel, waitFor } from '../support/channel.ts';
import { uploadIso, uploadKernelRamdisk } from '../support/images.ts';
import { buildLabIso, buildLabKernelRamdisk, ISO_MARKER } from '../support/lab-iso.ts';
import { startRedfishAgent } from '../support/redfish-agent.ts';
import { type SushyEmulator, startSushy } from '../support/sushy.ts';

const labDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab');
const SITE = 'e2e-vmedia';
const MAC = '52:54:00:e2:f0:01';
/** From power on to the ISO's marker the lab measured ≈ 16 s (TCG); the machine is shared. */
const BOOT_TIMEOUT_MS = 120_000;

let stack: ChannelStack;
let agent: AgentProcess;
let bmc: SushyEmulator;
let work: string;
let httpPort: number;
let iso: Buffer;
let labKernel: { kernel: Buffer; ramdisk: Buffer };

const nodeDir = () => join(work, 'nodes', bmc.systems[0]?.name ?? 'vm-0');
const nodeFile = (name: string) => {
  try {
    return readFileSync(join(nodeDir(), name), 'utf8');
  } catch {
    return '';
  }
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'metalplane-e2e-vmedia-'));
  httpPort = await freePort();
  const [channel, built, kernelRamdisk] = await Promise.all([
    startChannel({ syncWaitMs: 15_000 }),
    buildLabIso(),
    buildLabKernelRamdisk(),
  ]);
  stack = channel;
  iso = built;
  labKernel = kernelRamdisk;
  bmc = await startSushy({
    wrapper: true,
    systems: [{ name: 'vm-0', mac: MAC, power: 'Off' }],
    nodeProgram: join(labDir, 'fakenode.sh'),
    nodeRoot: join(work, 'nodes'),
  });
  // The VM behind the BMC: started by fakenode.sh on power on, from the node's directory.
  const dir = nodeDir();
  mkdirSync(dir, { recursive: true });
  const template = readFileSync(join(labDir, 'redfish', 'vm-redfish.sh.tmpl'), 'utf8');
  writeFileSync(
    join(dir, 'vm.sh'),
    template.replaceAll('@MAC@', MAC).replaceAll('@ACCEL@', 'tcg').replaceAll('@BOOTURL@', ''),
    { mode: 0o755 },
  );
  expect((await stack.createSite(SITE)).status).toBe(201);
  agent = await startRedfishAgent(stack, SITE, 'vmedia-agent', {
    httpPort,
    powerSync: false,
    redfish: { request_timeout: '20s', poll_interval: '200ms' },
    boot: {
      // The BMC (the emulator, on this host) fetches the ISO from the agent at loopback.
      virtual_media_url: `http://127.0.0.1:${httpPort}`,
      // What booted systems call back at: inside qemu's user network the host is 10.0.2.2.
      http_url: `http://10.0.2.2:${httpPort}`,
    },
  });
}, 180_000);

afterAll(async () => {
  await agent?.cleanup();
  // Powers the VM off through the node program (kills qemu by its PID) if it still runs.
  try {
    const pid = Number(nodeFile('vm.pid').trim());
    if (Number.isInteger(pid) && pid > 0) process.kill(pid);
  } catch {
    // already gone
  }
  await bmc?.stop();
  await stack?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const api = (method: string, path: string, body?: unknown) =>
  stack.api.call(method, path, body === undefined ? {} : { body });
const read = async (uuid: string) => (await api('GET', `/v1/nodes/${uuid}`)).body;

describe('a VM boots a catalog ISO through Redfish virtual media', () => {
  it('boot mode bios, deploy → active from the virtual CD (no PXE); undeploy ejects and powers off', async () => {
    const image = await uploadIso(stack.api, `vmedia-e2e-${Date.now()}`, iso);
    const system = bmc.systems[0] as (typeof bmc.systems)[number];
    const node = await stack.createNode(SITE, {
      driver: 'redfish',
      boot_interface: 'redfish-virtual-media',
      deploy_interface: 'ramdisk',
      driver_info: {
        redfish_address: bmc.url,
        redfish_system_id: system.path,
        redfish_username: bmc.username,
        redfish_password: bmc.password,
      },
      // The ISO cannot carry a callback token: active once it is powered on, as Ironic's ramdisk deploy.
      instance_info: { image_source: image, deploy_callback: false },
    });
    // The lab ISO boots with ISOLINUX: Legacy firmware (the emulator's systems start in UEFI).
    expect((await api('PUT', `/v1/nodes/${node}/states/boot_mode`, { target: 'bios' })).status).toBe(202);
    await waitFor(
      async () => ((await read(node)).boot_mode === 'bios' ? true : undefined),
      'boot mode bios',
      30_000,
    );
    for (const target of ['manage', 'provide']) {
      expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target })).status).toBe(202);
      await nodeReaches(read, node, target === 'manage' ? 'manageable' : 'available', 60_000);
    }
    const started = Date.now();
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' })).status).toBe(202);
    const active = await nodeReaches(read, node, 'active', BOOT_TIMEOUT_MS);
    expect(active.last_error).toBeNull();
    await waitFor(
      async () => (nodeFile('serial.log').includes(ISO_MARKER) ? true : undefined),
      'the ISO to boot and print its marker',
      BOOT_TIMEOUT_MS,
    );
    process.stdout.write(
      `vmedia: deploy → ISO marker on the console in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    // The VM was started once, from the CD, in Legacy mode, with the image the agent serves.
    const events = nodeFile('vm.events').trim().split('\n');
    expect(events.at(-1)).toMatch(/start boot=cdrom order=d mode=legacy cdrom=\S+/);
    const actions = (await api('GET', `/v1/nodes/${node}/commands`)).body.commands.map(
      (c: { action: string }) => c.action,
    );
    expect(actions).toContain('management.insert_vmedia');
    expect(actions).not.toContain('boot.prepare');

    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'deleted' })).status).toBe(202);
    await nodeReaches(read, node, 'available', 90_000);
    const auth = Buffer.from(`${bmc.username}:${bmc.password}`).toString('base64');
    const cd = await fetch(`${bmc.url}${system.path}/VirtualMedia/Cd`, {
      headers: { Authorization: `Basic ${auth}` },
      signal: AbortSignal.timeout(10_000),
    });
    expect(((await cd.json()) as { Inserted: boolean }).Inserted).toBe(false);
  }, 400_000);
  it('a kernel+ramdisk image: the agent builds the ISO; UEFI (systemd-boot) then BIOS (ISOLINUX) each boot it and call back → active', async () => {
    const image = await uploadKernelRamdisk(
      stack.api,
      `vmedia-e2e-kr-${Date.now()}`,
      labKernel.kernel,
      labKernel.ramdisk,
    );
    // The callback is on: the lab's system GETs the callback= URL of its kernel command line.
    const instanceInfo = { image_source: image, kernel_append_params: 'console=ttyS0 quiet' };
    const system = bmc.systems[0] as (typeof bmc.systems)[number];
    const node = await stack.createNode(SITE, {
      driver: 'redfish',
      boot_interface: 'redfish-virtual-media',
      deploy_interface: 'ramdisk',
      driver_info: {
        redfish_address: bmc.url,
        redfish_system_id: system.path,
        redfish_username: bmc.username,
        redfish_password: bmc.password,
      },
    });
    for (const target of ['manage', 'provide']) {
      expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target })).status).toBe(202);
      await nodeReaches(read, node, target === 'manage' ? 'manageable' : 'available', 60_000);
    }
    for (const [mode, firmware] of [
      ['uefi', 'uefi'],
      ['bios', 'legacy'],
    ] as const) {
      expect((await api('PUT', `/v1/nodes/${node}/states/boot_mode`, { target: mode })).status).toBe(202);
      await waitFor(
        async () => ((await read(node)).boot_mode === mode ? true : undefined),
        `boot mode ${mode}`,
        30_000,
      );
      // Undeploy cleared instance_info (as Ironic's tear down does): given again each time.
      const patched = await api('PATCH', `/v1/nodes/${node}`, [
        { op: 'add', path: '/instance_info', value: instanceInfo },
      ]);
      expect(patched.status).toBe(200);
      // The VM is off: its last console goes, so the marker read next is this boot's.
      rmSync(join(nodeDir(), 'serial.log'), { force: true });
      const started = Date.now();
      expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' })).status).toBe(202);
      // Active only once the booted system has called back through the agent.
      const active = await nodeReaches(read, node, 'active', BOOT_TIMEOUT_MS);
      expect(active.last_error).toBeNull();
      expect(nodeFile('serial.log')).toContain(ISO_MARKER);
      process.stdout.write(
        `vmedia ${mode}: deploy of a kernel+ramdisk → called back (active) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
      const events = nodeFile('vm.events').trim().split('\n');
      expect(events.at(-1)).toMatch(new RegExp(`start boot=cdrom order=d mode=${firmware} cdrom=\\S+`));
      // This deploy's insert: an ISO the agent built for this boot mode.
      const inserts = (await api('GET', `/v1/nodes/${node}/commands`)).body.commands.filter(
        (c: { action: string; args: Record<string, unknown> }) =>
          c.action === 'management.insert_vmedia' && c.args.boot_mode === mode,
      );
      expect(inserts).toHaveLength(1);
      expect(inserts[0].args).toMatchObject({ kernel: image, ramdisk: image });
      expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'deleted' })).status).toBe(
        202,
      );
      await nodeReaches(read, node, 'available', 90_000);
    }
  }, 600_000);
});
