/**
 * /v1/users and their API tokens — Metalplane's own resources (Ironic delegates users
 * to Keystone or an htpasswd file). An admin manages users; every user may list, create
 * and revoke its own tokens. Secrets appear once, in the answer that creates them.
 *
 * An admin also sees a user's failed-login backoff (`failed_logins`, `locked_until` in
 * `GET /v1/users/{user}`) and clears it (`DELETE /v1/users/{user}/lockout`).
 */
import { UserRepository } from '../../adapters/dynamo/user-repository.ts';
import { currentFailures, lockedUntil } from '../../domain/auth/lockout.ts';
import { hashPassword, validatePassword } from '../../domain/auth/passwords.ts';
import { decide } from '../../domain/auth/policy.ts';
import { mintToken } from '../../domain/auth/tokens.ts';
import { forbidden, invalid, notFound } from '../../domain/errors.ts';
import { validator } from '../../domain/schema.ts';
import {
  type ApiToken,
  publicToken,
  publicUser,
  type User,
  validateRole,
  validateUserName,
} from '../../domain/users/user.ts';
import { resourceLinks } from '../../http/links.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, type Principal } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, parseLimit } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

/** The API description of the routes added here, for `OPERATIONS` in `../openapi.ts`. */
export const USER_OPERATIONS: Record<string, OperationDoc> = {
  'DELETE /v1/users/{user}/lockout': {
    summary: "Clear a user's failed-login lockout (admin)",
    tag: 'users',
    status: 204,
  },
};

const validateUserCreate = validator<{
  name: string;
  password: string;
  role: string;
  project?: string | null;
}>('user', {
  type: 'object',
  properties: {
    name: { type: 'string' },
    password: { type: 'string' },
    role: { type: 'string' },
    project: { type: ['string', 'null'] },
  },
  required: ['name', 'password', 'role'],
  additionalProperties: false,
});

const validateUserUpdate = validator<{ password?: string; role?: string; project?: string | null }>('user', {
  type: 'object',
  properties: {
    password: { type: 'string' },
    role: { type: 'string' },
    project: { type: ['string', 'null'] },
  },
  additionalProperties: false,
  minProperties: 1,
});

/** Token lifetime: 30 days unless asked otherwise, at most a year. */
const DEFAULT_TOKEN_SECONDS = 30 * 24 * 3600;
const MAX_TOKEN_SECONDS = 365 * 24 * 3600;

const validateTokenCreate = validator<{ description?: string | null; expires_in?: number }>('token', {
  type: 'object',
  properties: {
    description: { type: ['string', 'null'], maxLength: 255 },
    expires_in: { type: 'integer', minimum: 60, maximum: MAX_TOKEN_SECONDS },
  },
  additionalProperties: false,
});

function render(request: ApiRequest, user: User) {
  return { ...publicUser(user), links: resourceLinks(request.baseUrl, 'users', user.name) };
}

/** Admins manage anyone's tokens; a user its own. */
function authorizeTokens(request: ApiRequest, user: string): void {
  const principal = request.principal as Principal;
  if (principal.role === 'admin' || (principal.kind !== 'agent' && principal.name === user)) return;
  throw forbidden('Access was denied to this resource: tokens belong to their user.');
}

