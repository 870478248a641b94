/**
 * Power-state sweeps over Redfish and IPMI, one table (printed, never asserted):
 *  (a) the agent's Redfish power-sync probe (agent/drivers/redfish/: sessions, one request
 *      at a time per BMC, 20 ms apart) over all sushy-tools systems; its first sweep (which
 *      logs in to each BMC) is its own row, the rows after it are the baseline of `vs (a)`.
 *      Systems are listed interleaved across the BMCs, as random UUIDs would be;
 *  (b) `curl` in a loop, one GET per system (a new TCP connection and Basic auth each),
 *      sequential and 8 at a time;
 *  (c) the agent's IPMI power-sync probe as `ipmiModule.create` builds it, native RMCP+
 *      (`power_sync.native: true`, the default; ipmitool only for BMCs it cannot talk to);
 *  (d) the same probe with `power_sync.native: false`: one `ipmitool power status` per read;
 *  then (e) the power toggle of one Redfish node through the driver's `power.set` action.
 * (a), (c) and (d) run 32 reads at a time (the agent's power_sync.concurrency defaults to
 * 16), under the agent's own one-conversation-per-BMC rule.
 *
 * Per row: time per sweep (p50 and range over BENCH_ROUNDS sweeps), systems/s at the
 * p50, calls per system (the mean over the sweeps) and speed relative to (a) (its p50 over
 * the row's p50: above 1× is faster). What a "call" is depends on the protocol, and is
 * named in the row: HTTP requests for (a) (the client's onExchange), processes for curl
 * and ipmitool (Node's `child_process` diagnostics channel, so counted, not assumed), and
 * UDP datagrams the agent sent for native IPMI (the `udp.socket` channel: each socket the
 * agent opens has its `send` counted). A native read is one RMCP+ session, normally 6
 * datagrams: Get Channel Auth Capabilities, Open Session, RAKP 1, RAKP 3, Get Chassis
 * Status, Close Session; resends would show above 6. What one ipmitool process exchanges
 * with its BMC (its own session, as a native read opens) is not counted.
 *
 * The peers differ in shape, as real ones do: sushy-emulator is serial (GIL + sqlite), so
 * Redfish BMCs are BENCH_BMCS processes × BENCH_SYSTEMS/BENCH_BMCS systems (a request
 * queue per BMC), while every IPMI system has its own `ipmi_sim` (test/support/bmc.ts, the
 * lab's recipe; one C process and one UDP port each). `npm run bench -- power-sync` has
 * more IPMI figures (CPU, silent BMCs). Every emulator and ipmi_sim started here is
 * stopped by its PID at the end, also on error or Ctrl-C. Reads that failed are listed
 * under the table with their error; the host's CPU count and load average are printed too,
 * since every row is CPU-bound on a small host (curl and ipmitool most: a process per read).
 *
 *   npm run bench -- redfish                 # 200 systems: 4 emulated Redfish BMCs, 200 IPMI BMCs
 *   BENCH_SYSTEMS=40 BENCH_BMCS=2 BENCH_ROUNDS=5 npm run bench -- redfish
 */
