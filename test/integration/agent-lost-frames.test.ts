/**
 * What the chaos harness found (docs/chaos.md), pinned deterministically on the real agent
 * process: a lost frame never loses a command or leaves a node waiting for its deadline,
 * and a skewed agent clock never judges deadlines wrong.
 *
 * - A lost `command_result`: the agent keeps the result until `result_ack` and sends it
 *   again (agent/reporter.ts).
 * - A lost `commands` answer (and any lost wake): the messages stay in flight, come back
 *   after the visibility timeout, and the agent's periodic pull (`pull_interval`) takes
 *   them with no wake at all.
 * - An agent clock ±5 minutes off: deadlines are judged on the control plane's time,
 *   measured from the `Date` of its answers (agent/clock.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess, clockSkewEnv, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';

const agents: AgentProcess[] = [];
const planes: FakeControlPlane[] = [];

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.cleanup()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

const CLOCK_WARNING =
  "the agent's clock is off the control plane's: deadlines are judged on the control plane's time; fix this host's NTP";
const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();

async function start(
  options: { visibilityMs?: number; extra?: string; env?: Record<string, string>; welcome?: boolean } = {},
) {
  const cp = await new FakeControlPlane({
    visibilityMs: options.visibilityMs ?? 60_000,
    welcome: options.welcome ?? false,
  }).start();
  planes.push(cp);
  const agent = new AgentProcess();
  agents.push(agent);
  agent.writeConfig(testConfig({ url: cp.url, websocketUrl: cp.websocketUrl, extra: options.extra }));
  await agent.writeCredential(cp.credential);
  await agent.start(options.env ? { env: options.env } : {});
  await waitFor(() => cp.messages('hello').length === 1, 'hello');
  return { cp, agent };
}

describe('lost frames', () => {
  it('a lost result is sent again until the control plane acknowledges it; the command ran once', async () => {
    // The queue would give the command out again only after an hour: the resend alone
    // can bring the result.
    const { cp, agent } = await start({ visibilityMs: 3_600_000, extra: 'result_resend_interval: 500ms' });
    cp.loseResults = 1;
    cp.enqueue({ id: 'r-1', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) });
    await waitFor(() => cp.results('r-1').length === 1, 'the result, sent again', 30_000);
    expect(cp.lost).toBe(1);
    expect(cp.results('r-1')[0]).toMatchObject({ status: 'succeeded' });
    expect(agent.lines('command started').filter((l) => l.command_id === 'r-1')).toHaveLength(1);
    // Acknowledged: the outbox lets it go, and sends it no more.
    await waitFor(async () => {
      const metrics = await agent.metrics();
      return /metalplane_agent_outbox_length 0\b/.test(metrics) ? metrics : undefined;
    }, 'the outbox to empty');
    expect(await agent.metrics()).toMatch(/metalplane_agent_results_resent_total 1\b/);
  });

  it('a lost commands answer is picked up by the periodic pull, with no wake', async () => {
    const { cp, agent } = await start({ visibilityMs: 1000, extra: 'pull_interval: 1s' });
    cp.loseCommandAnswers = 1;
    cp.enqueue({ id: 'c-1', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) });
    // The one wake was spent on the lost answer; nothing else wakes the agent.
    await waitFor(() => cp.results('c-1').length === 1, 'the command, delivered again', 30_000);
    expect(cp.lost).toBe(1);
    expect(cp.results('c-1')[0]).toMatchObject({ status: 'succeeded' });
    expect(agent.lines('command started').filter((l) => l.command_id === 'c-1')).toHaveLength(1);
    const pulls = agent.lines('pull').map((l) => l.reason);
    expect(pulls).toContain('periodic');
  });
});

describe('the pull after a result', () => {
  /** The reasons of the agent's pulls, in order. */
  const reasons = (agent: AgentProcess) => agent.lines('pull').map((l) => l.reason as string);

  it("is made on the result_ack of a control plane that acknowledges results, and none follows it: the node's next command comes", async () => {
    const { cp, agent } = await start({ welcome: true });
    await waitFor(() => agent.lines('welcomed by the control plane').length === 1, 'the welcome');
    cp.enqueue(
      { id: 'a-1', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
      { id: 'a-2', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
    );
    // a-2 is held behind a-1 (one message of a node in flight): only a pull after a-1's
    // result can take it, and nothing else (no wake, no periodic pull in 30 s) would.
    await waitFor(() => cp.results('a-2').length === 1, 'the second command');
    const pulls = reasons(agent);
    expect(pulls).not.toContain('drain');
    expect(pulls).not.toContain('periodic');
    // Each result's pull came after its result_ack: after the result reached the plane.
    const sent = cp.received.map((r) => r.msg.type);
    expect(sent.indexOf('command_result')).toBeLessThan(sent.lastIndexOf('pull'));
  });

  it('is made a second later when a result_ack is lost, not at the result resend', async () => {
    const { cp, agent } = await start({ welcome: true });
    await waitFor(() => agent.lines('welcomed by the control plane').length === 1, 'the welcome');
    cp.loseResultAcks = 1;
    cp.enqueue(
      { id: 'l-1', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
      { id: 'l-2', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
    );
    await waitFor(() => cp.results('l-2').length === 1, 'the second command');
    expect(cp.lost).toBe(1);
    expect(reasons(agent)).toContain('drain');
    // Taken by that pull: l-1's result was not sent again first (that is 10 s later).
    expect(cp.results('l-1')).toHaveLength(1);
  });

  it('is made at once, and once more a little later, with a control plane that does not say welcome', async () => {
    const { cp, agent } = await start();
    cp.enqueue(
      { id: 'b-1', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
      { id: 'b-2', node: 'n-1', action: 'noop', args: {}, deadline: inMs(120_000) },
    );
    await waitFor(() => cp.results('b-2').length === 1, 'the second command');
    await waitFor(() => (reasons(agent).includes('drain') ? true : undefined), 'the follow-up pull');
    expect(reasons(agent)).toContain('result');
  });
});

describe('agent clock skew', () => {
  for (const skewMs of [5 * 60_000, -5 * 60_000]) {
    it(`an agent clock ${skewMs > 0 ? '+' : '-'}5 min off runs a 60 s command, judged on the control plane's time`, async () => {
      const { cp, agent } = await start({ env: clockSkewEnv(skewMs) });
      await waitFor(() => agent.lines(CLOCK_WARNING).length > 0, 'the offset to be measured');
      cp.enqueue({ id: 's-1', node: 'n-1', action: 'sleep', args: { ms: 10 }, deadline: inMs(60_000) });
      await waitFor(() => cp.results('s-1').length === 1, 'the result');
      expect(cp.results('s-1')[0]).toMatchObject({ status: 'succeeded' });
      const [measured] = agent.lines(CLOCK_WARNING);
      // The measured offset undoes the skew, to about a second.
      expect(Math.abs(Number(measured?.offset_ms) + skewMs)).toBeLessThan(2000);
      // And a command whose deadline really passed is still refused.
      cp.enqueue({ id: 's-2', node: 'n-1', action: 'noop', args: {}, deadline: inMs(-10_000) });
      await waitFor(() => cp.results('s-2').length === 1, 'the refusal');
      expect(cp.results('s-2')[0]).toMatchObject({
        status: 'failed',
        error: expect.stringMatching(/deadline .* passed/),
      });
    });
  }
});
