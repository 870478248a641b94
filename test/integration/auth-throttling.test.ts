/**
 * Throttling and lockout (issue 12), through the real handler on moto: failed-password
 * backoff per user name, kept in DynamoDB (a second authenticator, as another Lambda
 * container or a restarted one, sees it), which the admin sees and clears; unknown names
 * treated exactly as known ones; and the per-credential rate limit (429, Retry-After).
 *
 * Time is a hand-moved clock given to the authenticators: no test waits for a lock to
 * end. The clock starts an hour ahead of the real one, so that the admin API (on the
 * real clock) sees every lock as running.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { documentClient } from '../../lambda/adapters/dynamo/client.ts';
import { UserRepository } from '../../lambda/adapters/dynamo/user-repository.ts';
import { buildRouter } from '../../lambda/api/app.ts';
import {
  type AuthenticatorOptions,
  authenticatorFromEnv,
  credentialAuthenticator,
} from '../../lambda/api/authentication.ts';
import { hashPassword } from '../../lambda/domain/auth/passwords.ts';
import { RATE_LIMIT_BURST_ENV, RATE_LIMIT_RPS_ENV } from '../../lambda/domain/auth/rate-limit.ts';
import { ApiError, errorBody } from '../../lambda/http/errors.ts';
import { createApiHandler } from '../../lambda/http/middlewares.ts';
import { startHttpGateway } from '../../local/http-gateway.ts';
import { type Credentials, startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
let now = 0;
const clock = () => now;
const closers: Array<() => Promise<void>> = [];

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  readonly fault?: { faultcode: string; faultstring: string; debuginfo: null };
}

/** One more "container": the real router and handler, its own authenticator on the test clock. */
async function container(options: AuthenticatorOptions = {}) {
  const authenticate = credentialAuthenticator(new UserRepository(api.deps.store), undefined, {
    clock,
    rateLimit: null,
    ...options,
  });
  const handler = createApiHandler(buildRouter(api.deps), new Logger({ logLevel: 'SILENT' }), authenticate);
  const gateway = await startHttpGateway({ handler });
  closers.push(() => gateway.close());
  return {
    authenticate,
    call: async (method: string, path: string, as: Credentials): Promise<Answer> => {
      const basic = Buffer.from(`${as.username}:${as.password}`).toString('base64');
      const response = await fetch(`${gateway.url}${path}`, {
        method,
        headers: { Authorization: `Basic ${basic}`, 'X-OpenStack-Ironic-API-Version': '1.82' },
        signal: AbortSignal.timeout(15_000),
      });
      const text = await response.text();
      const body = text === '' ? undefined : JSON.parse(text);
      const fault = typeof body?.error_message === 'string' ? JSON.parse(body.error_message) : undefined;
      return { status: response.status, headers: response.headers, body, fault };
    },
  };
}

type Container = Awaited<ReturnType<typeof container>>;

async function createUser(name: string): Promise<Credentials> {
  const password = `${name}-password-${api.prefix}`;
  await new UserRepository(api.deps.store).create({
    name,
    role: 'reader',
    project: null,
    password_hash: await hashPassword(password),
    created_at: api.deps.now(),
    updated_at: null,
  });
  return { username: name, password };
}

const wrong = (who: Credentials): Credentials => ({ username: who.username, password: 'not-the-password' });

async function failTimes(c: Container, who: Credentials, times: number): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (let i = 0; i < times; i++) answers.push(await c.call('GET', '/v1/nodes', wrong(who)));
  return answers;
}

const LOCKED =
  /^This account is temporarily locked after repeated failed logins; retry after (\S+) \(in (\d+) s\)\.$/;

function expectLocked(answer: Answer, seconds: number, until = now + seconds * 1000): void {
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
  expect(answer.headers.get('retry-after')).toBe(String(seconds));
  expect(Object.keys(answer.body)).toEqual(['error_message']);
  expect(answer.fault).toEqual({
    faultcode: 'Client',
    faultstring: expect.stringMatching(LOCKED),
    debuginfo: null,
  });
  const [, shown, inSeconds] = LOCKED.exec(answer.fault?.faultstring ?? '') ?? [];
  expect(Date.parse(shown as string)).toBe(until);
  expect(inSeconds).toBe(String(seconds));
}

