/**
 * The deploy's writes through the agent daemon (`startAgent`, agent/main.ts): a fake
 * control plane queues the commands and lists the site's images (synced from moto S3 by
 * the real image sync, a raw+gzip whole-disk image among them), `boot.prepare
 * {metalplane_ramdisk}` writes the boot files, and the fake ramdisk (test/support/
 * fake-ramdisk.ts) boots from them and runs `write_image` / `write_configdrive` as the real
 * one does short of the disk: it downloads the granted URL from the agent's HTTP boot
 * server, checks the SHA-256 and decompresses.
 *
 * - `ramdisk.write_image`: the image's raw bytes reach the ramdisk; pinned during the
 *   step, not after; the URL answers 404 once the step is over; an image the site does
 *   not hold fails clearly, without a step.
 * - `ramdisk.write_configdrive`: the JSON form built into an ISO (read back with xorriso),
 *   the image form passed through; the user data is in neither the result nor the logs;
 *   a bad config drive fails clearly.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ipxeScriptPath } from '../../agent/boot/render.ts';
import { parseConfig } from '../../agent/config.ts';
import { createLogger } from '../../agent/log.ts';
import { type RunningAgent, startAgent } from '../../agent/main.ts';
import { ensureStateDir, writeCredential } from '../../agent/state.ts';
import { testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import { freePort } from '../../local/moto.ts';
import type { RamdiskStep } from '../../protocol/ramdisk.ts';
import {
  FAKE_RAMDISK_DISK,
  FakeRamdisk,
  kernelParamsOf,
  latestFiles,
  type StepOutcome,
} from '../support/fake-ramdisk.ts';
import { ImageBucket } from '../support/s3-images.ts';

const NODE = '3d1e7f0a-5b6c-4d7e-8f90-a1b2c3d4e5f6';
const MAC = '52:54:00:00:00:42';
const MiB = 1024 * 1024;
const SECRET = 'user-data-secret-7f3a9c';

let cp: FakeControlPlane;
let s3: ImageBucket;
let agent: RunningAgent;
let dir: string;
let httpBase: string;
let diskImage: string;
let raw: Buffer;
const logs: string[] = [];
/** What the fake ramdisk does with each step given (set per test). */
let onStep: (step: RamdiskStep) => Promise<StepOutcome> = async () => ({ status: 'failed', error: 'unset' });
let ramdisk: FakeRamdisk;

beforeAll(async () => {
  s3 = await ImageBucket.create(inject('awsEndpoint'));
  // A 6 MiB disk: random data between zeros, served as the raw+gzip it is uploaded as.
  raw = Buffer.alloc(6 * MiB);
  randomBytes(2 * MiB).copy(raw, MiB);
  const disk = await s3.put('writes-disk.raw.gz', gzipSync(raw), 'disk');
  const kernel = await s3.put('writes.kernel', Buffer.from('kernel '.repeat(100)), 'kernel');
  const initrd = await s3.put('writes.initrd', Buffer.from('initrd '.repeat(100)), 'ramdisk');
  diskImage = randomUUID();
  const bootImage = randomUUID();
  cp = await new FakeControlPlane({
    images: async () => [
      { ...(await s3.assignment([disk], { uuid: diskImage, name: 'disk' })), disk_format: 'raw+gzip' },
      await s3.assignment([kernel, initrd], { uuid: bootImage, name: 'mp-ramdisk' }),
    ],
  }).start();

  dir = mkdtempSync(join(tmpdir(), 'agent-ramdisk-writes-'));
  const httpPort = await freePort();
  httpBase = `http://127.0.0.1:${httpPort}`;
  const config = parseConfig(
    testConfig({
      url: cp.url,
      websocketUrl: cp.websocketUrl,
      extra: ['power_sync:', '  enabled: false', 'boot:', `  http_url: ${httpBase}`].join('\n'),
    }).replace(/^(http:\n.*\n.*\n {2}port:) 0$/m, `$1 ${httpPort}`),
    join(dir, 'config.yaml'),
  );
  await ensureStateDir(config.stateDir);
  await writeCredential(config.stateDir, cp.credential);
  agent = await startAgent(config, {
    log: createLogger({ level: 'debug', write: (line) => void logs.push(line) }),
  });
  await waitFor(() => agent.images?.served(diskImage), 'the disk image ready at the site', 30_000);
  await waitFor(() => agent.images?.path(bootImage, 'ramdisk'), 'the ramdisk image at the site', 30_000);

  // The node boots the Metalplane ramdisk from the boot files the agent writes.
  const prepared = await command('boot.prepare', {
    driver: 'fake-hardware',
    node_uuid: NODE,
    macs: [MAC],
    boot_mode: 'bios',
    kernel: bootImage,
    ramdisk: bootImage,
    metalplane_ramdisk: true,
  });
  expect(prepared.status, prepared.error).toBe('succeeded');
  const params = kernelParamsOf(readFileSync(join(dir, 'http', ipxeScriptPath(MAC)), 'utf8'));
  expect(params?.get('mp.url')).toBe(`${httpBase}/ramdisk/v1`);
  ramdisk = new FakeRamdisk(params?.get('mp.url') as string, (step) => onStep(step), MAC);
  expect(await ramdisk.hello(params?.get('mp.token') as string)).toBe(200);
}, 90_000);

