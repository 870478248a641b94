/**
 * The agent's HTTP client for the control plane's REST routes: enrollment, HTTPS long
 * polling and the agent routes (agent/channel.ts), credential rotation (agent/main.ts),
 * the doctor's probe. One request, its whole answer read as text.
 *
 * - node:http / node:https, one keep-alive `Agent` per scheme and client: idle
 *   connections are reused (LIFO), closed after `idleTimeoutMs` (or sooner when the
 *   server's `Keep-Alive: timeout=N` says so) and never keep the process alive.
 * - TLS as Node's default: Node's CA store (plus `NODE_EXTRA_CA_CERTS`), host names
 *   checked.
 * - `timeoutMs` bounds the whole exchange (connection, head and body): a `TimeoutError`
 *   (`HttpTimeoutError`). `signal` cancels it: rejected with the signal's reason, as
 *   `fetch` is. Either destroys the connection.
 * - The body is capped (`maxBodyBytes`, 16 MiB by default): past it, an
 *   `HttpBodyTooLargeError` and the connection destroyed.
 * - Any status is an answer (`ok` says 2xx): callers decide what an error is. Network
 *   failures reject with Node's own error (`code`: ECONNREFUSED, ECONNRESET, a TLS code).
 *   A GET or HEAD whose kept-alive connection the server had closed meanwhile (reset
 *   before any answer) is sent once more on a new connection; other methods are not
 *   repeated (RFC 9110 §9.2.2).
 * - No compression asked for or decoded; no redirects followed (the control plane sends
 *   none); bodies decoded as UTF-8.
 *
 * Why not `fetch`: Node's `fetch` is undici, loaded on first use, 15–17 MiB resident for
 * the life of the process — a quarter of the idle agent's whole budget (docs/agent.md,
 * "Footprint"); these few small JSON exchanges need none of what it adds.
 */
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { AGENT_VERSION } from './version.ts';

/** The largest answer read by default. */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024;
/** How long an idle kept-alive connection is kept by default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 5000;

export interface HttpRequestOptions {
  /** GET by default. */
  readonly method?: string;
  /** `User-Agent: metalplane-agent/<version>` unless given. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A text body (Content-Length set from it). */
  readonly body?: string;
  /** A JSON body: serialized, with `Content-Type: application/json` unless given. */
  readonly json?: unknown;
  /** Cancels the exchange: the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** Bounds the whole exchange, connection to the body's end (none by default). */
  readonly timeoutMs?: number | undefined;
  /** The largest body read (DEFAULT_MAX_BODY_BYTES by default). */
  readonly maxBodyBytes?: number;
}

export interface HttpResponse {
  readonly status: number;
  /** 2xx. */
  readonly ok: boolean;
  /** Lower-case names, as node:http gives them. */
  readonly headers: IncomingHttpHeaders;
  /** The body, decoded as UTF-8. */
  readonly text: string;
}

/** The exchange took longer than its `timeoutMs`. */
export class HttpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** The answer's body was larger than `maxBodyBytes`. */
export class HttpBodyTooLargeError extends Error {
  readonly limit: number;
  constructor(message: string, limit: number) {
    super(message);
    this.limit = limit;
  }
}

/** The body parsed as JSON (`null` when empty or blank); throws a SyntaxError when it is not JSON. */
export function parseJsonBody(response: HttpResponse): unknown {
  return response.text.trim() ? (JSON.parse(response.text) as unknown) : null;
}

export interface HttpClientOptions {
  /** How long an idle kept-alive connection is kept (DEFAULT_IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number;
  /** Connections per origin at most (default 8); more requests wait for one. */
  readonly maxSockets?: number;
  /** PEM certificates trusted for https: instead of Node's CA store (tests). */
  readonly ca?: string;
}

const IDEMPOTENT = new Set(['GET', 'HEAD']);
const STALE_CODES = new Set(['ECONNRESET', 'EPIPE']);

