/**
 * A lean HTTP/1.1 client for the image download's GETs (agent/images/download.ts), built
 * for CPU per byte: on loopback or a fast LAN, receiving a multi-GiB image with node:http
 * costs more CPU than the network does (a new 64 KiB Buffer per socket read, its parser,
 * its streams, and the garbage collections all that makes).
 *
 * - Each connection reads into one buffer of its own, reused for every read (`net`/`tls`
 *   `onread`): a body's bytes are handed to the caller while they are in that buffer,
 *   to be copied (or refused) before the call returns. No allocation per read.
 * - The response head is parsed by agent/images/http-response.ts (strict: a response
 *   that does not look like S3's is an error with a clear message).
 * - Bodies framed by Content-Length, or by the end of the connection; `chunked` only for
 *   error bodies read as text (the caller refuses it for data).
 * - Keep-alive: a connection whose response was read to its end goes back to the client's
 *   idle list for the next GET to the same origin. A reused connection that the server
 *   closed before answering (its idle timeout) is retried once on a new connection.
 * - http: and https: (tls.connect, with Node's default CA store and host name check).
 * - Backpressure: `pause()` stops reading from the socket until `resume()`.
 * - Cancellation: the signal given to `get` and `body` destroys the connection.
 *
 * One client per download: `close()` destroys its connections.
 */
