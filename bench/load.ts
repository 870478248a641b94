/**
 * A small closed-loop HTTP load generator: `concurrency` workers, each sending its next
 * request as soon as the previous one is answered, over keep-alive connections
 * (`node:http`, one socket per worker). Bounded by a count, a duration, or both, and
 * always by `maxDurationMs`.
 *
 * Latency percentiles are over 2xx answers only (a fast 404 says nothing about the
 * workload); non-2xx answers and transport errors are counted apart, and the first few
 * are kept for diagnostics.
 */
import { Agent, request as httpRequest } from 'node:http';
import { percentile } from './support.ts';

export interface LoadRequest {
  readonly method: string;
  /** Path and query, e.g. `/v1/nodes?limit=100`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A string is sent as is; anything else as JSON. */
  readonly body?: unknown;
}

export interface LoadOptions {
  /** `http://host:port`; only plain HTTP. */
  readonly baseUrl: string;
  readonly concurrency: number;
  /** Stop starting requests after this long. */
  readonly durationMs?: number;
  /** Stop after this many requests. */
  readonly count?: number;
  /** Hard bound even for count-bounded runs (default: durationMs, or 10 minutes). */
  readonly maxDurationMs?: number;
  /** Stop early once this many requests failed (non-2xx or transport errors). */
  readonly abortAfterFailures?: number;
  /** Per-request timeout (default 30 s): a timed-out request counts as an error. */
  readonly timeoutMs?: number;
  /** How many failure descriptions to keep (default 5). */
  readonly keepFailures?: number;
  /** The i-th request (0-based, in the order they are started). */
  readonly makeRequest: (i: number) => LoadRequest;
  /** Called with every answer, 2xx or not (e.g. to collect created UUIDs). */
  readonly onResponse?: (i: number, status: number, body: string) => void;
}

export interface LoadResult {
  /** Requests answered or failed. */
  readonly requests: number;
  /** 2xx answers. */
  readonly ok: number;
  /** Answers with another status. */
  readonly non2xx: number;
  /** Transport errors and timeouts (no HTTP answer). */
  readonly errors: number;
  /** Count per HTTP status. */
  readonly statuses: Readonly<Record<number, number>>;
  /** The first few failures: `METHOD path → status body` or the error. */
  readonly failures: readonly string[];
  readonly elapsedMs: number;
  /** 2xx answers per second. */
  readonly rps: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
  /** True when the run stopped because of `abortAfterFailures` or `maxDurationMs`. */
  readonly cutShort: boolean;
}

const DEFAULT_MAX_MS = 10 * 60_000;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, durationMs, count } = options;
  if (durationMs === undefined && count === undefined) throw new Error('runLoad needs durationMs or count');
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error('concurrency must be ≥ 1');
  const base = new URL(options.baseUrl);
  if (base.protocol !== 'http:') throw new Error(`only http:// targets, not ${options.baseUrl}`);
  const hardLimitMs = options.maxDurationMs ?? durationMs ?? DEFAULT_MAX_MS;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const keepFailures = options.keepFailures ?? 5;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });

  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const failures: string[] = [];
  let next = 0;
  let done = 0;
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let cutShort = false;
  const started = performance.now();
  const deadline = started + (durationMs ?? hardLimitMs);
  const hardDeadline = started + hardLimitMs;

  const keep = (text: string) => {
    if (failures.length < keepFailures) failures.push(text.length > 600 ? `${text.slice(0, 600)}…` : text);
  };
  const shouldStop = (): boolean => {
    if (count !== undefined && next >= count) return true;
    const now = performance.now();
    if (now >= deadline) return true;
    if (
      now >= hardDeadline ||
      (options.abortAfterFailures !== undefined && non2xx + errors >= options.abortAfterFailures)
    ) {
      cutShort = true;
      return true;
    }
    return false;
  };

  const worker = async () => {
    while (!shouldStop()) {
      const i = next++;
      const spec = options.makeRequest(i);
      const sentAt = performance.now();
      try {
        const { status, body } = await send(base, agent, spec, timeoutMs);
        const latency = performance.now() - sentAt;
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) {
          ok++;
          latencies.push(latency);
        } else {
          non2xx++;
          keep(`${spec.method} ${spec.path} → ${status} ${body}`);
        }
        options.onResponse?.(i, status, body);
      } catch (error) {
        errors++;
        keep(`${spec.method} ${spec.path} → ${(error as Error).message}`);
      }
      done++;
    }
  };

  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  const elapsedMs = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return {
    requests: done,
    ok,
    non2xx,
    errors,
    statuses,
    failures,
    elapsedMs,
    rps: ok / (elapsedMs / 1000),
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: latencies.at(-1) ?? Number.NaN,
    mean: latencies.length ? latencies.reduce((sum, value) => sum + value, 0) / latencies.length : Number.NaN,
    cutShort,
  };
}

function send(
  base: URL,
  agent: Agent,
  spec: LoadRequest,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  const payload =
    spec.body === undefined
      ? undefined
      : typeof spec.body === 'string'
        ? spec.body
        : JSON.stringify(spec.body);
  const headers: Record<string, string | number> = { ...spec.headers };
  if (payload !== undefined) {
    headers['content-length'] = Buffer.byteLength(payload);
    if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type'))
      headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method: spec.method,
        path: spec.path,
        headers,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** `12 × 404, 3 × ECONNRESET`-style summary of what failed. */
export function describeFailures(result: LoadResult): string {
  const parts = Object.entries(result.statuses)
    .filter(([status]) => Number(status) < 200 || Number(status) >= 300)
    .map(([status, n]) => `${n}×${status}`);
  if (result.errors) parts.push(`${result.errors}×error`);
  return parts.join(' ');
}
