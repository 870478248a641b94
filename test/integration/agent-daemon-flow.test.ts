/**
 * The real agent process (`node agent/cli.ts`) against an in-test fake control plane
 * speaking protocol/messages.ts: enrollment, the wake → pull → commands → ack → result
 * flow, per-node order and cross-node parallelism, redelivery answered from the journal,
 * the status endpoint, and a clean SIGTERM.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ACK_DELAY_MS } from '../../agent/acks.ts';
import { AgentProcess, CLI, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import { AGENT_VERSION } from '../../agent/version.ts';
import { CURRENT_FEATURES, PROTOCOL_VERSION } from '../../protocol/versions.ts';

const run = promisify(execFile);
const agents: AgentProcess[] = [];
const planes: FakeControlPlane[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.cleanup()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

async function plane(options: ConstructorParameters<typeof FakeControlPlane>[0] = {}) {
  const p = await new FakeControlPlane(options).start();
  planes.push(p);
  return p;
}

function agentIn(): AgentProcess {
  const a = new AgentProcess();
  agents.push(a);
  return a;
}

const deadline = (ms = 30_000) => new Date(Date.now() + ms).toISOString();

describe('enroll', () => {
  it('trades the token for a credential stored 0600, and refuses to overwrite it', async () => {
    const cp = await plane({ site: 'fra1' });
    const agent = agentIn();
    agent.writeConfig(testConfig({ url: cp.url }));
    const { stdout } = await run(
      process.execPath,
      [CLI, 'enroll', '--url', cp.url, '--token', cp.enrollToken, '--config', agent.configFile],
      { timeout: 10_000 },
    );
    expect(stdout).toContain('in site fra1');
    expect(cp.enrollRequests).toEqual([
      {
        token: cp.enrollToken,
        hostname: 'test-agent',
        drivers: ['fake-hardware'],
        agent_version: AGENT_VERSION,
      },
    ]);
    const credentialFile = join(agent.stateDir, 'credential');
    expect(statSync(credentialFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(credentialFile, 'utf8').trim()).toBe(cp.credential);
    const enrollment = JSON.parse(readFileSync(join(agent.stateDir, 'enrollment.json'), 'utf8'));
    expect(enrollment).toMatchObject({ site: 'fra1', websocket_url: cp.websocketUrl });
    expect(JSON.stringify(enrollment)).not.toContain(cp.credential);

    const again = await run(
      process.execPath,
      [CLI, 'enroll', '--url', cp.url, '--token', cp.enrollToken, '--config', agent.configFile],
      { timeout: 10_000 },
    ).catch((error: { code: number; stderr: string }) => error);
    expect((again as { code: number }).code).toBe(1);
    expect((again as { stderr: string }).stderr).toContain('enrolled already');
  });

  it('reports a refused token with the control plane faultstring and stores nothing', async () => {
    const cp = await plane();
    const agent = agentIn();
    agent.writeConfig(testConfig({ url: cp.url }));
    const failed = await run(
      process.execPath,
      [CLI, 'enroll', '--url', cp.url, '--token', 'mpe_wrong', '--config', agent.configFile],
      { timeout: 10_000 },
    ).catch((error: { code: number; stderr: string }) => error);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toContain('HTTP 401: enrollment token is invalid or used');
    expect(() => statSync(join(agent.stateDir, 'credential'))).toThrow();
  });

  it('a run without a credential exits 2 with a clear message', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url }));
    await agent.start({ waitForStart: false });
    await waitFor(() => agent.exit, 'the agent to exit');
    expect(agent.exit?.code).toBe(2);
    expect(agent.stderr).toContain('not enrolled yet');
  });
});

describe('commands over the WebSocket', () => {
  it('runs the wake → pull → commands → ack → result flow, per node in order, nodes in parallel', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    await waitFor(() => cp.messages('hello').length === 1, 'hello');
    expect(cp.messages('hello')[0]).toMatchObject({
      hostname: 'test-agent',
      drivers: ['fake-hardware'],
      agent_version: AGENT_VERSION,
      protocol_version: PROTOCOL_VERSION,
      features: CURRENT_FEATURES,
    });

    // Node a: three commands that must run one after the other; node b in parallel. The
    // sleeps run well past the ack delay: their acks (timers due before the sleeps end)
    // come before their results. a2 and a3 end at once: acknowledged by their results
    // alone, or by an ack too if the machine is slow enough to keep them past the delay.
    cp.enqueue(
      { id: 'a1', node: 'node-a', action: 'sleep', args: { ms: 1500 }, deadline: deadline() },
      { id: 'a2', node: 'node-a', action: 'noop', args: {}, deadline: deadline() },
      { id: 'a3', node: 'node-a', action: 'fail', args: { message: 'bmc said no' }, deadline: deadline() },
      { id: 'b1', node: 'node-b', action: 'sleep', args: { ms: 1500 }, deadline: deadline() },
    );
    await waitFor(() => cp.results().length === 4, 'four results', 15_000);
    expect(cp.invalid).toBe(0);

    const acks = cp.messages('command_ack').map((m) => m.command_id);
    expect(acks).toContain('a1');
    expect(acks).toContain('b1');
    expect(new Set(acks).size, 'no command acknowledged twice').toBe(acks.length);
    const byId = Object.fromEntries(cp.results().map((r) => [r.command_id, r]));
    expect(byId.a1).toMatchObject({ status: 'succeeded' });
    expect(byId.a1!.result!.slept_ms).toBeGreaterThanOrEqual(1500);
    expect(byId.a2).toMatchObject({ status: 'succeeded', result: {} });
    expect(byId.a3).toMatchObject({ status: 'failed', error: 'bmc said no' });
    // Each result carries the receipt of the delivery it answers, as its ack (if any) did.
    for (const r of cp.results()) {
      expect(r.receipt).toBe(cp.receipts(r.command_id).at(-1));
      const ack = cp.messages('command_ack').find((a) => a.command_id === r.command_id);
      if (ack) expect(r.receipt).toBe(ack.receipt);
    }
    // b1 ran alongside a1: both acked before either result.
    const order = cp.received
      .map((r) => r.msg)
      .filter((m) => m.type === 'command_ack' || m.type === 'command_result');
    const pos = (type: string, id: string) =>
      order.findIndex((m) => m.type === type && (m as { command_id: string }).command_id === id);
    expect(pos('command_ack', 'b1')).toBeLessThan(pos('command_result', 'a1'));
    expect(pos('command_ack', 'a1')).toBeLessThan(pos('command_result', 'b1'));
    // a2 started only after a1 had finished, and a3 after a2 (the agent's own log, in order).
    const lifecycle = agent.logs
      .filter((line) => line.msg === 'command started' || line.msg === 'command finished')
      .filter((line) => String(line.command_id).startsWith('a'))
      .map((line) => `${line.msg} ${line.command_id}`);
    expect(lifecycle).toEqual([
      'command started a1',
      'command finished a1',
      'command started a2',
      'command finished a2',
      'command started a3',
      'command finished a3',
    ]);
    expect(cp.backlog).toBe(0);
  });

  it('answers a redelivered id from the journal without running it again', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    await waitFor(() => cp.messages('hello').length === 1, 'hello');
    // Runs past the ack delay, so that its one run is acknowledged once.
    const command = {
      id: 'once-1',
      node: 'node-x',
      action: 'sleep',
      args: { ms: ACK_DELAY_MS + 300 },
      deadline: deadline(),
    };
    cp.enqueue(command);
    await waitFor(() => cp.results('once-1').length === 1, 'first result');
    const first = cp.results('once-1')[0]!;

    cp.redeliver(command);
    cp.redeliver(command);
    await waitFor(() => cp.results('once-1').length === 3, 'answers to the redeliveries');
    const [, second, third] = cp.results('once-1');
    // Same outcome, each with the receipt of its own delivery.
    for (const again of [second!, third!]) {
      expect(again).toMatchObject({
        status: 'succeeded',
        result: first.result,
        finished_at: first.finished_at,
      });
      expect(again.receipt).not.toBe(first.receipt);
    }
    expect(new Set([first.receipt, second!.receipt, third!.receipt]).size).toBe(3);
    // Executed once: one ack, one "command started" line, one count in the metrics.
    expect(cp.messages('command_ack').filter((a) => a.command_id === 'once-1')).toHaveLength(1);
    expect(agent.lines('command started', (l) => l.command_id === 'once-1')).toHaveLength(1);
    const metrics = await (await fetch(`${await agent.statusUrl()}/metrics`)).text();
    expect(metrics).toContain(
      'metalplane_agent_commands_executed_total{action="sleep",status="succeeded"} 1\n',
    );
    expect(metrics).toContain('metalplane_agent_commands_deduplicated_total 2\n');
  });

  it('drains a backlog of redelivered ids, several per node, entirely from the journal', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    await waitFor(() => cp.messages('hello').length === 1, 'hello');
    const commands = Array.from({ length: 30 }, (_, i) => ({
      id: `bk-${i}`,
      node: `node-${i % 3}`,
      action: 'noop',
      args: {},
      deadline: deadline(),
    }));
    cp.enqueue(...commands);
    await waitFor(() => cp.results().length === 30, 'thirty results');
    // The queue hands them all out again (each node's next one only after the previous result).
    cp.enqueue(...commands);
    await waitFor(() => cp.results().length === 60, 'thirty answers from the journal', 8000);
    expect(cp.backlog).toBe(0);
    // Answers from the journal run nothing and acknowledge nothing: at most one ack per id.
    const acked = cp.messages('command_ack').map((a) => a.command_id);
    expect(new Set(acked).size).toBe(acked.length);
    expect(agent.lines('command started')).toHaveLength(30);
    for (const c of commands) expect(cp.results(c.id)).toHaveLength(2);
  });

  it('fails a command whose deadline passes while it runs, and one already past its deadline without running it', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    await waitFor(() => cp.messages('hello').length === 1, 'hello');
    // A deadline seconds ahead: the command starts before it however slow the delivery, and
    // the deadline still ends it long before its 20 s sleep would.
    cp.enqueue(
      { id: 'slow', node: 'n1', action: 'sleep', args: { ms: 20_000 }, deadline: deadline(3000) },
      {
        id: 'late',
        node: 'n2',
        action: 'noop',
        args: {},
        deadline: new Date(Date.now() - 1000).toISOString(),
      },
    );
    await waitFor(() => cp.results().length === 2, 'two results', 15_000);
    expect(cp.results('slow')[0]).toMatchObject({ status: 'failed' });
    expect(cp.results('slow')[0]!.error).toMatch(/^timed out: the deadline .* passed after \d+ ms$/);
    expect(cp.results('late')[0]).toMatchObject({ status: 'failed' });
    expect(cp.results('late')[0]!.error).toMatch(/passed before the command started/);
    expect(cp.messages('command_ack').map((a) => a.command_id)).toEqual(['slow']);
  });

  it('ignores invalid messages from the control plane and keeps working', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    await waitFor(() => cp.messages('hello').length === 1, 'hello');
    cp.broadcast('not json');
    cp.broadcast(
      JSON.stringify({ v: 1, type: 'commands', commands: [{ id: 'x', node: 'n', action: 'noop' }] }),
    );
    cp.broadcast(JSON.stringify({ v: 2, type: 'wake' }));
    await waitFor(
      () => agent.lines('invalid message from the control plane ignored').length === 3,
      'three refusals',
    );
    cp.enqueue({ id: 'after', node: 'n', action: 'noop', args: {}, deadline: deadline() });
    await waitFor(() => cp.results('after').length === 1, 'result after the garbage');
    expect(agent.lines('command started', (l) => l.command_id === 'x')).toHaveLength(0);
  });
});

describe('status endpoint and stop', () => {
  it('serves /healthz and /metrics on loopback, and stops cleanly on SIGTERM', async () => {
    const cp = await plane({ site: 'fra1' });
    const agent = agentIn().writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
    await agent.writeCredential(cp.credential);
    await agent.start();
    const base = await agent.statusUrl();
    expect(new URL(base).hostname).toBe('127.0.0.1');
    const health = await waitFor(async () => {
      const body = (await (await fetch(`${base}/healthz`)).json()) as Record<string, unknown>;
      return body.connection === 'websocket' ? body : undefined;
    }, 'healthz to show the WebSocket');
    expect(health).toMatchObject({
      status: 'ok',
      connected: true,
      transport: 'websocket',
      hostname: 'test-agent',
    });

    cp.enqueue({ id: 'm1', node: 'n', action: 'noop', args: {}, deadline: deadline() });
    await waitFor(() => cp.results('m1').length === 1, 'result');
    // The result leaves the outbox once its result_ack is back.
    await waitFor(
      async () => /^metalplane_agent_outbox_length 0$/m.test(await (await fetch(`${base}/metrics`)).text()),
      'the result to be acknowledged',
    );
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const metrics = await res.text();
    expect(metrics).toContain(
      'metalplane_agent_commands_executed_total{action="noop",status="succeeded"} 1\n',
    );
    expect(metrics).toContain('metalplane_agent_connection_state{state="websocket"} 1\n');
    expect(metrics).toContain('metalplane_agent_connected 1\n');
    expect(metrics).toMatch(/^metalplane_agent_outbox_length 0$/m);
    expect(metrics).toMatch(/^metalplane_agent_reconnects_total 0$/m);
    expect(metrics).toMatch(/^metalplane_agent_uptime_seconds \d+$/m);
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect((await fetch(`${base}/nope`)).status).toBe(404);

    // The credential never appears in a log line.
    expect(agent.raw).not.toContain(cp.credential);
    expect(agent.raw.length).toBeGreaterThan(0);

    const exit = await agent.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(agent.lines('agent stopped')).toHaveLength(1);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('refuses a status address off loopback before starting', async () => {
    const cp = await plane();
    const agent = agentIn().writeConfig(
      testConfig({ url: cp.url }).replace('address: 127.0.0.1:0', 'address: 0.0.0.0:9469'),
    );
    await agent.writeCredential(cp.credential);
    await agent.start({ waitForStart: false });
    await waitFor(() => agent.exit, 'the agent to exit');
    expect(agent.exit?.code).toBe(2);
    expect(agent.stderr).toContain('status.address: must be a loopback address');
  });
});
