/**
 * The local stack's child processes (moto server, the agent): started so that they end
 * with the stack whatever happens to it, and recorded so that the next start can tell a
 * survivor of a crashed run from a stranger.
 *
 * Three layers, each covering what the one before cannot:
 * - the stack stops its children by PID when asked (signal handlers in `local/start.ts`);
 * - on Linux each child is started under `setpriv --pdeathsig SIGTERM`: the kernel sends
 *   it SIGTERM when the stack dies, even by SIGKILL, which no handler can catch;
 * - a pid file per child under `<state dir>/run/` (pid, its kernel start time, command
 *   line, ports, and the same for the stack that owns it). The next start stops a child
 *   whose owner is dead only when pid, start time and command line all match the record
 *   (provably the process we started, not a reused pid), and reports it either way.
 *
 * Linux only (`/proc`), as the whole local stack is; elsewhere the first layer remains.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export interface ChildRecord {
  readonly name: string;
  readonly pid: number;
  /** Kernel start time (clock ticks since boot, /proc/<pid>/stat): tells a reused pid apart. */
  readonly startTime: string;
  readonly command: readonly string[];
  readonly ports: readonly number[];
  readonly owner: { readonly pid: number; readonly startTime: string };
  readonly startedAt: string;
}

interface Tracked {
  readonly child: ChildProcess;
  readonly pidFile?: string;
}

/** Children alive right now, so that an unexpected exit of the stack still ends them. */
const live = new Map<number, Tracked>();
let exitHookInstalled = false;

/** `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, ... starttime. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself contain spaces or parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The kernel start time of a live (not zombie) process, or undefined. */
export function processStartTime(pid: number): string | undefined {
  const fields = statFields(pid);
  if (!fields || fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

export function commandLine(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((part, index, all) => part !== '' || index < all.length - 1);
  } catch {
    return undefined;
  }
}

export function isRunning(pid: number): boolean {
  if (existsSync('/proc/self/stat')) return processStartTime(pid) !== undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Live (non-zombie) processes of a process group: what a stack started, in tests. */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields && fields[0] !== 'Z' && fields[0] !== 'X' && Number(fields[2]) === pgid)
      members.push(Number(entry));
  }
  return members;
}

/** `pid 123 (python .../moto_shim.py -p 4566)`, as far as this user may see it. */
export function describeProcess(pid: number): string {
  const command = commandLine(pid);
  return command && command.length > 0 ? `pid ${pid} (${command.join(' ')})` : `pid ${pid}`;
}

