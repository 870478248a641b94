/**
 * The agent's Redfish HTTP client: one per agent, shared by every redfish node's actions
 * and the power sync's probe, so that each rule below holds per BMC whatever asks.
 *
 * - Per BMC address: one request at a time (BMCs are small computers; many serve one
 *   request at a time and drop the rest), a minimum interval between two requests, and a
 *   circuit breaker (`breaker.ts`): a timeout or refused connection makes further calls
 *   fail at once for a cool-down instead of each costing a timeout.
 * - Per BMC, user and TLS setting (Ironic's SessionCache key): one connection pool and
 *   one session. `auto` (Ironic's default) reads the unauthenticated service root and
 *   logs in when it offers a SessionService, else uses Basic, as sushy's
 *   SessionOrBasicAuth; a 401 on a session logs in again once and retries once — a
 *   second 401 is an error, never a loop. Sessions are deleted on `close()`.
 * - TLS verified by default; `redfish_verify_ca` false skips it, a path is the trust store.
 * - Each request has its own timeout and honours the caller's signal; answers are capped
 *   in size; 307/308 redirects are followed within the same origin (sushy-emulator
 *   redirects a system named by name to its UUID path).
 * - Errors name the BMC and say what to check (`errors.ts`); the password, its Basic
 *   header and session tokens are scrubbed from every message.
 *
 * Node's `node:http`/`node:https` rather than `fetch`: fetch cannot take TLS options
 * without the `undici` package (not a dependency), and counting on one socket per BMC,
 * a hard size cap and TLS error codes is simpler here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import type { Logger } from '../../log.ts';
import { CircuitBreaker } from './breaker.ts';
import type { RedfishTarget } from './driver-info.ts';
import { bmcMessage, isTlsCode, NETWORK_KINDS, RedfishError, redact } from './errors.ts';

export interface RedfishClientOptions {
  /** Per request (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** Quiet time between two requests to one BMC (default 20 ms). */
  readonly minIntervalMs?: number;
  /** How long a BMC's circuit stays open after a timeout or connection failure (default 30 s). */
  readonly circuitCooldownMs?: number;
  /** Largest answer read (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** The breaker's clock (tests). */
  readonly now?: () => number;
  readonly log?: Logger;
  /** Told of every HTTP exchange (tests count requests; no secrets in it). */
  readonly onExchange?: (exchange: Exchange) => void;
}

export interface Exchange {
  readonly bmc: string;
  readonly method: string;
  readonly path: string;
  readonly status?: number;
  readonly error?: string;
  readonly ms: number;
}

/** What a call may add: the caller's signal, and a shorter timeout (the power sync's probe). */
export interface CallOptions {
  readonly signal: AbortSignal;
  readonly timeoutMs?: number;
}

export type JsonObject = Record<string, unknown>;

interface Raw {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The session token the request carried, if any. */
  readonly token: string | undefined;
}

/** One BMC address: its turn, pacing and circuit. */
interface Host {
  queue: Promise<unknown>;
  lastEnd: number;
  readonly breaker: CircuitBreaker;
}

/** One BMC, user and TLS setting: its sockets, its session and what it told us. */
interface Conn {
  readonly address: string;
  readonly rootPrefix: string;
  readonly authType: RedfishTarget['authType'];
  readonly agent: http.Agent;
  /** `redfish_verify_ca` when it names a CA bundle (quoted by a failed TLS verification). */
  readonly caPath: string | undefined;
  username: string | undefined;
  /** The latest call's password (a changed password is used from the next login on). */
  password: string | undefined;
  mode: 'unknown' | 'basic' | 'session';
  token: string | undefined;
  location: string | undefined;
  login: Promise<void> | undefined;
  root: JsonObject | undefined;
  systemPath: string | undefined;
  /** System path → its reset action's target, from the last read of the system. */
  readonly resetTargets: Map<string, string>;
}

const MAX_REDIRECTS = 3;
const NEVER = new AbortController().signal;
const link = (value: unknown): string | undefined => {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as JsonObject)['@odata.id'];
  return typeof id === 'string' ? id : undefined;
};

