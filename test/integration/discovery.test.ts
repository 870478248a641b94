/**
 * Discovery per site (Ironic's inspector discovery / auto-enroll), end to end: the real
 * API, conductor and WebSocket channel (`startChannel`), an in-process agent
 * (`startAgent`) that syncs the deploy ramdisk image from moto S3, and the fake ramdisk
 * of test/support/fake-ramdisk.ts, which boots what `boot.ipxe` falls back to (fetched
 * from the agent's HTTP server, as iPXE does), says hello with the discovery token, and
 * answers `inspect` and `poweroff`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ENTRY_SCRIPT_PATH } from '../../agent/boot/render.ts';
import { DISCOVERY_SCRIPT_PATH } from '../../agent/ramdisk/discovery.ts';
import type { RamdiskStep } from '../../protocol/ramdisk.ts';
import { type ChannelStack, waitFor } from '../support/channel.ts';
import {
  entryFallbackUrlOf,
  FakeRamdisk,
  fakeInventory,
  kernelParamsOf,
  type StepOutcome,
} from '../support/fake-ramdisk.ts';
import { uploadKernelRamdisk } from '../support/images.ts';
import { type RamdiskSite, ramdiskSiteHooks, startRamdiskSite } from '../support/ramdisk-site.ts';

const SITE = 'discover';
let site: RamdiskSite;
let stack: ChannelStack;
let credential: string;
let dir: string;
let image: string;
let ramdisks: FakeRamdisk[];

beforeAll(async () => {
  site = await startRamdiskSite(SITE, { hostname: 'discover-agent', tempPrefix: 'discovery-' });
  ({ stack, credential, dir, ramdisks } = site);
  image = await uploadKernelRamdisk(
    stack.api,
    `mp-discovery-ramdisk-${Date.now()}`,
    Buffer.from('discovery kernel '.repeat(500)),
    Buffer.from('discovery initrd '.repeat(700)),
  );
}, 120_000);

ramdiskSiteHooks(() => site);

const api: RamdiskSite['api'] = (...args) => site.api(...args);

const patchDiscovery = (value: unknown) =>
  api('PATCH', `/v1/sites/${SITE}`, [{ op: 'replace', path: '/discovery', value }]);

const entryScript = () => {
  const path = join(dir, 'http', ENTRY_SCRIPT_PATH);
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
};

/** The site's nodes (UUIDs). */
async function siteNodes(): Promise<string[]> {
  const listed = await api('GET', `/v1/nodes?conductor_group=${SITE}&limit=1000`);
  expect(listed.status).toBe(200);
  return (listed.body.nodes as Array<{ uuid: string }>).map((n) => n.uuid).sort();
}

const steps =
  (mac: string) =>
  (step: RamdiskStep): StepOutcome =>
    step.name === 'inspect'
      ? { status: 'succeeded', result: { inventory: fakeInventory(mac) } }
      : step.name === 'poweroff'
        ? { status: 'succeeded', result: {} }
        : { status: 'failed', error: `unexpected ${step.name}` };

/** Turns discovery on (fake-hardware nodes) and waits for the agent's fallback to the discovery script. */
async function discoveryOn(driver = 'fake-hardware'): Promise<void> {
  const enabled = await patchDiscovery({
    enabled: true,
    deploy_kernel: image,
    deploy_ramdisk: image,
    driver,
  });
  expect(enabled.status).toBe(200);
  await waitFor(
    () => (entryFallbackUrlOf(entryScript())?.endsWith(`/${DISCOVERY_SCRIPT_PATH}`) ? true : undefined),
    'boot.ipxe to fall back to the discovery script',
    30_000,
  );
}

/**
 * A machine no script knows boots: `boot.ipxe` falls back to the discovery script (both
 * fetched from the agent), the fake ramdisk says hello with its token, runs what it is
 * given, and is done once it has powered off.
 */
async function bootUnknown(mac: string): Promise<FakeRamdisk & { params: Map<string, string> }> {
  const fallback = entryFallbackUrlOf(entryScript());
  expect(fallback).toBeDefined();
  const res = await fetch(fallback as string);
  expect(res.status).toBe(200);
  const params = kernelParamsOf(await res.text()) as Map<string, string>;
  expect(params.get('mp.discovery')).toBe('1');
  expect(params.get('initrd')).toBe('ramdisk');
  const ramdisk = new FakeRamdisk(params.get('mp.url') as string, steps(mac), mac, 200);
  ramdisks.push(ramdisk);
  expect(await ramdisk.hello(params.get('mp.token') as string)).toBe(200);
  await waitFor(
    () => (ramdisk.ran.some((step) => step.name === 'poweroff') ? true : undefined),
    `the discovery of ${mac} to power the machine off`,
    30_000,
  );
  ramdisk.stop();
  return Object.assign(ramdisk, { params });
}

