/**
 * Command dispatch latency: from the API's 202 to the agent starting the command (the
 * agent's own "command started" log time; same machine, same clock), over the WebSocket
 * and over HTTPS long polling; and the agent's idle RSS and CPU, from the sources, as the
 * package's bundle, and as shipped (the package's launcher: bundle + runtime settings),
 * beside bare Node.js measured in the same run. Figures, not asserts.
 *
 *   npm run bench -- dispatch        (BENCH_COMMANDS=1000, BENCH_NODES=100, BENCH_IDLE_SECONDS=30)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, testConfig, waitFor } from '../agent/testing/agent-process.ts';
import { freePort } from '../local/moto.ts';
import { stageAgentRuntime } from '../scripts/package-agent.ts';
import { printTable, summarize } from './support.ts';

const COMMANDS = Number(process.env.BENCH_COMMANDS ?? 1000);
const NODES = Number(process.env.BENCH_NODES ?? 100);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const root = join(import.meta.dirname, '..');

async function startStack() {
  const [api, ws, moto, status] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      'local/start.ts',
      '--api-port',
      String(api),
      '--ws-port',
      String(ws),
      '--moto-port',
      String(moto),
      '--agent-status-port',
      String(status),
      '--no-agent',
    ],
    { cwd: root, stdio: 'ignore', env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'WARN' } },
  );
  const url = `http://127.0.0.1:${api}`;
  await waitFor(async () => (await fetch(`${url}/v1`).catch(() => undefined))?.ok, 'the local stack', 60_000);
  const password = readFileSync(join(root, '.local', 'admin-password'), 'utf8').trim();
  const headers = {
    Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
    'X-OpenStack-Ironic-API-Version': '1.82',
    'Content-Type': 'application/json',
  };
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers,
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return {
      status: response.status,
      body: (await response.json().catch(() => ({}))) as Record<string, string>,
    };
  };
  return {
    url,
    wsUrl: `ws://127.0.0.1:${ws}/local`,
    call,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGINT');
      }),
  };
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

/** A line of /proc/PID/status in MiB: VmRSS (all resident), RssAnon (the process's own: heap, code). */
function statusMiB(pid: number, field: 'VmRSS' | 'RssAnon'): number {
  const line =
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`)) ?? '';
  return Number(line.replace(/\D+/g, '')) / 1024;
}

/**
 * How the agent runs: `sources` (`node agent/cli.ts`, type stripping), `bundle` (`node
 * agent.mjs`, the package's bundle with no runtime flags) and `shipped` (the package's
 * /usr/bin/metalplane-agent launching its Node.js on that bundle with the package's memory
 * settings: what a site runs; staged by scripts/package-agent.ts, Node.js linked).
 */
type Build = 'sources' | 'bundle' | 'shipped';
const BUILDS: readonly Build[] = ['sources', 'bundle', 'shipped'];

interface Staged {
  readonly bundle: string;
  readonly launcher: string;
}

async function measure(transport: 'websocket' | 'polling', build: Build, staged: Staged) {
  const stack = await startStack();
  const agent = new AgentProcess();
  try {
    const site = `bench-${transport}`;
    await stack.call('POST', '/v1/sites', { name: site });
    const nodes: string[] = [];
    for (let i = 0; i < NODES; i++)
      nodes.push(
        (await stack.call('POST', '/v1/nodes', { driver: 'fake-hardware', conductor_group: site })).body
          .uuid as string,
      );
    const token = (await stack.call('POST', `/v1/sites/${site}/agents`)).body.token as string;
    const enrolled = await stack.call('POST', '/v1/agents/enroll', {
      token,
      hostname: 'test-agent',
      drivers: ['fake-hardware'],
    });
    agent.writeConfig(
      testConfig({ url: stack.url, websocketUrl: stack.wsUrl, transport }).replace(
        'log_level: debug',
        'log_level: info',
      ),
    );
    await agent.writeCredential(enrolled.body.credential as string);
    await agent.start(
      build === 'bundle'
        ? { entry: staged.bundle }
        : build === 'shipped'
          ? { launcher: staged.launcher }
          : {},
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const accepted = new Map<string, number>();
    for (let i = 0; i < COMMANDS; i++) {
      const node = nodes[i % NODES] as string;
      const created = await stack.call('POST', `/v1/nodes/${node}/commands`, { action: 'noop', args: {} });
      accepted.set(created.body.id as string, Date.now());
    }
    const startedAt = await waitFor(
      () => {
        const lines = agent.lines('command started');
        return lines.length >= COMMANDS ? lines : undefined;
      },
      'every command to start',
      300_000,
    );
    const latencies = startedAt
      .map((line) => Date.parse(String(line.time)) - (accepted.get(String(line.command_id)) ?? Number.NaN))
      .filter(Number.isFinite);
    // Idle: after the work, nothing queued, heartbeats only.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const [ticks0, t0] = [cpuTicks(agent.pid), Date.now()];
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    const cpuPercent = ((cpuTicks(agent.pid) - ticks0) / 100 / ((Date.now() - t0) / 1000)) * 100;
    return {
      transport,
      build,
      latency: summarize(latencies),
      rss: statusMiB(agent.pid, 'VmRSS'),
      anon: statusMiB(agent.pid, 'RssAnon'),
      cpuPercent,
    };
  } finally {
    await agent.cleanup();
    await stack.stop();
  }
}

const stage = mkdtempSync(join(tmpdir(), 'metalplane-agent-stage-'));
const launcher = await stageAgentRuntime(stage, { linkNode: true });
const staged: Staged = { launcher, bundle: join(stage, 'usr', 'lib', 'metalplane-agent', 'agent.mjs') };
// The baseline, in this run: Node.js doing nothing (a timer), idle as long as the agents.
const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
const results = [];
let baseline = { rss: Number.NaN, anon: Number.NaN };
try {
  for (const transport of ['websocket', 'polling'] as const) {
    for (const build of BUILDS) results.push(await measure(transport, build, staged));
  }
  baseline = { rss: statusMiB(bare.pid as number, 'VmRSS'), anon: statusMiB(bare.pid as number, 'RssAnon') };
} finally {
  bare.kill();
  rmSync(stage, { recursive: true, force: true });
}
printTable(
  `Dispatch: API 202 → agent starts the command (${COMMANDS} noop commands over ${NODES} nodes, issued one after another); agent idle over ${IDLE_SECONDS} s`,
  results.map(({ transport, build, latency, rss, anon, cpuPercent }) => ({
    transport,
    agent: build,
    commands: latency.n,
    'p50 ms': latency.p50,
    'p99 ms': latency.p99,
    'max ms': latency.max,
    'agent idle RSS MiB': rss,
    'of which anonymous MiB': anon,
    'agent idle CPU %': cpuPercent,
  })),
);
printTable('Baseline, same run: `node -e "setInterval(() => {}, 1000)"` after the agents ran', [
  { process: 'bare Node.js 24', 'RSS MiB': baseline.rss, 'of which anonymous MiB': baseline.anon },
]);
process.stdout.write('Goal (issue 4): p50 ≤ 20 ms and p99 ≤ 100 ms over the WebSocket on the local stack.\n');
process.stdout.write(
  "Goal (issue 18): agent idle RSS ≤ 60 MiB, for the agent as shipped. Most of bare Node.js's RSS is the binary's\n" +
    'file-backed pages (shared, reclaimable): the anonymous column is what the agent itself holds.\n',
);
