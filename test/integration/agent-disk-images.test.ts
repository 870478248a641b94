/**
 * Whole-disk images (kind `disk`), end to end in two halves:
 *
 * - the catalog against moto: register with a disk_format → upload → verify → active,
 *   GET shows disk_format; images_pull offers disk images only to agents that `accepts`
 *   them; an agent's `served` report shows in GET /v1/sites/{site}/images;
 * - the agent's site preparation (agent/images/prepare.ts) with real qemu-img and zstd:
 *   a raw image made here, and its raw+gzip, qcow2 and raw+zstd forms, synced from moto S3
 *   over a real channel: each served file decompresses to the very same raw bytes and its
 *   recorded SHA-256 and size are the served file's; a corrupt qcow2 fails with a clear
 *   error and leaves nothing half-written; a preparation past its time bound is stopped.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ImageManagerOptions } from '../../agent/images/manager.ts';
import { PrepareError, prepareDisk } from '../../agent/images/prepare.ts';
import { waitFor } from '../../agent/testing/agent-process.ts';
import type { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import type { DiskImageFormat, ImageAssignment, ImageReport } from '../../protocol/messages.ts';
import { type ChannelStack, startChannel } from '../support/channel.ts';
import { startImageRig } from '../support/image-rig.ts';
import { ImageBucket } from '../support/s3-images.ts';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A 4 MiB raw disk: zeros, 1 MiB of random data, and a marker near the end. */
function makeRawDisk(): Buffer {
  const raw = Buffer.alloc(4 * MiB);
  randomBytes(MiB).copy(raw, MiB);
  Buffer.from('METALPLANE-DISK-MARKER').copy(raw, 4 * MiB - 4096);
  return raw;
}

/** The other forms of `raw`, made with the real tools. */
function forms(raw: Buffer, dir: string): Record<DiskImageFormat, Buffer> {
  const rawPath = join(dir, 'src.raw');
  writeFileSync(rawPath, raw);
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', rawPath, join(dir, 'src.qcow2')]);
  const zst = execFileSync('zstd', ['-q', '-c', rawPath], { maxBuffer: 64 * MiB });
  return { raw, 'raw+gzip': gzipSync(raw), qcow2: readFileSync(join(dir, 'src.qcow2')), 'raw+zstd': zst };
}

