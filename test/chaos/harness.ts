/**
 * One chaos run: the real control plane (test/chaos/stack.ts, on moto through the AWS
 * fault proxy) and the real agent process (through the WebSocket chaos proxy), driven by
 * raw `sleep` commands and power changes on fake-hardware nodes while, at seeded points,
 * the agent is SIGKILLed (and restarted with its clock skewed ±5 min for some lives), the
 * WebSocket gateway and the API restart, a control-plane write fails between two writes of
 * a command's life, and frames are dropped, duplicated and connections cut.
 *
 * Then it checks, from the store and from the agent's own log (its `command started`
 * lines are the witness of execution): every command ended (succeeded, failed, or expired
 * with an error), none started twice, each node's commands started in the order they were
 * accepted, no node left locked. See docs/chaos.md.
 */
import {
  AgentProcess,
  clockSkewEnv,
  type LogLine,
  testConfig,
  waitFor,
} from '../../agent/testing/agent-process.ts';
import { createAgentRuntime } from '../../lambda/agents/channel.ts';
import { tick } from '../../lambda/conductor/tick.ts';
import type { CommandRecord } from '../../lambda/domain/commands/command.ts';
import type { AwsFaultProxy } from './aws-fault-proxy.ts';
import { between, seeded } from './random.ts';
import { startChaosStack } from './stack.ts';
import { WebSocketChaosProxy } from './ws-proxy.ts';

export interface ChaosOptions {
  readonly seed: number;
  /** Shared by the runs of a process: the AWS SDK clients keep the first endpoint they see. */
  readonly proxy: AwsFaultProxy;
  readonly nodes?: number;
  readonly commands?: number;
  /** How long every command may take to reach a final state once all are issued. */
  readonly settleTimeoutMs?: number;
  /** Describe the commands that did not succeed even when the run passes. */
  readonly verbose?: boolean;
}

export interface RunReport {
  readonly seed: number;
  readonly passed: boolean;
  readonly commands: number;
  readonly faults: Record<string, number>;
  readonly ended: { succeeded: number; failed: number; expired: number; open: number };
  /** Worst command's time from accepted to final (control-plane clock), ms. */
  readonly worstSettleMs: number;
  readonly durationMs: number;
  readonly problems: string[];
  /** On failure: the open commands, their agent log lines, the agent's log tail. */
  readonly detail: string;
}