/** Rejects as soon as `signal` aborts, whether or not `work` has ended (it goes on unobserved). */
function abortable<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal === NEVER) return work;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(onAbort());
    const listener = () => reject(onAbort());
    signal.addEventListener('abort', listener, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', listener));
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The PEM certificates of a bundle file, or of every file of a directory that holds some. */
function readCa(path: string): string[] {
  if (!statSync(path).isDirectory()) return [readFileSync(path, 'utf8')];
  const pems = readdirSync(path)
    .map((name) => join(path, name))
    .filter((file) => statSync(file).isFile())
    .map((file) => readFileSync(file, 'utf8'))
    .filter((text) => text.includes('-----BEGIN CERTIFICATE-----'));
  if (pems.length === 0) throw new Error(`no PEM certificate in the directory ${path}`);
  return pems;
}

export class RedfishClient {
  readonly #timeoutMs: number;
  readonly #minIntervalMs: number;
  readonly #cooldownMs: number;
  readonly #maxBody: number;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  readonly #onExchange: ((exchange: Exchange) => void) | undefined;
  readonly #hosts = new Map<string, Host>();
  readonly #conns = new Map<string, Conn>();

  constructor(options: RedfishClientOptions = {}) {
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#minIntervalMs = options.minIntervalMs ?? 20;
    this.#cooldownMs = options.circuitCooldownMs ?? 30_000;
    this.#maxBody = options.maxBodyBytes ?? 1024 * 1024;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
    this.#onExchange = options.onExchange;
  }

  /** GET a resource: its JSON object. */
  get(target: RedfishTarget, path: string, call: CallOptions): Promise<JsonObject> {
    return this.#guarded(target, async (conn) => {
      const raw = await this.#request(conn, 'GET', path, undefined, call);
      return this.#json(conn, 'GET', path, raw);
    });
  }

  /** POST an action; its answer's body is not needed. */
  post(target: RedfishTarget, path: string, body: JsonObject, call: CallOptions): Promise<void> {
    return this.#guarded(target, async (conn) => {
      await this.#request(conn, 'POST', path, JSON.stringify(body), call);
    });
  }

  /** PATCH a resource; its answer's body is not needed. */
  patch(target: RedfishTarget, path: string, body: JsonObject, call: CallOptions): Promise<void> {
    return this.#guarded(target, async (conn) => {
      await this.#request(conn, 'PATCH', path, JSON.stringify(body), call);
    });
  }

  /**
   * The node's ComputerSystem path: `redfish_system_id`, else the only member of the
   * Systems collection (remembered per BMC; several or none is an error naming them).
   */
  systemPath(target: RedfishTarget, call: CallOptions): Promise<string> {
    if (target.systemId) return Promise.resolve(target.systemId);
    return this.#guarded(target, async (conn) => {
      if (conn.systemPath) return conn.systemPath;
      const collection = link(conn.root?.Systems) ?? `${conn.rootPrefix}/Systems`;
      const raw = await this.#request(conn, 'GET', collection, undefined, call);
      const doc = this.#json(conn, 'GET', collection, raw);
      const members = (Array.isArray(doc.Members) ? doc.Members : [])
        .map(link)
        .filter((id): id is string => id !== undefined);
      const [only] = members;
      if (members.length !== 1 || only === undefined) {
        throw new RedfishError(
          'config',
          members.length === 0
            ? `Redfish BMC at ${conn.address} lists no ComputerSystem in ${collection}`
            : `Redfish BMC at ${conn.address} manages ${members.length} systems (${members.slice(0, 10).join(', ')}): set driver_info/redfish_system_id to this node's`,
        );
      }
      conn.systemPath = only;
      return only;
    });
  }

  /** GET the node's ComputerSystem (one request once the path is known). */
  async system(target: RedfishTarget, call: CallOptions): Promise<JsonObject> {
    const path = await this.systemPath(target, call);
    return this.#guarded(target, async (conn) => {
      let doc: JsonObject;
      try {
        doc = this.#json(conn, 'GET', path, await this.#request(conn, 'GET', path, undefined, call));
      } catch (error) {
        // A discovered system that vanished: look again next time.
        if (error instanceof RedfishError && error.status === 404) conn.systemPath = undefined;
        throw error;
      }
      const actions = doc.Actions as JsonObject | undefined;
      const reset = actions?.['#ComputerSystem.Reset'] as JsonObject | undefined;
      if (typeof reset?.target === 'string') conn.resetTargets.set(path, reset.target);
      return doc;
    });
  }

  /** The reset action's target the system advertised when last read (undefined if never read). */
  resetTarget(target: RedfishTarget, systemPath: string): string | undefined {
    return this.#conns.get(connKey(target))?.resetTargets.get(systemPath);
  }

  /** Deletes the sessions opened (best effort, 2 s each) and closes every socket. */
  async close(): Promise<void> {
    const conns = [...this.#conns.values()];
    this.#conns.clear();
    await Promise.allSettled(
      conns
        .filter((conn) => conn.mode === 'session' && conn.location)
        .map((conn) =>
          this.#exchange(conn, 'DELETE', conn.location as string, undefined, true, {
            signal: NEVER,
            timeoutMs: 2000,
          }),
        ),
    );
    for (const conn of conns) conn.agent.destroy();
  }

  /** Runs `work` on the target's connection; its errors come out scrubbed of secrets. */
  async #guarded<T>(target: RedfishTarget, work: (conn: Conn) => Promise<T>): Promise<T> {
    let conn: Conn | undefined;
    try {
      conn = this.#conn(target);
      return await work(conn);
    } catch (error) {
      const hidden = [target.password, basic(target), ...(conn ? secrets(conn) : [])];
      if (error instanceof Error) error.message = redact(error.message, hidden);
      throw error;
    }
  }

  #conn(target: RedfishTarget): Conn {
    const key = connKey(target);
    let conn = this.#conns.get(key);
    if (!conn) {
      conn = {
        address: target.address,
        rootPrefix: target.rootPrefix,
        authType: target.authType,
        agent: this.#agent(target),
        caPath: typeof target.verify === 'object' ? target.verify.ca : undefined,
        username: target.username,
        password: target.password,
        mode: 'unknown',
        token: undefined,
        location: undefined,
        login: undefined,
        root: undefined,
        systemPath: undefined,
        resetTargets: new Map(),
      };
      this.#conns.set(key, conn);
    }
    conn.password = target.password;
    return conn;
  }

  /** One keep-alive socket per BMC (requests are serialized anyway), with the node's TLS trust. */
  #agent(target: RedfishTarget): http.Agent {
    // Idle sockets are dropped after 4 s, before a BMC's own keep-alive timeout closes them.
    const pool = { keepAlive: true, maxSockets: 1, timeout: 4000 };
    if (!target.address.startsWith('https:')) return new http.Agent(pool);
    let ca: string[] | undefined;
    if (typeof target.verify === 'object') {
      try {
        ca = readCa(target.verify.ca);
      } catch (error) {
        throw new RedfishError(
          'config',
          `Redfish BMC at ${target.address}: cannot read redfish_verify_ca ${target.verify.ca}: ${(error as Error).message}`,
        );
      }
    }
    return new https.Agent({
      ...pool,
      rejectUnauthorized: target.verify !== false,
      ...(ca ? { ca } : {}),
    });
  }

  #host(address: string): Host {
    let host = this.#hosts.get(address);
    if (!host) {
      host = {
        queue: Promise.resolve(),
        lastEnd: 0,
        breaker: new CircuitBreaker({ cooldownMs: this.#cooldownMs, now: this.#now }),
      };
      this.#hosts.set(address, host);
    }
    return host;
  }

  /** A request with authentication, one re-login on a stale session, and same-origin redirects. */
  async #request(conn: Conn, method: string, path: string, body: string | undefined, call: CallOptions) {
    await this.#authenticated(conn, call.signal);
    let relogged = false;
    let current = path;
    for (let redirects = 0; ; ) {
      const raw = await this.#exchange(conn, method, current, body, true, call);
      if (raw.status === 401) {
        if (relogged) throw sessionRefusedError(conn, raw.status);
        if (conn.mode !== 'session') throw authError(conn, raw.status);
        // The session expired or was dropped by the BMC: one new login, one retry.
        relogged = true;
        if (conn.token === raw.token) {
          conn.mode = 'unknown';
          conn.token = undefined;
          conn.location = undefined;
        }
        await this.#authenticated(conn, call.signal);
        continue;
      }
      if (raw.status === 307 || raw.status === 308) {
        current = this.#redirect(conn, method, current, raw, ++redirects);
        continue;
      }
      if (raw.status < 200 || raw.status >= 300) throw httpError(conn, method, current, raw);
      return raw;
    }
  }

  #redirect(conn: Conn, method: string, path: string, raw: Raw, redirects: number): string {
    const location = header(raw, 'location');
    const next = location ? new URL(location, `${conn.address}${path}`) : undefined;
    if (!next || next.origin !== conn.address || redirects > MAX_REDIRECTS) {
      throw new RedfishError(
        'http',
        `Redfish BMC at ${conn.address} redirected ${method} ${path} ${
          next && next.origin !== conn.address ? `to another origin (${next.origin})` : 'too often or nowhere'
        }: not followed`,
        { status: raw.status },
      );
    }
    return `${next.pathname}${next.search}`;
  }

  /** Waits for a usable authentication mode (logging in once for all callers). */
  async #authenticated(conn: Conn, signal: AbortSignal): Promise<void> {
    if (conn.mode !== 'unknown') return;
    // One login per connection at a time, not tied to one caller's signal: a caller that
    // gives up leaves the others the login (each of its requests has its own timeout).
    conn.login ??= this.#login(conn).finally(() => {
      conn.login = undefined;
    });
    await abortable(conn.login, signal, () => abortError(conn, 'login', signal.reason));
  }

  async #login(conn: Conn): Promise<void> {
    const basicMode = (why: string) => {
      conn.mode = 'basic';
      if (conn.authType === 'auto')
        this.#log?.info('redfish: Basic authentication', { bmc: conn.address, why });
    };
    if (conn.authType === 'basic') return basicMode('redfish_auth_type basic');
    if (conn.authType === 'auto' && conn.username === undefined && conn.password === undefined) {
      return basicMode('no credentials');
    }
    // The service root is public: it says whether there is a SessionService (sushy does the same).
    const rootPath = `${conn.rootPrefix}/`;
    conn.root ??= this.#json(
      conn,
      'GET',
      rootPath,
      await this.#checked(conn, 'GET', rootPath, undefined, false),
    );
    const sessions =
      link((conn.root.Links as JsonObject | undefined)?.Sessions) ??
      (link(conn.root.SessionService) ? `${link(conn.root.SessionService)}/Sessions` : undefined);
    if (!sessions) {
      if (conn.authType === 'auto') return basicMode('the service root has no SessionService');
      throw new RedfishError(
        'config',
        `Redfish BMC at ${conn.address} offers no SessionService: set redfish_auth_type to basic or auto`,
      );
    }
    const credentials = JSON.stringify({ UserName: conn.username ?? '', Password: conn.password ?? '' });
    const raw = await this.#exchange(conn, 'POST', sessions, credentials, false, { signal: NEVER });
    if (raw.status === 401 || raw.status === 403) throw authError(conn, raw.status);
    if (conn.authType === 'auto' && [404, 405, 501].includes(raw.status)) {
      return basicMode(`session creation answered HTTP ${raw.status}`);
    }
    if (raw.status < 200 || raw.status >= 300) throw httpError(conn, 'POST', sessions, raw);
    const token = header(raw, 'x-auth-token');
    if (!token) {
      if (conn.authType === 'auto') return basicMode('the session answer has no X-Auth-Token');
      throw new RedfishError(
        'malformed',
        `Redfish BMC at ${conn.address} created a session without X-Auth-Token`,
      );
    }
    let location = header(raw, 'location');
    if (!location) {
      try {
        location = link(JSON.parse(raw.text));
      } catch {
        location = undefined;
      }
    }
    conn.token = token;
    conn.location = location ? new URL(location, conn.address).pathname : undefined;
    conn.mode = 'session';
    this.#log?.debug('redfish: session opened', { bmc: conn.address, user: conn.username });
  }

  /** One exchange whose answer must be 2xx (no auth; the service root). */
  async #checked(conn: Conn, method: string, path: string, body: string | undefined, auth: boolean) {
    const raw = await this.#exchange(conn, method, path, body, auth, { signal: NEVER });
    if (raw.status < 200 || raw.status >= 300) throw httpError(conn, method, path, raw);
    return raw;
  }

  #json(conn: Conn, method: string, path: string, raw: Raw): JsonObject {
    let doc: unknown;
    try {
      doc = JSON.parse(raw.text);
    } catch {
      doc = undefined;
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new RedfishError(
        'malformed',
        `Redfish BMC at ${conn.address} answered malformed JSON for ${method} ${path}`,
        { status: raw.status },
      );
    }
    return doc as JsonObject;
  }

  /**
   * One HTTP exchange in the BMC's turn: refused at once while its circuit is open, paced,
   * bounded in time and size. Timeouts and connection failures open the circuit; any
   * answer (or TLS handshake) closes it.
   */
  #exchange(
    conn: Conn,
    method: string,
    path: string,
    body: string | undefined,
    auth: boolean,
    call: CallOptions,
  ): Promise<Raw> {
    const host = this.#host(conn.address);
    const refused = host.breaker.peek();
    if (refused) return Promise.reject(circuitError(conn, refused));
    const turn = host.queue
      .catch(() => undefined)
      .then(async () => {
        if (call.signal.aborted) throw abortError(conn, `${method} ${path}`, call.signal.reason);
        const wait = host.lastEnd + this.#minIntervalMs - Date.now();
        if (wait > 0) await sleep(wait);
        const refusal = host.breaker.enter();
        if (refusal) throw circuitError(conn, refusal);
        const started = performance.now();
        try {
          const raw = await this.#send(conn, method, path, body, auth, call);
          host.breaker.success();
          this.#onExchange?.({ bmc: conn.address, method, path, status: raw.status, ms: ms(started) });
          return raw;
        } catch (error) {
          const kind = error instanceof RedfishError ? error.kind : 'unreachable';
          const message = redact((error as Error).message, secrets(conn));
          if (NETWORK_KINDS.has(kind)) {
            if (host.breaker.state !== 'open') {
              this.#log?.warn('redfish: BMC not answering, its circuit opens', {
                bmc: conn.address,
                cooldown_ms: this.#cooldownMs,
                error: message,
              });
            }
            // The circuit's own message names the BMC already: the failure without it.
            const detail = error instanceof RedfishError ? error.detail : message;
            host.breaker.failure(redact(detail, secrets(conn)));
          } else if (kind === 'aborted') host.breaker.abandon();
          else host.breaker.success(); // a TLS or size failure: the BMC is there
          this.#onExchange?.({ bmc: conn.address, method, path, error: message, ms: ms(started) });
          throw error;
        } finally {
          host.lastEnd = Date.now();
        }
      });
    host.queue = turn.catch(() => undefined);
    return abortable(turn, call.signal, () => abortError(conn, `${method} ${path}`, call.signal.reason));
  }

  #send(
    conn: Conn,
    method: string,
    path: string,
    body: string | undefined,
    auth: boolean,
    call: CallOptions,
    attempt = 0,
  ): Promise<Raw> {
    const url = new URL(conn.address);
    const token = auth && conn.mode === 'session' ? conn.token : undefined;
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'OData-Version': '4.0',
      'User-Agent': 'metalplane-agent',
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers['X-Auth-Token'] = token;
    else if (auth && conn.mode === 'basic' && (conn.username !== undefined || conn.password !== undefined)) {
      headers.Authorization = `Basic ${Buffer.from(`${conn.username ?? ''}:${conn.password ?? ''}`).toString('base64')}`;
    }
    const timeoutMs = Math.min(call.timeoutMs ?? this.#timeoutMs, this.#timeoutMs);
    const what = `${method} ${path}`;
    return new Promise<Raw>((resolve, reject) => {
      let done = false;
      const request = (url.protocol === 'https:' ? https : http).request({
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path,
        method,
        headers,
        agent: conn.agent,
      });
      const finish = (error: Error | undefined, raw?: Raw) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        call.signal.removeEventListener('abort', onAbort);
        if (error) {
          request.destroy();
          reject(error);
        } else resolve(raw as Raw);
      };
      const timer = setTimeout(() => {
        const detail = `did not answer ${what} within ${timeoutMs / 1000} s`;
        finish(new RedfishError('timeout', `Redfish BMC at ${conn.address} ${detail}`, { detail }));
      }, timeoutMs);
      const onAbort = () => finish(abortError(conn, what, call.signal.reason));
      if (call.signal.aborted) return onAbort();
      call.signal.addEventListener('abort', onAbort, { once: true });
      request.on('error', (error: NodeJS.ErrnoException) => {
        // A kept-alive socket the BMC closed while idle: the request never reached it; once more.
        if (!done && attempt === 0 && request.reusedSocket && error.code === 'ECONNRESET') {
          done = true;
          clearTimeout(timer);
          call.signal.removeEventListener('abort', onAbort);
          resolve(this.#send(conn, method, path, body, auth, call, 1));
          return;
        }
        finish(networkError(conn, error));
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= this.#maxBody) chunks.push(chunk);
          else {
            finish(
              new RedfishError(
                'malformed',
                `Redfish BMC at ${conn.address} answered more than ${this.#maxBody} bytes to ${what}`,
              ),
            );
          }
        });
        response.on('error', (error: NodeJS.ErrnoException) => finish(networkError(conn, error)));
        response.on('end', () =>
          finish(undefined, {
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString('utf8'),
            token,
          }),
        );
      });
      request.end(body);
    });
  }
}

