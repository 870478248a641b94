/**
 * A whole-disk image deploy in a VM, timed: the local stack (`npm start`, without its own
 * agent), a real agent process (driver ipmi) enrolled in a site, an `ipmi_sim` BMC driving
 * a qemu VM (TCG) with a persistent 5 GiB disk (test/support/disk-vm.ts), the real deploy
 * ramdisk, and a `BENCH_IMAGE_MIB` (default 1024) whole-disk image that is mostly empty
 * (test/support/disk-image.ts: the test OS in a 60 MiB ESP, the rest zeros), uploaded as
 * `raw+gzip`. Prints:
 *
 * - deploy request → `active` (boot the ramdisk, write_image, write_configdrive, power off,
 *   boot device disk, power on), and → the test OS's marker on the serial console;
 * - the ramdisk's write (the `ramdisk.write_image` command's result: bytes_written,
 *   seconds: download + gunzip + SHA-256 + write + fsync);
 * - a reference in the same VM shape (same qemu flags, memory, NIC, disk, the same ramdisk
 *   kernel + initramfs booted directly with `mp.debug=1` and no `mp.url`, so that /init
 *   gives a shell on the serial console): `wget -O - URL | zcat | dd of=/dev/vda bs=1M
 *   iflag=fullblock conv=fsync` of the same .gz file, served from this process, timed
 *   with the guest's /proc/uptime; and the ratio of the two rates (goal ≥ 0.8).
 *
 *   npm run bench -- disk-deploy       (BENCH_IMAGE_MIB=1024, BENCH_FIRMWARE=bios|uefi)
 *
 * Figures only: no assertion on timings.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, waitFor } from '../agent/testing/agent-process.ts';
import { freePort } from '../local/moto.ts';
import { buildRamdisk } from '../scripts/build-ramdisk.ts';
import {
  type ApiCaller,
  BOOT_MARKER,
  buildDiskImage,
  uploadDiskImage,
  uploadImage,
} from '../test/support/disk-image.ts';
import {
  diskAgentConfig,
  type Firmware,
  OVMF_CODE,
  OVMF_VARS,
  startDiskVm,
} from '../test/support/disk-vm.ts';
import { startBenchStack } from './local-stack.ts';
import { printTable } from './support.ts';

const SIZE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 1024);
const FIRMWARE = (process.env.BENCH_FIRMWARE ?? 'bios') as Firmware;
const SITE = 'bench-disk';
const MAC = '52:54:00:be:dd:01';
const DISK_MIB = 5 * 1024;
const MEMORY_MIB = 768;
const PHASE_MS = 30 * 60_000;
const MiB = 1024 * 1024;
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const log = (line: string) => process.stdout.write(`${line}\n`);

const work = mkdtempSync(join(tmpdir(), 'metalplane-bench-disk-'));
const cleanups: Array<() => Promise<void> | void> = [];

/** The reference: the ramdisk booted with a console shell; the write run by hand in it. */
async function referenceWrite(
  kernel: string,
  initramfs: string,
  gzFile: string,
): Promise<{ seconds: number; rc: string }> {
  const server = createServer((req, res) => {
    if (req.url !== '/disk.img.gz') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'content-length': String(statSync(gzFile).size),
      'content-type': 'application/gzip',
    });
    createReadStream(gzFile).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const disk = join(work, 'reference-disk.img');
  await new Promise<void>((resolve, reject) =>
    spawn('truncate', ['-s', `${DISK_MIB}M`, disk]).once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`truncate ${code}`)),
    ),
  );
  const uefi =
    FIRMWARE === 'uefi'
      ? [
          '-drive',
          `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
          '-drive',
          `if=pflash,format=raw,unit=1,file=${join(work, 'ref-vars.fd')}`,
        ]
      : [];
  if (FIRMWARE === 'uefi') copyFileSync(OVMF_VARS, join(work, 'ref-vars.fd'));
  const qemu: ChildProcess = spawn(
    'timeout',
    [
      ...['-k', '5', String(PHASE_MS / 1000), 'qemu-system-x86_64', '-accel', 'tcg', '-machine', 'pc'],
      ...['-m', String(MEMORY_MIB), '-display', 'none', '-monitor', 'none', '-nodefaults', '-no-reboot'],
      ...uefi,
      ...['-serial', 'stdio', '-kernel', kernel, '-initrd', initramfs],
      ...['-append', 'console=ttyS0,115200 panic=-1 mp.debug=1'],
      ...[
        '-drive',
        `file=${disk},format=raw,if=none,id=d0,cache=unsafe`,
        '-device',
        'virtio-blk-pci,drive=d0',
      ],
      ...['-netdev', 'user,id=n0', '-device', `e1000,netdev=n0,mac=${MAC}`],
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  qemu.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const stop = async () => {
    if (qemu.exitCode === null && qemu.signalCode === null && qemu.pid !== undefined) {
      const exited = new Promise((resolve) => qemu.once('exit', resolve));
      process.kill(qemu.pid, 'SIGTERM');
      await exited;
    }
    await new Promise((resolve) => server.close(resolve));
  };
  try {
    await waitFor(() => out.includes('console shell'), 'the reference VM shell', 300_000).catch((error) => {
      throw new Error(`${(error as Error).message}\n${out.slice(-3000)}`);
    });
    qemu.stdin?.write(
      `echo REF-T0 $(cut -d' ' -f1 /proc/uptime); wget -q -O - http://10.0.2.2:${port}/disk.img.gz | zcat | dd of=/dev/vda bs=1M iflag=fullblock conv=fsync 2>/dev/null; echo REF-RC $?; echo REF-T1 $(cut -d' ' -f1 /proc/uptime)\n`,
    );
    const t1 = await waitFor(() => /REF-T1 (\d+\.\d+)/.exec(out)?.[1], 'the reference write', PHASE_MS).catch(
      (error) => {
        throw new Error(`${(error as Error).message}\n${out.slice(-3000)}`);
      },
    );
    const t0 = /REF-T0 (\d+\.\d+)/.exec(out)?.[1];
    return { seconds: Number(t1) - Number(t0), rc: /REF-RC (\d+)/.exec(out)?.[1] ?? '?' };
  } finally {
    await stop();
  }
}

