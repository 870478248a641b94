/**
 * A small BIOS-bootable ISO for virtual media tests: the lab's kernel and busybox
 * initramfs (`../shared/lab/boot/build-initrd.sh`, which prints `METALPLANE-BOOT-MARKER`
 * on the serial console and powers the VM off), packed by the agent's own ISO builder
 * (agent/boot/boot-iso.ts: ISOLINUX, xorriso). Built in a temporary directory each time
 * (≈ 10 MB, a second or two): nothing is cached between runs.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildBootIso } from '../../agent/boot/boot-iso.ts';

const run = promisify(execFile);
const labBootDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab', 'boot');

/** What the ISO's system prints on the serial console once booted. */
export const ISO_MARKER = 'METALPLANE-BOOT-MARKER';

/** Runs the lab's recipe into a temporary directory; answers what `use` makes of it. */
async function withLabBuild<T>(use: (dir: string) => Promise<T>): Promise<T> {
  const work = mkdtempSync(join(tmpdir(), 'metalplane-lab-boot-'));
  try {
    await run('sh', [join(labBootDir, 'build-initrd.sh'), work], { timeout: 120_000 });
    return await use(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The lab's kernel and initramfs (which prints the marker, GETs the `callback=` URL of its
 * kernel command line over DHCP'd e1000, and powers off): a kernel+ramdisk image.
 */
export function buildLabKernelRamdisk(): Promise<{ kernel: Buffer; ramdisk: Buffer }> {
  return withLabBuild(async (dir) => ({
    kernel: readFileSync(join(dir, 'vmlinuz')),
    ramdisk: readFileSync(join(dir, 'initrd.cpio.gz')),
  }));
}

/** Builds the ISO (BIOS, console on the serial port); answers its bytes. */
export function buildLabIso(): Promise<Buffer> {
  return withLabBuild(async (dir) => {
    const iso = join(dir, 'lab.iso');
    await buildBootIso(
      {
        kernel: join(dir, 'vmlinuz'),
        ramdisk: join(dir, 'initrd.cpio.gz'),
        cmdline: ['console=ttyS0', 'quiet'],
        bootMode: 'bios',
      },
      iso,
    );
    return readFileSync(iso);
  });
}
