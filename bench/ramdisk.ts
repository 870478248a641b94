/**
 * The deploy ramdisk's size, build time and boot time (issue 14's figures): builds it cold
 * into a temporary cache and again (a cache hit), then boots it `BENCH_BOOTS` times in qemu
 * (TCG, e1000 on slirp) against a fake site agent, timing qemu's start → the ramdisk's
 * hello → its first heartbeat. Ironic's IPA ramdisk is ≈ 400 MB, tinyIPA ≈ 100 MB.
 *
 *   npm run bench -- ramdisk          (BENCH_BOOTS=3)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRamdisk } from '../scripts/build-ramdisk.ts';
import { bootRamdiskVm, startFakeSiteAgent } from '../test/support/ramdisk-vm.ts';
import { printTable } from './support.ts';

const BOOTS = Number(process.env.BENCH_BOOTS ?? 3);
const TOKEN = 'bench-ramdisk-token-0001';
const SESSION = 'bench-session';
const seconds = (ms: number) => (ms / 1000).toFixed(2);

const dir = mkdtempSync(join(tmpdir(), 'metalplane-bench-ramdisk-'));
try {
  let started = performance.now();
  const cold = await buildRamdisk({ cacheDir: join(dir, 'cache') });
  const coldMs = performance.now() - started;
  started = performance.now();
  const cached = await buildRamdisk({ cacheDir: join(dir, 'cache') });
  const cachedMs = performance.now() - started;
  const size = (name: string) => cold.files.find((f) => f.name === name)?.size ?? 0;
  printTable(
    `deploy ramdisk (${cold.manifest.compression}), built cold in ${seconds(coldMs)} s, again in ${seconds(cachedMs)} s (${cached.hit ? 'cache hit' : 'rebuilt'})`,
    [
      { file: 'vmlinuz', MB: (size('vmlinuz') / 1e6).toFixed(2) },
      { file: 'initramfs.img', MB: (size('initramfs.img') / 1e6).toFixed(2) },
      { file: 'total', MB: ((size('vmlinuz') + size('initramfs.img')) / 1e6).toFixed(2) },
    ],
  );
  const rows: Array<Record<string, string>> = [];
  for (let boot = 1; boot <= BOOTS; boot++) {
    const agent = await startFakeSiteAgent(TOKEN, SESSION);
    const vm = bootRamdiskVm({
      kernel: join(cold.dir, 'vmlinuz'),
      initramfs: join(cold.dir, 'initramfs.img'),
      agentPort: agent.port,
      token: TOKEN,
      serial: join(dir, `serial-${boot}.log`),
      timeoutSeconds: 200,
    });
    try {
      await agent.until(() => agent.ofType('heartbeat').length > 0, vm.child, 180_000);
      const hello = agent.ofType('hello')[0]!.at - vm.startedAt;
      const heartbeat = agent.ofType('heartbeat')[0]!.at - vm.startedAt;
      rows.push({ boot: String(boot), hello_s: seconds(hello), first_heartbeat_s: seconds(heartbeat) });
    } finally {
      await vm.stop();
      await agent.close();
    }
  }
  printTable('qemu start → ramdisk (TCG, 2 shared cores)', rows);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
