/**
 * Command dispatch latency: from the API's 202 to the agent starting the command (the
 * agent's own "command started" log time; same machine, same clock), over the WebSocket
 * and over HTTPS long polling; and the agent's idle RSS and CPU. Figures, not asserts.
 *
 *   npm run bench -- dispatch        (BENCH_COMMANDS=1000, BENCH_NODES=100, BENCH_IDLE_SECONDS=30)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AgentProcess, testConfig, waitFor } from '../agent/testing/agent-process.ts';
import { freePort } from '../local/moto.ts';
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

/** The agent as the package ships it: one ES module bundled by esbuild (scripts/package-agent.ts). */
async function bundleAgent(): Promise<string> {
  const { build } = await import('esbuild');
  const outfile = join(mkdtempSync(join(tmpdir(), 'metalplane-agent-bundle-')), 'agent.mjs');
  await build({
    entryPoints: [join(root, 'agent', 'cli.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    external: ['bufferutil', 'utf-8-validate'],
    banner: {
      js: "import { createRequire as __mpCreateRequire } from 'node:module'; const require = __mpCreateRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}

type Build = 'sources' | 'bundle';

async function measure(transport: 'websocket' | 'polling', build: Build, bundle: string) {
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
    await agent.start(build === 'bundle' ? { entry: bundle } : {});
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

const bundle = await bundleAgent();
const results = [];
for (const transport of ['websocket', 'polling'] as const) {
  for (const build of ['sources', 'bundle'] as const) results.push(await measure(transport, build, bundle));
}
rmSync(dirname(bundle), { recursive: true, force: true });
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
process.stdout.write('Goal (issue 4): p50 ≤ 20 ms and p99 ≤ 100 ms over the WebSocket on the local stack.\n');
process.stdout.write(
  "Goal (issue 18): agent idle RSS ≤ 60 MiB. Node 24 alone is ≈ 43 MiB of VmRSS, most of it the binary's\n" +
    'file-backed pages (shared, reclaimable): the anonymous column is what the agent itself holds.\n',
);
