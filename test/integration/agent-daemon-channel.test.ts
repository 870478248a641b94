/**
 * The real agent's channel against a fake control plane: the socket drops → reconnects
 * with bounded backoff and replays the reports made while offline, in order; the
 * WebSocket is refused → HTTPS long polling carries the same messages, and the agent
 * returns to the WebSocket once it is reachable again.
 */
import { afterEach, expect, it } from 'vitest';
import { ACK_DELAY_MS } from '../../agent/acks.ts';
import { AgentProcess, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';

const agents: AgentProcess[] = [];
const planes: FakeControlPlane[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.cleanup()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

const deadline = (ms = 60_000) => new Date(Date.now() + ms).toISOString();

async function health(agent: AgentProcess): Promise<Record<string, unknown>> {
  return (await (await fetch(`${await agent.statusUrl()}/healthz`)).json()) as Record<string, unknown>;
}

it('socket drop: reconnects with backoff under the cap and replays the outbox in order', async () => {
  const cp = await new FakeControlPlane().start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl })); // backoff 50ms..500ms
  await agent.writeCredential(cp.credential);
  await agent.start();
  await waitFor(() => cp.messages('hello').length === 1, 'hello');

  // s1 and s2 must still run when the socket is cut below, and end in that order: seconds
  // of margin for both, whatever the load.
  cp.enqueue(
    { id: 's1', node: 'n1', action: 'sleep', args: { ms: 3000 }, deadline: deadline() },
    { id: 's2', node: 'n2', action: 'sleep', args: { ms: 4000 }, deadline: deadline() },
    { id: 's3', node: 'n3', action: 'fail', args: { message: 'late failure' }, deadline: deadline() },
  );
  // s1 and s2 run for seconds: acknowledged once past the ack delay; s3 ends at once.
  await waitFor(
    () => ['s1', 's2'].every((id) => cp.messages('command_ack').some((a) => a.command_id === id)),
    'the acks of s1 and s2',
  );
  await waitFor(() => cp.results('s3').length === 1, 's3 reported while connected');
  // Cut the socket and keep refusing for a while: s1 and s2 finish offline.
  cp.refuseWebSocket = 503;
  cp.dropConnections();
  await waitFor(async () => (await health(agent)).outbox === 2, 'two reports waiting in the outbox', 10_000);
  expect(await health(agent)).toMatchObject({ connected: false });
  await waitFor(() => agent.lines('reconnecting').length >= 3, 'several reconnection attempts', 5000);
  const receivedBefore = cp.received.length;

  cp.refuseWebSocket = undefined;
  await waitFor(() => cp.results().length === 3, 'the replayed reports', 5000);
  // Replayed after the new hello, oldest first.
  const after = cp.received.slice(receivedBefore).map((r) => r.msg);
  const helloAt = after.findIndex((m) => m.type === 'hello');
  const replayed = after.filter((m) => m.type === 'command_result').map((m) => m.command_id);
  expect(helloAt).toBeGreaterThanOrEqual(0);
  expect(replayed).toEqual(['s1', 's2']);
  expect(after.findIndex((m) => m.type === 'command_result')).toBeGreaterThan(helloAt);
  expect(cp.results('s1')[0]).toMatchObject({ status: 'succeeded' });
  expect(cp.connectsAccepted).toBe(2);

  // Backoff: full jitter under a ceiling that doubles from 50 ms up to the 500 ms cap.
  const attempts = agent.lines('reconnecting');
  for (const line of attempts) {
    const ceiling = Math.min(500, 50 * 2 ** ((line.attempt as number) - 1));
    expect(line.delay_ms).toBeGreaterThanOrEqual(0);
    expect(line.delay_ms).toBeLessThan(ceiling);
  }
  expect(attempts.map((l) => l.attempt)).toEqual(attempts.map((_, i) => i + 1));
  // The results leave the outbox once their result_ack is back.
  const metrics = await waitFor(async () => {
    const text = await agent.metrics();
    return /^metalplane_agent_outbox_length 0$/m.test(text) ? text : undefined;
  }, 'the results to be acknowledged');
  expect(metrics).toContain(`metalplane_agent_reconnects_total ${attempts.length}\n`);
  // The backlog was drained after the reconnection (nothing left queued).
  expect(cp.backlog).toBe(0);
});