describe('the catalog: kind disk', () => {
  let stack: ChannelStack;
  beforeAll(async () => {
    stack = await startChannel();
    expect((await stack.createSite('fra1')).status).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  });
  const call = (...args: Parameters<ChannelStack['api']['call']>) => stack.api.call(...args);

  it('register → upload → verify → active; GET shows disk_format; offered only to agents that accept disk', async () => {
    const data = gzipSync(makeRawDisk());
    const created = await call('POST', '/v1/images', {
      body: {
        name: 'debian-12-disk',
        kind: 'disk',
        disk_format: 'raw+gzip',
        files: [{ role: 'disk', size: data.length, sha256: sha256(data) }],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ kind: 'disk', disk_format: 'raw+gzip', state: 'uploading' });
    const uuid = created.body.uuid as string;

    const started = await call('POST', `/v1/images/${uuid}/files/disk/upload`);
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const put = await fetch(started.body.url, { method: 'PUT', body: data, headers: started.body.headers });
    expect(put.status).toBe(200);
    const completed = await call('POST', `/v1/images/${uuid}/files/disk/complete`);
    expect(completed.status, JSON.stringify(completed.body)).toBe(200);
    expect(completed.body).toMatchObject({ state: 'active', disk_format: 'raw+gzip' });
    expect(completed.body.files[0]).toMatchObject({ role: 'disk', state: 'verified', size: data.length });

    const shown = await call('GET', '/v1/images/debian-12-disk', { as: stack.api.reader });
    expect(shown.body).toMatchObject({ uuid, kind: 'disk', disk_format: 'raw+gzip', state: 'active' });
    const only = await call('GET', '/v1/images/debian-12-disk?fields=name,disk_format');
    expect(only.body).toMatchObject({ name: 'debian-12-disk', disk_format: 'raw+gzip' });
    expect(only.body.kind).toBeUndefined();

    // Another kind shows disk_format null; a disk image without one, or with a bad one, is a 400.
    const iso = randomBytes(1000);
    const isoImage = await call('POST', '/v1/images', {
      body: { name: 'an-iso', kind: 'iso', files: [{ role: 'iso', size: 1000, sha256: sha256(iso) }] },
    });
    expect(isoImage.body.disk_format).toBeNull();
    const bad = await call('POST', '/v1/images', {
      body: {
        name: 'bad-format',
        kind: 'disk',
        disk_format: 'vmdk',
        files: [{ role: 'disk', size: 10, sha256: sha256(iso) }],
      },
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/vmdk/);
    const missing = await call('POST', '/v1/images', {
      body: { name: 'no-format', kind: 'disk', files: [{ role: 'disk', size: 10, sha256: sha256(iso) }] },
    });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(missing.body)).toMatch(/needs a disk_format/);
    expect((await call('GET', '/v1/images/no-format')).status).toBe(404);

    // images_pull: an older agent (no `accepts`) is not sent it; one that accepts disk is.
    const agent = await stack.enroll('fra1', 'fra1-disk-agent');
    const old = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'images_pull',
    });
    expect(old.status).toBe(200);
    expect(old.body.images.map((image: { uuid: string }) => image.uuid)).not.toContain(uuid);
    const current = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'images_pull',
      accepts: ['disk'],
    });
    const offered = (current.body.images as ImageAssignment[]).find((image) => image.uuid === uuid);
    expect(offered).toMatchObject({
      disk_format: 'raw+gzip',
      files: [{ role: 'disk', sha256: sha256(data) }],
    });

    // The agent's ready report carries what it serves; the site's listing shows it.
    const served = {
      path: `${uuid}/disk`,
      format: 'raw+gzip' as const,
      sha256: sha256(data),
      size: data.length,
    };
    const report = (extra: Partial<ImageReport>) => ({
      image: uuid,
      state: 'ready',
      bytes_done: data.length,
      bytes_total: data.length,
      observed_at: new Date().toISOString(),
      ...extra,
    });
    const sent = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'image_report',
      reports: [report({ served })],
    });
    expect(sent.status).toBe(204);
    const listed = await call('GET', '/v1/sites/fra1/images');
    const entry = listed.body.images.find((image: { uuid: string }) => image.uuid === uuid);
    expect(entry).toMatchObject({ kind: 'disk', state: 'ready', disk_format: 'raw+gzip', served });
    // Other kinds' entries keep their shape.
    expect(
      listed.body.images.find((image: { kind: string }) => image.kind !== 'disk')?.served,
    ).toBeUndefined();
    // A served path outside the image's directory is not stored (and a bad shape is refused).
    const elsewhere = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'image_report',
      reports: [report({ served: { ...served, path: `${randomUUID()}/disk` } })],
    });
    expect(elsewhere.status).toBe(204);
    const again = await call('GET', '/v1/sites/fra1/images');
    expect(again.body.images.find((image: { uuid: string }) => image.uuid === uuid).served).toBeNull();
    const refused = await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', {
      v: 1,
      type: 'image_report',
      reports: [report({ served: { ...served, path: '../../etc/passwd' } })],
    });
    expect(refused.status).toBe(400);
  });
});

