/**
 * `metalplane fleet` over 100 fake-hardware nodes in 3 sites, each site with its own agent
 * process: a deploy rollout stops at the failure limit when nodes' (simulated) BMCs fail,
 * and resumes once they are mended; an undeploy rollout whose CLI is killed mid-way
 * resumes and ends with every node undeployed exactly once.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import { osEnv, runCli, startCli } from '../support/cli.ts';

const SITES = ['fleet-a', 'fleet-b', 'fleet-c'];
const NODES = 100;
/** The first four nodes of each site (by name): the first ones every rollout launches. */
const FAULTY_PER_SITE = 4;

let stack: ChannelStack;
let stateDir: string;
const agents: AgentProcess[] = [];
const nodesBySite = new Map<string, string[]>();

const env = () => ({
  ...osEnv(stack.api),
  HOME: stateDir,
  METALPLANE_STATE_DIR: join(stateDir, 'rollouts'),
});
const start = (args: string[]) => startCli(args, env());
const cli = (...args: string[]) => runCli(args, env());

async function nodeStates(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const listed = await stack.api.call('GET', '/v1/nodes?fields=uuid,provision_state&limit=1000');
  for (const node of listed.body.nodes as Array<{ provision_state: string }>) {
    counts[node.provision_state] = (counts[node.provision_state] ?? 0) + 1;
  }
  return counts;
}

const withoutZeros = (counts: Record<string, number>) =>
  Object.fromEntries(Object.entries(counts).filter(([, count]) => count > 0));

function faultyNodes(): string[] {
  return SITES.flatMap((site) => (nodesBySite.get(site) ?? []).slice(0, FAULTY_PER_SITE));
}

