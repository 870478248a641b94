/**
 * The authorization matrix (issue 12), generated from the router itself: every registered
 * (method, path template) is called as every kind of caller, with its path parameters
 * filled with real objects of a node owned by p1 and leased to p3. A route the matrix
 * cannot fill fails the first test, so a new route cannot be left out.
 *
 * Reads run for every caller; writes run only for the callers that must be refused
 * (reader, a member of another project, an agent, no credentials), after all reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from '../../lambda/http/router.ts';
import { type CallResult, type Credentials, startApi, type TestApi } from '../support/api.ts';
import {
  type AdminCall,
  adminCall,
  createObjectFixtures,
  fillPath,
  pathParams,
  routesOf,
} from '../support/route-fixtures.ts';

type Who = 'admin' | 'reader' | 'owner' | 'lessee' | 'other' | 'agent' | 'none';
const WHO: readonly Who[] = ['admin', 'reader', 'owner', 'lessee', 'other', 'agent', 'none'];
const WRITES = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
const PUBLIC = new Set(['GET /', 'GET /v1', 'POST /v1/agents/enroll']);
/** Routes an agent credential may use (its own site's agent routes, its own credentials). */
const AGENT_OWN = /^\/v1\/agent\/|^\/v1\/agents\/\{hostname\}\/credentials$/;
/** Path parameters naming the p1 node or one of its objects. */
const NODE_SCOPED = new Set([
  'node',
  'port',
  'portgroup',
  'connector',
  'target',
  'allocation',
  'event',
  'command',
]);
/** List filters that name p1's objects. */
const FILTERS = (node: string) => [
  'project=p1',
  'owner=p1',
  'lessee=p1',
  'lessee=p3',
  `node=${node}`,
  `node_uuid=${node}`,
  'conductor_group=test-site',
];
/** GETs an admin may see as non-2xx here: the named object does not exist. */
const ADMIN_READ_MISSES = new Set<string>([
  'GET /v1/nodes/{node}/allocation',
  'GET /v1/nodes/{node}/bios/{setting}',
  'GET /v1/nodes/{node}/history/{event}',
  'GET /v1/nodes/{node}/commands/{command}',
  // The fixture node was never inspected: Ironic's 404 for a node without inventory.
  'GET /v1/nodes/{node}/inventory',
  // The matrix's api records no audit trail (test/integration/audit.test.ts does).
  'GET /v1/audit/{audit}',
]);
/** Reads that wait for the site's agent: run only for the callers that must be refused. */
const AGENT_ROUND_TRIP = new Set([
  'GET /v1/nodes/{node}/management/boot_device',
  'GET /v1/nodes/{node}/management/indicators',
  'GET /v1/nodes/{node}/management/indicators/{indicator}',
]);
/**
 * Bodies valid enough to reach the authorization check on routes that validate the body
 * first, as Ironic does (others get `{}`: a 400 there is the same for every caller).
 */
const BODIES: Record<string, () => unknown> = {
  'POST /v1/ports': () => ({ node_uuid: ids.node, address: '52:54:00:aa:00:09' }),
  'POST /v1/portgroups': () => ({ node_uuid: ids.node, address: '52:54:00:aa:00:0a' }),
  'PUT /v1/nodes/{node}/states/provision': () => ({ target: 'manage' }),
  'POST /v1/nodes/{node}/vifs': () => ({ id: 'authz-vif' }),
  'PUT /v1/nodes/{node}/states/boot_mode': () => ({ target: 'bios' }),
  'PUT /v1/nodes/{node}/states/secure_boot': () => ({ target: true }),
  'PUT /v1/nodes/{node}/management/indicators/{indicator}': () => ({ state: 'on' }),
};
/** Routes only an agent credential may use. */
const AGENT_ONLY = /^\/v1\/agent\//;

interface Case {
  readonly method: string;
  readonly pattern: string;
  readonly who: Who;
  readonly path: string;
  readonly variant: string;
}

let api: TestApi;
let router: Router | undefined;
let agent: { hostname: string; credential: string };
let lessee: Credentials;
const ids: Record<string, string> = {};
let p1Secrets: string[] = [];

let admin: AdminCall;
let params: Record<string, () => string> = {};

