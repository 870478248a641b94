/**
 * A BMC-driven node with a persistent virtual disk, for the whole-disk deploy e2e test
 * (test/e2e/disk-deploy-vm.ts, one test file per boot mode) and its bench (bench/disk-deploy.ts): an `ipmi_sim`
 * BMC (test/support/bmc.ts) whose `on` hook starts qemu (TCG, virtio-net with the node's
 * MAC on slirp, whose DHCP hands out the agent's `boot.ipxe` URL; one virtio-blk disk file
 * that outlives the VM) and whose `off` hook kills qemu by PID.
 *
 * virtio-net, not e1000: iPXE takes the 15 MB of kernel and ramdisk about 2.7 s sooner
 * through it under TCG, 8 s of each file's four ramdisk boots (the deploy ramdisk carries
 * virtio_net; the lab's busybox ramdisk only e1000, so the other VM tests keep e1000).
 *
 * - Boot order from the boot device the BMC was last set to (chassis-state `boot`): `pxe`
 *   → the NIC first, anything else (`default` = disk, ipmitool's `bootdev disk`) → the disk
 *   first, via `bootindex` (OVMF ignores `-boot order`; SeaBIOS honours bootindex too).
 * - `firmware: 'uefi'`: OVMF_CODE_4M.fd read-only + this VM's own copy of OVMF_VARS_4M.fd
 *   (kept across power cycles, as a board's NVRAM).
 * - `-action shutdown=pause`: a guest power-off halts the VM and the chassis stays "on"
 *   until the BMC powers it off; `-no-reboot`: a guest reboot ends qemu (chassis off).
 * - Every power-on appends to one serial log, after a line `=== VM-START n=<n> boot=<dev> ===`
 *   (`boots()` splits it).
 *
 * Plus the disk checks of ../shared/lab/disk/erase-check.sh: `plantSignature` (an ext4
 * filesystem, or magic bytes, at the start and a marker in the last MiB) and
 * `diskErased` (first and last MiB all zero, `blkid -p` finds nothing).
 */
import { execFile } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testConfig } from '../../agent/testing/agent-process.ts';
import { type SimulatedBmc, startBmc } from './bmc.ts';

const run = promisify(execFile);
const MiB = 1024 * 1024;
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
export const VM_START = '=== VM-START';

export type Firmware = 'bios' | 'uefi';

export interface DiskVmOptions {
  readonly firmware: Firmware;
  readonly mac: string;
  /** What slirp's DHCP hands out as the boot file (the agent's `http://10.0.2.2:PORT/boot.ipxe`). */
  readonly bootfile: string;
  readonly diskMiB: number;
  readonly memoryMiB?: number;
}

export interface DiskVm {
  readonly bmc: SimulatedBmc;
  readonly firmware: Firmware;
  readonly mac: string;
  /** The VM's disk: a raw (sparse) file in the BMC's directory. */
  readonly disk: string;
  readonly serialPath: string;
  /** The whole serial log (every boot). */
  serial(): string;
  /** The serial log split per power-on: [{ n, boot, text }]. */
  boots(): Array<{ n: number; boot: string; text: string }>;
  /** The running qemu's PID, if any. */
  qemuPid(): number | undefined;
  /** Tails of the serial log, qemu's stderr and the chassis calls, for failure messages. */
  diagnostics(tail?: number): string;
  /** `ipmitool ... ARGS` against the BMC (lanplus, cipher 3). */
  ipmitool(...args: string[]): Promise<string>;
  /** Kills qemu (if any) by PID, then stops the BMC. */
  stop(): Promise<void>;
}

