/**
 * The agent's image sync (agent/images/) in-process, against real peers: objects in
 * moto S3 behind presigned URLs (through a counting proxy, test/support/s3-images.ts),
 * and the image list served by the fake control plane over a real Channel (WebSocket).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { ImageManager, ImageManagerOptions } from '../../agent/images/manager.ts';
import { waitFor } from '../../agent/testing/agent-process.ts';
import type { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import type { ImageAssignment } from '../../protocol/messages.ts';
import { startImageRig } from '../support/image-rig.ts';
import { ImageBucket } from '../support/s3-images.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Rig {
  cp: FakeControlPlane;
  s3: ImageBucket;
  manager: ImageManager;
  dir: string;
  logs: string[];
}

async function rig(
  images: FakeControlPlane['images'],
  options: Partial<ImageManagerOptions> & { pageSize?: number; dir?: string; s3?: ImageBucket } = {},
): Promise<Rig> {
  const { s3: given, ...rest } = options;
  const s3 = given ?? (await ImageBucket.create(inject('awsEndpoint')));
  if (!given) cleanups.push(() => s3.close());
  const { cp, manager, dir, logs } = await startImageRig(images, cleanups, rest);
  return { cp, s3, manager, dir, logs };
}

const ready = (r: Rig, uuid: string) => r.cp.imageReports(uuid).some((x) => x.state === 'ready');
const partials = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.partial'));

describe('image sync', () => {
  it('downloads every file of every page into <dir>/<uuid>/<role>, verified, and reports ready', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const iso = await s3.put('a.iso', randomBytes(3 * MiB + 123));
    const kernel = await s3.put('vmlinuz', randomBytes(300_000), 'kernel');
    const ramdisk = await s3.put('initrd', randomBytes(700_001), 'ramdisk');
    const a = await s3.assignment([iso], { name: '../../etc/passwd' });
    const b = await s3.assignment([kernel, ramdisk], { name: 'ubuntu netboot' });
    const r = await rig([a, b], { s3, pageSize: 1 });

    await waitFor(() => ready(r, a.uuid) && ready(r, b.uuid), 'both images ready', 20_000);
    expect(readFileSync(join(r.dir, a.uuid, 'iso')).equals(iso.data)).toBe(true);
    expect(readFileSync(join(r.dir, b.uuid, 'kernel')).equals(kernel.data)).toBe(true);
    expect(readFileSync(join(r.dir, b.uuid, 'ramdisk')).equals(ramdisk.data)).toBe(true);
    // Paged: one image per page, so at least two images_pull (the second with a cursor).
    expect(r.cp.messages('images_pull').some((m) => m.cursor)).toBe(true);
    expect(partials(r.dir)).toEqual([]);
    expect(readdirSync(r.dir).sort()).toEqual([a.uuid, b.uuid].sort()); // the name never became a path
    const manifest = JSON.parse(readFileSync(join(r.dir, b.uuid, '.manifest.json'), 'utf8'));
    expect(manifest.files.kernel).toMatchObject({ size: kernel.data.length, sha256: kernel.sha256 });
    const last = r.cp.imageReports(b.uuid).at(-1)!;
    expect(last).toMatchObject({ state: 'ready', bytes_done: 1_000_001, bytes_total: 1_000_001 });
    expect(r.manager.path(a.uuid, 'iso')).toBe(join(r.dir, a.uuid, 'iso'));
    expect(r.manager.stats()).toMatchObject({
      ready: 2,
      error: 0,
      bytesDownloaded: 3 * MiB + 123 + 1_000_001,
    });
    // Presigned URLs are logged without their signature.
    const logText = r.logs.join('');
    expect(logText).toContain('image download starting');
    expect(logText).not.toMatch(/X-Amz-Signature|X-Amz-Credential/);
    expect(r.cp.invalid).toBe(0);
  });

  it('resumes an interrupted download with Range instead of starting from zero', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const size = 6 * MiB;
    const iso = await s3.put('big.iso', randomBytes(size));
    const a = await s3.assignment([iso]);
    s3.proxy.cuts.push(Math.floor(size * 0.6)); // the first response dies at 60 %
    const r = await rig([a], { s3 });

    await waitFor(() => ready(r, a.uuid), 'image ready', 20_000);
    const gets = s3.proxy.gets('big.iso');
    expect(gets.length).toBe(2);
    expect(gets[0]!.cut).toBe(true);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? '')?.[1]);
    expect(resumedAt).toBeGreaterThan(size * 0.5);
    const transferred = s3.proxy.bytes('big.iso');
    expect(transferred - size).toBeLessThan(MiB); // re-transferred: what was cut but not yet written
    expect(readFileSync(join(r.dir, a.uuid, 'iso')).equals(iso.data)).toBe(true);
    expect(r.cp.imageReports(a.uuid).some((x) => x.state === 'syncing' && x.bytes_done > 0)).toBe(true);
    expect(partials(r.dir)).toEqual([]);
  });

  it('a wrong SHA-256 reports error, keeps the previous good file, leaves no partial, and retries later', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const iso = await s3.put('v1.iso', randomBytes(MiB));
    const good = await s3.assignment([iso]);
    let list: ImageAssignment[] = [good];
    const r = await rig(() => list, { s3 });
    await waitFor(() => ready(r, good.uuid), 'v1 ready', 20_000);

    // The control plane now wants other bytes under the same image; S3 still has v1.
    const tampered = await s3.assignment([iso], { uuid: good.uuid, sha256: 'ab'.repeat(32) });
    list = [tampered];
    r.cp.wakeImages();
    const failed = await waitFor(
      () => r.cp.imageReports(good.uuid).find((x) => x.state === 'error'),
      'an error report',
      20_000,
    );
    expect(failed.error).toMatch(/SHA-256 mismatch/);
    expect(readFileSync(join(r.dir, good.uuid, 'iso')).equals(iso.data)).toBe(true);
    expect(partials(r.dir)).toEqual([]);
    const attempts = s3.proxy.gets('v1.iso').length;
    await waitFor(() => s3.proxy.gets('v1.iso').length > attempts, 'a retry after the backoff', 10_000);
    expect(readFileSync(join(r.dir, good.uuid, 'iso')).equals(iso.data)).toBe(true);
  });

  it('asks for a new URL when url_expires_at has passed, without trying the old one', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const iso = await s3.put('e.iso', randomBytes(200_000));
    const stale = await s3.assignment([iso], { expiresAt: new Date(Date.now() - 60_000).toISOString() });
    const fresh = await s3.assignment([iso], { uuid: stale.uuid });
    let calls = 0;
    const r = await rig(() => (++calls === 1 ? [stale] : [fresh]), { s3 });
    await waitFor(() => ready(r, stale.uuid), 'image ready', 20_000);
    expect(calls).toBeGreaterThanOrEqual(2);
    const gets = s3.proxy.gets('e.iso');
    expect(gets.map((g) => g.status)).toEqual([200]);
  });

  it('asks for a new URL when S3 refuses the old one (403, expired)', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const iso = await s3.put('x.iso', randomBytes(200_000));
    // Signed for 1 s but claimed valid for an hour: only S3's answer tells.
    const expired = await s3.assignment([iso], {
      expiresIn: 1,
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    let calls = 0;
    const r = await rig(
      async () => (++calls === 1 ? [expired] : [await s3.assignment([iso], { uuid: expired.uuid })]),
      {
        s3,
      },
    );
    await waitFor(() => ready(r, expired.uuid), 'image ready', 20_000);
    expect(s3.proxy.gets('x.iso').map((g) => g.status)).toEqual([403, 200]);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(r.cp.imageReports(expired.uuid).some((x) => x.state === 'error')).toBe(false);
  });

  it('removes an image no longer wanted after the grace period, but never a pinned one', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const one = await s3.put('one.iso', randomBytes(10_000));
    const two = await s3.put('two.iso', randomBytes(10_000));
    const a = await s3.assignment([one]);
    const b = await s3.assignment([two]);
    let list = [a, b];
    // A grace of seconds: the check that `a` is still there cannot come after it on a busy machine.
    const r = await rig(() => list, { s3, gcGraceMs: 3000 });
    await waitFor(() => ready(r, a.uuid) && ready(r, b.uuid), 'both ready', 20_000);
    r.manager.pin(b.uuid, 'node-1');

    list = [];
    const dropped = Date.now();
    r.cp.wakeImages();
    await waitFor(() => r.cp.imagesPulls >= 2 && Date.now() - dropped > 300, 'the new list');
    expect(existsSync(join(r.dir, a.uuid))).toBe(true); // still in its grace period
    await waitFor(() => !existsSync(join(r.dir, a.uuid)), 'a removed', 15_000);
    expect(Date.now() - dropped).toBeGreaterThanOrEqual(3000);
    await new Promise((resolve) => setTimeout(resolve, 1600)); // one more collection pass (every grace / 2)
    expect(readFileSync(join(r.dir, b.uuid, 'iso')).equals(two.data)).toBe(true); // pinned: kept
    r.manager.unpin(b.uuid, 'node-1');
    // The count moves once the removal has finished; the directory goes a moment before.
    await waitFor(
      () => (r.manager.stats().removed >= 2 ? true : undefined),
      'b removed once unpinned',
      10_000,
    );
    expect(r.manager.stats().removed).toBe(2);
    expect(existsSync(join(r.dir, b.uuid))).toBe(false);
  });

  it('runs at most `concurrency` downloads at once, within the bandwidth cap', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const list: ImageAssignment[] = [];
    for (let i = 0; i < 5; i++)
      list.push(await s3.assignment([await s3.put(`c${i}.iso`, randomBytes(400_000))]));
    const started = Date.now();
    const r = await rig(list, { s3, concurrency: 2, bandwidthLimit: MiB });
    await waitFor(() => list.every((a) => ready(r, a.uuid)), 'all ready', 30_000);
    const elapsed = Date.now() - started;
    // Never more than `concurrency` at once. (Whether two overlap at the proxy depends on
    // socket buffers: a whole 400 kB answer can leave the proxy before the throttled agent
    // has read it, so "exactly 2" would be a race, not a property.)
    expect(s3.proxy.maxInFlight).toBeGreaterThanOrEqual(1);
    expect(s3.proxy.maxInFlight).toBeLessThanOrEqual(2);
    // 2,000,000 bytes at 1 MiB/s (less the bucket's first burst of 104,857 bytes).
    expect(elapsed).toBeGreaterThan(1700);
    for (const a of list) expect(statSync(join(r.dir, a.uuid, 'iso')).size).toBe(400_000);
  });

  it('verification finds a corrupt file whose size and mtime were kept, and replaces it', async () => {
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    const iso = await s3.put('v.iso', randomBytes(500_000));
    const a = await s3.assignment([iso]);
    const r = await rig(() => [a], { s3 });
    await waitFor(() => ready(r, a.uuid), 'ready', 20_000);
    const path = join(r.dir, a.uuid, 'iso');
    const before = statSync(path);
    const bytes = readFileSync(path);
    bytes[1234] = (bytes[1234]! + 1) % 256;
    writeFileSync(path, bytes);
    utimesSync(path, before.atime, before.mtime);
    expect(await r.manager.verifyAll()).toBe(1);
    await waitFor(
      // The corrupt file is removed before its replacement lands: absent meanwhile.
      () => s3.proxy.gets('v.iso').length === 2 && existsSync(path) && readFileSync(path).equals(iso.data),
      'replaced',
      20_000,
    );
    expect(r.manager.stats().corruptDetected).toBe(1);
  });

  it('disk full: reported clearly, no partial file left visible', async (ctx) => {
    const mount = mkdtempSync(join(tmpdir(), 'metalplane-tmpfs-'));
    cleanups.push(() => rmSync(mount, { recursive: true, force: true }));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mount], { stdio: 'ignore' });
    } catch {
      ctx.skip(); // needs root and mount(2): a 4 MiB tmpfs is the real full disk
    }
    cleanups.push(() => {
      execFileSync('umount', [mount]);
    });
    const dir = join(mount, 'images');
    mkdirSync(dir);
    const s3 = await ImageBucket.create(inject('awsEndpoint'));
    cleanups.push(() => s3.close());
    // Each fits alone; together they do not.
    const a = await s3.assignment([await s3.put('f1.iso', randomBytes(3 * MiB))]);
    const b = await s3.assignment([await s3.put('f2.iso', randomBytes(3 * MiB))]);
    const r = await rig([a, b], { s3, dir, concurrency: 2, retryInitialMs: 60_000 });
    const full = await waitFor(
      () => r.cp.imageReports().find((x) => x.state === 'error'),
      'an error report',
      20_000,
    );
    expect(full.error).toMatch(/disk full/);
    await waitFor(() => r.manager.stats().downloadsRunning === 0, 'downloads settled', 20_000);
    expect(partials(dir)).toEqual([]);
  });
});