const TERMINAL = new Set(['succeeded', 'failed', 'expired']);
/** Raw commands' deadline: long enough for kills and redeliveries, short enough to expire in a run. */
const RAW_DEADLINE_SECONDS = 40;
/** Power changes' BMC timeout (their command's deadline is this + 60 s). */
const POWER_TIMEOUT_SECONDS = 5;
const SKEW_MS = 5 * 60 * 1000;
/** The conductor's recheck of a finished command it failed to act on (command-queue.ts RECHECK_SECONDS) + 1 s. */
const RECHECK_FAST_FORWARD_MS = 121_000;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function runChaos(options: ChaosOptions): Promise<RunReport> {
  const began = Date.now();
  const random = seeded(options.seed);
  const nodeCount = options.nodes ?? 8;
  const total = options.commands ?? 120;
  const proxy = options.proxy;
  proxy.disarm();
  proxy.resetCounts();
  const faults: Record<string, number> = {};
  const count = (kind: string, n = 1) => {
    faults[kind] = (faults[kind] ?? 0) + n;
  };
  const stack = await startChaosStack({
    awsEndpoint: proxy.endpoint,
    prefix: `chaos-${options.seed.toString(36)}-${Date.now().toString(36)}`,
    visibilityTimeoutSeconds: 2,
  });
  proxy.commandsTable = process.env.METALPLANE_COMMANDS_TABLE ?? '';
  const ws = await new WebSocketChaosProxy(stack.webSocketUrl, random).start();
  const agent = new AgentProcess();
  const agentLines: LogLine[] = [];
  let ticker: NodeJS.Timeout | undefined;
  const background: Promise<unknown>[] = [];
  try {
    const site = 'chaos';
    must(await stack.call('POST', '/v1/sites', { name: site }), 201, 'site');
    const nodes: string[] = [];
    for (let i = 0; i < nodeCount; i++) {
      const created = must(
        await stack.call('POST', '/v1/nodes', { driver: 'fake-hardware', conductor_group: site }),
        201,
        'node',
      );
      nodes.push(created.body.uuid as string);
    }
    const token = must(await stack.call('POST', `/v1/sites/${site}/agents`), 201, 'token').body.token;
    const enrolled = await fetch(`${stack.apiUrl}/v1/agents/enroll`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.82' },
      body: JSON.stringify({ token, hostname: 'chaos-agent', drivers: ['fake-hardware'] }),
    });
    if (enrolled.status !== 201) throw new Error(`agent not enrolled: ${enrolled.status}`);
    const { credential } = (await enrolled.json()) as { credential: string };
    agent.writeConfig(
      // A lost frame (2 % here) is recovered by the agent's periodic pull: often, in a run.
      testConfig({
        url: stack.apiUrl,
        websocketUrl: ws.url,
        extra: 'pull_interval: 2s\nidle_pull_interval: 2s',
      }),
    );
    await agent.writeCredential(credential);
    ws.faults = { drop: 0.02, duplicate: 0.02 };

    let skew = 0;
    const startAgent = async (offsetMs: number) => {
      skew = offsetMs;
      await agent.start({ env: clockSkewEnv(offsetMs) });
    };
    const harvest = () => {
      agentLines.push(...agent.logs);
    };
    await startAgent(0);

    // The schedule, all from the seed: where each fault strikes in the stream of commands.
    const at = (from: number, to: number) =>
      between(random, Math.floor(total * from), Math.floor(total * to));
    const events = new Map<number, string[]>();
    const plan = (index: number, event: string) => events.set(index, [...(events.get(index) ?? []), event]);
    for (let i = between(random, 12, 20); i < total - 5; i += between(random, 12, 24)) plan(i, 'kill');
    plan(at(0.3, 0.45), 'restart-websocket');
    plan(at(0.5, 0.7), 'restart-api');
    plan(at(0.05, 0.3), 'arm record→message');
    plan(at(0.5, 0.8), 'arm record→message');
    plan(at(0.05, 0.25), 'arm result→node');
    plan(at(0.2, 0.6), 'cut');
    plan(at(0.6, 0.9), 'cut');
    const kills = [...events.entries()].filter(([, e]) => e.includes('kill')).map(([i]) => i);
    // Two lives with a skewed clock, each ended by the next kill.
    const skewAt = new Map<number, number>();
    if (kills.length >= 4) {
      skewAt.set(kills[0] as number, random() < 0.5 ? SKEW_MS : -SKEW_MS);
      skewAt.set(kills[2] as number, -(skewAt.get(kills[0] as number) as number));
    }

    const issued = new Map<string, string[]>(nodes.map((node) => [node, []]));
    const powerTarget = new Map<string, string>();
    for (let i = 0; i < total; i++) {
      for (const event of events.get(i) ?? []) {
        if (event === 'kill') {
          // Let some work be in flight, then cut it at a random point.
          await new Promise((resolve) => setTimeout(resolve, between(random, 0, 150)));
          await agent.kill('SIGKILL');
          harvest();
          count('agent SIGKILL');
          const next = skewAt.get(i) ?? 0;
          if (next !== 0) count(next > 0 ? 'agent clock +5m' : 'agent clock -5m');
          await startAgent(next);
        } else if (event === 'restart-websocket') {
          count('ws gateway restart');
          background.push(stack.restartWebSocket(300));
        } else if (event === 'restart-api') {
          count('api restart');
          background.push(stack.restartApi(300));
        } else if (event === 'cut') {
          ws.cut();
        } else if (event.startsWith('arm ')) {
          proxy.arm(event.slice(4) as 'record→message' | 'result→node');
        }
      }
      const node = nodes[Math.floor(random() * nodes.length)] as string;
      const power = random() < 0.3;
      try {
        if (power) {
          const target = powerTarget.get(node) === 'power on' ? 'power off' : 'power on';
          const answer = await stack.call('PUT', `/v1/nodes/${node}/states/power`, {
            target,
            timeout: POWER_TIMEOUT_SECONDS,
          });
          if (answer.status === 202) {
            powerTarget.set(node, target);
            // The API answers no command id: the node's newest power.set not yet known is it.
            const known = issued.get(node) as string[];
            const { commands } = await stack.runtime.commands.ofNode(node, 10);
            const mine = commands.find((c) => c.action === 'power.set' && !known.includes(c.id));
            if (mine) known.push(mine.id);
          } else count(`power answered ${answer.status}`);
        } else {
          const answer = await stack.call('POST', `/v1/nodes/${node}/commands`, {
            action: 'sleep',
            args: { ms: between(random, 20, 120) },
            deadline_seconds: RAW_DEADLINE_SECONDS,
          });
          if (answer.status === 202) issued.get(node)?.push(answer.body.id as string);
          else count(`command answered ${answer.status}`);
        }
      } catch {
        // The API was restarting: no answer (the request may or may not have been served).
        count('request unanswered');
      }
    }
    if (skew !== 0) {
      // The last life ran skewed past its kill point: end it, as every skewed life ends.
      await agent.kill('SIGKILL');
      harvest();
      await startAgent(0);
    }
    await Promise.all(background);

    // Settle: the conductor tick runs as on AWS (faster), until every command is final.
    ticker = setInterval(() => void tick(stack.runtime).catch(() => undefined), 1000);
    const allRecords = async () =>
      (
        await Promise.all(
          nodes.map(async (node) => (await stack.runtime.commands.ofNode(node, 1000)).commands),
        )
      ).flat();
    let records = await allRecords();
    let problems: string[] = [];
    try {
      records = await waitFor(
        async () => {
          const now = await allRecords();
          return now.every((r) => TERMINAL.has(r.status)) ? now : undefined;
        },
        'every command to reach a final state',
        options.settleTimeoutMs ?? 150_000,
      );
    } catch (error) {
      records = await allRecords();
      problems.push((error as Error).message);
    }
    clearInterval(ticker);
    ticker = undefined;
    for (const [kind, n] of proxy.injected) count(kind, n);
    proxy.disarm();
    // A result whose node update failed leaves the node to the tick's recheck, 120 s
    // later: fast-forward the tick's clock past it (counted), rather than wait.
    if (problems.length === 0) {
      const locked = async () =>
        (await Promise.all(nodes.map((n) => stack.deps.nodes.get(n)))).filter(
          (f) => f?.node.reservation || f?.node.task,
        );
      if ((await locked()).length > 0) {
        count('recheck fast-forward');
        const later = createAgentRuntime({
          store: stack.deps.store,
          logger: silent,
          now: () => new Date(Date.now() + RECHECK_FAST_FORWARD_MS),
        });
        await waitFor(
          async () => {
            await tick(later).catch(() => undefined);
            return (await locked()).length === 0;
          },
          'no node left locked',
          20_000,
        ).catch(async () => {
          for (const found of await locked())
            problems.push(
              `node ${found?.node.uuid} left locked: reservation ${found?.node.reservation}, task ${JSON.stringify(found?.node.task)}`,
            );
        });
        records = await allRecords();
      }
    }
    harvest();
    const started = agentLines.filter((l) => l.msg === 'command started').map((l) => String(l.command_id));
    problems = [...problems, ...check(records, started, issued)];
    for (const [name, value] of Object.entries(ws.counts))
      if (name !== 'forwarded' && value > 0) count(`frames ${name}`, value);
    const settle = records
      .filter((r) => TERMINAL.has(r.status))
      .map((r) => Date.parse(r.updated_at ?? r.created_at) - Date.parse(r.created_at));
    const ended = {
      succeeded: records.filter((r) => r.status === 'succeeded').length,
      failed: records.filter((r) => r.status === 'failed').length,
      expired: records.filter((r) => r.status === 'expired').length,
      open: records.filter((r) => !TERMINAL.has(r.status)).length,
    };
    return {
      seed: options.seed,
      passed: problems.length === 0,
      commands: records.length,
      faults,
      ended,
      worstSettleMs: settle.length ? Math.max(...settle) : 0,
      durationMs: Date.now() - began,
      problems,
      detail: problems.length === 0 && !options.verbose ? '' : describe(records, agentLines),
    };
  } finally {
    if (ticker) clearInterval(ticker);
    proxy.disarm();
    await Promise.allSettled(background);
    await agent.cleanup();
    await ws.close();
    await stack.close();
  }
}

