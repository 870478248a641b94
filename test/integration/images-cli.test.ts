/** `cli/metalplane.ts image ...` spawned against the test API (HTTP Basic) and moto S3. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { metalplaneCli, osEnv } from '../support/cli.ts';

const MiB = 1024 * 1024;
let api: TestApi;
let dir: string;

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  dir = await mkdtemp(join(tmpdir(), 'metalplane-cli-'));
});
afterAll(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const { run: cli, json } = metalplaneCli(() => osEnv(api));

describe('metalplane image', () => {
  it('upload: registers, uploads in parallel parts, and ends active with the right digest', async () => {
    const data = randomBytes(20 * MiB + 7);
    const path = join(dir, 'big.iso');
    await writeFile(path, data);
    const result = await cli([
      'image',
      'upload',
      'cli-iso',
      '--iso',
      path,
      '--multipart',
      '--parallel',
      '2',
      '--label',
      'os=test',
    ]);
    expect(result.stderr).not.toContain(api.admin.password);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^image cli-iso \([0-9a-f-]{36}\): active$/m);
    const shown = await api.call('GET', '/v1/images/cli-iso');
    expect(shown.body).toMatchObject({ state: 'active', labels: { os: 'test' } });
    expect(shown.body.files[0]).toMatchObject({
      size: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      state: 'verified',
    });
  }, 60_000);

  it("sync-status: the images a site's agent holds (none reported: pending); an unknown site is a 404", async () => {
    const held = await json('image', 'sync-status', api.site);
    expect(held).toContainEqual(
      expect.objectContaining({ name: 'cli-iso', kind: 'iso', state: 'pending', bytes_done: 0 }),
    );
    expect(Object.keys(held[0])).toStrictEqual([
      'uuid',
      'name',
      'kind',
      'state',
      'bytes_done',
      'bytes_total',
    ]);
    const table = await cli(['image', 'sync-status', api.site]);
    expect(table.stdout).toMatch(/^\| UUID +\| Name +\| Kind +\| State +\| Bytes Done +\| Bytes Total +\|$/m);
    const long = await json('image', 'sync-status', api.site, '--long');
    expect(long[0]).toMatchObject({ error: null, observed_at: null, reported_by: null });
    const unknown = await cli(['image', 'sync-status', 'nowhere']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^Site nowhere could not be found\. \(HTTP 404\)/);
  });

  it('upload of a kernel+ramdisk pair with single PUTs; list, show, delete', async () => {
    await writeFile(join(dir, 'vmlinuz'), randomBytes(50_000));
    await writeFile(join(dir, 'initrd'), randomBytes(80_000));
    const result = await cli([
      'image',
      'upload',
      'cli-pair',
      '--kernel',
      join(dir, 'vmlinuz'),
      '--ramdisk',
      join(dir, 'initrd'),
      '--no-progress',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const listed = await cli(['image', 'list']);
    expect(listed.stdout).toMatch(/^\| UUID +\| Name +\| Kind +\| State +\| Size +\|$/m);
    expect(listed.stdout).toMatch(/\| cli-pair +\| kernel\+ramdisk \| active +\| 130000 +\|$/m);
    expect(await json('image', 'list', '-c', 'name', '-c', 'size')).toContainEqual({
      name: 'cli-pair',
      size: 130000,
    });
    const values = await cli([
      'image',
      'list',
      '--state',
      'active',
      '-c',
      'name',
      '-c',
      'kind',
      '-f',
      'value',
    ]);
    expect(values.stdout).toMatch(/^cli-pair kernel\+ramdisk$/m);
    const table = await cli(['image', 'show', 'cli-pair']);
    expect(table.stdout).toMatch(/^\| Field +\| Value +\|$/m);
    expect(table.stdout).toMatch(/^\| name +\| cli-pair +\|$/m);
    expect(table.stdout).toMatch(/^\| state +\| active +\|$/m);
    const shown = await json('image', 'show', 'cli-pair');
    expect(shown).not.toHaveProperty('links');
    expect(shown.files.map((file: { role: string }) => file.role)).toStrictEqual(['kernel', 'ramdisk']);
    expect((await cli(['image', 'delete', 'cli-pair'])).stdout.trim()).toBe('image cli-pair deleted');
    expect((await api.call('GET', '/v1/images/cli-pair')).status).toBe(404);
  }, 60_000);

  it('upload of a whole-disk image: its format from the file name or --disk-format; mixed kinds refused', async () => {
    const disk = join(dir, 'os.img.gz');
    await writeFile(disk, randomBytes(70_000));
    const result = await cli(['image', 'upload', 'cli-disk', '--disk', disk, '--no-progress']);
    expect(result.code, result.stderr).toBe(0);
    const shown = await api.call('GET', '/v1/images/cli-disk');
    expect(shown.body).toMatchObject({ kind: 'disk', disk_format: 'raw+gzip', state: 'active' });
    expect(shown.body.files.map((file: { role: string }) => file.role)).toStrictEqual(['disk']);

    const qcow = await cli(['image', 'create', 'cli-disk-2', '--disk', disk, '--disk-format', 'qcow2']);
    expect(qcow.code, qcow.stderr).toBe(0);
    expect(JSON.parse(qcow.stdout)).toMatchObject({ kind: 'disk', disk_format: 'qcow2' });

    const mixed = await cli(['image', 'create', 'cli-mixed', '--disk', disk, '--iso', disk]);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toContain('one of them');
    const badFormat = await cli(['image', 'create', 'cli-bad', '--disk', disk, '--disk-format', 'vmdk']);
    expect(badFormat.code).toBe(1);
    expect(badFormat.stderr).toContain('--disk-format must be one of raw, raw+gzip, raw+zstd, qcow2');
    expect((await api.call('GET', '/v1/images/cli-mixed')).status).toBe(404);
  }, 60_000);

  it('refuses a file that is not the registered one, and a wrong password (exit 1, clear message)', async () => {
    const other = join(dir, 'other.iso');
    await writeFile(other, randomBytes(1000));
    const mismatch = await cli(['image', 'upload', 'cli-iso', '--iso', other]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toMatch(/is not the iso registered for cli-iso/);
    const denied = await cli(['image', 'list'], { OS_PASSWORD: 'wrong-password' });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/401/);
    expect(denied.stderr).not.toContain('wrong-password');
  });
});
