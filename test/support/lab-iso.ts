/**
 * A small BIOS-bootable ISO for virtual media tests: the lab's kernel and busybox
 * initramfs (`../shared/lab/boot/build-initrd.sh`, which prints `METALPLANE-BOOT-MARKER`
 * on the serial console and powers the VM off), booted by ISOLINUX, packed by xorriso
 * (Debian packages isolinux, syslinux-common, xorriso). Built in a temporary directory
 * each time (≈ 10 MB, a second or two): nothing is cached between runs.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const labBootDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab', 'boot');

/** What the ISO's system prints on the serial console once booted. */
export const ISO_MARKER = 'METALPLANE-BOOT-MARKER';

const ISOLINUX_CFG = `serial 0 115200
default lab
prompt 0
timeout 1
label lab
  kernel /boot/vmlinuz
  append initrd=/boot/initrd.cpio.gz console=ttyS0 quiet
`;

/** Builds the ISO; answers its bytes. */
export async function buildLabIso(): Promise<Buffer> {
  const work = mkdtempSync(join(tmpdir(), 'metalplane-lab-iso-'));
  try {
    await run('sh', [join(labBootDir, 'build-initrd.sh'), work], { timeout: 120_000 });
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'isolinux'), { recursive: true });
    mkdirSync(join(tree, 'boot'), { recursive: true });
    copyFileSync('/usr/lib/ISOLINUX/isolinux.bin', join(tree, 'isolinux', 'isolinux.bin'));
    copyFileSync('/usr/lib/syslinux/modules/bios/ldlinux.c32', join(tree, 'isolinux', 'ldlinux.c32'));
    copyFileSync(join(work, 'vmlinuz'), join(tree, 'boot', 'vmlinuz'));
    copyFileSync(join(work, 'initrd.cpio.gz'), join(tree, 'boot', 'initrd.cpio.gz'));
    writeFileSync(join(tree, 'isolinux', 'isolinux.cfg'), ISOLINUX_CFG);
    const iso = join(work, 'lab.iso');
    await run(
      'xorriso',
      [
        '-as',
        'mkisofs',
        '-quiet',
        '-o',
        iso,
        '-V',
        'METALPLANE',
        '-b',
        'isolinux/isolinux.bin',
        '-c',
        'isolinux/boot.cat',
        '-no-emul-boot',
        '-boot-load-size',
        '4',
        '-boot-info-table',
        tree,
      ],
      { timeout: 120_000 },
    );
    return readFileSync(iso);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
