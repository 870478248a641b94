/**
 * Power-state sync sweep over simulated BMCs (printed, never asserted):
 *  (a) plain `ipmitool -I lanplus -C 3 power status`, 8 at a time (Ironic's default workers);
 *  (b) the native RMCP+ sweep (agent/drivers/ipmi/power-probe.ts) at a few concurrencies;
 *  (c) the native sweep with 5% of the ports silent (no BMC behind them).
 * Wall time, BMCs/s, and CPU: the agent process's own (process.cpuUsage) and, for (a), the
 * ipmitool children's (reaped children's times from /proc/self/stat).
 *
 *   npm run bench -- power-sync            # 200 BMCs
 *   BENCH_BMCS=20 npm run bench -- power-sync
 *
 * Every ipmi_sim started here is stopped by PID at the end, also on error or Ctrl-C.
 */
import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IpmiTarget } from '../agent/drivers/ipmi/ipmitool.ts';
import {
  NativePowerProbe,
  type SweepResult,
  type SweepTarget,
  sweepPowerStates,
} from '../agent/drivers/ipmi/power-probe.ts';
import { printTable, summarize } from './support.ts';

const run = promisify(execFile);
const BMCS = Number(process.env.BENCH_BMCS ?? 200);
const SILENT = Math.max(1, Math.round(BMCS * 0.05));
const IPMITOOL_WORKERS = 8;
const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? '32,64').split(',').map(Number);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 2000);
const START_PARALLEL = 8;
const labBmc = join(import.meta.dirname, '..', '..', 'shared', 'lab', 'bmc', 'start-bmc.sh');

const root = mkdtempSync(join(tmpdir(), 'metalplane-bench-bmc-'));
const pids: number[] = [];

function stopAll(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}

async function waitGone(deadlineMs: number): Promise<void> {
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const until = Date.now() + deadlineMs;
  while (Date.now() < until && pids.some(alive)) await new Promise((resolve) => setTimeout(resolve, 50));
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
}

const onSignal = () => {
  stopAll();
  rmSync(root, { recursive: true, force: true });
  process.exit(130);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

/** A UDP port nobody holds on 127.0.0.1 right now (bind-and-release). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', resolve);
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

/** Runs fn over items with at most `limit` in flight; results in input order. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const target = (port: number): IpmiTarget => ({
  ipmi_address: '127.0.0.1',
  ipmi_port: port,
  ipmi_username: 'admin',
  ipmi_password: 'password',
  ipmi_cipher_suite: 3,
});

async function startBmcs(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let i = 0; ports.size < count && i < count * 10; i++) ports.add(await freeUdpPort());
  return pool([...ports], START_PARALLEL, async (port) => {
    const { stdout } = await run('sh', [labBmc, join(root, String(port)), String(port)], { timeout: 20_000 });
    const pid = Number(stdout.trim().split('\n').at(-1));
    if (!Number.isInteger(pid)) throw new Error(`ipmi_sim did not start on ${port}: ${stdout}`);
    pids.push(pid);
    return port;
  });
}

/** Clock ticks of reaped children (utime+stime of waited-for ipmitool processes), in ms. */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of stat(5) (cutime, cstime) are at 13 and 14 after "pid (comm) ".
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // USER_HZ = 100 on Linux
}

function ownCpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

interface Figures {
  readonly run: string;
  readonly bmcs: number;
  readonly ok: number;
  readonly wallMs: number;
  readonly perSecond: number;
  readonly agentCpuMs: number;
  readonly childCpuMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function ipmitoolPowerStatus(port: number): Promise<{ ok: boolean; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    // Password through the environment (-E), never on the command line.
    const child = spawn(
      'ipmitool',
      [
        '-I',
        'lanplus',
        '-H',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'admin',
        '-E',
        '-C',
        '3',
        '-N',
        '1',
        '-R',
        '1',
        'power',
        'status',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, IPMI_PASSWORD: 'password' } },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ok: code === 0 && /Chassis Power is (on|off)/.test(out), ms: performance.now() - started });
    });
  });
}

async function benchIpmitool(ports: readonly number[]): Promise<Figures> {
  const cpu = process.cpuUsage();
  const children = childrenCpuMs();
  const started = performance.now();
  const results = await pool(ports, IPMITOOL_WORKERS, ipmitoolPowerStatus);
  const wallMs = performance.now() - started;
  const times = summarize(results.map((r) => r.ms));
  return {
    run: `(a) ipmitool × ${IPMITOOL_WORKERS}`,
    bmcs: ports.length,
    ok: results.filter((r) => r.ok).length,
    wallMs,
    perSecond: (ports.length * 1000) / wallMs,
    agentCpuMs: ownCpuMs(cpu),
    childCpuMs: childrenCpuMs() - children,
    p50Ms: times.p50,
    p99Ms: times.p99,
  };
}

