/**
 * A bootable whole-disk image for tests, built from installed Debian packages without
 * mounts, loop devices or root (a port of ../shared/lab/disk/build-disk-image.sh):
 *
 * - GPT, partition 1 = a FAT16 ESP with the GPT attribute LegacyBIOSBootable, built as a
 *   separate file (`mkfs.vfat -C -h 2048`), SYSLINUX installed into it (`syslinux --install`,
 *   the mtools installer, works on an unmounted file) and systemd-boot as
 *   `\EFI\BOOT\BOOTX64.EFI`; `gptmbr.bin` as the protective MBR's boot code. So one image
 *   boots under SeaBIOS (gptmbr → syslinux) and OVMF (removable-media path → systemd-boot).
 * - The test OS: Debian's kernel and a tiny busybox initramfs (written here as a newc cpio
 *   with `newcArchive`) whose /init prints `DISK-IMAGE-BOOTED token=<token> firmware=bios|uefi
 *   loader=syslinux|systemd-boot`, finds the config drive (`findfs LABEL=config-2`, vfat or
 *   iso9660), prints its `openstack/latest/user_data` between `USERDATA-BEGIN` and
 *   `USERDATA-END` (then `META-DATA: ...`), and powers off.
 * - Optionally a config drive partition added at build time (the lab's method: an 8 MiB
 *   vfat partition labelled config-2), to prove the image's side without a deploy.
 *
 * Outputs (per content key, cached under `.cache/disk-image/<key>/`): the sparse raw
 * image, and as asked `disk.img.gz` (gzip -n) and `disk.qcow2` (compressed), each with its
 * SHA-256. FAT volume ids are fixed (`-i`), timestamps are not: the bytes are not
 * reproducible, the SHA-256 is taken after building.
 * Needs: linux-image-amd64 busybox-static fdisk dosfstools mtools syslinux syslinux-common
 * systemd-boot-efi qemu-utils (scripts/debian-packages.txt).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { waitFor } from '../../agent/testing/agent-process.ts';
import {
  type Entry,
  newcArchive,
  newestKernelVersion,
  REPO_ROOT,
  resolveModules,
} from '../../scripts/build-ramdisk.ts';
import { publishCacheEntry } from '../../scripts/cache-entry.ts';

const run = promisify(execFile);
const BUILDER_VERSION = 1;
export const DEFAULT_DISK_CACHE = join(REPO_ROOT, '.cache', 'disk-image');
const MTOOLS_ENV = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
const SYSLINUX_GPTMBR = '/usr/lib/syslinux/mbr/gptmbr.bin';
const SYSTEMD_BOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';
const BUSYBOX = '/bin/busybox';
/** The first partition starts at LBA 2048 (1 MiB); the last MiB stays free for the backup GPT. */
const START_LBA = 2048;
const MiB = 1024 * 1024;
const MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_scsi',
  'sd_mod',
  'sr_mod',
  'ahci',
  'ata_piix',
  'nvme',
  'vfat',
  'isofs',
  'nls_cp437',
  'nls_ascii',
  'nls_utf8',
  'nls_iso8859-1',
];

export const BOOT_MARKER = 'DISK-IMAGE-BOOTED';
export const USERDATA_BEGIN = 'USERDATA-BEGIN';
export const USERDATA_END = 'USERDATA-END';
export const POWEROFF_MARKER = 'DISK-IMAGE-POWEROFF';

/** /init of the test OS (../shared/lab/disk/initramfs/disk-init). */
export const DISK_INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s
exec < /dev/console > /dev/console 2>&1
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "\${w#*=}";; esac; done; }
MODE=bios; [ -d /sys/firmware/efi ] && MODE=uefi
echo "${BOOT_MARKER} token=$(arg disk.token) firmware=$MODE loader=$(arg disk.fw) uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m 2>/dev/null; done
i=0
while [ $i -lt 30 ]; do ls /sys/class/block | grep -qE '^(vd|sd|nvme|sr)' && break; sleep 0.1; i=$((i+1)); done
sleep 0.5
echo "disk: block devices:"
grep -E ' (vd|sd|nvme|sr)' /proc/partitions
DEV=""; i=0
while [ -z "$DEV" ] && [ $i -lt 30 ]; do
  for L in config-2 CONFIG-2 cidata CIDATA; do DEV=$(findfs LABEL=$L 2>/dev/null) && break; done
  [ -n "$DEV" ] || { sleep 0.1; i=$((i+1)); }
