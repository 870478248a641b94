/**
 * Starts and stops moto server, the AWS emulator of the tests and the local stack.
 *
 * moto comes from the project's virtualenv (`scripts/setup-venv.sh`). It listens on
 * 127.0.0.1 only and is stopped by the PID this module started, never by name.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port assigned'));
      });
    });
  });
}

export async function startMoto(
  options: { port?: number; readyTimeoutMs?: number } = {},
): Promise<MotoServer> {
  if (!existsSync(motoBinary)) {
    throw new Error(`moto server not found at ${motoBinary}: run 'npm run setup:venv' first`);
  }
  const port = options.port ?? (await freePort());
  const child = spawn(venvPython, [motoShim, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MOTO_ALLOW_NONEXISTENT_REGION: 'false' },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilReady(endpoint, child, options.readyTimeoutMs ?? 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`moto server did not start on port ${port}: ${(error as Error).message}\n${stderr}`);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error('moto server has no pid');
  return { endpoint, port, pid, stop: () => stopChild(child) };
}

async function waitUntilReady(endpoint: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/data.json`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 500)));
  }
  throw new Error(`not ready after ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
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
