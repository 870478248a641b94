/**
 * The Redfish client's failures, sorted into what an operator acts on, each naming the BMC
 * (its address, never credentials): no answer in time, no connection, an untrusted
 * certificate, refused credentials, an HTTP error with the BMC's own message, an answer
 * that is not JSON, and a BMC skipped while its circuit is open.
 */
import { ActionFailure } from '../types.ts';

export type RedfishErrorKind =
  /** No answer within the request timeout (opens the circuit). */
  | 'timeout'
  /** No connection, or the connection dropped before an answer (opens the circuit). */
  | 'unreachable'
  /** The TLS handshake failed: certificate not trusted, wrong name... (the BMC is alive). */
  | 'tls'
  /** HTTP 401 after the one allowed re-login, or a refused login. */
  | 'auth'
  /** Any other HTTP error answer. */
  | 'http'
  /** A 2xx answer whose body is not the JSON asked for, or too large. */
  | 'malformed'
  /** Not tried: the BMC's circuit is open after a recent timeout or connection failure. */
  | 'circuit'
  /** The BMC or the driver_info does not allow the request (e.g. several systems, no system id). */
  | 'config'
  /** The caller gave up (command deadline, agent stopping). */
  | 'aborted';

/** An ActionFailure, so the command's error is this message. */
export class RedfishError extends ActionFailure {
  readonly kind: RedfishErrorKind;
  /** The HTTP status, for `http` and `auth`. */
  readonly status: number | undefined;
  /** The failure without the BMC's name (what an open circuit quotes). */
  readonly detail: string;

  constructor(kind: RedfishErrorKind, message: string, options: { status?: number; detail?: string } = {}) {
    super(message);
    this.kind = kind;
    this.status = options.status;
    this.detail = options.detail ?? message;
  }
}

/** Kinds that say the BMC did not answer at all: they open its circuit. */
export const NETWORK_KINDS: ReadonlySet<RedfishErrorKind> = new Set(['timeout', 'unreachable']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const EXCERPT = 200;

/**
 * The BMC's explanation in an error answer: Redfish's `error` object (the messages of
 * `@Message.ExtendedInfo`, else `error.message`, prefixed by `error.code`), else a trimmed
 * excerpt of the text (sushy-emulator sends plain text under a JSON content type for some
 * 400s, and Werkzeug's HTML page for some 500s). Undefined for an empty body.
 */
export function bmcMessage(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  const error = isObject(doc) ? doc.error : undefined;
  if (isObject(error)) {
    const extended = Array.isArray(error['@Message.ExtendedInfo']) ? error['@Message.ExtendedInfo'] : [];
    const messages = extended
      .map((m) => (isObject(m) && typeof m.Message === 'string' ? m.Message : undefined))
      .filter((m): m is string => m !== undefined && m !== '');
    const message = messages.length > 0 ? messages.join('; ') : error.message;
    const code = typeof error.code === 'string' ? error.code : undefined;
    if (typeof message === 'string' && message !== '') {
      return excerpt(code ? `${code}: ${message}` : message);
    }
    if (code) return code;
  }
  // Not Redfish's shape: what a person would read of it (tags of an HTML page dropped).
  const plain = text
    .replace(/<(script|style)[^>]*>[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return plain === '' ? undefined : excerpt(plain);
}

const excerpt = (text: string) => (text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text);

/** Node's codes for a TLS handshake that failed on the certificate or the protocol. */
export function isTlsCode(code: string | undefined): boolean {
  return (
    code !== undefined &&
    (/CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER|DECRYPT)|ERR_TLS_|ERR_SSL_/.test(code) ||
      code === 'EPROTO')
  );
}

/**
 * Replaces each secret (password, its Basic header, a session token) by `***`. Secrets
 * shorter than 3 characters are left alone: hiding every "a" would garble the message
 * and hide nothing.
 */
export function redact(message: string, secrets: readonly (string | undefined)[]): string {
  let out = message;
  for (const secret of secrets) {
    if (secret && secret.length >= 3) out = out.split(secret).join('***');
  }
  return out;
}
