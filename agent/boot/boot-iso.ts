/**
 * A bootable ISO built from a kernel and a ramdisk, for virtual media (Ironic builds one
 * the same way for its `redfish-virtual-media` boot: `images.create_boot_iso`):
 *
 * - bios: ISOLINUX (Debian packages isolinux, syslinux-common) loads `/boot/vmlinuz` and
 *   `/boot/initrd` from the ISO 9660 tree, El Torito "no emulation" with a boot info table;
 * - uefi: an EFI System Partition image (FAT, built with mkfs.vfat and mtools on a file,
 *   no mount) holding systemd-boot as `\EFI\BOOT\BOOTX64.EFI`, its loader entry, the
 *   kernel and the ramdisk — the El Torito EFI entry (platform 0xEF) of the ISO. The kernel
 *   must be EFI-stub capable (every distribution kernel is). Ironic uses GRUB here; the
 *   agent uses systemd-boot, which needs no module list and reads one plain entry file.
 *
 * The kernel command line is the checked tokens of `kernelParamTokens` (no newline, no
 * quote, no script syntax can reach a boot loader's config). Packed by xorriso from graft
 * points (the images are not copied into a tree first); written to a temporary name next
 * to `out` and renamed, so a reader never sees half an ISO. Every tool runs bounded in time.
 */
import { copyFile, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BootMode } from '../../protocol/actions.ts';
import { runTool, ToolError } from './run-tool.ts';

export interface BootIsoSources {
  readonly kernel: string;
  readonly ramdisk: string;
  /** Kernel command line tokens, already checked (`kernelParamTokens`). */
  readonly cmdline: readonly string[];
  readonly bootMode: BootMode;
}