afterAll(async () => {
  ramdisk?.stop();
  expect(ramdisk?.errors ?? []).toEqual([]);
  await agent?.stop();
  await cp?.close();
  await s3?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
/** Queues one command for the node; resolves with its result. */
async function command(action: string, args: Record<string, unknown>) {
  const id = `writes-${++seq}`;
  cp.enqueue({ id, node: NODE, action, args, deadline: new Date(Date.now() + 60_000).toISOString() });
  return waitFor(() => cp.results(id)[0], `the result of ${action}`, 30_000);
}

/** The step's URL, and how a GET of it is answered now. */
const statusOf = async (step: RamdiskStep) => (await fetch((step.args as { url: string }).url)).status;

describe('ramdisk.write_image', () => {
  it("writes the site's prepared image: verified download, pinned meanwhile, URL gone after", async () => {
    const served = agent.images?.served(diskImage);
    let pinnedDuring: boolean | undefined;
    onStep = async (step) => {
      pinnedDuring = agent.images?.isPinned(diskImage);
      return ramdisk.write(step);
    };
    const done = await command('ramdisk.write_image', {
      node_uuid: NODE,
      image_uuid: diskImage,
      root_device: { name: '/dev/vda' },
    });
    expect(done.status, done.error).toBe('succeeded');
    expect(done.result).toMatchObject({ disk: FAKE_RAMDISK_DISK, bytes_written: raw.length });
    expect(typeof done.result?.seconds).toBe('number');
    const step = ramdisk.ran.at(-1) as RamdiskStep;
    expect(step).toMatchObject({
      id: done.command_id,
      name: 'write_image',
      args: { sha256: served?.sha256, format: 'raw+gzip', root_device: { name: '/dev/vda' } },
    });
    expect((step.args as { url: string }).url).toMatch(
      new RegExp(`^${httpBase}/ramdisk/v1/files/[A-Za-z0-9_-]{43}$`),
    );
    expect(ramdisk.written.get(step.id)?.equals(raw)).toBe(true);
    expect(pinnedDuring).toBe(true);
    expect(agent.images?.isPinned(diskImage)).toBe(false);
    expect(await statusOf(step)).toBe(404);
    // The capability URL is in no log line.
    expect(logs.join('\n')).not.toContain(new URL((step.args as { url: string }).url).pathname);
  });

  it('revokes the URL when the step fails too', async () => {
    onStep = async () => ({ status: 'failed', error: 'no disk matches the root device hints' });
    const failed = await command('ramdisk.write_image', { node_uuid: NODE, image_uuid: diskImage });
    expect(failed).toMatchObject({
      status: 'failed',
      error: `ramdisk step write_image failed on node ${NODE}: no disk matches the root device hints`,
    });
    expect(await statusOf(ramdisk.ran.at(-1) as RamdiskStep)).toBe(404);
    expect(agent.images?.isPinned(diskImage)).toBe(false);
  });

  it('fails clearly for an image the site does not hold, and for bad hints, without a step', async () => {
    const steps = ramdisk.ran.length;
    const missing = randomUUID();
    const notReady = await command('ramdisk.write_image', { node_uuid: NODE, image_uuid: missing });
    expect(notReady).toMatchObject({
      status: 'failed',
      error: `ramdisk.write_image: image ${missing} is not ready at this site`,
    });
    const badHints = await command('ramdisk.write_image', {
      node_uuid: NODE,
      image_uuid: diskImage,
      root_device: { colour: 'blue' },
    });
    expect(badHints.error).toMatch(/^ramdisk\.write_image: args\.root_device: /);
    expect(ramdisk.ran.length).toBe(steps);
  });
});

describe('ramdisk.write_configdrive', () => {
  it('builds the JSON form into an ISO the ramdisk downloads; the user data stays out of results and logs', async () => {
    onStep = (step) => ramdisk.write(step);
    const done = await command('ramdisk.write_configdrive', {
      node_uuid: NODE,
      configdrive: {
        meta_data: { name: 'web-1' },
        user_data: `#cloud-config\npassword: ${SECRET}\n`,
        network_data: { links: [], networks: [], services: [] },
      },
    });
    expect(done.status, done.error).toBe('succeeded');
    expect(done.result).toEqual({ disk: FAKE_RAMDISK_DISK, partition: `${FAKE_RAMDISK_DISK}2` });
    const step = ramdisk.ran.at(-1) as RamdiskStep;
    expect(step.name).toBe('write_configdrive');
    const files = latestFiles(ramdisk.written.get(step.id) as Buffer, [
      'meta_data.json',
      'user_data',
      'network_data.json',
    ]);
    expect(JSON.parse(files.get('meta_data.json') as string)).toEqual({ name: 'web-1', uuid: NODE });
    expect(files.get('user_data')).toBe(`#cloud-config\npassword: ${SECRET}\n`);
    expect(await statusOf(step)).toBe(404);
    expect(JSON.stringify(cp.results())).not.toContain(SECRET);
    expect(logs.join('\n')).not.toContain(SECRET);
    expect(readFileSync(join(dir, 'state', 'journal.jsonl'), 'utf8')).not.toContain(SECRET);
  });

  it('passes the image form through, and refuses a bad one clearly', async () => {
    onStep = (step) => ramdisk.write(step);
    const image = ramdisk.written.get((ramdisk.ran.at(-1) as RamdiskStep).id) as Buffer;
    const done = await command('ramdisk.write_configdrive', {
      node_uuid: NODE,
      configdrive: gzipSync(image).toString('base64'),
    });
    expect(done.status, done.error).toBe('succeeded');
    expect(ramdisk.written.get(done.command_id)?.equals(image)).toBe(true);

    const steps = ramdisk.ran.length;
    const bad = await command('ramdisk.write_configdrive', { node_uuid: NODE, configdrive: 'not base64!' });
    expect(bad).toMatchObject({
      status: 'failed',
      error: 'ramdisk.write_configdrive: configdrive: not valid base64 (of a gzipped ISO 9660 or vfat image)',
    });
    const unknownKey = await command('ramdisk.write_configdrive', {
      node_uuid: NODE,
      configdrive: { metadata: {} },
    });
    expect(unknownKey.error).toMatch(/^ramdisk\.write_configdrive: configdrive: unknown key "metadata"/);
    expect(ramdisk.ran.length).toBe(steps);
  });
});
