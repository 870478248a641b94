/**
 * Simulated BMCs for tests: OpenIPMI's `ipmi_sim` speaking IPMI 2.0 (lanplus) on
 * 127.0.0.1, started with the proven recipe of `../shared/lab/bmc/` (user admin /
 * password; power and boot device kept in files by chassis-control.sh). Stopped by PID.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../local/moto.ts';

const run = promisify(execFile);
export const labBmcDir = join(import.meta.dirname, '..', '..', '..', 'shared', 'lab', 'bmc');

export interface SimulatedBmc {
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** What the chassis holds now (chassis-control.sh's files). */
  power(): string;
  boot(): string;
  stop(): Promise<void>;
}

/**
 * A simulated BMC on a free port, or on `port` (e.g. to bring a silent BMC back). `hooks`
 * are shell scripts installed as the BMC dir's executable `on` / `off`, which
 * chassis-control.sh runs when power changes (`on` in the background): e.g. start and
 * stop a VM (../shared/lab/boot/vm-on.example).
 */
export async function startBmc(
  options: { port?: number; hooks?: { on?: string; off?: string } } = {},
): Promise<SimulatedBmc> {
  const port = options.port ?? (await freePortUdp());
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-bmc-'));
  for (const [name, script] of Object.entries(options.hooks ?? {})) {
    if (script !== undefined) writeFileSync(join(dir, name), script, { mode: 0o755 });
  }
  const { stdout } = await run('sh', [join(labBmcDir, 'start-bmc.sh'), dir, String(port)], {
    timeout: 10_000,
  });
  const pid = Number(stdout.trim().split('\n').at(-1));
  if (!Number.isInteger(pid)) throw new Error(`ipmi_sim did not start: ${stdout}`);
  const state = (name: string) => {
    try {
      return readFileSync(join(dir, 'chassis-state', name), 'utf8').trim();
    } catch {
      return '';
    }
  };
  return {
    port,
    dir,
    pid,
    power: () => state('power'),
    boot: () => state('boot'),
    stop: async () => {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      for (let i = 0; i < 40; i++) {
        try {
          process.kill(pid, 0);
          await new Promise((resolve) => setTimeout(resolve, 50));
        } catch {
          break;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A port free for UDP too (ipmi_sim listens on UDP): the kernel's TCP pick is good enough here. */
async function freePortUdp(): Promise<number> {
  return freePort();
}