/** The process listening on a TCP port, from /proc/net/tcp{,6} and the sockets in /proc/<pid>/fd. */
export function tcpPortHolder(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      const local = columns[1];
      // State 0A is LISTEN; column 9 is the socket's inode.
      if (!local || columns[3] !== '0A') continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port && columns[9] !== '0')
        inodes.add(`socket:[${columns[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/**
 * Fails with a message naming the port, what it was meant for, and the process holding it
 * (when this user can see it), before anything is started on it.
 */
export async function assertPortFree(
  host: string,
  port: number,
  purpose: string,
  option: string,
): Promise<void> {
  if (port === 0) return;
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const server = createServer();
    server.once('error', (failure: NodeJS.ErrnoException) => resolve(failure));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
  if (!error) return;
  if (error.code !== 'EADDRINUSE')
    throw new Error(`cannot listen on ${host}:${port} for ${purpose}: ${error.message}`);
  const holder = tcpPortHolder(port);
  const who = holder === undefined ? 'another process (not visible to this user)' : describeProcess(holder);
  throw new Error(
    `port ${port} (${purpose}) is already in use by ${who}: stop it, or choose another port with ${option}`,
  );
}

function findSetpriv(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, 'setpriv');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Whether children get the kernel's parent-death signal. `METALPLANE_LOCAL_PDEATHSIG=off`
 * turns it off: what a machine without `setpriv` does, and how the tests make a survivor.
 */
function pdeathsigWrapper(): string | undefined {
  return process.env.METALPLANE_LOCAL_PDEATHSIG === 'off' ? undefined : findSetpriv();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: the stack exits (process.exit, an uncaught exception) with children still
  // running. No waiting is possible here, hence SIGKILL; their pid files go with them.
  process.on('exit', () => {
    for (const [pid, tracked] of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      if (tracked.pidFile) rmSync(tracked.pidFile, { force: true });
    }
  });
}

export interface OwnedSpawnOptions {
  readonly stdio: SpawnOptions['stdio'];
  readonly env?: NodeJS.ProcessEnv;
  /** Where the pid file goes (`<state dir>/run`); none without it. */
  readonly runDir?: string;
  readonly ports?: readonly number[];
}

/**
 * Spawns a child that ends with this process: tracked for the exit hook, under the
 * parent-death signal where available, and recorded in a pid file removed when it exits.
 */
export function spawnOwned(
  name: string,
  command: string,
  args: readonly string[],
  options: OwnedSpawnOptions,
): ChildProcess {
  installExitHook();
  const wrapper = pdeathsigWrapper();
  // setpriv sets PR_SET_PDEATHSIG and execs the command: same pid, and the setting
  // survives exec. The kernel ties it to the thread that forked: Node's main thread here.
  const child = wrapper
    ? spawn(wrapper, ['--pdeathsig', 'SIGTERM', '--', command, ...args], {
        stdio: options.stdio,
        env: options.env,
      })
    : spawn(command, [...args], { stdio: options.stdio, env: options.env });
  const pid = child.pid;
  if (pid === undefined) return child; // spawn failed: the 'error' event tells why
  let pidFile: string | undefined;
  if (options.runDir) {
    mkdirSync(options.runDir, { recursive: true, mode: 0o700 });
    pidFile = join(options.runDir, `${name}-${pid}.json`);
    const record: ChildRecord = {
      name,
      pid,
      // Read right after fork, so it is the start time of this very process.
      startTime: processStartTime(pid) ?? '',
      command: [command, ...args],
      ports: options.ports ?? [],
      owner: { pid: process.pid, startTime: processStartTime(process.pid) ?? '' },
      startedAt: new Date().toISOString(),
    };
    // Written aside and renamed, so a reader never sees half a record.
    const partial = `${pidFile}.partial`;
    writeFileSync(partial, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(partial, pidFile);
  }
  live.set(pid, pidFile ? { child, pidFile } : { child });
  child.once('exit', () => {
    live.delete(pid);
    if (pidFile) rmSync(pidFile, { force: true });
  });
  return child;
}

/** Stops a child by its PID: SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
export async function stopOwned(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** SIGKILL every child still running, now (a second Ctrl-C while stopping). */
export function killOwnedNow(): void {
  for (const { child } of live.values()) child.kill('SIGKILL');
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return !isRunning(pid);
}

function sameCommand(actual: readonly string[] | undefined, recorded: readonly string[]): boolean {
  return (
    actual !== undefined &&
    actual.length === recorded.length &&
    actual.every((part, i) => part === recorded[i])
  );
}

/**
 * Looks at the pid files a previous stack left in `runDir`. A record whose owner still
 * runs belongs to a live stack: left alone. Otherwise its owner crashed: a child that is
 * provably ours (pid, start time and command line match) is stopped, a gone one's file
 * removed, and a pid now used by an unrelated process left alone. Returns one line per
 * finding, for the operator.
 */
export async function reapStaleChildren(runDir: string): Promise<string[]> {
  if (!existsSync(runDir)) return [];
  const findings: string[] = [];
  for (const file of readdirSync(runDir)) {
    const path = join(runDir, file);
    // A record the stack died while writing: its child never got past spawn's first line.
    if (file.endsWith('.json.partial')) rmSync(path, { force: true });
    if (!file.endsWith('.json')) continue;
    let record: ChildRecord;
    try {
      record = JSON.parse(readFileSync(path, 'utf8')) as ChildRecord;
    } catch {
      rmSync(path, { force: true });
      findings.push(`removed unreadable pid file ${path}`);
      continue;
    }
    // Its owner still runs (same pid, same start time): a live stack's child.
    if (processStartTime(record.owner.pid) === record.owner.startTime) continue;
    const what = `${record.name} pid ${record.pid}${record.ports.length ? ` (ports ${record.ports.join(', ')})` : ''}`;
    const crashed = `the local stack pid ${record.owner.pid}, which is gone`;
    if (processStartTime(record.pid) !== record.startTime) {
      rmSync(path, { force: true });
      findings.push(`${what}, started by ${crashed}, already exited: removed its pid file`);
      continue;
    }
    const actual = commandLine(record.pid);
    if (!sameCommand(actual, record.command)) {
      rmSync(path, { force: true });
      findings.push(
        `${what}, started by ${crashed}: that pid now runs '${(actual ?? []).join(' ')}', not '${record.command.join(' ')}'; left it alone`,
      );
      continue;
    }
    process.kill(record.pid, 'SIGTERM');
    if (!(await waitForExit(record.pid, 5000))) {
      process.kill(record.pid, 'SIGKILL');
      await waitForExit(record.pid, 5000);
    }
    rmSync(path, { force: true });
    findings.push(`stopped ${what}, left running by ${crashed} (command: ${record.command.join(' ')})`);
  }
  return findings;
}
