/**
 * The local stack's agent: enrolls a real `metalplane-agent` for site `local` against the
 * local API (through the same enrollment routes an operator uses) and runs it as a child
 * process with the fake-hardware driver, its state and boot trees under `.local/agent/`
 * and unprivileged ports. Stopped by its PID with the stack.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LocalAgentOptions {
  readonly projectRoot: string;
  readonly apiUrl: string;
  readonly webSocketUrl: string;
  readonly site: string;
  /** Basic credentials of an admin, or undefined with noauth. */
  readonly admin?: { readonly username: string; readonly password: string };
  readonly statusPort?: number;
}

export interface LocalAgent {
  readonly pid: number;
  readonly hostname: string;
  readonly statusUrl: string;
  stop(): Promise<void>;
}

export async function startLocalAgent(options: LocalAgentOptions): Promise<LocalAgent> {
  const dir = join(options.projectRoot, '.local', 'agent');
  // The emulator starts empty every time: so does the agent (no stale credential).
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
  const hostname = `${options.site}-agent-1`;
  const statusPort = options.statusPort ?? 9469;
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `url: ${options.apiUrl}`,
      `websocket_url: ${options.webSocketUrl}`,
      `hostname: ${hostname}`,
      'transport: auto',
      `state_dir: ${join(dir, 'state')}`,
      'drivers: [fake-hardware]',
      'log_level: info',
      'heartbeat_interval: 10s',
      'status:',
      `  address: 127.0.0.1:${statusPort}`,
      'tftp:',
      '  enabled: false',
      `  root: ${join(dir, 'tftpboot')}`,
      '  port: 6969',
      'http:',
      '  enabled: false',
      `  root: ${join(dir, 'http')}`,
      '  port: 8088',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const headers: Record<string, string> = { 'X-OpenStack-Ironic-API-Version': '1.82' };
  if (options.admin) {
    headers.Authorization = `Basic ${Buffer.from(`${options.admin.username}:${options.admin.password}`).toString('base64')}`;
  }
  const response = await fetch(`${options.apiUrl}/v1/sites/${options.site}/agents`, {
    method: 'POST',
    headers,
  });
  if (response.status !== 201)
    throw new Error(`enrollment token refused: ${response.status} ${await response.text()}`);
  const { token } = (await response.json()) as { token: string };
  const cli = join(options.projectRoot, 'agent', 'cli.ts');
  await run(process.execPath, [cli, 'enroll', '--url', options.apiUrl, '--config', config], {
    env: { ...process.env, METALPLANE_ENROLL_TOKEN: token },
    timeout: 30_000,
  });
  const child: ChildProcess = spawn(process.execPath, [cli, 'run', '--config', config], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('the agent did not start');
  return {
    pid,
    hostname,
    statusUrl: `http://127.0.0.1:${statusPort}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 25_000).unref();
      }),
  };
}
