/**
 * The real Ironic of `../shared/anchor/` (Debian's 21.4, noauth, sqlite), started beside
 * Metalplane so that every figure has Ironic's next to it, measured in the same run.
 *
 * It runs on a free port with its state in a fresh temporary directory, and is stopped by
 * `stop.sh` (which kills the PID `start.sh` recorded), else by that PID: never by name.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../local/moto.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const anchorDir = join(projectRoot, '..', 'shared', 'anchor');

export const IRONIC_INSTALL_HINT =
  'apt-get update && apt-get install -y ironic-api ironic-conductor python3-ironicclient python3-openstackclient';

export interface IronicAnchor {
  /** `http://127.0.0.1:PORT` (no trailing /v1). */
  readonly url: string;
  /** PID of the one `ironic` process (API and conductor). */
  readonly pid: number;
  /** State directory (config, sqlite, logs); removed by `stop`. */
  readonly dir: string;
  stop(): Promise<void>;
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** Why the anchor cannot run here (with how to fix it), or undefined when it can. */
export function ironicUnavailable(): string | undefined {
  if (!existsSync(join(anchorDir, 'start.sh')) || !existsSync(join(anchorDir, 'stop.sh')))
    return `the anchor scripts are not in ${anchorDir} (start.sh, stop.sh)`;
  const missing = ['ironic', 'ironic-dbsync', 'curl'].filter((command) => !onPath(command));
  if (missing.length > 0)
    return `Ironic is not installed (${missing.join(', ')} not found on PATH); install it with: ${IRONIC_INSTALL_HINT}`;
  return undefined;
}

function runScript(
  script: string,
  env: Record<string, string>,
  timeoutMs: number,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(anchorDir, script)], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-8000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function killPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 40 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 250));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

async function waitForV1(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/v1`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) return;
      last = `HTTP ${response.status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`Ironic did not answer GET /v1 within ${timeoutMs} ms (${last})`);
}

/** Starts the anchor; throws (after cleaning up) if it does not come up. */
export async function startIronicAnchor(
  options: { port?: number; readyTimeoutMs?: number } = {},
): Promise<IronicAnchor> {
  const unavailable = ironicUnavailable();
  if (unavailable) throw new Error(unavailable);
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'ironic-anchor-'));
  const env = { PORT: String(port), IRONIC_DIR: dir };
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const pid = readPid(dir);
    await runScript('stop.sh', env, 30_000).catch(() => undefined);
    if (pid !== undefined) await killPid(pid);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const started = await runScript('start.sh', env, options.readyTimeoutMs ?? 90_000);
    if (started.code !== 0) throw new Error(`start.sh exited ${started.code}:\n${started.output}`);
    await waitForV1(url, options.readyTimeoutMs ?? 90_000);
    const pid = readPid(dir);
    if (pid === undefined) throw new Error(`start.sh left no pid file in ${dir}`);
    return { url, pid, dir, stop };
  } catch (error) {
    let log = '';
    try {
      log = readFileSync(join(dir, 'stdout.log'), 'utf8').slice(-2000);
    } catch {
      // no log
    }
    await stop();
    throw new Error(`${(error as Error).message}${log ? `\n--- ironic stdout.log (tail) ---\n${log}` : ''}`);
  }
}