export interface BootIsoOptions {
  /** ISOLINUX's loader and its core module (bios). */
  readonly isolinuxBin?: string;
  readonly ldlinuxC32?: string;
  /** The EFI boot loader put at `\EFI\BOOT\BOOTX64.EFI` (uefi). */
  readonly efiLoader?: string;
  /** Bound of each tool run (default 120 s: a few hundred MB of ramdisk on a busy disk). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export const BOOT_ISO_DEFAULTS = {
  isolinuxBin: '/usr/lib/ISOLINUX/isolinux.bin',
  ldlinuxC32: '/usr/lib/syslinux/modules/bios/ldlinux.c32',
  efiLoader: '/usr/lib/systemd/boot/efi/systemd-bootx64.efi',
} as const;

/** The ISO's volume label. */
export const BOOT_ISO_LABEL = 'METALPLANE_BOOT';

/** The boot loader could not be found, or a tool failed: the message is for the operator. */
export class BootIsoError extends Error {
  override name = 'BootIsoError';
}

const MIB = 1024 * 1024;
const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1' };

/** Builds the ISO at `out` (replacing what is there); answers its size in bytes. */
export async function buildBootIso(
  sources: BootIsoSources,
  out: string,
  options: BootIsoOptions = {},
): Promise<number> {
  const work = await mkdtemp(join(dirname(out), '.building-'));
  const run = (program: string, args: string[], packageName: string, env?: Record<string, string>) =>
    runTool(program, args, {
      timeoutMs: options.timeoutMs ?? 120_000,
      ...(options.signal ? { signal: options.signal } : {}),
      packageName,
      ...(env ? { env } : {}),
    });
  try {
    const cmdline = sources.cmdline.join(' ');
    const grafts =
      sources.bootMode === 'uefi'
        ? await uefiGrafts(sources, cmdline, work, options, run)
        : await biosGrafts(sources, cmdline, work, options);
    const building = join(work, 'boot.iso');
    await run(
      'xorriso',
      [
        '-as',
        'mkisofs',
        '-quiet',
        '-o',
        building,
        '-V',
        BOOT_ISO_LABEL,
        '-J',
        '-r',
        ...grafts.boot,
        '-graft-points',
        ...grafts.files.map(([inIso, source]) => `${inIso}=${source}`),
      ],
      'xorriso',
    );
    await rename(building, out);
    return (await stat(out)).size;
  } catch (error) {
    if (error instanceof ToolError) throw new BootIsoError(`building the boot ISO: ${error.message}`);
    throw error;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

type Run = (
  program: string,
  args: string[],
  packageName: string,
  env?: Record<string, string>,
) => Promise<void>;
interface Grafts {
  /** xorriso's El Torito options. */
  readonly boot: string[];
  /** [path in the ISO, local file]. */
  readonly files: Array<[string, string]>;
}

async function present(path: string, what: string, packageName: string): Promise<string> {
  try {
    if ((await stat(path)).isFile()) return path;
  } catch {
    // reported below
  }
  throw new BootIsoError(`building the boot ISO: ${what} ${path} is missing (Debian package ${packageName})`);
}

async function biosGrafts(
  sources: BootIsoSources,
  cmdline: string,
  work: string,
  options: BootIsoOptions,
): Promise<Grafts> {
  const isolinux = await present(
    options.isolinuxBin ?? BOOT_ISO_DEFAULTS.isolinuxBin,
    'ISOLINUX',
    'isolinux',
  );
  const ldlinux = await present(
    options.ldlinuxC32 ?? BOOT_ISO_DEFAULTS.ldlinuxC32,
    'ldlinux.c32',
    'syslinux-common',
  );
  // -boot-info-table patches the loader: a copy of ours, never the system's file.
  const loader = join(work, 'isolinux.bin');
  await copyFile(isolinux, loader);
  const config = join(work, 'isolinux.cfg');
  await writeFile(
    config,
    [
      'default boot',
      'prompt 0',
      'timeout 1',
      'label boot',
      '  kernel /boot/vmlinuz',
      `  append initrd=/boot/initrd${cmdline ? ` ${cmdline}` : ''}`,
      '',
    ].join('\n'),
  );
  return {
    boot: [
      '-b',
      'isolinux/isolinux.bin',
      '-c',
      'isolinux/boot.cat',
      '-no-emul-boot',
      '-boot-load-size',
      '4',
      '-boot-info-table',
    ],
    files: [
      ['isolinux/isolinux.bin', loader],
      ['isolinux/ldlinux.c32', ldlinux],
      ['isolinux/isolinux.cfg', config],
      ['boot/vmlinuz', sources.kernel],
      ['boot/initrd', sources.ramdisk],
    ],
  };
}

async function uefiGrafts(
  sources: BootIsoSources,
  cmdline: string,
  work: string,
  options: BootIsoOptions,
  run: Run,
): Promise<Grafts> {
  const efiLoader = await present(
    options.efiLoader ?? BOOT_ISO_DEFAULTS.efiLoader,
    'the EFI boot loader',
    'systemd-boot-efi',
  );
  const sizes = await Promise.all(
    [sources.kernel, sources.ramdisk, efiLoader].map(async (f) => (await stat(f)).size),
  );
  // The files, FAT's own tables and slack (cluster rounding), in whole MiB.
  const bytes = sizes.reduce((a, b) => a + b, 0);
  const mib = Math.ceil((bytes * 1.05) / MIB) + 2;
  const esp = join(work, 'efiboot.img');
  await run('mkfs.vfat', ['-C', '-n', 'METALPLANE', esp, String(mib * 1024)], 'dosfstools', MTOOLS_ENV);
  const loaderConf = join(work, 'loader.conf');
  const entry = join(work, 'metalplane.conf');
  await writeFile(loaderConf, 'default metalplane.conf\ntimeout 0\n');
  await writeFile(
    entry,
    `title Metalplane\nlinux /vmlinuz\ninitrd /initrd\n${cmdline ? `options ${cmdline}\n` : ''}`,
  );
  await run(
    'mmd',
    ['-i', esp, '::/EFI', '::/EFI/BOOT', '::/loader', '::/loader/entries'],
    'mtools',
    MTOOLS_ENV,
  );
  const copies: Array<[string, string]> = [
    [efiLoader, '::/EFI/BOOT/BOOTX64.EFI'],
    [loaderConf, '::/loader/loader.conf'],
    [entry, '::/loader/entries/metalplane.conf'],
    [sources.kernel, '::/vmlinuz'],
    [sources.ramdisk, '::/initrd'],
  ];
  for (const [from, to] of copies) await run('mcopy', ['-i', esp, from, to], 'mtools', MTOOLS_ENV);
  return {
    // -e: the El Torito entry for EFI (platform 0xEF), the whole FAT image as its "disk".
    boot: ['-e', 'efiboot.img', '-no-emul-boot'],
    files: [['efiboot.img', esp]],
  };
}
