/**
 * Agents' enrollment and credentials (DESIGN.md, "Agent"; `auth/tokens.ts` for the
 * credential format). Pure: times and ids come from callers.
 *
 * - An admin asks for an enrollment token for a site (`mpe_...`): single use, valid
 *   15 minutes, stored only as a hash.
 * - The agent exchanges it, with its hostname and drivers, for a credential (`mpa_...`),
 *   shown once and stored only as a hash. It does not expire; it is revoked.
 * - Rotation: a new credential is issued; the agent's older ones keep working for a
 *   grace period (10 minutes), or until the new one is first used, whichever is first.
 * - Revocation: every credential of the agent at once, and its open sockets are closed.
 */
import { invalid } from '../errors.ts';

export const ENROLLMENT_TOKEN_SECONDS = 15 * 60;
export const ROTATION_GRACE_SECONDS = 10 * 60;

export interface EnrollmentToken {
  readonly id: string;
  readonly site: string;
  readonly secret_hash: string;
  readonly created_at: string;
  readonly expires_at: string;
  /** Who asked for it (a user name). */
  readonly created_by: string;
  readonly used_at: string | null;
  /** The hostname that enrolled with it. */
  readonly used_by: string | null;
}

export interface AgentCredential {
  readonly id: string;
  /** The agent's hostname. */
  readonly agent: string;
  readonly site: string;
  readonly secret_hash: string;
  readonly created_at: string;
  /** Null: valid until revoked; otherwise the end of a rotation's grace period. */
  readonly expires_at: string | null;
  readonly revoked: boolean;
  /** When it first authenticated (its first use ends the grace of older credentials). */
  readonly first_used_at: string | null;
}

export function isEnrollmentTokenUsable(token: EnrollmentToken, now: Date): boolean {
  return token.used_at === null && Date.parse(token.expires_at) > now.getTime();
}

export function isCredentialUsable(credential: AgentCredential, now: Date): boolean {
  return (
    !credential.revoked &&
    (credential.expires_at === null || Date.parse(credential.expires_at) > now.getTime())
  );
}

/** The grace end an older credential gets when a new one is issued (never extended). */
export function graceEnd(credential: AgentCredential, now: Date): string {
  const end = new Date(now.getTime() + ROTATION_GRACE_SECONDS * 1000).toISOString();
  return credential.expires_at !== null && credential.expires_at < end ? credential.expires_at : end;
}

/** What the API shows of a credential: never the hash. */
export function publicCredential(credential: AgentCredential) {
  const { secret_hash: _hash, ...rest } = credential;
  return rest;
}

// As the protocol's `hello` (`protocol/messages.ts`), starting with a letter or digit.
const HOSTNAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

export function validateHostname(value: unknown): string {
  if (typeof value !== 'string' || !HOSTNAME.test(value)) {
    throw invalid(
      `Invalid agent hostname ${JSON.stringify(value)}: 1 to 253 letters, digits, '.' or '-', starting with a letter or digit.`,
    );
  }
  return value;
}

/** `POST /v1/agents/enroll`: the enrollment token and who the agent is. */
export const ENROLL_SCHEMA = {
  type: 'object',
  properties: {
    token: { type: 'string', maxLength: 128 },
    hostname: { type: 'string', maxLength: 253 },
    drivers: { type: 'array', items: { type: 'string', pattern: '^[a-z0-9_.-]{1,64}$' }, maxItems: 16 },
    agent_version: { type: 'string', maxLength: 64 },
  },
  required: ['token', 'hostname', 'drivers'],
  additionalProperties: false,
} as const;
