/**
 * One run of the chaos harness (test/chaos/, `npm run chaos` runs many): the real control
 * plane on moto behind a fault-injecting proxy, and the real agent behind a lossy
 * WebSocket proxy, through SIGKILLs of the agent (some lives with its clock skewed ±5 min),
 * restarts of the WebSocket gateway and of the API, control-plane writes failed between
 * two writes of a command's life, and dropped, duplicated and cut frames. Every command
 * ends exactly once (or expires with an error), none runs twice (the agent's own log is
 * the witness), each node's commands start in order, no node is left locked.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AwsFaultProxy } from '../chaos/aws-fault-proxy.ts';
import { formatRun, runChaos } from '../chaos/harness.ts';

let proxy: AwsFaultProxy;

beforeAll(async () => {
  proxy = await new AwsFaultProxy(inject('awsEndpoint')).start();
});

afterAll(async () => {
  await proxy?.close();
});

describe('chaos: the agent killed, the control plane restarted and failing, frames lost', () => {
  it('every command ends once, none runs twice, each node in order, no node left locked', async () => {
    // A fixed seed: CI replays the same schedule of faults (`npm run chaos -- --seed 7`).
    const report = await runChaos({ seed: 7, proxy, nodes: 6, commands: 80 });
    process.stdout.write(`${formatRun(report)}\n`);
    expect(report.problems, report.detail).toStrictEqual([]);
    expect(report.ended.open).toBe(0);
    // The faults did strike: the agent was killed, a control-plane write failed.
    expect(report.faults['agent SIGKILL']).toBeGreaterThan(0);
    expect(report.faults['record→message']).toBeGreaterThan(0);
  }, 240_000);
});
