/**
 * Executed at most once across crashes: the real agent is SIGKILLed in the middle of a
 * command; the restarted agent reports that command failed ("interrupted") and never
 * runs it again, not even when the control plane delivers it again.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { AgentProcess, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';

const agents: AgentProcess[] = [];
const planes: FakeControlPlane[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.cleanup()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

const deadline = (ms = 60_000) => new Date(Date.now() + ms).toISOString();

it('SIGKILL mid-command: after restart the command is reported failed as interrupted, never re-run', async () => {
  const cp = await new FakeControlPlane({ visibilityMs: 60_000 }).start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl }));
  await agent.writeCredential(cp.credential);
  await agent.start();
  await waitFor(() => cp.messages('hello').length === 1, 'hello');

  const long = { id: 'long-1', node: 'node-k', action: 'sleep', args: { ms: 20_000 }, deadline: deadline() };
  const done = { id: 'done-1', node: 'node-j', action: 'noop', args: {}, deadline: deadline() };
  cp.enqueue(done, long);
  await waitFor(() => cp.results('done-1').length === 1, 'the quick command to finish');
  await waitFor(
    () => cp.messages('command_ack').some((a) => a.command_id === 'long-1'),
    'the long command to start',
  );
  const firstPid = agent.pid;
  const killed = await agent.kill('SIGKILL');
  expect(killed.signal).toBe('SIGKILL');
  expect(cp.results('long-1')).toHaveLength(0);

  // The journal holds a `started` line for long-1 and no `finished` one.
  const journal = readFileSync(join(agent.stateDir, 'journal.jsonl'), 'utf8');
  expect(journal).toMatch(/"r":"s","id":"long-1"/);
  expect(journal).not.toMatch(/"r":"f","id":"long-1"/);

  await agent.start();
  expect(agent.pid).not.toBe(firstPid);
  await waitFor(() => cp.results('long-1').length === 1, 'the interrupted report');
  const report = cp.results('long-1')[0]!;
  expect(report).toMatchObject({ status: 'failed', error: 'interrupted: the agent stopped while it ran' });
  // The report carries the receipt of the delivery that started it.
  const ack = cp.messages('command_ack').find((a) => a.command_id === 'long-1')!;
  expect(report.receipt).toBe(ack.receipt);
  expect(
    agent.lines('command interrupted by the previous stop: reported failed, not run again'),
  ).toHaveLength(1);

  // The control plane delivers both again (as SQS would): answered, not run. Their
  // answers carry the new deliveries' receipts. (done-1's first report may come twice
  // already: the outbox marks a report sent lazily, so one handed over just before the
  // SIGKILL is replayed after it — at least once, never lost.)
  const firstReceipts = new Set(cp.messages('command_ack').map((a) => a.receipt));
  const answer = (id: string) => cp.results(id).find((r) => !firstReceipts.has(r.receipt));
  cp.redeliver(long);
  cp.redeliver(done);
  await waitFor(
    () => (answer('long-1') && answer('done-1') ? true : undefined),
    'answers to the redeliveries',
  );
  expect(answer('long-1')).toMatchObject({
    status: 'failed',
    error: 'interrupted: the agent stopped while it ran',
  });
  expect(answer('done-1')).toMatchObject({ status: 'succeeded', result: {} });
  // Replays of the first report are the same report.
  for (const r of cp.results('done-1')) expect(r).toMatchObject({ status: 'succeeded', result: {} });
  expect(agent.lines('command started')).toHaveLength(0);
  expect(cp.messages('command_ack').filter((a) => a.command_id === 'long-1')).toHaveLength(1);
  expect(cp.invalid).toBe(0);

  // And a fresh command still runs normally in the restarted agent.
  cp.enqueue({ id: 'after-1', node: 'node-k', action: 'noop', args: {}, deadline: deadline() });
  await waitFor(() => cp.results('after-1').length === 1, 'a new command');
  expect(cp.results('after-1')[0]).toMatchObject({ status: 'succeeded' });
  expect((await agent.kill('SIGTERM')).code).toBe(0);
});

it('SIGTERM mid-command: the command gets the grace period, then is journaled and reported interrupted', async () => {
  const cp = await new FakeControlPlane().start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl })); // shutdown_grace: 2s
  await agent.writeCredential(cp.credential);
  await agent.start();
  await waitFor(() => cp.messages('hello').length === 1, 'hello');
  cp.enqueue(
    { id: 'short', node: 'a', action: 'sleep', args: { ms: 500 }, deadline: deadline() },
    { id: 'endless', node: 'b', action: 'sleep', args: { ms: 30_000 }, deadline: deadline() },
  );
  await waitFor(() => cp.messages('command_ack').length === 2, 'both started');
  const t0 = Date.now();
  const exit = await agent.kill('SIGTERM'); // bounded: kill() fails if the agent outlives 10 s
  expect(exit.code).toBe(0);
  // The grace was given (a floor no load can break), then the one command still running
  // was aborted rather than waited for (its 30 s would outlive kill()'s bound).
  expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
  expect(agent.lines('aborting commands still running at shutdown')).toMatchObject([{ running: 1 }]);
  // The short one finished within the grace period; the endless one was cut and reported.
  expect(cp.results('short')[0]).toMatchObject({ status: 'succeeded' });
  expect(cp.results('endless')[0]).toMatchObject({
    status: 'failed',
    error: 'interrupted: the agent stopped while it ran',
  });
  const journal = readFileSync(join(agent.stateDir, 'journal.jsonl'), 'utf8');
  expect(journal).toMatch(/"r":"f","id":"endless".*"status":"failed"/);

  // A restart finds nothing interrupted (it was journaled at stop).
  await agent.start();
  await waitFor(() => agent.lines('state loaded').length === 1, 'state loaded');
  expect(agent.lines('state loaded')[0]).toMatchObject({ interrupted: 0, outbox: 0 });
});
