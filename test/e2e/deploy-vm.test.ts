/**
 * The whole product end to end, through the API alone, against real peers: the control
 * plane on moto, a real agent process (drivers ipmi + fake-hardware) with its own TFTP
 * and HTTP servers on loopback, an `ipmi_sim` BMC whose power-on hook starts a qemu VM
 * (TCG, e1000, the node's MAC, network boot) and whose power-off hook kills it by PID,
 * and a kernel + ramdisk image (the lab's kernel and busybox initramfs) uploaded through
 * `/v1/images`. A ramdisk deploy: the agent syncs the image, writes the boot files, sets
 * PXE and powers on through ipmitool; the VM's iPXE fetches `boot.ipxe` from the agent
 * (slirp's DHCP hands out its URL, as a site's dnsmasq would), chains the per-MAC script,
 * loads kernel + initrd over HTTP, and the initramfs calls the callback URL on its command
 * line, which the agent relays: the node goes active. Undeploy powers the VM off and
 * removes the files. Recipe: ../shared/lab/README.md (inside the VM 10.0.2.2 is the
 * host's 127.0.0.1). Needs the Debian packages of scripts/debian-packages.txt (ipmitool,
 * openipmi, qemu-system-x86, ipxe-qemu, linux-image-amd64, busybox-static, cpio).
 *
 * The lab initramfs powers the VM off after the callback; here the VM runs with
 * `-action shutdown=pause`, so the guest's power-off only halts it and the machine stays
 * "on" (as a deployed server stays up) until Metalplane powers it off through the BMC.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import { type SimulatedBmc, startBmc } from '../support/bmc.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import { uploadKernelRamdisk } from '../support/images.ts';

const run = promisify(execFile);
const labBootDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab', 'boot');

const SITE = 'e2e-deploy';
const MAC = '52:54:00:e2:e0:01';
const HEXHYP = MAC.replaceAll(':', '-');
/** From power-on to the callback the lab measured ≈ 15 s (TCG); the machine is shared. */
const BOOT_TIMEOUT_MS = 60_000;

let stack: ChannelStack;
let agent: AgentProcess;
let bmc: SimulatedBmc;
let work: string;
let httpPort: number;
let tftpPort: number;
let kernel: Buffer;
let ramdisk: Buffer;

/** The BMC's `on` hook: start the VM and wait for it; when it is gone the chassis is off. */
const onHook = (bootfile: string) => `#!/bin/sh
D=$(cd "$(dirname "$0")" && pwd)
echo "start $(date +%s.%N)" >> "$D/vm-starts.log"
qemu-system-x86_64 -accel tcg -m 512 -display none -monitor none -serial "file:$D/serial.log" \\
  -netdev user,id=n0,bootfile=${bootfile} -device e1000,netdev=n0,mac=${MAC} \\
  -boot n -no-reboot -action shutdown=pause -pidfile "$D/qemu.pid" 2>>"$D/qemu.err"
echo 0 > "$D/chassis-state/power"
`;