beforeAll(async () => {
  api = await startApi({
    auth: 'basic',
    extend: (built) => {
      router = built;
    },
  });
  admin = adminCall(api);
  lessee = { username: 'lessee-p3', password: `lessee-password-${api.prefix}` };
  await admin('POST', '/v1/users', {
    name: lessee.username,
    password: lessee.password,
    role: 'member',
    project: 'p3',
  });
  const fixtures = await createObjectFixtures(admin, { tag: 'authz', macByte: 'aa', lessee: 'p3' });
  Object.assign(ids, fixtures.ids);
  params = pathParams(fixtures, {
    tag: 'authz',
    hostname: () => agent.hostname,
    user: () => lessee.username,
    site: () => 'test-site',
  });
  // The agent serves another site: it must not see the p1 node (of the default site) either.
  await admin('POST', '/v1/sites', { name: 'authz-far' });
  const minted = await admin('POST', '/v1/sites/authz-far/agents');
  const enrolled = await api.call('POST', '/v1/agents/enroll', {
    as: null,
    body: { token: minted.token, hostname: 'authz-agent', drivers: ['fake-hardware'] },
  });
  if (enrolled.status !== 201) throw new Error(`not enrolled: ${enrolled.status}`);
  agent = { hostname: 'authz-agent', credential: enrolled.body.credential };
  p1Secrets = [ids.node, ids.port, ids.portgroup, ids.connector, ids.target, ids.allocation] as string[];
}, 60_000);
afterAll(() => api?.close());

/** Query parameters a route needs to answer at once. */
const EXTRA_QUERY: Record<string, string> = { '/v1/agent/commands': 'wait=0' };

function routes(): Array<{ method: string; pattern: string }> {
  return routesOf(router);
}

function paramsOf(pattern: string): string[] {
  return [...pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
}

function fill(pattern: string): string {
  return fillPath(pattern, params);
}

function isList(method: string, pattern: string): boolean {
  return method === 'GET' && !/\}$/.test(pattern) && !['/', '/v1', '/v1/openapi.json'].includes(pattern);
}

function cases(): Case[] {
  const all: Case[] = [];
  for (const { method, pattern } of routes()) {
    const extra = EXTRA_QUERY[pattern];
    const path = fill(pattern) + (extra ? `?${extra}` : '');
    for (const who of WHO) {
      if (WRITES.has(method) && !refusedWriter(who, pattern)) continue;
      if (
        AGENT_ROUND_TRIP.has(`${method} ${pattern}`) &&
        ['admin', 'reader', 'owner', 'lessee'].includes(who)
      )
        continue;
      all.push({ method, pattern, who, path, variant: '' });
      if (isList(method, pattern) && (who === 'other' || who === 'agent')) {
        for (const filter of FILTERS(ids.node as string)) {
          all.push({ method, pattern, who, path: `${path}${extra ? '&' : '?'}${filter}`, variant: filter });
        }
      }
    }
  }
  return all;
}

function refusedWriter(who: Who, pattern: string): boolean {
  if (who === 'agent') return !AGENT_OWN.test(pattern);
  return who === 'reader' || who === 'other' || who === 'none';
}

function bodyFor(c: Case): unknown {
  if (!WRITES.has(c.method) || c.method === 'DELETE') return undefined;
  return BODIES[`${c.method} ${c.pattern}`]?.() ?? {};
}

function send(c: Case): Promise<CallResult> {
  const body = bodyFor(c);
  const as: Record<Who, Credentials | null> = {
    admin: api.admin,
    reader: api.reader,
    owner: api.member1,
    lessee,
    other: api.member2,
    agent: null,
    none: null,
  };
  return api.call(c.method, c.path, {
    as: as[c.who],
    ...(body !== undefined ? { body } : {}),
    ...(c.who === 'agent' ? { headers: { Authorization: `Bearer ${agent.credential}` } } : {}),
  });
}

/** What must hold for a case; undefined when it holds. */
function violation(c: Case, r: CallResult): string | undefined {
  const key = `${c.method} ${c.pattern}`;
  const ok = r.status >= 200 && r.status < 300;
  // An error may name what the caller asked for; a list's next link repeats its query.
  const { next: _next, ...shown } = (r.body ?? {}) as Record<string, unknown>;
  const text = JSON.stringify(shown);
  const asked = `${c.path} ${JSON.stringify(bodyFor(c) ?? null)}`;
  const secrets = ok ? p1Secrets : p1Secrets.filter((id) => !asked.includes(id));
  const seen = secrets.find((id) => text.includes(id));
  const saw = seen === ids.node ? 'the p1 node' : `p1 object ${seen}`;
  if (r.status >= 500) return `answered ${r.status}`;
  if (AGENT_ONLY.test(c.pattern) && c.who !== 'agent' && c.who !== 'none') {
    return r.status === 403 ? undefined : `expected 403 on an agent route, got ${r.status}`;
  }
  if (c.who === 'none') {
    if (PUBLIC.has(key)) return r.status === 401 ? 'a public route refused no credentials' : undefined;
    return r.status === 401 ? undefined : `expected 401, got ${r.status}`;
  }
  if (c.who === 'agent') {
    if (PUBLIC.has(key)) return undefined;
    // Query parameters are checked before anything else: a 400 there is the same for every caller.
    const refusals = c.variant ? [400, 403] : [403];
    if (!AGENT_OWN.test(c.pattern))
      return refusals.includes(r.status) ? undefined : `expected 403, got ${r.status}`;
    if (paramsOf(c.pattern).some((p) => NODE_SCOPED.has(p)) && ok)
      return `an agent of another site got ${r.status}`;
    return seen ? `an agent of another site saw ${saw} (${r.status})` : undefined;
  }
  if (c.who === 'reader' && WRITES.has(c.method) && !PUBLIC.has(key)) {
    return ok ? `a reader's write got ${r.status}` : undefined;
  }
  if (c.who === 'other') {
    if (WRITES.has(c.method) && !PUBLIC.has(key) && ok) return `a p2 member's write got ${r.status}`;
    const refusals = c.variant || WRITES.has(c.method) ? [400, 403, 404] : [403, 404];
    if (paramsOf(c.pattern).some((p) => NODE_SCOPED.has(p)) && !refusals.includes(r.status)) {
      return `expected 403/404 on a p1 node path, got ${r.status}`;
    }
    return seen ? `a p2 member saw ${saw} (${r.status})` : undefined;
  }
  if (c.who === 'admin' && c.method === 'GET' && !ok && !ADMIN_READ_MISSES.has(key)) {
    return `an admin's read got ${r.status} (is the path parameter a real object?)`;
  }
  return undefined;
}