import { connect as netConnect, type OnReadOpts, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { DownloadError } from './errors.ts';
import {
  decodeChunked,
  HeadReader,
  HttpProtocolError,
  parseHead,
  type ResponseHead,
} from './http-response.ts';

const KiB = 1024;
/** Each connection's read buffer (reused for every read of the connection). */
export const READ_SIZE = 128 * KiB;
/** Bytes of an error body read at most (then the connection is closed). */
const ERROR_BODY_LIMIT = 64 * KiB;

/** Receives body bytes `[start, end)` of `buffer`, valid only during the call. */
export type OnBody = (buffer: Buffer, start: number, end: number) => void;

type Phase = 'idle' | 'head' | 'held' | 'body' | 'closed';

/** One connection to one origin, one exchange at a time. */
class Connection {
  readonly origin: string;
  readonly socket: Socket;
  /** Requests sent on this connection (the current one included). */
  requests = 0;
  /** Bytes received for the current request (0: the server sent nothing yet). */
  received = 0;
  /** The body just read ended where the connection can carry another request. */
  reusable = false;
  #phase: Phase = 'idle';
  readonly #heads = new HeadReader();
  #response: ResponseHead | undefined;
  /**
   * Body bytes that came with the head, before `body()` was called: copied (the read
   * buffer is reused) into a buffer of the read buffer's size kept for this, so that
   * no response makes garbage.
   */
  #held: Buffer;
  #heldLength = 0;
  /** Body bytes still to come (Infinity: until the connection ends). */
  #left = 0;
  #bodyLength = 0;
  #onBody: OnBody | undefined;
  #settle:
    | { resolve: (value: ResponseHead | undefined) => void; reject: (error: unknown) => void }
    | undefined;
  #unlisten: (() => void) | undefined;
  #paused = false;
  #inRead = false;
  /** The peer ended the connection, or it failed (`#error` says why). */
  #closed = false;
  #error: unknown;

  constructor(url: URL, readSize: number, ca: string | undefined) {
    this.origin = url.origin;
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1'); // [::1] → ::1
    this.#held = Buffer.allocUnsafeSlow(readSize);
    const onread = {
      buffer: Buffer.allocUnsafeSlow(readSize),
      callback: (n: number, buffer: Uint8Array) => this.#onRead(n, buffer as Buffer),
    };
    // tls.connect takes `onread` as net.connect does (Node ≥ 15.1); @types/node omits it.
    const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = {
      host,
      port,
      onread,
      ALPNProtocols: ['http/1.1'],
      ...(ca ? { ca } : {}),
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
    };
    this.socket = url.protocol === 'https:' ? tlsConnect(tlsOptions) : netConnect({ host, port, onread });
    this.socket.on('error', (error) =>
      this.#fail(
        // Reset as a kept-alive connection was reused: the server had closed it meanwhile.
        this.#phase === 'head' && this.received === 0 && this.requests > 1
          ? new StaleConnectionError(`${error.message} (a reused connection)`, true)
          : error,
      ),
    );
    this.socket.on('end', () => this.#onClose());
    this.socket.on('close', () => this.#onClose());
  }

  get idle(): boolean {
    return this.#phase === 'idle' && !this.#closed;
  }

  /** Sends `request` and resolves with the response head (1xx interim responses skipped). */
  request(request: string, signal: AbortSignal): Promise<ResponseHead> {
    if (!this.idle) return Promise.reject(new DownloadError('connection not idle'));
    this.requests++;
    this.received = 0;
    this.reusable = false;
    this.#response = undefined;
    this.#phase = 'head';
    this.#paused = false;
    const head = this.#wait(signal) as Promise<ResponseHead>;
    this.socket.write(request, 'latin1');
    this.socket.resume();
    return head;
  }

  /**
   * Hands the body to `onBody` as it arrives; resolves at its end (the connection idle
   * again when `reusable`), rejects when the connection fails or ends early.
   */
  body(onBody: OnBody, signal: AbortSignal): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#phase !== 'held') return Promise.reject(new DownloadError('no response to read'));
    this.#phase = 'body';
    this.#onBody = onBody;
    const done = this.#wait(signal) as Promise<unknown> as Promise<void>;
    try {
      if (this.#heldLength > 0) {
        const length = this.#heldLength;
        this.#heldLength = 0;
        this.#deliver(this.#held, 0, length);
      }
      if (this.#phase === 'body') {
        if (this.#left === 0) this.#finish(false);
        else if (this.#closed) this.#onClose();
        else if (!this.#paused) this.socket.resume();
      }
    } catch (error) {
      this.#fail(error); // `done` rejects with it
    }
    return done;
  }

  /** Stops reading from the socket (backpressure) until `resume()`. */
  pause(): void {
    this.#paused = true;
    if (!this.#inRead) this.socket.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#phase === 'body' && !this.#closed) this.socket.resume();
  }

  /** Ends the connection; a pending request or body rejects with `error`. */
  destroy(error?: unknown): void {
    if (error !== undefined) this.#fail(error);
    this.#phase = 'closed';
    this.#closed = true;
    this.socket.destroy();
  }

  #wait(signal: AbortSignal): Promise<ResponseHead | undefined> {
    if (signal.aborted) {
      this.destroy(signal.reason);
      return Promise.reject(signal.reason);
    }
    return new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
      const abort = () => this.destroy(signal.reason);
      signal.addEventListener('abort', abort, { once: true });
      this.#unlisten = () => signal.removeEventListener('abort', abort);
      if (this.#error !== undefined) this.#fail(this.#error);
    });
  }

  #resolve(value: ResponseHead | undefined): void {
    const settle = this.#settle;
    this.#settle = undefined;
    this.#unlisten?.();
    this.#unlisten = undefined;
    settle?.resolve(value);
  }

  #fail(error: unknown): void {
    if (this.#error === undefined) this.#error = error;
    this.#phase = 'closed';
    this.#closed = true;
    this.socket.destroy();
    const settle = this.#settle;
    this.#settle = undefined;
    this.#unlisten?.();
    this.#unlisten = undefined;
    settle?.reject(this.#error);
  }

  /** The socket's `onread` callback: false pauses reading. */
  #onRead(n: number, buffer: Buffer): boolean {
    this.received += n;
    this.#inRead = true;
    try {
      let at = 0;
      while (at < n) {
        if (this.#phase === 'head') at = this.#readHead(buffer, at, n);
        else if (this.#phase === 'held') at = this.#hold(buffer, at, n);
        else if (this.#phase === 'body') at = this.#deliver(buffer, at, n);
        else {
          // Bytes nobody asked for (after a response's end): this connection is not to be trusted.
          this.reusable = false;
          this.destroy();
          return false;
        }
      }
    } catch (error) {
      this.#fail(error);
      return false;
    } finally {
      this.#inRead = false;
    }
    return !this.#paused && this.#phase !== 'held' && this.#phase !== 'closed';
  }

  /** Feeds the head reader; at the head's end, parses it. Returns where the bytes go on. */
  #readHead(buffer: Buffer, at: number, n: number): number {
    const end = this.#heads.push(buffer, at, n);
    if (end === -1) return n;
    const head = parseHead(this.#heads.take());
    if (head.status === 101) throw new HttpProtocolError('unexpected 101 Switching Protocols');
    if (head.status < 200) return end; // 100 Continue, 103 Early Hints: the real one follows
    this.#response = head;
    this.#left =
      head.framing.kind === 'length' ? head.framing.length : head.framing.kind === 'none' ? 0 : Infinity;
    this.#bodyLength = this.#left;
    this.#phase = 'held';
    this.#resolve(head);
    return end;
  }

  /**
   * Keeps body bytes until `body()` is called (possibly more than one read's worth: TLS
   * may still hand over decrypted bytes after a pause).
   */
  #hold(buffer: Buffer, at: number, n: number): number {
    if (this.#heldLength + (n - at) > this.#held.length) {
      const grown = Buffer.allocUnsafeSlow(this.#heldLength + (n - at));
      this.#held.copy(grown, 0, 0, this.#heldLength);
      this.#held = grown;
    }
    buffer.copy(this.#held, this.#heldLength, at, n);
    this.#heldLength += n - at;
    return n;
  }

  /** Hands body bytes to the reader; at the body's end, settles it. Returns where it stopped. */
  #deliver(buffer: Buffer, at: number, n: number): number {
    const take = Math.min(n - at, this.#left);
    if (take > 0) {
      this.#left -= take;
      this.#onBody!(buffer, at, at + take);
    }
    if (this.#left === 0 && this.#phase === 'body') this.#finish(at + take < n);
    return at + take;
  }

  #finish(extraBytes: boolean): void {
    this.reusable = !extraBytes && this.#response?.keepAlive === true && !this.#closed;
    this.#phase = this.reusable ? 'idle' : 'closed';
    // An idle connection keeps reading: to see the server close it, or send what it should not.
    this.#paused = false;
    if (this.reusable && !this.#inRead) this.socket.resume();
    if (!this.reusable) this.socket.destroy();
    this.#onBody = undefined;
    this.#resolve(undefined);
  }

  #onClose(): void {
    if (this.#closed && this.#phase === 'closed') return;
    this.#closed = true;
    if (this.#phase === 'head') {
      this.#fail(
        new StaleConnectionError(
          this.received === 0
            ? 'the server closed the connection without a response'
            : 'the server closed the connection in the middle of the response head',
          this.received === 0 && this.requests > 1,
        ),
      );
    } else if (this.#phase === 'body') {
      if (this.#left === Infinity) this.#finish(false);
      else {
        const got = this.#bodyLength - this.#left;
        this.#fail(new DownloadError(`connection closed after ${got} of ${this.#bodyLength} body bytes`));
      }
    } else if (this.#phase === 'idle') this.#phase = 'closed';
  }
}

/** The connection closed before a response; `stale`: a reused one, worth one retry at once. */
class StaleConnectionError extends DownloadError {
  readonly stale: boolean;
  constructor(message: string, stale: boolean) {
    super(message);
    this.stale = stale;
  }
}

/** A response whose head has arrived: read its body with `body()` or `text()`, or `destroy()` it. */
export class Exchange {
  readonly head: ResponseHead;
  readonly #client: HttpClient;
  readonly #connection: Connection;
  /** The body has been read or given up: pause/resume must not touch a reused connection. */
  #settled = false;

  constructor(client: HttpClient, connection: Connection, head: ResponseHead) {
    this.#client = client;
    this.#connection = connection;
    this.head = head;
  }

  header(name: string): string | undefined {
    return this.head.headers.get(name);
  }

  /** Streams the body to `onBody`; the connection goes back to the client once read to its end. */
  async body(onBody: OnBody, signal: AbortSignal): Promise<void> {
    try {
      await this.#connection.body(onBody, signal);
    } finally {
      this.#settle();
    }
  }

  /** Stops reading until `resume()` (the socket's receive window fills, the server waits). */
  pause(): void {
    if (!this.#settled) this.#connection.pause();
  }

  resume(): void {
    if (!this.#settled) this.#connection.resume();
  }

  /** Closes the connection without reading (the rest of) the body. */
  destroy(): void {
    if (!this.#settled) this.#connection.destroy();
    this.#settle();
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#client.release(this.#connection);
  }

  /** A small body (an error's) as text, at most `max` characters; never fails. */
  async text(signal: AbortSignal, max = 4096): Promise<string> {
    const chunked = this.head.framing.kind === 'chunked';
    const parts: Buffer[] = [];
    let size = 0;
    const whole = () => Buffer.concat(parts, size);
    let enough = false;
    try {
      await this.#connection.body((buffer, start, end) => {
        if (enough) return;
        const take = Math.min(end - start, ERROR_BODY_LIMIT - size);
        parts.push(Buffer.from(buffer.subarray(start, start + take)));
        size += take;
        if (size >= ERROR_BODY_LIMIT || (chunked && decodeChunked(whole()) !== undefined)) {
          enough = true;
          this.#connection.destroy(new DownloadError('enough of the error body'));
        }
      }, signal);
    } catch {
      // Cut short or ended: what arrived is all there is to report.
    } finally {
      this.#settle();
    }
    let body: Buffer = whole();
    if (chunked) {
      try {
        body = decodeChunked(body) ?? Buffer.alloc(0);
      } catch {
        body = Buffer.alloc(0);
      }
    }
    return body.toString('utf8', 0, Math.min(body.length, max));
  }
}

/** Connections to the origins of one download, kept alive between its GETs. */
export class HttpClient {
  readonly #readSize: number;
  readonly #ca: string | undefined;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();

  /** `ca`: the certificates to trust instead of Node's (a test's own CA). */
  constructor(options: { readSize?: number; ca?: string } = {}) {
    this.#readSize = options.readSize ?? READ_SIZE;
    this.#ca = options.ca;
  }

  /** Sends a GET for `url` with `headers`; resolves once the response head has arrived. */
  async get(url: string | URL, headers: Record<string, string>, signal: AbortSignal): Promise<Exchange> {
    const u = typeof url === 'string' ? new URL(url) : url;
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new DownloadError(`unsupported URL scheme ${u.protocol}`);
    const request = requestText(u, headers);
    for (let attempt = 1; ; attempt++) {
      const connection = this.#take(u.origin) ?? this.#open(u);
      try {
        return new Exchange(this, connection, await connection.request(request, signal));
      } catch (error) {
        connection.destroy();
        this.#all.delete(connection);
        // A kept-alive connection the server had just closed: a GET is safe to send again.
        if (error instanceof StaleConnectionError && error.stale && attempt === 1 && !signal.aborted)
          continue;
        throw error;
      }
    }
  }

  /** Takes back a connection after its response (kept when reusable). */
  release(connection: Connection): void {
    if (connection.reusable && connection.idle) this.#idle.push(connection);
    else {
      connection.destroy();
      this.#all.delete(connection);
    }
  }

  /** Connections open now (idle or busy). */
  get open(): number {
    return this.#all.size;
  }

  /** Destroys every connection. */
  close(): void {
    for (const connection of this.#all) connection.destroy();
    this.#all.clear();
    this.#idle.length = 0;
  }

  #take(origin: string): Connection | undefined {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const connection = this.#idle[i]!;
      if (!connection.idle) {
        this.#idle.splice(i, 1);
        this.#all.delete(connection);
      } else if (connection.origin === origin) {
        this.#idle.splice(i, 1);
        return connection;
      }
    }
    return undefined;
  }

  #open(url: URL): Connection {
    const connection = new Connection(url, this.#readSize, this.#ca);
    this.#all.add(connection);
    return connection;
  }
}

/** The request's bytes: the request line, Host, the given fields. */
function requestText(url: URL, headers: Record<string, string>): string {
  const target = `${url.pathname || '/'}${url.search}`;
  if (hasByte(target, (c) => c <= 0x20 || c === 0x7f)) throw new DownloadError('bad character in the URL');
  let text = `GET ${target} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (hasByte(name + value, (c) => c === 0x0d || c === 0x0a || c === 0))
      throw new DownloadError(`bad character in the ${name} header`);
    text += `${name}: ${value}\r\n`;
  }
  return `${text}\r\n`;
}

/** Whether a character of `text` has a code for which `test` holds. */
function hasByte(text: string, test: (code: number) => boolean): boolean {
  for (let i = 0; i < text.length; i++) if (test(text.charCodeAt(i))) return true;
  return false;
}