describe('site preparation', () => {
  /** Retries far apart: a failure stays visible until the test looks. */
  const rig = (
    images: FakeControlPlane['images'],
    options: Partial<ImageManagerOptions> & { s3: ImageBucket; dir?: string },
  ) => {
    const { s3: _s3, ...rest } = options;
    return startImageRig(images, cleanups, { retryInitialMs: 60_000, retryMaxMs: 60_000, ...rest });
  };

  const leftovers = (dir: string) =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(
      (f) => f.includes('.partial') || f.includes('.tmp'),
    );

  it('serves raw and raw+gzip as they are, converts qcow2 and raw+zstd to raw+gzip: all the same raw bytes', async () => {
    const work = mkdtempSync(join(tmpdir(), 'metalplane-disk-src-'));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    const raw = makeRawDisk();
    const made = forms(raw, work);
    expect(made.qcow2.subarray(0, 4).toString('latin1')).toBe('QFI\xfb');
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const formats: DiskImageFormat[] = ['raw', 'raw+gzip', 'qcow2', 'raw+zstd'];
    const assignments: ImageAssignment[] = [];
    for (const format of formats) {
      const stored = await s3.put(`disk.${format}`, made[format], 'disk');
      assignments.push({ ...(await s3.assignment([stored], { name: format })), disk_format: format });
    }
    const r = await rig(assignments, { s3 });
    const readyReport = (uuid: string) => r.cp.imageReports(uuid).find((x) => x.state === 'ready');
    await waitFor(() => assignments.every((a) => readyReport(a.uuid)), 'all four ready', 30_000);

    for (const [i, format] of formats.entries()) {
      const a = assignments[i]!;
      const served = readyReport(a.uuid)!.served!;
      expect(served, format).toBeDefined();
      const bytes = readFileSync(join(r.dir, served.path));
      expect(sha256(bytes), format).toBe(served.sha256);
      expect(bytes.length, format).toBe(served.size);
      const decoded = served.format === 'raw+gzip' ? gunzipSync(bytes) : bytes;
      expect(decoded.equals(raw), format).toBe(true);
      if (format === 'raw' || format === 'raw+gzip') {
        expect(served).toStrictEqual({
          path: `${a.uuid}/disk`,
          format,
          sha256: sha256(made[format]),
          size: made[format].length,
        });
      } else {
        expect(served).toMatchObject({ path: `${a.uuid}/disk.raw.gz`, format: 'raw+gzip' });
      }
      expect(r.manager.served(a.uuid)).toMatchObject({ ...served, file: join(r.dir, served.path) });
      const manifest = JSON.parse(readFileSync(join(r.dir, a.uuid, '.manifest.json'), 'utf8'));
      expect(manifest.served).toMatchObject({ ...served, source_format: format });
    }
    expect(leftovers(r.dir)).toEqual([]);
    expect(r.cp.messages('images_pull').every((m) => m.accepts?.includes('disk'))).toBe(true);
    expect(r.cp.invalid).toBe(0);
    const prepared = r.logs.filter((line) => line.includes('disk image prepared')).length;
    expect(prepared).toBe(2);

    // A restart trusts the manifest: nothing is prepared again, the same files are served.
    await r.stop();
    const again = await rig(assignments, { s3, dir: r.dir });
    await waitFor(
      () => assignments.every((a) => again.cp.imageReports(a.uuid).some((x) => x.state === 'ready')),
      'all four ready again',
      20_000,
    );
    expect(again.logs.some((line) => line.includes('disk image preparation starting'))).toBe(false);
    const q = assignments[2]!;
    expect(again.cp.imageReports(q.uuid).find((x) => x.state === 'ready')?.served).toStrictEqual(
      readyReport(q.uuid)!.served,
    );

    // A prepared file damaged on disk is found by verifyAll, removed and prepared again.
    const path = join(again.dir, q.uuid, 'disk.raw.gz');
    writeFileSync(path, Buffer.from('garbage'));
    expect(await again.manager.verifyAll()).toBe(1);
    await waitFor(() => again.manager.served(q.uuid) !== undefined, 'prepared again', 20_000);
    expect(gunzipSync(readFileSync(path)).equals(raw)).toBe(true);
  });

  it('a corrupt qcow2 fails with a clear error and leaves nothing half-written', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const junk = Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), randomBytes(256 * 1024)]);
    const stored = await s3.put('corrupt.qcow2', junk, 'disk');
    const a = { ...(await s3.assignment([stored], { name: 'corrupt' })), disk_format: 'qcow2' as const };
    const r = await rig([a], { s3 });
    const failed = await waitFor(
      () => r.cp.imageReports(a.uuid).find((x) => x.state === 'error'),
      'an error report',
      20_000,
    );
    expect(failed.error).toMatch(/^disk: qcow2: not a valid qcow2 image/);
    expect(failed.served).toBeUndefined();
    // The verified download stays (it is what S3 holds); nothing prepared, nothing partial.
    expect(readdirSync(join(r.dir, a.uuid)).sort()).toStrictEqual(['.manifest.json', 'disk']);
    expect(r.manager.served(a.uuid)).toBeUndefined();
    expect(r.cp.invalid).toBe(0);
  });

  it('refuses a qcow2 with a backing file, and stops a preparation past its time bound', async () => {
    const root = mkdtempSync(join(tmpdir(), 'metalplane-disk-prep-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const uuid = '3f2b6a52-7d43-4d8e-9a0c-1b2c3d4e5f60';
    mkdirSync(join(root, uuid));
    const base = join(root, 'base.raw');
    writeFileSync(base, makeRawDisk());
    const disk = join(root, uuid, 'disk');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', disk]);
    const spec = { root, uuid, format: 'qcow2' as const, sha256: sha256(readFileSync(disk)), size: 1 };
    await expect(prepareDisk(spec)).rejects.toThrow(/backing file/);
    expect(readdirSync(join(root, uuid))).toStrictEqual(['disk']);

    // A zstd that never ends: killed at the bound, its partial removed.
    const slow = join(root, 'slow-zstd');
    const slowPid = join(root, 'slow-zstd.pid');
    writeFileSync(slow, `#!/bin/sh\necho $$ > ${slowPid}\nprintf abc\nexec sleep 30\n`);
    chmodSync(slow, 0o755);
    const error = await prepareDisk({ ...spec, format: 'raw+zstd' }, { zstd: slow, timeoutMs: 300 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PrepareError);
    expect((error as Error).message).toMatch(
      /raw\+zstd: preparation took longer than 300 ms and was stopped/,
    );
    // Killed and reaped, not waited for: its process is gone.
    const pid = Number(readFileSync(slowPid, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    rmSync(slowPid);
    expect(readdirSync(join(root, uuid))).toStrictEqual(['disk']);
    // A missing tool says which package the site needs.
    await expect(
      prepareDisk({ ...spec, format: 'raw+zstd' }, { zstd: join(root, 'no-such-zstd') }),
    ).rejects.toThrow(/zstd \(package zstd\) is not installed/);
  });
});
