/**
 * Who is asking. HTTP Basic users (Ironic's `http_basic` strategy, so the real
 * `baremetal --os-auth-type http_basic` works), bearer API tokens (`mpt_...`) and agent
 * credentials (`mpa_...`), all stored only as hashes; `noauth` only where the local stack
 * explicitly turned it on, on loopback.
 *
 * An agent credential authenticates as `{kind: 'agent', name: <hostname>, role:
 * 'reader', site}`: the policy refuses that principal every ordinary route; it reaches
 * only its own site's agent routes (`routes/agents.ts`). It is read on every request
 * (no cache), so a revoked one is refused at once.
 *
 * A scrypt check costs tens of milliseconds by design; a successful one is remembered
 * for a short while, keyed by a SHA-256 of the credentials *and* the stored hash, so a
 * password change takes effect at once and no password is kept in memory.
 *
 * Throttling (issue 12):
 * - failed-password backoff per claimed user name, in DynamoDB so that every container
 *   and every restart sees it (`domain/auth/lockout.ts` for the numbers): a locked name
 *   is refused with 401 and the time to retry, its password not even checked; unknown
 *   names count and lock exactly as known ones. The failure record is read with the
 *   user (one BatchGetItem), and written only on a failure, or on the success that ends
 *   a run of failures: a plain successful login costs no write.
 * - a token bucket per principal in this container (`domain/auth/rate-limit.ts`,
 *   `METALPLANE_RATE_LIMIT_RPS`/`_BURST`): over it, 429 with `Retry-After`.
 * Bearer tokens get no backoff: their 256-bit secrets cannot be guessed online, and a
 * lock per token id (ids are not secret) would only let anyone lock a token out.
 */
import { createHash } from 'node:crypto';
import { UserRepository } from '../adapters/dynamo/user-repository.ts';
import type { AgentCredentials } from '../agents/credentials.ts';
import { AUTH_STRATEGY_ENV, LOCAL_STACK_ENV, type MetalplaneConfig } from '../config.ts';
import { parseAuthorization } from '../domain/auth/basic.ts';
import {
  DEFAULT_LOCKOUT_POLICY,
  type LockoutPolicy,
  lockedUntil,
  retryAfterSeconds,
} from '../domain/auth/lockout.ts';
import { verifyPassword, verifyUnknownUser } from '../domain/auth/passwords.ts';
import { type RateLimit, TokenBuckets } from '../domain/auth/rate-limit.ts';
import { parseCredential, parseToken, verifySecret } from '../domain/auth/tokens.ts';
import { isTokenUsable, type User } from '../domain/users/user.ts';
import { TooManyRequests, Unauthorized } from '../http/errors.ts';
import type { Authenticator } from '../http/middlewares.ts';
import { controlPlaneFor } from '../runtime.ts';
import type { Principal } from './access.ts';
import type { Dependencies } from './dependencies.ts';

export { AUTH_STRATEGY_ENV, LOCAL_STACK_ENV };

const NOAUTH_PRINCIPAL: Principal = { kind: 'noauth', name: 'noauth', role: 'admin' };
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX_ENTRIES = 10_000;
const CHALLENGE = 'Basic realm="metalplane", Bearer realm="metalplane"';

function principalOf(user: User, kind: 'user' | 'token'): Principal {
  return { kind, name: user.name, role: user.role, ...(user.project ? { project: user.project } : {}) };
}

/** The API's authenticator, as the configuration (default: the dependencies') says. */
export function authenticatorFromEnv(
  deps: Dependencies,
  config: MetalplaneConfig = deps.config(),
): Authenticator {
  if (config.auth.strategy === 'noauth') {
    if (!config.localStack) {
      throw new Error('noauth is only allowed in the local stack on loopback');
    }
    // Agents still present their credential: the agent routes need to know which agent.
    const agents = agentCredentialsFor(deps);
    return async (headers) => {
      const credentials = parseAuthorization(headers.authorization);
      if (credentials?.scheme === 'bearer' && parseCredential(credentials.token)?.kind === 'agent') {
        return agentPrincipal(agents(), credentials.token);
      }
      return NOAUTH_PRINCIPAL;
    };
  }
  return credentialAuthenticator(new UserRepository(deps.store), agentCredentialsFor(deps), {
    rateLimit: config.auth.rateLimit,
  });
}

export interface AuthenticatorOptions {
  /** Epoch milliseconds now (tests move time instead of waiting). */
  readonly clock?: () => number;
  readonly lockout?: LockoutPolicy;
  /** The per-principal limit in this container; null for none. */
  readonly rateLimit?: RateLimit | null;
}

