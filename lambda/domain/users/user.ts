/**
 * API users (Ironic's `http_basic` users, with a role) and their bearer tokens. Only
 * hashes are stored: the password as scrypt, a token's secret as SHA-256.
 */
import { invalid } from '../errors.ts';
import { isValidLogicalName } from '../identifiers.ts';

export type Role = 'admin' | 'member' | 'reader';
export const ROLES: readonly Role[] = ['admin', 'member', 'reader'];

export interface User {
  name: string;
  role: Role;
  /** The project a member acts for (nodes it owns or leases); null for other roles. */
  project: string | null;
  password_hash: string;
  created_at: string;
  updated_at: string | null;
}

export interface ApiToken {
  id: string;
  user: string;
  secret_hash: string;
  description: string | null;
  created_at: string;
  /** ISO time after which the token is refused; null never (not recommended). */
  expires_at: string | null;
  revoked: boolean;
}

/** What the API shows of a user: never the hash. */
export function publicUser(user: User): Omit<User, 'password_hash'> {
  const { password_hash: _hash, ...rest } = user;
  return rest;
}

export function publicToken(token: ApiToken): Omit<ApiToken, 'secret_hash'> {
  const { secret_hash: _hash, ...rest } = token;
  return rest;
}

export function validateUserName(name: unknown): string {
  if (!isValidLogicalName(name) || name.length > 64) {
    throw invalid(
      `Invalid user name ${JSON.stringify(name)}: use 1 to 64 letters, digits, '.', '_', '-' or '~'.`,
    );
  }
  return name;
}

export function validateRole(role: unknown, project: unknown): { role: Role; project: string | null } {
  if (!ROLES.includes(role as Role))
    throw invalid(`Invalid role ${JSON.stringify(role)}: one of ${ROLES.join(', ')}.`);
  if (role === 'member') {
    if (typeof project !== 'string' || project.trim() === '' || project.length > 255) {
      throw invalid('A member needs a project (the owner/lessee value of the nodes it may act on).');
    }
    return { role: 'member', project };
  }
  if (project !== undefined && project !== null)
    throw invalid(`Only members have a project; ${String(role)} sees every project.`);
  return { role: role as Role, project: null };
}

export function isTokenUsable(token: ApiToken, now: Date): boolean {
  return !token.revoked && (token.expires_at === null || Date.parse(token.expires_at) > now.getTime());
}