export function registerUserRoutes(router: Router, deps: Dependencies): void {
  const users = new UserRepository(deps.store);
  const find = async (name: string) => {
    const found = await users.get(name);
    if (!found) throw notFound(`User ${name} could not be found.`);
    return found;
  };

  router.on('GET', '/v1/users', async (request) => {
    authorize(request, 'user:list');
    const page = await users.list(parseLimit(request.query.limit), request.query.marker);
    const body: Record<string, unknown> = { users: page.users.map((user) => render(request, user)) };
    const last = page.users.at(-1);
    if (page.more && last)
      body.next = `${request.baseUrl}/v1/users?limit=${request.query.limit ?? ''}&marker=${encodeURIComponent(last.name)}`;
    return json(body);
  });

  router.on('POST', '/v1/users', async (request) => {
    authorize(request, 'user:create');
    const body = validateUserCreate(jsonBody(request));
    const name = validateUserName(body.name);
    const { role, project } = validateRole(body.role, body.project);
    validatePassword(body.password);
    const user: User = {
      name,
      role,
      project,
      password_hash: await hashPassword(body.password),
      created_at: deps.now(),
      updated_at: null,
    };
    await users.create(user);
    return json(render(request, user), 201, { Location: `${request.baseUrl}/v1/users/${name}` });
  });

  router.on('GET', '/v1/users/{user}', async (request) => {
    const name = request.params.user as string;
    authorizeTokens(request, name);
    const principal = request.principal as Principal;
    if (decide(principal, 'user:unlock') !== 'allow') return json(render(request, (await find(name)).user));
    // An admin also sees the failed-login backoff (read beside the user).
    const [found, failures] = await Promise.all([find(name), users.getLoginFailures(name)]);
    const now = Date.now();
    const until = lockedUntil(failures?.record, now);
    return json({
      ...render(request, found.user),
      failed_logins: currentFailures(failures?.record, now)?.failures ?? 0,
      locked_until: until === undefined ? null : new Date(until).toISOString(),
    });
  });

  router.on('PATCH', '/v1/users/{user}', async (request) => {
    authorize(request, 'user:update');
    const { user, version } = await find(request.params.user as string);
    const body = validateUserUpdate(jsonBody(request));
    const roleChange = body.role !== undefined || body.project !== undefined;
    const { role, project } = roleChange
      ? validateRole(body.role ?? user.role, body.project === undefined ? user.project : body.project)
      : user;
    let passwordHash = user.password_hash;
    if (body.password !== undefined) {
      validatePassword(body.password);
      passwordHash = await hashPassword(body.password);
    }
    const updated: User = { ...user, role, project, password_hash: passwordHash, updated_at: deps.now() };
    await users.update(updated, version);
    return json(render(request, updated));
  });

  router.on('DELETE', '/v1/users/{user}', async (request) => {
    authorize(request, 'user:delete');
    const name = request.params.user as string;
    if ((request.principal as Principal).name === name) throw invalid('A user cannot delete itself.');
    await find(name);
    await users.delete(name);
    return noContent();
  });

  router.on('DELETE', '/v1/users/{user}/lockout', async (request) => {
    authorize(request, 'user:unlock');
    const name = request.params.user as string;
    await find(name);
    await users.clearLoginFailures(name);
    return noContent();
  });

  router.on('GET', '/v1/users/{user}/tokens', async (request) => {
    const name = request.params.user as string;
    authorizeTokens(request, name);
    await find(name);
    return json({ tokens: (await users.tokensOf(name)).map(publicToken) });
  });

  router.on('POST', '/v1/users/{user}/tokens', async (request) => {
    const name = request.params.user as string;
    authorizeTokens(request, name);
    await find(name);
    const body = request.body?.trim() ? validateTokenCreate(jsonBody(request)) : {};
    const minted = mintToken('user');
    const now = new Date();
    const token: ApiToken = {
      id: minted.id,
      user: name,
      secret_hash: minted.secretHash,
      description: body.description ?? null,
      created_at: deps.now(),
      expires_at: new Date(now.getTime() + (body.expires_in ?? DEFAULT_TOKEN_SECONDS) * 1000).toISOString(),
      revoked: false,
    };
    await users.createToken(token);
    // The only time the secret is shown.
    return json({ ...publicToken(token), token: minted.token }, 201);
  });

  router.on('DELETE', '/v1/users/{user}/tokens/{token}', async (request) => {
    const name = request.params.user as string;
    authorizeTokens(request, name);
    const found = await users.getToken(request.params.token as string);
    if (!found || found.token.user !== name)
      throw notFound(`Token ${request.params.token} could not be found.`);
    if (!found.token.revoked) await users.revokeToken(found.token, found.version);
    return noContent();
  });
}