it('WebSocket refused: falls back to HTTPS long polling, then returns to the WebSocket', async () => {
  const cp = await new FakeControlPlane({ refuseWebSocket: 403 }).start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(
    testConfig({
      url: cp.url,
      websocketUrl: cp.websocketUrl,
      transport: 'auto',
      reconnect: ['  websocket_failures_before_polling: 2', '  websocket_retry_interval: 1s'],
      extra: 'polling:\n  wait: 5s',
    }),
  );
  await agent.writeCredential(cp.credential);
  await agent.start();
  await waitFor(
    () => cp.received.some((r) => r.via === 'http' && r.msg.type === 'hello'),
    'hello over HTTPS',
  );
  expect(cp.upgradesRefused).toBeGreaterThanOrEqual(2);
  expect(agent.lines('WebSocket unreachable: falling back to HTTPS long polling')).toHaveLength(1);
  await waitFor(async () => (await health(agent)).connection === 'polling', 'healthz to show polling');

  cp.enqueue(
    { id: 'p1', node: 'n1', action: 'noop', args: {}, deadline: deadline() },
    { id: 'p2', node: 'n1', action: 'sleep', args: { ms: ACK_DELAY_MS + 300 }, deadline: deadline() },
    { id: 'p3', node: 'n2', action: 'fail', args: {}, deadline: deadline() },
  );
  await waitFor(() => cp.results().length === 3, 'results over HTTPS', 10_000);
  const viaHttp = cp.received.filter((r) => r.msg.type === 'command_result').map((r) => r.via);
  expect(viaHttp).toEqual(['http', 'http', 'http']);
  // p2 ran past the ack delay: its ack went over HTTPS too (p1 and p3 ended at once).
  expect(cp.received.filter((r) => r.msg.type === 'command_ack' && r.msg.command_id === 'p2')).toEqual([
    expect.objectContaining({ via: 'http' }),
  ]);
  expect(cp.results('p3')[0]).toMatchObject({ status: 'failed', error: 'requested failure' });
  expect(cp.invalid).toBe(0);

  // The WebSocket becomes reachable: the agent's next probe takes it.
  cp.refuseWebSocket = undefined;
  await waitFor(
    () => cp.received.some((r) => r.via === 'ws' && r.msg.type === 'hello'),
    'hello over the WebSocket',
    10_000,
  );
  await waitFor(
    async () => (await health(agent)).connection === 'websocket',
    'healthz to show the WebSocket',
  );
  cp.enqueue({ id: 'w1', node: 'n1', action: 'noop', args: {}, deadline: deadline() });
  await waitFor(() => cp.results('w1').length === 1, 'a result over the WebSocket');
  expect(cp.received.find((r) => r.msg.type === 'command_result' && r.msg.command_id === 'w1')?.via).toBe(
    'ws',
  );
  expect((await agent.kill('SIGTERM')).code).toBe(0);
});

it('transport: polling never dials the WebSocket', async () => {
  const cp = await new FakeControlPlane().start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(
    testConfig({
      url: cp.url,
      websocketUrl: cp.websocketUrl,
      transport: 'polling',
      extra: 'polling:\n  wait: 2s',
    }),
  );
  await agent.writeCredential(cp.credential);
  await agent.start();
  await waitFor(() => cp.messages('hello').length === 1, 'hello');
  cp.enqueue({ id: 'q1', node: 'n', action: 'noop', args: {}, deadline: deadline() });
  await waitFor(() => cp.results('q1').length === 1, 'result');
  expect(cp.connectsAccepted).toBe(0);
  expect(cp.received.every((r) => r.via === 'http')).toBe(true);
});
