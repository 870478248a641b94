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
 */
import { createHash } from 'node:crypto';
import { UserRepository } from '../adapters/dynamo/user-repository.ts';
import { agentRuntimeFor } from '../agents/channel.ts';
import type { AgentCredentials } from '../agents/credentials.ts';
import { parseAuthorization } from '../domain/auth/basic.ts';
import { verifyPassword, verifyUnknownUser } from '../domain/auth/passwords.ts';
import { parseCredential, parseToken, verifySecret } from '../domain/auth/tokens.ts';
import { isTokenUsable, type User } from '../domain/users/user.ts';
import { Unauthorized } from '../http/errors.ts';
import type { Authenticator } from '../http/middlewares.ts';
import type { Principal } from './access.ts';
import type { Dependencies } from './dependencies.ts';

export const AUTH_STRATEGY_ENV = 'METALPLANE_AUTH_STRATEGY';
/** Set only by the local stack (loopback): the one place `noauth` may be honoured. */
export const LOCAL_STACK_ENV = 'METALPLANE_LOCAL_STACK';

const NOAUTH_PRINCIPAL: Principal = { kind: 'noauth', name: 'noauth', role: 'admin' };
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX_ENTRIES = 10_000;
const CHALLENGE = 'Basic realm="metalplane", Bearer realm="metalplane"';

function principalOf(user: User, kind: 'user' | 'token'): Principal {
  return { kind, name: user.name, role: user.role, ...(user.project ? { project: user.project } : {}) };
}

export function authenticatorFromEnv(deps: Dependencies): Authenticator {
  if (process.env[AUTH_STRATEGY_ENV] === 'noauth') {
    if (process.env[LOCAL_STACK_ENV] !== 'true') {
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
  return credentialAuthenticator(new UserRepository(deps.store), agentCredentialsFor(deps));
}

async function agentPrincipal(agents: AgentCredentials, token: string): Promise<Principal> {
  const agent = await agents.authenticate(token);
  if (!agent) throw new Unauthorized('Invalid, expired or revoked agent credential', CHALLENGE);
  return { kind: 'agent', name: agent.hostname, role: 'reader', site: agent.site };
}

/** The agents' credentials, on the same store as the rest of `deps` (built at first use). */
function agentCredentialsFor(deps: Dependencies): () => AgentCredentials {
  return () => agentRuntimeFor(deps).credentials;
}

export function credentialAuthenticator(
  users: UserRepository,
  agents?: () => AgentCredentials,
): Authenticator {
  const verified = new Map<string, number>();

  const checkPassword = async (user: User, username: string, password: string): Promise<boolean> => {
    const key = createHash('sha256').update(`${username}\0${password}\0${user.password_hash}`).digest('hex');
    const until = verified.get(key);
    if (until !== undefined && until > Date.now()) return true;
    if (!(await verifyPassword(password, user.password_hash))) return false;
    if (verified.size >= VERIFIED_MAX_ENTRIES) verified.clear();
    verified.set(key, Date.now() + VERIFIED_TTL_MS);
    return true;
  };

  return async (headers) => {
    const credentials = parseAuthorization(headers.authorization);
    if (!credentials) throw new Unauthorized('Authentication required', CHALLENGE);
    if (credentials.scheme === 'basic') {
      const found = await users.get(credentials.username);
      if (!found) {
        // As slow as a wrong password, so timing does not tell which user names exist.
        await verifyUnknownUser(credentials.password);
        throw new Unauthorized('Invalid username or password', CHALLENGE);
      }
      if (!(await checkPassword(found.user, credentials.username, credentials.password))) {
        throw new Unauthorized('Invalid username or password', CHALLENGE);
      }
      return principalOf(found.user, 'user');
    }
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
}
