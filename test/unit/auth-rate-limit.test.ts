/** The per-credential token buckets (`domain/auth/rate-limit.ts`), on a hand-moved clock. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_RATE_LIMIT, rateLimitFromEnv, TokenBuckets } from '../../lambda/domain/auth/rate-limit.ts';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('token buckets', () => {
  it('allows the burst at once, then the rate, and says when to retry', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 2, burst: 3 }, time.now);
    expect([1, 2, 3].map(() => buckets.take('a').allowed)).toEqual([true, true, true]);
    expect(buckets.take('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    time.advance(499);
    expect(buckets.take('a').allowed).toBe(false);
    time.advance(1);
    expect(buckets.take('a').allowed).toBe(true);
    expect(buckets.take('a').allowed).toBe(false);
    // Idle for long: back to the burst, never more.
    time.advance(3_600_000);
    expect([1, 2, 3, 4].map(() => buckets.take('a').allowed)).toEqual([true, true, true, false]);
  });

  it('keeps one bucket per key', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 1 }, time.now);
    expect(buckets.take('a').allowed).toBe(true);
    expect(buckets.take('a').allowed).toBe(false);
    expect(buckets.take('b').allowed).toBe(true);
  });

  it('a slow rate asks for a longer wait', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 0.1, burst: 1 }, time.now);
    buckets.take('a');
    expect(buckets.take('a')).toEqual({ allowed: false, retryAfterSeconds: 10 });
  });

  it('holds at most maxEntries buckets, dropping the least recently used', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 1, maxEntries: 3 }, time.now);
    for (const key of ['a', 'b', 'c']) buckets.take(key);
    buckets.take('a'); // refused, and now the most recently used
    buckets.take('d');
    expect(buckets.size).toBe(3);
    expect(buckets.take('a').allowed).toBe(false); // kept
    expect(buckets.take('b').allowed).toBe(true); // dropped, so full again
    for (let i = 0; i < 10_000; i++) buckets.take(`k${i}`);
    expect(buckets.size).toBe(3);
  });

  it('a clock going backwards adds nothing', () => {
    const time = clock();
    const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 1 }, time.now);
    buckets.take('a');
    time.advance(-10_000);
    expect(buckets.take('a').allowed).toBe(false);
  });

  it('refuses a limit that would let nothing through', () => {
    expect(() => new TokenBuckets({ ratePerSecond: 0, burst: 5 })).toThrow();
    expect(() => new TokenBuckets({ ratePerSecond: 5, burst: 0 })).toThrow();
  });
});

describe('rate limit from the environment', () => {
  it('defaults, overrides, 0 for none, and errors for nonsense', () => {
    expect(rateLimitFromEnv({})).toEqual(DEFAULT_RATE_LIMIT);
    expect(
      rateLimitFromEnv({ METALPLANE_RATE_LIMIT_RPS: '5', METALPLANE_RATE_LIMIT_BURST: '10' }),
    ).toMatchObject({ ratePerSecond: 5, burst: 10 });
    expect(rateLimitFromEnv({ METALPLANE_RATE_LIMIT_RPS: '0' })).toBeNull();
    // The local stack (one process for every container) has no default limit, only an explicit one.
    expect(rateLimitFromEnv({ METALPLANE_LOCAL_STACK: 'true' })).toBeNull();
    expect(
      rateLimitFromEnv({ METALPLANE_LOCAL_STACK: 'true', METALPLANE_RATE_LIMIT_RPS: '7' }),
    ).toMatchObject({
      ratePerSecond: 7,
      burst: 200,
    });
    expect(() => rateLimitFromEnv({ METALPLANE_RATE_LIMIT_RPS: 'fast' })).toThrow(
      /METALPLANE_RATE_LIMIT_RPS/,
    );
    expect(() => rateLimitFromEnv({ METALPLANE_RATE_LIMIT_BURST: '-1' })).toThrow(/BURST/);
    expect(() => rateLimitFromEnv({ METALPLANE_RATE_LIMIT_BURST: '0' })).toThrow(/BURST/);
  });
});
