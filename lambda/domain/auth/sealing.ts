/**
 * Secrets sealed at rest. The values Ironic masks in `driver_info` and `instance_info`
 * (the keys of `secrets.ts`: BMC passwords, tokens, config drives ...) and the secrets a
 * command carries are stored as *sealed strings*: `mpsealed:1:` followed by ciphertext
 * that only the key service can open (envelope encryption; the adapter is
 * `adapters/kms/envelope-sealer.ts`). Everything else stays readable, so listings,
 * filters and validation work on the stored item as before.
 *
 * A sealed value is bound to its node (the cipher's associated data), so a value copied
 * from one node's item into another's does not open. Sealing happens where items are
 * written (the node repository, the command queue); opening happens only where a secret
 * leaves for the agent that drives the BMC (a command handed to its site's agent, the
 * agent's own node routes). The API never opens one: it masks it, as Ironic masks.
 *
 * Only whole values under secret keys are sealed; a secret embedded in free text under
 * an ordinary key (which Ironic's `mask_password` scrubs on output) is not recognised
 * here and stays as written.
 */

import { isSecretKey } from './secrets.ts';

export const SEALED_PREFIX = 'mpsealed:1:';

/** What binds a sealed value: the node it belongs to. */
export interface SealContext {
  readonly node: string;
}

/** Encrypts and decrypts single values; implemented by the key-service adapter. */
export interface SecretSealer {
  seal(plaintext: string, context: SealContext): Promise<string>;
  /** Throws `SealedSecretError` when the value cannot be opened (wrong node, tampered, key gone). */
  open(sealed: string, context: SealContext): Promise<string>;
}

export class SealedSecretError extends Error {
  override readonly name = 'SealedSecretError';
}

export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(SEALED_PREFIX);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Own data property, even for a key such as `__proto__`. */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * A copy of `values` with every value under a secret key sealed (the JSON of the value,
 * so its type comes back on opening). Mappings are recursed into, as Ironic's masking
 * does, also inside lists; values already sealed and nulls are kept as they are.
 */
export async function sealSecrets(
  values: Readonly<Record<string, unknown>>,
  sealer: SecretSealer,
  context: SealContext,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    put(out, key, await sealValue(key, value, sealer, context));
  }
  return out;
}

/**
 * Keys whose mapping values are sealed whole, not recursed into: a config drive's JSON
 * form is user data, secret as a whole (its `user_data` is a cloud-init script), where
 * Ironic's masking would show what no secret key names.
 */
const SEALED_WHOLE = new Set(['configdrive']);

const recursed = (key: string, value: unknown): value is Record<string, unknown> =>
  isMapping(value) && !SEALED_WHOLE.has(key);

async function sealValue(
  key: string,
  value: unknown,
  sealer: SecretSealer,
  context: SealContext,
): Promise<unknown> {
  if (recursed(key, value)) return sealSecrets(value, sealer, context);
  if (Array.isArray(value) && !isSecretKey(key)) {
    return Promise.all(value.map((item) => (isMapping(item) ? sealSecrets(item, sealer, context) : item)));
  }
  if (!isSecretKey(key) || value === null || value === undefined || isSealed(value)) return value;
  return sealer.seal(JSON.stringify(value), context);
}

/** Whether anything in `value`, however deep, is still to be sealed. */
export function holdsSecrets(values: Readonly<Record<string, unknown>>): boolean {
  return Object.entries(values).some(([key, value]) => {
    if (recursed(key, value)) return holdsSecrets(value);
    if (Array.isArray(value) && !isSecretKey(key))
      return value.some((item) => isMapping(item) && holdsSecrets(item));
    return isSecretKey(key) && value !== null && value !== undefined && !isSealed(value);
  });
}

/** Whether anything in `value`, however deep, is sealed. */
export function holdsSealed(value: unknown): boolean {
  if (isSealed(value)) return true;
  if (Array.isArray(value)) return value.some(holdsSealed);
  if (isMapping(value)) return Object.values(value).some(holdsSealed);
  return false;
}

/** A copy of `value` with every sealed string, however deep, opened back to its value. */
export async function openSecrets<T>(value: T, sealer: SecretSealer, context: SealContext): Promise<T> {
  if (!holdsSealed(value)) return value;
  return (await openDeep(value, sealer, context)) as T;
}

async function openDeep(value: unknown, sealer: SecretSealer, context: SealContext): Promise<unknown> {
  if (isSealed(value)) return JSON.parse(await sealer.open(value, context)) as unknown;
  if (Array.isArray(value)) return Promise.all(value.map((item) => openDeep(item, sealer, context)));
  if (!isMapping(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) put(out, key, await openDeep(item, sealer, context));
  return out;
}
