/**
 * A whole-disk image deploy end to end, through the API alone, against real peers: the
 * control plane on moto, a real agent process (driver ipmi) with its TFTP/HTTP servers on
 * loopback, an `ipmi_sim` BMC whose power hooks start/kill a qemu VM (TCG) with a disk file
 * that persists across power cycles (test/support/disk-vm.ts: boot order from the BMC's
 * boot device, BIOS or UEFI/OVMF), the real deploy ramdisk (scripts/build-ramdisk.ts,
 * cached) uploaded as a kernel+ramdisk image, and a real whole-disk image
 * (test/support/disk-image.ts: GPT, syslinux + systemd-boot, a test OS that prints its
 * token, firmware and the config drive's user data) uploaded as a `raw+gzip` disk image.
 *
 * Per boot mode: the image boots from the VM's disk with a config drive added by hand
 * (the rig and the image alone); then an `ipmi` node with Ironic's defaults (no
 * deploy_interface given), `inspect_interface: agent`, the ramdisk in driver_info:
 * manage → inspect (properties and the port from the real ramdisk's inventory) → a
 * signature planted on the disk → provide (automated cleaning on the ramdisk erases it)
 * → deploy with a config drive → active, and the VM boots the image from its disk with
 * that user data → undeploy → available.
 * Needs scripts/debian-packages.txt (ipmitool, openipmi, qemu, ipxe-qemu, ovmf, syslinux,
 * systemd-boot-efi, dosfstools, mtools, fdisk, ...) and Go for the ramdisk program.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { buildRamdisk } from '../../scripts/build-ramdisk.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import {
  BOOT_MARKER,
  buildDiskImage,
  type DiskImage,
  POWEROFF_MARKER,
  USERDATA_BEGIN,
  USERDATA_END,
  uploadDiskImage,
} from '../support/disk-image.ts';
import {
  blankDisk,
  type DiskVm,
  diskAgentConfig,
  diskErased,
  type Firmware,
  partitionTable,
  plantSignature,
  startDiskVm,
  TAIL_SIGNATURE,
  writeRawToDisk,
} from '../support/disk-vm.ts';
import { uploadKernelRamdisk } from '../support/images.ts';

const SITE = 'e2e-disk';
/** The VM's disk: sparse, ≥ 4 GiB so that the ramdisk and inspection take it as the root disk. */
const DISK_MIB = 5 * 1024;
/** TCG on 2 shared cores: a ramdisk boots to its hello in 10-25 s, a disk boot to its marker in 8-30 s. */
const RAMDISK_PHASE_MS = 240_000;
const DISK_BOOT_MS = 120_000;

let stack: ChannelStack;
let agent: AgentProcess;
let work: string;
let httpPort: number;
let ramdiskImage: string;
let diskImage: DiskImage;
let diskImageUuid: string;
/** The image the first test writes by hand, with its config drive (built in `beforeAll`). */
let byHandImage: DiskImage;