/** The BMC's `off` hook: stop the VM by its PID. */
const OFF_HOOK = `#!/bin/sh
D=$(cd "$(dirname "$0")" && pwd)
[ -f "$D/qemu.pid" ] && kill "$(cat "$D/qemu.pid")" 2>/dev/null
rm -f "$D/qemu.pid"
`;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The running VM's PID (from qemu's pidfile), if there is one. */
function qemuPid(): number | undefined {
  try {
    const pid = Number(readFileSync(join(bmc.dir, 'qemu.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function bmcFile(name: string): string {
  try {
    return readFileSync(join(bmc.dir, name), 'utf8');
  } catch {
    return '';
  }
}

/** What chassis-control.sh was asked to set, in order (`power 1`, `boot pxe` ...). */
const bmcSets = () =>
  bmcFile('chassis-state/calls.log')
    .split('\n')
    .filter((line) => / set /.test(line))
    .map((line) => line.split(' set ')[1]);

function agentConfig(): string {
  return testConfig({
    url: stack.api.url,
    websocketUrl: stack.gateway.url,
    extra: [
      'drivers: [ipmi, fake-hardware]',
      'power_sync:',
      '  enabled: false',
      'ipmi:',
      '  command_timeout: 10s',
      '  min_command_interval: 0',
      '  retries: 1',
      'images:',
      '  refresh_interval: 1s',
      'boot:',
      '  dhcp_hosts_dir: ./dhcp-hosts',
      // Inside qemu's user-mode network the host's 127.0.0.1 is 10.0.2.2.
      `  http_url: http://10.0.2.2:${httpPort}`,
    ].join('\n'),
  })
    .replace(/^(tftp:\n.*\n.*\n {2}port:) 0$/m, `$1 ${tftpPort}`)
    .replace(/^(http:\n.*\n.*\n {2}port:) 0$/m, `$1 ${httpPort}`);
}

/** File bytes the agent's HTTP boot server has sent (its status endpoint's metrics). */
async function httpBytesSent(): Promise<number> {
  const metrics = await (await fetch(`${await agent.statusUrl()}/metrics`)).text();
  const match = /^metalplane_agent_http_boot_bytes_sent_total(?:\{[^}]*\})? (\d+)/m.exec(metrics);
  if (!match) throw new Error(`no HTTP boot bytes in the metrics:\n${metrics}`);
  return Number(match[1]);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'metalplane-e2e-deploy-'));
  const [channel] = await Promise.all([
    startChannel({ syncWaitMs: 15_000 }),
    // The lab's kernel + busybox initramfs (prints the marker, calls callback=URL).
    run('sh', [join(labBootDir, 'build-initrd.sh'), work], { timeout: 60_000 }),
  ]);
  stack = channel;
  kernel = readFileSync(join(work, 'vmlinuz'));
  ramdisk = readFileSync(join(work, 'initrd.cpio.gz'));
  expect((await stack.createSite(SITE)).status).toBe(201);
  httpPort = await freePort();
  tftpPort = await freePort();
  bmc = await startBmc({
    hooks: { on: onHook(`http://10.0.2.2:${httpPort}/boot.ipxe`), off: OFF_HOOK },
  });
  const { credential } = await stack.enroll(SITE, 'e2e-agent');
  agent = new AgentProcess().writeConfig(agentConfig());
  await agent.writeCredential(credential);
  await agent.start();
}, 90_000);