/** Ironic's SessionCache key (address, username, verify_ca) plus the root and the auth type. */
function connKey(target: RedfishTarget): string {
  const verify = typeof target.verify === 'object' ? `ca:${target.verify.ca}` : String(target.verify);
  return JSON.stringify([
    target.address,
    target.rootPrefix,
    target.username ?? null,
    verify,
    target.authType,
  ]);
}

const ms = (started: number) => Math.round(performance.now() - started);

const basic = (who: { readonly username?: string | undefined; readonly password?: string | undefined }) =>
  who.password === undefined
    ? undefined
    : Buffer.from(`${who.username ?? ''}:${who.password}`).toString('base64');

/** What must never show in a message: the password, its Basic header, the session token. */
const secrets = (conn: Conn) => [conn.password, basic(conn), conn.token];

function header(raw: Raw, name: string): string | undefined {
  const value = raw.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function authError(conn: Conn, status: number): RedfishError {
  return new RedfishError(
    'auth',
    `Redfish BMC at ${conn.address} refused the credentials for user ${conn.username ?? '(none)'} (HTTP ${status})`,
    { status },
  );
}

/** A session the BMC opened, refused at its first use: not the password (the login worked). */
function sessionRefusedError(conn: Conn, status: number): RedfishError {
  return new RedfishError(
    'auth',
    `Redfish BMC at ${conn.address} refused the session it had just opened for user ${conn.username ?? '(none)'} (HTTP ${status} after a new login): authentication failed; check the account's role and the BMC's session limit`,
    { status },
  );
}

function httpError(conn: Conn, method: string, path: string, raw: Raw): RedfishError {
  const message = bmcMessage(raw.text);
  return new RedfishError(
    'http',
    `Redfish BMC at ${conn.address} answered HTTP ${raw.status} to ${method} ${path}${message ? `: ${message}` : ''}`,
    { status: raw.status },
  );
}

function circuitError(conn: Conn, refusal: string): RedfishError {
  return new RedfishError('circuit', `Redfish BMC at ${conn.address} is unreachable (${refusal})`);
}

/** The caller gave up: its deadline (a timeout, as far as the BMC is concerned) or a stop. */
function abortError(conn: Conn, what: string, reason: unknown): RedfishError {
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    const detail = `did not answer ${what} in time`;
    return new RedfishError('timeout', `Redfish BMC at ${conn.address} ${detail}`, { detail });
  }
  const why = reason instanceof Error ? reason.message : String(reason ?? 'aborted');
  return new RedfishError('aborted', `${what} to the Redfish BMC at ${conn.address} cancelled (${why})`);
}

function networkError(conn: Conn, error: NodeJS.ErrnoException): RedfishError {
  if (isTlsCode(error.code)) {
    // Which trust store failed: a bundle named in redfish_verify_ca may be the wrong one.
    const against = conn.caPath === undefined ? '' : ` against redfish_verify_ca ${conn.caPath}`;
    return new RedfishError(
      'tls',
      `Redfish BMC at ${conn.address} failed TLS verification (${error.code}: ${error.message.replace(/; if the root CA is installed locally.*$/s, '')})${against}: set redfish_verify_ca to the BMC's CA bundle, or false to skip verification`,
    );
  }
  return new RedfishError('unreachable', `Redfish BMC at ${conn.address} is unreachable: ${error.message}`, {
    detail: error.message,
  });
}
