/**
 * `node local/start.ts` (what `npm start` runs), as a real process on free ports with its
 * state in a temporary directory, stopped at several moments of its life: every process
 * it started ends with it and its ports are free again; a busy port is named with its
 * holder; the children of a SIGKILLed stack die with it or are stopped by the next start.
 *
 * The stack runs in a process group of its own, so "nothing it started is left" is
 * checked over that whole group (moto, the agent, the enrollment run), not only the PIDs
 * it recorded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../local/moto.ts';
import { assertPortFree, type ChildRecord, isRunning, processGroupMembers } from '../../local/processes.ts';
import { waitFor } from '../support/channel.ts';

const root = join(import.meta.dirname, '..', '..');
/** Generous: a start costs a few seconds, more on a busy machine. */
const START_MS = 60_000;

interface Ports {
  readonly api: number;
  readonly ws: number;
  readonly moto: number;
  readonly status: number;
}

interface StackRun {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ports: Ports;
  readonly runDir: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** Every child PID seen so far (pid files and the process group), for the checks after exit. */
  readonly seen: Set<number>;
  /** The pid files in the state directory now, by child name. */
  records(): ChildRecord[];
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function freePorts(): Promise<Ports> {
  return { api: await freePort(), ws: await freePort(), moto: await freePort(), status: await freePort() };
}

function startStack(
  stateDir: string,
  ports: Ports,
  options: { agent?: boolean; env?: Record<string, string> } = {},
): StackRun {
  const child = spawn(
    process.execPath,
    [
      'local/start.ts',
      ...['--api-port', String(ports.api), '--ws-port', String(ports.ws), '--moto-port', String(ports.moto)],
      ...['--agent-status-port', String(ports.status), '--state-dir', stateDir],
      ...(options.agent ? [] : ['--no-agent']),
    ],
    // A process group of its own: everything it starts is found by that group.
    { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error('the stack did not spawn');
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const runDir = join(stateDir, 'run');
  const seen = new Set<number>();
  const records = () =>
    existsSync(runDir)
      ? readdirSync(runDir)
          .filter((file) => file.endsWith('.json'))
          .flatMap((file) => readRecord(join(runDir, file)))
      : [];
  // Whatever happens to the test, nothing it started outlives it (by PID, never by name).
  cleanups.push(() => {
    for (const member of [...seen, ...processGroupMembers(pid)]) {
      try {
        process.kill(member, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
  return {
    child,
    pid,
    ports,
    runDir,
    exited,
    output: () => output,
    seen,
    records: () => {
      const found = records();
      for (const record of found) seen.add(record.pid);
      for (const member of processGroupMembers(pid)) if (member !== pid) seen.add(member);
      return found;
    },
  };
}

/** A pid file, or nothing when its process exited (and removed it) since the directory was listed. */
function readRecord(path: string): ChildRecord[] {
  try {
    return [JSON.parse(readFileSync(path, 'utf8')) as ChildRecord];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-lifecycle-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function untilReady(run: StackRun): Promise<void> {
  await waitFor(
    () => {
      run.records();
      if (run.child.exitCode !== null) throw new Error(`the stack exited early:\n${run.output()}`);
      return run.output().includes('local stack ready') ? true : undefined;
    },
    'the stack to be ready',
    START_MS,
  );
}

/** After the stack's exit: no process of its group, no PID it started, no pid file, every port free. */
async function expectNothingLeft(run: StackRun, ports: readonly number[]): Promise<void> {
  await waitFor(
    () => (processGroupMembers(run.pid).length === 0 ? true : undefined),
    `the processes of stack ${run.pid} to end`,
    10_000,
  );
  for (const pid of run.seen) expect(isRunning(pid), `pid ${pid} still running`).toBe(false);
  expect(run.records()).toEqual([]);
  for (const port of ports) await assertPortFree('127.0.0.1', port, 'the test', 'n/a');
}

function allPorts(ports: Ports): number[] {
  return [ports.api, ports.ws, ports.moto, ports.status];
}

describe('the local stack stops clean at any moment', { timeout: 120_000 }, () => {
  it('SIGTERM right after spawn: it exits and leaves nothing running', async () => {
    const ports = await freePorts();
    const run = startStack(stateDir(), ports);
    run.child.kill('SIGTERM');
    const { code, signal } = await run.exited;
    // Before its handlers exist, Node's default action; after, start-up is interrupted.
    expect(code === 143 || signal === 'SIGTERM', `exit ${code} ${signal}`).toBe(true);
    await expectNothingLeft(run, allPorts(ports));
  });

  it('SIGINT while moto starts: start-up aborts (exit 130) and moto is stopped', async () => {
    const ports = await freePorts();
    const run = startStack(stateDir(), ports);
    const moto = await waitFor(
      () => run.records().find((record) => record.name === 'moto'),
      "moto's pid file",
      START_MS,
    );
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    expect(code, run.output()).toBe(130);
    expect(run.output()).toContain('start-up interrupted by SIGINT');
    expect(isRunning(moto.pid)).toBe(false);
    await expectNothingLeft(run, allPorts(ports));
  });

  it('SIGTERM as soon as /v1 answers, while the agent starts: exit 143, moto and agent stopped', async () => {
    const ports = await freePorts();
    const run = startStack(stateDir(), ports, { agent: true });
    let last = 'no answer';
    await waitFor(
      async () => {
        run.records();
        if (run.child.exitCode !== null) throw new Error(`the stack exited early:\n${run.output()}`);
        const response = await fetch(`http://127.0.0.1:${ports.api}/v1`).catch((error: Error) => {
          last = error.message;
          return undefined;
        });
        if (response && !response.ok) last = `${response.status} ${await response.text()}`;
        return response?.ok ? true : undefined;
      },
      '/v1 to answer',
      START_MS,
    ).catch((error: Error) => {
      throw new Error(`${error.message} (last: ${last})\n${run.output()}`);
    });
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code, run.output()).toBe(143);
    await expectNothingLeft(run, allPorts(ports));
  });

  it('SIGTERM once ready, with the agent: exit 0, moto and agent stopped, every port free', async () => {
    const ports = await freePorts();
    const run = startStack(stateDir(), ports, { agent: true });
    await untilReady(run);
    const names = run.records().map((record) => record.name);
    expect(names.sort()).toEqual(['agent', 'moto']);
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(code, run.output()).toBe(0);
    expect(run.output()).toContain('stopping the local stack');
    await expectNothingLeft(run, allPorts(ports));
  });

  it('a busy port is named with the process holding it, and nothing is started', async () => {
    const held: Server = createServer();
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => held.close());
    const address = held.address();
    if (!address || typeof address !== 'object') throw new Error('no port');
    for (const which of ['api', 'moto'] as const) {
      const ports = { ...(await freePorts()), [which]: address.port };
      const run = startStack(stateDir(), ports);
      const { code } = await run.exited;
      expect(code, run.output()).toBe(1);
      // This test process holds it: its pid and command line are in the message.
      expect(run.output()).toContain(`port ${address.port} (`);
      expect(run.output()).toContain(`already in use by pid ${process.pid} (`);
      expect(run.output()).toContain(which === 'api' ? '--api-port' : '--moto-port');
      await expectNothingLeft(run, []);
    }
  });

  it('SIGKILL: the children die with the stack, and the next start clears their pid files', async () => {
    const dir = stateDir();
    const ports = await freePorts();
    const first = startStack(dir, ports, { agent: true });
    await untilReady(first);
    const left = first.records();
    expect(left.map((record) => record.name).sort()).toEqual(['agent', 'moto']);
    first.child.kill('SIGKILL');
    await first.exited;
    // The kernel's parent-death signal, not the stack (it got no chance), ends them.
    await waitFor(
      () => (left.every((record) => !isRunning(record.pid)) ? true : undefined),
      'the children of the killed stack to end',
      10_000,
    );
    expect(readdirSync(join(dir, 'run')).length).toBe(2);
    const second = startStack(dir, ports);
    await untilReady(second);
    for (const record of left)
      expect(second.output()).toContain(
        `${record.name} pid ${record.pid} (ports ${record.ports.join(', ')}), started by the local stack pid ${first.pid}, which is gone, already exited`,
      );
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    await expectNothingLeft(second, allPorts(ports));
  });

  it('SIGKILL without the parent-death signal: the next start stops the surviving moto and says so', async () => {
    const dir = stateDir();
    const ports = await freePorts();
    const first = startStack(dir, ports, { env: { METALPLANE_LOCAL_PDEATHSIG: 'off' } });
    await untilReady(first);
    const [moto] = first.records();
    if (!moto) throw new Error('no pid file for moto');
    first.child.kill('SIGKILL');
    await first.exited;
    // The survivor: still serving on its port, the stale state the issue describes.
    expect(isRunning(moto.pid)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${ports.moto}/moto-api/data.json`)).ok).toBe(true);
    const second = startStack(dir, ports);
    await untilReady(second);
    expect(second.output()).toContain(
      `stopped moto pid ${moto.pid} (ports ${ports.moto}), left running by the local stack pid ${first.pid}, which is gone (command: ${moto.command.join(' ')})`,
    );
    expect(isRunning(moto.pid)).toBe(false);
    // The new moto, not the old one, serves its port.
    const [newMoto] = second.records();
    expect(newMoto?.pid).not.toBe(moto.pid);
    second.child.kill('SIGINT');
    expect((await second.exited).code).toBe(0);
    await expectNothingLeft(second, allPorts(ports));
  });
});
