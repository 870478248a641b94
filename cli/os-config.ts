/**
 * OpenStack-style configuration and the HTTP client of the `metalplane` CLI.
 *
 * Settings come from, in this order of precedence: command-line options, `OS_*`
 * environment variables, then the `clouds.yaml` cloud named by `--os-cloud` / `OS_CLOUD`
 * (looked up as openstacksdk does: `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
 * `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`; the first that exists).
 * The microversion is negotiated as python-ironicclient does: `GET /` gives the server's
 * range, and the CLI uses the lower of its own maximum and the server's, unless
 * `--os-baremetal-api-version` names one. Secrets are never printed, `--debug` included.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** The newest microversion this CLI knows (python-ironicclient's LAST_KNOWN_API_VERSION). */
export const CLIENT_MAX_VERSION = '1.82';
export const DEFAULT_ENDPOINT = 'http://127.0.0.1:6385';

export type AuthType = 'none' | 'http_basic' | 'token';
const AUTH_TYPES: readonly AuthType[] = ['none', 'http_basic', 'token'];

/** The global options as commander parses them. */
export interface GlobalOptions {
  osCloud?: string;
  osEndpoint?: string;
  url?: string;
  osAuthType?: string;
  osUsername?: string;
  osPassword?: string;
  osToken?: string;
  osBaremetalApiVersion?: string;
  osCacert?: string;
  insecure?: boolean;
  debug?: boolean;
}

export interface ResolvedConfig {
  readonly endpoint: string;
  readonly authType: AuthType;
  readonly username?: string;
  readonly password?: string;
  readonly token?: string;
  /** Asked for with `--os-baremetal-api-version` (or the cloud's `baremetal_api_version`); else negotiated. */
  readonly apiVersion?: string;
  readonly cloud?: string;
  readonly cloudsFile?: string;
  /** A PEM file of CA certificates trusted besides the system's (`--os-cacert`). */
  readonly cacert?: string;
  /** TLS certificates not verified (`--insecure`, clouds.yaml `verify: false`). */
  readonly insecure?: boolean;
}

/** An error of the user's making, found before any request (exit code 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A command that could not do what it was asked (exit code 1). */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}

/** The API answered an error, or could not be reached (exit code 1). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.status = status;
  }
}

interface CloudEntry {
  auth_type?: string;
  auth?: { username?: string; password?: string; token?: string; endpoint?: string };
  baremetal_endpoint_override?: string;
  endpoint?: string;
  baremetal_api_version?: string | number;
  cacert?: string;
  verify?: boolean;
}

/** Where clouds.yaml is looked for, in openstacksdk's order. */
export function cloudsYamlCandidates(
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
  home = homedir(),
): string[] {
  return [
    ...(env.OS_CLIENT_CONFIG_FILE ? [resolve(cwd, env.OS_CLIENT_CONFIG_FILE)] : []),
    join(cwd, 'clouds.yaml'),
    join(home, '.config', 'openstack', 'clouds.yaml'),
    '/etc/openstack/clouds.yaml',
  ];
}

/** Where secure.yaml (the passwords half of clouds.yaml) is looked for, in openstacksdk's order. */
export function secureYamlCandidates(
  env: NodeJS.ProcessEnv,
  cwd = process.cwd(),
  home = homedir(),
): string[] {
  return [
    ...(env.OS_CLIENT_SECURE_FILE ? [resolve(cwd, env.OS_CLIENT_SECURE_FILE)] : []),
    join(cwd, 'secure.yaml'),
    join(home, '.config', 'openstack', 'secure.yaml'),
    '/etc/openstack/secure.yaml',
  ];
}

async function readClouds(file: string): Promise<Record<string, CloudEntry>> {
  const { parse } = await import('yaml');
  try {
    const config = (parse(readFileSync(file, 'utf8')) ?? {}) as { clouds?: Record<string, CloudEntry> };
    return config.clouds ?? {};
  } catch (error) {
    throw new UsageError(`${file}: ${(error as Error).message}`);
  }
}

/** `base` with `over` laid on it, nested objects merged (as openstacksdk merges secure.yaml). */
function merged(base: CloudEntry, over: CloudEntry | undefined): CloudEntry {
  if (!over) return base;
  return { ...base, ...over, auth: { ...base.auth, ...over.auth } };
}