/** The BMC's `on` hook: start the VM with a boot order from the boot device; when it ends by itself, chassis off. */
function onHook(options: DiskVmOptions, memoryMiB: number): string {
  const uefi =
    options.firmware === 'uefi'
      ? `  -drive if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE} -drive "if=pflash,format=raw,unit=1,file=$D/ovmf-vars.fd" \\\n`
      : '';
  return `#!/bin/sh
D=$(cd "$(dirname "$0")" && pwd)
BOOT=$(cat "$D/chassis-state/boot" 2>/dev/null || echo default)
case "$BOOT" in pxe) NIC=0; DISK=1;; *) NIC=1; DISK=0;; esac
N=$(( $(cat "$D/vm-count" 2>/dev/null || echo 0) + 1 )); echo $N > "$D/vm-count"
echo "start $(date +%s.%N) n=$N boot=$BOOT" >> "$D/vm-starts.log"
echo "${VM_START} n=$N boot=$BOOT ===" >> "$D/serial.log"
qemu-system-x86_64 -accel tcg -machine pc -m ${memoryMiB} -display none -monitor none -nodefaults \\
${uefi}  -chardev "file,id=s0,path=$D/serial.log,append=on" -serial chardev:s0 \\
  -drive "file=$D/disk.img,format=raw,if=none,id=d0,cache=unsafe" -device virtio-blk-pci,drive=d0,bootindex=$DISK \\
  -netdev user,id=n0,bootfile=${options.bootfile} -device virtio-net-pci,netdev=n0,mac=${options.mac},bootindex=$NIC \\
  -no-reboot -action shutdown=pause -pidfile "$D/qemu.pid" 2>>"$D/qemu.err" &
Q=$!
echo $Q > "$D/qemu.hook-pid"
wait $Q
echo "exit $(date +%s.%N) n=$N pid=$Q" >> "$D/vm-starts.log"
# Ended by itself (the off hook removes the pidfile first): the chassis is off.
if [ "$(cat "$D/qemu.hook-pid" 2>/dev/null)" = "$Q" ]; then rm -f "$D/qemu.hook-pid" "$D/qemu.pid"; echo 0 > "$D/chassis-state/power"; fi
`;
}

/** The BMC's `off` hook: kill qemu by its PID and wait (bounded) until it is gone. */
const OFF_HOOK = `#!/bin/sh
D=$(cd "$(dirname "$0")" && pwd)
P=$(cat "$D/qemu.hook-pid" 2>/dev/null)
rm -f "$D/qemu.hook-pid" "$D/qemu.pid"
[ -n "$P" ] || exit 0
kill "$P" 2>/dev/null
i=0; while kill -0 "$P" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -9 "$P" 2>/dev/null
echo "killed $(date +%s.%N) pid=$P" >> "$D/vm-starts.log"
exit 0
`;