function expectInvalid(answer: Answer): void {
  expect(answer.status).toBe(401);
  expect(answer.fault).toEqual({
    faultcode: 'Client',
    faultstring: 'Invalid username or password',
    debuginfo: null,
  });
  expect(answer.headers.get('retry-after')).toBeNull();
}

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  now = Date.now() + 3_600_000;
});
afterAll(async () => {
  for (const close of closers) await close();
  await api?.close();
});

describe('failed-password backoff', () => {
  it('5 wrong passwords lock the name; the right one is then refused with 401 and when to retry', async () => {
    const victim = await createUser('lock-victim');
    const a = await container();
    expect((await a.call('GET', '/v1/nodes', victim)).status).toBe(200);
    const failures = await failTimes(a, victim, 5);
    for (const answer of failures) expectInvalid(answer);
    expectLocked(await a.call('GET', '/v1/nodes', victim), 1);
    // A refused attempt during the lock is not a failure: the lock does not grow.
    expectLocked(await a.call('GET', '/v1/nodes', wrong(victim)), 1);

    // Another container, or this one restarted: the lock is in DynamoDB, not in memory.
    const b = await container();
    expectLocked(await b.call('GET', '/v1/nodes', victim), 1);

    // The admin sees it (and only the admin), and clears it.
    const shown = await api.call('GET', '/v1/users/lock-victim');
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ name: 'lock-victim', failed_logins: 5 });
    expect(Date.parse(shown.body.locked_until)).toBe(now + 1000);
    expect((await api.call('GET', '/v1/users/lock-victim', { as: api.reader })).status).toBe(403);
    expect((await api.call('DELETE', '/v1/users/lock-victim/lockout', { as: api.reader })).status).toBe(403);
    expect((await api.call('DELETE', '/v1/users/lock-victim/lockout', { as: api.member1 })).status).toBe(403);
    expect((await api.call('DELETE', '/v1/users/lock-victim/lockout')).status).toBe(204);
    const cleared = await api.call('GET', '/v1/users/lock-victim');
    expect(cleared.body).toMatchObject({ failed_logins: 0, locked_until: null });
    expect((await api.call('DELETE', '/v1/users/lock-victim/lockout')).status).toBe(204);
    expect((await api.call('DELETE', '/v1/users/no-such-user/lockout')).status).toBe(404);

    // Both containers let the right password in again.
    expect((await a.call('GET', '/v1/nodes', victim)).status).toBe(200);
    expect((await b.call('GET', '/v1/nodes', victim)).status).toBe(200);
  });

  it('a lock ends by itself; each failure after one doubles the next; a success resets the count', async () => {
    const user = await createUser('lock-backoff');
    const a = await container();
    await failTimes(a, user, 5);
    expectLocked(await a.call('GET', '/v1/nodes', user), 1);
    now += 1000;
    expectInvalid((await failTimes(a, user, 1))[0] as Answer);
    expectLocked(await a.call('GET', '/v1/nodes', user), 2);
    now += 1999;
    expectLocked(await a.call('GET', '/v1/nodes', user), 1, now + 1);
    now += 1;
    expectInvalid((await failTimes(a, user, 1))[0] as Answer);
    expectLocked(await a.call('GET', '/v1/nodes', user), 4);
    now += 4000;
    expect((await api.call('GET', '/v1/users/lock-backoff')).body.failed_logins).toBe(7);
    expect((await a.call('GET', '/v1/nodes', user)).status).toBe(200);
    // The success reset the count: the record is gone, four failures lock nothing.
    expect(await api.deps.store.get('login', 'lock-backoff')).toBeUndefined();
    for (const answer of await failTimes(a, user, 4)) expectInvalid(answer);
    expect((await a.call('GET', '/v1/nodes', user)).status).toBe(200);
  });

  it('failures made at once on two containers are all counted, none past the lock, none a 5xx', async () => {
    const user = await createUser('lock-crowd');
    const [a, b] = [await container(), await container()];
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).call('GET', '/v1/nodes', wrong(user))),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(12).fill(401));
    // Version-checked writes: exactly the five that lock it, whatever the interleaving.
    expect((await api.call('GET', '/v1/users/lock-crowd')).body.failed_logins).toBe(5);
    expectLocked(await a.call('GET', '/v1/nodes', user), 1);
  });

  it('a successful login writes nothing when there was no failure', async () => {
    const user = await createUser('lock-quiet');
    const a = await container();
    expect((await a.call('GET', '/v1/nodes', user)).status).toBe(200);
    expect(await api.deps.store.get('login', 'lock-quiet')).toBeUndefined();
  });

  it('an unknown user name counts, locks and answers exactly as a known one', async () => {
    const known = await createUser('lock-twin');
    const unknown: Credentials = { username: 'lock-nobody', password: known.password };
    const a = await container();
    const strip = (answer: Answer) => ({
      status: answer.status,
      body: answer.body,
      headers: [...answer.headers.entries()].filter(
        ([name]) => !['date', 'x-openstack-request-id'].includes(name),
      ),
    });
    for (let i = 0; i < 5; i++) {
      const [k, u] = [
        await a.call('GET', '/v1/nodes', wrong(known)),
        await a.call('GET', '/v1/nodes', wrong(unknown)),
      ];
      expect(strip(u)).toEqual(strip(k));
    }
    const lockedKnown = await a.call('GET', '/v1/nodes', known);
    const lockedUnknown = await a.call('GET', '/v1/nodes', unknown);
    expectLocked(lockedUnknown, 1);
    expect(strip(lockedUnknown)).toEqual(strip(lockedKnown));
    // Its record expires (DynamoDB TTL on expiresAt), so random names leave nothing for long.
    const { Item: stored } = await documentClient().send(
      new GetCommand({
        TableName: process.env.METALPLANE_INVENTORY_TABLE,
        Key: { pk: 'login#lock-nobody', sk: 'item' },
        ConsistentRead: true,
      }),
    );
    expect(stored?.doc.failures).toBe(5);
    // A day after the last failure (the fake clock's), in epoch seconds.
    expect(stored?.expiresAt).toBe(Math.ceil((now + 86_400_000) / 1000));
    // A name that could never be a user is kept under a hash of it.
    const odd = await failTimes(a, { username: 'not a valid name ✓', password: 'x' }, 5);
    for (const answer of odd) expectInvalid(answer);
    expectLocked(await a.call('GET', '/v1/nodes', { username: 'not a valid name ✓', password: 'x' }), 1);
  });
});

