/**
 * Identifiers and names as Ironic accepts them: UUIDs, logical names (RFC 3986
 * unreserved characters), MAC addresses (normalized to lower case), traits.
 */
import { invalid } from './errors.ts';
import { pythonRepr } from './python-repr.ts';

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const LOGICAL_NAME = /^[A-Za-z0-9._~-]{1,255}$/;
const MAC_COLONS = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;
const MAC_BARE = /^[0-9a-f]{12}$/i;
const CUSTOM_TRAIT = /^CUSTOM_[A-Z0-9_]+$/;

/** oslo's is_uuid_like: any case, with or without dashes. */
export function isUuidLike(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** The canonical (lower case, dashed) form of a UUID-like string. */
export function canonicalUuid(value: string): string {
  const hex = value.replaceAll('-', '').toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A name that can stand in a URL where a UUID could: unreserved characters, not UUID-like. */
export function isValidLogicalName(value: unknown): value is string {
  return typeof value === 'string' && LOGICAL_NAME.test(value) && !isUuidLike(value);
}

/** A MAC address in lower-case colon form, or an invalid-input error in Ironic's words. */
export function normalizeMac(value: unknown, field = 'address'): string {
  if (typeof value === 'string') {
    if (MAC_COLONS.test(value)) return value.toLowerCase().replaceAll('-', ':');
    if (MAC_BARE.test(value)) return value.toLowerCase().match(/../g)!.join(':');
  }
  throw invalid(`Expected valid MAC address for ${field}: ${String(value)}`);
}

/** Standard traits are os-traits' names; we accept their namespaces' shape and every CUSTOM_ trait. */
const STANDARD_TRAIT = /^(COMPUTE|HW|STORAGE|MISC|OWNER)_[A-Z0-9_]+$/;

/** A trait, or Ironic's jsonschema message for an invalid one ("Schema error for trait: ..."). */
export function validateTrait(trait: unknown, what = 'trait'): string {
  if (
    typeof trait === 'string' &&
    trait.length > 0 &&
    trait.length <= 255 &&
    (CUSTOM_TRAIT.test(trait) || STANDARD_TRAIT.test(trait))
  ) {
    return trait;
  }
  const shown = pythonRepr(trait);
  throw invalid(
    `Schema error for ${what}: ${shown} is not valid under any of the given schemas. Possible root cause: ${shown} does not match '^CUSTOM_[A-Z0-9_]+$'`,
  );
}
