/**
 * The `Authorization` header: HTTP Basic (RFC 7617, what Ironic's `http_basic`
 * strategy and `baremetal --os-auth-type http_basic` send) or Bearer (RFC 6750).
 * Anything else, or anything malformed, is no credential at all: undefined, never an
 * exception, so the caller answers 401 the same way for every bad header.
 */
export type Credentials =
  | { readonly scheme: 'basic'; readonly username: string; readonly password: string }
  | { readonly scheme: 'bearer'; readonly token: string };

/** Longer headers are refused before any parsing. */
export const MAX_AUTHORIZATION_LENGTH = 8 * 1024;
/** In UTF-16 code units; user names are at most 64 characters (`validateUserName`). */
const MAX_USERNAME_LENGTH = 256;
/** In UTF-16 code units: the 1024-character password policy, in the worst case. */
const MAX_PASSWORD_LENGTH = 2048;

// `<scheme> <credentials>` with optional surrounding blanks; scheme is an RFC 7230 token.
const HEADER = /^[ \t]*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)[ \t]+([^ \t]+)[ \t]*$/;
// RFC 6750 b64token (= RFC 7235 token68).
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// RFC 7617: "The user-id and password MUST NOT contain any control characters".
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict base64 (padding optional, but no stray characters or trailing bits); undefined otherwise. */
function decodeBase64(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  const bare = text.replace(/=+$/, '');
  if (text.length !== bare.length && text.length % 4 !== 0) return undefined;
  if (bare.length % 4 === 1) return undefined;
  const bytes = Buffer.from(bare, 'base64');
  if (bytes.toString('base64').replace(/=+$/, '') !== bare) return undefined;
  return bytes;
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export function parseAuthorization(header: string | undefined): Credentials | undefined {
  if (typeof header !== 'string' || header.length === 0 || header.length > MAX_AUTHORIZATION_LENGTH)
    return undefined;
  const match = HEADER.exec(header);
  if (!match) return undefined;
  const scheme = (match[1] as string).toLowerCase();
  const value = match[2] as string;

  if (scheme === 'bearer') return TOKEN68.test(value) ? { scheme: 'bearer', token: value } : undefined;
  if (scheme !== 'basic') return undefined;

  const bytes = decodeBase64(value);
  const decoded = bytes && decodeUtf8(bytes);
  if (decoded === undefined) return undefined;
  // The user-id cannot contain a colon: the first one separates it from the password.
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (username.length > MAX_USERNAME_LENGTH || password.length > MAX_PASSWORD_LENGTH) return undefined;
  if (CONTROL.test(username) || CONTROL.test(password)) return undefined;
  return { scheme: 'basic', username, password };
}
