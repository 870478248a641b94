/**
 * The small HTTP/1.1 response parsing the image download needs (agent/images/range-get.ts):
 * a response head (status line and header fields) read incrementally from socket reads,
 * how its body is framed, `Content-Range`, and the `chunked` coding of a small error body.
 *
 * Strict on purpose: an image comes from S3 (or something speaking its protocol), and a
 * response that does not look like one is an error with a clear message rather than
 * something to guess at. No obsolete line folding, no bare LF line ends, no conflicting
 * `Content-Length`s, no transfer coding other than `chunked`, heads of at most MAX_HEAD
 * bytes. Pure functions and one small class: no I/O here.
 */
import { DownloadError } from './errors.ts';

/** Bytes of a response head (status line and header fields) accepted at most. */
export const MAX_HEAD = 64 * 1024;
/** Header fields accepted at most in one head. */
const MAX_FIELDS = 256;
/** A header field name: an RFC 9110 token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: visible ASCII, obs-text, spaces and tabs (no CR, LF or NUL). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A response the download cannot use: bad syntax, framing or range. Retried like a network error. */
export class HttpProtocolError extends DownloadError {
  override readonly name = 'HttpProtocolError';
}

/** How the body of a response ends. */
export type Framing =
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  /** Ends when the server closes the connection. */
  | { readonly kind: 'close' }
  | { readonly kind: 'none' };

export interface ResponseHead {
  readonly status: number;
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  readonly minor: number;
  /** Field names in lower case; repeated fields joined with ", " (as RFC 9110 allows). */
  readonly headers: ReadonlyMap<string, string>;
  readonly framing: Framing;
  /** The connection may carry another request once this body is read. */
  readonly keepAlive: boolean;
}

/**
 * Collects the bytes of a response head across socket reads (a head may come split at
 * any byte) and parses it once its empty line has arrived.
 */
export class HeadReader {
  #bytes = Buffer.allocUnsafe(0);
  #length = 0;

  /**
   * Takes bytes `[start, end)` of `chunk` (which the caller may reuse afterwards). Returns
   * the index in `chunk` just after the head once it is complete, or -1 when more is needed.
   */
  push(chunk: Buffer, start: number, end: number): number {
    const before = this.#length;
    const take = Math.min(end - start, MAX_HEAD + 4 - before);
    this.#append(chunk, start, take);
    // The empty line may straddle two reads: search from 3 bytes before the new ones.
    const at = this.#bytes.subarray(0, this.#length).indexOf('\r\n\r\n', Math.max(0, before - 3), 'latin1');
    if (at === -1) {
      if (this.#length > MAX_HEAD) throw new HttpProtocolError(`response head longer than ${MAX_HEAD} bytes`);
      return -1;
    }
    if (at + 4 > MAX_HEAD) throw new HttpProtocolError(`response head longer than ${MAX_HEAD} bytes`);
    return start + (at + 4 - before);
  }

  /** The complete head's text (without its final empty line); resets for the next head. */
  take(): string {
    const text = this.#bytes.toString('latin1', 0, this.#length);
    this.#length = 0;
    return text.slice(0, text.indexOf('\r\n\r\n'));
  }

  #append(chunk: Buffer, start: number, length: number): void {
    if (this.#length + length > this.#bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(1024, 2 * (this.#length + length)));
      this.#bytes.copy(grown, 0, 0, this.#length);
      this.#bytes = grown;
    }
    chunk.copy(this.#bytes, this.#length, start, start + length);
    this.#length += length;
  }
}

/** Parses a response head's text (status line, then `name: value` lines, CRLF-separated). */
export function parseHead(text: string, method = 'GET'): ResponseHead {
  const lines = text.split('\r\n');
  const statusLine = lines[0] ?? '';
  const m = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(statusLine);
  if (!m) throw new HttpProtocolError(`bad status line ${JSON.stringify(statusLine.slice(0, 80))}`);
  const minor = Number(m[1]);
  const status = Number(m[2]);
  if (lines.length - 1 > MAX_FIELDS) throw new HttpProtocolError(`more than ${MAX_FIELDS} header fields`);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.includes('\r') || line.includes('\n'))
      throw new HttpProtocolError(`bare CR or LF in header line ${JSON.stringify(line.slice(0, 80))}`);
    if (line.startsWith(' ') || line.startsWith('\t'))
      throw new HttpProtocolError('obsolete line folding in the response head');
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name))
      throw new HttpProtocolError(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value))
      throw new HttpProtocolError(`bad character in the ${JSON.stringify(name)} header`);
    const key = name.toLowerCase();
    const had = headers.get(key);
    headers.set(key, had === undefined ? value : `${had}, ${value}`);
  }
  const framing = bodyFraming(status, headers, method);
  const connection = (headers.get('connection') ?? '').toLowerCase().split(/\s*,\s*/);
  const keepAlive =
    framing.kind !== 'close' &&
    framing.kind !== 'chunked' && // error bodies only: simpler to close after them
    (minor === 1 ? !connection.includes('close') : connection.includes('keep-alive'));
  return { status, minor, headers, framing, keepAlive };
}

/** RFC 9112 section 6.3, for the responses a GET can get. */
function bodyFraming(status: number, headers: ReadonlyMap<string, string>, method: string): Framing {
  if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304)
    return { kind: 'none' };
  const coding = headers.get('transfer-encoding');
  if (coding !== undefined) {
    const codings = coding.toLowerCase().split(/\s*,\s*/);
    if (codings.length !== 1 || codings[0] !== 'chunked')
      throw new HttpProtocolError(`unsupported Transfer-Encoding ${JSON.stringify(coding.slice(0, 80))}`);
    return { kind: 'chunked' };
  }
  const length = headers.get('content-length');
  if (length === undefined) return { kind: 'close' };
  // `5, 5` (a repeated field) is one length; different values are an attack or a bug.
  const values = new Set(length.split(/\s*,\s*/));
  const only = values.size === 1 ? [...values][0]! : '';
  if (!/^\d{1,15}$/.test(only)) throw new HttpProtocolError(`bad Content-Length ${JSON.stringify(length)}`);
  return { kind: 'length', length: Number(only) };
}

/** `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`); undefined when absent or malformed. */
export function parseContentRange(
  value: string | undefined,
): { first: number; last: number; total: number | undefined } | undefined {
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/.exec(value ?? '');
  if (!m) return undefined;
  const first = Number(m[1]);
  const last = Number(m[2]);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (last < first || (total !== undefined && last >= total)) return undefined;
  return { first, last, total };
}

/**
 * Decodes a complete `chunked` body (a small error body, collected whole). Returns
 * undefined while the last chunk and the trailer section have not all arrived; throws on
 * bad syntax.
 */
export function decodeChunked(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at, 'latin1');
    if (eol === -1) return undefined;
    const line = raw.toString('latin1', at, eol);
    const m = /^([0-9A-Fa-f]{1,8})[\t ]*(?:;.*)?$/.exec(line);
    if (!m) throw new HttpProtocolError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
    const size = Number.parseInt(m[1]!, 16);
    at = eol + 2;
    if (size === 0) {
      // Trailer fields (ignored), then an empty line.
      for (;;) {
        const end = raw.indexOf('\r\n', at, 'latin1');
        if (end === -1) return undefined;
        if (end === at) return Buffer.concat(parts);
        at = end + 2;
      }
    }
    if (raw.length < at + size + 2) return undefined;
    if (raw[at + size] !== 0x0d || raw[at + size + 1] !== 0x0a)
      throw new HttpProtocolError('chunk data not followed by CRLF');
    parts.push(raw.subarray(at, at + size));
    at += size + 2;
  }
}