describe('site setting', () => {
  it('is off by default, shown on GET', async () => {
    const site = await api('GET', `/v1/sites/${SITE}`);
    expect(site.body.discovery).toEqual({
      enabled: false,
      deploy_kernel: null,
      deploy_ramdisk: null,
      driver: 'ipmi',
    });
    expect(entryFallbackUrlOf(entryScript())).toBeUndefined();
  });

  it('refuses bad settings with 400 and writes nothing', async () => {
    const cases: Array<[unknown, string]> = [
      [{ enabled: true }, 'missing discovery.deploy_kernel and discovery.deploy_ramdisk'],
      [{ enabled: true, deploy_kernel: 'no-such-image', deploy_ramdisk: image }, 'could not be found'],
      [{ enabled: true, deploy_kernel: image, deploy_ramdisk: image, driver: 'redfish' }, 'Schema error'],
      [{ enabled: 'yes' }, 'Schema error'],
      [{ enabled: false, colour: 'red' }, 'Schema error'],
    ];
    for (const [value, message] of cases) {
      const refused = await patchDiscovery(value);
      expect(refused.status, JSON.stringify(value)).toBe(400);
      expect(JSON.stringify(refused.body)).toContain(message);
    }
    const created = await api('POST', '/v1/sites', {
      name: 'discover-bad',
      discovery: { enabled: true, deploy_kernel: image },
    });
    expect(created.status).toBe(400);
    expect((await api('GET', '/v1/sites/discover-bad')).status).toBe(404);
    expect((await api('GET', `/v1/sites/${SITE}`)).body.discovery.enabled).toBe(false);
  });

  it('a report while discovery is off is refused (409) and enrolls nothing', async () => {
    const before = await siteNodes();
    const refused = await stack.asAgent(credential, 'POST', '/v1/agent/discoveries', {
      boot_mac: '52:54:00:d1:00:09',
      inventory: fakeInventory('52:54:00:d1:00:09'),
    });
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain(`Discovery is not enabled for site ${SITE}`);
    expect(await siteNodes()).toEqual(before);
    // An operator is not an agent.
    expect((await api('GET', '/v1/agent/site')).status).toBe(403);
  });
});

