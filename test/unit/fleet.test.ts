/**
 * The fleet rollout's logic on an in-memory API: selectors, failure limits, the per-site
 * and parallel limits, passing refusals, and resuming a request that may have landed.
 * (The CLI against the real stack: test/integration/cli-fleet.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fleetAction } from '../../cli/fleet/actions.ts';
import { logReporter, terminalReporter } from '../../cli/fleet/progress.ts';
import { failureLimit, parseMaxFailures, prepareResume, runRollout } from '../../cli/fleet/rollout.ts';
import { apiFilters, matches, type NodeView, parseSelector } from '../../cli/fleet/selector.ts';
import { newRolloutId, type RolloutRecord, RolloutStore } from '../../cli/fleet/store.ts';
import { ApiError } from '../../cli/os-config.ts';

const view = (fields: Partial<NodeView>): NodeView => ({
  uuid: 'u',
  name: 'n',
  conductor_group: 'fra1',
  provision_state: 'available',
  target_provision_state: null,
  power_state: 'power off',
  target_power_state: null,
  maintenance: false,
  traits: [],
  last_error: null,
  provision_updated_at: null,
  ...fields,
});

describe('selectors', () => {
  it('asks the API what it can filter, and matches the rest here', () => {
    const selector = parseSelector('site=FRA1, provision_state=available,trait=CUSTOM_GPU,name!=spare-*');
    expect(apiFilters(selector)).toStrictEqual({ conductor_group: 'fra1', provision_state: 'available' });
    expect(matches(selector, view({ name: 'gpu-1', traits: ['CUSTOM_GPU'] }))).toBe(true);
    expect(matches(selector, view({ name: 'spare-1', traits: ['CUSTOM_GPU'] }))).toBe(false);
    expect(matches(selector, view({ name: 'gpu-1', traits: [] }))).toBe(false);
  });

  it('reads alternatives and globs without asking the API', () => {
    const selector = parseSelector('site=fra1|ams2,name=rack3-*');
    expect(apiFilters(selector)).toStrictEqual({});
    expect(matches(selector, view({ conductor_group: 'ams2', name: 'rack3-07' }))).toBe(true);
    expect(matches(selector, view({ conductor_group: 'lhr1', name: 'rack3-07' }))).toBe(false);
  });

  it.each([
    ['', 'empty'],
    ['colour=red', 'unknown key "colour"'],
    ['site', 'not KEY=VALUE'],
    ['site=', 'not KEY=VALUE'],
    ['site=a|', 'empty value'],
    ['maintenance=maybe', 'true or false'],
  ])('refuses %j', (text, message) => {
    expect(() => parseSelector(text)).toThrow(message);
  });
});

describe('failure limits', () => {
  it('reads counts and percentages of the rollout', () => {
    expect(failureLimit('3', 100)).toBe(3);
    expect(failureLimit('10%', 55)).toBe(5);
    expect(parseMaxFailures('007')).toBe('7');
    expect(() => parseMaxFailures('lots')).toThrow('a count');
    expect(() => parseMaxFailures('150%')).toThrow('a count');
  });
});

/** Nodes whose deploy finishes (or fails) at the next read after the request. */
class FakeApi {
  readonly nodes = new Map<string, NodeView>();
  readonly requests: string[] = [];
  maxInFlight = 0;
  inFlightBySite = new Map<string, number>();
  maxInFlightBySite = 0;
  failing = new Set<string>();
  /** Node → how many times its request is refused as locked before being taken. */
  locked = new Map<string, number>();

  add(uuid: string, site: string): void {
    this.nodes.set(uuid, view({ uuid, name: uuid, conductor_group: site }));
  }

  private deploying(): NodeView[] {
    return [...this.nodes.values()].filter((node) => node.provision_state === 'deploying');
  }

