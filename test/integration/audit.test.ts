/**
 * The audit trail (issue 12) on moto: the api handler as the api Lambda wires it (with
 * its audit recorder), behind the local HTTP gateway, with real HTTP Basic users.
 * Every successful change is recorded once, with who, from where, the request id, the
 * route and resource; reads and failed changes are not; no secret value reaches a record;
 * the list pages and filters; only admins and readers read it; the TTL is the retention.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditTable } from '../../infra/resources.ts';
import type { AuditRepository } from '../../lambda/adapters/dynamo/audit-repository.ts';
import { documentClient, tableFromEnv } from '../../lambda/adapters/dynamo/client.ts';
import { auditRecorder, auditRepositoryFromEnv, buildRouter } from '../../lambda/api/app.ts';
import { authenticatorFromEnv } from '../../lambda/api/authentication.ts';
import { RETENTION_ENV } from '../../lambda/domain/audit/audit.ts';
import { type ApiResult, createApiHandler } from '../../lambda/http/middlewares.ts';
import { type HttpGateway, startHttpGateway } from '../../local/http-gateway.ts';
import { lambdaContext } from '../../local/lambda-context.ts';
import { type Credentials, startApi, type TestApi } from '../support/api.ts';

const SECRET = 'hunter2-audit-secret';
const SECRET2 = 'second-audit-secret';

let api: TestApi;
let audit: AuditRepository;
let gateway: HttpGateway;
let handler: ReturnType<typeof createApiHandler>;
let agentCredential = '';
let enrollmentToken = '';
let apiToken = '';

interface Answer {
  readonly status: number;
  readonly body: any;
  readonly requestId: string;
}

interface Call {
  readonly as?: Credentials | null;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

async function call(method: string, path: string, options: Call = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'X-OpenStack-Ironic-API-Version': '1.82', ...options.headers };
  const as = options.as === undefined ? api.admin : options.as;
  if (as) headers.Authorization = `Basic ${Buffer.from(`${as.username}:${as.password}`).toString('base64')}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${gateway.url}${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? undefined : JSON.parse(text),
    requestId: response.headers.get('x-openstack-request-id') ?? '',
  };
}

async function ok(method: string, path: string, options: Call = {}): Promise<Answer> {
  const answer = await call(method, path, options);
  if (answer.status >= 300)
    throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer;
}

/** Every record, following `next` links (page size `limit`). */
async function allRecords(query = '', limit = 1000): Promise<any[]> {
  const records: any[] = [];
  let url: string | undefined = `/v1/audit?limit=${limit}${query ? `&${query}` : ''}`;
  for (let pages = 0; url && pages < 200; pages++) {
    const page = await ok('GET', url);
    records.push(...page.body.audit);
    url = page.body.next ? (page.body.next as string).replace(/^https?:\/\/[^/]+/, '') : undefined;
  }
  return records;
}

async function recordOf(answer: Answer): Promise<any> {
  const matching = (await allRecords()).filter((record) => record.request_id === answer.requestId);
  expect(matching, `one record for ${answer.requestId}`).toHaveLength(1);
  return matching[0];
}

