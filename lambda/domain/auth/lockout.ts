/**
 * Failed-password backoff per user name (pure: every function takes the time).
 *
 * Policy (the defaults): the first 4 consecutive failures cost nothing but the failure;
 * the 5th locks the name for 1 s, and every further failure made once a lock has ended
 * doubles it (2 s, 4 s, ... 512 s), up to 15 min from the 15th failure on. While a name
 * is locked its password is not even checked: a correct one is refused too, with the
 * time to retry. A success resets the count; so does a day without a failure.
 *
 * The record is kept per *claimed* user name, whether or not such a user exists, so the
 * answers never tell which names exist; DynamoDB forgets it by TTL (`expiresAtSeconds`),
 * which bounds the records random names leave behind.
 */
import { createHash } from 'node:crypto';
import { isValidLogicalName } from '../identifiers.ts';

export interface LockoutPolicy {
  /** The failure that sets the first lock (the ones before it lock nothing). */
  readonly threshold: number;
  /** The first lock's length; each later one doubles. */
  readonly baseLockMs: number;
  readonly maxLockMs: number;
  /** A count is forgotten this long after its last failure (and the record may be deleted). */
  readonly forgetAfterMs: number;
}

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  threshold: 5,
  baseLockMs: 1000,
  maxLockMs: 15 * 60_000,
  forgetAfterMs: 24 * 3600_000,
};

/** The stored record (ISO times, so it reads well in the table and in the API). */
export interface LoginFailures {
  /** Consecutive failures since the last success (or since the count was forgotten). */
  readonly failures: number;
  readonly last_failure_at: string;
  /** When the current (or last) lock ends; null before the threshold. */
  readonly locked_until: string | null;
}

/** The lock length after `failures` consecutive failures (0 below the threshold). */
export function lockDurationMs(failures: number, policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY): number {
  if (failures < policy.threshold) return 0;
  const doublings = failures - policy.threshold;
  // 2 ** 60 ms is far past any sensible cap: stop doubling there (no Infinity, no overflow).
  if (doublings >= 60) return policy.maxLockMs;
  return Math.min(policy.maxLockMs, policy.baseLockMs * 2 ** doublings);
}

/** The record as it counts at `now`: undefined once forgotten (or absent). */
export function currentFailures(
  record: LoginFailures | undefined,
  now: number,
  policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
): LoginFailures | undefined {
  if (!record || record.failures <= 0) return undefined;
  const last = Date.parse(record.last_failure_at);
  const lockEnd = record.locked_until ? Date.parse(record.locked_until) : Number.NaN;
  // A lock still running is never forgotten (a forget window shorter than the cap).
  if (Number.isFinite(lockEnd) && lockEnd > now) return record;
  if (!Number.isFinite(last) || now - last >= policy.forgetAfterMs) return undefined;
  return record;
}

/** Epoch ms until which the name is locked at `now`, or undefined when it is not. */
export function lockedUntil(
  record: LoginFailures | undefined,
  now: number,
  policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
): number | undefined {
  const current = currentFailures(record, now, policy);
  if (!current?.locked_until) return undefined;
  const until = Date.parse(current.locked_until);
  return Number.isFinite(until) && until > now ? until : undefined;
}

/** The record after one more failure at `now` (the caller checked the name is not locked). */
export function afterFailure(
  record: LoginFailures | undefined,
  now: number,
  policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
): LoginFailures {
  const failures = (currentFailures(record, now, policy)?.failures ?? 0) + 1;
  const lock = lockDurationMs(failures, policy);
  return {
    failures,
    last_failure_at: new Date(now).toISOString(),
    locked_until: lock > 0 ? new Date(now + lock).toISOString() : null,
  };
}

/** When DynamoDB may delete the record (TTL, epoch seconds): once it would be forgotten. */
export function expiresAtSeconds(
  record: LoginFailures,
  policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
): number {
  const forgotten = Date.parse(record.last_failure_at) + policy.forgetAfterMs;
  const lockEnd = record.locked_until ? Date.parse(record.locked_until) : 0;
  return Math.ceil(Math.max(forgotten, lockEnd) / 1000);
}

/** Whole seconds to wait until `until` (at least 1). */
export function retryAfterSeconds(until: number, now: number): number {
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/**
 * The record's id for a claimed user name: the name itself when it could be a user's
 * (readable in the table, and what the admin API addresses), otherwise a SHA-256 of it
 * (`sha256:` cannot start a valid name), so that a huge or odd name never makes an
 * invalid DynamoDB key.
 */
export function lockoutId(name: string): string {
  if (isValidLogicalName(name) && name.length <= 64) return name;
  return `sha256:${createHash('sha256').update(name, 'utf8').digest('hex')}`;
}
