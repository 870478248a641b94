/**
 * End to end: a real qemu VM network-boots from the files `boot.prepare` rendered. Its
 * iPXE ROM gets `boot.ipxe` (slirp's DHCP hands out the URL, as a site's dnsmasq would),
 * which chains the VM's per-MAC script, which loads the lab kernel + initramfs over HTTP;
 * the initramfs reads `callback=URL` from its command line and calls it. A second VM
 * boots PXELINUX over TFTP with the rendered `pxelinux.cfg/01-<mac>` and staged images. Recipe and
 * timings: ../shared/lab/README.md (TCG, e1000; inside the VM 10.0.2.2 is the host's
 * 127.0.0.1). Needs the Debian packages qemu-system-x86, ipxe-qemu, linux-image-amd64,
 * busybox-static, cpio, pxelinux, syslinux-common (scripts/debian-packages.txt).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootActions } from '../../agent/boot/actions.ts';
import { openInRoot } from '../../agent/boot/root-path.ts';
import type { Action } from '../../agent/drivers/types.ts';
import { silentLogger } from '../../agent/log.ts';
import type { Command } from '../../protocol/messages.ts';

const run = promisify(execFile);
const labBootDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab', 'boot');

const NODE = '5f0c3a2e-8a61-4c3e-9d4f-1b2a3c4d5e6f';
const IMAGE = '0d7c1f3a-2b4e-4f60-8a9b-c1d2e3f40516';
const MAC = '52:54:00:12:34:56';
const TOKEN = 'tok-7c1f3a';
const BOOT_TIMEOUT_MS = 50_000;

let dir: string;
let server: Server;
let port: number;
const requests: string[] = [];
let onCallback: (url: string) => void = () => {};
let qemu: ChildProcess | undefined;

/** A tiny static server: `/images/...` from the images dir, the rest from the HTTP root, `/callback` recorded. */
function serve(httpRoot: string, imagesDir: string): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    if (url.pathname === '/callback') {
      onCallback(req.url ?? '');
      res.end('ok\n');
      return;
    }
    const [root, path] = url.pathname.startsWith('/images/')
      ? [imagesDir, url.pathname.slice('/images/'.length)]
      : [httpRoot, decodeURIComponent(url.pathname)];
    let file: ReturnType<typeof openInRoot>;
    try {
      file = openInRoot(root, path);
    } catch {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-length', file.size);
    if (req.method === 'HEAD') {
      closeSync(file.fd);
      res.end();
      return;
    }
    createReadStream('', { fd: file.fd }).pipe(res);
  });
}

const command = (action: string, args: Record<string, unknown>): Command => ({
  id: `cmd-${action}`,
  node: NODE,
  action,
  args,
  deadline: new Date(Date.now() + 60_000).toISOString(),
  attempt: 1,
  receipt: 'r',
});

