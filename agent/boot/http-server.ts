/**
 * The agent's HTTP server for the HTTP boot root (iPXE scripts, kernels, initrds, ISOs).
 *
 * - GET and HEAD of regular files only; anything else is 405 (unless `extraRoutes`,
 *   consulted first for every request, handled it). No directory listing: a directory is
 *   403, like nginx with `autoindex off`.
 * - Paths: percent-decoded once, then the shared rules of `root-path.ts` (no `..`, no
 *   hidden files, no NUL or control bytes, no backslash, no symlink out of the root):
 *   400 for an undecodable or invalid path, 403 for a forbidden one, 404 for a missing
 *   one. `%2e%2e` decodes to `..` and is refused like it; `%252e` decodes to a literal
 *   `%2e`, which is just a (missing) name.
 * - Ranges: one range per request (`bytes=a-b`, `bytes=a-`, `bytes=-n`) is answered 206
 *   with Content-Range; an unsatisfiable one 416 with `Content-Range: bytes *\/size`.
 *   A multi-range request, or a syntactically invalid Range, is answered 200 with the
 *   whole file, which RFC 9110 §14.2 allows (a server may ignore Range): iPXE's
 *   `sanboot` and every boot loader ask for single ranges. `If-Range` is honoured.
 * - Validators: ETag (`"mtime-size"` in hex, as nginx makes it) and Last-Modified;
 *   If-None-Match and If-Modified-Since answer 304.
 * - Streaming: a file up to 64 KiB (or a range that small) is read at once and sent in
 *   one write; larger ones are streamed (fs read stream piped with backpressure), the
 *   file descriptor closed when the stream ends, fails or the client goes away.
 * - Bounds: `maxConnections` sockets at once (more are closed on accept), headers within
 *   `headersTimeoutMs`, the whole request within `requestTimeoutMs`, a socket with no
 *   progress either way for `idleTimeoutMs` is destroyed (a client that stops reading a
 *   kernel mid-way is let go), keep-alive sockets idle at most `keepAliveTimeoutMs` and
 *   serving at most `maxRequestsPerSocket` requests.
 */
