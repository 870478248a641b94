/** Bearer credentials: API tokens, agent credentials, enrollment tokens. */
import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type CredentialKind,
  hashSecret,
  mintAgentCredential,
  mintEnrollmentToken,
  mintToken,
  parseCredential,
  parseToken,
  TOKEN_LENGTH,
  verifySecret,
} from '../../lambda/domain/auth/tokens.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});
const timingSafeEqualSpy = vi.mocked(crypto.timingSafeEqual);
beforeEach(() => {
  timingSafeEqualSpy.mockClear();
});

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

/** Replace the character at `index` by another one of the same alphabet. */
function flip(text: string, index: number): string {
  const current = text[index];
  const replacement = current === 'A' ? 'B' : 'A';
  return text.slice(0, index) + replacement + text.slice(index + 1);
}

/** Change one hex digit (to a different value: case alone would not change it). */
function flipHex(hex: string, index: number): string {
  const replacement = hex[index] === '0' ? '1' : '0';
  return hex.slice(0, index) + replacement + hex.slice(index + 1);
}

describe('minting', () => {
  it.each([
    ['user', 'mpt', () => mintToken()],
    ['agent', 'mpa', () => mintAgentCredential()],
    ['enrollment', 'mpe', () => mintEnrollmentToken()],
  ] as const)(
    '%s credentials: <%s>_<22-char id>_<43-char secret>, only a SHA-256 to store',
    (kind, prefix, mint) => {
      const minted = mint();
      expect(minted.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(minted.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(minted.token).toBe(`${prefix}_${minted.id}_${minted.secret}`);
      expect(minted.token).toHaveLength(TOKEN_LENGTH);
      expect(minted.secretHash).toBe(sha256(minted.secret));
      expect(minted.secretHash).not.toContain(minted.secret);
      expect(Buffer.from(minted.id, 'base64url')).toHaveLength(16);
      expect(Buffer.from(minted.secret, 'base64url')).toHaveLength(32);
      expect(mintToken(kind as CredentialKind).token.startsWith(`${prefix}_`)).toBe(true);
    },
  );

  it('never repeats ids or secrets', () => {
    const minted = Array.from({ length: 200 }, () => mintToken());
    expect(new Set(minted.map((token) => token.id)).size).toBe(200);
    expect(new Set(minted.map((token) => token.secret)).size).toBe(200);
  });

  it('never starts an id with a dash (ids are typed on command lines)', () => {
    // 2,000 ids: with the old draw about 31 of them would start with '-'.
    const ids = Array.from({ length: 2000 }, () => mintToken().id);
    expect(ids.filter((id) => id.startsWith('-'))).toStrictEqual([]);
    expect(ids.every((id) => /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(id))).toBe(true);
  });

  it('hashSecret is hex SHA-256', () => {
    expect(hashSecret('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('parsing', () => {
  it('round-trips every minted token, with its kind', () => {
    for (let i = 0; i < 300; i++) {
      const minted = mintToken();
      expect(parseToken(minted.token)).toEqual({ id: minted.id, secret: minted.secret });
    }
    const agent = mintAgentCredential();
    expect(parseCredential(agent.token)).toEqual({ kind: 'agent', id: agent.id, secret: agent.secret });
    expect(parseToken(agent.token, 'agent')).toEqual({ id: agent.id, secret: agent.secret });
  });

  it('refuses a credential of another kind', () => {
    expect(parseToken(mintAgentCredential().token)).toBeUndefined();
    expect(parseToken(mintEnrollmentToken().token, 'agent')).toBeUndefined();
    expect(parseToken(mintToken().token, 'enrollment')).toBeUndefined();
  });

  const good = mintToken().token;
  const id = good.slice(4, 26);
  const secret = good.slice(27);
  // 16 bytes in base64url: the 22nd character carries 2 bits, so only A, Q, g, w are canonical.
  const strayId = `${id.slice(0, 21)}${id.endsWith('B') ? 'C' : 'B'}`;

  it.each([
    ['empty', ''],
    ['prefix only', 'mpt_'],
    ['unknown prefix', `mpx_${id}_${secret}`],
    ['upper-case prefix', `MPT_${id}_${secret}`],
    ['missing separator', `mpt${id}_${secret}`],
    ['short id', `mpt_${id.slice(1)}_${secret}`],
    ['long secret', `mpt_${id}_${secret}A`],
    ['short secret', `mpt_${id}_${secret.slice(1)}`],
    ['leading space', ` ${good}`],
    ['trailing newline', `${good}\n`],
    ['standard base64 characters', `mpt_${id.slice(0, 21)}+_${secret}`],
    ['padding', `mpt_${id}_${secret.slice(0, 42)}=`],
    ['non-canonical id', `mpt_${strayId}_${secret}`],
    ['non-ASCII', `mpt_${id.slice(0, 21)}é_${secret}`],
    ['huge', `mpt_${'A'.repeat(100_000)}`],
  ])('%s → undefined', (_name, text) => {
    expect(parseToken(text)).toBeUndefined();
    expect(parseCredential(text)).toBeUndefined();
  });

  it.each([null, undefined, 42, {}, ['mpt']])('a non-string (%j) → undefined', (value) => {
    expect(parseToken(value)).toBeUndefined();
  });
});

describe('verifySecret', () => {
  it('accepts the right secret, in constant time', () => {
    const minted = mintToken();
    expect(verifySecret(minted.secret, minted.secretHash)).toBe(true);
    expect(verifySecret(minted.secret, minted.secretHash.toUpperCase())).toBe(true);
    expect(timingSafeEqualSpy).toHaveBeenCalledTimes(2);
  });

  it('refuses a tampered token, still through the constant-time comparison', () => {
    const minted = mintToken();
    for (const index of [27, 40, TOKEN_LENGTH - 1]) {
      const tampered = parseToken(flip(minted.token, index));
      if (!tampered) continue; // a flip may make the last character non-canonical
      expect(tampered.id).toBe(minted.id);
      timingSafeEqualSpy.mockClear();
      expect(verifySecret(tampered.secret, minted.secretHash)).toBe(false);
      expect(timingSafeEqualSpy).toHaveBeenCalledTimes(1);
    }
    expect(verifySecret(flip(minted.secret, 0), minted.secretHash)).toBe(false);
    expect(verifySecret(mintToken().secret, minted.secretHash)).toBe(false);
  });

  it('refuses a tampered or malformed stored hash, without throwing', () => {
    const minted = mintToken();
    const hash = minted.secretHash;
    for (const stored of [
      flipHex(hash, 10),
      flipHex(hash, 63),
      hash.slice(1),
      `${hash}0`,
      `${hash.slice(0, 62)}zz`,
      '',
      'not hex at all',
      sha256(`${minted.secret} `),
      null,
      undefined,
      123,
    ]) {
      expect(verifySecret(minted.secret, stored as string)).toBe(false);
    }
    expect(verifySecret(undefined as any, hash)).toBe(false);
    expect(verifySecret(42 as any, hash)).toBe(false);
  });
});
