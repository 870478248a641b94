/**
 * Bearer credentials: `<prefix>_<id>_<secret>`.
 *
 * - prefix: `mpt` an API token of a user, `mpa` an agent's credential, `mpe` a
 *   one-time enrollment token (a prefix makes a leaked credential recognisable by
 *   secret scanners and tells at a glance what it opens).
 * - id: 16 random bytes, base64url (22 characters). It names the stored record, so it
 *   may appear in URLs and listings; it is not secret.
 * - secret: 32 random bytes, base64url (43 characters). Only its SHA-256 is stored.
 *
 * Both parts have fixed lengths, so the `_` that base64url may contain inside them is
 * never ambiguous with the separators.
 *
 * Why SHA-256 and not scrypt for the secret: a slow hash protects guessable secrets
 * (passwords). A 256-bit random secret cannot be guessed or brute-forced from its
 * hash, so one fast hash is enough to make a leaked table useless, and keeps bearer
 * authentication cheap on every request.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type CredentialKind = 'user' | 'agent' | 'enrollment';

export const CREDENTIAL_PREFIX: Readonly<Record<CredentialKind, string>> = {
  user: 'mpt',
  agent: 'mpa',
  enrollment: 'mpe',
};

const KIND_OF_PREFIX: Readonly<Record<string, CredentialKind>> = {
  mpt: 'user',
  mpa: 'agent',
  mpe: 'enrollment',
};

const ID_BYTES = 16;
const SECRET_BYTES = 32;
const ID_CHARS = 22;
const SECRET_CHARS = 43;
/** `mpt_` + id + `_` + secret. */
export const TOKEN_LENGTH = 4 + ID_CHARS + 1 + SECRET_CHARS;

const TOKEN = /^(mp[tae])_([A-Za-z0-9_-]{22})_([A-Za-z0-9_-]{43})$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

export interface MintedToken {
  readonly id: string;
  readonly secret: string;
  /** The whole credential, shown once to its holder and never stored. */
  readonly token: string;
  /** Hex SHA-256 of the secret: what is stored. */
  readonly secretHash: string;
}

export interface ParsedToken {
  readonly id: string;
  readonly secret: string;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * A token id never starts with `-`: ids are typed on command lines (`metalplane token
 * delete ID`), where a leading dash reads as an option. One id in 64 is drawn again.
 */
function mintId(): string {
  for (;;) {
    const id = randomBytes(ID_BYTES).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function mintToken(kind: CredentialKind = 'user'): MintedToken {
  const id = mintId();
  const secret = randomBytes(SECRET_BYTES).toString('base64url');
  return { id, secret, token: `${CREDENTIAL_PREFIX[kind]}_${id}_${secret}`, secretHash: hashSecret(secret) };
}

export const mintAgentCredential = (): MintedToken => mintToken('agent');
export const mintEnrollmentToken = (): MintedToken => mintToken('enrollment');

/** Only what `randomBytes(n).toString('base64url')` can produce (no stray trailing bits). */
function isCanonical(text: string): boolean {
  return Buffer.from(text, 'base64url').toString('base64url') === text;
}

/** Any Metalplane credential, with its kind; undefined for anything malformed. */
export function parseCredential(
  text: unknown,
): (ParsedToken & { readonly kind: CredentialKind }) | undefined {
  if (typeof text !== 'string' || text.length !== TOKEN_LENGTH) return undefined;
  const match = TOKEN.exec(text);
  if (!match) return undefined;
  const kind = KIND_OF_PREFIX[match[1] as string];
  const id = match[2] as string;
  const secret = match[3] as string;
  if (!kind || !isCanonical(id) || !isCanonical(secret)) return undefined;
  return { kind, id, secret };
}

/** A credential of the given kind (an API token by default); undefined otherwise. */
export function parseToken(text: unknown, kind: CredentialKind = 'user'): ParsedToken | undefined {
  const parsed = parseCredential(text);
  if (!parsed || parsed.kind !== kind) return undefined;
  return { id: parsed.id, secret: parsed.secret };
}

/** Constant-time check of a presented secret against the stored hash; false if either is malformed. */
export function verifySecret(secret: string, secretHash: string): boolean {
  if (typeof secret !== 'string' || typeof secretHash !== 'string' || !SHA256_HEX.test(secretHash))
    return false;
  const actual = createHash('sha256').update(secret, 'utf8').digest();
  return timingSafeEqual(actual, Buffer.from(secretHash, 'hex'));
}