export class HttpClient {
  readonly #http: HttpAgent;
  readonly #https: HttpsAgent;

  constructor(options: HttpClientOptions = {}) {
    const agent = {
      keepAlive: true,
      scheduling: 'lifo' as const,
      timeout: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      maxSockets: options.maxSockets ?? 8,
      maxFreeSockets: 2,
    };
    this.#http = new HttpAgent(agent);
    this.#https = new HttpsAgent(options.ca === undefined ? agent : { ...agent, ca: options.ca });
  }

  /** Sends the request and reads the whole answer (any status). */
  request(url: string | URL, options: HttpRequestOptions = {}): Promise<HttpResponse> {
    const target = typeof url === 'string' ? new URL(url) : url;
    if (target.protocol !== 'http:' && target.protocol !== 'https:')
      return Promise.reject(new TypeError(`${target.protocol} URLs are not supported (http: or https:)`));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const headers: Record<string, string> = { 'User-Agent': `metalplane-agent/${AGENT_VERSION}` };
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      for (const key of Object.keys(headers))
        if (key.toLowerCase() === name.toLowerCase()) delete headers[key];
      headers[name] = value;
    }
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type'))
        headers['Content-Type'] = 'application/json';
    }
    if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
    const method = (options.method ?? 'GET').toUpperCase();
    const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const what = `${method} ${target.origin}${target.pathname}`;

    return new Promise<HttpResponse>((resolve, reject) => {
      let settled = false;
      let req: ClientRequest | undefined;
      const finish = (error: unknown, response?: HttpResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error !== undefined) {
          req?.destroy();
          reject(error);
        } else resolve(response as HttpResponse);
      };
      const onAbort = () => finish(signal?.reason);
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                finish(new HttpTimeoutError(`${what}: no complete answer within ${options.timeoutMs} ms`)),
              options.timeoutMs,
            );
      signal?.addEventListener('abort', onAbort, { once: true });

      const send = (attempt: number) => {
        const https = target.protocol === 'https:';
        const request = (https ? httpsRequest : httpRequest)(target, {
          method,
          headers,
          agent: https ? this.#https : this.#http,
        });
        req = request;
        let answered = false;
        request.on('error', (error: NodeJS.ErrnoException) => {
          if (settled) return;
          // A kept-alive connection the server closed while it was idle: the request never
          // reached it.
          if (
            !answered &&
            attempt === 0 &&
            request.reusedSocket &&
            IDEMPOTENT.has(method) &&
            STALE_CODES.has(error.code ?? '')
          ) {
            send(1);
            return;
          }
          finish(error);
        });
        request.on('response', (res: IncomingMessage) => {
          answered = true;
          if (settled) {
            res.destroy();
            return;
          }
          const length = Number(res.headers['content-length']);
          if (Number.isFinite(length) && length > maxBody) {
            finish(tooLarge(what, maxBody));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBody) finish(tooLarge(what, maxBody));
            else chunks.push(chunk);
          });
          res.on('error', (error) => finish(error));
          res.on('end', () =>
            finish(undefined, {
              status: res.statusCode ?? 0,
              ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300,
              headers: res.headers,
              text: Buffer.concat(chunks, size).toString('utf8'),
            }),
          );
          res.on('close', () => {
            if (!res.complete)
              finish(
                Object.assign(new Error(`${what}: the connection closed before the answer's end`), {
                  code: 'ECONNRESET',
                }),
              );
          });
        });
        request.end(body);
      };
      send(0);
    });
  }

  /** Closes the idle connections and those in use (their requests fail). */
  close(): void {
    this.#http.destroy();
    this.#https.destroy();
  }
}

function tooLarge(what: string, limit: number): HttpBodyTooLargeError {
  return new HttpBodyTooLargeError(`${what}: the answer is larger than ${limit} bytes`, limit);
}

/** One client for the agent's one-off exchanges (enrollment, rotation, the doctor). */
export const httpClient = new HttpClient();