  async request(method: string, path: string): Promise<{ body: unknown }> {
    const uuid = decodeURIComponent(path.split('/')[3]?.split('?')[0] ?? '');
    const node = this.nodes.get(uuid);
    if (!node) throw new ApiError(`Node ${uuid} could not be found. (HTTP 404)`, 404);
    if (method === 'GET') {
      const shown = { ...node };
      if (node.provision_state === 'deploying') this.finish(node);
      return { body: shown };
    }
    const refusals = this.locked.get(uuid) ?? 0;
    if (refusals > 0) {
      this.locked.set(uuid, refusals - 1);
      throw new ApiError(
        `Node ${uuid} is locked by host x, please retry after the current operation is completed. (HTTP 409)`,
        409,
      );
    }
    if (node.provision_state !== 'available') throw new ApiError('not from this state (HTTP 400)', 400);
    this.requests.push(uuid);
    Object.assign(node, {
      provision_state: 'deploying',
      target_provision_state: 'active',
      provision_updated_at: `t${this.requests.length}`,
    });
    const deploying = this.deploying();
    this.maxInFlight = Math.max(this.maxInFlight, deploying.length);
    for (const site of new Set(deploying.map((n) => n.conductor_group))) {
      this.maxInFlightBySite = Math.max(
        this.maxInFlightBySite,
        deploying.filter((n) => n.conductor_group === site).length,
      );
    }
    return { body: undefined };
  }

  private finish(node: NodeView): void {
    if (this.failing.has(node.uuid))
      Object.assign(node, { provision_state: 'deploy failed', last_error: 'boom' });
    else Object.assign(node, { provision_state: 'active', target_provision_state: null });
  }
}

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'mp-fleet-unit-'));
});
afterEach(() => rm(directory, { recursive: true, force: true }));

function rollout(api: FleetApiNodes, limits: Partial<RolloutRecord['limits']> = {}): RolloutRecord {
  const now = new Date().toISOString();
  return {
    format: 1,
    id: newRolloutId(),
    action: { kind: 'provision', verb: 'deploy' },
    selector: 'provision_state=available',
    endpoint: 'http://api',
    createdAt: now,
    updatedAt: now,
    status: 'running',
    limits: { maxParallel: 4, maxFailures: '0', perSite: 0, timeoutSeconds: 0, ...limits },
    nodes: [...api.nodes.values()].map((node) => ({
      uuid: node.uuid,
      name: node.name,
      site: node.conductor_group,
      status: 'pending',
      attempts: 0,
    })),
  };
}
type FleetApiNodes = Pick<FakeApi, 'nodes'>;

const quiet = { node() {}, tick() {} };
const run = (api: FakeApi, record: RolloutRecord, signal = new AbortController().signal) =>
  runRollout(record, fleetAction(record.action), {
    client: api,
    store: new RolloutStore(directory),
    reporter: quiet,
    signal,
    pollMs: 1,
  });

function fleet(sites: Record<string, number>): FakeApi {
  const api = new FakeApi();
  for (const [site, count] of Object.entries(sites)) {
    for (let i = 0; i < count; i++) api.add(`${site}-${i}`, site);
  }
  return api;
}

