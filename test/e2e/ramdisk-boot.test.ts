/**
 * End to end: `scripts/build-ramdisk.ts` builds the deploy ramdisk (Debian kernel + our
 * initramfs + the Go program `ramdisk/cmd/metalplane-ramdisk`) into a temporary cache, qemu
 * boots it directly, `/init` loads the modules, gets a DHCP lease from slirp and runs the
 * program, which says hello to a fake site agent here (every request checked with
 * `validateRamdiskRequest`) and heartbeats (test/support/ramdisk-vm.ts).
 * Needs Go, qemu-system-x86, linux-image-amd64, busybox-static, fdisk
 * (scripts/debian-packages.txt). Boot time and sizes: `npm run bench -- ramdisk`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuildResult, buildRamdisk } from '../../scripts/build-ramdisk.ts';
import {
  bootRamdiskVm,
  type FakeSiteAgent,
  type RamdiskVm,
  startFakeSiteAgent,
} from '../support/ramdisk-vm.ts';

const TOKEN = 'tok-e2e-ramdisk-5c1d';
const SESSION = 'sess-e2e-ramdisk-9a0b';
/** TCG on 2 shared cores: the lab booted to its marker in 15-20 s. */
const BOOT_TIMEOUT_MS = 150_000;

let dir: string;
let build: BuildResult;
let agent: FakeSiteAgent;
let vm: RamdiskVm | undefined;

describe('deploy ramdisk boots in qemu and speaks the ramdisk protocol', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metalplane-ramdisk-e2e-'));
    build = await buildRamdisk({ cacheDir: join(dir, 'cache') });
    agent = await startFakeSiteAgent(TOKEN, SESSION);
  }, 300_000);

  afterAll(async () => {
    await vm?.stop();
    await agent?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(
    'hello with the boot token, then a heartbeat on the session',
    async () => {
      vm = bootRamdiskVm({
        kernel: join(build.dir, 'vmlinuz'),
        initramfs: join(build.dir, 'initramfs.img'),
        agentPort: agent.port,
        token: TOKEN,
        serial: join(dir, 'serial.log'),
        timeoutSeconds: Math.ceil(BOOT_TIMEOUT_MS / 1000) + 30,
      });
      const booted = vm;
      await agent
        .until(() => agent.ofType('heartbeat').length > 0, booted.child, BOOT_TIMEOUT_MS)
        .catch((error) => {
          throw new Error(`${(error as Error).message}\n--- serial console (tail) ---\n${booted.console()}`);
        });
      const hello = agent.ofType('hello')[0]!;
      const heartbeat = agent.ofType('heartbeat')[0]!;
      expect(agent.requests.filter((r) => !r.valid)).toEqual([]);
      expect(hello.body).toMatchObject({ v: 1, type: 'hello', token: TOKEN });
      expect(heartbeat.body).toEqual({ v: 1, type: 'heartbeat', session: SESSION });
      expect(heartbeat.at).toBeGreaterThan(hello.at);
      expect(booted.console(1_000_000)).toMatch(
        /metalplane-init: network up: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/,
      );
    },
    BOOT_TIMEOUT_MS + 30_000,
  );
});