const caseKey = (c: Case) => `${c.method} ${c.pattern} ${c.who} ${c.variant}`;
const answers = new Map<string, { status: number; fault: string | undefined }>();

/**
 * A list a p2 member may read, asked for another project's objects, is refused as Ironic's
 * check_list_policy refuses it (or answered without them, checked by `violation`).
 */
function listAllViolations(list: Case[]): string[] {
  const failures: string[] = [];
  for (const c of list) {
    if (c.who !== 'other' || !/^(project|owner|lessee)=/.test(c.variant)) continue;
    const filtered = answers.get(caseKey(c));
    const plain = answers.get(caseKey({ ...c, variant: '' }));
    if (filtered?.status !== 403 || !plain || plain.status >= 300) continue;
    if (!/^Access was denied to the following resource: baremetal:\w+:list_all$/.test(filtered.fault ?? '')) {
      failures.push(`${c.method} ${c.path} as other: 403 without the list_all message: ${filtered.fault}`);
    }
  }
  return failures;
}

async function runAll(list: Case[]): Promise<string[]> {
  const failures: string[] = [];
  const ordered = [
    ...list.filter((c) => !WRITES.has(c.method)),
    ...list.filter((c) => WRITES.has(c.method) && c.method !== 'DELETE'),
    ...list.filter((c) => c.method === 'DELETE'),
  ];
  // A few at a time: reads all run before any write, deletes last.
  const phases = [ordered.filter((c) => !WRITES.has(c.method)), ordered.filter((c) => WRITES.has(c.method))];
  for (const phase of phases) {
    let next = 0;
    const worker = async () => {
      while (next < phase.length) {
        const c = phase[next++] as Case;
        let wrong: string | undefined;
        try {
          const answer = await send(c);
          answers.set(caseKey(c), { status: answer.status, fault: answer.fault?.faultstring });
          wrong = violation(c, answer);
        } catch (error) {
          wrong = `no answer: ${(error as Error).message}`;
        }
        if (wrong)
          failures.push(`${c.method} ${c.path} as ${c.who}${c.variant ? ` [${c.variant}]` : ''}: ${wrong}`);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
  }
  return [...failures, ...listAllViolations(list)].sort();
}

describe('authorization matrix', () => {
  it('the fixtures are what the matrix assumes: the owner and the lessee see the node, p2 does not', async () => {
    for (const as of [api.member1, lessee]) {
      expect((await api.call('GET', `/v1/nodes/${ids.node}`, { as })).status).toBe(200);
      expect(JSON.stringify((await api.call('GET', '/v1/nodes', { as })).body)).toContain(ids.node);
      expect((await api.call('GET', `/v1/ports/${ids.port}`, { as })).status).toBe(200);
    }
    expect((await api.call('GET', `/v1/nodes/${ids.node}`, { as: api.member2 })).status).toBe(404);
    const agentView = await api.call('GET', '/v1/agent/nodes', {
      as: null,
      headers: { Authorization: `Bearer ${agent.credential}` },
    });
    expect(agentView.status).toBe(200);
  });

  it('covers every registered route, and holds for every route x caller x variant', async () => {
    const registered = routes();
    expect(registered.length).toBeGreaterThan(50);
    for (const { pattern } of registered)
      for (const p of paramsOf(pattern)) expect(params, pattern).toHaveProperty(p);
    const list = cases();
    const covered = new Set(list.map((c) => `${c.method} ${c.pattern}`));
    const missing = registered.map((r) => `${r.method} ${r.pattern}`).filter((k) => !covered.has(k));
    expect(missing).toEqual([]);
    const failures = await runAll(list);
    process.stdout.write(
      `authz matrix: ${registered.length} routes, ${list.length} cases (route x caller x variant), ${failures.length} violations\n`,
    );
    expect(failures).toEqual([]);
  }, 300_000);
});