async function setFault(uuid: string, fault: string | undefined): Promise<void> {
  const op = fault
    ? { op: 'add', path: '/driver_info/fake_fault', value: fault }
    : { op: 'remove', path: '/driver_info/fake_fault' };
  const patched = await stack.api.call('PATCH', `/v1/nodes/${uuid}`, { body: [op] });
  expect(patched.status, JSON.stringify(patched.body)).toBe(200);
}

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'mp-fleet-'));
  stack = await startChannel();
  // The three sites and their agents are independent: set up side by side.
  await Promise.all(
    SITES.map(async (site) => {
      expect((await stack.createSite(site)).status).toBe(201);
      const { credential } = await stack.enroll(site, `${site}-agent`);
      const agent = new AgentProcess().writeConfig(
        testConfig({
          url: stack.api.url,
          websocketUrl: stack.gateway.url,
          extra: 'power_sync:\n  enabled: false',
        }).replace('hostname: test-agent', `hostname: ${site}-agent`),
      );
      agents.push(agent);
      await agent.writeCredential(credential);
      await agent.start();
    }),
  );
  // The nodes, ten requests at a time; each site's list stays in name order (the order
  // rollouts launch them in: by site, then by name), whatever order they are created in.
  const uuids: string[] = new Array(NODES);
  const create = async (i: number) => {
    const site = SITES[i % SITES.length] as string;
    const name = `${site}-n${String(Math.floor(i / SITES.length)).padStart(3, '0')}`;
    uuids[i] = await stack.createNode(site, { name });
  };
  for (let start = 0; start < NODES; start += 10) {
    await Promise.all(Array.from({ length: Math.min(10, NODES - start) }, (_, k) => create(start + k)));
  }
  for (let i = 0; i < NODES; i++) {
    const site = SITES[i % SITES.length] as string;
    nodesBySite.set(site, [...(nodesBySite.get(site) ?? []), uuids[i] as string]);
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.cleanup()));
  await stack?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('metalplane fleet', () => {
  it('refuses bad selectors and limits before touching anything', async () => {
    const unknown = await cli('fleet', 'deploy', '--selector', 'colour=red');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown key "colour"');
    const badLimit = await cli('fleet', 'deploy', '--selector', 'site=fleet-a', '--max-failures', 'lots');
    expect(badLimit.code).toBe(2);
    const none = await cli('fleet', 'deploy', '--selector', 'site=nowhere');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no node matches');
    expect(await nodeStates()).toStrictEqual({ enroll: NODES });
  });

  it('readies the fleet with rollouts: manage, then provide', async () => {
    const dry = await cli(
      'fleet',
      'manage',
      '--selector',
      'driver=fake-hardware,name=fleet-*',
      '--dry-run',
      '-f',
      'json',
    );
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toHaveLength(NODES);
    const table = await cli('fleet', 'manage', '--selector', 'site=fleet-b,name=*-n00*', '--dry-run');
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(
      /^\| Conductor Group \| Name +\| UUID +\| Provisioning State \| Power State \| Maintenance \|$/,
    );
    // fleet-b-n000 … n009: ten rows between the header's rules and the closing rule.
    expect(lines).toHaveLength(10 + 4);
    expect(lines.slice(3, -1).every((line) => line.startsWith('| fleet-b '))).toBe(true);
    for (const verb of ['manage', 'provide']) {
      const run = await cli(
        'fleet',
        verb,
        '--selector',
        'driver=fake-hardware',
        '--max-parallel',
        '25',
        '--poll-interval',
        '300',
        '-f',
        'json',
      );
      expect(run.code, run.stderr).toBe(0);
      const shown = JSON.parse(run.stdout);
      expect(shown).toMatchObject({
        status: 'completed',
        nodes: NODES,
        succeeded: NODES,
        failed: 0,
        pending: 0,
      });
      expect(
        shown.sites.map((site: { site: string; nodes: number }) => [site.site, site.nodes]),
      ).toStrictEqual([
        ['fleet-a', 34],
        ['fleet-b', 33],
        ['fleet-c', 33],
      ]);
    }
    expect(await nodeStates()).toStrictEqual({ available: NODES });
  }, 300_000);

  it('stops a deploy at the failure limit, and resumes it once the nodes are mended', async () => {
    for (const uuid of faultyNodes()) await setFault(uuid, 'BMC unreachable');
    const stopped = await cli(
      'fleet',
      'deploy',
      '--selector',
      'provision_state=available,site=fleet-a|fleet-b|fleet-c',
      '--max-parallel',
      '10',
      '--max-failures',
      '3',
      '--poll-interval',
      '300',
      '-f',
      'json',
    );
    expect(stopped.code, stopped.stderr).toBe(3);
    const shown = JSON.parse(stopped.stdout);
    expect(shown.status).toBe('stopped');
    expect(shown.reason).toContain('exceed --max-failures 3');
    // The first ten launched are all faulty: the fourth failure stops the launches, by when
    // at most three more nodes were launched in the freed slots.
    expect(shown.failed).toBeGreaterThanOrEqual(4);
    expect(shown.failed).toBeLessThanOrEqual(FAULTY_PER_SITE * SITES.length);
    expect(shown.succeeded + shown.failed).toBeLessThanOrEqual(13);
    expect(shown.pending).toBe(NODES - shown.succeeded - shown.failed);
    for (const failure of shown.failures)
      expect(failure.error).toContain('simulated BMC fault: BMC unreachable');
    expect(stopped.stderr).toContain('resume with metalplane fleet resume');
    // What the API says agrees with the rollout: nothing past the limit was touched.
    expect(await nodeStates()).toStrictEqual(
      withoutZeros({
        active: shown.succeeded,
        'deploy failed': shown.failed,
        available: NODES - shown.succeeded - shown.failed,
      }),
    );

    const listed = await cli('fleet', 'list', '-f', 'json');
    expect(JSON.parse(listed.stdout).find((row: { id: string }) => row.id === shown.id)).toMatchObject({
      status: 'stopped',
      failed: shown.failed,
    });

    for (const uuid of faultyNodes()) await setFault(uuid, undefined);
    const resumed = await cli(
      'fleet',
      'resume',
      shown.id,
      '--retry-failed',
      '--max-parallel',
      '20',
      '--poll-interval',
      '300',
      '-f',
      'json',
    );
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({
      id: shown.id,
      status: 'completed',
      succeeded: NODES,
      failed: 0,
    });
    expect(await nodeStates()).toStrictEqual({ active: NODES });
  }, 600_000);

  it('resumes an undeploy whose CLI was killed, sending no node twice', async () => {
    const run = start([
      'fleet',
      'undeploy',
      '--selector',
      'provision_state=active',
      '--max-parallel',
      '5',
      '--per-site',
      '2',
      '--poll-interval',
      '300',
    ]);
    const rolloutId = await waitFor(
      async () => /rollout (r-[0-9a-f-]+):/.exec(run.stderr())?.[1],
      'the rollout id',
      60_000,
    );
    const file = join(stateDir, 'rollouts', `${rolloutId}.json`);
    await waitFor(
      async () => {
        const saved = JSON.parse(await readFile(file, 'utf8')) as { nodes: Array<{ status: string }> };
        return saved.nodes.filter((node) => node.status === 'succeeded').length >= 10 ? true : undefined;
      },
      'ten nodes undeployed',
      120_000,
    );
    run.child.kill('SIGKILL');
    const killed = await run.done;
    expect(killed.code).toBeNull();
    const saved = JSON.parse(await readFile(file, 'utf8')) as {
      status: string;
      nodes: Array<{ status: string }>;
    };
    expect(saved.status).toBe('running');
    expect(saved.nodes.filter((node) => node.status === 'pending').length).toBeGreaterThan(0);

    const resumed = await cli('fleet', 'resume', rolloutId, '--poll-interval', '300', '-f', 'json');
    expect(resumed.code, resumed.stderr).toBe(0);
    const shown = JSON.parse(resumed.stdout);
    expect(shown).toMatchObject({ status: 'completed', succeeded: NODES, failed: 0, pending: 0 });
    expect(await nodeStates()).toStrictEqual({ available: NODES });

    const nodes = JSON.parse(
      (await cli('fleet', 'show', rolloutId, '--nodes', '-f', 'json')).stdout,
    ) as Array<{
      status: string;
      error: string | null;
    }>;
    expect(nodes).toHaveLength(NODES);
    // A second undeploy of a node would have been refused (400: not from available), and
    // counted as a failure: none was, so no request was sent twice across the kill.
    expect(nodes.every((node) => node.status === 'succeeded' && node.error === null)).toBe(true);
  }, 600_000);
});
