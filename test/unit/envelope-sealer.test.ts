/**
 * The envelope sealer's logic with a counting stand-in for KMS (the real KMS path runs
 * against moto in test/integration/secrets-at-rest.test.ts and admin-cli.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { KmsEnvelopeSealer } from '../../lambda/adapters/kms/envelope-sealer.ts';
import {
  holdsSecrets,
  isSealed,
  openSecrets,
  SealedSecretError,
  sealSecrets,
} from '../../lambda/domain/auth/sealing.ts';

/** Data keys "encrypted" by prefixing an id; Decrypt looks them up. Counts calls. */
function fakeKms() {
  const keys = new Map<string, Buffer>();
  const calls = { generate: 0, decrypt: 0 };
  const client = {
    send: async (command: unknown) => {
      if (command instanceof GenerateDataKeyCommand) {
        calls.generate++;
        expect(command.input.EncryptionContext).toStrictEqual({ purpose: 'metalplane-secrets' });
        const plaintext = randomBytes(32);
        const blob = Buffer.from(`edk-${calls.generate}`);
        keys.set(blob.toString(), plaintext);
        return { Plaintext: new Uint8Array(plaintext), CiphertextBlob: new Uint8Array(blob) };
      }
      if (command instanceof DecryptCommand) {
        calls.decrypt++;
        const plaintext = keys.get(Buffer.from(command.input.CiphertextBlob as Uint8Array).toString());
        if (!plaintext) throw Object.assign(new Error('bad key'), { name: 'InvalidCiphertextException' });
        return { Plaintext: new Uint8Array(plaintext) };
      }
      throw new Error('unexpected KMS command');
    },
  } as unknown as KMSClient;
  return { client, calls };
}

const node = { node: 'n-1' };

describe('KMS envelope sealer', () => {
  it('seals with one data key for many values; another container opens them with one Decrypt', async () => {
    const kms = fakeKms();
    const writer = new KmsEnvelopeSealer(kms.client, { keyId: () => 'alias/k' });
    const sealed = await Promise.all(['a', 'b', 'c'].map((value) => writer.seal(value, node)));
    expect(kms.calls.generate).toBe(1);
    expect(new Set(sealed).size).toBe(3); // a fresh IV each time
    for (const value of sealed) expect(isSealed(value)).toBe(true);
    expect(await writer.open(sealed[0] as string, node)).toBe('a');
    expect(kms.calls.decrypt).toBe(0); // its own data key: no KMS call

    const reader = new KmsEnvelopeSealer(kms.client, { keyId: () => 'alias/k' });
    expect(await Promise.all(sealed.map((value) => reader.open(value, node)))).toStrictEqual(['a', 'b', 'c']);
    expect(kms.calls.decrypt).toBe(1);
  });

  it('takes a new data key after maxUses values or maxAgeMs', async () => {
    const kms = fakeKms();
    let now = 0;
    const sealer = new KmsEnvelopeSealer(kms.client, { keyId: () => 'k', maxUses: 2, now: () => now });
    await sealer.seal('1', node);
    await sealer.seal('2', node);
    expect(kms.calls.generate).toBe(1);
    await sealer.seal('3', node);
    expect(kms.calls.generate).toBe(2);
    now += 300_001;
    await sealer.seal('4', node);
    expect(kms.calls.generate).toBe(3);
  });

  it('refuses a value sealed for another node, altered, or not sealed at all', async () => {
    const kms = fakeKms();
    const sealer = new KmsEnvelopeSealer(kms.client, { keyId: () => 'k' });
    const sealed = await sealer.seal('secret', node);
    await expect(sealer.open(sealed, { node: 'n-2' })).rejects.toThrow(SealedSecretError);
    const body = sealed.split(':').at(-1) as string;
    const flipped = `${body.slice(0, -2)}${body.at(-2) === 'A' ? 'B' : 'A'}${body.at(-1)}`;
    await expect(sealer.open(sealed.replace(body, flipped), node)).rejects.toThrow(SealedSecretError);
    await expect(sealer.open('mpsealed:1:only-two:parts', node)).rejects.toThrow(SealedSecretError);
  });

  it('fails closed without a key: nothing is sealed in clear', async () => {
    const sealer = new KmsEnvelopeSealer(fakeKms().client, {
      keyId: () => {
        throw new Error('METALPLANE_SECRETS_KEY is not set');
      },
    });
    await expect(sealer.seal('x', node)).rejects.toThrow('not set');
  });
});

describe('sealing a document', () => {
  it('seals exactly the values Ironic masks, keeps their types, and opens them back', async () => {
    const kms = fakeKms();
    const sealer = new KmsEnvelopeSealer(kms.client, { keyId: () => 'k' });
    const info = {
      ipmi_address: '10.0.0.1',
      ipmi_password: 'pw',
      redfish_password: null,
      nested: { auth_token: 42, plain: 'x' },
      list: [{ secret: true }, 'text'],
      Configdrive: { meta_data: { a: 1 } },
    };
    expect(holdsSecrets(info)).toBe(true);
    const sealed = await sealSecrets(info, sealer, node);
    expect(holdsSecrets(sealed)).toBe(false);
    expect(sealed.ipmi_address).toBe('10.0.0.1');
    expect(isSealed(sealed.ipmi_password)).toBe(true);
    expect(sealed.redfish_password).toBeNull();
    expect(isSealed((sealed.nested as Record<string, unknown>).auth_token)).toBe(true);
    expect((sealed.nested as Record<string, unknown>).plain).toBe('x');
    expect(isSealed(((sealed.list as unknown[])[0] as Record<string, unknown>).secret)).toBe(true);
    // A mapping under a secret key is recursed into, as Ironic's masking does.
    expect(sealed.Configdrive).toStrictEqual({ meta_data: { a: 1 } });
    // Sealing again changes nothing.
    expect(await sealSecrets(sealed, sealer, node)).toStrictEqual(sealed);
    expect(await openSecrets(sealed, sealer, node)).toStrictEqual(info);
  });
});
