/**
 * The agent's boot ISO builder (`agent/boot/boot-iso.ts`) with the real tools (xorriso,
 * mkfs.vfat, mtools, ISOLINUX, systemd-boot): the ISOs it packs are read back with
 * xorriso and mtools. The kernel and the ramdisk are small random files (the builder does
 * not look inside them). Tool failures and time bounds use a fake `xorriso` put first on
 * PATH for that test only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BOOT_ISO_DEFAULTS, BOOT_ISO_LABEL, BootIsoError, buildBootIso } from '../../agent/boot/boot-iso.ts';

const root = mkdtempSync(join(tmpdir(), 'boot-iso-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KERNEL_BYTES = randomBytes(3000);
const RAMDISK_BYTES = randomBytes(5000);
const kernel = join(root, 'kernel');
const ramdisk = join(root, 'ramdisk');
writeFileSync(kernel, KERNEL_BYTES);
writeFileSync(ramdisk, RAMDISK_BYTES);

const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1' };

/** Each test's output directory (where the ISO and the builder's `.building-*` go), and its scratch. */
let out: string;
let scratch: string;
let n = 0;
beforeEach(() => {
  out = join(root, `out-${n}`);
  scratch = join(root, `scratch-${n++}`);
  mkdirSync(out);
  mkdirSync(scratch);
});
afterEach(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

/** xorriso's report of the ISO's El Torito boot catalog (stdout and stderr: it writes both). */
function elTorito(iso: string): string {
  const result = spawnSync('xorriso', ['-indev', iso, '-report_el_torito', 'plain'], { encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return `${result.stdout}\n${result.stderr}`;
}

/** One file of the ISO (its ISO 9660 / Rock Ridge path), extracted to the output directory. */
function extract(iso: string, path: string): string {
  const to = join(scratch, `extracted-${randomBytes(4).toString('hex')}`);
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', path, to], { stdio: 'pipe' });
  return to;
}

/** A file of a FAT image, as text (mtype) or bytes (mcopy). */
function fatText(image: string, path: string): string {
  return execFileSync('mtype', ['-i', image, `::${path}`], {
    env: { ...process.env, ...MTOOLS_ENV },
    encoding: 'utf8',
  });
}
function fatBytes(image: string, path: string): Buffer {
  const to = join(scratch, `fat-${randomBytes(4).toString('hex')}`);
  execFileSync('mcopy', ['-i', image, `::${path}`, to], {
    env: { ...process.env, ...MTOOLS_ENV },
    stdio: 'pipe',
  });
  return readFileSync(to);
}
function fatList(image: string, path: string): string {
  return execFileSync('mdir', ['-i', image, '-b', `::${path}`], {
    env: { ...process.env, ...MTOOLS_ENV },
    encoding: 'utf8',
  });
}

/** What is in the output directory: the ISO, and what the builder left (temporary dirs, partial ISOs). */
function leftovers(): string[] {
  return readdirSync(out).sort();
}

/** Runs `fn` with `dir` first on PATH (the builder finds its tools on PATH), then restores PATH. */
async function withPath<T>(dir: string, fn: () => Promise<T>, replace = false): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = replace ? dir : `${dir}:${saved ?? ''}`;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

/** A directory holding a fake `xorriso` shell script with this body. */
function fakeXorriso(body: string): string {
  const bin = mkdtempSync(join(scratch, 'bin-'));
  const script = join(bin, 'xorriso');
  writeFileSync(script, `#!/bin/sh\n${body}\n`);
  chmodSync(script, 0o755);
  return bin;
}

describe('buildBootIso: bios (ISOLINUX)', () => {
  it('packs an El Torito BIOS boot with the kernel, the ramdisk and the command line', async () => {
    const iso = join(out, 'boot.iso');
    const size = await buildBootIso(
      { kernel, ramdisk, cmdline: ['console=ttyS0,115200n8', 'ip=dhcp'], bootMode: 'bios' },
      iso,
    );
    expect(size).toBe(readFileSync(iso).length);
    const report = elTorito(iso);
    expect(report).toMatch(/El Torito boot img\s*:\s*1\s+BIOS\s+y\s+none/);
    expect(report).not.toMatch(/UEFI/);
    expect(report).toMatch(/El Torito img path\s*:\s*1\s+\/isolinux\/isolinux\.bin/);
    expect(report).toMatch(/boot-info-table/);
    expect(report).toContain(`Volume id    : '${BOOT_ISO_LABEL}'`);

    const config = readFileSync(extract(iso, '/isolinux/isolinux.cfg'), 'utf8');
    const lines = config.split('\n').map((line) => line.trim());
    expect(lines).toContain('kernel /boot/vmlinuz');
    expect(lines).toContain('append initrd=/boot/initrd console=ttyS0,115200n8 ip=dhcp');
    expect(lines).toContain('default boot');
    expect(readFileSync(extract(iso, '/boot/vmlinuz'))).toEqual(KERNEL_BYTES);
    expect(readFileSync(extract(iso, '/boot/initrd'))).toEqual(RAMDISK_BYTES);
    expect(readFileSync(extract(iso, '/isolinux/ldlinux.c32'))).toEqual(
      readFileSync(BOOT_ISO_DEFAULTS.ldlinuxC32),
    );
    // Only the ISO is left: the work directory is gone.
    expect(leftovers()).toEqual(['boot.iso']);
  });

  it('patches a copy of ISOLINUX, never the file it was given', async () => {
    const loader = join(scratch, 'isolinux.bin');
    const original = readFileSync(BOOT_ISO_DEFAULTS.isolinuxBin);
    writeFileSync(loader, original);
    const iso = join(out, 'boot.iso');
    await buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, iso, { isolinuxBin: loader });
    expect(readFileSync(loader)).toEqual(original);
    // -boot-info-table wrote the ISO's layout into the loader inside the ISO.
    expect(readFileSync(extract(iso, '/isolinux/isolinux.bin'))).not.toEqual(original);
  });

  it('writes an append line without a trailing space when the command line is empty', async () => {
    const iso = join(out, 'boot.iso');
    await buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, iso);
    const config = readFileSync(extract(iso, '/isolinux/isolinux.cfg'), 'utf8');
    expect(config.split('\n')).toContain('  append initrd=/boot/initrd');
  });

  it('replaces an ISO already at the output path', async () => {
    const iso = join(out, 'boot.iso');
    writeFileSync(iso, 'not an iso');
    const size = await buildBootIso({ kernel, ramdisk, cmdline: ['quiet'], bootMode: 'bios' }, iso);
    expect(size).toBeGreaterThan(100_000);
    expect(elTorito(iso)).toMatch(/BIOS/);
    expect(leftovers()).toEqual(['boot.iso']);
  });
});

describe('buildBootIso: uefi (an ESP image with systemd-boot)', () => {
  it('packs an El Torito UEFI boot whose FAT image holds the loader, its entry, the kernel and the ramdisk', async () => {
    const iso = join(out, 'boot.iso');
    const size = await buildBootIso(
      {
        kernel,
        ramdisk,
        cmdline: ['console=ttyS0', 'mp.url=http://10.0.0.1:8080/ramdisk/v1'],
        bootMode: 'uefi',
      },
      iso,
    );
    expect(size).toBe(readFileSync(iso).length);
    const report = elTorito(iso);
    expect(report).toMatch(/El Torito boot img\s*:\s*1\s+UEFI\s+y\s+none/);
    expect(report).not.toMatch(/\bBIOS\b/);
    expect(report).toMatch(/El Torito img path\s*:\s*1\s+\/efiboot\.img/);

    const esp = extract(iso, '/efiboot.img');
    const entry = fatText(esp, '/loader/entries/metalplane.conf');
    expect(entry.split('\n')).toEqual([
      'title Metalplane',
      'linux /vmlinuz',
      'initrd /initrd',
      'options console=ttyS0 mp.url=http://10.0.0.1:8080/ramdisk/v1',
      '',
    ]);
    expect(fatText(esp, '/loader/loader.conf')).toContain('default metalplane.conf');
    expect(fatBytes(esp, '/vmlinuz')).toEqual(KERNEL_BYTES);
    expect(fatBytes(esp, '/initrd')).toEqual(RAMDISK_BYTES);
    expect(fatBytes(esp, '/EFI/BOOT/BOOTX64.EFI')).toEqual(readFileSync(BOOT_ISO_DEFAULTS.efiLoader));
    expect(fatList(esp, '/EFI/BOOT')).toMatch(/BOOTX64\.EFI/i);
    expect(leftovers()).toEqual(['boot.iso']);
  });

  it('writes no options line when the command line is empty', async () => {
    const iso = join(out, 'boot.iso');
    await buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'uefi' }, iso);
    const entry = fatText(extract(iso, '/efiboot.img'), '/loader/entries/metalplane.conf');
    expect(entry).toBe('title Metalplane\nlinux /vmlinuz\ninitrd /initrd\n');
  });

  it('sizes the FAT image for a ramdisk larger than a MiB', async () => {
    const big = join(scratch, 'big-ramdisk');
    const bytes = randomBytes(3 * 1024 * 1024 + 123);
    writeFileSync(big, bytes);
    const iso = join(out, 'boot.iso');
    await buildBootIso({ kernel, ramdisk: big, cmdline: [], bootMode: 'uefi' }, iso);
    expect(fatBytes(extract(iso, '/efiboot.img'), '/initrd')).toEqual(bytes);
  });
});