export async function startDiskVm(options: DiskVmOptions): Promise<DiskVm> {
  const memoryMiB = options.memoryMiB ?? 768;
  const bmc = await startBmc({ hooks: { on: onHook(options, memoryMiB), off: OFF_HOOK } });
  const disk = join(bmc.dir, 'disk.img');
  await run('truncate', ['-s', `${options.diskMiB}M`, disk]);
  if (options.firmware === 'uefi') copyFileSync(OVMF_VARS, join(bmc.dir, 'ovmf-vars.fd'));
  const serialPath = join(bmc.dir, 'serial.log');
  const file = (name: string) => {
    try {
      return readFileSync(join(bmc.dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  const pidOf = () => {
    const pid = Number(file('qemu.hook-pid').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  };
  const ipmitool = async (...args: string[]) => {
    const { stdout } = await run(
      'ipmitool',
      [
        '-I',
        'lanplus',
        '-H',
        '127.0.0.1',
        '-p',
        String(bmc.port),
        '-U',
        'admin',
        '-P',
        'password',
        '-C',
        '3',
        ...args,
      ],
      { timeout: 20_000 },
    );
    return stdout;
  };
  return {
    bmc,
    firmware: options.firmware,
    mac: options.mac,
    disk,
    serialPath,
    serial: () => file('serial.log'),
    boots: () =>
      file('serial.log')
        .split(VM_START)
        .slice(1)
        .map((chunk) => {
          const head = / n=(\d+) boot=(\S+) ===/.exec(chunk);
          return { n: Number(head?.[1]), boot: head?.[2] ?? '', text: chunk };
        }),
    qemuPid: pidOf,
    diagnostics: (tail = 4000) =>
      [
        `--- serial log (tail) ---\n${file('serial.log').slice(-tail)}`,
        `--- qemu stderr ---\n${file('qemu.err').slice(-1500)}`,
        `--- vm starts ---\n${file('vm-starts.log')}`,
        `--- chassis calls (tail) ---\n${file('chassis-state/calls.log').split('\n').slice(-30).join('\n')}`,
      ].join('\n'),
    ipmitool,
    stop: async () => {
      const pid = pidOf();
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await bmc.stop();
    },
  };
}

function readRange(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

export const TAIL_SIGNATURE = 'EFI PART-metalplane-tail-signature';

/**
 * Plants signatures a cleaning must remove: an ext4 filesystem over the whole file
 * (mkfs.ext4 -F on the file: its superblock at 1 KiB, `blkid -p` sees it) or, without
 * mkfs.ext4, magic bytes; and `TAIL_SIGNATURE` at the start of the last MiB.
 */
export async function plantSignature(disk: string): Promise<string> {
  const size = statSync(disk).size;
  let kind = 'ext4';
  try {
    await run('mkfs.ext4', ['-q', '-F', '-L', 'planted', disk], { timeout: 60_000 });
  } catch {
    kind = 'magic';
    const fd = openSync(disk, 'r+');
    try {
      writeSync(fd, Buffer.from('METALPLANE-PLANTED-HEAD'), 0, undefined, 0);
    } finally {
      closeSync(fd);
    }
  }
  const fd = openSync(disk, 'r+');
  try {
    writeSync(fd, Buffer.from(TAIL_SIGNATURE), 0, undefined, size - MiB);
  } finally {
    closeSync(fd);
  }
  return kind;
}

export interface EraseCheck {
  readonly firstMiBZero: boolean;
  readonly lastMiBZero: boolean;
  /** `blkid -p` output (empty when it finds nothing); null when blkid is not installed. */
  readonly blkid: string | null;
  readonly erased: boolean;
}

/** Whether a cleaning erased the disk file: first and last MiB zero, `blkid -p` finds nothing. */
export async function diskErased(disk: string): Promise<EraseCheck> {
  const size = statSync(disk).size;
  const zero = (buffer: Buffer) => buffer.every((byte) => byte === 0);
  const firstMiBZero = zero(readRange(disk, 0, MiB));
  const lastMiBZero = zero(readRange(disk, size - MiB, MiB));
  let blkid: string | null = null;
  if (existsSync('/usr/sbin/blkid') || existsSync('/sbin/blkid')) {
    try {
      blkid = (await run('blkid', ['-p', disk])).stdout.trim();
    } catch (error) {
      // blkid exits 2 when it finds nothing.
      blkid = String((error as { stdout?: string }).stdout ?? '').trim();
    }
  }
  return { firstMiBZero, lastMiBZero, blkid, erased: firstMiBZero && lastMiBZero && !blkid };
}

/** Writes `image` (raw bytes) onto the disk file from offset 0, keeping the file's size. */
export async function writeRawToDisk(image: string, disk: string): Promise<void> {
  await run('dd', [`if=${image}`, `of=${disk}`, 'bs=1M', 'conv=notrunc,sparse', 'status=none']);
}

/** Empties the disk file (all zeros, sparse), keeping its size. */
export function blankDisk(disk: string): void {
  const size = statSync(disk).size;
  truncateSync(disk, 0);
  truncateSync(disk, size);
}

/**
 * The agent's config for these VMs: driver ipmi, its TFTP/HTTP servers on the given
 * loopback ports, boot files pointing at `http://10.0.2.2:<httpPort>` (the host's
 * 127.0.0.1 inside qemu's user-mode network), images refreshed every second.
 */
export function diskAgentConfig(options: {
  url: string;
  websocketUrl: string;
  httpPort: number;
  tftpPort: number;
}): string {
  return testConfig({
    url: options.url,
    websocketUrl: options.websocketUrl,
    extra: [
      'drivers: [ipmi]',
      'power_sync:',
      '  enabled: false',
      'ipmi:',
      '  command_timeout: 20s',
      '  min_command_interval: 0',
      '  retries: 1',
      'images:',
      '  refresh_interval: 1s',
      'ramdisk:',
      '  heartbeat_interval: 2s',
      'boot:',
      '  dhcp_hosts_dir: ./dhcp-hosts',
      `  http_url: http://10.0.2.2:${options.httpPort}`,
    ].join('\n'),
  })
    .replace(/^(tftp:\n.*\n.*\n {2}port:) 0$/m, `$1 ${options.tftpPort}`)
    .replace(/^(http:\n.*\n.*\n {2}port:) 0$/m, `$1 ${options.httpPort}`);
}

export interface PartitionTable {
  readonly label: string;
  readonly partitions: ReadonlyArray<{
    node: string;
    start: number;
    size: number;
    type: string;
    name?: string;
  }>;
  /** What `sfdisk --verify` says ("No errors detected." when the table is sound). */
  readonly verify: string;
}

/** The disk file's partition table as sfdisk reads it (-J), and its `--verify` verdict. */
export async function partitionTable(disk: string): Promise<PartitionTable> {
  const { stdout } = await run('sfdisk', ['-J', disk]);
  const table = (JSON.parse(stdout) as { partitiontable: Omit<PartitionTable, 'verify'> }).partitiontable;
  let verify: string;
  try {
    verify = (await run('sfdisk', ['--verify', disk])).stdout.trim();
  } catch (error) {
    verify =
      `${String((error as { stdout?: string }).stdout ?? '')}${String((error as { stderr?: string }).stderr ?? '')}`.trim();
  }
  return { label: table.label, partitions: table.partitions ?? [], verify };
}