import { type ChildProcess, execFile } from 'node:child_process';
import type { Socket } from 'node:dgram';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { rmSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { promisify } from 'node:util';
import { ipmiModule } from '../agent/drivers/ipmi/index.ts';
import { NativePowerProbe, sweepPowerStates } from '../agent/drivers/ipmi/power-probe.ts';
import { setPower } from '../agent/drivers/power-interface.ts';
import { RedfishClient, redfishPowerControl, redfishPowerProbe } from '../agent/drivers/redfish/index.ts';
import type { PowerProbe, ProbeNode } from '../agent/drivers/types.ts';
import { silentLogger } from '../agent/log.ts';
import { type SimulatedBmc, startBmc } from '../test/support/bmc.ts';
import { type SushyEmulator, startSushy } from '../test/support/sushy.ts';
import { printTable, summarize } from './support.ts';

const run = promisify(execFile);
const SYSTEMS = Number(process.env.BENCH_SYSTEMS ?? 200);
const BMCS = Number(process.env.BENCH_BMCS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 32;
const PROBE_TIMEOUT_MS = 60_000;

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

// Counters: processes started by name, and UDP datagrams sent by the sockets of this process.
const spawned = new Map<string, number>();
const spawnedOf = (file: string) => spawned.get(file) ?? 0;
const onChild = (message: unknown) => {
  const child = (message as { process: ChildProcess }).process;
  child.once('spawn', () => spawned.set(child.spawnfile, spawnedOf(child.spawnfile) + 1));
};
let datagrams = 0;
const onUdpSocket = (message: unknown) => {
  const socket = (message as { socket: Socket }).socket;
  const send = socket.send;
  // Node calls send() again for datagrams queued before the socket was bound: count each once.
  const counted = new WeakSet<object>();
  socket.send = ((...args: unknown[]) => {
    const datagram: unknown = Array.isArray(args[0]) ? args[0][0] : args[0];
    if (typeof datagram !== 'object' || datagram === null) datagrams++;
    else if (!counted.has(datagram)) {
      counted.add(datagram);
      datagrams++;
    }
    return Reflect.apply(send, socket, args);
  }) as Socket['send'];
};
subscribe('child_process', onChild);
subscribe('udp.socket', onUdpSocket);

const emulators: SushyEmulator[] = [];
const ipmiBmcs: SimulatedBmc[] = [];
const onSignal = () => {
  for (const pid of [...emulators, ...ipmiBmcs].map((peer) => peer.pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  for (const peer of [...emulators, ...ipmiBmcs]) rmSync(peer.dir, { recursive: true, force: true });
  process.exit(130);
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

interface Row {
  readonly run: string;
  readonly counted: string;
  readonly systems: number;
  readonly ms: number[];
  readonly ok: number[];
  readonly calls: number[];
  /** Why reads failed (probe rows): message → how many times. */
  readonly failures: Map<string, number>;
}

/** `rounds` sweeps of `sweep` (which returns how many systems answered), counted by `count`. */
async function measure(
  label: string,
  counted: string,
  systems: number,
  rounds: number,
  count: () => number,
  sweep: (row: Row) => Promise<number>,
): Promise<Row> {
  const row: Row = { run: label, counted, systems, ms: [], ok: [], calls: [], failures: new Map() };
  for (let round = 0; round < rounds; round++) {
    const before = count();
    const started = performance.now();
    row.ok.push(await sweep(row));
    row.ms.push(performance.now() - started);
    row.calls.push(count() - before);
  }
  return row;
}

/** One sweep of a power-sync probe: how many nodes it read (a failed read is not fatal). */
async function probeSweep(nodes: readonly ProbeNode[], probe: PowerProbe, row: Row): Promise<number> {
  const states = await pool(nodes, CONCURRENCY, (node) =>
    probe(node, AbortSignal.timeout(PROBE_TIMEOUT_MS)).catch((error: unknown) => {
      const why = (error instanceof Error ? error.message : String(error)).slice(0, 200);
      row.failures.set(why, (row.failures.get(why) ?? 0) + 1);
      return undefined;
    }),
  );
  return states.filter((s) => s === 'power on' || s === 'power off').length;
}

/** An ipmi_sim BMC as a node's driver_info (the lab's credentials). */
const ipmiInfo = (port: number) => ({
  ipmi_address: '127.0.0.1',
  ipmi_port: port,
  ipmi_username: 'admin',
  ipmi_password: 'password',
  ipmi_cipher_suite: 3, // as power-sync.ts: ipmitool without -C 3 waits 10 s per call on ipmi_sim
});

/** `count` ipmi_sim BMCs (8 started at a time), answering a native read before it returns. */
async function startIpmiBmcs(count: number): Promise<void> {
  const failures = await pool(Array.from({ length: count }), 8, () =>
    startBmc().then(
      (bmc) => {
        ipmiBmcs.push(bmc);
        return undefined;
      },
      (error: unknown) => error,
    ),
  );
  const failed = failures.filter((f) => f !== undefined);
  if (failed.length > 0) throw new Error(`${failed.length} ipmi_sim did not start: ${String(failed[0])}`);
  // ipmi_sim binds its port after start-bmc.sh returns: sweep the stragglers until they answer.
  const warm = new NativePowerProbe({ attemptTimeoutMs: 300, retries: 0, fallback: null });
  try {
    let pending = [...ipmiBmcs];
    for (let round = 0; round < 50 && pending.length > 0; round++) {
      const results = await sweepPowerStates(
        pending.map((bmc) => ({ nodeId: String(bmc.port), driverInfo: ipmiInfo(bmc.port) })),
        { probe: warm, concurrency: 32, timeoutMs: 1000 },
      );
      pending = pending.filter((_, i) => !results[i]?.ok);
      if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    if (pending.length > 0) throw new Error(`${pending.length} ipmi_sim BMCs never answered`);
  } finally {
    warm.close();
  }
}

try {
  const per = Math.ceil(SYSTEMS / BMCS);
  const startedAt = performance.now();
  for (let b = 0; b < BMCS; b++)
    emulators.push(await startSushy({ wrapper: true, systems: per, name: `b${b}` }));
  // Interleaved (system i of every BMC, then i + 1...), as random UUIDs are in the agent's
  // node list: listed BMC by BMC, the 32 reads in flight would queue on one BMC at a time.
  const nodes = Array.from({ length: per }, (_, i) =>
    emulators.map((bmc) => ({ bmc, system: bmc.systems[i] as (typeof bmc.systems)[number] })),
  )
    .flat()
    .map(({ bmc, system }) => ({
      uuid: system.uuid,
      power_state: null,
      driver_info: {
        redfish_address: bmc.url,
        redfish_system_id: system.path,
        redfish_username: bmc.username,
        redfish_password: bmc.password,
        redfish_auth_type: 'session',
      },
      url: `${bmc.url}${system.path}`,
      bmc,
    }));
  process.stdout.write(
    `${BMCS} sushy-emulators × ${per} systems up in ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`,
  );
  const ipmiStartedAt = performance.now();
  await startIpmiBmcs(nodes.length);
  process.stdout.write(
    `${ipmiBmcs.length} ipmi_sim BMCs up in ${((performance.now() - ipmiStartedAt) / 1000).toFixed(1)} s\n`,
  );
  // The figures are CPU-bound on a small host: say how busy it was (other work included).
  process.stdout.write(
    `${availableParallelism()} CPUs, load average before the sweeps ${loadavg()[0]?.toFixed(2)} (1 min)\n`,
  );
  const rows: Row[] = [];

  // (a) the agent's Redfish probe: one client, concurrent across BMCs, serial within one.
  let httpCalls = 0;
  const client = new RedfishClient({ onExchange: () => httpCalls++, requestTimeoutMs: 20_000 });
  const redfishProbe = redfishPowerProbe(client);
  const http = 'HTTP requests';
  rows.push(
    await measure(
      '(a) Redfish agent probe, 1st sweep (logs in)',
      http,
      nodes.length,
      1,
      () => httpCalls,
      (row) => probeSweep(nodes, redfishProbe, row),
    ),
  );
  const a = await measure(
    '(a) Redfish agent probe',
    http,
    nodes.length,
    ROUNDS,
    () => httpCalls,
    (row) => probeSweep(nodes, redfishProbe, row),
  );
  rows.push(a);

  // (b) curl, one process and one GET per system.
  const curl = async (node: (typeof nodes)[number]) => {
    const { stdout } = await run('curl', [
      '-s',
      '-u',
      `${node.bmc.username}:${node.bmc.password}`,
      '--max-time',
      '20',
      node.url,
    ]).catch(() => ({ stdout: '' }));
    return /"PowerState"/.test(stdout);
  };
  for (const parallel of [1, 8]) {
    rows.push(
      await measure(
        `(b) curl, ${parallel} at a time`,
        'curl processes',
        nodes.length,
        ROUNDS,
        () => spawnedOf('curl'),
        async () => (await pool(nodes, parallel, curl)).filter(Boolean).length,
      ),
    );
  }

  // (c), (d) the agent's IPMI probe, as the ipmi hardware module builds it (agent defaults).
  const ipmiNodes: ProbeNode[] = ipmiBmcs.map((bmc) => ({
    uuid: `ipmi-${bmc.port}`,
    power_state: null,
    driver_info: ipmiInfo(bmc.port),
  }));
  for (const native of [true, false]) {
    const driver = ipmiModule.create({
      log: silentLogger,
      ipmi: { commandTimeoutMs: 30_000, minCommandIntervalMs: 100, retries: 2 },
      powerSync: { native, probeTimeoutMs: 5000 },
    });
    const probe = driver.powerProbe as PowerProbe;
    try {
      const fallbacks = spawnedOf('ipmitool');
      const row = native
        ? await measure(
            '(c) IPMI agent probe, native RMCP+',
            'UDP datagrams sent',
            ipmiNodes.length,
            ROUNDS,
            () => datagrams,
            (row) => probeSweep(ipmiNodes, probe, row),
          )
        : await measure(
            '(d) IPMI agent probe, ipmitool',
            'ipmitool processes',
            ipmiNodes.length,
            ROUNDS,
            () => spawnedOf('ipmitool'),
            (row) => probeSweep(ipmiNodes, probe, row),
          );
      const fellBack = spawnedOf('ipmitool') - fallbacks;
      rows.push(
        native && fellBack > 0
          ? { ...row, counted: `${row.counted} (+${fellBack} ipmitool fallbacks)` }
          : row,
      );
    } finally {
      driver.close?.();
    }
  }

  const baseline = summarize(a.ms).p50;
  printTable(
    `power-state sweep of ${nodes.length} systems, p50 of ${ROUNDS} sweeps (Redfish: ${BMCS} sushy-emulators × ` +
      `${per} systems; IPMI: ${ipmiBmcs.length} ipmi_sim, one per system; ${CONCURRENCY} probe reads at a time)`,
    rows.map((row) => {
      const t = summarize(row.ms);
      const calls = row.calls.reduce((sum, n) => sum + n, 0) / (row.calls.length * row.systems);
      return {
        run: row.run,
        ok: `${Math.min(...row.ok)}/${row.systems}`,
        sweeps: row.ms.length,
        'sweep p50 s': (t.p50 / 1000).toFixed(2),
        'min-max s': `${(t.min / 1000).toFixed(2)}-${(t.max / 1000).toFixed(2)}`,
        'systems/s': ((row.systems * 1000) / t.p50).toFixed(1),
        'calls/system': calls.toFixed(2),
        'calls are': row.counted,
        'vs (a)': `${(baseline / t.p50).toFixed(2)}×`,
      };
    }),
  );

  process.stdout.write(`load average after the sweeps ${loadavg()[0]?.toFixed(2)} (1 min)\n`);
  for (const row of rows)
    for (const [why, n] of row.failures) process.stdout.write(`${row.run}: ${n} failed read(s): ${why}\n`);

  // (e) power toggle latency of one node through the driver's power interface.
  const control = redfishPowerControl(client, { pollIntervalMs: 20 });
  const first = nodes[0] as (typeof nodes)[number];
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    await setPower(
      control,
      { node: first.uuid, driverInfo: first.driver_info, signal: AbortSignal.timeout(30_000) },
      i % 2 === 0 ? 'power on' : 'power off',
      30_000,
    );
    samples.push(performance.now() - started);
  }
  const t = summarize(samples);
  printTable('(e) Redfish power toggle (driver power.set, wrapper applies power at once)', [
    {
      toggles: samples.length,
      'p50 ms': t.p50.toFixed(1),
      'p99 ms': t.p99.toFixed(1),
      'max ms': t.max.toFixed(1),
    },
  ]);
  await client.close();
} finally {
  await Promise.all([...emulators, ...ipmiBmcs].map((peer) => peer.stop()));
  unsubscribe('child_process', onChild);
  unsubscribe('udp.socket', onUdpSocket);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}
