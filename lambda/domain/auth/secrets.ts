/**
 * Secret masking, exactly as Ironic does it. Ironic's API never shows secrets by
 * default (policies `show_password` and `show_instance_secrets` default to `!`, i.e.
 * nobody, admins included); `node_sanitize` in `ironic/api/controllers/v1/node.py`:
 *
 *     node['driver_info'] = strutils.mask_dict_password(node['driver_info'], "******")
 *     node['instance_info'] = strutils.mask_dict_password(node['instance_info'], "******")
 *     if node['instance_info'].get('image_url'): node['instance_info']['image_url'] = "******"
 *     if node.get('driver_internal_info', {}).get('agent_secret_token'):
 *         node['driver_internal_info']['agent_secret_token'] = "******"
 *
 * and deploy templates / runbooks mask each step's `args` the same way.
 *
 * `strutils.mask_dict_password` is oslo.utils' (ported from 10.2.0, the version in
 * this repository's pinned client virtualenv). Its rule, which is broader than "keys
 * ending in password":
 *
 * 1. a value that is a dict is always recursed into, even under a secret key;
 * 2. otherwise, a key containing (case-insensitively, as a substring) any of
 *    `_SANITIZE_KEYS` — `password`, `secret`, `token`, `private_key`, `configdrive`,
 *    `passphrase`, ... — has its value, whatever its type (null included), replaced;
 * 3. otherwise a string value goes through `mask_password`, which masks secrets
 *    embedded in text (`password=...`, `--password x`, `"token": "..."`, XML);
 * 4. otherwise a list is masked element by element (dicts, strings, nested lists);
 * 5. anything else is left alone.
 */

export const MASK = '******';

/** oslo.utils 10.2.0 `strutils._SANITIZE_KEYS`, in its order (the order matters to `maskPassword`). */
export const SANITIZE_KEYS: readonly string[] = [
  'adminpass',
  'admin_pass',
  'password',
  'admin_password',
  'auth_token',
  'new_pass',
  'auth_password',
  'secret_uuid',
  'secret',
  'sys_pswd',
  'token',
  'configdrive',
  'chappassword',
  'encrypted_key',
  'private_key',
  'fernetkey',
  'sslkey',
  'passphrase',
  'cephclusterfsid',
  'octaviaheartbeatkey',
  'rabbitcookie',
  'cephmanilaclientkey',
  'pacemakerremoteauthkey',
  'designaterndckey',
  'cephadminkey',
  'heatauthencryptionkey',
  'cephclientkey',
  'keystonecredential',
  'barbicansimplecryptokek',
  'cephrgwkey',
  'swifthashsuffix',
  'migrationsshkey',
  'cephmdskey',
  'cephmonkey',
  'chapsecret',
];

