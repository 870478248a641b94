/** The Authorization header: HTTP Basic and Bearer, and everything that is neither. */
import { describe, expect, it } from 'vitest';
import { MAX_AUTHORIZATION_LENGTH, parseAuthorization } from '../../lambda/domain/auth/basic.ts';

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64');
const basic = (userPass: string | Uint8Array) => `Basic ${b64(userPass)}`;

describe('Basic', () => {
  it('decodes user and password', () => {
    expect(parseAuthorization(basic('admin:s3cret-pass'))).toEqual({
      scheme: 'basic',
      username: 'admin',
      password: 's3cret-pass',
    });
  });

  it.each(['basic', 'BASIC', 'bAsIc'])('the scheme is case-insensitive (%s)', (scheme) => {
    expect(parseAuthorization(`${scheme} ${b64('u:p')}`)).toMatchObject({ username: 'u', password: 'p' });
  });

  it('tolerates blanks around and between the parts', () => {
    expect(parseAuthorization(`  Basic \t ${b64('u:p')}  `)).toMatchObject({ username: 'u', password: 'p' });
  });

  it('splits at the first colon: the password may contain colons, the user name cannot', () => {
    expect(parseAuthorization(basic('user:pa:ss:'))).toMatchObject({ username: 'user', password: 'pa:ss:' });
  });

  it('decodes UTF-8, keeping a byte-order mark and a literal U+FFFD as they are', () => {
    expect(parseAuthorization(basic('jörg:pässwörd😀'))).toMatchObject({
      username: 'jörg',
      password: 'pässwörd😀',
    });
    expect(parseAuthorization(basic('\uFEFFbob:x'))).toMatchObject({ username: '\uFEFFbob' });
    expect(parseAuthorization(basic('bob:\uFFFD'))).toMatchObject({ password: '\uFFFD' });
  });

  it('accepts an empty password (verification will refuse it) and unpadded base64', () => {
    expect(parseAuthorization(basic('bob:'))).toMatchObject({ username: 'bob', password: '' });
    expect(parseAuthorization(`Basic ${b64('u:pa').replace(/=+$/, '')}`)).toMatchObject({ password: 'pa' });
  });

  it.each([
    ['no colon', basic('userpass')],
    ['empty user name', basic(':password')],
    ['nothing', basic('')],
    ['no credentials', 'Basic'],
    ['blank credentials', 'Basic   '],
    ['not base64', 'Basic !!!!'],
    ['base64url alphabet', `Basic ${Buffer.from('u:p?>>').toString('base64url')}`],
    ['bad padding', 'Basic dTpwYQ='],
    ['padding in the middle', 'Basic dT=wYQ=='],
    ['impossible length', 'Basic dTpwY'],
    ['stray trailing bits', 'Basic dTpwYR=='],
    ['two credentials', `Basic ${b64('u:p')} ${b64('v:q')}`],
    ['invalid UTF-8', basic(new Uint8Array([0x75, 0x3a, 0xff, 0xfe]))],
    ['overlong UTF-8', basic(new Uint8Array([0x75, 0x3a, 0xc0, 0xaf]))],
    ['lone surrogate in UTF-8', basic(new Uint8Array([0x75, 0x3a, 0xed, 0xa0, 0x80]))],
    ['control character in the user name', basic('us\ter:password')],
    ['control character in the password', basic('user:pass\nword')],
    ['NUL in the password', basic('user:pass\u0000')],
    ['user name too long', basic(`${'u'.repeat(257)}:password`)],
    ['password too long', basic(`user:${'p'.repeat(2049)}`)],
  ])('%s → undefined', (_name, header) => {
    expect(parseAuthorization(header)).toBeUndefined();
  });

  it('accepts the longest user name and password it allows', () => {
    expect(parseAuthorization(basic(`${'u'.repeat(256)}:${'p'.repeat(2048)}`))).toMatchObject({
      scheme: 'basic',
    });
  });
});

describe('Bearer', () => {
  it.each(['Bearer', 'bearer', 'BEARER'])('returns the token (%s)', (scheme) => {
    const token = 'mpt_AAAAAAAAAAAAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
    expect(parseAuthorization(`${scheme} ${token}`)).toEqual({ scheme: 'bearer', token });
  });

  it('accepts any RFC 6750 b64token, leaving its validation to the token parser', () => {
    expect(parseAuthorization('Bearer a.b-c_d~e+f/g==')).toEqual({
      scheme: 'bearer',
      token: 'a.b-c_d~e+f/g==',
    });
  });

  it.each([
    ['no token', 'Bearer'],
    ['two tokens', 'Bearer abc def'],
    ['a comma', 'Bearer abc,def'],
    ['a quote', 'Bearer "abc"'],
    ['padding inside', 'Bearer ab=c'],
    ['non-ASCII', 'Bearer abcé'],
  ])('%s → undefined', (_name, header) => {
    expect(parseAuthorization(header)).toBeUndefined();
  });
});

describe('anything else', () => {
  it.each([
    ['undefined', undefined],
    ['empty', ''],
    ['blank', '   '],
    ['another scheme', 'Negotiate YIIC'],
    ['Digest', 'Digest username="u", realm="r"'],
    ['a scheme that starts like Basic', `Basicx ${b64('u:p')}`],
    ['no separator', `Basic${b64('u:p')}`],
    ['a newline inside', `Basic\n${b64('u:p')}`],
  ])('%s → undefined', (_name, header) => {
    expect(parseAuthorization(header)).toBeUndefined();
  });

  it('refuses headers over 8 KiB before parsing, and accepts one at the limit', () => {
    const at = `Bearer ${'a'.repeat(MAX_AUTHORIZATION_LENGTH - 'Bearer '.length)}`;
    expect(at).toHaveLength(8192);
    expect(parseAuthorization(at)).toMatchObject({ scheme: 'bearer' });
    expect(parseAuthorization(`${at}a`)).toBeUndefined();
  });

  it.each([null, 42, {}, ['Basic x']])('a non-string (%j) → undefined', (value) => {
    expect(parseAuthorization(value as any)).toBeUndefined();
  });

  it('never throws, whatever the header', () => {
    const alphabet = [
      'Basic ',
      'Bearer ',
      ' ',
      ':',
      '=',
      'A',
      'z',
      '+',
      '/',
      '\u0000',
      'é',
      '\uD800',
      '😀',
      '\t',
      '%',
    ];
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 5000; i++) {
      const parts = Array.from(
        { length: 1 + Math.floor(random() * 12) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      );
      const header =
        random() < 0.5 ? parts.join('') : `Basic ${Buffer.from(parts.join('')).toString('base64')}`;
      expect(() => parseAuthorization(header)).not.toThrow();
    }
  });
});
