/**
 * Envelope encryption of secrets with AWS KMS (`domain/auth/sealing.ts`).
 *
 * KMS hands out a 256-bit data key (`GenerateDataKey`) twice: in plaintext, used here
 * with AES-256-GCM and then forgotten, and encrypted under the stack's KMS key, stored
 * beside each ciphertext. Opening sends that encrypted data key to KMS (`Decrypt`).
 * Whoever reads the tables (a backup, an export, a console user) without `kms:Decrypt`
 * on the key reads nothing.
 *
 * A sealed value is `mpsealed:1:<encrypted data key>:<iv>:<ciphertext+tag>` (base64url).
 * The GCM associated data is `node:<uuid>`, so a value moved to another node's item
 * does not open. The KMS encryption context `{purpose: metalplane-secrets}` lets the key
 * policy refuse any other use of the key.
 *
 * Data keys are cached as the AWS Encryption SDK's caching materials manager does: one
 * data key seals for at most `maxAgeMs` (5 min) or `maxUses` (10,000) values per
 * container, and opened data keys are remembered for `maxAgeMs` (at most `maxEntries`),
 * so the power sync of a site costs one KMS call, not one per node.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { KMSClient } from '@aws-sdk/client-kms';
import { secretsKey } from '../../../infra/resources.ts';
import { type ConfigSource, environmentConfig, required } from '../../config.ts';
import {
  SEALED_PREFIX,
  type SealContext,
  SealedSecretError,
  type SecretSealer,
} from '../../domain/auth/sealing.ts';
import { clientKms, lazyClient, type Sender } from '../aws-sdk.ts';

/** The environment variable naming the KMS key (id, ARN or `alias/...`) secrets are sealed with. */
export const SECRETS_KEY_ENV = secretsKey.envVar;

const ENCRYPTION_CONTEXT = { purpose: 'metalplane-secrets' };
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface EnvelopeSealerOptions {
  /** The KMS key sealing new values; read at first use (throws when unset: no sealing in clear). */
  readonly keyId: () => string;
  readonly maxAgeMs?: number;
  readonly maxUses?: number;
  readonly maxEntries?: number;
  readonly now?: () => number;
}

interface DataKey {
  readonly plaintext: Buffer;
  readonly encrypted: string;
  readonly until: number;
  uses: number;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

export class KmsEnvelopeSealer implements SecretSealer {
  readonly #kms: Sender<KMSClient>;
  readonly #options: Required<EnvelopeSealerOptions>;
  #current: Promise<DataKey> | undefined;
  readonly #opened = new Map<string, { readonly key: Promise<Buffer>; readonly until: number }>();

  constructor(kms: Sender<KMSClient>, options: EnvelopeSealerOptions) {
    this.#kms = kms;
    this.#options = { maxAgeMs: 300_000, maxUses: 10_000, maxEntries: 1000, now: Date.now, ...options };
  }

  async seal(plaintext: string, context: SealContext): Promise<string> {
    const key = await this.#dataKey();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.plaintext, iv);
    cipher.setAAD(associatedData(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${SEALED_PREFIX}${key.encrypted}:${b64(iv)}:${b64(body)}`;
  }

  async open(sealed: string, context: SealContext): Promise<string> {
    const parts = sealed.slice(SEALED_PREFIX.length).split(':');
    const [encrypted, iv, body] = parts;
    if (!sealed.startsWith(SEALED_PREFIX) || parts.length !== 3 || !encrypted || !iv || !body) {
      throw new SealedSecretError('not a sealed value');
    }
    const key = await this.#openDataKey(encrypted);
    const bytes = Buffer.from(body, 'base64url');
    if (bytes.length < TAG_BYTES) throw new SealedSecretError('sealed value too short');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(associatedData(context));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
      return Buffer.concat([
        decipher.update(bytes.subarray(0, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SealedSecretError(
        `a secret of node ${context.node} does not open (sealed for another node, or altered)`,
      );
    }
  }

  async #dataKey(): Promise<DataKey> {
    const now = this.#options.now();
    let current = this.#current;
    if (current) {
      const key = await current.catch(() => undefined);
      if (key && key.until > now && key.uses < this.#options.maxUses) {
        key.uses++;
        return key;
      }
      if (this.#current === current) this.#current = undefined;
    }
    current = this.#current ??= this.#generate(now);
    const key = await current;
    key.uses++;
    return key;
  }

  async #generate(now: number): Promise<DataKey> {
    const keyId = this.#options.keyId();
    const answer = await this.#kms.send(
      new (await clientKms()).GenerateDataKeyCommand({
        KeyId: keyId,
        KeySpec: 'AES_256',
        EncryptionContext: ENCRYPTION_CONTEXT,
      }),
    );
    if (!answer.Plaintext || !answer.CiphertextBlob) throw new Error(`KMS key ${keyId} gave no data key`);
    const encrypted = b64(answer.CiphertextBlob);
    const plaintext = Buffer.from(answer.Plaintext);
    // The key this container seals with also opens without a KMS call.
    this.#remember(encrypted, Promise.resolve(plaintext), now);
    return { plaintext, encrypted, until: now + this.#options.maxAgeMs, uses: 0 };
  }

  #openDataKey(encrypted: string): Promise<Buffer> {
    const now = this.#options.now();
    const known = this.#opened.get(encrypted);
    if (known && known.until > now) return known.key;
    const key = clientKms()
      .then(({ DecryptCommand }) =>
        this.#kms.send(
          new DecryptCommand({
            CiphertextBlob: Buffer.from(encrypted, 'base64url'),
            EncryptionContext: ENCRYPTION_CONTEXT,
          }),
        ),
      )
      .then((answer) => {
        if (!answer.Plaintext) throw new SealedSecretError('KMS gave no data key');
        return Buffer.from(answer.Plaintext);
      });
    this.#remember(encrypted, key, now);
    // A refusal is not remembered: the next call asks KMS again.
    key.catch(() => this.#opened.delete(encrypted));
    return key;
  }

  #remember(encrypted: string, key: Promise<Buffer>, now: number): void {
    if (this.#opened.size >= this.#options.maxEntries) {
      for (const [name, entry] of this.#opened) if (entry.until <= now) this.#opened.delete(name);
      if (this.#opened.size >= this.#options.maxEntries) this.#opened.clear();
    }
    this.#opened.set(encrypted, { key, until: now + this.#options.maxAgeMs });
  }
}

function associatedData(context: SealContext): Buffer {
  return Buffer.from(`node:${context.node}`, 'utf8');
}

let shared: KmsEnvelopeSealer | undefined;

/**
 * One sealer per container (its data-key caches are what keep KMS calls rare), on the key
 * the configuration names (read at first use).
 */
export function sealerFromEnv(config: ConfigSource = environmentConfig): SecretSealer {
  shared ??= new KmsEnvelopeSealer(
    lazyClient(async () => new (await clientKms()).KMSClient({ maxAttempts: 3 })),
    {
      keyId: () => required(config().secretsKey, SECRETS_KEY_ENV, 'refusing to store secrets in clear'),
    },
  );
  return shared;
}
