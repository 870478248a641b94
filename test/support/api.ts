/**
 * The real api handler on its own resources, behind the local HTTP gateway, for
 * integration tests: `const api = await startApi(); await api.call('GET', '/v1/nodes')`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { UserRepository } from '../../lambda/adapters/dynamo/user-repository.ts';
import { buildRouter } from '../../lambda/api/app.ts';
import { AUTH_STRATEGY_ENV, authenticatorFromEnv, LOCAL_STACK_ENV } from '../../lambda/api/authentication.ts';
import { type Dependencies, dependenciesFromEnv } from '../../lambda/api/dependencies.ts';
import { hashPassword } from '../../lambda/domain/auth/passwords.ts';
import type { Role } from '../../lambda/domain/users/user.ts';
import { createApiHandler } from '../../lambda/http/middlewares.ts';
import type { Router } from '../../lambda/http/router.ts';
import { type HttpGateway, startHttpGateway } from '../../local/http-gateway.ts';
import { isolatedResources } from './aws.ts';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface ApiOptions {
  /** `noauth` (everyone is admin; the default) or real HTTP Basic users. */
  readonly auth?: 'noauth' | 'basic';
  /** Registers more routes (or re-registers some with test wiring) after `buildRouter`'s. */
  readonly extend?: (router: Router, deps: Dependencies) => void;
}

export interface CallOptions {
  /** Send HTTP Basic credentials (with `auth: 'basic'`; the admin's by default). */
  readonly as?: Credentials | null;
  /** Or name the role (and a member's project, p1 or p2) of one of the harness users. */
  readonly role?: Role;
  readonly project?: string;
  readonly body?: unknown;
  /** Raw body text (for malformed-JSON tests); wins over `body`. */
  readonly rawBody?: string;
  readonly version?: string | null;
  readonly headers?: Record<string, string>;
}

export interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
  /** The decoded `error_message` of an error answer. */
  readonly fault?: { faultcode: string; faultstring: string; debuginfo: null } | undefined;
}

export interface TestApi {
  readonly url: string;
  readonly deps: Dependencies;
  readonly prefix: string;
  /** The default site nodes join when created without conductor_group. */
  readonly site: string;
  /** With `auth: 'basic'`: an admin, a reader, and members of projects p1 and p2. */
  readonly admin: Credentials;
  readonly reader: Credentials;
  readonly member1: Credentials;
  readonly member2: Credentials;
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  close(): Promise<void>;
}

const USERS: ReadonlyArray<
  readonly [key: 'admin' | 'reader' | 'member1' | 'member2', role: Role, project: string | null]
> = [
  ['admin', 'admin', null],
  ['reader', 'reader', null],
  ['member1', 'member', 'p1'],
  ['member2', 'member', 'p2'],
];

export async function startApi(options: ApiOptions = {}): Promise<TestApi> {
  const { prefix } = await isolatedResources();
  const basic = options.auth === 'basic';
  if (basic) delete process.env[AUTH_STRATEGY_ENV];
  else process.env[AUTH_STRATEGY_ENV] = 'noauth';
  process.env[LOCAL_STACK_ENV] = 'true';
  const deps = dependenciesFromEnv();
  const credentials: Record<string, Credentials> = {};
  const users = new UserRepository(deps.store);
  for (const [key, role, project] of USERS) {
    const own = { username: `${key}-user`, password: `${key}-password-${prefix}` };
    credentials[key] = own;
    if (basic) {
      const hash = await hashPassword(own.password);
      await users.create({
        name: own.username,
        role,
        project,
        password_hash: hash,
        created_at: deps.now(),
        updated_at: null,
      });
    }
  }
  const router = buildRouter(deps);
  options.extend?.(router, deps);
  const handler = createApiHandler(router, new Logger({ logLevel: 'SILENT' }), authenticatorFromEnv(deps));
  const gateway: HttpGateway = await startHttpGateway({ handler });
  const site = 'test-site';
  await deps.sites.create(
    { name: site, description: null, location: null, created_at: deps.now(), updated_at: null },
    { makeDefault: true },
  );
  return {
    url: gateway.url,
    deps,
    prefix,
    site,
    admin: credentials.admin as Credentials,
    reader: credentials.reader as Credentials,
    member1: credentials.member1 as Credentials,
    member2: credentials.member2 as Credentials,
    call: (method, path, callOptions = {}) => {
      const member = callOptions.project === 'p2' ? 'member2' : 'member1';
      const byRole = { admin: 'admin', reader: 'reader', member }[callOptions.role ?? 'admin'] as string;
      const as = callOptions.as === undefined && basic ? credentials[byRole] : callOptions.as;
      return call(gateway.url, method, path, { ...callOptions, ...(as !== undefined ? { as } : {}) });
    },
    close: () => gateway.close(),
  };
}

async function call(url: string, method: string, path: string, options: CallOptions): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.as) {
    headers.Authorization = `Basic ${Buffer.from(`${options.as.username}:${options.as.password}`).toString('base64')}`;
  }
  if (options.version !== null) headers['X-OpenStack-Ironic-API-Version'] = options.version ?? '1.82';
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(15_000),
  });
  const text = await response.text();
  const parsed = text === '' ? undefined : JSON.parse(text);
  const fault =
    parsed && typeof parsed.error_message === 'string' ? JSON.parse(parsed.error_message) : undefined;
  return { status: response.status, headers: response.headers, body: parsed, fault };
}