try {
  let started = performance.now();
  const [ramdisk, image] = await Promise.all([
    buildRamdisk(),
    buildDiskImage({ token: `bench-${SIZE_MIB}`, sizeMiB: SIZE_MIB, formats: ['gzip'], log }),
  ]);
  const gz = image.gzip!;
  log(
    `inputs ready in ${seconds(performance.now() - started)} s: ramdisk ${ramdisk.hit ? 'cached' : 'built'}, ` +
      `image ${SIZE_MIB} MiB raw → ${(gz.size / MiB).toFixed(1)} MiB gzip (${image.hit ? 'cached' : `built in ${image.seconds.toFixed(1)} s`})`,
  );

  const stack = await startBenchStack({ agent: false });
  cleanups.push(() => stack.stop());
  const call: ApiCaller['call'] = async (method, path, options) => {
    const response = await fetch(`${stack.url}${path}`, {
      method,
      headers: stack.headers,
      ...(options?.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const api: ApiCaller = { call };
  const must = async (method: string, path: string, body: unknown, status: number) => {
    const answer = await call(method, path, { body });
    if (answer.status !== status)
      throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  await must('POST', '/v1/sites', { name: SITE }, 201);
  const minted = await must('POST', `/v1/sites/${SITE}/agents`, undefined, 201);
  const enrolled = await fetch(`${stack.url}/v1/agents/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.82' },
    body: JSON.stringify({ token: minted.token, hostname: 'bench-disk-agent', drivers: ['ipmi'] }),
  });
  if (enrolled.status !== 201) throw new Error(`enroll: ${enrolled.status} ${await enrolled.text()}`);
  const credential = ((await enrolled.json()) as { credential: string }).credential;
  const [httpPort, tftpPort] = [await freePort(), await freePort()];
  const agent = new AgentProcess().writeConfig(
    diskAgentConfig({ url: stack.url, websocketUrl: stack.wsUrl, httpPort, tftpPort }),
  );
  await agent.writeCredential(credential);
  await agent.start();
  cleanups.push(() => agent.cleanup());

  started = performance.now();
  const ramdiskImage = await uploadImage(api, {
    name: `bench-ramdisk-${ramdisk.key.slice(0, 12)}`,
    kind: 'kernel+ramdisk',
    files: [
      { role: 'kernel', path: join(ramdisk.dir, 'vmlinuz') },
      { role: 'ramdisk', path: join(ramdisk.dir, 'initramfs.img') },
    ],
  });
  const diskImage = await uploadDiskImage(api, `bench-disk-${SIZE_MIB}`, gz.path, 'raw+gzip');
  log(`images uploaded and verified in ${seconds(performance.now() - started)} s`);

  const vm = await startDiskVm({
    firmware: FIRMWARE,
    mac: MAC,
    bootfile: `http://10.0.2.2:${httpPort}/boot.ipxe`,
    diskMiB: DISK_MIB,
    memoryMiB: MEMORY_MIB,
  });
  cleanups.push(() => vm.stop());
  const node = await must(
    'POST',
    '/v1/nodes',
    {
      name: 'bench-disk-node',
      driver: 'ipmi',
      conductor_group: SITE,
      automated_clean: false,
      driver_info: {
        ipmi_address: '127.0.0.1',
        ipmi_port: vm.bmc.port,
        ipmi_username: 'admin',
        ipmi_password: 'password',
        ipmi_cipher_suite: 3,
        deploy_kernel: ramdiskImage,
        deploy_ramdisk: ramdiskImage,
      },
      instance_info: { image_source: diskImage },
      ...(FIRMWARE === 'uefi' ? { properties: { capabilities: 'boot_mode:uefi' } } : {}),
    },
    201,
  );
  const uuid = node.uuid as string;
  await must('POST', '/v1/ports', { node_uuid: uuid, address: MAC, pxe_enabled: true }, 201);
  const reaches = (state: string, timeoutMs: number) =>
    waitFor(
      async () => {
        const current = (await call('GET', `/v1/nodes/${uuid}`)).body;
        if (/ failed$/.test(current.provision_state)) {
          throw new Error(
            `node failed in ${current.provision_state}: ${current.last_error}\n${vm.diagnostics()}\n${agent.raw.slice(-4000)}`,
          );
        }
        return current.provision_state === state && current.reservation === null ? current : undefined;
      },
      `node to reach ${state}`,
      timeoutMs,
    );
  await must('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'manage' }, 202);
  await reaches('manageable', 120_000);
  await must('PUT', `/v1/nodes/${uuid}/states/provision`, { target: 'provide' }, 202);
  await reaches('available', 120_000);
  // The site holds the image before the clock starts (the deploy would wait for it otherwise).
  await waitFor(
    async () => {
      const held = (await call('GET', `/v1/sites/${SITE}/images`)).body.images as Array<{
        uuid: string;
        state: string;
      }>;
      return held.find((entry) => entry.uuid === diskImage)?.state === 'ready';
    },
    'the site to hold the disk image',
    PHASE_MS,
  );

  const deployStarted = performance.now();
  await must(
    'PUT',
    `/v1/nodes/${uuid}/states/provision`,
    { target: 'active', configdrive: { meta_data: { uuid }, user_data: 'bench user data' } },
    202,
  );
  await reaches('active', PHASE_MS);
  const deployMs = performance.now() - deployStarted;
  await waitFor(() => vm.boots().at(-1)?.text.includes(BOOT_MARKER), 'the deployed OS to boot', 300_000);
  const markerMs = performance.now() - deployStarted;
  const commands = (await call('GET', `/v1/nodes/${uuid}/commands?limit=200`)).body.commands as Array<{
    action: string;
    status: string;
    result: { bytes_written?: number; seconds?: number; disk?: string } | null;
  }>;
  const write = commands.find(
    (command) => command.action === 'ramdisk.write_image' && command.status === 'succeeded',
  );
  const bytes = write?.result?.bytes_written ?? Number.NaN;
  const writeSeconds = write?.result?.seconds ?? Number.NaN;
  await must('PUT', `/v1/nodes/${uuid}/states/power`, { target: 'power off' }, 202);
  await vm.stop();

  const reference = await referenceWrite(
    join(ramdisk.dir, 'vmlinuz'),
    join(ramdisk.dir, 'initramfs.img'),
    gz.path,
  );
  const ramdiskRate = bytes / MiB / writeSeconds;
  const referenceRate = image.sizeBytes / MiB / reference.seconds;
  printTable(
    `whole-disk deploy, ${FIRMWARE.toUpperCase()} VM (TCG, 2 shared cores), image ${SIZE_MIB} MiB raw / ${(gz.size / MiB).toFixed(1)} MiB gzip`,
    [
      { what: 'deploy request → active', s: seconds(deployMs), 'MiB/s': '' },
      { what: 'deploy request → OS marker on the console', s: seconds(markerMs), 'MiB/s': '' },
      {
        what: `ramdisk write_image (${Number.isNaN(bytes) ? 'no result' : `${(bytes / MiB).toFixed(0)} MiB to ${write?.result?.disk}`})`,
        s: writeSeconds.toFixed(1),
        'MiB/s': ramdiskRate.toFixed(1),
      },
      {
        what: `reference: wget | zcat | dd in the same VM (rc ${reference.rc})`,
        s: reference.seconds.toFixed(1),
        'MiB/s': referenceRate.toFixed(1),
      },
      {
        what: 'ratio ramdisk / reference (goal ≥ 0.8)',
        s: '',
        'MiB/s': (ramdiskRate / referenceRate).toFixed(2),
      },
    ],
  );
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      process.stderr.write(`cleanup: ${(error as Error).message}\n`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
