/** Authentication (HTTP Basic users, bearer tokens) and roles, through the real handler. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api.close());

describe('authentication', () => {
  it('GET / and GET /v1 need no credential', async () => {
    expect((await api.call('GET', '/', { as: null, version: null })).status).toBe(200);
    expect((await api.call('GET', '/v1', { as: null })).status).toBe(200);
  });

  it.each(['/v1/nodes', '/v1/drivers', '/v1/no-such-path', '/v1/openapi.json'])(
    '%s without a credential is 401 with WWW-Authenticate, and reveals nothing',
    async (path) => {
      const refused = await api.call('GET', path, { as: null });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      expect(refused.fault?.faultcode).toBe('Client');
    },
  );

  it('a wrong password, an unknown user and a malformed header are 401', async () => {
    expect(
      (
        await api.call('GET', '/v1/nodes', {
          as: { username: api.admin.username, password: 'wrong-password' },
        })
      ).status,
    ).toBe(401);
    expect(
      (await api.call('GET', '/v1/nodes', { as: { username: 'nobody', password: 'whatever-123' } })).status,
    ).toBe(401);
    for (const header of [
      'Basic',
      'Basic !!!',
      'Basic Zm9v',
      'Negotiate abc',
      'Bearer nonsense',
      `Bearer ${'x'.repeat(9000)}`,
    ]) {
      expect(
        (await api.call('GET', '/v1/nodes', { as: null, headers: { Authorization: header } })).status,
        header,
      ).toBe(401);
    }
  });

  it('the password is stored only as a scrypt hash and never shown', async () => {
    const stored = await api.deps.store.get<{ password_hash: string }>('user', api.admin.username);
    expect(stored?.doc.password_hash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(stored?.doc)).not.toContain(api.admin.password);
    const shown = await api.call('GET', `/v1/users/${api.admin.username}`);
    expect(shown.body).not.toHaveProperty('password_hash');
  });
});

describe('bearer tokens', () => {
  it('a token works until revoked; its secret is shown once and stored hashed', async () => {
    const created = await api.call('POST', `/v1/users/${api.reader.username}/tokens`, {
      as: api.reader,
      body: { description: 'ci' },
    });
    expect(created.status).toBe(201);
    const token = created.body.token as string;
    expect(token).toMatch(/^mpt_/);
    const bearer = { as: null, headers: { Authorization: `Bearer ${token}` } } as const;
    expect((await api.call('GET', '/v1/nodes', bearer)).status).toBe(200);
    const stored = await api.deps.store.get<Record<string, unknown>>('token', created.body.id);
    expect(JSON.stringify(stored?.doc)).not.toContain(token.slice(-43)); // the secret: the last 43 characters
    const listed = await api.call('GET', `/v1/users/${api.reader.username}/tokens`, { as: api.reader });
    expect(listed.body.tokens[0]).not.toHaveProperty('token');
    expect(
      (
        await api.call('DELETE', `/v1/users/${api.reader.username}/tokens/${created.body.id}`, {
          as: api.reader,
        })
      ).status,
    ).toBe(204);
    expect((await api.call('GET', '/v1/nodes', bearer)).status).toBe(401);
  });

  it('a tampered token is refused', async () => {
    const created = await api.call('POST', `/v1/users/${api.admin.username}/tokens`, { body: {} });
    const token = created.body.token as string;
    const tampered = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
    expect(
      (await api.call('GET', '/v1/nodes', { as: null, headers: { Authorization: `Bearer ${tampered}` } }))
        .status,
    ).toBe(401);
  });

  it('a user cannot manage another user tokens', async () => {
    expect((await api.call('GET', `/v1/users/${api.admin.username}/tokens`, { as: api.reader })).status).toBe(
      403,
    );
  });
});

describe('roles', () => {
  let ownedByP1: string;
  let leasedToP2: string;
  let other: string;
  beforeAll(async () => {
    ownedByP1 = (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', owner: 'p1' } })).body
      .uuid;
    leasedToP2 = (
      await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', owner: 'p1', lessee: 'p2' } })
    ).body.uuid;
    other = (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } })).body.uuid;
  });

  it('a reader reads everything and changes nothing (403)', async () => {
    expect((await api.call('GET', `/v1/nodes/${other}`, { as: api.reader })).status).toBe(200);
    expect(
      (await api.call('POST', '/v1/nodes', { as: api.reader, body: { driver: 'fake-hardware' } })).status,
    ).toBe(403);
    const patch = await api.call('PATCH', `/v1/nodes/${other}`, {
      as: api.reader,
      body: [{ op: 'add', path: '/extra/x', value: 1 }],
    });
    expect(patch.status).toBe(403);
    expect((await api.call('GET', `/v1/nodes/${other}`)).body.extra).toStrictEqual({});
  });

  it('a member sees only nodes its project owns or leases; others are 404', async () => {
    const list1 = await api.call('GET', '/v1/nodes', { as: api.member1 });
    expect(list1.body.nodes.map((node: { uuid: string }) => node.uuid).sort()).toStrictEqual(
      [ownedByP1, leasedToP2].sort(),
    );
    const list2 = await api.call('GET', '/v1/nodes', { as: api.member2 });
    expect(list2.body.nodes.map((node: { uuid: string }) => node.uuid)).toStrictEqual([leasedToP2]);
    expect((await api.call('GET', `/v1/nodes/${other}`, { as: api.member1 })).status).toBe(404);
    expect((await api.call('GET', `/v1/nodes/${ownedByP1}`, { as: api.member2 })).status).toBe(404);
  });

  it("a member asking for another project's nodes is refused (403), on both listings; its own project is fine", async () => {
    for (const path of ['/v1/nodes?project=p1', '/v1/nodes/detail?project=p1']) {
      const refused = await api.call('GET', path, { as: api.member2 });
      expect(refused.status).toBe(403);
      expect(JSON.stringify(refused.body)).not.toContain(ownedByP1);
    }
    const own = await api.call('GET', '/v1/nodes?project=p2', { as: api.member2 });
    expect(own.status).toBe(200);
    expect(own.body.nodes.map((node: { uuid: string }) => node.uuid)).toStrictEqual([leasedToP2]);
    // An admin may name any project.
    const admin = await api.call('GET', '/v1/nodes?project=p1');
    expect(admin.body.nodes.map((node: { uuid: string }) => node.uuid).sort()).toStrictEqual(
      [ownedByP1, leasedToP2].sort(),
    );
  });

  it('a member may patch extra on its node, not driver_info, and may not create or delete nodes', async () => {
    const ok = await api.call('PATCH', `/v1/nodes/${ownedByP1}`, {
      as: api.member1,
      body: [{ op: 'add', path: '/extra/team', value: 'a' }],
    });
    expect(ok.status).toBe(200);
    const refused = await api.call('PATCH', `/v1/nodes/${ownedByP1}`, {
      as: api.member1,
      body: [{ op: 'add', path: '/driver_info/ipmi_address', value: '10.0.0.1' }],
    });
    expect(refused.status).toBe(403);
    expect(
      (await api.call('POST', '/v1/nodes', { as: api.member1, body: { driver: 'fake-hardware' } })).status,
    ).toBe(403);
    expect((await api.call('DELETE', `/v1/nodes/${ownedByP1}`, { as: api.member1 })).status).toBe(403);
  });

  it('no role sees a secret in clear', async () => {
    await api.call('PATCH', `/v1/nodes/${ownedByP1}`, {
      body: [{ op: 'add', path: '/driver_info/ipmi_password', value: 'hunter22' }],
    });
    for (const who of [api.admin, api.reader, api.member1]) {
      const shown = await api.call('GET', `/v1/nodes/${ownedByP1}`, { as: who });
      expect(shown.body.driver_info.ipmi_password, who.username).toBe('******');
      expect(JSON.stringify(shown.body)).not.toContain('hunter22');
    }
  });

  it('only an admin manages users', async () => {
    const body = { name: 'new-user', password: 'long-enough-pw', role: 'reader' };
    expect((await api.call('POST', '/v1/users', { as: api.reader, body })).status).toBe(403);
    expect((await api.call('POST', '/v1/users', { body })).status).toBe(201);
    expect(
      (await api.call('GET', '/v1/nodes', { as: { username: 'new-user', password: 'long-enough-pw' } }))
        .status,
    ).toBe(200);
    expect(
      (await api.call('POST', '/v1/users', { body: { ...body, name: 'weak', password: 'short' } })).status,
    ).toBe(400);
    expect(
      (await api.call('POST', '/v1/users', { body: { ...body, name: 'm', role: 'member' } })).status,
    ).toBe(400);
  });
});
