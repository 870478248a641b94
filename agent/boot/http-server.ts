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
 * - Memory cache: files up to `cacheMaxFileBytes` (16 MiB: iPXE scripts, configs,
 *   kernels) are read whole, asynchronously, and kept in memory, `cacheBytes` (64 MiB)
 *   in all, least recently used evicted first, with their response headers precomputed.
 *   Each request revalidates its entry with one `lstat` of the real path (inode, size,
 *   mtime, ctime): a file replaced, rewritten or removed is served new (or 404) at once,
 *   and a file that changed while being read is served but not kept.
 * - Streaming: larger files are streamed (fs read stream, 1 MiB reads, piped with
 *   backpressure), the file descriptor closed when the stream ends, fails or the client
 *   goes away.
 * - Bounds: `maxConnections` sockets at once (more are closed on accept), headers within
 *   `headersTimeoutMs`, the whole request within `requestTimeoutMs`, a socket with no
 *   progress either way for `idleTimeoutMs` is destroyed (a client that stops reading a
 *   kernel mid-way is let go), keep-alive sockets idle at most `keepAliveTimeoutMs` and
 *   serving at most `maxRequestsPerSocket` requests.
 */
import { closeSync, createReadStream, fstat, lstatSync, read, type Stats } from 'node:fs';
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
  /**
   * Most bytes of file contents kept in memory (default 64 MiB), least recently used
   * evicted first; 0 turns the cache off.
   */
  readonly cacheBytes?: number;
  /** Largest file kept in memory (default 16 MiB: a kernel); larger ones are streamed. */
  readonly cacheMaxFileBytes?: number;
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

/** Default bound of the memory cache (file contents), and of one file in it. */
const CACHE_BYTES = 64 * 1024 * 1024;
const CACHE_MAX_FILE_BYTES = 16 * 1024 * 1024;
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

/** Validators of a file version, as sent (ETag and Last-Modified, as nginx makes them). */
interface Validators {
  readonly seconds: number;
  readonly etag: string;
  readonly lastModified: string;
  readonly contentType: string;
}

/** A file held in memory, with what identifies its version and its precomputed headers. */
interface CachedFile extends FileInfo, Validators {
  readonly ctimeMs: number;
  readonly ino: number;
  readonly body: Buffer;
  /** The headers of a full 200 answer, flat (name, value, name, value...). */
  readonly fullHeaders: string[];
}

function validators(file: FileInfo): Validators {
  const seconds = Math.floor(file.mtimeMs / 1000);
  return {
    seconds,
    etag: `"${seconds.toString(16)}-${file.size.toString(16)}"`,
    lastModified: new Date(seconds * 1000).toUTCString(),
    contentType: CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream',
  };
}

function cachedFile(file: OpenedFile, body: Buffer): CachedFile {
  const v = validators(file);
  return {
    path: file.path,
    size: file.size,
    mtimeMs: file.mtimeMs,
    ctimeMs: file.ctimeMs,
    ino: file.ino,
    body,
    ...v,
    fullHeaders: [
      'Content-Type',
      v.contentType,
      'Last-Modified',
      v.lastModified,
      'ETag',
      v.etag,
      'Accept-Ranges',
      'bytes',
      'Content-Length',
      String(file.size),
    ],
  };
}

/** Reads `size` bytes from the start of `fd`, through the thread pool. */
function readWhole(fd: number, size: number): Promise<Buffer> {
  const body = Buffer.allocUnsafe(size);
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      if (offset >= size) {
        resolve(body);
        return;
      }
      read(fd, body, offset, size - offset, offset, (error, n) => {
        if (error) reject(error);
        // Truncated under us: never promise bytes we do not have.
        else if (n === 0) reject(new Error('file shrank while being read'));
        else step(offset + n);
      });
    };
    step(0);
  });
}

/** One version of one file, for sharing a cache fill. */
function loadKey(file: OpenedFile): string {
  return `${file.path}\0${file.ino}:${file.size}:${file.mtimeMs}:${file.ctimeMs}`;
}

