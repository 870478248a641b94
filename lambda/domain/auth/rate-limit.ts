/**
 * Per-credential rate limit: one token bucket per principal, in this container's memory
 * (API Gateway's stage throttling bounds the whole API; this bounds one credential on one
 * container, and the local stack, where one process serves everything). Memory is
 * bounded: past `maxEntries` the least recently used bucket is dropped (it comes back
 * full, which only ever errs towards letting a request through).
 */

export interface RateLimit {
  /** Sustained requests per second per principal. */
  readonly ratePerSecond: number;
  /** Requests a principal may make at once after being idle. */
  readonly burst: number;
  readonly maxEntries?: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { ratePerSecond: 50, burst: 200, maxEntries: 10_000 };

export type Admission =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  readonly #rate: number;
  readonly #burst: number;
  readonly #maxEntries: number;
  readonly #clock: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit, clock: () => number = Date.now) {
    if (!(limit.ratePerSecond > 0) || !(limit.burst >= 1)) {
      throw new Error('a rate limit needs ratePerSecond > 0 and burst ≥ 1');
    }
    this.#rate = limit.ratePerSecond;
    this.#burst = limit.burst;
    this.#maxEntries = Math.max(1, limit.maxEntries ?? DEFAULT_RATE_LIMIT.maxEntries ?? 10_000);
    this.#clock = clock;
  }

  /** Takes one request from `key`'s bucket, or says how long to wait for one. */
  take(key: string): Admission {
    const now = this.#clock();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    // Re-inserting keeps the map in least-recently-used order.
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.#maxEntries) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (elapsed * this.#rate) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.#rate)) };
  }

  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * The limit from the environment: `METALPLANE_RATE_LIMIT_RPS` and `_BURST` (defaults
 * 50 and 200); an RPS of 0 turns the limit off. Anything else unreadable is an error at
 * start-up, not a silently unlimited API.
 *
 * In the local stack (`METALPLANE_LOCAL_STACK=true`: `npm start`, the tests, the benches)
 * there is no default limit: there one process stands for every Lambda container, so a
 * per-container default would cap the whole local API at one container's share. Setting
 * the variables turns it on there too.
 */
export function rateLimitFromEnv(env: Readonly<Record<string, string | undefined>>): RateLimit | null {
  if (
    env.METALPLANE_LOCAL_STACK === 'true' &&
    !env[RATE_LIMIT_RPS_ENV]?.trim() &&
    !env[RATE_LIMIT_BURST_ENV]?.trim()
  )
    return null;
  const read = (name: string, fallback: number): number => {
    const text = env[name];
    if (text === undefined || text.trim() === '') return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0, not ${text}`);
    return value;
  };
  const ratePerSecond = read(RATE_LIMIT_RPS_ENV, DEFAULT_RATE_LIMIT.ratePerSecond);
  if (ratePerSecond === 0) return null;
  const burst = read(RATE_LIMIT_BURST_ENV, Math.max(DEFAULT_RATE_LIMIT.burst, ratePerSecond));
  if (burst < 1) throw new Error(`${RATE_LIMIT_BURST_ENV} must be ≥ 1`);
  return { ratePerSecond, burst, maxEntries: DEFAULT_RATE_LIMIT.maxEntries ?? 10_000 };
}

export const RATE_LIMIT_RPS_ENV = 'METALPLANE_RATE_LIMIT_RPS';
export const RATE_LIMIT_BURST_ENV = 'METALPLANE_RATE_LIMIT_BURST';