done
if [ -n "$DEV" ]; then
  echo "CONFIGDRIVE-FOUND $DEV label=$L"
  if mount -o ro -t vfat "$DEV" /mnt 2>/dev/null || mount -o ro -t iso9660 "$DEV" /mnt; then
    echo "CONFIGDRIVE-FS $(grep ' /mnt ' /proc/mounts | cut -d' ' -f3)"
    F=/mnt/openstack/latest/user_data; [ -f "$F" ] || F=/mnt/user-data
    echo "${USERDATA_BEGIN}"; cat "$F"; echo; echo "${USERDATA_END}"
    [ -f /mnt/openstack/latest/meta_data.json ] && echo "META-DATA: $(cat /mnt/openstack/latest/meta_data.json)"
    umount /mnt
  else echo "CONFIGDRIVE-MOUNT-FAILED $DEV"; fi
else
  echo "CONFIGDRIVE-NONE"
fi
echo "${POWEROFF_MARKER} uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
`;

export type DiskImageFormat = 'gzip' | 'qcow2';

export interface ConfigDriveContent {
  readonly userData: string;
  readonly metaData?: Record<string, unknown>;
}

export interface DiskImageOptions {
  /** Printed by the test OS in its boot marker (baked into the kernel command line). */
  readonly token: string;
  /** Whole disk size (default 64 MiB); the boot partition is at most 60 MiB, the rest is empty. */
  readonly sizeMiB?: number;
  /** A config drive partition written at build time (the lab's by-hand method). */
  readonly configDrive?: ConfigDriveContent;
  readonly formats?: readonly DiskImageFormat[];
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

export interface DiskImageFile {
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface DiskImage {
  readonly key: string;
  readonly dir: string;
  readonly hit: boolean;
  readonly seconds: number;
  readonly token: string;
  readonly sizeBytes: number;
  readonly raw: DiskImageFile;
  readonly gzip?: DiskImageFile;
  readonly qcow2?: DiskImageFile;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The test OS's initramfs: busybox-static, the disk/fs modules (deps first), /init. */
export function testOsInitramfs(kernelVersion: string): Buffer {
  const moduleDir = join('/lib/modules', kernelVersion);
  const { paths, missing } = resolveModules(readFileSync(join(moduleDir, 'modules.dep'), 'utf8'), MODULES);
  const entries: Entry[] = [
    ...[
      'bin',
      'sbin',
      'dev',
      'proc',
      'sys',
      'tmp',
      'mnt',
      'etc',
      'lib',
      'lib/modules',
      'usr',
      'usr/bin',
      'usr/sbin',
    ].map((path) => ({ path, type: 'dir' as const, mode: 0o755 })),
    { path: 'dev/console', type: 'char', mode: 0o600, major: 5, minor: 1 },
    { path: 'bin/busybox', type: 'file', mode: 0o755, data: readFileSync(BUSYBOX) },
    { path: 'init', type: 'file', mode: 0o755, data: Buffer.from(DISK_INIT) },
  ];
  const order: string[] = [];
  for (const path of paths) {
    if (!/\.ko$/.test(path)) throw new Error(`compressed module ${path}: not supported here`);
    const name = path.split('/').at(-1) as string;
    order.push(name);
    entries.push({
      path: `lib/modules/${name}`,
      type: 'file',
      mode: 0o644,
      data: readFileSync(join(moduleDir, path)),
    });
  }
  entries.push({
    path: 'lib/modules/load-order',
    type: 'file',
    mode: 0o644,
    data: Buffer.from(`${order.join('\n')}\n`),
  });
  if (missing.some((name) => ['virtio_blk', 'vfat', 'isofs'].includes(name))) {
    throw new Error(`kernel ${kernelVersion} lacks modules: ${missing.join(', ')}`);
  }
  return gzipSync(newcArchive(entries, 0), { level: 9 });
}

/**
 * A FAT config drive file (label config-2) holding `openstack/latest/{user_data,meta_data.json}`
 * (Ironic's layout), made with mkfs.vfat -C and mtools. Answers `out`.
 */
export async function makeConfigDriveVfat(
  out: string,
  content: ConfigDriveContent,
  sizeMiB = 8,
): Promise<string> {
  const work = await mkdtemp(`${out}.d-`);
  try {
    rmSync(out, { force: true });
    await run('mkfs.vfat', ['-C', '-n', 'config-2', '-i', '0c0f1e02', out, String(sizeMiB * 1024)], {
      env: MTOOLS_ENV,
    });
    const userData = join(work, 'user_data');
    const metaData = join(work, 'meta_data.json');
    await writeFile(userData, content.userData);
    await writeFile(metaData, JSON.stringify(content.metaData ?? { uuid: 'test' }));
    await run('mmd', ['-i', out, '::/openstack', '::/openstack/latest'], { env: MTOOLS_ENV });
    await run('mcopy', ['-i', out, userData, '::/openstack/latest/user_data'], { env: MTOOLS_ENV });
    await run('mcopy', ['-i', out, metaData, '::/openstack/latest/meta_data.json'], { env: MTOOLS_ENV });
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function describeFile(path: string): Promise<DiskImageFile> {
  return { path, size: statSync(path).size, sha256: await sha256File(path) };
}

/** The cached image in `dir`, if its manifest and every file it names are there, whole. */
function readCachedImage(dir: string): DiskImage | undefined {
  const manifest = join(dir, 'manifest.json');
  if (!existsSync(manifest)) return undefined;
  const found = JSON.parse(readFileSync(manifest, 'utf8')) as DiskImage;
  const files = [found.raw, found.gzip, found.qcow2].filter((f): f is DiskImageFile => f !== undefined);
  return files.every((f) => existsSync(f.path) && statSync(f.path).size === f.size) ? found : undefined;
}

/** Builds (or finds in the cache) the image; see the module's comment. */
export async function buildDiskImage(options: DiskImageOptions): Promise<DiskImage> {
  const started = performance.now();
  const sizeMiB = options.sizeMiB ?? 64;
  const formats = [...new Set(options.formats ?? ['gzip'])].sort();
  const kernelVersion = newestKernelVersion();
  const kernel = `/boot/vmlinuz-${kernelVersion}`;
  const stamp = (path: string) => `${path}:${statSync(path).size}:${statSync(path).mtimeMs}`;
  const key = sha256(
    JSON.stringify({
      BUILDER_VERSION,
      init: DISK_INIT,
      source: readFileSync(import.meta.filename, 'utf8'),
      inputs: [kernel, BUSYBOX, SYSLINUX_GPTMBR, SYSTEMD_BOOT].map(stamp),
      token: options.token,
      sizeMiB,
      configDrive: options.configDrive ?? null,
      formats,
    }),
  ).slice(0, 24);
  const cache = options.cacheDir ?? DEFAULT_DISK_CACHE;
  const dir = join(cache, key);
  const found = readCachedImage(dir);
  if (found) return { ...found, hit: true, seconds: (performance.now() - started) / 1000 };
  mkdirSync(cache, { recursive: true });
  const work = await mkdtemp(join(cache, `.${key}-`));
  try {
    const log = options.log ?? (() => {});
    const cdMiB = options.configDrive ? 8 : 0;
    const bootMiB = Math.min(sizeMiB - 2 - cdMiB, 60);
    if (bootMiB < 32) throw new Error(`disk of ${sizeMiB} MiB too small`);
    const bootSectors = bootMiB * 2048;
    const cdStart = START_LBA + bootSectors;
    const raw = join(work, 'disk.img');
    // 1. The partition table (GPT; the ESP also legacy-BIOS-bootable) and gptmbr's boot code.
    writeFileSync(raw, '');
    await run('truncate', ['-s', `${sizeMiB}M`, raw]);
    const table = [
      'label: gpt',
      `first-lba: ${START_LBA}`,
      `start=${START_LBA}, size=${bootSectors}, type=U, name="ESP", attrs="LegacyBIOSBootable"`,
      ...(cdMiB > 0 ? [`start=${cdStart}, size=${cdMiB * 2048}, type=L, name="config-2"`] : []),
    ].join('\n');
    await new Promise<void>((resolve, reject) => {
      const child = execFile('sfdisk', ['-q', raw], (error) => (error ? reject(error) : resolve()));
      child.stdin?.end(`${table}\n`);
    });
    await run('dd', [
      `if=${SYSLINUX_GPTMBR}`,
      `of=${raw}`,
      'bs=440',
      'count=1',
      'conv=notrunc',
      'status=none',
    ]);

    // 2. The boot partition as a file: FAT16, hidden sectors = its LBA (for syslinux's VBR).
    const part = join(work, 'boot.fat');
    await run(
      'mkfs.vfat',
      [
        '-C',
        '-F',
        '16',
        '-n',
        'BOOT',
        '-i',
        '0b0075e1',
        '-h',
        String(START_LBA),
        part,
        String(bootMiB * 1024),
      ],
      {
        env: MTOOLS_ENV,
      },
    );
    await run('syslinux', ['--install', part], { env: MTOOLS_ENV });
    const cmdline = `console=ttyS0,115200 panic=-1 quiet disk.token=${options.token}`;
    const initrd = join(work, 'initrd.img');
    writeFileSync(initrd, testOsInitramfs(kernelVersion));
    writeFileSync(
      join(work, 'syslinux.cfg'),
      `SERIAL 0 115200\nDEFAULT test\nPROMPT 0\nTIMEOUT 0\nLABEL test\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND ${cmdline} disk.fw=syslinux\n`,
    );
    writeFileSync(join(work, 'loader.conf'), 'default test.conf\ntimeout 0\n');
    writeFileSync(
      join(work, 'test.conf'),
      `title test\nlinux /vmlinuz\ninitrd /initrd.img\noptions ${cmdline} disk.fw=systemd-boot\n`,
    );
    const mcopy = (from: string, to: string) => run('mcopy', ['-i', part, from, to], { env: MTOOLS_ENV });
    await mcopy(kernel, '::/vmlinuz');
    await mcopy(initrd, '::/initrd.img');
    await mcopy(join(work, 'syslinux.cfg'), '::/syslinux.cfg');
    await run('mmd', ['-i', part, '::/EFI', '::/EFI/BOOT', '::/loader', '::/loader/entries'], {
      env: MTOOLS_ENV,
    });
    await mcopy(SYSTEMD_BOOT, '::/EFI/BOOT/BOOTX64.EFI');
    await mcopy(join(work, 'loader.conf'), '::/loader/loader.conf');
    await mcopy(join(work, 'test.conf'), '::/loader/entries/test.conf');
    await run('dd', [
      `if=${part}`,
      `of=${raw}`,
      'bs=512',
      `seek=${START_LBA}`,
      'conv=notrunc,sparse',
      'status=none',
    ]);

    // 3. The by-hand config drive, if asked.
    if (options.configDrive) {
      const cd = await makeConfigDriveVfat(join(work, 'cd.fat'), options.configDrive, cdMiB);
      await run('dd', [
        `if=${cd}`,
        `of=${raw}`,
        'bs=512',
        `seek=${cdStart}`,
        'conv=notrunc,sparse',
        'status=none',
      ]);
    }
    for (const name of ['boot.fat', 'cd.fat', 'initrd.img', 'syslinux.cfg', 'loader.conf', 'test.conf']) {
      rmSync(join(work, name), { force: true });
    }

    // 4. Compressed forms.
    const outputs: { gzip?: string; qcow2?: string } = {};
    if (formats.includes('gzip')) {
      outputs.gzip = join(work, 'disk.img.gz');
      await run('sh', ['-c', 'gzip -n -6 -c "$1" > "$2"', 'sh', raw, outputs.gzip], { maxBuffer: 1024 });
    }
    if (formats.includes('qcow2')) {
      outputs.qcow2 = join(work, 'disk.qcow2');
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', '-c', raw, outputs.qcow2]);
    }
    const rename = (path: string) => join(dir, path.split('/').at(-1) as string);
    const result: DiskImage = {
      key,
      dir,
      hit: false,
      seconds: 0,
      token: options.token,
      sizeBytes: sizeMiB * MiB,
      raw: { ...(await describeFile(raw)), path: rename(raw) },
      ...(outputs.gzip
        ? { gzip: { ...(await describeFile(outputs.gzip)), path: rename(outputs.gzip) } }
        : {}),
      ...(outputs.qcow2
        ? { qcow2: { ...(await describeFile(outputs.qcow2)), path: rename(outputs.qcow2) } }
        : {}),
    };
    writeFileSync(join(work, 'manifest.json'), `${JSON.stringify(result, null, 2)}\n`);
    // Another test file may have built the same key meanwhile: its entry stands, and is
    // what this call answers (the same inputs, and the sizes and checksums of its files).
    if (!publishCacheEntry(work, dir, () => readCachedImage(dir) !== undefined))
      return buildDiskImage(options);
    const seconds = (performance.now() - started) / 1000;
    log(`disk image ${key}: ${sizeMiB} MiB built in ${seconds.toFixed(1)} s`);
    return { ...result, seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** What the uploads need of an API client (test/support/api.ts's TestApi, or a fetch wrapper in a bench). */
export interface ApiCaller {
  call(method: string, path: string, options?: { body?: unknown }): Promise<{ status: number; body: any }>;
}

/**
 * Registers an image with each file's size and SHA-256, uploads every file with the
 * presigned single PUT, completes it and waits until the control plane verified it
 * (`active`); answers its UUID. No vitest in here: benches use it too.
 */
export async function uploadImage(
  api: ApiCaller,
  image: {
    name: string;
    kind: 'kernel+ramdisk' | 'disk';
    diskFormat?: 'raw' | 'raw+gzip' | 'qcow2';
    files: ReadonlyArray<{ role: 'kernel' | 'ramdisk' | 'disk'; path: string }>;
  },
  timeoutMs = 180_000,
): Promise<string> {
  const files = await Promise.all(
    image.files.map(async (file) => ({
      ...file,
      size: statSync(file.path).size,
      sha256: await sha256File(file.path),
    })),
  );
  const created = await api.call('POST', '/v1/images', {
    body: {
      name: image.name,
      kind: image.kind,
      ...(image.diskFormat ? { disk_format: image.diskFormat } : {}),
      files: files.map(({ role, size, sha256 }) => ({ role, size, sha256 })),
    },
  });
  if (created.status !== 201)
    throw new Error(`image not created: ${created.status} ${JSON.stringify(created.body)}`);
  const uuid = created.body.uuid as string;
  for (const file of files) {
    const upload = await api.call('POST', `/v1/images/${uuid}/files/${file.role}/upload`, {
      body: { multipart: false },
    });
    if (upload.status !== 201)
      throw new Error(`no upload URL: ${upload.status} ${JSON.stringify(upload.body)}`);
    const put = await fetch(upload.body.url, {
      method: 'PUT',
      body: readFileSync(file.path),
      headers: upload.body.headers ?? {},
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!put.ok) throw new Error(`upload of ${file.role} failed: ${put.status}`);
    const done = await api.call('POST', `/v1/images/${uuid}/files/${file.role}/complete`, { body: {} });
    if (![200, 202].includes(done.status))
      throw new Error(`not completed: ${done.status} ${JSON.stringify(done.body)}`);
  }
  await waitFor(
    async () => (await api.call('GET', `/v1/images/${uuid}`)).body.state === 'active',
    `image ${image.name} to be active`,
    timeoutMs,
  );
  return uuid;
}

/** A whole-disk image of one file. */
export function uploadDiskImage(
  api: ApiCaller,
  name: string,
  file: string,
  diskFormat: 'raw' | 'raw+gzip' | 'qcow2',
): Promise<string> {
  return uploadImage(api, { name, kind: 'disk', diskFormat, files: [{ role: 'disk', path: file }] });
}
