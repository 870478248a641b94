/**
 * Bearer credentials: `<prefix>_<id>_<secret>`. The id finds the record; only the
 * SHA-256 of the secret is stored. A 256-bit random secret needs no slow hash: nobody
 * can guess it, and a leaked table gives no usable credential.
 * Prefixes: `mpt` API tokens, `mpa` agent credentials, `mpe` one-time enrollment tokens.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type CredentialKind = 'user' | 'agent' | 'enrollment';

const PREFIX: Record<CredentialKind, string> = { user: 'mpt', agent: 'mpa', enrollment: 'mpe' };
const TOKEN = /^(mpt|mpa|mpe)_([A-Za-z0-9-]{22})_([A-Za-z0-9_-]{43})$/;

export interface MintedToken {
  readonly id: string;
  readonly secret: string;
  readonly token: string;
  readonly secretHash: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function mintToken(kind: CredentialKind = 'user'): MintedToken {
  // base64url without '_' in the id, so the separator stays unambiguous.
  const id = randomBytes(16).toString('base64url').replaceAll('_', '-');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `${PREFIX[kind]}_${id}_${secret}`, secretHash: hashSecret(secret) };
}

export function parseToken(
  text: string,
  kind: CredentialKind = 'user',
): { id: string; secret: string } | undefined {
  const match = TOKEN.exec(text);
  if (!match || match[1] !== PREFIX[kind]) return undefined;
  return { id: match[2] as string, secret: match[3] as string };
}

export function verifySecret(secret: string, secretHash: string): boolean {
  const actual = Buffer.from(hashSecret(secret), 'hex');
  const expected = Buffer.from(secretHash, 'hex');
  return expected.length === actual.length && timingSafeEqual(actual, expected);
}
