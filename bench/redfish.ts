/**
 * Redfish power-state sweeps over sushy-tools emulated systems (printed, never asserted):
 *  (a) the agent's power-sync probe (agent/drivers/redfish/: sessions, one request at a
 *      time per BMC), over all systems, several BMCs at once;
 *  (b) `curl` in a loop, one GET per system (a new TCP connection and Basic auth each),
 *      sequential and 8 at a time;
 *  (c) the power toggle of one node through the driver's `power.set` action.
 * Time per sweep, systems/s and HTTP calls per system. The IPMI sweep of the same size is
 * `npm run bench -- power-sync`. The emulator is serial (GIL + sqlite), so BMCs are
 * emulated as several processes: BENCH_BMCS processes × BENCH_SYSTEMS/BENCH_BMCS systems.
 *
 *   npm run bench -- redfish                 # 200 systems on 4 emulated BMCs
 *   BENCH_SYSTEMS=40 BENCH_BMCS=2 npm run bench -- redfish
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setPower } from '../agent/drivers/power-interface.ts';
import { RedfishClient, redfishPowerControl, redfishPowerProbe } from '../agent/drivers/redfish/index.ts';
import { type SushyEmulator, startSushy } from '../test/support/sushy.ts';
import { printTable, summarize } from './support.ts';

const run = promisify(execFile);
const SYSTEMS = Number(process.env.BENCH_SYSTEMS ?? 200);
const BMCS = Number(process.env.BENCH_BMCS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

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

const emulators: SushyEmulator[] = [];
try {
  const per = Math.ceil(SYSTEMS / BMCS);
  for (let b = 0; b < BMCS; b++)
    emulators.push(await startSushy({ wrapper: true, systems: per, name: `b${b}` }));
  const nodes = emulators.flatMap((bmc) =>
    bmc.systems.map((system) => ({
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
    })),
  );
  const rows: Array<Record<string, string | number>> = [];

  // (a) the agent's probe: one client, concurrent across BMCs, serial within one.
  let calls = 0;
  const client = new RedfishClient({ onExchange: () => calls++, requestTimeoutMs: 20_000 });
  const probe = redfishPowerProbe(client);
  for (let round = 0; round < ROUNDS; round++) {
    calls = 0;
    const started = performance.now();
    const states = await pool(nodes, 32, (node) => probe(node, AbortSignal.timeout(60_000)));
    const wallMs = performance.now() - started;
    rows.push({
      run: `(a) agent probe, round ${round + 1}${round === 0 ? ' (sessions opened)' : ''}`,
      systems: nodes.length,
      ok: states.filter((s) => s === 'power on' || s === 'power off').length,
      'sweep s': (wallMs / 1000).toFixed(2),
      'systems/s': ((nodes.length * 1000) / wallMs).toFixed(1),
      'calls/system': (calls / nodes.length).toFixed(2),
    });
  }

  // (b) curl, one process and one GET per system.
  const curl = async (node: (typeof nodes)[number]) => {
    const { stdout } = await run('curl', [
      '-s',
      '-u',
      `${node.bmc.username}:${node.bmc.password}`,
      '--max-time',
      '20',
      node.url,
    ]);
    return /"PowerState"/.test(stdout);
  };
  for (const parallel of [1, 8]) {
    const started = performance.now();
    const ok = await pool(nodes, parallel, curl);
    const wallMs = performance.now() - started;
    rows.push({
      run: `(b) curl, ${parallel} at a time`,
      systems: nodes.length,
      ok: ok.filter(Boolean).length,
      'sweep s': (wallMs / 1000).toFixed(2),
      'systems/s': ((nodes.length * 1000) / wallMs).toFixed(1),
      'calls/system': '1.00',
    });
  }
  printTable(`Redfish power-state sweep: ${nodes.length} systems on ${BMCS} emulated BMCs`, rows);

  // (c) power toggle latency of one node through the driver's power interface.
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
  printTable('Redfish power toggle (driver power.set, wrapper applies power at once)', [
    {
      toggles: samples.length,
      'p50 ms': t.p50.toFixed(1),
      'p99 ms': t.p99.toFixed(1),
      'max ms': t.max.toFixed(1),
    },
  ]);
  await client.close();
} finally {
  await Promise.all(emulators.map((bmc) => bmc.stop()));
}
