/**
 * Runs the real agent (`node agent/cli.ts run`) as a child process for tests: writes its
 * config and credential into a temporary directory, collects its JSON log lines, and
 * stops it by PID. Every wait is bounded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCredential } from '../state.ts';

export const CLI = resolve(fileURLToPath(new URL('../cli.ts', import.meta.url)));

/** Polls `probe` every 10 ms until it returns something other than undefined/false; throws after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export class AgentProcess {
  readonly dir: string;
  readonly configFile: string;
  readonly stateDir: string;
  child: ChildProcess | undefined;
  logs: LogLine[] = [];
  raw = '';
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #exited: Promise<void> | undefined;

  constructor(dir?: string) {
    this.dir = dir ?? mkdtempSync(join(tmpdir(), 'metalplane-agent-'));
    this.configFile = join(this.dir, 'config.yaml');
    this.stateDir = join(this.dir, 'state');
  }

  writeConfig(yaml: string): this {
    writeFileSync(this.configFile, yaml);
    return this;
  }

  async writeCredential(credential: string): Promise<this> {
    await writeCredential(this.stateDir, credential);
    return this;
  }

  /**
   * Spawns `node agent/cli.ts run --config FILE`; resolves once it logged "agent starting".
   * `env` is added to this process's environment for the agent alone (`clockSkewEnv`);
   * `entry` runs another build of the agent (the packaged bundle, in benches); `launcher`
   * runs an executable instead of `node ENTRY` (the package's /usr/bin/metalplane-agent,
   * which execs Node.js with its flags: the PID is the agent's).
   */
  async start(
    options: { waitForStart?: boolean; env?: Record<string, string>; entry?: string; launcher?: string } = {},
  ): Promise<this> {
    this.logs = [];
    this.raw = '';
    this.exit = undefined;
    const [command, ...prefix] = options.launcher
      ? [options.launcher]
      : [process.execPath, options.entry ?? CLI];
    const child = spawn(command as string, [...prefix, 'run', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, METALPLANE_AGENT_CONFIG: '', ...options.env },
    });
    this.child = child;
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.raw += chunk;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 'raw', msg: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    this.#exited = new Promise((r) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        r();
      }),
    );
    if (options.waitForStart !== false) {
      // A bound for a hung start only: loading the agent from sources on a machine busy
      // with three other test files took over 10 s (provision.test.ts, 2026-12-05).
      await waitFor(
        () => this.exit !== undefined || this.logs.some((l) => l.msg === 'agent starting'),
        'the agent to start',
        60_000,
      );
      if (this.exit)
        throw new Error(`agent exited at start (${JSON.stringify(this.exit)}): ${this.stderr}${this.raw}`);
    }
    return this;
  }

  get pid(): number {
    if (!this.child?.pid) throw new Error('agent not started');
    return this.child.pid;
  }

  /** The status endpoint's base URL (from its "listening" log line). */
  async statusUrl(): Promise<string> {
    const line = await waitFor(
      () => this.logs.find((l) => l.msg === 'status endpoint listening'),
      'status endpoint',
    );
    return `http://${line.host}:${line.port}`;
  }

  /** The status endpoint's Prometheus metrics, as text. */
  async metrics(): Promise<string> {
    return (await fetch(`${await this.statusUrl()}/metrics`)).text();
  }

  lines(msg: string, filter: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.logs.filter((l) => l.msg === msg && filter(l));
  }

  /** Sends `signal` to the agent's PID and waits (bounded) for it to exit. */
  async kill(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 10_000,
  ): Promise<{ code: number | null; signal: string | null }> {
    if (this.child && this.exit === undefined) {
      process.kill(this.pid, signal);
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([
        this.#exited!.then(() => true),
        new Promise<false>((r) => {
          timer = setTimeout(() => r(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (!inTime) {
        process.kill(this.pid, 'SIGKILL');
        await this.#exited;
        throw new Error(`agent did not exit within ${timeoutMs} ms of ${signal}`);
      }
    }
    return this.exit ?? { code: null, signal: null };
  }

  /** Kills (by PID) if still running and removes the temporary directory. */
  async cleanup(): Promise<void> {
    if (this.child && this.exit === undefined) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone already
      }
      await this.#exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A config for tests: loopback everything, fast reconnects, ephemeral status port. */
export function testConfig(options: {
  url: string;
  websocketUrl?: string;
  transport?: 'websocket' | 'polling' | 'auto';
  /** Lines added under `reconnect:` (two spaces of indent included). */
  reconnect?: string[];
  extra?: string;
}): string {
  return [
    `url: ${options.url}`,
    options.websocketUrl ? `websocket_url: ${options.websocketUrl}` : '',
    `transport: ${options.transport ?? 'websocket'}`,
    'state_dir: ./state',
    'hostname: test-agent',
    'log_level: debug',
    'heartbeat_interval: 1s',
    'shutdown_grace: 2s',
    'reconnect:',
    '  initial_delay: 50ms',
    '  max_delay: 500ms',
    ...(options.reconnect ?? []),
    'status:',
    '  address: 127.0.0.1:0',
    // The boot servers on loopback and free ports: tests run in parallel, and never on :69.
    'tftp:',
    '  root: ./tftp',
    '  address: 127.0.0.1',
    '  port: 0',
    'http:',
    '  root: ./http',
    '  address: 127.0.0.1',
    '  port: 0',
    options.extra ?? '',
  ]
    .filter(Boolean)
    .join('\n');
}

const CLOCK_SKEW_PRELOAD = new URL('./clock-skew-preload.ts', import.meta.url).pathname;

/** The environment that starts an agent with its wall clock `offsetMs` off (`start({ env })`). */
export function clockSkewEnv(offsetMs: number): Record<string, string> {
  if (offsetMs === 0) return {};
  return {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${CLOCK_SKEW_PRELOAD}`.trim(),
    METALPLANE_TEST_CLOCK_OFFSET_MS: String(offsetMs),
  };
}