/** The run's properties; answers what does not hold. */
export function check(records: CommandRecord[], started: string[], issued: Map<string, string[]>): string[] {
  const problems: string[] = [];
  for (const r of records) {
    if (!TERMINAL.has(r.status))
      problems.push(
        `command ${r.id} (${r.action}, node ${r.node}) still ${r.status} after ${r.attempts} attempts`,
      );
    else if (r.status !== 'succeeded' && !r.error)
      problems.push(`command ${r.id} ${r.status} without an error`);
  }
  const counts = new Map<string, number>();
  for (const id of started) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, n] of counts) if (n > 1) problems.push(`command ${id} started ${n} times`);
  const byId = new Map(records.map((r) => [r.id, r]));
  for (const id of counts.keys())
    if (byId.get(id)?.status === 'expired' && byId.get(id)?.error === null)
      problems.push(`${id} expired silently`);
  for (const [node, order] of issued) {
    const positions = [...new Set(started)].filter((id) => order.includes(id)).map((id) => order.indexOf(id));
    for (let i = 1; i < positions.length; i++)
      if ((positions[i] as number) < (positions[i - 1] as number)) {
        problems.push(
          `node ${node}: command ${order[positions[i] as number]} started after ${order[positions[i - 1] as number]}, accepted later`,
        );
        break;
      }
  }
  return problems;
}