async function loadCloud(name: string, env: NodeJS.ProcessEnv): Promise<{ entry: CloudEntry; file: string }> {
  const candidates = cloudsYamlCandidates(env);
  const file = candidates.find((path) => existsSync(path));
  if (!file) throw new UsageError(`cloud ${name}: no clouds.yaml (looked in ${candidates.join(', ')})`);
  const clouds = await readClouds(file);
  const entry = clouds[name];
  if (!entry) {
    const known = Object.keys(clouds);
    throw new UsageError(`cloud ${name} is not in ${file} (it has: ${known.join(', ') || 'none'})`);
  }
  const secure = secureYamlCandidates(env).find((path) => existsSync(path));
  return { entry: merged(entry, secure ? (await readClouds(secure))[name] : undefined), file };
}

const blankToUndefined = (value: string | undefined) =>
  value === undefined || value === '' ? undefined : value;

/** CLI > environment > clouds.yaml, for each setting. */
export async function resolveConfig(options: GlobalOptions, env: NodeJS.ProcessEnv): Promise<ResolvedConfig> {
  const cloudName = blankToUndefined(options.osCloud ?? env.OS_CLOUD);
  const cloud = cloudName ? await loadCloud(cloudName, env) : undefined;
  const entry = cloud?.entry ?? {};
  const pick = (flag: string | undefined, variable: string, fromCloud: string | undefined) =>
    flag ?? blankToUndefined(env[variable]) ?? fromCloud;
  const endpoint = (
    pick(
      options.osEndpoint ?? options.url,
      'OS_ENDPOINT',
      entry.baremetal_endpoint_override ?? entry.endpoint ?? entry.auth?.endpoint,
    ) ?? DEFAULT_ENDPOINT
  ).replace(/\/+$/, '');
  const username = pick(options.osUsername, 'OS_USERNAME', entry.auth?.username);
  const password = pick(options.osPassword, 'OS_PASSWORD', entry.auth?.password);
  const token = pick(options.osToken, 'OS_TOKEN', entry.auth?.token);
  const given = pick(options.osAuthType, 'OS_AUTH_TYPE', entry.auth_type);
  const authType = (given ?? (token ? 'token' : username !== undefined ? 'http_basic' : 'none')) as AuthType;
  if (!AUTH_TYPES.includes(authType)) {
    throw new UsageError(`--os-auth-type ${authType}: use one of ${AUTH_TYPES.join(', ')}`);
  }
  if (authType === 'http_basic' && (username === undefined || password === undefined)) {
    throw new UsageError('http_basic needs a user name and a password (--os-username, --os-password)');
  }
  if (authType === 'token' && !token)
    throw new UsageError('token authentication needs --os-token (or OS_TOKEN)');
  const version = pick(
    options.osBaremetalApiVersion,
    'OS_BAREMETAL_API_VERSION',
    entry.baremetal_api_version === undefined ? undefined : String(entry.baremetal_api_version),
  );
  if (version !== undefined && version !== 'latest' && !/^1\.\d+$/.test(version)) {
    throw new UsageError(`--os-baremetal-api-version ${version}: use 1.N or latest`);
  }
  return {
    endpoint,
    authType,
    ...(authType === 'http_basic' ? { username: username as string, password: password as string } : {}),
    ...(authType === 'token' ? { token: token as string } : {}),
    ...(version !== undefined && version !== 'latest' ? { apiVersion: version } : {}),
    ...(cloudName ? { cloud: cloudName } : {}),
    ...(cloud ? { cloudsFile: cloud.file } : {}),
    ...tlsSettings(options, env, entry),
  };
}

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];

/** `--os-cacert`/`OS_CACERT`/`cacert`, and `--insecure`/`OS_INSECURE`/`verify: false`. */
function tlsSettings(
  options: GlobalOptions,
  env: NodeJS.ProcessEnv,
  entry: CloudEntry,
): { cacert?: string; insecure?: true } {
  const cacert = options.osCacert ?? blankToUndefined(env.OS_CACERT) ?? entry.cacert;
  const insecure =
    options.insecure === true ||
    TRUE_WORDS.includes((env.OS_INSECURE ?? '').toLowerCase()) ||
    entry.verify === false;
  return { ...(cacert !== undefined ? { cacert } : {}), ...(insecure ? { insecure: true } : {}) };
}

/**
 * Applies the TLS settings to this process's connections, once, before the first request:
 * the CA file's certificates join the default store (`fetch` verifies against it), and
 * `insecure` turns verification off as `NODE_TLS_REJECT_UNAUTHORIZED=0` does (Node warns).
 */
