/** Password hashing (scrypt), verification and policy. */
import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  hashPassword,
  needsRehash,
  PasswordPolicyError,
  validatePassword,
  verifyPassword,
  verifyUnknownUser,
} from '../../lambda/domain/auth/passwords.ts';
import { DomainError } from '../../lambda/domain/errors.ts';

// Wrap (not replace) scrypt and timingSafeEqual, to see which paths reach them.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, scrypt: vi.fn(actual.scrypt), timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const scryptSpy = vi.mocked(crypto.scrypt);
const timingSafeEqualSpy = vi.mocked(crypto.timingSafeEqual);

beforeEach(() => {
  scryptSpy.mockClear();
  timingSafeEqualSpy.mockClear();
});

const PASSWORD = 'correct horse battery staple';

/** A hash with explicit parameters, built independently of the module under test. */
function encodeWith(
  password: string,
  n: number,
  r: number,
  p: number,
  salt = crypto.randomBytes(16),
  keyLength = 32,
) {
  const key = crypto.scryptSync(password, salt, keyLength, { N: n, r, p, maxmem: 512 * 1024 * 1024 });
  return `scrypt$N=${n},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

describe('hashPassword / verifyPassword', () => {
  it('produces a self-describing scrypt string that verifies', async () => {
    const encoded = await hashPassword(PASSWORD);
    expect(encoded).toMatch(/^scrypt\$N=16384,r=8,p=2\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(await verifyPassword(PASSWORD, encoded)).toBe(true);
  });

  it('salts: the same password hashes differently each time', async () => {
    const [a, b] = await Promise.all([hashPassword(PASSWORD), hashPassword(PASSWORD)]);
    expect(a).not.toBe(b);
    expect(await verifyPassword(PASSWORD, b)).toBe(true);
  });

  it('refuses a wrong password, through the constant-time comparison', async () => {
    const encoded = await hashPassword(PASSWORD);
    for (const wrong of ['correct horse battery stapl', `${PASSWORD} `, PASSWORD.toUpperCase(), '']) {
      timingSafeEqualSpy.mockClear();
      expect(await verifyPassword(wrong, encoded)).toBe(false);
      expect(timingSafeEqualSpy).toHaveBeenCalledTimes(1);
    }
  });

  it('reads the parameters from the string, so they can be changed later', async () => {
    const older = encodeWith(PASSWORD, 1024, 8, 1);
    expect(await verifyPassword(PASSWORD, older)).toBe(true);
    expect(await verifyPassword('other password', older)).toBe(false);
    const stronger = encodeWith(PASSWORD, 2 ** 15, 8, 1, crypto.randomBytes(32), 64);
    expect(await verifyPassword(PASSWORD, stronger)).toBe(true);
  });

  it('refuses to hash a password the policy rejects', async () => {
    await expect(hashPassword('short')).rejects.toBeInstanceOf(PasswordPolicyError);
  });

  it('is false, without throwing, for a password no policy would accept', async () => {
    const encoded = await hashPassword(PASSWORD);
    scryptSpy.mockClear();
    expect(await verifyPassword('x'.repeat(5000), encoded)).toBe(false);
    expect(await verifyPassword(undefined as any, encoded)).toBe(false);
    expect(await verifyPassword(42 as any, encoded)).toBe(false);
    expect(scryptSpy).not.toHaveBeenCalled();
  });
});

describe('verifyPassword with a malformed or hostile stored value', () => {
  const salt = Buffer.alloc(16, 1).toString('base64');
  const key = Buffer.alloc(32, 2).toString('base64');
  const cases: [string, unknown][] = [
    ['empty', ''],
    ['garbage', 'not a hash'],
    ['bcrypt', '$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234'],
    ['no parameters', `scrypt$$${salt}$${key}`],
    ['N not a power of two', `scrypt$N=10000,r=8,p=1$${salt}$${key}`],
    ['N above 2^20', `scrypt$N=2097152,r=8,p=1$${salt}$${key}`],
    ['N huge', `scrypt$N=1073741824,r=8,p=1$${salt}$${key}`],
    ['memory above 256 MiB', `scrypt$N=524288,r=8,p=1$${salt}$${key}`],
    ['work above 16x', `scrypt$N=262144,r=8,p=16$${salt}$${key}`],
    ['r = 0', `scrypt$N=16384,r=0,p=1$${salt}$${key}`],
    ['r too large', `scrypt$N=1024,r=33,p=1$${salt}$${key}`],
    ['p too large', `scrypt$N=1024,r=8,p=17$${salt}$${key}`],
    ['leading zero', `scrypt$N=016384,r=8,p=1$${salt}$${key}`],
    ['negative', `scrypt$N=-16384,r=8,p=1$${salt}$${key}`],
    ['salt too short', `scrypt$N=16384,r=8,p=1$${Buffer.alloc(4).toString('base64')}$${key}`],
    ['key too short', `scrypt$N=16384,r=8,p=1$${salt}$${Buffer.alloc(8).toString('base64')}`],
    ['key not base64', `scrypt$N=16384,r=8,p=1$${salt}$${key.replace(/.$/, '!')}`],
    ['key unpadded', `scrypt$N=16384,r=8,p=1$${salt}$${key.replace(/=+$/, '')}`],
    ['non-canonical base64', `scrypt$N=16384,r=8,p=1$${salt}$${key.slice(0, -2)}B=`],
    ['extra field', `scrypt$N=16384,r=8,p=1$${salt}$${key}$x`],
    ['trailing newline', `scrypt$N=16384,r=8,p=1$${salt}$${key}\n`],
    ['very long', `scrypt$N=16384,r=8,p=1$${'A'.repeat(10_000)}$${key}`],
    ['null', null],
    ['number', 7],
    ['object', { toString: () => 'scrypt' }],
  ];

  it.each(cases)('%s → false, never throws, no scrypt work', async (_name, encoded) => {
    await expect(verifyPassword(PASSWORD, encoded as string)).resolves.toBe(false);
    expect(scryptSpy).not.toHaveBeenCalled();
  });

  it("accepts parameters above today's but within the bounds (and only the right password)", async () => {
    const raised = encodeWith(PASSWORD, 2 ** 16, 8, 1);
    expect(await verifyPassword(PASSWORD, raised)).toBe(true);
    expect(await verifyPassword('not it at all', raised)).toBe(false);
  });
});

describe('needsRehash', () => {
  it('is false for a current hash, true for weaker parameters or garbage', async () => {
    expect(needsRehash(await hashPassword(PASSWORD))).toBe(false);
    expect(needsRehash(encodeWith(PASSWORD, 1024, 8, 1))).toBe(true);
    expect(needsRehash(encodeWith(PASSWORD, 16384, 8, 1))).toBe(true);
    expect(needsRehash('garbage')).toBe(true);
  });
});

describe('verifyUnknownUser', () => {
  it('says no after spending a real scrypt check', async () => {
    await expect(verifyUnknownUser(PASSWORD)).resolves.toBe(false);
    scryptSpy.mockClear();
    await expect(verifyUnknownUser('anything-at-all')).resolves.toBe(false);
    expect(scryptSpy).toHaveBeenCalledTimes(1);
    expect(timingSafeEqualSpy).toHaveBeenCalled();
  });
});

describe('validatePassword', () => {
  it.each([
    ['8 characters', 'abcdefgh'],
    ['1024 characters', 'a'.repeat(1024)],
    ['a colon and spaces', 'pass: word with spaces'],
    ['8 emoji (16 UTF-16 units)', '😀'.repeat(8)],
    ['1024 emoji (2048 UTF-16 units)', '😀'.repeat(1024)],
  ])('accepts %s', (_name, password) => {
    expect(() => validatePassword(password)).not.toThrow();
  });

  it.each([
    ['7 characters', 'abcdefg', /8 to 1024 characters/],
    ['empty', '', /8 to 1024 characters/],
    ['1025 characters', 'a'.repeat(1025), /8 to 1024 characters/],
    ['4 emoji (8 UTF-16 units, 4 characters)', '😀'.repeat(4), /8 to 1024 characters/],
    ['1025 emoji', '😀'.repeat(1025), /8 to 1024 characters/],
    ['a newline', 'password\nsecond line', /control characters/],
    ['a NUL', 'password\u0000', /control characters/],
    ['DEL', 'password\u007f', /control characters/],
    ['not a string', 12345678, /must be a string/],
    ['undefined', undefined, /must be a string/],
  ])('rejects %s with a typed, clear error', (_name, password, message) => {
    let caught: unknown;
    try {
      validatePassword(password);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PasswordPolicyError);
    expect(caught).toBeInstanceOf(DomainError);
    expect((caught as DomainError).kind).toBe('invalid');
    expect((caught as Error).name).toBe('PasswordPolicyError');
    expect((caught as Error).message).toMatch(message);
  });
});