function describe(records: CommandRecord[], lines: LogLine[]): string {
  const open = records.filter((r) => r.status !== 'succeeded');
  const out: string[] = [];
  for (const r of open) {
    out.push(
      `  ${r.status}: ${JSON.stringify({ id: r.id, node: r.node, action: r.action, attempts: r.attempts, created_at: r.created_at, updated_at: r.updated_at, deadline: r.deadline, error: r.error })}`,
    );
    for (const l of lines.filter((l) => l.command_id === r.id)) out.push(`    agent: ${JSON.stringify(l)}`);
  }
  out.push('  agent log tail:');
  for (const l of lines.slice(-20)) out.push(`    ${JSON.stringify(l)}`);
  return out.join('\n');
}

function must<T extends { status: number }>(answer: T, status: number, what: string): T {
  if (answer.status !== status)
    throw new Error(
      `${what}: answered ${answer.status} ${JSON.stringify((answer as { body?: unknown }).body)}`,
    );
  return answer;
}

export function formatRun(report: RunReport): string {
  const faults = Object.entries(report.faults)
    .map(([kind, n]) => `${kind}×${n}`)
    .join(', ');
  const { succeeded, failed, expired, open } = report.ended;
  return `${report.passed ? 'PASS' : 'FAIL'} seed=${report.seed} commands=${report.commands} ended: ${succeeded} succeeded, ${failed} failed, ${expired} expired${open ? `, ${open} OPEN` : ''}; worst settle ${(report.worstSettleMs / 1000).toFixed(1)} s; run ${(report.durationMs / 1000).toFixed(0)} s; faults: ${faults}`;
}