describe('discovery on', () => {
  it('enrolls an unknown machine in enroll, with properties, port, inventory; once per MAC', async () => {
    const enabled = await patchDiscovery({
      enabled: true,
      deploy_kernel: image,
      deploy_ramdisk: image,
      driver: 'fake-hardware',
    });
    expect(enabled.status).toBe(200);
    expect(enabled.body.discovery).toEqual({
      enabled: true,
      deploy_kernel: image,
      deploy_ramdisk: image,
      driver: 'fake-hardware',
    });
    const view = await stack.asAgent(credential, 'GET', '/v1/agent/site');
    expect(view.body).toEqual({
      site: SITE,
      discovery: { enabled: true, deploy_kernel: image, deploy_ramdisk: image },
    });
    // The agent syncs the images, writes the discovery script and falls back to it.
    await waitFor(
      () => (entryFallbackUrlOf(entryScript())?.endsWith(`/${DISCOVERY_SCRIPT_PATH}`) ? true : undefined),
      'boot.ipxe to fall back to the discovery script',
      30_000,
    );

    const before = await siteNodes();
    const mac = '52:54:00:d1:00:01';
    const first = await bootUnknown(mac);
    expect(first.ran.map((step) => step.name)).toEqual(['inspect', 'poweroff']);
    const port = await waitFor(async () => {
      const found = await api('GET', `/v1/ports/detail?address=${mac}`);
      return found.body.ports?.[0] as { node_uuid: string; pxe_enabled: boolean } | undefined;
    }, `a port for ${mac}`);
    expect(port.pxe_enabled).toBe(true);
    const node = (await api('GET', `/v1/nodes/${port.node_uuid}`)).body;
    expect(node).toMatchObject({
      provision_state: 'enroll',
      driver: 'fake-hardware',
      conductor_group: SITE,
      name: null,
      extra: { discovered: true },
      properties: { cpus: 4, memory_mb: 8192, local_gb: 19, cpu_arch: 'x86_64' },
    });
    expect(node.inspection_finished_at).not.toBeNull();
    const inventory = await api('GET', `/v1/nodes/${node.uuid}/inventory`, undefined, '1.81');
    expect(inventory.status).toBe(200);
    expect(inventory.body.inventory).toEqual(fakeInventory(mac));
    const history = (await api('GET', `/v1/nodes/${node.uuid}/history`)).body.history as Array<{
      event: string;
    }>;
    expect(history.map((h) => h.event).join('\n')).toContain(`Node discovered by agent discover-agent`);
    expect(await siteNodes()).toEqual([...before, node.uuid].sort());

    // The same machine boots again: the token is reusable, the machine known, no second node.
    const second = await bootUnknown(mac);
    expect(second.params.get('mp.token')).toBe(first.params.get('mp.token'));
    expect(second.ran.map((step) => step.name)).toEqual(['inspect', 'poweroff']);
    expect(await siteNodes()).toEqual([...before, node.uuid].sort());
  }, 90_000);

  it('a machine whose MAC a port already holds is not enrolled again', async () => {
    await discoveryOn();
    const mac = '52:54:00:d1:00:02';
    const owner = await stack.createNode(SITE);
    expect((await api('POST', '/v1/ports', { node_uuid: owner, address: mac })).status).toBe(201);
    const before = await siteNodes();
    const ramdisk = await bootUnknown(mac);
    expect(ramdisk.ran.map((step) => step.name)).toEqual(['inspect', 'poweroff']);
    expect(await siteNodes()).toEqual(before);
    const known = await stack.asAgent(credential, 'POST', '/v1/agent/discoveries', {
      boot_mac: '52:54:00:d1:00:03',
      inventory: { ...fakeInventory('52:54:00:d1:00:03'), interfaces: fakeInventory(mac).interfaces },
    });
    expect(known.status).toBe(200);
    expect(known.body).toEqual({ outcome: 'known', uuid: owner });
    expect(await siteNodes()).toEqual(before);
  }, 60_000);

  it('two reports of one machine at once enroll one node (the MAC claim decides); ipmi gets the BMC address', async () => {
    const patched = await api('PATCH', `/v1/sites/${SITE}`, [
      {
        op: 'replace',
        path: '/discovery',
        value: { enabled: true, deploy_kernel: image, deploy_ramdisk: image, driver: 'fake-hardware' },
      },
      { op: 'replace', path: '/discovery/driver', value: 'ipmi' },
    ]);
    expect(patched.status).toBe(200);
    expect(patched.body.discovery.driver).toBe('ipmi');
    const mac = '52:54:00:d1:00:06';
    const before = await siteNodes();
    const report = { boot_mac: mac, inventory: { ...fakeInventory(mac), bmc_address: '10.9.0.6' } };
    const answers = await Promise.all([
      stack.asAgent(credential, 'POST', '/v1/agent/discoveries', report),
      stack.asAgent(credential, 'POST', '/v1/agent/discoveries', report),
    ]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 201]);
    const [uuid] = new Set(answers.map((a) => a.body.uuid as string));
    expect(answers.every((a) => a.body.uuid === uuid)).toBe(true);
    expect(await siteNodes()).toEqual([...before, uuid].sort());
    const node = (await api('GET', `/v1/nodes/${uuid}`)).body;
    expect(node.driver).toBe('ipmi');
    expect(node.provision_state).toBe('enroll');
    expect(node.driver_info.ipmi_address).toBe('10.9.0.6');
  }, 60_000);

  it('refuses an invalid inventory with 400', async () => {
    const mac = '52:54:00:d1:00:04';
    const before = await siteNodes();
    const shape = await stack.asAgent(credential, 'POST', '/v1/agent/discoveries', {
      boot_mac: mac,
      inventory: { cpu: {} },
    });
    expect(shape.status).toBe(400);
    const checks = await stack.asAgent(credential, 'POST', '/v1/agent/discoveries', {
      boot_mac: mac,
      inventory: { ...fakeInventory(mac), interfaces: [{ name: 'lo', mac_address: 'zz' }] },
    });
    expect(checks.status).toBe(400);
    expect(await siteNodes()).toEqual(before);
  });
});

describe('discovery off again', () => {
  it('drops the fallback and the script; a hello with the old token is 401', async () => {
    await discoveryOn();
    const fallback = entryFallbackUrlOf(entryScript()) as string;
    expect(fallback).toBeDefined();
    const script = await (await fetch(fallback)).text();
    const params = kernelParamsOf(script) as Map<string, string>;
    expect((await patchDiscovery({ enabled: false })).status).toBe(200);
    // boot.ipxe loses its fallback first, then the script goes.
    await waitFor(
      () =>
        entryFallbackUrlOf(entryScript()) === undefined &&
        !existsSync(join(dir, 'http', DISCOVERY_SCRIPT_PATH))
          ? true
          : undefined,
      'boot.ipxe without the fallback, and no discovery script',
      30_000,
    );
    expect((await fetch(fallback)).status).toBe(404);
    const late = new FakeRamdisk(
      params.get('mp.url') as string,
      steps('52:54:00:d1:00:05'),
      '52:54:00:d1:00:05',
    );
    ramdisks.push(late);
    expect(await late.hello(params.get('mp.token') as string)).toBe(401);
    const view = await stack.asAgent(credential, 'GET', '/v1/agent/site');
    expect(view.body.discovery).toEqual({ enabled: false, deploy_kernel: null, deploy_ramdisk: null });
  }, 60_000);
});
