/**
 * The local stack's agent: enrolls a real `metalplane-agent` for site `local` against the
 * local API (through the same enrollment routes an operator uses) and runs it as a child
 * process with the fake-hardware and ipmi drivers, its state and boot trees under `.local/agent/`
 * and unprivileged ports. Stopped by its PID with the stack.
 *
 * Its TFTP and HTTP boot servers listen on 127.0.0.1:6969/udp and 127.0.0.1:8088 (what
 * shared/lab's qemu recipes use: 10.0.2.2 inside the VM), or on free ports when those
 * are taken (e.g. a second stack started by scripts/smoke-start.sh).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnOwned, stopOwned } from './processes.ts';

const run = promisify(execFile);

export interface LocalAgentOptions {
  readonly projectRoot: string;
  readonly apiUrl: string;
  readonly webSocketUrl: string;
  readonly site: string;
  /** Basic credentials of an admin, or undefined with noauth. */
  readonly admin?: { readonly username: string; readonly password: string };
  readonly statusPort?: number;
  /** Preferred boot server ports (default 6969/udp and 8088/tcp; free ones when taken). */
  readonly tftpPort?: number;
  readonly httpPort?: number;
  /** The local stack's state directory (default `<projectRoot>/.local`): the agent's under `agent/`. */
  readonly stateDir?: string;
  /** Aborts the start: the enrollment and the agent already spawned are stopped. */
  readonly signal?: AbortSignal;
}

export interface LocalAgent {
  readonly pid: number;
  readonly hostname: string;
  readonly statusUrl: string;
  readonly tftpPort: number;
  readonly httpPort: number;
  stop(): Promise<void>;
}

/** `preferred` when it can be bound on 127.0.0.1 (UDP or TCP), else one the kernel picks. */
async function portOrFree(kind: 'udp' | 'tcp', preferred: number): Promise<number> {
  const tryBind = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      if (kind === 'udp') {
        const socket = createSocket('udp4');
        socket.once('error', () => resolve(undefined));
        socket.bind(port, '127.0.0.1', () => {
          const bound = socket.address().port;
          socket.close(() => resolve(bound));
        });
      } else {
        const server = createServer();
        server.once('error', () => resolve(undefined));
        server.listen(port, '127.0.0.1', () => {
          const address = server.address();
          server.close(() => resolve(address && typeof address === 'object' ? address.port : undefined));
        });
      }
    });
  const port = (await tryBind(preferred)) ?? (await tryBind(0));
  if (port === undefined) throw new Error(`no free ${kind} port on 127.0.0.1`);
  return port;
}

export async function startLocalAgent(options: LocalAgentOptions): Promise<LocalAgent> {
  const stateDir = options.stateDir ?? join(options.projectRoot, '.local');
  const dir = join(stateDir, 'agent');
  const signal = options.signal;
  signal?.throwIfAborted();
  // The emulator starts empty every time: so does the agent (no stale credential).
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'tftpboot'), { recursive: true });
  mkdirSync(join(dir, 'http'), { recursive: true });
  const hostname = `${options.site}-agent-1`;
  const statusPort = options.statusPort ?? 9469;
  const tftpPort = await portOrFree('udp', options.tftpPort ?? 6969);
  const httpPort = await portOrFree('tcp', options.httpPort ?? 8088);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `url: ${options.apiUrl}`,
      `websocket_url: ${options.webSocketUrl}`,
      `hostname: ${hostname}`,
      'transport: auto',
      `state_dir: ${join(dir, 'state')}`,
      'drivers: [fake-hardware, ipmi]',
      'log_level: info',
      'heartbeat_interval: 10s',
      'status:',
      `  address: 127.0.0.1:${statusPort}`,
      'tftp:',
      '  enabled: true',
      '  address: 127.0.0.1',
      `  root: ${join(dir, 'tftpboot')}`,
      `  port: ${tftpPort}`,
      'http:',
      '  enabled: true',
      '  address: 127.0.0.1',
      `  root: ${join(dir, 'http')}`,
      `  port: ${httpPort}`,
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
    ...(signal ? { signal } : {}),
  });
  if (response.status !== 201)
    throw new Error(`enrollment token refused: ${response.status} ${await response.text()}`);
  const { token } = (await response.json()) as { token: string };
  const cli = join(options.projectRoot, 'agent', 'cli.ts');
  await run(process.execPath, [cli, 'enroll', '--url', options.apiUrl, '--config', config], {
    env: { ...process.env, METALPLANE_ENROLL_TOKEN: token },
    timeout: 30_000,
    ...(signal ? { signal } : {}),
  });
  signal?.throwIfAborted();
  const child: ChildProcess = spawnOwned('agent', process.execPath, [cli, 'run', '--config', config], {
    stdio: ['ignore', 'inherit', 'inherit'],
    runDir: join(stateDir, 'run'),
    ports: [statusPort, httpPort],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('the agent did not start');
  return {
    pid,
    hostname,
    statusUrl: `http://127.0.0.1:${statusPort}`,
    tftpPort,
    httpPort,
    // The agent drains what it is doing on SIGTERM: a longer grace than moto's.
    stop: () => stopOwned(child, 25_000),
  };
}