function runAction(actions: Action[], name: string, args: Record<string, unknown>) {
  const action = actions.find((a) => a.name === name)!;
  expect(action.validate?.(args)).toBeUndefined();
  return action.run({
    command: command(name, args),
    args,
    signal: new AbortController().signal,
    log: silentLogger,
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metalplane-e2e-boot-'));
  const imagesDir = join(dir, 'images');
  const imageDir = join(imagesDir, IMAGE);
  mkdirSync(imageDir, { recursive: true });
  // The lab's kernel + busybox initramfs, stored as the images issue stores an image.
  await run('sh', [join(labBootDir, 'build-initrd.sh'), imageDir], { timeout: 60_000 });
  renameSync(join(imageDir, 'vmlinuz'), join(imageDir, 'kernel'));
  renameSync(join(imageDir, 'initrd.cpio.gz'), join(imageDir, 'ramdisk'));
  server = serve(join(dir, 'http'), imagesDir);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
}, 90_000);

afterAll(async () => {
  if (qemu?.pid !== undefined && qemu.exitCode === null && qemu.signalCode === null) {
    process.kill(qemu.pid, 'SIGKILL');
  }
  await new Promise((resolve) => server?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts a VM that network-boots with `netdev` options, and waits for the callback. */
async function bootVm(
  name: string,
  netdev: string,
): Promise<{ callbackUrl: string; seconds: number; serial: string }> {
  const serial = join(dir, `${name}-serial.log`);
  const called = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no callback within ${BOOT_TIMEOUT_MS} ms`)),
      BOOT_TIMEOUT_MS,
    );
    onCallback = (url) => {
      clearTimeout(timer);
      resolve(url);
    };
  });
  const started = performance.now();
  const vm = spawn(
    'qemu-system-x86_64',
    [
      ...['-accel', 'tcg', '-m', '512', '-display', 'none', '-monitor', 'none', '-no-reboot'],
      ...['-serial', `file:${serial}`, '-boot', 'n'],
      ...['-netdev', `user,id=n0,${netdev}`, '-device', `e1000,netdev=n0,mac=${MAC}`],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  qemu = vm;
  let stderr = '';
  vm.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => vm.on('exit', (code) => resolve(code)));
  try {
    const callbackUrl = await Promise.race([
      called,
      exited.then((code): never => {
        throw new Error(
          `qemu exited (${code}) before the callback: ${stderr}\n${readFileSync(serial, 'utf8')}`,
        );
      }),
    ]);
    const seconds = (performance.now() - started) / 1000;
    // The initramfs powers the VM off after the callback (bounded wait, then killed).
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    return { callbackUrl, seconds, serial: readFileSync(serial, 'utf8') };
  } finally {
    if (vm.pid !== undefined && vm.exitCode === null && vm.signalCode === null)
      process.kill(vm.pid, 'SIGKILL');
  }
}

describe('a VM network-boots the rendered boot files', () => {
  it('iPXE: boot.ipxe chains the per-MAC script, which boots kernel + initrd over HTTP; the callback is called', async () => {
    const base = `http://10.0.2.2:${port}`;
    const actions = bootActions({
      tftpRoot: join(dir, 'tftp'),
      httpRoot: join(dir, 'http'),
      httpBaseUrl: base,
      imagesDir: join(dir, 'images'),
      manifestDir: join(dir, 'manifests'),
      dhcpHostsDir: join(dir, 'dhcp'),
    });
    const result = await runAction(actions, 'boot.prepare', {
      node_uuid: NODE,
      macs: [MAC.toUpperCase()],
      boot_mode: 'bios',
      kernel: IMAGE,
      ramdisk: IMAGE,
      kernel_append_params: 'console=ttyS0 quiet',
      callback_url: `${base}/callback?token=${TOKEN}`,
    });
    expect(result.entry_script_url).toBe(`${base}/boot.ipxe`);
    requests.length = 0;

    // slirp's DHCP hands the entry script's URL to the VM's iPXE ROM, as a site's dnsmasq would.
    const vm = await bootVm('ipxe', `bootfile=${base}/boot.ipxe`);
    expect(vm.callbackUrl).toBe(`/callback?token=${TOKEN}`);
    // The chain: generic entry script → this MAC's script → kernel → initrd → callback.
    const chain = [
      '/boot.ipxe',
      '/pxelinux.cfg/52-54-00-12-34-56',
      `/images/${IMAGE}/kernel`,
      `/images/${IMAGE}/ramdisk`,
      '/callback',
    ];
    expect(requests.filter((r) => chain.includes(r))).toEqual(chain);
    expect(vm.serial).toContain('METALPLANE-BOOT-MARKER');
    expect(vm.serial).toContain('METALPLANE-CALLBACK-OK');
    console.log(`iPXE: the VM booted and called back in ${vm.seconds.toFixed(1)} s`);
  }, 75_000);

  it('PXELINUX: pxelinux.cfg/01-<mac> boots the staged kernel + initrd over TFTP; the callback is called', async () => {
    const base = `http://10.0.2.2:${port}`;
    const tftpRoot = join(dir, 'tftp-pxelinux');
    mkdirSync(tftpRoot, { recursive: true });
    // The site's loaders (Debian's pxelinux and syslinux-common).
    copyFileSync('/usr/lib/PXELINUX/pxelinux.0', join(tftpRoot, 'pxelinux.0'));
    copyFileSync('/usr/lib/syslinux/modules/bios/ldlinux.c32', join(tftpRoot, 'ldlinux.c32'));
    const actions = bootActions({
      tftpRoot,
      httpRoot: join(dir, 'http-pxelinux'),
      httpBaseUrl: base,
      imagesDir: join(dir, 'images'),
      manifestDir: join(dir, 'manifests-pxelinux'),
    });
    await runAction(actions, 'boot.prepare', {
      node_uuid: NODE,
      macs: [MAC],
      boot_mode: 'bios',
      kernel: IMAGE,
      ramdisk: IMAGE,
      kernel_append_params: 'console=ttyS0 quiet',
      callback_url: `${base}/callback?token=${TOKEN}-pxe`,
    });
    requests.length = 0;

    // slirp's own TFTP server serves the TFTP root (the agent's TFTP server is tested on its own).
    const vm = await bootVm('pxelinux', `tftp=${tftpRoot},bootfile=pxelinux.0`);
    expect(vm.callbackUrl).toBe(`/callback?token=${TOKEN}-pxe`);
    expect(requests).toEqual(['/callback']); // everything else came over TFTP
    expect(vm.serial).toContain('METALPLANE-CALLBACK-OK');
    console.log(`PXELINUX: the VM booted and called back in ${vm.seconds.toFixed(1)} s`);
  }, 75_000);
});