export async function applyTls(config: ResolvedConfig): Promise<void> {
  if (config.insecure) process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  if (config.cacert === undefined) return;
  let text: string;
  try {
    text = readFileSync(config.cacert, 'utf8');
  } catch (error) {
    throw new UsageError(
      `--os-cacert ${config.cacert}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const certificates = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certificates.length === 0)
    throw new UsageError(`--os-cacert ${config.cacert}: no PEM certificate in it`);
  const tls = await import('node:tls');
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), ...certificates]);
}

const minor = (version: string) => Number(version.split('.')[1]);

/** The version to ask for: the requested one if the server has it, else min(client max, server max). */
export function negotiateVersion(
  server: { min: string; max: string } | undefined,
  requested?: string,
): string {
  if (!server) return requested ?? CLIENT_MAX_VERSION;
  if (requested !== undefined) {
    if (minor(requested) < minor(server.min) || minor(requested) > minor(server.max)) {
      throw new ApiError(
        `API version ${requested} is not supported by the server (it supports ${server.min} to ${server.max})`,
        406,
      );
    }
    return requested;
  }
  return minor(server.max) < minor(CLIENT_MAX_VERSION) ? server.max : CLIENT_MAX_VERSION;
}

export interface Response {
  readonly status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the API, read field by field where used
  readonly body: any;
  readonly headers: Headers;
}

/** The API's error text: Ironic's `error_message` (a JSON document with `faultstring`), or the body. */
export function faultOf(body: unknown): string {
  const message = (body as { error_message?: unknown } | undefined)?.error_message;
  if (typeof message !== 'string') {
    const plain = (body as { message?: unknown } | undefined)?.message;
    return typeof plain === 'string' ? plain : '';
  }
  try {
    const fault = JSON.parse(message) as { faultstring?: string; description?: string };
    return fault.faultstring ?? fault.description ?? message;
  } catch {
    return message;
  }
}

/** A negotiated connection to the API. */
export class Client {
  private version: string | undefined;
  readonly config: ResolvedConfig;
  private readonly debug: (line: string) => void;

  constructor(config: ResolvedConfig, debug: (line: string) => void = () => {}) {
    this.config = config;
    this.debug = debug;
  }

  private authorization(): string | undefined {
    const { config } = this;
    if (config.authType === 'http_basic') {
      return `Basic ${Buffer.from(`${config.username}:${config.password}`).toString('base64')}`;
    }
    if (config.authType === 'token') return `Bearer ${config.token}`;
    return undefined;
  }

  /** GET / (no credentials), once per run. */
  async microversion(): Promise<string> {
    if (this.version) return this.version;
    let server: { min: string; max: string } | undefined;
    try {
      const root = await this.send('GET', '/', undefined, false);
      const current = root.body?.default_version ?? root.body?.versions?.[0];
      if (current?.version && current?.min_version)
        server = { min: current.min_version, max: current.version };
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 0) throw error;
    }
    this.version = negotiateVersion(server, this.config.apiVersion);
    this.debug(`negotiated API version ${this.version}`);
    return this.version;
  }

  async request(method: string, path: string, body?: unknown): Promise<Response> {
    await this.microversion();
    return this.send(method, path, body, true);
  }

  private async send(method: string, path: string, body: unknown, versioned: boolean): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (versioned && this.version) headers['X-OpenStack-Ironic-API-Version'] = this.version;
    const authorization = versioned ? this.authorization() : undefined;
    if (authorization) headers.Authorization = authorization;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const url = `${this.config.endpoint}${path}`;
    const started = performance.now();
    this.debug(
      `REQ: ${method} ${url}${versioned && this.version ? ` (X-OpenStack-Ironic-API-Version: ${this.version})` : ''}${authorization ? ` auth=${this.config.authType}` : ''}`,
    );
    let response: globalThis.Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(
        `Unable to establish connection to ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
        0,
      );
    }
    const text = await response.text();
    this.debug(`RESP: ${method} ${url} ${response.status} (${Math.round(performance.now() - started)} ms)`);
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 500) };
    }
    if (response.status >= 400) {
      const requestId = response.headers.get('x-openstack-request-id');
      const fault = faultOf(parsed) || response.statusText;
      throw new ApiError(
        `${fault} (HTTP ${response.status})${requestId ? ` (Request-ID: ${requestId})` : ''}`,
        response.status,
      );
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }
}
