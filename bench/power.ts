/**
 * Power action latency, Metalplane beside Ironic in the same run: `../shared/anchor/
 * power_latency.py` toggles one fake-hardware node N times and measures from the PUT
 * (202) until `GET .../states` shows the target with no action in flight.
 *
 * Metalplane: the local stack (`npm start`: moto, the api and agents handlers behind the
 * local gateways, the conductor tick, a real agent for site `local` over the WebSocket).
 * Ironic: the anchor of ../shared/anchor (21.4, one process, fake-hardware).
 *
 *   npm run bench -- power          (BENCH_TOGGLES=200)
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { anchorDir, ironicUnavailable, startIronicAnchor } from './ironic-anchor.ts';
import { startBenchStack } from './local-stack.ts';
import { printTable } from './support.ts';

const TOGGLES = Number(process.env.BENCH_TOGGLES ?? 200);

interface Latency {
  n: number;
  p50_ms: number;
  p90_ms: number;
  max_ms: number;
}

function powerLatency(url: string, node: string, auth?: string): Latency {
  const out = execFileSync(
    'python3',
    [join(anchorDir, 'power_latency.py'), url, node, String(TOGGLES), ...(auth ? [auth] : [])],
    { encoding: 'utf8', timeout: 600_000 },
  );
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Latency;
}

async function createNode(url: string, headers: Record<string, string>, body: unknown): Promise<string> {
  const response = await fetch(`${url}/v1/nodes`, { method: 'POST', headers, body: JSON.stringify(body) });
  const created = (await response.json()) as { uuid?: string };
  if (response.status !== 201 || !created.uuid) throw new Error(`node not created: ${response.status}`);
  return created.uuid;
}

async function metalplane(): Promise<Latency> {
  const stack = await startBenchStack();
  try {
    const node = await createNode(stack.url, stack.headers, {
      driver: 'fake-hardware',
      conductor_group: 'local',
    });
    powerLatency(stack.url, node, `admin:${stack.password}`); // warm-up: first loads, connections
    return powerLatency(stack.url, node, `admin:${stack.password}`);
  } finally {
    await stack.stop();
  }
}

async function ironic(): Promise<Latency | undefined> {
  const unavailable = ironicUnavailable();
  if (unavailable) {
    process.stdout.write(`Ironic anchor not available: ${unavailable}\n`);
    return undefined;
  }
  const anchor = await startIronicAnchor();
  try {
    const headers = { 'X-OpenStack-Ironic-API-Version': '1.78', 'Content-Type': 'application/json' };
    const node = await createNode(anchor.url, headers, { driver: 'fake-hardware' });
    powerLatency(anchor.url, node);
    return powerLatency(anchor.url, node);
  } finally {
    await anchor.stop();
  }
}

const ours = await metalplane();
const theirs = await ironic();
printTable(`power toggle until states show it (fake-hardware, ${TOGGLES} toggles, after a warm-up round)`, [
  { system: 'Metalplane (local stack)', p50_ms: ours.p50_ms, p90_ms: ours.p90_ms, max_ms: ours.max_ms },
  ...(theirs
    ? [
        {
          system: 'Ironic 21.4 (anchor)',
          p50_ms: theirs.p50_ms,
          p90_ms: theirs.p90_ms,
          max_ms: theirs.max_ms,
        },
      ]
    : []),
]);
if (theirs) {
  process.stdout.write(
    `p50 ratio Ironic/Metalplane: ${(theirs.p50_ms / ours.p50_ms).toFixed(2)}× (goal: Metalplane p50 ≤ 20 ms)\n`,
  );
}
