/**
 * The ramdisk protocol's endpoint (`protocol/ramdisk.ts`) on the agent's HTTP boot
 * server: `POST /ramdisk/v1`, one JSON message per request, answered with JSON.
 *
 * - 429 when the remote address has spent its token bucket (checked before the body is
 *   read), 404 for any other path under `/ramdisk/`, 405 for a method other than POST,
 *   413 for a body over MAX_RAMDISK_MESSAGE_BYTES (Content-Length, or counted while
 *   reading), 400 for a Content-Type other than application/json, bad JSON or a message
 *   the schema refuses, 401 for an unknown or used token or session, 409 for a result of
 *   a step the session was not given.
 * - hello → `{session, heartbeat_interval_s}`; heartbeat → the steps to run; result →
 *   stored (the first result of a step wins; a repeat is acknowledged); log → the agent's
 *   log, one line per line with the node, the step and the progress, the message cut to
 *   MAX_LOG_MESSAGE characters and the kernel parameter `mp.token=` masked, at most
 *   MAX_LOG_LINES lines per message. The token and
 *   the session id (both authenticate) are never logged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  MAX_RAMDISK_MESSAGE_BYTES,
  RAMDISK_KERNEL_PARAMS,
  type RamdiskAnswer,
  type RamdiskRequest,
  validateRamdiskRequest,
} from '../../protocol/ramdisk.ts';
import type { Logger } from '../log.ts';
import { RAMDISK_PATH } from './actions.ts';
import type { RamdiskSessions } from './sessions.ts';

/** Characters of a ramdisk log message kept. */
export const MAX_LOG_MESSAGE = 1024;
/** Lines of one log message forwarded (the rest are counted, not logged). */
export const MAX_LOG_LINES = 100;

export interface RateLimit {
  /** Requests a remote address may make at once. */
  readonly burst: number;
  /** Requests per second it earns back. */
  readonly perSecond: number;
  /** Remote addresses tracked at most (the fullest buckets are forgotten first). */
  readonly maxClients?: number;
}

/** A ramdisk makes about one request per heartbeat interval, plus results and logs. */
export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 40, perSecond: 10, maxClients: 4096 };

export interface RamdiskEndpointOptions {
  readonly sessions: RamdiskSessions;
  readonly log: Logger;
  readonly rateLimit?: RateLimit;
  /** Injected clock for the rate limit (tests). */
  readonly now?: () => number;
  /**
   * Discovery (`discovery.ts`): a hello whose token is not a node's may carry the agent's
   * discovery token; it opens a discovery session then.
   */
  readonly discovery?: {
    hello(
      token: string,
      info: { readonly version: string; readonly bootMac: string | null },
      from?: string,
    ): { session: string; node: string } | undefined;
  };
}

/** Per remote address: a token bucket. */
export class TokenBuckets {
  readonly #limit: RateLimit;
  readonly #now: () => number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(limit: RateLimit, now: () => number = Date.now) {
    this.#limit = limit;
    this.#now = now;
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    const now = this.#now();
    const { burst, perSecond } = this.#limit;
    let bucket = this.#buckets.get(key);
    if (bucket) {
      bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
      // Most recently used last: the first entries are the ones to forget.
      this.#buckets.delete(key);
      this.#buckets.set(key, bucket);
    } else {
      const max = this.#limit.maxClients ?? 4096;
      if (this.#buckets.size >= max) this.#forget(max);
      bucket = { tokens: burst, at: now };
      this.#buckets.set(key, bucket);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Retry-After, in seconds, for an empty bucket. */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(1 / this.#limit.perSecond));
  }

  #forget(max: number): void {
    // Full buckets first (forgetting them changes nothing), then the least recently used.
    const now = this.#now();
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.#limit.perSecond >= this.#limit.burst)
        this.#buckets.delete(key);
    }
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size < max) break;
      this.#buckets.delete(key);
    }
  }
}

/** An HTTP status and the JSON answer. */
type Reply = readonly [number, RamdiskAnswer];

class HttpProblem extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (error: Error | undefined, body?: Buffer) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      if (error) reject(error);
      else resolve(body as Buffer);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RAMDISK_MESSAGE_BYTES) {
        finish(new HttpProblem(413, `message larger than ${MAX_RAMDISK_MESSAGE_BYTES} bytes`));
        req.resume(); // drain (the connection is closed after the answer)
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(undefined, Buffer.concat(chunks)));
    req.once('error', (error) => finish(error));
    req.once('aborted', () => finish(new Error('request aborted')));
  });
}

const TOKEN_PARAM = new RegExp(`${RAMDISK_KERNEL_PARAMS.token.replace('.', '\\.')}=\\S+`, 'g');

function cleanMessage(message: string, sessionId: string): string {
  let text = message.replace(TOKEN_PARAM, `${RAMDISK_KERNEL_PARAMS.token}=[redacted]`);
  if (text.includes(sessionId)) text = text.split(sessionId).join('[redacted]');
  return text.length > MAX_LOG_MESSAGE
    ? `${text.slice(0, MAX_LOG_MESSAGE)}… (${text.length} characters)`
    : text;
}

/**
 * The HTTP route for the boot server's `extraRoutes`: handles everything under
 * `/ramdisk/`, leaves every other path to the static server (false).
 */
