/**
 * RMCP+ cryptography for the two cipher suites Ironic users configure (`ipmi_cipher_suite`):
 *
 *   suite  authentication        integrity          confidentiality
 *     3    RAKP-HMAC-SHA1 (01h)   HMAC-SHA1-96 (01h)   AES-CBC-128 (01h)
 *    17    RAKP-HMAC-SHA256 (03h) HMAC-SHA256-128 (04h) AES-CBC-128 (01h)
 *
 * (IPMI v2.0 §13.28–13.29 and the SHA-256 errata.) Keys (§13.31–13.32):
 *   Kuid = the user's password (HMAC zero-pads keys, so the spec's 20-byte padding is implicit)
 *   SIK  = HMAC_KG(Rm | Rc | RoleM | ULengthM | UNameM), KG = Kuid when no BMC key is set
 *   K1   = HMAC_SIK(20 × 0x01) — integrity key;  K2 = HMAC_SIK(20 × 0x02), first 16 bytes = AES key
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export interface CipherSuite {
  readonly id: 3 | 17;
  /** Algorithm numbers proposed in the Open Session Request (§13.17). */
  readonly authAlgorithm: number;
  readonly integrityAlgorithm: number;
  readonly confidentialityAlgorithm: number;
  /** Hash behind both the RAKP HMACs and the integrity HMAC. */
  readonly hash: 'sha1' | 'sha256';
  /** RAKP 2 / RAKP 3 key exchange auth code: the full HMAC. */
  readonly rakpCodeLength: number;
  /** RAKP 4 integrity check value: the HMAC truncated as the integrity algorithm says. */
  readonly rakp4IcvLength: number;
  /** Session trailer AuthCode length (HMAC-SHA1-96 = 12, HMAC-SHA256-128 = 16). */
  readonly authCodeLength: number;
}

export const CIPHER_SUITES: Readonly<Record<3 | 17, CipherSuite>> = {
  3: {
    id: 3,
    authAlgorithm: 0x01,
    integrityAlgorithm: 0x01,
    confidentialityAlgorithm: 0x01,
    hash: 'sha1',
    rakpCodeLength: 20,
    rakp4IcvLength: 12,
    authCodeLength: 12,
  },
  17: {
    id: 17,
    authAlgorithm: 0x03,
    integrityAlgorithm: 0x04,
    confidentialityAlgorithm: 0x01,
    hash: 'sha256',
    rakpCodeLength: 32,
    rakp4IcvLength: 16,
    authCodeLength: 16,
  },
};

export function hmac(suite: CipherSuite, key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac(suite.hash, key);
  for (const part of parts) h.update(part);
  return h.digest();
}

/** Constant-time comparison of a received code with the expected one (same length required). */
export function sameCode(received: Buffer, expected: Buffer): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}

const CONST_1 = Buffer.alloc(20, 0x01);
const CONST_2 = Buffer.alloc(20, 0x02);

export interface SessionKeys {
  readonly sik: Buffer;
  /** Integrity key: AuthCode = HMAC_K1(session header .. Next Header), truncated. */
  readonly k1: Buffer;
  /** AES-CBC-128 key: the first 16 bytes of K2. */
  readonly aesKey: Buffer;
}

export function deriveKeys(suite: CipherSuite, sik: Buffer): SessionKeys {
  return {
    sik,
    k1: hmac(suite, sik, CONST_1),
    aesKey: hmac(suite, sik, CONST_2).subarray(0, 16),
  };
}

/**
 * AES-CBC-128 payload (§13.29): IV (16 random bytes) | ciphertext of
 * (data | pad 01h 02h 03h … | pad length) where the plaintext is a multiple of 16 bytes.
 */
export function encryptPayload(aesKey: Buffer, data: Buffer): Buffer {
  const padLength = (16 - ((data.length + 1) % 16)) % 16;
  const plain = Buffer.alloc(data.length + padLength + 1);
  data.copy(plain);
  for (let i = 0; i < padLength; i++) plain[data.length + i] = i + 1;
  plain[plain.length - 1] = padLength;
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-128-cbc', aesKey, iv);
  cipher.setAutoPadding(false); // IPMI's own padding above, not PKCS#7
  return Buffer.concat([iv, cipher.update(plain), cipher.final()]);
}

/** The inverse of encryptPayload; `undefined` when the length or the padding is wrong. */
export function decryptPayload(aesKey: Buffer, payload: Buffer): Buffer | undefined {
  if (payload.length < 32 || payload.length % 16 !== 0) return undefined;
  const decipher = createDecipheriv('aes-128-cbc', aesKey, payload.subarray(0, 16));
  decipher.setAutoPadding(false);
  const plain = Buffer.concat([decipher.update(payload.subarray(16)), decipher.final()]);
  const padLength = plain.readUInt8(plain.length - 1);
  if (padLength > 15 || padLength + 1 > plain.length) return undefined;
  const dataLength = plain.length - 1 - padLength;
  for (let i = 0; i < padLength; i++) if (plain.readUInt8(dataLength + i) !== i + 1) return undefined;
  return plain.subarray(0, dataLength);
}
