/**
 * The local stack (`local/start.ts`, what `npm start` runs) for benchmarks: on free
 * ports, with the admin's credentials read from `.local/`, waiting for the local agent to
 * be an alive conductor unless started without one; stopped (SIGINT, by PID) by `stop`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../agent/testing/agent-process.ts';
import { freePort } from '../local/moto.ts';

const root = join(import.meta.dirname, '..');

export interface BenchStack {
  readonly url: string;
  readonly wsUrl: string;
  readonly password: string;
  /** HTTP Basic for the admin, at microversion 1.82, JSON. */
  readonly headers: Record<string, string>;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export async function startBenchStack(
  options: { agent?: boolean; nodeOptions?: readonly string[] } = {},
): Promise<BenchStack> {
  const [api, ws, moto, status] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeOptions ?? []),
      'local/start.ts',
      ...['--api-port', String(api), '--ws-port', String(ws), '--moto-port', String(moto)],
      ...['--agent-status-port', String(status)],
      ...(options.agent === false ? ['--no-agent'] : []),
    ],
    { cwd: root, stdio: 'ignore', env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'WARN' } },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  };
  try {
    const url = `http://127.0.0.1:${api}`;
    await waitFor(
      async () => (await fetch(`${url}/v1`).catch(() => undefined))?.ok,
      'the local stack',
      60_000,
    );
    const password = readFileSync(join(root, '.local', 'admin-password'), 'utf8').trim();
    const headers = {
      Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
      'X-OpenStack-Ironic-API-Version': '1.82',
      'Content-Type': 'application/json',
    };
    if (options.agent !== false) {
      await waitFor(
        async () => {
          const response = await fetch(`${url}/v1/conductors`, { headers });
          const body = (await response.json()) as { conductors?: Array<{ alive: boolean }> };
          return body.conductors?.some((conductor) => conductor.alive);
        },
        'the local agent',
        60_000,
      );
    }
    return { url, wsUrl: `ws://127.0.0.1:${ws}/local`, password, headers, child, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