async function benchNative(
  label: string,
  targets: SweepTarget[],
  concurrency: number,
): Promise<[Figures, SweepResult[]]> {
  const probe = new NativePowerProbe({ attemptTimeoutMs: 1000, retries: 2, fallback: null });
  try {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const results = await sweepPowerStates(targets, { probe, concurrency, timeoutMs: TIMEOUT_MS });
    const wallMs = performance.now() - started;
    const times = summarize(results.map((r) => r.elapsedMs));
    return [
      {
        run: label,
        bmcs: targets.length,
        ok: results.filter((r) => r.ok).length,
        wallMs,
        perSecond: (targets.length * 1000) / wallMs,
        agentCpuMs: ownCpuMs(cpu),
        childCpuMs: 0,
        p50Ms: times.p50,
        p99Ms: times.p99,
      },
      results,
    ];
  } finally {
    probe.close();
  }
}

try {
  process.stdout.write(`starting ${BMCS} ipmi_sim BMCs (${START_PARALLEL} at a time)…\n`);
  const startedAt = performance.now();
  const ports = await startBmcs(BMCS);
  // Ready when each answers a native read (bounded: 50 sweeps of the stragglers).
  let pending: number[] = [...ports];
  const warm = new NativePowerProbe({ attemptTimeoutMs: 300, retries: 0, fallback: null });
  for (let round = 0; round < 50 && pending.length > 0; round++) {
    const results = await sweepPowerStates(
      pending.map((port) => ({ nodeId: String(port), driverInfo: target(port) })),
      { probe: warm, concurrency: 32, timeoutMs: 1000 },
    );
    pending = pending.filter((_, i) => !results[i]?.ok);
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  warm.close();
  if (pending.length > 0) throw new Error(`${pending.length} BMCs never answered`);
  process.stdout.write(`ready in ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`);

  const nodes = ports.map((port) => ({ nodeId: `node-${port}`, driverInfo: target(port) }));
  const rows: Figures[] = [];
  const a = await benchIpmitool(ports);
  rows.push(a);
  const byConcurrency = new Map<number, Figures>();
  for (const concurrency of CONCURRENCIES) {
    const [b] = await benchNative(`(b) native × ${concurrency}`, nodes, concurrency);
    rows.push(b);
    byConcurrency.set(concurrency, b);
  }
  // (c) 5% of the BMCs replaced by ports with nobody behind them, spread over the list.
  const silentPorts = await Promise.all(Array.from({ length: SILENT }, freeUdpPort));
  const step = Math.floor(nodes.length / SILENT);
  const withSilent = nodes.map((node, i) =>
    i % step === 0 && i / step < SILENT
      ? { nodeId: `silent-${i}`, driverInfo: target(silentPorts[i / step] as number) }
      : node,
  );
  const cRows: Array<[number, Figures, SweepResult[]]> = [];
  for (const concurrency of CONCURRENCIES) {
    const [c, results] = await benchNative(
      `(c) native × ${concurrency}, ${SILENT} silent`,
      withSilent,
      concurrency,
    );
    rows.push(c);
    cRows.push([concurrency, c, results]);
  }

  printTable(
    `power-state sweep over ${BMCS} ipmi_sim BMCs (2 shared cores; the BMCs' own CPU is not counted)`,
    rows.map((r) => ({
      run: r.run,
      ok: `${r.ok}/${r.bmcs}`,
      'wall ms': Math.round(r.wallMs),
      'BMCs/s': Number(r.perSecond.toFixed(1)),
      'vs (a)': `${(r.perSecond / a.perSecond).toFixed(2)}×`,
      'agent CPU ms': Math.round(r.agentCpuMs),
      'ipmitool CPU ms': Math.round(r.childCpuMs),
      'CPU ms/BMC': Number(((r.agentCpuMs + r.childCpuMs) / r.bmcs).toFixed(2)),
      'p50 ms': Math.round(r.p50Ms),
      'p99 ms': Math.round(r.p99Ms),
    })),
  );
  printTable(
    `silent BMCs: (c) − (b) against one timeout (${TIMEOUT_MS} ms)`,
    cRows.map(([concurrency, c, results]) => {
      const b = byConcurrency.get(concurrency) as Figures;
      const kinds = results.filter((r) => !r.ok).map((r) => (r.ok ? '' : r.kind));
      return {
        concurrency,
        '(b) wall ms': Math.round(b.wallMs),
        '(c) wall ms': Math.round(c.wallMs),
        'added ms': Math.round(c.wallMs - b.wallMs),
        'added / timeout': Number(((c.wallMs - b.wallMs) / TIMEOUT_MS).toFixed(2)),
        failures: `${kinds.length} (${[...new Set(kinds)].join(', ')})`,
      };
    }),
  );
} finally {
  stopAll();
  await waitGone(5000);
  rmSync(root, { recursive: true, force: true });
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}