/** The items as stored (every attribute), to look for secrets beyond what the API shows. */
async function storedItems(): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await documentClient().send(
      new QueryCommand({
        TableName: tableFromEnv(auditTable.envVar),
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': 'audit' },
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

const LOCAL_IP = /^(::ffff:)?127\.0\.0\.1$|^::1$/;
const changes = new Map<string, Answer>();
let node = '';
let namedNode = '';
let port = '';
let image = '';

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  audit = auditRepositoryFromEnv();
  handler = createApiHandler(
    buildRouter(api.deps, audit),
    new Logger({ logLevel: 'SILENT' }),
    authenticatorFromEnv(api.deps),
    auditRecorder(audit),
  );
  gateway = await startHttpGateway({ handler });

  // Sites and agents.
  changes.set('site create', await ok('POST', '/v1/sites', { body: { name: 'audit-dc' } }));
  changes.set(
    'site update',
    await ok('PATCH', '/v1/sites/audit-dc', { body: [{ op: 'add', path: '/description', value: 'lab' }] }),
  );
  const minted = await ok('POST', '/v1/sites/audit-dc/agents');
  changes.set('enrollment token', minted);
  enrollmentToken = minted.body.token;
  const enrolled = await ok('POST', '/v1/agents/enroll', {
    as: null,
    body: { token: enrollmentToken, hostname: 'audit-agent', drivers: ['fake-hardware'] },
  });
  changes.set('enroll', enrolled);
  agentCredential = enrolled.body.credential;
  changes.set('agent delete', await ok('DELETE', '/v1/agents/audit-agent'));
  // Users and tokens.
  changes.set(
    'user create',
    await ok('POST', '/v1/users', {
      body: { name: 'audit-bob', password: SECRET, role: 'member', project: 'p1' },
    }),
  );
  changes.set(
    'user update',
    await ok('PATCH', '/v1/users/audit-bob', { body: { role: 'reader', project: null, password: SECRET2 } }),
  );
  const token = await ok('POST', `/v1/users/${api.admin.username}/tokens`, { body: { description: 'ci' } });
  changes.set('token create', token);
  apiToken = token.body.token;
  // Nodes, by the token.
  const bearer = { as: null, headers: { Authorization: `Bearer ${apiToken}` } };
  const created = await ok('POST', '/v1/nodes', {
    ...bearer,
    body: {
      name: 'audit-node',
      driver: 'fake-hardware',
      owner: 'p1',
      driver_info: { ipmi_address: '192.0.2.1', ipmi_username: 'root', ipmi_password: SECRET },
    },
  });
  changes.set('node create', created);
  node = created.body.uuid;
  changes.set(
    'node patch',
    await ok('PATCH', `/v1/nodes/${node}`, {
      body: [{ op: 'replace', path: '/driver_info/ipmi_password', value: SECRET2 }],
    }),
  );
  changes.set(
    'node patch by member',
    await ok('PATCH', `/v1/nodes/${node}`, {
      as: api.member1,
      body: [{ op: 'replace', path: '/description', value: 'racked' }],
    }),
  );
  namedNode = (await ok('POST', '/v1/nodes', { body: { name: 'audit-named', driver: 'fake-hardware' } })).body
    .uuid;
  changes.set(
    'provision',
    await ok('PUT', '/v1/nodes/audit-named/states/provision', { body: { target: 'manage' } }),
  );
  changes.set('power', await ok('PUT', `/v1/nodes/${node}/states/power`, { body: { target: 'power on' } }));
  // Ports.
  const createdPort = await ok('POST', '/v1/ports', {
    body: { node_uuid: node, address: '52:54:00:ad:00:01' },
  });
  changes.set('port create', createdPort);
  port = createdPort.body.uuid;
  changes.set(
    'port patch',
    await ok('PATCH', `/v1/ports/${port}`, { body: [{ op: 'add', path: '/extra/rack', value: 'r1' }] }),
  );
  changes.set('port delete', await ok('DELETE', `/v1/ports/${port}`));
  // Images.
  const createdImage = await ok('POST', '/v1/images', {
    body: { name: 'audit-image', kind: 'iso', files: [{ role: 'iso', size: 4, sha256: '0'.repeat(64) }] },
  });
  changes.set('image create', createdImage);
  image = createdImage.body.uuid;
  changes.set('image delete', await ok('DELETE', `/v1/images/${image}`));
  changes.set('token delete', await ok('DELETE', `/v1/users/${api.admin.username}/tokens/${token.body.id}`));
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  await api?.close();
});

describe('audit trail: what is recorded', () => {
  it('records each change with its actor, source IP, request id, route and resource', async () => {
    const expected: Record<
      string,
      [method: string, route: string, type: string, resource: string, actor: string]
    > = {
      'site create': ['POST', '/v1/sites', 'site', 'audit-dc', api.admin.username],
      'site update': ['PATCH', '/v1/sites/{site}', 'site', 'audit-dc', api.admin.username],
      'enrollment token': ['POST', '/v1/sites/{site}/agents', 'site', 'audit-dc', api.admin.username],
      'agent delete': ['DELETE', '/v1/agents/{hostname}', 'agent', 'audit-agent', api.admin.username],
      'user create': ['POST', '/v1/users', 'user', 'audit-bob', api.admin.username],
      'user update': ['PATCH', '/v1/users/{user}', 'user', 'audit-bob', api.admin.username],
      'node create': ['POST', '/v1/nodes', 'node', node, api.admin.username],
      'node patch': ['PATCH', '/v1/nodes/{node}', 'node', node, api.admin.username],
      'node patch by member': ['PATCH', '/v1/nodes/{node}', 'node', node, api.member1.username],
      provision: ['PUT', '/v1/nodes/{node}/states/provision', 'node', 'audit-named', api.admin.username],
      power: ['PUT', '/v1/nodes/{node}/states/power', 'node', node, api.admin.username],
      'port create': ['POST', '/v1/ports', 'port', port, api.admin.username],
      'port patch': ['PATCH', '/v1/ports/{port}', 'port', port, api.admin.username],
      'port delete': ['DELETE', '/v1/ports/{port}', 'port', port, api.admin.username],
      'image create': ['POST', '/v1/images', 'image', image, api.admin.username],
      'image delete': ['DELETE', '/v1/images/{image}', 'image', image, api.admin.username],
    };
    for (const [change, [method, route, type, resource, actor]] of Object.entries(expected)) {
      const answer = changes.get(change) as Answer;
      expect(answer.requestId, change).toMatch(/^req-/);
      const record = await recordOf(answer);
      expect(record, change).toMatchObject({
        method,
        route,
        resource_type: type,
        resource,
        status: answer.status,
        request_id: answer.requestId,
        actor: { name: actor },
      });
      expect(record.source_ip, change).toMatch(LOCAL_IP);
      expect(record.gateway_request_id, change).toMatch(/^[0-9a-f-]{36}$/);
      expect(Date.parse(record.created_at), change).not.toBeNaN();
    }
  });

  it('names the actor fully: user, token, member with project, anonymous enrollment', async () => {
    expect((await recordOf(changes.get('site create') as Answer)).actor).toEqual({
      kind: 'user',
      name: api.admin.username,
      role: 'admin',
      project: null,
    });
    expect((await recordOf(changes.get('node create') as Answer)).actor).toMatchObject({
      kind: 'token',
      name: api.admin.username,
      role: 'admin',
    });
    expect((await recordOf(changes.get('node patch by member') as Answer)).actor).toEqual({
      kind: 'user',
      name: api.member1.username,
      role: 'member',
      project: 'p1',
    });
    const enroll = await recordOf(changes.get('enroll') as Answer);
    expect(enroll).toMatchObject({
      actor: { kind: 'anonymous', name: null },
      route: '/v1/agents/enroll',
      resource_type: 'agent',
      resource: 'audit-agent',
      change: { fields: ['token', 'hostname', 'drivers'] },
    });
    const token = await recordOf(changes.get('token create') as Answer);
    expect(token).toMatchObject({ resource_type: 'token', route: '/v1/users/{user}/tokens' });
    expect(token.resource).not.toContain('mpt_');
  });

  it('summarizes the change: patch paths, field names, the state targets', async () => {
    expect((await recordOf(changes.get('node patch') as Answer)).change).toEqual({
      patch: [{ op: 'replace', path: '/driver_info/ipmi_password' }],
    });
    expect((await recordOf(changes.get('node create') as Answer)).change).toEqual({
      fields: ['name', 'driver', 'owner', 'driver_info'],
      values: { owner: 'p1' },
    });
    expect((await recordOf(changes.get('provision') as Answer)).change).toEqual({
      fields: ['target'],
      values: { target: 'manage' },
    });
    expect((await recordOf(changes.get('user update') as Answer)).change).toEqual({
      fields: ['role', 'project', 'password'],
      values: { role: 'reader', project: null },
    });
    // Named by name in the path: the uuid is not in a bodiless answer, the name is kept.
    expect(await recordOf(changes.get('provision') as Answer)).toMatchObject({
      resource: 'audit-named',
      resource_name: 'audit-named',
    });
  });

  it('keeps no secret value anywhere: passwords, tokens, credentials', async () => {
    const shown = JSON.stringify(await allRecords());
    const stored = JSON.stringify(await storedItems());
    // `mp?_` + 22-char id + `_` + 43-char secret; both may themselves hold `_`.
    const secretOf = (token: string) => token.slice(4 + 22 + 1);
    const tokenSecret = secretOf(apiToken);
    const credentialSecret = secretOf(agentCredential);
    const enrollmentSecret = secretOf(enrollmentToken);
    for (const secret of [
      SECRET,
      SECRET2,
      apiToken,
      tokenSecret,
      agentCredential,
      credentialSecret,
      enrollmentToken,
      enrollmentSecret,
    ]) {
      expect(secret.length).toBeGreaterThan(8);
      expect(shown).not.toContain(secret);
      expect(stored).not.toContain(secret);
    }
  });

  it('records no read, and no failed change', async () => {
    const before = (await allRecords()).length;
    const reads = [
      await call('GET', '/v1/nodes'),
      await call('GET', `/v1/nodes/${node}`),
      await call('GET', '/v1/users', { as: api.reader }),
      await call('GET', '/v1/audit'),
    ];
    for (const read of reads) expect(read.status).toBe(200);
    const failed = [
      await call('POST', '/v1/nodes', {
        body: { driver: 'no-such-driver', driver_info: { ipmi_password: SECRET } },
      }),
      await call('DELETE', '/v1/nodes/no-such-node'),
      await call('PATCH', `/v1/nodes/${node}`, {
        as: api.reader,
        body: [{ op: 'add', path: '/extra/x', value: 1 }],
      }),
      await call('POST', '/v1/sites', { as: null, body: { name: 'nobody-site' } }),
      await call('POST', '/v1/agents/enroll', {
        as: null,
        body: { token: 'mpe_wrong_wrong', hostname: 'h', drivers: [] },
      }),
    ];
    for (const answer of failed) expect(answer.status).toBeGreaterThanOrEqual(400);
    const after = await allRecords();
    expect(after).toHaveLength(before);
    const ids = new Set([...reads, ...failed].map((answer) => answer.requestId));
    expect(after.filter((record) => ids.has(record.request_id))).toEqual([]);
  });

  it("leaves out the agents' channel but records a credential rotation", async () => {
    await ok('POST', '/v1/sites', { body: { name: 'audit-dc2' } });
    const minted = await ok('POST', '/v1/sites/audit-dc2/agents');
    const enrolled = await ok('POST', '/v1/agents/enroll', {
      as: null,
      body: { token: minted.body.token, hostname: 'audit-agent2', drivers: ['fake-hardware'] },
    });
    const bearer = { as: null, headers: { Authorization: `Bearer ${enrolled.body.credential}` } };
    const message = await call('POST', '/v1/agent/messages', {
      ...bearer,
      body: { v: 1, type: 'hello', hostname: 'audit-agent2', drivers: ['fake-hardware'], agent_version: 't' },
    });
    expect(message.status).toBeLessThan(500);
    const rotated = await ok('POST', '/v1/agents/audit-agent2/credentials', bearer);
    const records = await allRecords();
    expect(records.filter((record) => record.request_id === message.requestId)).toEqual([]);
    expect(records.find((record) => record.request_id === rotated.requestId)).toMatchObject({
      actor: { kind: 'agent', name: 'audit-agent2', site: 'audit-dc2' },
      route: '/v1/agents/{hostname}/credentials',
      resource_type: 'agent',
      resource: 'audit-agent2',
    });
    expect(JSON.stringify(records)).not.toContain(rotated.body.credential);
  });
});

describe('audit trail: reading it', () => {
  it('lists newest first, and pages with limit/marker and next links', async () => {
    const all = await allRecords();
    expect(all.length).toBeGreaterThan(15);
    const ids = all.map((record) => record.id);
    expect([...ids].sort().reverse()).toEqual(ids);
    const times = all.map((record) => Date.parse(record.created_at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const paged = await allRecords('', 3);
    expect(paged.map((record) => record.id)).toEqual(ids);
    const first = await ok('GET', '/v1/audit?limit=2');
    expect(first.body.audit).toHaveLength(2);
    expect(first.body.next).toContain(`marker=${first.body.audit[1].id}`);
    expect(first.body.next).toContain('limit=2');
    const defaulted = await ok('GET', '/v1/audit');
    expect(defaulted.body.audit.length).toBe(Math.min(all.length, 100));
  });

  it('filters by actor', async () => {
    const member = await allRecords(`actor=${api.member1.username}`);
    expect(member.map((record) => record.request_id)).toEqual([
      (changes.get('node patch by member') as Answer).requestId,
    ]);
    const admin = await allRecords(`actor=${api.admin.username}`, 2);
    expect(admin.length).toBeGreaterThan(10);
    expect(admin.every((record) => record.actor.name === api.admin.username)).toBe(true);
    expect(await allRecords('actor=nobody-at-all')).toEqual([]);
  });

  it('filters by resource: uuid or name, with or without its type, and with an actor', async () => {
    const byUuid = await allRecords(`resource_type=node&resource=${node.toUpperCase()}`);
    expect(byUuid.map((record) => record.request_id).sort()).toEqual(
      ['node create', 'node patch', 'node patch by member', 'power']
        .map((change) => (changes.get(change) as Answer).requestId)
        .sort(),
    );
    expect(await allRecords(`resource=${node}`)).toEqual(byUuid);
    const byName = await allRecords('resource_type=node&resource=audit-named');
    expect(byName.map((record) => record.route).sort()).toEqual([
      '/v1/nodes',
      '/v1/nodes/{node}/states/provision',
    ]);
    expect(byName.find((record) => record.route === '/v1/nodes')?.resource).toBe(namedNode);
    expect(await allRecords('resource=audit-named')).toEqual(byName);
    const memberOnNode = await allRecords(
      `resource_type=node&resource=${node}&actor=${api.member1.username}`,
    );
    expect(memberOnNode).toHaveLength(1);
    const ports = await allRecords('resource_type=port');
    expect(ports.map((record) => record.method).sort()).toEqual(['DELETE', 'PATCH', 'POST']);
    const paged = await allRecords(`resource_type=node&resource=${node}`, 1);
    expect(paged).toEqual(byUuid);
  });

  it('filters by time', async () => {
    const all = await allRecords();
    const middle = all[Math.floor(all.length / 2)];
    const since = await allRecords(`since=${encodeURIComponent(middle.created_at)}`);
    expect(since.every((record) => record.created_at >= middle.created_at)).toBe(true);
    expect(since.map((record) => record.id)).toContain(middle.id);
    const until = await allRecords(`until=${encodeURIComponent(middle.created_at)}`);
    expect(until.every((record) => record.created_at <= middle.created_at)).toBe(true);
    expect(since.length + until.length).toBeGreaterThanOrEqual(all.length);
    expect(await allRecords('since=2000-01-01&until=2000-01-02')).toEqual([]);
  });

  it('shows one record', async () => {
    const [latest] = await allRecords('', 1);
    const one = await ok('GET', `/v1/audit/${latest.id}`);
    expect(one.body).toEqual(latest);
    expect((await call('GET', '/v1/audit/00000000-0000-7000-8000-000000000000')).status).toBe(404);
    expect((await call('GET', '/v1/audit/not-a-uuid')).status).toBe(404);
  });

  it('refuses bad queries', async () => {
    for (const query of [
      'limit=0',
      'limit=x',
      'marker=nope',
      'resource_type=widget',
      'since=yesterday',
      'colour=red',
      'actor=',
    ]) {
      expect((await call('GET', `/v1/audit?${query}`)).status, query).toBe(400);
    }
    expect((await ok('GET', '/v1/audit?limit=5000')).status).toBe(200);
  });

  it('is for admins and readers only', async () => {
    expect((await call('GET', '/v1/audit', { as: api.reader })).status).toBe(200);
    const [latest] = await allRecords('', 1);
    expect((await call('GET', `/v1/audit/${latest.id}`, { as: api.reader })).status).toBe(200);
    for (const as of [api.member1, api.member2]) {
      expect((await call('GET', '/v1/audit', { as })).status).toBe(403);
      expect((await call('GET', `/v1/audit/${latest.id}`, { as })).status).toBe(403);
    }
    expect((await call('GET', '/v1/audit', { as: null })).status).toBe(401);
    const bearer = { as: null, headers: { Authorization: `Bearer ${agentCredential}` } };
    // The first agent was deleted (its credential is refused); a live one is forbidden.
    expect((await call('GET', '/v1/audit', bearer)).status).toBe(401);
  });
});

describe('audit trail: retention and failures', () => {
  it('sets the TTL from METALPLANE_AUDIT_RETENTION_DAYS (default 365)', async () => {
    const saved = process.env[RETENTION_ENV];
    try {
      delete process.env[RETENTION_ENV];
      const byDefault = await recordOf(
        await ok('PATCH', '/v1/sites/audit-dc', { body: [{ op: 'add', path: '/description', value: 'a' }] }),
      );
      expect(await audit.expiryOf(byDefault.id)).toBe(
        Math.floor(Date.parse(byDefault.created_at) / 1000) + 365 * 86_400,
      );
      process.env[RETENTION_ENV] = '7';
      const short = await recordOf(
        await ok('PATCH', '/v1/sites/audit-dc', { body: [{ op: 'add', path: '/description', value: 'b' }] }),
      );
      expect(await audit.expiryOf(short.id)).toBe(
        Math.floor(Date.parse(short.created_at) / 1000) + 7 * 86_400,
      );
    } finally {
      if (saved === undefined) delete process.env[RETENTION_ENV];
      else process.env[RETENTION_ENV] = saved;
    }
  });

  it('answers the change when the record cannot be written, and logs it with a metric', async () => {
    const logger = new Logger({ logLevel: 'SILENT' });
    const errors = vi.spyOn(logger, 'error');
    const failing = createApiHandler(
      buildRouter(api.deps, audit),
      logger,
      authenticatorFromEnv(api.deps),
      async () => {
        throw new Error('table unavailable');
      },
    );
    const result = (await failing(
      event('POST', '/v1/sites', { name: 'audit-failopen' }),
      lambdaContext('metalplane-api', 10_000),
    )) as ApiResult;
    expect(result.statusCode).toBe(201);
    expect((await call('GET', '/v1/sites/audit-failopen')).status).toBe(200);
    expect(errors).toHaveBeenCalledWith(
      'audit record not written',
      expect.objectContaining({
        AuditWriteFailures: 1,
        auditRecord: expect.objectContaining({ route: '/v1/sites' }),
      }),
    );
  });

  it("records API Gateway's source IP and request id as the event carries them", async () => {
    const result = (await handler(
      event('POST', '/v1/sites', { name: 'audit-from-far' }),
      lambdaContext('metalplane-api', 10_000),
    )) as ApiResult;
    expect(result.statusCode).toBe(201);
    const requestId = (result.headers as Record<string, string>)['X-OpenStack-Request-Id'];
    const record = (await allRecords()).find((candidate) => candidate.request_id === requestId);
    expect(record).toMatchObject({
      source_ip: '203.0.113.7',
      gateway_request_id: 'gw-request-1',
      user_agent: 'audit-test/1.0',
      resource: 'audit-from-far',
    });
  });
});

function event(method: string, path: string, body: unknown): APIGatewayProxyEventV2 {
  const { username, password } = api.admin;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {
      authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
      'content-type': 'application/json',
      'x-openstack-ironic-api-version': '1.82',
      host: 'api.example.test',
    },
    requestContext: {
      accountId: '000000000000',
      apiId: 'test',
      domainName: 'api.example.test',
      domainPrefix: 'api',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'audit-test/1.0' },
      requestId: 'gw-request-1',
      routeKey: '$default',
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}
