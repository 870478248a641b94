/**
 * The `direct` deploy end to end, through the API: the real API, conductor, command queue
 * and WebSocket channel (`startChannel`), an in-process agent (`startAgent`, fake-hardware:
 * no BMC) that syncs the images from moto S3 (the deploy ramdisk, a raw+gzip whole-disk
 * image) and writes the boot files, and a fake ramdisk (test/support/fake-ramdisk.ts) that
 * boots from the iPXE script the agent wrote and runs `write_image` / `write_configdrive`
 * as the real one does short of the disk (download, SHA-256, gunzip).
 *
 *   1. deploy with a JSON config drive: the steps' order, `deploy_step` while running and
 *      after, the image and the config drive ISO the ramdisk got, the drive masked
 *   2. deploy_steps (request, deploy templates by instance traits), and their validation
 *   3. a failed write_image → deploy failed
 *   4. bad inputs refused before anything changes
 *   5. rebuild rewrites the image, keeps the config drive
 *   6. undeploy cleans on the ramdisk
 *   7. rescue / unrescue with the agent rescue interface
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { verify } from 'unixcrypt';
import { beforeAll, describe, expect, it } from 'vitest';
import { ipxeScriptPath } from '../../agent/boot/render.ts';
import type { RamdiskStep } from '../../protocol/ramdisk.ts';
import { type ChannelStack, nodeReaches, waitFor } from '../support/channel.ts';
import { type FakeRamdisk, latestFiles as isoFiles, type StepOutcome } from '../support/fake-ramdisk.ts';
import { uploadKernelRamdisk } from '../support/images.ts';
import { type RamdiskSite, ramdiskSiteHooks, startRamdiskSite } from '../support/ramdisk-site.ts';

const SITE = 'direct';
const MiB = 1024 * 1024;
const USER_DATA = '#cloud-config\nhostname: web-1\nruncmd:\n  - echo deployed-by-metalplane\n';
let site: RamdiskSite;
let stack: ChannelStack;
let dir: string;
/** The deploy ramdisk (kernel+ramdisk), the whole-disk image and its raw bytes. */
let ramdiskImage: string;
let diskImage: string;
let diskName: string;
let raw: Buffer;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A raw+gzip whole-disk image registered and uploaded through /v1/images; its UUID once active. */
async function uploadDisk(name: string, data: Buffer): Promise<string> {
  const created = await stack.api.call('POST', '/v1/images', {
    body: {
      name,
      kind: 'disk',
      disk_format: 'raw+gzip',
      files: [{ role: 'disk', size: data.length, sha256: sha256(data) }],
    },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const uuid = created.body.uuid as string;
  const upload = await stack.api.call('POST', `/v1/images/${uuid}/files/disk/upload`, {
    body: { multipart: false },
  });
  expect(upload.status).toBe(201);
  const put = await fetch(upload.body.url, {
    method: 'PUT',
    body: data,
    headers: upload.body.headers ?? {},
    signal: AbortSignal.timeout(30_000),
  });
  expect(put.ok).toBe(true);
  const done = await stack.api.call('POST', `/v1/images/${uuid}/files/disk/complete`, { body: {} });
  expect([200, 202]).toContain(done.status);
  await waitFor(
    async () =>
      (await stack.api.call('GET', `/v1/images/${uuid}`)).body.state === 'active' ? true : undefined,
    'the disk image to be active',
    30_000,
  );
  return uuid;
}

/** Waits until the site's agent holds the image (its ready report reached the control plane). */
async function atSite(image: string): Promise<void> {
  await waitFor(
    async () => {
      const listed = await stack.api.call('GET', `/v1/sites/${SITE}/images`);
      const entry = (listed.body.images as Array<{ uuid: string; state: string }>).find(
        (i) => i.uuid === image,
      );
      return entry?.state === 'ready' ? true : undefined;
    },
    `image ${image} ready at site ${SITE}`,
    60_000,
  );
}

beforeAll(async () => {
  site = await startRamdiskSite(SITE, { hostname: 'direct-agent', tempPrefix: 'deploy-direct-' });
  ({ stack, dir } = site);
  ramdiskImage = await uploadKernelRamdisk(
    stack.api,
    `mp-ramdisk-${Date.now()}`,
    Buffer.from('metalplane ramdisk kernel '.repeat(500)),
    Buffer.from('metalplane ramdisk initrd '.repeat(700)),
  );
  // A 4 MiB disk: random data between zeros, uploaded as raw+gzip.
  raw = Buffer.alloc(4 * MiB);
  randomBytes(MiB).copy(raw, MiB);
  Buffer.from('METALPLANE-DIRECT-DEPLOY').copy(raw, 3 * MiB);
  diskName = `direct-disk-${Date.now()}`;
  diskImage = await uploadDisk(diskName, gzipSync(raw));
  await atSite(ramdiskImage);
  await atSite(diskImage);
}, 180_000);

ramdiskSiteHooks(() => site);

const api: RamdiskSite['api'] = (...args) => site.api(...args);

const node = (uuid: string) => site.node(uuid);

/** Waits for the node to reach `state` with nothing in flight. */
const reaches = (uuid: string, state: string, timeoutMs = 60_000) =>
  nodeReaches(node, uuid, state, timeoutMs);

const provision = (uuid: string, target: string, extra: Record<string, unknown> = {}) =>
  api('PUT', `/v1/nodes/${uuid}/states/provision`, { target, ...extra });

/**
 * An available fake-hardware node with the direct deploy: iPXE boot, the deploy ramdisk
 * in driver_info, one PXE port (`mac`), the disk image as image_source. Provided without
 * automated cleaning (the cleaning on the ramdisk is case 6's).
 */
async function directNode(mac: string, extra: Record<string, unknown> = {}): Promise<string> {
  const uuid = await stack.createNode(SITE, {
    boot_interface: 'ipxe',
    deploy_interface: 'direct',
    automated_clean: false,
    driver_info: { deploy_kernel: ramdiskImage, deploy_ramdisk: ramdiskImage },
    instance_info: { image_source: diskImage },
    ...extra,
  });
  const port = await api('POST', '/v1/ports', { node_uuid: uuid, address: mac, pxe_enabled: true });
  expect(port.status).toBe(201);
  expect((await provision(uuid, 'manage')).status).toBe(202);
  await reaches(uuid, 'manageable');
  expect((await provision(uuid, 'provide')).status).toBe(202);
  await reaches(uuid, 'available');
  return uuid;
}

/**
 * The node's ramdisk boots from the boot files the agent wrote for `mac` (`RamdiskSite.bootRamdisk`).
 * Slow heartbeats: every fake ramdisk here is 127.0.0.1, one rate-limit bucket at the agent.
 */
const bootRamdisk = (
  mac: string,
  run: (step: RamdiskStep) => StepOutcome | Promise<StepOutcome>,
  previous?: string,
): Promise<FakeRamdisk & { token: string }> =>
  site.bootRamdisk(mac, run, { previous, timeoutMs: 60_000, heartbeatMs: 200 });

interface CommandView {
  id: string;
  action: string;
  status: string;
  args: Record<string, unknown>;
}

/** The node's commands, oldest first. */
async function commands(uuid: string): Promise<CommandView[]> {
  const listed = await api('GET', `/v1/nodes/${uuid}/commands?limit=200`);
  expect(listed.status).toBe(200);
  return (listed.body.commands as CommandView[]).slice().reverse();
}

/** A command as a short label: what it did, with the args that tell it apart. */
function label(command: CommandView): string {
  const args = command.args;
  switch (command.action) {
    case 'power.set':
      return `power ${String(args.target)}`;
    case 'management.set_boot_device':
      return `boot device ${String(args.boot_device)}${args.persistent ? ' persistent' : ''}`;
    case 'boot.prepare':
      return args.metalplane_ramdisk ? 'boot.prepare ramdisk' : 'boot.prepare';
    case 'ramdisk.run_step':
      return `ramdisk.run_step ${String(args.step)}`;
    default:
      return command.action;
  }
}

/** The labels of the node's commands after the first `skip`. */
async function labelsSince(uuid: string, skip: number): Promise<string[]> {
  return (await commands(uuid)).slice(skip).map(label);
}

/** The direct deploy's commands from the ramdisk's boot to the image written. */
const TO_WRITE_IMAGE = [
  'boot.prepare ramdisk',
  'boot device pxe',
  'power rebooting',
  'ramdisk.wait',
  'ramdisk.write_image',
];

/**
 * The direct deploy's commands on a fake-hardware node. Its management interface sets
 * the boot device to pxe only (Ironic's fake: `[PXE]`): no `boot device disk` step.
 */
const DIRECT_DEPLOY = [
  ...TO_WRITE_IMAGE,
  'ramdisk.write_configdrive',
  'boot.clean',
  'power power off',
  'power power on',
];

/** The `openstack/latest/*` files of a config drive ISO the ramdisk wrote. */
const latestFiles = (iso: Buffer) => isoFiles(iso, ['meta_data.json', 'user_data']);

/** Runs the write steps as the real ramdisk does (onto `written`). */
const writes = (ramdisk: () => FakeRamdisk) => (step: RamdiskStep) => ramdisk().write(step);

/** Deploys `uuid` (booting its ramdisk on `mac`) to active; answers the ramdisk used. */
async function deployToActive(uuid: string, mac: string, extra: Record<string, unknown> = {}) {
  const started = await provision(uuid, 'active', extra);
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  let self: FakeRamdisk | undefined;
  const ramdisk = await bootRamdisk(
    mac,
    writes(() => self as FakeRamdisk),
  );
  self = ramdisk;
  const done = await reaches(uuid, 'active');
  expect(done.last_error).toBeNull();
  finished(ramdisk);
  return ramdisk;
}

/** The ramdisk's work is over: it stops heartbeating, nothing went wrong in the background. */
function finished(ramdisk: FakeRamdisk): void {
  ramdisk.stop();
  expect(ramdisk.errors).toEqual([]);
}

describe('direct deploy', () => {
  it('deploy with a JSON config drive: image then config drive on the ramdisk, in Ironic step order → active', async () => {
    const mac = '52:54:00:2d:00:01';
    const uuid = await directNode(mac, { name: 'web-1' });
    const before = (await commands(uuid)).length;
    const started = await provision(uuid, 'active', {
      configdrive: { meta_data: { hostname: 'web-1.example' }, user_data: USER_DATA },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);

    const seen: Record<string, unknown> = {};
    let self: FakeRamdisk | undefined;
    const ramdisk = await bootRamdisk(mac, async (step) => {
      // While a step runs, the node shows Ironic's deploy step it belongs to.
      const current = await node(uuid);
      seen[step.name] = { state: current.provision_state, deploy_step: current.deploy_step };
      return (self as FakeRamdisk).write(step);
    });
    self = ramdisk;
    const done = await reaches(uuid, 'active');
    finished(ramdisk);
    expect(done.last_error).toBeNull();
    expect(done.deploy_step).toEqual({});
    expect(done.power_state).toBe('power on');
    expect(done.target_provision_state).toBeNull();

    const write = {
      state: 'deploying',
      deploy_step: { interface: 'deploy', step: 'write_image', priority: 80, args: {} },
    };
    expect(seen).toEqual({ write_image: write, write_configdrive: write });

    // The image: its bytes verified by SHA-256 and decompressed; then the config drive.
    expect(ramdisk.ran.map((s) => s.name)).toEqual(['write_image', 'write_configdrive']);
    const [imageStep, driveStep] = ramdisk.ran as [RamdiskStep, RamdiskStep];
    expect(imageStep.args).toMatchObject({ format: 'raw+gzip' });
    expect(ramdisk.written.get(imageStep.id)?.equals(raw)).toBe(true);
    const files = latestFiles(ramdisk.written.get(driveStep.id) as Buffer);
    expect(files.get('user_data')).toBe(USER_DATA);
    expect(JSON.parse(files.get('meta_data.json') as string)).toMatchObject({
      hostname: 'web-1.example',
      name: 'web-1',
      uuid,
    });

    expect(await labelsSince(uuid, before)).toEqual(DIRECT_DEPLOY);
    expect((await commands(uuid)).slice(before).every((c) => c.status === 'succeeded')).toBe(true);

    // The config drive is kept, masked; the user data is in no command record.
    expect(done.instance_info.configdrive).toBe('******');
    expect(done.instance_info.image_source).toBe(diskImage);
    expect(JSON.stringify(await commands(uuid))).not.toContain('deployed-by-metalplane');
    // The boot files are gone.
    expect(existsSync(join(dir, 'http', ipxeScriptPath(mac)))).toBe(false);
  }, 120_000);

  it('deploy_steps: a disabled step is skipped; invalid ones are refused with Ironic messages; templates by traits', async () => {
    const mac = '52:54:00:2d:00:02';
    const uuid = await directNode(mac);

    // Invalid request steps: 400, nothing changes.
    const before = (await commands(uuid)).length;
    const refusals: Array<[unknown[], string]> = [
      [
        [{ interface: 'deploy', step: 'nope', priority: 50, args: {} }],
        `Validation of deploy steps from "deploy steps" argument failed. node does not support this deploy step: {'interface': 'deploy', 'step': 'nope', 'priority': 50, 'args': {}}`,
      ],
      [
        [{ interface: 'deploy', step: 'deploy', priority: 10, args: {} }],
        'Validation of deploy steps from "deploy steps" argument failed. deploy step deploy on interface deploy is a core step and cannot be overridden by user steps. It may be disabled by setting the priority to 0',
      ],
      [
        [{ interface: 'deploy', step: 'write_image', priority: 80, args: { force: true } }],
        `Validation of deploy steps from "deploy steps" argument failed. deploy step {'interface': 'deploy', 'step': 'write_image', 'priority': 80, 'args': {'force': True}} has these unexpected arguments: force`,
      ],
      [
        [
          { interface: 'deploy', step: 'boot_instance', priority: 20, args: {} },
          { interface: 'deploy', step: 'boot_instance', priority: 25, args: {} },
        ],
        `Validation of deploy steps from "deploy steps" argument failed. deploy steps from all deploy templates matching this node's instance traits cannot have the same interface and step. Duplicate deploy steps for deploy.boot_instance`,
      ],
    ];
    for (const [steps, message] of refusals) {
      const refused = await provision(uuid, 'active', { deploy_steps: steps });
      expect(refused.status, JSON.stringify(steps)).toBe(400);
      expect(refused.fault?.faultstring).toBe(message);
    }
    const unchanged = await node(uuid);
    expect(unchanged.provision_state).toBe('available');
    expect(unchanged.deploy_step).toEqual({});
    expect((await commands(uuid)).length).toBe(before);

    // prepare_instance_boot disabled: no boot.clean, no boot device disk.
    await deployToActive(uuid, mac, {
      deploy_steps: [{ interface: 'deploy', step: 'prepare_instance_boot', priority: 0, args: {} }],
    });
    expect(await labelsSince(uuid, before)).toEqual([...TO_WRITE_IMAGE, 'power power off', 'power power on']);
  }, 120_000);

  it('a deploy template named by instance_info.traits reorders and disables steps; the request overrides it', async () => {
    const mac = '52:54:00:2d:00:03';
    const name = `CUSTOM_DIRECT_${Date.now()}`;
    const template = await api('POST', '/v1/deploy_templates', {
      name,
      steps: [
        // boot_instance before prepare_instance_boot; tear_down_agent disabled.
        { interface: 'deploy', step: 'boot_instance', priority: 70, args: {} },
        { interface: 'deploy', step: 'tear_down_agent', priority: 0, args: {} },
      ],
    });
    expect(template.status, JSON.stringify(template.body)).toBe(201);
    const uuid = await directNode(mac, { instance_info: { image_source: diskImage, traits: [name] } });
    const before = (await commands(uuid)).length;
    await deployToActive(uuid, mac);
    expect(await labelsSince(uuid, before)).toEqual([...TO_WRITE_IMAGE, 'power power on', 'boot.clean']);

    // Back to available (no cleaning), then the request's step overrides the template's.
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    await reaches(uuid, 'available');
    const patched = await api('PATCH', `/v1/nodes/${uuid}`, [
      { op: 'add', path: '/instance_info', value: { image_source: diskImage, traits: [name] } },
    ]);
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const again = (await commands(uuid)).length;
    await deployToActive(uuid, mac, {
      deploy_steps: [{ interface: 'deploy', step: 'boot_instance', priority: 10, args: {} }],
    });
    // boot_instance back after prepare_instance_boot; tear_down_agent still disabled by the template.
    expect(await labelsSince(uuid, again)).toEqual([...TO_WRITE_IMAGE, 'boot.clean', 'power power on']);

    // A bad template refuses the deploy with Ironic's message, nothing changed.
    const bad = `CUSTOM_DIRECT_BAD_${Date.now()}`;
    const badTemplate = await api('POST', '/v1/deploy_templates', {
      name: bad,
      steps: [{ interface: 'deploy', step: 'deploy', priority: 10, args: {} }],
    });
    expect(badTemplate.status, JSON.stringify(badTemplate.body)).toBe(201);
    const other = await directNode('52:54:00:2d:00:04', {
      instance_info: { image_source: diskImage, traits: [bad] },
    });
    const refused = await provision(other, 'active');
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      `Validation of deploy steps from deploy templates matching this node's instance traits failed. Matching deploy templates: ${bad}. Errors: deploy step deploy on interface deploy is a core step and cannot be overridden by user steps. It may be disabled by setting the priority to 0`,
    );
    expect((await node(other)).provision_state).toBe('available');
  }, 180_000);

  it("a failed write_image → deploy failed, last_error naming deploy.write_image and the ramdisk's error", async () => {
    const mac = '52:54:00:2d:00:05';
    const uuid = await directNode(mac);
    expect((await provision(uuid, 'active')).status).toBe(202);
    const ramdisk = await bootRamdisk(mac, (step) =>
      step.name === 'write_image'
        ? { status: 'failed', error: 'no disk matches the root device hints' }
        : { status: 'failed', error: `unexpected ${step.name}` },
    );
    const failed = await reaches(uuid, 'deploy failed');
    finished(ramdisk);
    expect(failed.last_error).toBe(
      `Deploy step deploy.write_image failed: ramdisk step write_image failed on node ${uuid}: no disk matches the root device hints`,
    );
    expect(failed.deploy_step).toEqual({});
    expect(ramdisk.ran.map((s) => s.name)).toEqual(['write_image']);
  }, 120_000);

  it('refuses bad inputs before anything changes: a kernel+ramdisk image_source, a URL config drive, a large one', async () => {
    const mac = '52:54:00:2d:00:06';
    const uuid = await directNode(mac);
    const before = (await commands(uuid)).length;
    const expectUnchanged = async () => {
      const current = await node(uuid);
      expect(current.provision_state).toBe('available');
      expect(current.target_provision_state).toBeNull();
      expect(current.reservation).toBeNull();
      expect(current.instance_info).toEqual({ image_source: diskImage });
      expect((await commands(uuid)).length).toBe(before);
    };

    const url = await provision(uuid, 'active', { configdrive: 'http://example.com/configdrive.iso.gz' });
    expect(url.status).toBe(400);
    expect(url.fault?.faultstring).toBe(
      'A config drive given by URL is not supported by Metalplane: give it inline (its JSON form, or a gzipped and base64-encoded ISO 9660 image).',
    );
    await expectUnchanged();

    const big = { user_data: `#cloud-config\n# ${'x'.repeat(33 * 1024)}\n` };
    const large = await provision(uuid, 'active', { configdrive: big });
    expect(large.status).toBe(400);
    expect(large.fault?.faultstring).toBe(
      `The config drive is too large: ${Buffer.byteLength(JSON.stringify(big))} bytes, more than the 32768 Metalplane keeps with a node.`,
    );
    await expectUnchanged();

    const kernelRamdisk = (await api('GET', `/v1/images/${ramdiskImage}`)).body.name as string;
    expect(
      (
        await api('PATCH', `/v1/nodes/${uuid}`, [
          { op: 'replace', path: '/instance_info/image_source', value: ramdiskImage },
        ])
      ).status,
    ).toBe(200);
    const wrongKind = await provision(uuid, 'active');
    expect(wrongKind.status).toBe(400);
    expect(wrongKind.fault?.faultstring).toBe(
      `Image ${kernelRamdisk} is a kernel+ramdisk: the direct deploy writes a whole-disk image (kind disk) to the node's disk.`,
    );
    const current = await node(uuid);
    expect(current.provision_state).toBe('available');
    expect(current.instance_info).toEqual({ image_source: ramdiskImage });
    expect((await commands(uuid)).length).toBe(before);
  }, 120_000);

  it('rebuild from active writes the image again and keeps the config drive when none is given', async () => {
    const mac = '52:54:00:2d:00:07';
    const uuid = await directNode(mac);
    const first = await deployToActive(uuid, mac, { configdrive: { user_data: USER_DATA } });
    expect(first.ran.map((s) => s.name)).toEqual(['write_image', 'write_configdrive']);
    const before = (await commands(uuid)).length;

    expect((await provision(uuid, 'rebuild')).status).toBe(202);
    let self: FakeRamdisk | undefined;
    const second = await bootRamdisk(
      mac,
      writes(() => self as FakeRamdisk),
      first.token,
    );
    self = second;
    const done = await reaches(uuid, 'active');
    finished(second);
    expect(done.last_error).toBeNull();
    expect(second.ran.map((s) => s.name)).toEqual(['write_image', 'write_configdrive']);
    const [imageStep, driveStep] = second.ran as [RamdiskStep, RamdiskStep];
    expect(second.written.get(imageStep.id)?.equals(raw)).toBe(true);
    expect(latestFiles(second.written.get(driveStep.id) as Buffer).get('user_data')).toBe(USER_DATA);
    expect(done.instance_info.configdrive).toBe('******');
    expect(await labelsSince(uuid, before)).toEqual(DIRECT_DEPLOY);
  }, 180_000);

  it('undeploy tears down, then cleans on the ramdisk (erase_devices_metadata) → available, instance_info empty', async () => {
    const mac = '52:54:00:2d:00:08';
    const uuid = await directNode(mac);
    const first = await deployToActive(uuid, mac, { configdrive: { user_data: USER_DATA } });
    // Automated cleaning on (the default), for the teardown's cleaning.
    const patched = await api('PATCH', `/v1/nodes/${uuid}`, [
      { op: 'replace', path: '/automated_clean', value: null },
    ]);
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const before = (await commands(uuid)).length;

    expect((await provision(uuid, 'deleted')).status).toBe(202);
    const ramdisk = await bootRamdisk(
      mac,
      (step) =>
        step.name === 'erase_devices_metadata'
          ? { status: 'succeeded', result: { disks: [{ name: '/dev/vda', method: 'metadata' }] } }
          : { status: 'failed', error: `unexpected ${step.name}` },
      first.token,
    );
    const done = await reaches(uuid, 'available');
    finished(ramdisk);
    expect(done.last_error).toBeNull();
    expect(done.instance_info).toEqual({});
    expect(done.power_state).toBe('power off');
    expect(ramdisk.ran.map((s) => s.name)).toEqual(['erase_devices_metadata']);
    expect(await labelsSince(uuid, before)).toEqual([
      'power power off',
      'boot.clean',
      'boot.prepare ramdisk',
      'boot device pxe',
      'power rebooting',
      'ramdisk.wait',
      'ramdisk.run_step erase_devices_metadata',
      'power power off',
      'boot.clean',
    ]);
    const history = (await api('GET', `/v1/nodes/${uuid}/history`)).body.history as Array<{ event: string }>;
    expect(history.map((h) => h.event).join('\n')).toMatch(/deleting.*cleaning/s);
  }, 180_000);
});

describe('rescue with the agent rescue interface', () => {
  it('rescue sets the hashed password on the ramdisk → rescue; unrescue → active', async () => {
    const mac = '52:54:00:2d:00:09';
    const password = `rescue-${randomBytes(6).toString('hex')}`;
    const uuid = await directNode(mac, { rescue_interface: 'agent' });
    const deployed = await deployToActive(uuid, mac);
    const before = (await commands(uuid)).length;

    expect((await provision(uuid, 'rescue', { rescue_password: password })).status).toBe(202);
    const ramdisk = await bootRamdisk(
      mac,
      (step) =>
        step.name === 'set_rescue_password'
          ? { status: 'succeeded', result: {} }
          : { status: 'failed', error: `unexpected ${step.name}` },
      deployed.token,
    );
    const rescued = await reaches(uuid, 'rescue');
    finished(ramdisk);
    expect(rescued.last_error).toBeNull();
    expect(ramdisk.ran.map((s) => s.name)).toEqual(['set_rescue_password']);
    const hashed = ((ramdisk.ran[0] as RamdiskStep).args as { hashed_password: string }).hashed_password;
    expect(hashed).toMatch(/^\$6\$[./A-Za-z0-9]{16}\$[./A-Za-z0-9]{86}$/);
    expect(verify(password, hashed)).toBe(true);
    expect(verify(`${password}x`, hashed)).toBe(false);
    expect(rescued.instance_info).not.toHaveProperty('hashed_rescue_password');
    expect(rescued.instance_info.image_source).toBe(diskImage);

    expect(await labelsSince(uuid, before)).toEqual([
      'power power off',
      'boot.prepare ramdisk',
      'boot device pxe',
      'power power on',
      'ramdisk.wait',
      'ramdisk.run_step set_rescue_password',
    ]);
    const all = await commands(uuid);
    const text = JSON.stringify(all);
    expect(text).not.toContain(password);
    expect(text).not.toContain(hashed);
    const setPassword = all.find(
      (c) => c.action === 'ramdisk.run_step' && c.args.step === 'set_rescue_password',
    );
    expect(setPassword?.args.step_args).toEqual({ hashed_password: '******' });
    expect(JSON.stringify(await node(uuid))).not.toContain(hashed);

    const rescuing = (await commands(uuid)).length;
    expect((await provision(uuid, 'unrescue')).status).toBe(202);
    const back = await reaches(uuid, 'active');
    expect(back.last_error).toBeNull();
    expect(back.power_state).toBe('power on');
    expect(await labelsSince(uuid, rescuing)).toEqual(['power power off', 'boot.clean', 'power power on']);
    expect(existsSync(join(dir, 'http', ipxeScriptPath(mac)))).toBe(false);
  }, 180_000);

  it('a node whose rescue interface is not agent is refused (400), nothing changed', async () => {
    const mac = '52:54:00:2d:00:0a';
    const uuid = await directNode(mac, { rescue_interface: 'no-rescue' });
    await deployToActive(uuid, mac);
    const before = (await commands(uuid)).length;
    const refused = await provision(uuid, 'rescue', { rescue_password: 'secret-pw' });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(
      'Driver fake-hardware does not support rescue (disabled or not implemented).',
    );
    const current = await node(uuid);
    expect(current.provision_state).toBe('active');
    expect(current.instance_info).not.toHaveProperty('hashed_rescue_password');
    expect((await commands(uuid)).length).toBe(before);
  }, 180_000);
});