afterAll(async () => {
  // The agent first (no more power commands), then the VM by PID (whatever state the test
  // left it in), then the BMC, then the stack. A VM just being started may not have
  // written its pidfile yet: give it a bounded moment.
  await agent?.cleanup();
  const starting = () => bmc.power() === '1' && bmcFile('vm-starts.log') !== '' && !qemuPid();
  for (let i = 0; bmc && i < 30 && starting(); i++) await new Promise((r) => setTimeout(r, 100));
  const pid = bmc ? qemuPid() : undefined;
  if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
  await bmc?.stop();
  await stack?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function node(uuid: string) {
  return (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;
}

async function provision(uuid: string, target: string) {
  return stack.api.call('PUT', `/v1/nodes/${uuid}/states/provision`, { body: { target } });
}

/** Waits for the node to reach `state` with nothing in flight; fails at once on a last_error. */
async function reaches(uuid: string, state: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const current = await node(uuid);
      if (current.last_error) {
        throw new Error(
          `node ${uuid} failed in ${current.provision_state}: ${current.last_error}\n` +
            `agent: ${agent.raw.slice(-4000)}\nqemu: ${bmcFile('qemu.err')}\nserial: ${bmcFile('serial.log')}`,
        );
      }
      if (current.provision_state === state && current.reservation === null) return current;
      return undefined;
    },
    `node ${uuid} to reach ${state}`,
    timeoutMs,
    // Every 250 ms, not 20: each read is an API call through moto, and the deploy waits
    // for a TCG VM that needs the CPU more (disk-deploy-vm.ts, NODE_POLL_MS).
    250,
  );
}

/** Registers the lab kernel + initramfs as a kernel+ramdisk image and uploads it (presigned PUTs). */
function uploadImage(): Promise<string> {
  return uploadKernelRamdisk(stack.api, `lab-ramdisk-${Date.now()}`, kernel, ramdisk);
}

describe('deploy a network-booting VM through the API', () => {
  it('ipmi + ipxe + ramdisk: image synced, boot files, PXE, power on, iPXE boot, callback, active; undeploy powers off and cleans', async () => {
    const started = performance.now();
    const image = await uploadImage();
    const uuid = await stack.createNode(SITE, {
      driver: 'ipmi',
      driver_info: {
        ipmi_address: '127.0.0.1',
        ipmi_port: bmc.port,
        ipmi_username: 'admin',
        ipmi_password: 'password',
        ipmi_cipher_suite: 3,
      },
      boot_interface: 'ipxe',
      deploy_interface: 'ramdisk',
    });
    const port = await stack.api.call('POST', '/v1/ports', {
      body: { node_uuid: uuid, address: MAC, pxe_enabled: true },
    });
    expect(port.status).toBe(201);
    const patched = await stack.api.call('PATCH', `/v1/nodes/${uuid}`, {
      body: [
        { op: 'add', path: '/instance_info/image_source', value: image },
        { op: 'add', path: '/instance_info/kernel_append_params', value: 'console=ttyS0' },
      ],
    });
    expect(patched.status).toBe(200);
    const validate = (await stack.api.call('GET', `/v1/nodes/${uuid}/validate`)).body;
    expect(validate.power).toEqual({ result: true });
    expect(validate.boot).toEqual({ result: true });

    // manage (the BMC answers) → provide (powered off) → available.
    expect((await provision(uuid, 'manage')).status).toBe(202);
    expect((await reaches(uuid, 'manageable')).power_state).toBe('power off');
    expect((await provision(uuid, 'provide')).status).toBe(202);
    await reaches(uuid, 'available');
    expect(bmc.power()).not.toBe('1'); // never set: the chassis starts off
    expect(bmcFile('vm-starts.log')).toBe('');

    // deploy.
    const bytesBefore = await httpBytesSent();
    expect((await provision(uuid, 'active')).status).toBe(202);
    const waiting = await reaches(uuid, 'wait call-back', 60_000);
    expect(waiting.target_provision_state).toBe('active');
    expect(waiting.power_state).toBe('power on');

    // The agent synced the image from S3: verified bytes in its images directory, reported ready.
    const imagesDir = join(agent.dir, 'http', 'images', image);
    expect(sha256(readFileSync(join(imagesDir, 'kernel')))).toBe(sha256(kernel));
    expect(sha256(readFileSync(join(imagesDir, 'ramdisk')))).toBe(sha256(ramdisk));
    const held = (await stack.api.call('GET', `/v1/sites/${SITE}/images`)).body.images;
    expect(held.find((entry: { uuid: string }) => entry.uuid === image)).toMatchObject({
      state: 'ready',
      bytes_done: kernel.length + ramdisk.length,
      bytes_total: kernel.length + ramdisk.length,
      reported_by: 'e2e-agent',
      error: null,
    });

    // It wrote the boot files (keyed by MAC) and the DHCP host entry.
    const http = join(agent.dir, 'http');
    const tftp = join(agent.dir, 'tftp');
    expect(readFileSync(join(http, 'boot.ipxe'), 'utf8')).toMatch(/^#!ipxe/);
    const script = readFileSync(join(http, 'pxelinux.cfg', HEXHYP), 'utf8');
    expect(script).toContain(`http://10.0.2.2:${httpPort}/images/${image}/kernel`);
    expect(script).toContain(`http://10.0.2.2:${httpPort}/images/${image}/ramdisk`);
    const callback = /callback=(\S+)/.exec(script)?.[1] ?? '';
    expect(callback).toMatch(new RegExp(`^http://10\\.0\\.2\\.2:${httpPort}/v1/callback/${uuid}\\?token=`));
    expect(existsSync(join(tftp, 'pxelinux.cfg', `01-${HEXHYP}`))).toBe(true);
    expect(readdirSync(join(agent.dir, 'dhcp-hosts'))).toEqual([`ironic-${MAC}.conf`]);

    // It set PXE on the BMC, then powered on (reboot: off, on) through ipmitool: the VM started.
    const sets = bmcSets();
    expect(sets).toContain('boot pxe');
    expect(sets.lastIndexOf('boot pxe')).toBeLessThan(sets.lastIndexOf('power 1'));
    expect(bmc.boot()).toBe('pxe');
    expect(bmc.power()).toBe('1');
    const vm = await waitFor(qemuPid, 'the VM to start (qemu pidfile)', 10_000);
    expect(alive(vm)).toBe(true);

    // The VM boots over iPXE from the agent's HTTP server and calls back through the agent.
    const active = await reaches(uuid, 'active', BOOT_TIMEOUT_MS);
    const bootSeconds = (performance.now() - started) / 1000;
    expect(active.power_state).toBe('power on');
    expect(active.target_provision_state).toBeNull();
    expect(active.last_error).toBeNull();
    const relayed = agent.lines('deploy callback relayed', (line) => line.node === uuid);
    expect(relayed).toHaveLength(1);
    expect(relayed[0]?.from).toMatch(/127\.0\.0\.1$/);
    const serial = await waitFor(
      () => (bmcFile('serial.log').includes('METALPLANE-CALLBACK-OK') ? bmcFile('serial.log') : undefined),
      'the serial log to show the callback',
      10_000,
    );
    expect(serial).toContain('METALPLANE-BOOT-MARKER');
    expect(await httpBytesSent()).toBeGreaterThanOrEqual(bytesBefore + kernel.length + ramdisk.length);
    expect(bmcFile('vm-starts.log').trim().split('\n')).toHaveLength(1);
    // The token was single-use: the same URL again (as the host sees it) is refused.
    const again = await fetch(callback.replace('10.0.2.2', '127.0.0.1'), {
      signal: AbortSignal.timeout(5_000),
    });
    expect(again.status).toBe(403);

    // undeploy: power off through the BMC (the VM is killed), boot files and DHCP entries removed.
    expect(alive(vm)).toBe(true);
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    const available = await reaches(uuid, 'available', 30_000);
    expect(available.power_state).toBe('power off');
    expect(available.instance_info).toEqual({});
    expect(bmc.power()).toBe('0');
    await waitFor(() => (alive(vm) ? undefined : true), 'the VM to be gone', 10_000);
    expect(existsSync(join(http, 'pxelinux.cfg', HEXHYP))).toBe(false);
    expect(existsSync(join(tftp, 'pxelinux.cfg', `01-${HEXHYP}`))).toBe(false);
    expect(readdirSync(join(agent.dir, 'dhcp-hosts'))).toEqual([]);
    const after = bmcSets();
    expect(after.slice(sets.length)).toContain('power 0');
    expect(after.at(-1)).toBe('boot default');

    const history = (await stack.api.call('GET', `/v1/nodes/${uuid}/history?detail=true`)).body.history;
    const moves = history.map(
      (event: { event: string }) => /moved to provision state "([^"]+)"/.exec(event.event)?.[1],
    );
    expect(moves).toEqual([
      'verifying',
      'manageable',
      'cleaning',
      'available',
      'deploying',
      'wait call-back',
      'deploying',
      'active',
      'deleting',
      'cleaning',
      'available',
    ]);
    expect(history.every((event: { severity: string }) => event.severity === 'INFO')).toBe(true);
    console.log(
      `deploy-vm: upload → active in ${bootSeconds.toFixed(1)} s, whole flow ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 150_000);
});