describe('per-credential rate limit', () => {
  it('answers 429 with Retry-After and an Ironic body past the bucket; others and later requests pass', async () => {
    const c = await container({ rateLimit: { ratePerSecond: 1, burst: 3 } });
    for (let i = 0; i < 3; i++) expect((await c.call('GET', '/v1/nodes', api.reader)).status).toBe(200);
    const refused = await c.call('GET', '/v1/nodes', api.reader);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(Object.keys(refused.body)).toEqual(['error_message']);
    expect(refused.fault).toEqual({
      faultcode: 'Client',
      faultstring: 'Too many requests for this credential; retry after 1 s.',
      debuginfo: null,
    });
    // Another principal has its own bucket.
    expect((await c.call('GET', '/v1/nodes', api.member1)).status).toBe(200);
    now += 1000;
    expect((await c.call('GET', '/v1/nodes', api.reader)).status).toBe(200);
    expect((await c.call('GET', '/v1/nodes', api.reader)).status).toBe(429);
  });

  it('is read from METALPLANE_RATE_LIMIT_RPS and _BURST', async () => {
    const saved = { rps: process.env[RATE_LIMIT_RPS_ENV], burst: process.env[RATE_LIMIT_BURST_ENV] };
    // 0.001 rps: over any test's duration the bucket refills by far less than one request.
    process.env[RATE_LIMIT_RPS_ENV] = '0.001';
    process.env[RATE_LIMIT_BURST_ENV] = '2';
    try {
      const authenticate = authenticatorFromEnv(api.deps);
      const basic = Buffer.from(`${api.member2.username}:${api.member2.password}`).toString('base64');
      const headers = { authorization: `Basic ${basic}` };
      await authenticate(headers);
      await authenticate(headers);
      const refused = await authenticate(headers).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(ApiError);
      expect((refused as ApiError).status).toBe(429);
      expect((refused as ApiError).headers['Retry-After']).toBe('1000');
      expect(JSON.parse(JSON.parse(errorBody(refused as ApiError)).error_message)).toMatchObject({
        faultcode: 'Client',
      });
    } finally {
      for (const [name, value] of [
        [RATE_LIMIT_RPS_ENV, saved.rps],
        [RATE_LIMIT_BURST_ENV, saved.burst],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
