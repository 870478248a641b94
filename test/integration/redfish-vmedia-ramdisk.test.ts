/**
 * The Metalplane ramdisk and a kernel+ramdisk deploy over Redfish virtual media, through
 * the API alone: the control plane on moto, a real agent process (driver redfish) and
 * sushy-tools' emulator behind the lab's wrapper as the BMC. The agent builds an ISO from
 * the kernel and ramdisk images (agent/boot/boot-iso.ts) and has the BMC insert it; the
 * test then does what the machine would: downloads the inserted ISO from the URL the BMC
 * was given, reads its kernel command line (ISOLINUX's or systemd-boot's entry), and acts
 * as what boots — the fake ramdisk (`mp.url`, `mp.token`) or the deployed system (its
 * `callback` URL). No boot file, port or PXE is involved.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { type ChannelStack, nodeReaches, startChannel, waitFor } from '../support/channel.ts';
import { FakeRamdisk, fakeInventory } from '../support/fake-ramdisk.ts';
import { uploadKernelRamdisk } from '../support/images.ts';
import { startRedfishAgent } from '../support/redfish-agent.ts';
import { type SushyEmulator, startSushy } from '../support/sushy.ts';

const SITE = 'rf-vmedia';
let stack: ChannelStack;
let agent: AgentProcess;
let bmc: SushyEmulator;
let httpPort: number;
let image: string;
const ramdisks: FakeRamdisk[] = [];

beforeAll(async () => {
  httpPort = await freePort();
  const [channel, emulator] = await Promise.all([
    startChannel({ syncWaitMs: 15_000 }),
    startSushy({ wrapper: true, systems: 3, name: 'rfv' }),
  ]);
  stack = channel;
  bmc = emulator;
  expect((await stack.createSite(SITE)).status).toBe(201);
  agent = await startRedfishAgent(stack, SITE, 'rf-vmedia-agent', {
    httpPort,
    powerSync: false,
    redfish: { request_timeout: '8s', min_request_interval: '0ms', poll_interval: '100ms' },
  });
  image = await uploadKernelRamdisk(
    stack.api,
    `vmedia-ramdisk-${Date.now()}`,
    Buffer.from('metalplane vmedia kernel '.repeat(400)),
    Buffer.from('metalplane vmedia initrd '.repeat(600)),
  );
}, 120_000);

afterAll(async () => {
  for (const ramdisk of ramdisks) ramdisk.stop();
  await agent?.cleanup();
  await bmc?.stop();
  await stack?.close();
});

const system = (i: number) => bmc.systems[i] as (typeof bmc.systems)[number];
const api = (method: string, path: string, body?: unknown) =>
  stack.api.call(method, path, body === undefined ? {} : { body });
const read = async (uuid: string) => (await api('GET', `/v1/nodes/${uuid}`)).body;

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

/** A redfish node booting by virtual media, manageable. */
async function vmediaNode(i: number, extra: Record<string, unknown> = {}): Promise<string> {
  const uuid = await stack.createNode(SITE, {
    driver: 'redfish',
    boot_interface: 'redfish-virtual-media',
    driver_info: {
      redfish_address: bmc.url,
      redfish_system_id: system(i).path,
      redfish_username: bmc.username,
      redfish_password: bmc.password,
      deploy_kernel: image,
      deploy_ramdisk: image,
    },
    ...extra,
  });
  expect((await api('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'manage' })).status).toBe(202);
  await nodeReaches(read, uuid, 'manageable', 30_000);
  return uuid;
}

/** The ISO the BMC holds now (waits for one whose URL differs from `previous`). */
async function insertedIso(i: number, previous?: string): Promise<{ url: string; iso: Buffer }> {
  const url = await waitFor(
    async () => {
      const cd = await redfishGet(`${system(i).path}/VirtualMedia/Cd`);
      return cd.Inserted === true && typeof cd.Image === 'string' && cd.Image !== previous
        ? (cd.Image as string)
        : undefined;
    },
    `an ISO inserted in system ${i}`,
    30_000,
  );
  const answer = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  expect(answer.status).toBe(200);
  return { url, iso: Buffer.from(await answer.arrayBuffer()) };
}

/** The kernel command line of a built ISO: ISOLINUX's append line, or systemd-boot's entry. */
function isoCmdline(iso: Buffer): { firmware: 'bios' | 'uefi'; params: Map<string, string> } {
  const work = mkdtempSync(join(tmpdir(), 'vmedia-iso-'));
  try {
    writeFileSync(join(work, 'boot.iso'), iso);
    execFileSync(
      'xorriso',
      ['-osirrox', 'on', '-indev', join(work, 'boot.iso'), '-extract', '/', join(work, 'x')],
      {
        stdio: 'ignore',
      },
    );
    let firmware: 'bios' | 'uefi';
    let line: string;
    if (existsSync(join(work, 'x/isolinux/isolinux.cfg'))) {
      firmware = 'bios';
      const config = readFileSync(join(work, 'x/isolinux/isolinux.cfg'), 'utf8');
      line = (config.split('\n').find((l) => l.trim().startsWith('append ')) ?? '')
        .trim()
        .slice('append '.length);
    } else {
      firmware = 'uefi';
      const entry = execFileSync(
        'mtype',
        ['-i', join(work, 'x/efiboot.img'), '::/loader/entries/metalplane.conf'],
        {
          env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
          encoding: 'utf8',
        },
      );
      line = (entry.split('\n').find((l) => l.startsWith('options ')) ?? '').slice('options '.length);
    }
    const params = new Map<string, string>();
    for (const word of line.split(' ')) {
      const eq = word.indexOf('=');
      if (eq > 0) params.set(word.slice(0, eq), word.slice(eq + 1));
    }
    return { firmware, params };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const commandsOf = async (uuid: string) =>
  (await api('GET', `/v1/nodes/${uuid}/commands`)).body.commands as Array<{
    action: string;
    args: Record<string, unknown>;
  }>;

describe('the Metalplane ramdisk over Redfish virtual media', () => {
  it('inspection: the agent builds an ISO of the ramdisk, the BMC boots it once from CD; eject removes it', async () => {
    const node = await vmediaNode(0, { inspect_interface: 'agent' });
    const mac = '52:54:00:7f:00:01';
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'inspect' })).status).toBe(202);
    const { url, iso } = await insertedIso(0);
    // Served from the agent's own tree, under an unguessable name, not the catalog's path.
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/vmedia/${node}-[0-9a-f]{32}\\.iso$`));
    const { params } = isoCmdline(iso);
    const token = params.get('mp.token');
    expect(params.get('mp.url')).toBe(`http://127.0.0.1:${httpPort}/ramdisk/v1`);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Boot once from the virtual CD.
    await waitFor(
      async () => {
        const boot = (await redfishGet(system(0).path)).Boot;
        return boot.BootSourceOverrideTarget === 'Cd' && boot.BootSourceOverrideEnabled === 'Once'
          ? true
          : undefined;
      },
      'boot once from Cd',
      30_000,
    );
    const ramdisk = new FakeRamdisk(params.get('mp.url') as string, (step) =>
      step.name === 'inspect'
        ? { status: 'succeeded', result: { inventory: fakeInventory(mac) } }
        : { status: 'failed', error: `unexpected ${step.name}` },
    );
    ramdisks.push(ramdisk);
    expect(await ramdisk.hello(token as string)).toBe(200);
    const done = await nodeReaches(read, node, 'manageable', 60_000);
    expect(done.last_error).toBeNull();
    expect(done.properties).toMatchObject({ cpus: 4, memory_mb: 8192, cpu_arch: 'x86_64' });
    ramdisk.stop();
    expect(ramdisk.errors).toEqual([]);
    // Ejected at the end, and the built ISO is gone from the agent's tree.
    expect((await redfishGet(`${system(0).path}/VirtualMedia/Cd`)).Inserted).toBe(false);
    expect((await fetch(url, { signal: AbortSignal.timeout(10_000) })).status).toBe(404);
    const actions = (await commandsOf(node)).map((c) => c.action);
    expect(actions).toContain('management.insert_vmedia');
    expect(actions).toContain('management.eject_vmedia');
    expect(actions).not.toContain('boot.prepare');
    // The token stays inside the ISO: never in a command's stored args or result.
    expect(JSON.stringify(await commandsOf(node))).not.toContain(token as string);
  }, 120_000);

  it('a ramdisk deploy of a kernel+ramdisk image: the built ISO carries the callback URL; calling it back → active', async () => {
    const node = await vmediaNode(1, {
      deploy_interface: 'ramdisk',
      instance_info: { image_source: image, kernel_append_params: 'console=ttyS0 quiet' },
    });
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'provide' })).status).toBe(202);
    await nodeReaches(read, node, 'available', 30_000);
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' })).status).toBe(202);
    const { url, iso } = await insertedIso(1);
    const { params } = isoCmdline(iso);
    expect(params.get('console')).toBe('ttyS0');
    const callback = params.get('callback');
    expect(callback).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${httpPort}/v1/callback/${node}\\?token=`));
    expect(params.has('mp.token')).toBe(false);
    await nodeReaches(read, node, 'wait call-back', 30_000);
    // Persistent CD: the instance runs from it.
    const boot = (await redfishGet(system(1).path)).Boot;
    expect([boot.BootSourceOverrideTarget, boot.BootSourceOverrideEnabled]).toEqual(['Cd', 'Continuous']);
    // The deployed system calls back, as it would from its kernel command line.
    const called = await fetch(callback as string, { method: 'POST', signal: AbortSignal.timeout(10_000) });
    expect(called.status).toBe(200);
    const active = await nodeReaches(read, node, 'active', 30_000);
    expect(active.last_error).toBeNull();
    // The ISO stays while the instance runs from it; undeploy ejects and removes it.
    expect((await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(10_000) })).status).toBe(200);
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'deleted' })).status).toBe(202);
    await nodeReaches(read, node, 'available', 60_000);
    expect((await redfishGet(`${system(1).path}/VirtualMedia/Cd`)).Inserted).toBe(false);
    expect((await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(10_000) })).status).toBe(404);
  }, 120_000);

  it('a kernel parameter the boot loader would misread is refused before anything is inserted', async () => {
    const node = await vmediaNode(2, {
      deploy_interface: 'ramdisk',
      instance_info: { image_source: image, kernel_append_params: 'console=ttyS0 mp.token=stolen' },
    });
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'provide' })).status).toBe(202);
    await nodeReaches(read, node, 'available', 30_000);
    expect((await api('PUT', `/v1/nodes/${node}/states/provision`, { target: 'active' })).status).toBe(202);
    const failed = await nodeReaches(read, node, 'deploy failed', 30_000);
    expect(failed.last_error).toContain('kernel_append_params must not set mp.url= or mp.token=');
    expect((await redfishGet(`${system(2).path}/VirtualMedia/Cd`)).Inserted).toBe(false);
  }, 120_000);
});