describe('the rollout engine', () => {
  it('keeps to the parallel and per-site limits, and takes the sites in turn', async () => {
    const api = fleet({ a: 6, b: 6, c: 6 });
    const done = await run(api, rollout(api, { maxParallel: 5, perSite: 2 }));
    expect(done.status).toBe('completed');
    expect(api.requests).toHaveLength(18);
    expect(api.maxInFlight).toBeLessThanOrEqual(5);
    expect(api.maxInFlightBySite).toBeLessThanOrEqual(2);
    expect(api.requests.slice(0, 3).map((uuid) => uuid[0])).toStrictEqual(['a', 'b', 'c']);
  });

  it('stops launching past the failure limit and lets the nodes in flight end', async () => {
    const api = fleet({ a: 20 });
    for (const uuid of ['a-0', 'a-1', 'a-2']) api.failing.add(uuid);
    const done = await run(api, rollout(api, { maxParallel: 2, maxFailures: '1' }));
    expect(done.status).toBe('stopped');
    expect(done.reason).toContain('2 failures exceed --max-failures 1');
    expect(done.nodes.filter((node) => node.status === 'failed').map((node) => node.uuid)).toStrictEqual([
      'a-0',
      'a-1',
    ]);
    expect(api.requests).toStrictEqual(['a-0', 'a-1']);
  });

  it('retries a locked node, and skips a node already where the action goes', async () => {
    const api = fleet({ a: 3 });
    api.locked.set('a-0', 2);
    Object.assign(api.nodes.get('a-2') as NodeView, { provision_state: 'active' });
    const done = await run(api, rollout(api));
    expect(done.status).toBe('completed');
    expect(done.nodes.map((node) => [node.uuid, node.status, node.note ?? null])).toStrictEqual([
      ['a-0', 'succeeded', null],
      ['a-1', 'succeeded', null],
      ['a-2', 'succeeded', 'already done'],
    ]);
    expect(done.nodes[0]?.attempts).toBe(2);
  });

  it('on resume, follows a request that landed before the interruption instead of resending it', async () => {
    const api = fleet({ a: 2 });
    const record = rollout(api);
    // The CLI died between saving "sending" and hearing the 202: the request had landed.
    const first = record.nodes[0] as RolloutRecord['nodes'][number];
    Object.assign(first, { status: 'sending', before: 'available@', sentAt: new Date().toISOString() });
    await api.request('PUT', '/v1/nodes/a-0/states/provision');
    prepareResume(record, false);
    const done = await run(api, record);
    expect(done.status).toBe('completed');
    expect(api.requests).toStrictEqual(['a-0', 'a-1']);
  });

  it('saves an interrupted rollout as interrupted', async () => {
    const api = fleet({ a: 3 });
    const controller = new AbortController();
    controller.abort();
    const done = await run(api, rollout(api), controller.signal);
    expect(done.status).toBe('interrupted');
    const saved = await new RolloutStore(directory).load(done.id);
    expect(saved.status).toBe('interrupted');
  });
});

describe('the rollout store', () => {
  it('refuses ids that are not rollout ids (no path tricks)', async () => {
    await expect(new RolloutStore(directory).load('../../etc/passwd')).rejects.toThrow('is not a rollout ID');
  });

  it('locks a rollout against a second CLI, and takes over a dead holder', async () => {
    const store = new RolloutStore(directory);
    const id = newRolloutId();
    const unlock = await store.lock(id);
    await expect(store.lock(id)).rejects.toThrow(`being driven by process ${process.pid}`);
    await unlock();
    // A CLI killed with its lock held: the PID of a process that has ended.
    const dead = spawnSync('true').pid;
    await writeFile(join(directory, `${id}.json.lock`), String(dead));
    const again = await store.lock(id);
    expect(await readFile(join(directory, `${id}.json.lock`), 'utf8')).toBe(String(process.pid));
    await again();
  });
});

describe('progress', () => {
  it('redraws the per-site table in place on a terminal, and logs node ends elsewhere', async () => {
    const api = fleet({ a: 2, b: 1 });
    const record = rollout(api);
    const drawn: string[] = [];
    const terminal = terminalReporter((text) => drawn.push(text));
    const view = { failures: 0, failureLimit: 0, stopping: false };
    terminal.tick(record, view);
    terminal.tick(record, view);
    (record.nodes[0] as RolloutRecord['nodes'][number]).status = 'succeeded';
    terminal.tick(record, view);
    expect(drawn).toHaveLength(2);
    expect(drawn[0]).toContain('| Site | Nodes | Pending | Running | Succeeded | Failed |');
    expect(drawn[0]).toContain('| a    | 2     | 2       | 0       | 0         | 0      |');
    expect(drawn[1]?.startsWith(`\x1b[${(drawn[0] as string).split('\n').length - 1}A\x1b[J`)).toBe(true);
    expect(drawn[1]).toContain('1/3 done');

    const lines: string[] = [];
    const log = logReporter((text) => lines.push(text));
    const failed = {
      ...(record.nodes[1] as RolloutRecord['nodes'][number]),
      status: 'failed' as const,
      error: 'boom',
    };
    log.node(record, failed);
    log.node(record, record.nodes[2] as RolloutRecord['nodes'][number]);
    record.reason = '1 failures exceed --max-failures 0';
    log.tick(record, { ...view, stopping: true });
    log.tick(record, { ...view, stopping: true });
    expect(lines).toStrictEqual([
      'a a-1: failed: boom\n',
      `rollout ${record.id}: stopping, 1 failures exceed --max-failures 0\n`,
    ]);
  });
});
