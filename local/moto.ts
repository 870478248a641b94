/**
 * Starts and stops moto server, the AWS emulator of the tests and the local stack.
 *
 * moto comes from the project's virtualenv (`scripts/setup-venv.sh`). It listens on
 * 127.0.0.1 only and is stopped by the PID this module started, never by name.
 */
import type { ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertPortFree, spawnOwned, stopOwned } from './processes.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const motoBinary = join(projectRoot, '.venv', 'bin', 'moto_server');
const venvPython = join(projectRoot, '.venv', 'bin', 'python');
/** moto with item-scoped DynamoDB transactions (see the file's docstring). */
const motoShim = join(projectRoot, 'local', 'moto_shim.py');

export interface MotoServer {
  readonly endpoint: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * A free TCP port on 127.0.0.1 for a server another process will start. Chosen below the
 * kernel's ephemeral range (`ip_local_port_range`), at random: a port the kernel picked
 * with bind(0) is free only until the next outgoing connection or bind(0) of any process
 * takes it, which on a busy machine happens before the other process binds it; below
 * that range only another caller of this function could, by choosing the same one.
 */
export async function freePort(): Promise<number> {
  const [low, high] = unassignedRange();
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = low + randomInt(high - low + 1);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high} after 50 tries`);
}

/** Ports below the ephemeral range (Linux: 32768 by default), above the usual services. */
function unassignedRange(): [number, number] {
  let ephemeralLow = 32768;
  try {
    const [first] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const parsed = Number(first);
    if (Number.isInteger(parsed) && parsed > 20_000) ephemeralLow = parsed;
  } catch {
    // Not Linux: the IANA dynamic range starts at 49152; 32768 is below it too.
  }
  return [20_000, ephemeralLow - 1];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export interface MotoOptions {
  /** 0 or absent: a free port the kernel picks. */
  readonly port?: number;
  readonly readyTimeoutMs?: number;
  /** Aborts the start: moto is stopped (by its PID) before the promise rejects. */
  readonly signal?: AbortSignal;
  /** Where its pid file goes (the local stack's `.local/run`); none without it. */
  readonly runDir?: string;
  /**
   * moto as released, without local/moto_shim.py: the reference the shim's conformance
   * tests compare its answers with.
   */
  readonly plain?: boolean;
}

export async function startMoto(options: MotoOptions = {}): Promise<MotoServer> {
  if (!existsSync(motoBinary)) {
    throw new Error(`moto server not found at ${motoBinary}: run 'npm run setup:venv' first`);
  }
  options.signal?.throwIfAborted();
  // A port asked for by number must be free: otherwise a stale moto on it would answer
  // the readiness probe and pass for the one started here.
  if (options.port) await assertPortFree('127.0.0.1', options.port, 'moto server', '--moto-port');
  const port = options.port || (await freePort());
  const listen = ['-H', '127.0.0.1', '-p', String(port)];
  const child = spawnOwned(
    options.plain ? 'moto-plain' : 'moto',
    options.plain ? motoBinary : venvPython,
    options.plain ? listen : [motoShim, ...listen],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'false' },
      ...(options.runDir ? { runDir: options.runDir } : {}),
      ports: [port],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(endpoint, child, options.readyTimeoutMs ?? 30_000, options.signal);
  } catch (error) {
    // Waited for, so that its port is free again when the caller goes on (or exits).
    await stopOwned(child, 2000);
    if (options.signal?.aborted) throw options.signal.reason;
    throw new Error(`moto server did not start on port ${port}: ${(error as Error).message}\n${stderr}`);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('moto server has no pid');
  return { endpoint, port, pid, stop: () => stopOwned(child) };
}

async function waitUntilReady(
  endpoint: string,
  child: ChildProcess,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    signal?.throwIfAborted();
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    try {
      const probe = signal ? AbortSignal.any([signal, AbortSignal.timeout(1000)]) : AbortSignal.timeout(1000);
      const response = await fetch(`${endpoint}/moto-api/data.json`, { signal: probe });
      if (response.ok) return;
    } catch {
      // not listening yet (or aborted: the next turn says so)
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.min(50 * 2 ** attempt, 500));
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
  throw new Error(`not ready after ${timeoutMs} ms`);
}

/** Environment that points the AWS SDK at an emulator: endpoint, region, dummy credentials. */
export function emulatorEnvironment(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    // moto on 127.0.0.1 cannot serve virtual-hosted bucket names.
    METALPLANE_S3_FORCE_PATH_STYLE: 'true',
  };
}