export function ramdiskRoute(
  options: RamdiskEndpointOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const { sessions } = options;
  const log = options.log.child({ component: 'ramdisk' });
  const buckets = new TokenBuckets(options.rateLimit ?? DEFAULT_RATE_LIMIT, options.now);

  const send = (
    res: ServerResponse,
    status: number,
    answer: RamdiskAnswer,
    headers: Record<string, string> = {},
  ) => {
    const body = JSON.stringify(answer);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(body);
  };
  const error = (
    res: ServerResponse,
    status: number,
    message: string,
    headers: Record<string, string> = {},
  ) => send(res, status, { v: 1, type: 'error', error: message }, headers);

  const ok = (answer: RamdiskAnswer): Reply => [200, answer];
  const problem = (status: number, message: string): Reply => [
    status,
    { v: 1, type: 'error', error: message },
  ];

  const handle = (message: RamdiskRequest, from: string | undefined): Reply => {
    switch (message.type) {
      case 'hello': {
        const info = { version: message.version, bootMac: message.boot_mac };
        const opened =
          sessions.hello(message.token, info) ?? options.discovery?.hello(message.token, info, from);
        if (!opened) {
          log.warn('ramdisk hello refused: unknown, used or expired token', { from });
          return problem(401, 'unknown or used token');
        }
        log.info('ramdisk said hello', {
          node: opened.node,
          version: message.version,
          boot_mac: message.boot_mac,
          from,
        });
        return ok({
          v: 1,
          type: 'hello',
          session: opened.session,
          heartbeat_interval_s: sessions.heartbeatIntervalMs / 1000,
        });
      }
      case 'heartbeat': {
        const node = sessions.nodeOf(message.session);
        const steps = sessions.heartbeat(message.session);
        if (!steps) return problem(401, 'unknown session');
        for (const step of steps) log.info('ramdisk step given', { node, step: step.name, step_id: step.id });
        return ok({ v: 1, type: 'heartbeat', steps });
      }
      case 'result': {
        const node = sessions.nodeOf(message.session);
        const outcome =
          message.status === 'succeeded'
            ? ({ status: 'succeeded', result: message.result ?? {} } as const)
            : ({ status: 'failed', error: message.error ?? 'the ramdisk gave no error' } as const);
        const stored = sessions.result(message.session, message.step, outcome);
        if (stored === 'unknown-session') return problem(401, 'unknown session');
        if (stored === 'not-given') {
          log.warn('ramdisk result refused: a step the session was not given', {
            node,
            step_id: message.step,
          });
          return problem(409, `step ${message.step} was not given to this session`);
        }
        if (stored === 'stored') {
          log.info('ramdisk step finished', {
            node,
            step_id: message.step,
            status: message.status,
            ...(outcome.status === 'failed' ? { error: cleanMessage(outcome.error, message.session) } : {}),
          });
        }
        return ok({ v: 1, type: 'ok' });
      }
      case 'log': {
        const node = sessions.nodeOf(message.session);
        if (!node) return problem(401, 'unknown session');
        for (const line of message.lines.slice(0, MAX_LOG_LINES)) {
          const fields = {
            node,
            ramdisk_at: line.at,
            ...(line.step !== undefined ? { step: line.step } : {}),
            ...(line.progress !== undefined ? { progress: line.progress } : {}),
          };
          log[line.level](`ramdisk: ${cleanMessage(line.message, message.session)}`, fields);
        }
        if (message.lines.length > MAX_LOG_LINES) {
          log.warn('ramdisk log lines dropped', { node, dropped: message.lines.length - MAX_LOG_LINES });
        }
        return ok({ v: 1, type: 'ok' });
      }
    }
  };

  return async (req, res) => {
    const url = req.url ?? '/';
    const q = url.search(/[?#]/);
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== '/ramdisk' && !path.startsWith('/ramdisk/')) return false;
    const from = req.socket.remoteAddress;
    if (!buckets.take(from ?? 'unknown')) {
      error(res, 429, 'too many requests', {
        'Retry-After': String(buckets.retryAfterSeconds),
        Connection: 'close',
      });
      return true;
    }
    if (path !== RAMDISK_PATH) {
      error(res, 404, 'not found');
      return true;
    }
    if (req.method !== 'POST') {
      error(res, 405, 'method not allowed: POST only', { Allow: 'POST' });
      return true;
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > MAX_RAMDISK_MESSAGE_BYTES) {
      error(res, 413, `message larger than ${MAX_RAMDISK_MESSAGE_BYTES} bytes`, { Connection: 'close' });
      return true;
    }
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      error(res, 400, 'Content-Type must be application/json', { Connection: 'close' });
      return true;
    }
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (e) {
      if (e instanceof HttpProblem) error(res, e.status, e.message, { Connection: 'close' });
      else res.destroy();
      return true;
    }
    let message: unknown;
    try {
      message = JSON.parse(body.toString('utf8'));
    } catch {
      error(res, 400, 'not JSON');
      return true;
    }
    if (!validateRamdiskRequest(message)) {
      const e = validateRamdiskRequest.errors?.[0];
      error(res, 400, `bad message${e ? `: ${e.instancePath || '/'} ${e.message ?? ''}`.trimEnd() : ''}`);
      return true;
    }
    const [status, answer] = handle(message, from);
    send(res, status, answer);
    return true;
  };
}