/** The bucket a principal draws from: one per user (its password and its tokens apart), per agent. */
function rateKey(principal: Principal): string {
  if (principal.kind === 'agent') return `agent:${principal.site ?? ''}:${principal.name}`;
  return `${principal.kind}:${principal.name}`;
}

function lockedMessage(until: number, now: number): string {
  return (
    'This account is temporarily locked after repeated failed logins; ' +
    `retry after ${new Date(until).toISOString()} (in ${retryAfterSeconds(until, now)} s).`
  );
}

async function agentPrincipal(agents: AgentCredentials, token: string): Promise<Principal> {
  const agent = await agents.authenticate(token);
  if (!agent) throw new Unauthorized('Invalid, expired or revoked agent credential', CHALLENGE);
  return { kind: 'agent', name: agent.hostname, role: 'reader', site: agent.site };
}

/** The agents' credentials, on the same store as the rest of `deps` (built at first use). */
function agentCredentialsFor(deps: Dependencies): () => AgentCredentials {
  return () => controlPlaneFor(deps).credentials;
}

export function credentialAuthenticator(
  users: UserRepository,
  agents?: () => AgentCredentials,
  options: AuthenticatorOptions = {},
): Authenticator {
  const clock = options.clock ?? Date.now;
  const policy = options.lockout ?? DEFAULT_LOCKOUT_POLICY;
  const buckets = options.rateLimit ? new TokenBuckets(options.rateLimit, clock) : undefined;
  const verified = new Map<string, number>();

  const checkPassword = async (user: User, username: string, password: string): Promise<boolean> => {
    const key = createHash('sha256').update(`${username}\0${password}\0${user.password_hash}`).digest('hex');
    const until = verified.get(key);
    if (until !== undefined && until > clock()) return true;
    if (!(await verifyPassword(password, user.password_hash))) return false;
    if (verified.size >= VERIFIED_MAX_ENTRIES) verified.clear();
    verified.set(key, clock() + VERIFIED_TTL_MS);
    return true;
  };

  const basic = async (username: string, password: string): Promise<Principal> => {
    const { user: found, failures } = await users.getWithLoginFailures(username);
    const now = clock();
    const locked = lockedUntil(failures?.record, now, policy);
    if (locked !== undefined) {
      // Known or not, right password or not: the same answer, and no password check.
      throw new Unauthorized(lockedMessage(locked, now), CHALLENGE, {
        'Retry-After': String(retryAfterSeconds(locked, now)),
      });
    }
    // An unknown name is as slow as a wrong password, so timing does not tell which exist.
    const ok = found
      ? await checkPassword(found.user, username, password)
      : await verifyUnknownUser(password);
    if (!found || !ok) {
      await users.recordLoginFailure(username, clock(), policy, failures);
      throw new Unauthorized('Invalid username or password', CHALLENGE);
    }
    if (failures && failures.record.failures > 0) await users.clearLoginFailures(username);
    return principalOf(found.user, 'user');
  };

  const authenticate = async (headers: Readonly<Record<string, string>>): Promise<Principal> => {
    const credentials = parseAuthorization(headers.authorization);
    if (!credentials) throw new Unauthorized('Authentication required', CHALLENGE);
    if (credentials.scheme === 'basic') return basic(credentials.username, credentials.password);
    if (parseCredential(credentials.token)?.kind === 'agent' && agents) {
      return agentPrincipal(agents(), credentials.token);
    }
    const parsed = parseToken(credentials.token);
    const found = parsed ? await users.getToken(parsed.id) : undefined;
    if (
      !parsed ||
      !found ||
      !verifySecret(parsed.secret, found.token.secret_hash) ||
      !isTokenUsable(found.token, new Date())
    ) {
      throw new Unauthorized('Invalid, expired or revoked token', CHALLENGE);
    }
    const owner = await users.get(found.token.user);
    if (!owner) throw new Unauthorized('Invalid, expired or revoked token', CHALLENGE);
    return principalOf(owner.user, 'token');
  };

  return async (headers) => {
    const principal = await authenticate(headers);
    const admission = buckets?.take(rateKey(principal));
    if (admission && !admission.allowed) {
      throw new TooManyRequests(
        `Too many requests for this credential; retry after ${admission.retryAfterSeconds} s.`,
        admission.retryAfterSeconds,
      );
    }
    return principal;
  };
}