async function node(uuid: string) {
  return (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;
}

async function provision(uuid: string, target: string, extra: Record<string, unknown> = {}) {
  const answer = await stack.api.call('PUT', `/v1/nodes/${uuid}/states/provision`, {
    body: { target, ...extra },
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
}

const SUFFIX_FAILED = / failed$|^error$/;
/**
 * How often `reaches` reads the node. Each read is an API call through moto; a phase waits
 * tens of seconds for a TCG VM, so every 20 ms would be thousands of reads per file taking
 * CPU from the VMs (CI runs four files on two cores), for at most this much earlier news.
 */
const NODE_POLL_MS = 250;

/** Waits for `state` with nothing in flight; fails at once in a failed state, with everything to debug it. */
async function reaches(vm: DiskVm, uuid: string, state: string, timeoutMs: number) {
  const explain = (why: string, current: Record<string, unknown> | undefined) =>
    new Error(
      `${why}\nnode: provision_state=${current?.provision_state} target=${current?.target_provision_state} ` +
        `power=${current?.power_state} last_error=${current?.last_error}\n${vm.diagnostics()}\n` +
        `--- agent log (tail) ---\n${agent.raw.slice(-5000)}`,
    );
  let current: any;
  try {
    return await waitFor(
      async () => {
        const now = await node(uuid);
        current = now;
        if (SUFFIX_FAILED.test(String(now.provision_state)) && state !== now.provision_state) {
          throw explain(`node ${uuid} failed in ${now.provision_state}`, now);
        }
        if (now.provision_state === state && now.reservation === null) return now;
        return undefined;
      },
      `node ${uuid} to reach ${state}`,
      timeoutMs,
      NODE_POLL_MS,
    );
  } catch (error) {
    if ((error as Error).message.startsWith(`node ${uuid} failed`)) throw error;
    throw explain((error as Error).message, current);
  }
}

/** Waits until the VM's current boot (the last power-on) printed `text`; answers that boot's serial output. */
async function serialShows(vm: DiskVm, text: string, timeoutMs: number) {
  return waitFor(
    () => {
      const last = vm.boots().at(-1);
      return last?.text.includes(text) ? last : undefined;
    },
    `the serial log to show ${text}`,
    timeoutMs,
  ).catch((error: Error) => {
    throw new Error(
      `${error.message}\n${vm.diagnostics()}\n--- agent log (tail) ---\n${agent.raw.slice(-3000)}`,
    );
  });
}

const byHandToken = (firmware: Firmware) => `by-hand-${firmware}`;
const MARKER = (token: string, firmware: Firmware) => `${BOOT_MARKER} token=${token} firmware=${firmware}`;

/** The VM's MAC per boot mode. */
export const DISK_VM_MACS = { bios: '52:54:00:d1:5c:b1', uefi: '52:54:00:d1:5c:e1' } as const;

/**
 * The whole flow for one boot mode. One test file per mode (disk-deploy-vm-bios.test.ts,
 * disk-deploy-vm-uefi.test.ts), so that parallel workers run the two VMs side by side.
 */
export function diskDeployTests(firmware: Firmware): void {
  const mac = DISK_VM_MACS[firmware];
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'metalplane-e2e-disk-'));
    // Every build at once: on a cold cache (CI's fresh clone) the by-hand image is built
    // while the ramdisk is, not after it inside the first test.
    const [channel, ramdisk, image, byHand] = await Promise.all([
      startChannel({ syncWaitMs: 20_000 }),
      buildRamdisk(),
      buildDiskImage({ token: 'e2e-disk-deploy-7f3a', formats: ['gzip'] }),
      buildDiskImage({
        token: byHandToken(firmware),
        formats: [],
        configDrive: { userData: `user data by hand, ${firmware}`, metaData: { uuid: 'by-hand' } },
      }),
    ]);
    stack = channel;
    diskImage = image;
    byHandImage = byHand;
    expect((await stack.createSite(SITE)).status).toBe(201);
    // Two independent images: uploaded at once.
    [ramdiskImage, diskImageUuid] = await Promise.all([
      uploadKernelRamdisk(
        stack.api,
        `mp-ramdisk-${ramdisk.key.slice(0, 12)}`,
        readFileSync(join(ramdisk.dir, 'vmlinuz')),
        readFileSync(join(ramdisk.dir, 'initramfs.img')),
      ),
      uploadDiskImage(stack.api, 'e2e-test-os', diskImage.gzip!.path, 'raw+gzip'),
    ]);
    httpPort = await freePort();
    const tftpPort = await freePort();
    const { credential } = await stack.enroll(SITE, 'e2e-disk-agent');
    agent = new AgentProcess().writeConfig(
      diskAgentConfig({ url: stack.api.url, websocketUrl: stack.gateway.url, httpPort, tftpPort }),
    );
    await agent.writeCredential(credential);
    await agent.start();
  }, 600_000);

  afterAll(async () => {
    await agent?.cleanup();
    await stack?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe(`whole-disk deploy, ${firmware.toUpperCase()} VM, ipmi + ramdisk`, () => {
    let vm: DiskVm;
    let uuid: string;
    let started = performance.now();
    const at = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;

    beforeAll(async () => {
      started = performance.now();
      vm = await startDiskVm({
        firmware,
        mac,
        bootfile: `http://10.0.2.2:${httpPort}/boot.ipxe`,
        diskMiB: DISK_MIB,
      });
    }, 60_000);

    afterAll(async () => {
      await vm?.stop();
    });

    it(
      'the image boots from the disk (config drive added by hand); the BMC powers the VM and picks its boot device',
      async () => {
        const token = byHandToken(firmware);
        await writeRawToDisk(byHandImage.raw.path, vm.disk);
        await vm.ipmitool('chassis', 'bootdev', 'disk');
        expect(vm.bmc.boot()).toBe('default');
        await vm.ipmitool('power', 'on');
        const boot = await serialShows(vm, POWEROFF_MARKER, DISK_BOOT_MS);
        expect(boot.boot).toBe('default');
        expect(boot.text).toContain(MARKER(token, firmware));
        expect(boot.text).toMatch(
          new RegExp(`${USERDATA_BEGIN}\\r?\\nuser data by hand, ${firmware}\\r?\\n\\r?\\n?${USERDATA_END}`),
        );
        // The guest powered off: qemu paused, the chassis stays on until the BMC powers it off.
        expect(await vm.ipmitool('power', 'status')).toMatch(/is on/);
        const pid = vm.qemuPid();
        expect(pid).toBeDefined();
        await vm.ipmitool('power', 'off');
        expect(vm.qemuPid()).toBeUndefined();
        expect(await vm.ipmitool('power', 'status')).toMatch(/is off/);
        await vm.ipmitool('chassis', 'bootdev', 'pxe');
        expect(vm.bmc.boot()).toBe('pxe');
        // Leave an empty disk for the deploy.
        blankDisk(vm.disk);
        expect((await diskErased(vm.disk)).erased).toBe(true);
        console.log(`disk-deploy-vm ${firmware}: by-hand disk boot done at ${at()}`);
      },
      DISK_BOOT_MS + 30_000,
    );

    it(
      'enroll (ipmi defaults, inspect_interface agent) → manage → inspect: properties and port from the ramdisk',
      async () => {
        const created = await stack.api.call('POST', '/v1/nodes', {
          body: {
            name: `disk-${firmware}`,
            driver: 'ipmi',
            conductor_group: SITE,
            inspect_interface: 'agent',
            driver_info: {
              ipmi_address: '127.0.0.1',
              ipmi_port: vm.bmc.port,
              ipmi_username: 'admin',
              ipmi_password: 'password',
              ipmi_cipher_suite: 3,
              deploy_kernel: ramdiskImage,
              deploy_ramdisk: ramdiskImage,
            },
            ...(firmware === 'uefi' ? { properties: { capabilities: 'boot_mode:uefi' } } : {}),
          },
        });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        uuid = created.body.uuid;
        expect(created.body.deploy_interface).not.toBe('ramdisk');
        const port = await stack.api.call('POST', '/v1/ports', {
          body: { node_uuid: uuid, address: mac, pxe_enabled: true },
        });
        expect(port.status).toBe(201);

        await provision(uuid, 'manage');
        await reaches(vm, uuid, 'manageable', 60_000);
        await provision(uuid, 'inspect');
        const inspected = await reaches(vm, uuid, 'manageable', RAMDISK_PHASE_MS);
        expect(inspected.last_error).toBeNull();
        expect(inspected.power_state).toBe('power off');
        expect(inspected.properties).toMatchObject({ cpu_arch: 'x86_64', local_gb: 4 });
        expect(inspected.properties.cpus).toBeGreaterThanOrEqual(1);
        expect(inspected.properties.memory_mb).toBeGreaterThan(500);
        expect(String(JSON.stringify(inspected.properties.capabilities ?? ''))).toContain(
          `boot_mode:${firmware}`,
        );
        const ports = (await stack.api.call('GET', `/v1/nodes/${uuid}/ports/detail`)).body.ports;
        expect(ports.map((p: { address: string }) => p.address)).toContain(mac);
        expect(vm.boots().at(-1)?.boot).toBe('pxe');
        console.log(`disk-deploy-vm ${firmware}: inspected at ${at()}`);
      },
      RAMDISK_PHASE_MS + 90_000,
    );

    it(
      'provide: automated cleaning on the ramdisk erases a planted signature → available',
      async () => {
        expect(vm.qemuPid()).toBeUndefined();
        await plantSignature(vm.disk);
        const before = await diskErased(vm.disk);
        expect(before.erased).toBe(false);
        await provision(uuid, 'provide');
        const available = await reaches(vm, uuid, 'available', RAMDISK_PHASE_MS);
        expect(available.last_error).toBeNull();
        expect(available.power_state).toBe('power off');
        const after = await diskErased(vm.disk);
        expect(after, `${TAIL_SIGNATURE} / ext4 still there`).toMatchObject({
          firstMiBZero: true,
          lastMiBZero: true,
          erased: true,
        });
        console.log(`disk-deploy-vm ${firmware}: cleaned at ${at()}`);
      },
      RAMDISK_PHASE_MS + 30_000,
    );

    it(
      'deploy the whole-disk image with a config drive → active; the VM boots it from its disk with the user data',
      async () => {
        const userData = `#cloud-config\n# metalplane e2e ${firmware} ${uuid}`;
        const patched = await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
          body: [{ op: 'add', path: '/instance_info/image_source', value: diskImageUuid }],
        });
        expect(patched.status, JSON.stringify(patched.body)).toBe(200);
        const deployStarted = performance.now();
        const bootsBefore = vm.boots().length;
        await provision(uuid, 'active', {
          configdrive: { meta_data: { uuid, name: `disk-${firmware}` }, user_data: userData },
        });
        const active = await reaches(vm, uuid, 'active', RAMDISK_PHASE_MS);
        const deploySeconds = (performance.now() - deployStarted) / 1000;
        expect(active.last_error).toBeNull();
        expect(active.power_state).toBe('power on');
        expect(vm.bmc.boot()).toBe('default');
        const boot = await serialShows(vm, POWEROFF_MARKER, DISK_BOOT_MS);
        expect(vm.boots().length).toBeGreaterThan(bootsBefore + 1);
        expect(boot.boot).toBe('default');
        expect(boot.text).toContain(MARKER(diskImage.token, firmware));
        const begin = boot.text.indexOf(USERDATA_BEGIN);
        const end = boot.text.indexOf(USERDATA_END);
        expect(begin).toBeGreaterThan(0);
        expect(
          boot.text
            .slice(begin + USERDATA_BEGIN.length, end)
            .replaceAll('\r', '')
            .trim(),
        ).toBe(userData);
        expect(boot.text).toMatch(new RegExp(`META-DATA: .*${uuid}`));
        // The disk as the ramdisk left it: the image's GPT plus a config drive partition.
        const table = await partitionTable(vm.disk);
        expect(table.label).toBe('gpt');
        expect(table.partitions.length).toBeGreaterThanOrEqual(2);
        // The backup GPT header moved to the end of the (bigger) disk, the entries consistent.
        expect(table.verify).toContain('No errors detected.');
        console.log(
          `disk-deploy-vm ${firmware}: deploy request → active in ${deploySeconds.toFixed(1)} s (at ${at()})`,
        );
      },
      RAMDISK_PHASE_MS + DISK_BOOT_MS + 30_000,
    );

    it(
      'undeploy → deleted → cleaning → available, the VM powered off',
      async () => {
        await provision(uuid, 'deleted');
        const available = await reaches(vm, uuid, 'available', RAMDISK_PHASE_MS);
        expect(available.last_error).toBeNull();
        expect(available.power_state).toBe('power off');
        expect(available.instance_info).toEqual({});
        expect(vm.qemuPid()).toBeUndefined();
        expect((await diskErased(vm.disk)).firstMiBZero).toBe(true);
        console.log(`disk-deploy-vm ${firmware}: undeployed at ${at()}`);
      },
      RAMDISK_PHASE_MS + 30_000,
    );
  });
}