describe('buildBootIso: failures', () => {
  it('names the Debian package of a missing ISOLINUX and leaves nothing behind', async () => {
    const iso = join(out, 'boot.iso');
    const missing = join(root, 'no-such-dir', 'isolinux.bin');
    const failure = buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, iso, {
      isolinuxBin: missing,
    });
    await expect(failure).rejects.toBeInstanceOf(BootIsoError);
    await expect(failure).rejects.toThrow(`ISOLINUX ${missing} is missing (Debian package isolinux)`);
    expect(existsSync(iso)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it('refuses a directory as ISOLINUX', async () => {
    const failure = buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, join(out, 'boot.iso'), {
      isolinuxBin: root,
    });
    await expect(failure).rejects.toThrow(/Debian package isolinux\)/);
    expect(leftovers()).toEqual([]);
  });

  it('names the Debian packages of a missing ldlinux.c32 and a missing EFI loader', async () => {
    await expect(
      buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, join(out, 'a.iso'), {
        ldlinuxC32: join(root, 'missing.c32'),
      }),
    ).rejects.toThrow(/ldlinux\.c32 .* is missing \(Debian package syslinux-common\)/);
    await expect(
      buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'uefi' }, join(out, 'b.iso'), {
        efiLoader: join(root, 'missing.efi'),
      }),
    ).rejects.toThrow(/the EFI boot loader .* is missing \(Debian package systemd-boot-efi\)/);
    expect(leftovers()).toEqual([]);
  });

  it('stops a tool that takes longer than its bound', async () => {
    // exec: the shell becomes the sleep, so the kill reaches it.
    const bin = fakeXorriso('exec sleep 60');
    const iso = join(out, 'boot.iso');
    const failure = withPath(bin, () =>
      buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, iso, { timeoutMs: 300 }),
    );
    await expect(failure).rejects.toBeInstanceOf(BootIsoError);
    await expect(failure).rejects.toThrow(
      'building the boot ISO: xorriso took longer than 300 ms and was stopped',
    );
    expect(existsSync(iso)).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  it("reports a failing tool's exit code and stderr, and gives it none of the agent's environment", async () => {
    const bin = fakeXorriso('echo "xorriso : FAILURE : something broke" >&2\nenv >&2\nexit 3');
    process.env.METALPLANE_TEST_SECRET = 'do-not-leak-this';
    try {
      const failure = withPath(bin, () =>
        buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, join(out, 'boot.iso')),
      );
      await expect(failure).rejects.toBeInstanceOf(BootIsoError);
      const message = await failure.then(
        () => '',
        (error: Error) => error.message,
      );
      expect(message).toMatch(
        /^building the boot ISO: xorriso failed \(3\): xorriso : FAILURE : something broke/,
      );
      expect(message).toContain('LC_ALL=C');
      expect(message).not.toContain('do-not-leak-this');
    } finally {
      delete process.env.METALPLANE_TEST_SECRET;
    }
    expect(leftovers()).toEqual([]);
  });

  it('names the Debian package of a tool that is not installed', async () => {
    const empty = mkdtempSync(join(scratch, 'empty-'));
    await expect(
      withPath(
        empty,
        () => buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, join(out, 'a.iso')),
        true,
      ),
    ).rejects.toThrow(
      'building the boot ISO: xorriso is not installed at this site (Debian package xorriso)',
    );
    await expect(
      withPath(
        empty,
        () => buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'uefi' }, join(out, 'b.iso')),
        true,
      ),
    ).rejects.toThrow(
      // mkfs.vfat is still found: the sbin directories are always searched (it lives in /usr/sbin).
      'building the boot ISO: mmd is not installed at this site (Debian package mtools)',
    );
    expect(leftovers()).toEqual([]);
  });

  it("rejects with the caller's abort reason (not a BootIsoError) and leaves nothing behind", async () => {
    const reason = new Error('the command was cancelled');
    const iso = join(out, 'boot.iso');
    const failure = buildBootIso({ kernel, ramdisk, cmdline: [], bootMode: 'bios' }, iso, {
      signal: AbortSignal.abort(reason),
    });
    await expect(failure).rejects.toBe(reason);
    expect(existsSync(iso)).toBe(false);
    expect(leftovers()).toEqual([]);
  });
});
