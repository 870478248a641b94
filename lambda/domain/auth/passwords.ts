/**
 * Passwords of HTTP Basic users. Ironic's `http_basic` strategy keeps bcrypt hashes in
 * an htpasswd file; we keep scrypt hashes (node:crypto, no dependency) in the users
 * table, as a self-describing string:
 *
 *     scrypt$N=16384,r=8,p=2$<salt, base64>$<key, base64>
 *
 * The parameters are read back from the string, so the cost can be raised later
 * (`needsRehash` tells when a stored hash is below the current one) without breaking
 * the hashes already stored. Parameters read back are bounded, so a tampered or
 * corrupt record cannot make one login burn gigabytes or seconds.
 *
 * Cost: N=2^14, r=8, p=2 (16 MiB) measured 50 ms median (46-74 ms, 12 runs) on this
 * 2-vCPU machine; N=2^14,p=1 was 26 ms and N=2^15,p=1 65 ms. That is below OWASP's
 * scrypt floor (N=2^17,r=8,p=1, about 130 ms here), a deliberate trade for Lambda
 * latency: the API remembers successful checks briefly, and `needsRehash` allows a
 * raise later. A Lambda with a fraction of a vCPU will be proportionally slower.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { DomainError } from '../errors.ts';

/** A password that breaks the policy: a 400 to the client, with a clear message. */
export class PasswordPolicyError extends DomainError {
  constructor(message: string) {
    super('invalid', message);
  }
}

export const PASSWORD_MIN_CHARS = 8;
export const PASSWORD_MAX_CHARS = 1024;

interface ScryptParameters {
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

const CURRENT: ScryptParameters = { n: 2 ** 14, r: 8, p: 2 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** Bounds on parameters read back from storage (so a stored string cannot DoS a login). */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
/** scrypt's memory is about 128·N·r bytes: at most 256 MiB (16x today's). */
const MAX_MEMORY = 256 * 1024 * 1024;
/** Work is proportional to N·r·p: at most 16x today's (about 0.8 s here). */
const MAX_WORK = 16 * CURRENT.n * CURRENT.r * CURRENT.p;
const MIN_SALT_BYTES = 8;
const MAX_SALT_BYTES = 64;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;

const ENCODED =
  /^scrypt\$N=([1-9]\d{0,7}),r=([1-9]\d{0,2}),p=([1-9]\d{0,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
// RFC 7617: "The user-id and password MUST NOT contain any control characters".
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Length in Unicode code points, which is what a person counts as characters. */
function characters(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** The password policy: a string of 8 to 1024 characters, no control characters. */
export function validatePassword(password: unknown): asserts password is string {
  if (typeof password !== 'string') throw new PasswordPolicyError('A password must be a string.');
  // Cheap bound first, so a huge string is not walked character by character.
  const count = password.length > 2 * PASSWORD_MAX_CHARS ? Number.POSITIVE_INFINITY : characters(password);
  if (count < PASSWORD_MIN_CHARS || count > PASSWORD_MAX_CHARS) {
    throw new PasswordPolicyError(
      `A password must have ${PASSWORD_MIN_CHARS} to ${PASSWORD_MAX_CHARS} characters.`,
    );
  }
  if (CONTROL.test(password)) {
    throw new PasswordPolicyError(
      'A password must not contain control characters (HTTP Basic cannot carry them).',
    );
  }
}

function maxmem({ n, r, p }: ScryptParameters): number {
  // OpenSSL needs 128·r·(N+2) bytes for V plus 128·r·p for B; leave 1 MiB of slack.
  return 128 * r * (n + p + 2) + 1024 * 1024;
}

function derive(
  password: string,
  salt: Buffer,
  parameters: ScryptParameters,
  keyLength: number,
): Promise<Buffer> {
  const { n: N, r, p } = parameters;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, { N, r, p, maxmem: maxmem(parameters) }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

/** Strict base64 (canonical, padded), or undefined. */
function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function acceptable({ n, r, p }: ScryptParameters): boolean {
  return (
    n >= 2 &&
    n <= MAX_N &&
    (n & (n - 1)) === 0 &&
    r >= 1 &&
    r <= MAX_R &&
    p >= 1 &&
    p <= MAX_P &&
    128 * n * r <= MAX_MEMORY &&
    n * r * p <= MAX_WORK
  );
}

interface Decoded {
  readonly parameters: ScryptParameters;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function decode(encoded: unknown): Decoded | undefined {
  if (typeof encoded !== 'string' || encoded.length > 512) return undefined;
  const match = ENCODED.exec(encoded);
  if (!match) return undefined;
  const parameters = { n: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  if (!acceptable(parameters)) return undefined;
  const salt = decodeBase64(match[4] as string);
  const key = decodeBase64(match[5] as string);
  if (!salt || salt.length < MIN_SALT_BYTES || salt.length > MAX_SALT_BYTES) return undefined;
  if (!key || key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) return undefined;
  return { parameters, salt, key };
}

function encode({ parameters: { n, r, p }, salt, key }: Decoded): string {
  return `scrypt$N=${n},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Hash a password for storage (after checking it against the policy). */
export async function hashPassword(password: string): Promise<string> {
  validatePassword(password);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, CURRENT, KEY_BYTES);
  return encode({ parameters: CURRENT, salt, key });
}

/**
 * True when the password matches the stored hash. Never throws: a malformed or
 * out-of-bounds stored value, or a password no policy would accept, is just false.
 * The comparison of the derived keys is constant-time.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  try {
    if (typeof password !== 'string' || password.length > 2 * PASSWORD_MAX_CHARS) return false;
    const decoded = decode(encoded);
    if (!decoded) return false;
    const actual = await derive(password, decoded.salt, decoded.parameters, decoded.key.length);
    return timingSafeEqual(actual, decoded.key);
  } catch {
    return false;
  }
}

/** True when a stored hash should be replaced at the next successful login. */
export function needsRehash(encoded: string): boolean {
  const decoded = decode(encoded);
  if (!decoded) return true;
  const { n, r, p } = decoded.parameters;
  return (
    n !== CURRENT.n ||
    r !== CURRENT.r ||
    p !== CURRENT.p ||
    decoded.salt.length < SALT_BYTES ||
    decoded.key.length < KEY_BYTES
  );
}

let dummyHash: Promise<string> | undefined;

/**
 * For a user name that does not exist: spend the same scrypt work as a real check,
 * then say no, so response times do not tell which user names exist.
 */
export async function verifyUnknownUser(password: string): Promise<false> {
  dummyHash ??= hashPassword(randomBytes(24).toString('base64url'));
  await verifyPassword(password, await dummyHash);
  return false;
}
