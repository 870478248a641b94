/**
 * Password hashing for HTTP Basic users: scrypt (node:crypto), self-describing
 * `scrypt$N=16384,r=8,p=1$<salt>$<hash>` so the cost can be raised later. Verification
 * is constant-time and never throws on a malformed stored value.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { invalid } from '../errors.ts';

const N = 16384;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
/** Upper bounds on parameters read back from storage, so a tampered hash cannot DoS us. */
const MAX_N = 2 ** 20;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (error, key) =>
      error ? reject(error) : resolve(key),
    );
  });
}

export function validatePassword(password: unknown): asserts password is string {
  if (typeof password !== 'string' || password.length < 8 || password.length > 1024) {
    throw invalid('A password must be a string of 8 to 1024 characters.');
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$N=${N},r=${R},p=${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const match = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(encoded);
  if (!match) return false;
  const [n, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (n < 2 || n > MAX_N || (n & (n - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const expected = Buffer.from(match[5] as string, 'base64');
  if (expected.length !== KEY_LENGTH || password.length > 1024) return false;
  try {
    const actual = await derive(password, Buffer.from(match[4] as string, 'base64'), n, r, p);
    return timingSafeEqual(actual, expected);
  } catch {
    return false;
  }
}
