/**
 * scripts/build-ramdisk.ts: reproducible (same inputs → same key and the same bytes, even
 * rebuilt from scratch), cached (a second run is a hit), and keyed by its inputs (a changed
 * init script → a new key). Builds the real initramfs from the installed Debian packages
 * (linux-image-amd64, busybox-static, fdisk) with a fake program file, gzip only to be quick.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuildOptions,
  buildRamdisk,
  DEFAULT_INIT_DIR,
  newcArchive,
  resolveModules,
} from '../../scripts/build-ramdisk.ts';

let dir: string;
let options: BuildOptions;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'metalplane-build-ramdisk-'));
  const program = join(dir, 'program');
  writeFileSync(program, '#!/bin/sh\necho not the real program\n', { mode: 0o755 });
  const initDir = join(dir, 'initramfs');
  cpSync(DEFAULT_INIT_DIR, initDir, { recursive: true });
  options = { program, initDir, compression: 'gzip' };
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('build-ramdisk', () => {
  it('same inputs: same key and same bytes from two clean builds; the second run is a cache hit', async () => {
    const first = await buildRamdisk({ ...options, cacheDir: join(dir, 'a') });
    const second = await buildRamdisk({ ...options, cacheDir: join(dir, 'b') });
    expect(first.hit).toBe(false);
    expect(second.hit).toBe(false);
    expect(second.key).toBe(first.key);
    expect(second.files).toEqual(
      first.files.map((file) => ({ ...file, path: join(dir, 'b', first.key, file.name) })),
    );
    const image = readFileSync(join(first.dir, 'initramfs.img'));
    expect(readFileSync(join(second.dir, 'initramfs.img')).equals(image)).toBe(true);
    // gzip -n: no name, mtime 0.
    expect(image.subarray(3, 8)).toEqual(Buffer.from([0, 0, 0, 0, 0]));
    const cpio = gunzipSync(image).toString('latin1');
    expect(cpio.startsWith('070701')).toBe(true);
    expect(cpio).toContain('TRAILER!!!');
    for (const name of [
      'init',
      'bin/busybox',
      'bin/metalplane-ramdisk',
      'etc/udhcpc.script',
      'usr/sbin/sfdisk',
    ]) {
      expect(cpio).toContain(`${name}\0`);
    }
    expect(first.manifest.modules).toContain('e1000.ko');
    expect(first.manifest.packages).toHaveProperty(['busybox-static:amd64']);

    const again = await buildRamdisk({ ...options, cacheDir: join(dir, 'a') });
    expect(again.hit).toBe(true);
    expect(again.key).toBe(first.key);
    expect(again.files).toEqual(first.files);
    // How fast a hit is belongs in a bench, not here: `hit` says the cache answered.
  }, 120_000);

  it('a changed init script gives a new key', async () => {
    const before = await buildRamdisk({ ...options, cacheDir: join(dir, 'c') });
    const init = join(options.initDir!, 'init');
    writeFileSync(init, `${readFileSync(init, 'utf8')}\n# changed\n`);
    const after = await buildRamdisk({ ...options, cacheDir: join(dir, 'c') });
    expect(after.key).not.toBe(before.key);
    expect(after.hit).toBe(false);
    expect(after.manifest.files['initramfs.img']!.sha256).not.toBe(
      before.manifest.files['initramfs.img']!.sha256,
    );
    expect(after.manifest.files.vmlinuz).toEqual(before.manifest.files.vmlinuz);
  }, 120_000);

  it('modules come deps first; unknown ones are reported', () => {
    const dep = [
      'kernel/a/virtio_net.ko: kernel/a/net_failover.ko kernel/a/failover.ko',
      'kernel/a/net_failover.ko: kernel/a/failover.ko',
      'kernel/a/failover.ko:',
      'kernel/b/nls_iso8859-1.ko.zst:',
    ].join('\n');
    expect(resolveModules(dep, ['virtio_net', 'nls_iso8859-1', 'nope'])).toEqual({
      paths: [
        'kernel/a/failover.ko',
        'kernel/a/net_failover.ko',
        'kernel/a/virtio_net.ko',
        'kernel/b/nls_iso8859-1.ko.zst',
      ],
      missing: ['nope'],
    });
  });

  it('newc archive: sorted, owner root, fixed mtime, 4-byte aligned', () => {
    const archive = newcArchive(
      [
        { path: '/init', type: 'file', mode: 0o755, data: Buffer.from('x') },
        { path: '/bin', type: 'dir', mode: 0o755 },
      ],
      1234,
    );
    expect(archive.length % 4).toBe(0);
    const text = archive.toString('latin1');
    expect(text.indexOf('bin\0')).toBeLessThan(text.indexOf('init\0'));
    // First header: ino 1, dir mode, uid 0, gid 0, nlink 2, mtime 1234.
    expect(text.slice(0, 54)).toBe(
      `070701000000010000${(0o40755).toString(16)}000000000000000000000002${(1234).toString(16).padStart(8, '0')}`,
    );
  });
});