// oslo.utils' _FORMAT_PATTERNS_2, _FORMAT_PATTERNS_1 and _FORMAT_PATTERNS_WILDCARD, with
// `%(key)s` as KEY, compiled with re.DOTALL | re.IGNORECASE: hence the `s` and `i` flags,
// and `u` for Python's code-point semantics. Three Python details are spelled out:
// its `\s` (str.isspace: also \x1c-\x1f and \x85, not \ufeff), and its case-insensitive
// `i` and `[A-z]`, which also match U+0130 (İ) and U+0131 (ı).
const WS = String.raw`\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
const W = `[${WS}]`;
const NW = `[^${WS}]`;
const AZ = String.raw`[A-z\u0130\u0131]`;
const PATTERNS_2 = [
  `(KEY[0-9]*${W}*[=]${W}*["'])[^"']*(["'])`,
  `(KEY[0-9]*${W}*[=]${W}*["])[^"]*(["])`,
  `(KEY[0-9]*${W}*[=]${W}*['])[^']*(['])`,
  `(KEY[0-9]*${W}+["'])[^"']*(["'])`,
  `([-]{2}KEY[0-9]*${W}+)[^'^"^=^${WS}]+(${W}*)`,
  `(<KEY[0-9]*>)[^<]*(</KEY[0-9]*>)`,
  `(["']KEY[0-9]*["']${W}*:${W}*["'])[^"']*(["'])`,
  `(['"][^"']*KEY[0-9]*['"]${W}*:${W}*u?['"])[^"']*(['"])`,
  `(['"][^'"]*KEY[0-9]*['"]${W}*,${W}*'--?${AZ}+'${W}*,${W}*u?['"])[^"']*(['"])`,
  `(KEY[0-9]*${W}*--?${AZ}+${W}*)${NW}+(${W}*)`,
];
const PATTERNS_1 = [`(KEY[0-9]*${W}*[=]${W}*)[^${WS}^'^"]+`];
const PATTERNS_WILDCARD = [`(['"][^"']*KEY[0-9]*['"]${W}*:${W}*u?['"].*['"])[^"']*(['"])`];

interface KeyPatterns {
  readonly key: string;
  readonly two: readonly RegExp[];
  readonly one: readonly RegExp[];
  readonly wildcard: readonly RegExp[];
}

const compile = (patterns: readonly string[], key: string) =>
  patterns.map(
    (pattern) => new RegExp(pattern.replaceAll('KEY', key.replaceAll('i', '[i\\u0130\\u0131]')), 'gisu'),
  );

const KEY_PATTERNS: readonly KeyPatterns[] = SANITIZE_KEYS.map((key) => ({
  key,
  two: compile(PATTERNS_2, key),
  one: compile(PATTERNS_1, key),
  wildcard: compile(PATTERNS_WILDCARD, key),
}));

/** oslo.utils `strutils.mask_password`: secrets embedded in a string. */
export function maskPassword(message: string, secret: string = MASK): string {
  let text = String(message);
  for (const { key, two, one, wildcard } of KEY_PATTERNS) {
    if (!text.toLowerCase().includes(key)) continue;
    for (const pattern of two)
      text = text.replace(pattern, (_match, g1: string, g2: string) => g1 + secret + g2);
    for (const pattern of one) text = text.replace(pattern, (_match, g1: string) => g1 + secret);
    // As oslo: the wildcard keeps only group 1 (its closing quote is dropped too).
    for (const pattern of wildcard) text = text.replace(pattern, (_match, g1: string) => g1);
  }
  return text;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether Ironic masks the value under `key` (oslo.utils: a `SANITIZE_KEYS` substring, any case). */
export function isSecretKey(key: string): boolean {
  const lower = key.toLowerCase();
  return SANITIZE_KEYS.some((secret) => lower.includes(secret));
}

/** Own data property, even for a key such as `__proto__`. */
function put(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function deepMask(value: unknown, secret: string): unknown {
  if (isMapping(value)) return maskSecrets(value, secret);
  if (typeof value === 'string') return maskPassword(value, secret);
  if (Array.isArray(value)) return value.map((item) => deepMask(item, secret));
  return value;
}

/**
 * oslo.utils `strutils.mask_dict_password(values, "******")`: a masked copy (the
 * input is not modified). Throws a TypeError for a non-object, as oslo does.
 */
export function maskSecrets(
  values: Readonly<Record<string, unknown>>,
  secret: string = MASK,
): Record<string, unknown> {
  if (!isMapping(values))
    throw new TypeError(`Expected a mapping, got ${values === null ? 'null' : typeof values}.`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (isMapping(value)) put(out, key, maskSecrets(value, secret));
    else if (isSecretKey(key)) put(out, key, secret);
    else if (typeof value === 'string') put(out, key, maskPassword(value, secret));
    else if (Array.isArray(value)) put(out, key, deepMask(value, secret));
    else put(out, key, value);
  }
  return out;
}

/** Python truthiness of a JSON value (`if x:`). */
function truthy(value: unknown): boolean {
  if (Array.isArray(value) || typeof value === 'string') return value.length > 0;
  if (isMapping(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** A node's `driver_info` as Ironic shows it. */
export function maskDriverInfo(driverInfo: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return maskSecrets(driverInfo);
}

/** A node's `instance_info` as Ironic shows it: masked, and a (swift temp) `image_url` hidden. */
export function maskInstanceInfo(instanceInfo: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const masked = maskSecrets(instanceInfo);
  if (truthy(masked.image_url)) put(masked, 'image_url', MASK);
  return masked;
}

/** A node's `driver_internal_info` as Ironic shows it: only `agent_secret_token` is hidden. */
export function maskDriverInternalInfo(internal: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(internal)) put(copy, key, value);
  if (truthy(copy.agent_secret_token)) put(copy, 'agent_secret_token', MASK);
  return copy;
}