import { closeSync, createReadStream, lstatSync, readSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { extname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../log.ts';
import { type OpenedFile, RootPathError, RootResolver } from './root-path.ts';

/** Handles a request the static server should not (e.g. `POST /v1/callback/...`): true when it did. */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface HttpBootServerOptions {
  readonly root: string;
  /** Address to bind (default 127.0.0.1); `0.0.0.0` or `::` for every interface. */
  readonly address?: string;
  /** TCP port (default 8080); 0 picks a free one (see `port` after start). */
  readonly port?: number;
  readonly maxConnections?: number;
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly maxRequestsPerSocket?: number;
  /** Consulted first for every request; see `ExtraRoutes`. */
  readonly extraRoutes?: ExtraRoutes;
  readonly log?: Logger;
}

export interface HttpBootStats {
  readonly connections: number;
  readonly requests: number;
  /** Responses by status class. */
  readonly responses: {
    readonly '2xx': number;
    readonly '3xx': number;
    readonly '4xx': number;
    readonly '5xx': number;
  };
  /** Body bytes of the file responses that completed. */
  readonly bytesSent: number;
}

/** Files (or ranges) up to this size are read at once and sent in one write. */
const SMALL_BODY = 64 * 1024;
/** Most bytes of small files kept in memory (then the cache starts over). */
const SMALL_CACHE_BYTES = 16 * 1024 * 1024;
/**
 * Read size when streaming: fewer, larger reads and socket writes. Measured against nginx
 * on a 10 MiB file (bench/boot-serving.ts): 512 KiB 0.69×, 1 MiB 0.80×, 2 MiB 0.78×. At
 * most one chunk is buffered per stream: 256 MiB with the default 256 connections.
 */
const STREAM_CHUNK = 1024 * 1024;

const CONTENT_TYPES: Record<string, string> = {
  '.ipxe': 'text/plain; charset=utf-8',
  '.cfg': 'text/plain; charset=utf-8',
  '.conf': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.json': 'application/json',
  '.iso': 'application/x-iso9660-image',
  '.efi': 'application/efi',
};

export type ByteRange = { start: number; end: number };

interface FileInfo {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/**
 * Parses a Range header against a file size: a single byte range, `'unsatisfiable'`, or
 * undefined when the header is to be ignored (absent, invalid, multi-range: 200 full).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d{0,19})\s*-\s*(\d{0,19})\s*$/i.exec(header);
  if (!m) return undefined;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return undefined; // invalid: ignored (RFC 9110 §14.1.1)
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export class HttpBootServer {
  private readonly server: Server;
  private readonly options: HttpBootServerOptions;
  private readonly log: Logger | undefined;
  private counters = { requests: 0, bytesSent: 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  private connections = 0;
  private boundPort = 0;
  private boundAddress = '';
  private readonly resolver: RootResolver;
  private readonly small = new Map<string, FileInfo & { ctimeMs: number; ino: number; body: Buffer }>();
  private smallBytes = 0;

  private constructor(options: HttpBootServerOptions) {
    this.options = options;
    this.resolver = new RootResolver(options.root);
    this.log = options.log;
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    const requestTimeout = Math.max(headersTimeout, options.requestTimeoutMs ?? 30_000);
    this.server = createServer(
      {
        headersTimeout,
        requestTimeout,
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 5000,
        // Node checks the two timeouts above on this interval (30 s by default, which
        // would let a slow client hold its socket up to 30 s past the limit).
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
        maxHeaderSize: 16 * 1024,
        noDelay: true,
        requireHostHeader: false, // iPXE sends Host, but HTTP/1.0 tools may not
      },
      (req, res) => {
        this.handle(req, res).catch((error: unknown) => {
          this.log?.error('http boot server failure', { error: (error as Error).message });
          if (!res.headersSent) this.reply(res, 500, 'internal error');
          else res.destroy();
        });
      },
    );
    this.server.maxConnections = options.maxConnections ?? 256;
    this.server.maxRequestsPerSocket = options.maxRequestsPerSocket ?? 1000;
    // Without a 'timeout' listener, Node destroys a socket idle for this long.
    this.server.timeout = options.idleTimeoutMs ?? 60_000;
    this.server.on('connection', (socket: Socket) => {
      this.connections++;
      socket.once('close', () => {
        this.connections--;
      });
    });
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed requests, header timeouts: answer when the socket still can, then close.
      if (socket.writable && !socket.destroyed) {
        const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
        socket.end(
          `HTTP/1.1 ${status} ${status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
        );
      }
      socket.destroy();
    });
  }

  static async start(options: HttpBootServerOptions): Promise<HttpBootServer> {
    const server = new HttpBootServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen({ port: options.port ?? 8080, host: options.address ?? '127.0.0.1' }, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    const address = server.server.address() as AddressInfo;
    server.boundPort = address.port;
    server.boundAddress = address.address;
    server.server.on('error', (error) =>
      server.log?.warn('http boot server error', { error: error.message }),
    );
    return server;
  }

  get port(): number {
    return this.boundPort;
  }
  get address(): string {
    return this.boundAddress;
  }

  stats(): HttpBootStats {
    const c = this.counters;
    return {
      connections: this.connections,
      requests: c.requests,
      responses: { '2xx': c['2xx'], '3xx': c['3xx'], '4xx': c['4xx'], '5xx': c['5xx'] },
      bytesSent: c.bytesSent,
    };
  }

  private count(status: number): void {
    const cls = status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : '2xx';
    this.counters[cls]++;
  }

  private reply(
    res: ServerResponse,
    status: number,
    text: string,
    headers: Record<string, string> = {},
  ): void {
    this.count(status);
    const body = `${text}\n`;
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      ...headers,
    });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.counters.requests++;
    if (this.options.extraRoutes && (await this.options.extraRoutes(req, res))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return this.reply(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    }
    const target = req.url ?? '';
    if (!target.startsWith('/')) return this.reply(res, 400, 'bad request target');
    const q = target.search(/[?#]/);
    let path: string;
    try {
      path = decodeURIComponent(q < 0 ? target : target.slice(0, q));
    } catch {
      return this.reply(res, 400, 'bad percent-encoding');
    }
    const refuse = (error: unknown): void => {
      if (!(error instanceof RootPathError)) throw error;
      this.log?.debug('http request refused', { path: target.slice(0, 256), why: error.message });
      const [status, text] =
        error.kind === 'invalid'
          ? [400, 'bad path']
          : error.kind === 'not-found'
            ? [404, 'not found']
            : [403, 'forbidden'];
      this.reply(res, status, text);
    };
    let real: string;
    try {
      real = this.resolver.resolve(path);
    } catch (error) {
      refuse(error);
      return;
    }
    // Small files (iPXE scripts, configs: the bulk of the requests in a mass boot) are
    // kept in memory and revalidated with one lstat: same inode, size, mtime and ctime.
    const st = lstatSync(real, { throwIfNoEntry: false });
    if (st?.isFile() && st.size <= SMALL_BODY) {
      const cached = this.small.get(real);
      if (
        cached &&
        cached.ino === st.ino &&
        cached.size === st.size &&
        cached.mtimeMs === st.mtimeMs &&
        cached.ctimeMs === st.ctimeMs
      ) {
        this.serve(req, res, cached, cached.body);
        return;
      }
    }
    let file: OpenedFile;
    try {
      file = this.resolver.open(path);
    } catch (error) {
      refuse(error);
      return;
    }
    if (file.size <= SMALL_BODY) {
      let body: Buffer;
      try {
        body = Buffer.allocUnsafe(file.size);
        const n = file.size === 0 ? 0 : readSync(file.fd, body, 0, file.size, 0);
        // Truncated under us: never promise bytes we do not have.
        if (n < file.size) throw new Error('file shrank while being read');
      } finally {
        closeSync(file.fd);
      }
      this.remember(file, body);
      this.serve(req, res, file, body);
      return;
    }
    let handedOver = false;
    try {
      handedOver = await this.serve(req, res, file, file.fd);
    } finally {
      if (!handedOver) closeSync(file.fd);
    }
  }

  private remember(file: OpenedFile, body: Buffer): void {
    if (this.smallBytes + body.length > SMALL_CACHE_BYTES) {
      this.small.clear();
      this.smallBytes = 0;
    }
    const old = this.small.get(file.path);
    if (old) this.smallBytes -= old.body.length;
    this.small.set(file.path, {
      path: file.path,
      size: file.size,
      mtimeMs: file.mtimeMs,
      ctimeMs: file.ctimeMs,
      ino: file.ino,
      body,
    });
    this.smallBytes += body.length;
  }

  /**
   * Answers with a file's contents: `body` (the whole file in memory) or an open
   * descriptor to stream from. Resolves true when the descriptor now belongs to a stream.
   */
  private serve(req: IncomingMessage, res: ServerResponse, file: FileInfo, body: Buffer): false;
  private serve(req: IncomingMessage, res: ServerResponse, file: FileInfo, fd: number): Promise<boolean>;
  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    file: FileInfo,
    source: Buffer | number,
  ): false | Promise<boolean> {
    const seconds = Math.floor(file.mtimeMs / 1000);
    const etag = `"${seconds.toString(16)}-${file.size.toString(16)}"`;
    const lastModified = new Date(seconds * 1000).toUTCString();
    const headers: Record<string, string | number> = {
      'Content-Type': CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream',
      'Last-Modified': lastModified,
      ETag: etag,
      'Accept-Ranges': 'bytes',
    };

    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if (
      (inm !== undefined &&
        (inm === '*' || inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag))) ||
      (inm === undefined && ims !== undefined && Date.parse(ims) >= seconds * 1000)
    ) {
      this.count(304);
      res.writeHead(304, { ETag: etag, 'Last-Modified': lastModified });
      res.end();
      return false;
    }

    let range = parseRange(req.headers.range, file.size);
    const ifRange = req.headers['if-range'];
    if (range !== undefined && ifRange !== undefined && ifRange !== etag && ifRange !== lastModified) {
      range = undefined; // the client's copy is stale: it gets the whole new file
    }
    if (range === 'unsatisfiable') {
      this.reply(res, 416, 'range not satisfiable', { 'Content-Range': `bytes */${file.size}` });
      return false;
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : file.size - 1;
    const length = end - start + 1;
    const status = range ? 206 : 200;
    headers['Content-Length'] = Math.max(0, length);
    if (range) headers['Content-Range'] = `bytes ${start}-${end}/${file.size}`;
    this.count(status);
    res.writeHead(status, headers);

    if (req.method === 'HEAD' || length <= 0) {
      res.end();
      return false;
    }
    if (typeof source !== 'number') {
      res.end(range ? source.subarray(start, end + 1) : source);
      this.counters.bytesSent += length;
      return false;
    }
    const stream = createReadStream('', {
      fd: source,
      start,
      end,
      highWaterMark: STREAM_CHUNK,
      autoClose: true,
    });
    return pipeline(stream, res).then(
      () => {
        this.counters.bytesSent += length;
        return true;
      },
      (error: unknown) => {
        // Client went away or timed out mid-file: the stream is destroyed and its fd closed.
        this.log?.debug('http transfer cut', { file: file.path, error: (error as Error).message });
        return true;
      },
    );
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
