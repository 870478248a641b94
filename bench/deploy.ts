/**
 * Provisioning throughput, Metalplane beside Ironic in the same run: `../shared/anchor/
 * deploy_many.py` creates N fake-hardware nodes, then takes all of them at once through
 * manage, provide, deploy (to active) and undeploy (back to available), timing each phase
 * from the first PUT until every node shows the target with no action in flight.
 *
 * Metalplane: the local stack (`npm start`: moto, the api and agents handlers behind the
 * local gateways, the conductor tick, a real agent for site `local` over the WebSocket),
 * nodes in site `local`. Ironic: the anchor of ../shared/anchor (21.4, one process,
 * fake-hardware). Also printed: the CPU seconds each Metalplane process used over the run
 * (the stack's Node process, moto, the agent, the workload's client), to show where the
 * time goes on a shared machine.
 *
 *   npm run bench -- deploy          (BENCH_NODES=100; BENCH_IRONIC=0 skips Ironic;
 *                                     BENCH_CPU_PROF=DIR profiles the stack's Node process
 *                                     with --cpu-prof into DIR; METALPLANE_MOTO_STATS=FILE
 *                                     and METALPLANE_MOTO_PROFILE=FILE: moto's per-action
 *                                     counts and cProfile, see local/moto_shim.py)
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { anchorDir, ironicUnavailable, startIronicAnchor } from './ironic-anchor.ts';
import { startBenchStack } from './local-stack.ts';
import { printTable } from './support.ts';

const NODES = Number(process.env.BENCH_NODES ?? 100);
const PROFILE_DIR = process.env.BENCH_CPU_PROF;
const PHASES = ['manage', 'provide', 'deploy', 'undeploy'] as const;
type Phase = (typeof PHASES)[number];

interface Timings {
  n: number;
  manage_s: number;
  provide_s: number;
  deploy_s: number;
  undeploy_s: number;
}

/** Runs deploy_many.py; resolves its figures and the pid it ran as (for CPU accounting). */
function deployMany(
  url: string,
  args: readonly string[],
  onPid?: (pid: number) => void,
): Promise<{ timings: Timings; clientCpu: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'python3',
      [join(anchorDir, 'deploy_many.py'), url, String(NODES), ...args],
      { encoding: 'utf8', timeout: 1_800_000 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`deploy_many.py failed: ${error.message}\n${stderr}${stdout}`));
        resolve({ timings: JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Timings, clientCpu });
      },
    );
    let clientCpu = 0;
    const pid = child.pid;
    if (pid !== undefined) {
      onPid?.(pid);
      // The child's CPU, read just before it exits (the last sample taken).
      const sampler = setInterval(() => {
        const ticks = cpuSeconds(pid);
        if (ticks !== undefined) clientCpu = ticks;
      }, 200);
      child.once('exit', () => clearInterval(sampler));
    }
  });
}

/** User + system CPU seconds of a live process (undefined once it is gone). */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

async function metalplane(): Promise<{ timings: Timings; cpu: Record<string, number> }> {
  const stack = await startBenchStack({
    nodeOptions: PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : [],
  });
  const { url, password, child } = stack;
  try {
    const stackPid = child.pid as number;
    const processes: Record<string, number> = { 'stack (api + agents handlers, conductor)': stackPid };
    for (const pid of childrenOf(stackPid)) {
      const cmd = commandLine(pid);
      if (cmd.includes('moto_shim')) processes.moto = pid;
      else if (cmd.includes('agent/cli.ts')) processes.agent = pid;
    }
    const before = Object.fromEntries(
      Object.entries(processes).map(([name, pid]) => [name, cpuSeconds(pid) ?? 0]),
    );
    const { timings, clientCpu } = await deployMany(url, [`admin:${password}`, 'local']);
    const cpu = Object.fromEntries(
      Object.entries(processes).map(([name, pid]) => [name, (cpuSeconds(pid) ?? 0) - (before[name] ?? 0)]),
    );
    cpu['client (deploy_many.py)'] = clientCpu;
    return { timings, cpu };
  } finally {
    await stack.stop();
  }
}

async function ironic(): Promise<Timings | undefined> {
  if (process.env.BENCH_IRONIC === '0') return undefined;
  const unavailable = ironicUnavailable();
  if (unavailable) {
    process.stdout.write(`Ironic anchor not available: ${unavailable}\n`);
    return undefined;
  }
  const anchor = await startIronicAnchor();
  try {
    return (await deployMany(anchor.url, [])).timings;
  } finally {
    await anchor.stop();
  }
}

const seconds = (timings: Timings, phase: Phase) => timings[`${phase}_s`];

const ours = await metalplane();
const theirs = await ironic();
printTable(
  `${NODES} fake-hardware nodes at once (deploy_many.py): seconds per phase, PUTs included`,
  PHASES.map((phase) => ({
    phase,
    'Metalplane s': seconds(ours.timings, phase),
    ...(theirs
      ? {
          'Ironic 21.4 s': seconds(theirs, phase),
          'Metalplane / Ironic': seconds(ours.timings, phase) / seconds(theirs, phase),
        }
      : {}),
  })),
);
printTable(
  'CPU seconds per process over the Metalplane run (creation, four phases, deletion)',
  Object.entries(ours.cpu).map(([process, cpu]) => ({ process, 'CPU s': cpu })),
);
process.stdout.write('Goal (issue 7): Metalplane at most 0.5× Ironic in each phase.\n');
