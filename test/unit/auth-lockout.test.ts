/** The failed-password backoff policy (`domain/auth/lockout.ts`), on a fixed clock. */
import { describe, expect, it } from 'vitest';
import {
  afterFailure,
  currentFailures,
  DEFAULT_LOCKOUT_POLICY,
  expiresAtSeconds,
  type LoginFailures,
  lockDurationMs,
  lockedUntil,
  lockoutId,
  retryAfterSeconds,
} from '../../lambda/domain/auth/lockout.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const policy = DEFAULT_LOCKOUT_POLICY;

/** `count` failures, each made as soon as the previous lock ended; answers the record and the time. */
function failTimes(count: number): { record: LoginFailures | undefined; now: number } {
  let record: LoginFailures | undefined;
  let now = T0;
  for (let i = 0; i < count; i++) {
    now = lockedUntil(record, now) ?? now;
    record = afterFailure(record, now);
  }
  return { record, now };
}

describe('failed-password backoff policy', () => {
  it('is 5 free failures then 1 s doubling to a 15 min cap', () => {
    expect(policy).toEqual({
      threshold: 5,
      baseLockMs: 1000,
      maxLockMs: 900_000,
      forgetAfterMs: 86_400_000,
    });
    const seconds = Array.from({ length: 17 }, (_, i) => lockDurationMs(i + 1) / 1000);
    expect(seconds).toEqual([0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
    expect(lockDurationMs(10_000)).toBe(900_000);
    expect(lockDurationMs(Number.MAX_SAFE_INTEGER)).toBe(900_000);
  });

  it('locks at the 5th consecutive failure, for 1 s from that failure', () => {
    const four = failTimes(4);
    expect(four.record?.failures).toBe(4);
    expect(four.record?.locked_until).toBeNull();
    expect(lockedUntil(four.record, four.now)).toBeUndefined();
    const five = afterFailure(four.record, four.now);
    expect(five.failures).toBe(5);
    expect(lockedUntil(five, four.now)).toBe(four.now + 1000);
    expect(lockedUntil(five, four.now + 999)).toBe(four.now + 1000);
    expect(lockedUntil(five, four.now + 1000)).toBeUndefined();
  });

  it('each failure after a lock doubles the next one', () => {
    const { record, now } = failTimes(7);
    expect(record?.failures).toBe(7);
    expect(lockedUntil(record, now)).toBe(now + 4000);
  });

  it('forgets the count a day after the last failure, but never during a lock', () => {
    const { record, now } = failTimes(4);
    expect(currentFailures(record, now + policy.forgetAfterMs - 1)?.failures).toBe(4);
    expect(currentFailures(record, now + policy.forgetAfterMs)).toBeUndefined();
    expect(afterFailure(record, now + policy.forgetAfterMs).failures).toBe(1);
    const short = { ...policy, forgetAfterMs: 500 };
    const locked = afterFailure(failTimes(4).record, now, short);
    expect(lockedUntil(locked, now + 900, short)).toBe(now + 1000);
  });

  it('a corrupt or empty record counts as none', () => {
    expect(currentFailures({ failures: 0, last_failure_at: 'x', locked_until: null }, T0)).toBeUndefined();
    expect(
      currentFailures({ failures: 3, last_failure_at: 'not a time', locked_until: null }, T0),
    ).toBeUndefined();
    expect(lockedUntil(undefined, T0)).toBeUndefined();
  });

  it('expires (TTL) when it would be forgotten, or when its lock ends if later', () => {
    const { record } = failTimes(3);
    expect(expiresAtSeconds(record as LoginFailures)).toBe(Math.ceil((T0 + policy.forgetAfterMs) / 1000));
    const long = { ...policy, forgetAfterMs: 1000 };
    const locked = afterFailure(failTimes(14).record, T0, long);
    expect(expiresAtSeconds(locked, long)).toBe(Math.ceil(Date.parse(locked.locked_until as string) / 1000));
  });

  it('retry-after is whole seconds, at least 1', () => {
    expect(retryAfterSeconds(T0 + 1, T0)).toBe(1);
    expect(retryAfterSeconds(T0 + 1000, T0)).toBe(1);
    expect(retryAfterSeconds(T0 + 1001, T0)).toBe(2);
    expect(retryAfterSeconds(T0 - 5, T0)).toBe(1);
  });

  it('keys a valid user name as itself, anything else by a hash that no name can equal', () => {
    expect(lockoutId('alice')).toBe('alice');
    const odd = lockoutId('al ice');
    expect(odd).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lockoutId('x'.repeat(100_000))).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lockoutId('x'.repeat(65))).not.toBe('x'.repeat(65));
    expect(lockoutId('al ice')).toBe(odd);
  });
});
