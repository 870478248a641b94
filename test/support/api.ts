/**
 * The real api handler on its own resources, behind the local HTTP gateway, for
 * integration tests: `const api = await startApi(); await api.call('GET', '/v1/nodes')`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { AUTH_STRATEGY_ENV, authenticatorFromEnv, LOCAL_STACK_ENV } from '../../lambda/api/authentication.ts';
import { type Dependencies, dependenciesFromEnv } from '../../lambda/api/dependencies.ts';
import { buildRouter } from '../../lambda/api/handler.ts';
import { createApiHandler } from '../../lambda/http/middlewares.ts';
import { type HttpGateway, startHttpGateway } from '../../local/http-gateway.ts';
import { isolatedResources } from './aws.ts';

export interface CallOptions {
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
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  close(): Promise<void>;
}

export async function startApi(): Promise<TestApi> {
  const { prefix } = await isolatedResources();
  process.env[AUTH_STRATEGY_ENV] = 'noauth';
  process.env[LOCAL_STACK_ENV] = 'true';
  const deps = dependenciesFromEnv();
  const handler = createApiHandler(
    buildRouter(deps),
    new Logger({ logLevel: 'SILENT' }),
    authenticatorFromEnv(),
  );
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
    call: (method, path, options = {}) => call(gateway.url, method, path, options),
    close: () => gateway.close(),
  };
}

async function call(url: string, method: string, path: string, options: CallOptions): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
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