function fstatAsync(fd: number): Promise<Stats> {
  return new Promise((resolve, reject) =>
    fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))),
  );
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
  /** Real path → file in memory, least recently used first. */
  private readonly cache = new Map<string, CachedFile>();
  private cacheBytes = 0;
  private readonly cacheLimit: number;
  private readonly cacheMaxFileBytes: number;
  private readonly loading = new Map<string, Promise<CachedFile>>();
  /** Bytes being read into memory by cache fills (at most the cache's bound). */
  private loadingBytes = 0;

  private constructor(options: HttpBootServerOptions) {
    this.options = options;
    this.resolver = new RootResolver(options.root);
    this.log = options.log;
    this.cacheLimit = Math.max(0, options.cacheBytes ?? CACHE_BYTES);
    this.cacheMaxFileBytes = Math.min(
      this.cacheLimit,
      Math.max(0, options.cacheMaxFileBytes ?? CACHE_MAX_FILE_BYTES),
    );
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
        // A cache hit is answered synchronously: no promise on the hot path.
        try {
          this.handle(req, res)?.catch((error: unknown) => this.failed(res, error));
        } catch (error) {
          this.failed(res, error);
        }
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

  private failed(res: ServerResponse, error: unknown): void {
    this.log?.error('http boot server failure', { error: (error as Error).message });
    if (!res.headersSent) this.reply(res, 500, 'internal error');
    else res.destroy();
  }

  private refuse(res: ServerResponse, target: string, error: unknown): void {
    if (!(error instanceof RootPathError)) throw error;
    this.log?.debug('http request refused', { path: target.slice(0, 256), why: error.message });
    const [status, text] =
      error.kind === 'invalid'
        ? [400, 'bad path']
        : error.kind === 'not-found'
          ? [404, 'not found']
          : [403, 'forbidden'];
    this.reply(res, status, text);
  }

  private handle(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    this.counters.requests++;
    const extra = this.options.extraRoutes?.(req, res);
    if (extra === true) return;
    if (extra !== undefined && extra !== false) {
      return extra.then((handled) => (handled ? undefined : this.handleStatic(req, res)));
    }
    return this.handleStatic(req, res);
  }

  private handleStatic(req: IncomingMessage, res: ServerResponse): Promise<void> | undefined {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.reply(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      return;
    }
    const target = req.url ?? '';
    if (!target.startsWith('/')) {
      this.reply(res, 400, 'bad request target');
      return;
    }
    let end = target.indexOf('?');
    const hash = target.indexOf('#');
    if (hash >= 0 && (end < 0 || hash < end)) end = hash;
    const raw = end < 0 ? target : target.slice(0, end);
    let path: string;
    try {
      path = raw.includes('%') ? decodeURIComponent(raw) : raw;
    } catch {
      this.reply(res, 400, 'bad percent-encoding');
      return;
    }
    let real: string;
    try {
      real = this.resolver.resolve(path);
    } catch (error) {
      this.refuse(res, target, error);
      return;
    }
    // Cached files (iPXE scripts, configs, kernels: the bulk of a mass boot) are served
    // from memory and revalidated with one lstat: same inode, size, mtime and ctime.
    const cached = this.cache.get(real);
    if (cached !== undefined) {
      const st = lstatSync(real, { throwIfNoEntry: false });
      if (
        st !== undefined &&
        cached.ino === st.ino &&
        cached.size === st.size &&
        cached.mtimeMs === st.mtimeMs &&
        cached.ctimeMs === st.ctimeMs &&
        st.isFile()
      ) {
        // Least recently used goes first: move this one to the end.
        this.cache.delete(real);
        this.cache.set(real, cached);
        this.serve(req, res, cached, cached.body);
        return;
      }
      this.forget(real);
    }
    return this.handleMiss(req, res, path, target);
  }

  private async handleMiss(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    target: string,
  ): Promise<void> {
    let file: OpenedFile;
    try {
      file = this.resolver.open(path);
    } catch (error) {
      this.refuse(res, target, error);
      return;
    }
    // Fills in flight stay within the cache's bound too (many distinct files asked for
    // at once are streamed instead, at most one chunk buffered each).
    if (
      file.size <= this.cacheMaxFileBytes &&
      (this.loadingBytes + file.size <= this.cacheLimit || this.loading.has(loadKey(file)))
    ) {
      let entry: CachedFile;
      try {
        entry = await this.load(file);
      } finally {
        closeSync(file.fd);
      }
      this.serve(req, res, entry, entry.body);
      return;
    }
    let handedOver = false;
    try {
      handedOver = await this.serve(req, res, file, file.fd);
    } finally {
      if (!handedOver) closeSync(file.fd);
    }
  }

  /**
   * Reads an opened file whole (asynchronously: a large one must not stall the other
   * requests) and keeps it when it did not change while being read. The caller closes
   * the descriptor. Concurrent misses of one version share one read.
   */
  private load(file: OpenedFile): Promise<CachedFile> {
    const key = loadKey(file);
    const pending = this.loading.get(key);
    if (pending) return pending;
    this.loadingBytes += file.size;
    const loaded = readWhole(file.fd, file.size).then(async (body) => {
      // Changed while being read (rewritten in place): serve what was read, keep nothing.
      const after = await fstatAsync(file.fd);
      const entry = cachedFile(file, body);
      if (
        after.ino === file.ino &&
        after.size === file.size &&
        after.mtimeMs === file.mtimeMs &&
        after.ctimeMs === file.ctimeMs
      ) {
        this.remember(entry);
      }
      return entry;
    });
    this.loading.set(key, loaded);
    const done = () => {
      this.loading.delete(key);
      this.loadingBytes -= file.size;
    };
    loaded.then(done, done);
    return loaded;
  }

  private forget(real: string): void {
    const old = this.cache.get(real);
    if (!old) return;
    this.cache.delete(real);
    this.cacheBytes -= old.body.length;
  }

  private remember(entry: CachedFile): void {
    this.forget(entry.path);
    if (entry.body.length > this.cacheLimit) return;
    // Evict the least recently used until the new one fits.
    for (const [path] of this.cache) {
      if (this.cacheBytes + entry.body.length <= this.cacheLimit) break;
      this.forget(path);
    }
    this.cache.set(entry.path, entry);
    this.cacheBytes += entry.body.length;
  }

  /** What the memory cache holds (for tests and metrics). */
  cacheStats(): { readonly files: number; readonly bytes: number; readonly limit: number } {
    return { files: this.cache.size, bytes: this.cacheBytes, limit: this.cacheLimit };
  }

  /**
   * Answers with a file's contents: `body` (the whole file in memory) or an open
   * descriptor to stream from. Resolves true when the descriptor now belongs to a stream.
   */
  private serve(req: IncomingMessage, res: ServerResponse, file: CachedFile, body: Buffer): false;
  private serve(req: IncomingMessage, res: ServerResponse, file: FileInfo, fd: number): Promise<boolean>;
  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    file: FileInfo & Partial<CachedFile>,
    source: Buffer | number,
  ): false | Promise<boolean> {
    const h = req.headers;
    // The common case (a whole file from memory, no conditions): precomputed headers.
    if (
      file.fullHeaders !== undefined &&
      typeof source !== 'number' &&
      req.method === 'GET' &&
      h.range === undefined &&
      h['if-none-match'] === undefined &&
      h['if-modified-since'] === undefined
    ) {
      this.count(200);
      res.writeHead(200, file.fullHeaders);
      this.sendBody(res, source);
      return false;
    }
    const { seconds, etag, lastModified, contentType } =
      file.etag !== undefined ? (file as CachedFile) : validators(file);
    const headers: Record<string, string | number> = {
      'Content-Type': contentType,
      'Last-Modified': lastModified,
      ETag: etag,
      'Accept-Ranges': 'bytes',
    };

    const inm = h['if-none-match'];
    const ims = h['if-modified-since'];
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
      this.sendBody(res, range ? source.subarray(start, end + 1) : source);
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

  /** Sends a body from memory; its bytes count once the response is done. */
  private sendBody(res: ServerResponse, body: Buffer): void {
    if (body.length <= 64 * 1024) {
      // Small: it goes out in one write, almost always at once.
      this.counters.bytesSent += body.length;
      res.end(body);
      return;
    }
    res.once('finish', () => {
      this.counters.bytesSent += body.length;
    });
    res.end(body);
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
