/**
 * Agents: one-time enrollment tokens, credentials (hashed, rotated without downtime,
 * revoked at once on HTTPS and on the socket), and agents as Ironic conductors.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentClient } from '../../lambda/adapters/dynamo/client.ts';
import { itemKey } from '../../lambda/adapters/dynamo/inventory-store.ts';
import { mintEnrollmentToken } from '../../lambda/domain/auth/tokens.ts';
import { type ChannelStack, startChannel, WAIT_MS, waitFor } from '../support/channel.ts';

let stack: ChannelStack;
beforeAll(async () => {
  stack = await startChannel();
  for (const site of ['en-a', 'en-b']) expect((await stack.createSite(site)).status).toBe(201);
});
afterAll(() => stack?.close());

const call = (...args: Parameters<ChannelStack['api']['call']>) => stack.api.call(...args);

async function rawItem(kind: string, id: string) {
  const { Item } = await documentClient().send(
    new GetCommand({ TableName: process.env.METALPLANE_INVENTORY_TABLE, Key: itemKey(kind, id) }),
  );
  return Item;
}

async function mint(site: string) {
  const minted = await call('POST', `/v1/sites/${site}/agents`);
  expect(minted.status).toBe(201);
  return minted.body as { token: string; site: string; expires_at: string; enroll_url: string };
}

const enroll = (body: unknown) => call('POST', '/v1/agents/enroll', { as: null, body });

describe('enrollment tokens', () => {
  it('are minted by admins for an existing site: mpe_, 15 minutes, stored only hashed', async () => {
    const before = Date.now();
    const minted = await mint('en-a');
    expect(minted.token).toMatch(/^mpe_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$/);
    expect(minted.site).toBe('en-a');
    expect(minted.enroll_url).toBe(`${stack.api.url}/v1/agents/enroll`);
    const lifetime = Date.parse(minted.expires_at) - before;
    expect(lifetime).toBeGreaterThan(14 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(15 * 60_000 + 5000);
    const id = minted.token.slice(4, 26);
    const secret = minted.token.slice(27);
    const stored = JSON.stringify(await rawItem('enrollment_token', id));
    expect(stored).toContain('secret_hash');
    expect(stored).not.toContain(secret);
  });

  it('are refused to readers and members, and for unknown sites', async () => {
    expect((await call('POST', '/v1/sites/en-a/agents', { as: stack.api.reader })).status).toBe(403);
    expect((await call('POST', '/v1/sites/en-a/agents', { as: stack.api.member1 })).status).toBe(403);
    expect((await call('POST', '/v1/sites/nowhere/agents')).status).toBe(404);
  });
});

describe('enrollment', () => {
  it('trades the token, without user credentials, for a credential shown once', async () => {
    const minted = await mint('en-a');
    const enrolled = await enroll({
      token: minted.token,
      hostname: 'en-a-1',
      drivers: ['fake-hardware', 'ipmi'],
    });
    expect(enrolled.status).toBe(201);
    expect(enrolled.body).toMatchObject({
      hostname: 'en-a-1',
      site: 'en-a',
      drivers: ['fake-hardware', 'ipmi'],
    });
    expect(enrolled.body.credential).toMatch(/^mpa_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$/);
    const stored = JSON.stringify(await rawItem('agent_credential', enrolled.body.credential_id));
    expect(stored).not.toContain(enrolled.body.credential.slice(27));
    const shown = await call('GET', '/v1/agents/en-a-1');
    expect(shown.body).toMatchObject({ hostname: 'en-a-1', site: 'en-a', alive: false, connections: 0 });
    expect(JSON.stringify(shown.body)).not.toContain('secret_hash');
    expect(shown.body.credentials).toHaveLength(1);
  });

  it('accepts a token once', async () => {
    const minted = await mint('en-a');
    expect((await enroll({ token: minted.token, hostname: 'en-a-2', drivers: [] })).status).toBe(201);
    const again = await enroll({ token: minted.token, hostname: 'en-a-3', drivers: [] });
    expect(again.status).toBe(400);
    expect((await call('GET', '/v1/agents/en-a-3')).status).toBe(404);
  });

  it('lets one of two concurrent enrollments with one token win', async () => {
    const minted = await mint('en-a');
    const outcomes = await Promise.all(
      ['en-a-race-1', 'en-a-race-2', 'en-a-race-3'].map((hostname) =>
        enroll({ token: minted.token, hostname, drivers: [] }),
      ),
    );
    expect(outcomes.map((outcome) => outcome.status).sort()).toStrictEqual([201, 400, 400].sort());
  });

  it('refuses an expired, a forged, a malformed token, and a bad body', async () => {
    const { store } = stack.api.deps;
    const expired = mintEnrollmentToken();
    const past = new Date(Date.now() - 60_000).toISOString();
    await stack.runtime.credentials.agents.createEnrollmentToken({
      id: expired.id,
      site: 'en-a',
      secret_hash: expired.secretHash,
      created_at: past,
      expires_at: past,
      created_by: 'test',
      used_at: null,
      used_by: null,
    });
    expect(store).toBeDefined();
    expect((await enroll({ token: expired.token, hostname: 'en-a-4', drivers: [] })).status).toBe(400);
    const minted = await mint('en-a');
    const forged = `${minted.token.slice(0, -3)}${minted.token.endsWith('AAA') ? 'BBB' : 'AAA'}`;
    expect((await enroll({ token: forged, hostname: 'en-a-4', drivers: [] })).status).toBe(400);
    expect((await enroll({ token: 'mpe_short', hostname: 'en-a-4', drivers: [] })).status).toBe(400);
    expect((await enroll({ token: minted.token, hostname: '-bad host', drivers: [] })).status).toBe(400);
    expect((await enroll({ token: minted.token, hostname: 'en-a-4' })).status).toBe(400);
    expect((await enroll({ token: minted.token, hostname: 'en-a-4', drivers: [], extra: 1 })).status).toBe(
      400,
    );
    // Still unused after all that.
    expect((await enroll({ token: minted.token, hostname: 'en-a-4', drivers: [] })).status).toBe(201);
  });

  it('re-enrolls a host in its site (older credentials revoked), never into another site', async () => {
    const first = await stack.enroll('en-a', 'en-a-re');
    const second = await stack.enroll('en-a', 'en-a-re');
    expect((await stack.asAgent(first.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
    expect((await stack.asAgent(second.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(200);
    const minted = await mint('en-b');
    const moved = await enroll({ token: minted.token, hostname: 'en-a-re', drivers: [] });
    expect(moved.status).toBe(409);
    expect(moved.fault?.faultstring).toMatch(/enrolled in site en-a/);
  });
});

describe('agents as conductors', () => {
  it('shows in /v1/agents, /v1/conductors and as a driver host once it says hello', async () => {
    const agent = await stack.enroll('en-b', 'en-b-conductor');
    const listed = await call('GET', '/v1/agents?site=en-b');
    expect(listed.body.agents.map((a: { hostname: string }) => a.hostname)).toStrictEqual(['en-b-conductor']);
    expect((await call('GET', '/v1/agents', { as: stack.api.reader })).status).toBe(200);
    expect((await call('GET', '/v1/agents', { as: stack.api.member1 })).status).toBe(403);
    const socket = await stack.connect(agent.credential);
    socket.send({
      v: 1,
      type: 'hello',
      hostname: agent.hostname,
      agent_version: '0.1.0',
      drivers: ['ipmi', 'fake-hardware'],
    });
    const conductor = await waitFor(async () => {
      const shown = await call('GET', `/v1/conductors/${agent.hostname}`);
      return shown.body?.alive ? shown.body : undefined;
    }, 'alive');
    expect(conductor).toMatchObject({
      hostname: 'en-b-conductor',
      conductor_group: 'en-b',
      drivers: ['fake-hardware', 'ipmi'],
    });
    const driver = await call('GET', '/v1/drivers/ipmi');
    expect(driver.body.hosts).toContain('en-b-conductor');
    const shown = await call('GET', `/v1/agents/${agent.hostname}`);
    expect(shown.body).toMatchObject({ agent_version: '0.1.0', alive: true, connections: 1 });
    await socket.close();
  });
});

describe('credentials', () => {
  it('authenticate the agent on its routes only: the Ironic API refuses it', async () => {
    const agent = await stack.enroll('en-a', 'en-a-scope');
    expect((await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(200);
    for (const [method, path] of [
      ['GET', '/v1/nodes'],
      ['GET', '/v1/sites'],
      ['GET', '/v1/agents'],
      ['GET', '/v1/conductors'],
      ['POST', '/v1/sites/en-a/agents'],
      ['DELETE', '/v1/agents/en-a-scope/credentials'],
      ['POST', '/v1/agents/en-a-1/credentials'],
    ] as const) {
      expect((await stack.asAgent(agent.credential, method, path)).status, `${method} ${path}`).toBe(403);
    }
  });

  it('rotate without downtime: the old one works until the new one is used', async () => {
    const agent = await stack.enroll('en-a', 'en-a-rot');
    const old = agent.credential;
    const socketOld = await stack.connect(old);
    const rotated = await stack.asAgent(old, 'POST', '/v1/agents/en-a-rot/credentials');
    expect(rotated.status).toBe(201);
    const fresh = rotated.body.credential as string;
    expect(fresh).toMatch(/^mpa_/);
    const graceEnd = Date.parse(rotated.body.previous_credentials_expire_at);
    expect(graceEnd - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(graceEnd - Date.now()).toBeLessThanOrEqual(10 * 60_000);
    // The old one still works (grace), over HTTPS and on its socket.
    expect((await stack.asAgent(old, 'GET', '/v1/agent/commands?wait=0')).status).toBe(200);
    expect(await socketOld.pull()).toStrictEqual([]);
    // The new one's first use ends the grace: the old one is refused, its socket closed.
    expect((await stack.asAgent(fresh, 'GET', '/v1/agent/commands?wait=0')).status).toBe(200);
    expect((await stack.asAgent(old, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
    await waitFor(() => socketOld.closed, 'the old socket to close');
    await expect(stack.connect(old)).rejects.toMatchObject({ status: 401 });
    const socketNew = await stack.connect(fresh);
    expect(await socketNew.pull()).toStrictEqual([]);
    await socketNew.close();
  });

  it('end the grace of the old one when it runs out, on HTTPS and on the socket', async () => {
    const agent = await stack.enroll('en-a', 'en-a-grace');
    const socket = await stack.connect(agent.credential);
    expect((await stack.asAgent(agent.credential, 'POST', '/v1/agents/en-a-grace/credentials')).status).toBe(
      201,
    );
    // Let the grace run out: rewrite the old credential's end into the past.
    const id = agent.credential.slice(4, 26);
    const agents = stack.runtime.credentials.agents;
    const found = await agents.getCredential(id);
    const past = new Date(Date.now() - 1000).toISOString();
    await agents.updateCredential({ doc: { ...found!.doc, expires_at: past }, version: found!.version });
    const sockets = await stack.runtime.connections.ofSite('en-a');
    await stack.runtime.connections.setCredentialExpiry(
      sockets.filter((s) => s.credentialId === id),
      past,
    );
    expect((await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
    socket.send({ v: 1, type: 'pull', max: 1 });
    const error = await socket.next('error');
    expect(error.message).toMatch(/revoked or expired/);
    await waitFor(() => socket.closed, 'the socket to close');
  });

  it('revoked: refused at once, on HTTPS and on the socket', async () => {
    const agent = await stack.enroll('en-a', 'en-a-rev');
    const socket = await stack.connect(agent.credential);
    expect(await socket.pull()).toStrictEqual([]);
    expect((await call('DELETE', '/v1/agents/en-a-rev/credentials')).status).toBe(204);
    // At once: the revocation itself closes the socket (the agent sends nothing more that
    // could be refused), with a normal closure from the gateway's side.
    await waitFor(() => socket.closed, 'the socket to close', WAIT_MS);
    expect(socket.closed?.code).toBe(1000);
    expect((await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
    expect(
      (await stack.asAgent(agent.credential, 'POST', '/v1/agent/messages', { v: 1, type: 'pull', max: 1 }))
        .status,
    ).toBe(401);
    await expect(stack.connect(agent.credential)).rejects.toMatchObject({ status: 401 });
    const shown = await call('GET', '/v1/agents/en-a-rev');
    expect(shown.body.credentials.every((c: { revoked: boolean }) => c.revoked)).toBe(true);
    expect(shown.body.connections).toBe(0);
    // Revoking is for admins.
    expect((await call('DELETE', '/v1/agents/en-a-1/credentials', { as: stack.api.reader })).status).toBe(
      403,
    );
  });

  it('deleting an agent revokes it and removes it from the conductors', async () => {
    const agent = await stack.enroll('en-b', 'en-b-del');
    expect((await call('DELETE', '/v1/agents/en-b-del', { as: stack.api.reader })).status).toBe(403);
    expect((await call('DELETE', '/v1/agents/en-b-del')).status).toBe(204);
    expect((await call('GET', '/v1/agents/en-b-del')).status).toBe(404);
    expect((await call('GET', '/v1/conductors/en-b-del')).status).toBe(404);
    expect((await stack.asAgent(agent.credential, 'GET', '/v1/agent/commands?wait=0')).status).toBe(401);
    expect((await call('DELETE', '/v1/agents/en-b-del')).status).toBe(404);
  });
});
