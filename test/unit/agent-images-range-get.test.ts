/**
 * The image download's lean HTTP/1.1 receive path: the response parser
 * (agent/images/http-response.ts) on its own, then the client (agent/images/range-get.ts)
 * against a raw TCP peer that sends what a node:http server never would (heads split
 * byte by byte, 1xx before the answer, bad syntax, early closes, extra bytes, chunked
 * error bodies), and over TLS. Synchronised on events (connections, closes), no sleeps.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, getCACertificates, setDefaultCACertificates } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { downloadFile } from '../../agent/images/download.ts';
import { DownloadError, HttpStatusError } from '../../agent/images/errors.ts';
import {
  decodeChunked,
  HeadReader,
  HttpProtocolError,
  MAX_HEAD,
  parseContentRange,
  parseHead,
} from '../../agent/images/http-response.ts';
import { partialFile } from '../../agent/images/paths.ts';
import { HttpClient } from '../../agent/images/range-get.ts';
import { selfSignedCert } from '../support/tls.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('response head parser', () => {
  it('reads the status, the fields (repeated ones joined) and how the body is framed', () => {
    const head = parseHead(
      'HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nX-A: 1\r\nx-a: 2\r\nContent-Range: bytes 0-9/20',
    );
    expect(head).toMatchObject({
      status: 206,
      minor: 1,
      framing: { kind: 'length', length: 10 },
      keepAlive: true,
    });
    expect(head.headers.get('x-a')).toBe('1, 2');
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5').framing).toEqual({
      kind: 'length',
      length: 5,
    });
    expect(parseHead('HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked').framing).toEqual({
      kind: 'chunked',
    });
    expect(parseHead('HTTP/1.1 200 OK').framing).toEqual({ kind: 'close' });
    expect(parseHead('HTTP/1.1 200 OK').keepAlive).toBe(false);
    expect(parseHead('HTTP/1.1 204 No Content').framing).toEqual({ kind: 'none' });
    expect(parseHead('HTTP/1.1 200 \r\nContent-Length: 0').status).toBe(200); // empty reason
    expect(parseHead('HTTP/1.1 200\r\nContent-Length: 0').status).toBe(200); // no reason
    expect(parseHead('HTTP/1.0 200 OK\r\nContent-Length: 1').keepAlive).toBe(false);
    expect(parseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close').keepAlive).toBe(false);
  });

  it.each([
    ['HTTP/2 200 OK', /bad status line/],
    ['HTTP/1.1 20 OK', /bad status line/],
    ['ICY 200 OK', /bad status line/],
    ['HTTP/1.1 200 OK\r\n folded: value', /obsolete line folding/],
    ['HTTP/1.1 200 OK\r\nBad Header: x', /bad header line/],
    ['HTTP/1.1 200 OK\r\nno colon here', /bad header line/],
    ['HTTP/1.1 200 OK\r\nX: a\u0000b', /bad character/],
    ['HTTP/1.1 200 OK\r\nX: a\nb', /bare CR or LF/],
    ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\nContent-Length: -1', /bad Content-Length/],
    ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked', /unsupported Transfer-Encoding/],
  ])('refuses %j', (text, message) => {
    expect(() => parseHead(text)).toThrow(HttpProtocolError);
    expect(() => parseHead(text)).toThrow(message);
  });

  it('finds the end of a head split at any byte, and where the body begins', () => {
    const wire = Buffer.from('HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n\r\nbody');
    for (let split = 0; split <= wire.length; split++) {
      const reader = new HeadReader();
      const first = reader.push(wire, 0, split);
      const end = first === -1 ? reader.push(wire, split, wire.length) : first;
      expect(end).toBe(wire.length - 4);
      expect(parseHead(reader.take()).framing).toEqual({ kind: 'length', length: 4 });
    }
  });

  it('refuses a head longer than MAX_HEAD', () => {
    const reader = new HeadReader();
    const line = Buffer.from(`X-Filler: ${'a'.repeat(1000)}\r\n`);
    expect(() => {
      for (let i = 0; i <= MAX_HEAD / line.length + 1; i++) reader.push(line, 0, line.length);
    }).toThrow(/longer than/);
  });

  it('parses Content-Range, refusing ranges that cannot be', () => {
    expect(parseContentRange('bytes 0-9/20')).toEqual({ first: 0, last: 9, total: 20 });
    expect(parseContentRange('bytes 5-9/*')).toEqual({ first: 5, last: 9, total: undefined });
    expect(parseContentRange('bytes 9-5/20')).toBeUndefined();
    expect(parseContentRange('bytes 0-20/20')).toBeUndefined();
    expect(parseContentRange('bytes */20')).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
  });

  it('decodes a chunked body once complete (extensions and trailers ignored)', () => {
    const wire = Buffer.from('5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n');
    expect(decodeChunked(wire)?.toString()).toBe('hello world');
    for (let cut = 0; cut < wire.length; cut++) expect(decodeChunked(wire.subarray(0, cut))).toBeUndefined();
    expect(() => decodeChunked(Buffer.from('zz\r\n'))).toThrow(/bad chunk size/);
    expect(() => decodeChunked(Buffer.from('2\r\nabc\r\n'))).toThrow(/not followed by CRLF/);
  });
});

/** A TCP peer that reads request heads and lets each test answer them as it likes. */
class RawPeer {
  readonly sockets: Socket[] = [];
  readonly requests: Array<{ head: string; connection: number }> = [];
  url = '';
  answer: (socket: Socket, head: string, n: number) => void = () => {};
  readonly #server: Server;
  #connected: Array<() => void> = [];

  constructor(server?: Server) {
    this.#server = server ?? createNetServer();
    this.#server.on(server ? 'secureConnection' : 'connection', (socket: Socket) => this.#accept(socket));
  }

  async start(scheme = 'http'): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `${scheme}://127.0.0.1:${(this.#server.address() as AddressInfo).port}/bucket/key?X-Amz-Signature=s`;
    cleanups.push(() => this.close());
    return this;
  }

  /** Resolves when the peer's connection `n` has closed. */
  closed(n: number): Promise<void> {
    const socket = this.sockets[n];
    if (!socket) throw new Error(`no connection ${n}`);
    if (socket.closed) return Promise.resolve();
    return new Promise((resolve) => socket.once('close', () => resolve()));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    const connection = this.sockets.length;
    this.sockets.push(socket);
    for (const resolve of this.#connected.splice(0)) resolve();
    let pending = '';
    socket.on('error', () => {});
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end !== -1; end = pending.indexOf('\r\n\r\n')) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        this.requests.push({ head, connection });
        this.answer(socket, head, this.requests.length - 1);
      }
    });
  }
}

const never = new AbortController().signal;

/** Reads a body whole through the client. */
async function bodyOf(
  client: HttpClient,
  url: string,
  signal = never,
): Promise<{ status: number; body: Buffer }> {
  const res = await client.get(url, { Range: 'bytes=0-' }, signal);
  const parts: Buffer[] = [];
  await res.body((buffer, start, end) => parts.push(Buffer.from(buffer.subarray(start, end))), signal);
  return { status: res.head.status, body: Buffer.concat(parts) };
}

function newClient(options: { ca?: string } = {}): HttpClient {
  const client = new HttpClient(options);
  cleanups.push(() => client.close());
  return client;
}

describe('HttpClient against a raw peer', () => {
  it('takes a head and body sent a byte at a time; sends Host and the given fields', async () => {
    const peer = await new RawPeer().start();
    const body = randomBytes(300);
    peer.answer = (socket) => {
      const wire = Buffer.concat([
        Buffer.from(
          `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nContent-Range: bytes 0-299/300\r\n\r\n`,
        ),
        body,
      ]);
      for (let i = 0; i < wire.length; i++) socket.write(wire.subarray(i, i + 1));
    };
    const got = await bodyOf(newClient(), peer.url);
    expect(got.status).toBe(206);
    expect(got.body.equals(body)).toBe(true);
    const head = peer.requests[0]!.head;
    expect(head.split('\r\n')[0]).toBe('GET /bucket/key?X-Amz-Signature=s HTTP/1.1');
    expect(head).toContain(`\r\nHost: ${new URL(peer.url).host}`);
    expect(head).toContain('\r\nRange: bytes=0-');
  });

  it('keeps the connection alive between GETs', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket, _head, n) => socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${n}${n}`);
    const client = newClient();
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('00');
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('11');
    expect(peer.sockets).toHaveLength(1);
    expect(client.open).toBe(1);
  });

  it('a kept-alive connection the server closed is replaced: the next GET still succeeds', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket, _head, n) => {
      // The body says which connection answered.
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${peer.requests[n]!.connection}`);
      if (n === 0) socket.end(); // its idle timeout, say
    };
    const client = newClient();
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('0');
    // Whether the client saw the close before or after sending on that connection.
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('1');
    expect(peer.sockets).toHaveLength(2);
  });

  it('skips 1xx interim responses', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) =>
      socket.write(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\n\r\nabc',
      );
    expect((await bodyOf(newClient(), peer.url)).body.toString()).toBe('abc');
  });

  it.each([
    ['101 Switching Protocols', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n', /101/],
    ['bad header syntax', 'HTTP/1.1 206 Partial Content\r\nContent Length: 3\r\n\r\nabc', /bad header line/],
    ['a garbage status line', 'SSH-2.0-OpenSSH_9.6\r\n\r\n', /bad status line/],
    ['an unknown transfer coding', 'HTTP/1.1 206 OK\r\nTransfer-Encoding: br\r\n\r\n', /Transfer-Encoding/],
  ])('refuses %s with HttpProtocolError', async (_what, wire, message) => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) => socket.write(wire);
    const error = await bodyOf(newClient(), peer.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpProtocolError);
    expect((error as Error).message).toMatch(message);
  });

  it('a body cut short fails with how much of it came', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) => socket.end('HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n12345');
    const error = await bodyOf(newClient(), peer.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as Error).message).toMatch(/connection closed after 5 of 10 body bytes/);
  });

  it('a connection closed before any response fails clearly', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) => socket.end();
    const error = await bodyOf(newClient(), peer.url).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/closed the connection without a response/);
  });

  it('a body without Content-Length ends with the connection', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) => socket.end('HTTP/1.1 206 Partial Content\r\n\r\nuntil the end');
    const client = newClient();
    const res = await client.get(peer.url, {}, never);
    expect(res.head.framing).toEqual({ kind: 'close' });
    const parts: string[] = [];
    await res.body((b, s, e) => parts.push(b.toString('latin1', s, e)), never);
    expect(parts.join('')).toBe('until the end');
  });

  it('bytes after a body: the body as framed, and the connection is not used again', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket, _head, n) =>
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab${n}EXTRA`);
    const client = newClient();
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('ab0');
    await peer.closed(0); // the client dropped it, whether EXTRA came with the body or after
    expect((await bodyOf(client, peer.url)).body.toString()).toBe('ab1');
    expect(peer.requests.map((r) => r.connection)).toEqual([0, 1]);
  });

  it('reads a chunked error body as text', async () => {
    const peer = await new RawPeer().start();
    const xml = '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>';
    peer.answer = (socket) =>
      socket.write(
        `HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n${xml.slice(0, 16)}\r\n${(xml.length - 16).toString(16)}\r\n${xml.slice(16)}\r\n0\r\n\r\n`,
      );
    const res = await newClient().get(peer.url, {}, never);
    expect(res.head.status).toBe(403);
    expect(await res.text(never)).toBe(xml);
  });

  it('the signal destroys the exchange: the body rejects with its reason', async () => {
    const peer = await new RawPeer().start();
    peer.answer = (socket) => socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\nsome');
    const abort = new AbortController();
    const res = await newClient().get(peer.url, {}, abort.signal);
    const reason = new Error('stopped');
    const body = res.body(() => abort.abort(reason), abort.signal);
    await expect(body).rejects.toBe(reason);
    await peer.closed(0);
  });

  it('pause() holds the body back until resume()', async () => {
    const peer = await new RawPeer().start();
    const data = randomBytes(4 * 1024 * 1024);
    peer.answer = (socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${data.length}\r\n\r\n`);
      socket.write(data);
    };
    const res = await newClient({}).get(peer.url, {}, never);
    const parts: Buffer[] = [];
    let paused = false;
    await res.body((buffer, start, end) => {
      expect(paused).toBe(false); // nothing delivered while paused
      parts.push(Buffer.from(buffer.subarray(start, end)));
      paused = true;
      res.pause();
      setImmediate(() => {
        paused = false;
        res.resume();
      });
    }, never);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
  });
});

describe('HttpClient over TLS', () => {
  async function tlsPeer(data: Buffer) {
    const dir = mkdtempSync(join(tmpdir(), 'metalplane-range-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    selfSignedCert(dir, 'IP:127.0.0.1');
    const cert = readFileSync(join(dir, 'tls.crt'), 'utf8');
    const server = createTlsServer({ key: readFileSync(join(dir, 'tls.key')), cert });
    const peer = await new RawPeer(server).start('https');
    peer.answer = (socket) => {
      socket.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${data.length}\r\n\r\n`);
      socket.write(data);
    };
    return { peer, cert };
  }

  it('receives a body over https (its CA trusted), with pauses, on one kept-alive connection', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const { peer, cert } = await tlsPeer(data);
    const client = newClient({ ca: cert });
    for (let round = 0; round < 2; round++) {
      const res = await client.get(peer.url, {}, never);
      const parts: Buffer[] = [];
      await res.body((buffer, start, end) => {
        parts.push(Buffer.from(buffer.subarray(start, end)));
        res.pause();
        setImmediate(() => res.resume());
      }, never);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    }
    expect(peer.sockets).toHaveLength(1);
  });

  it('refuses a certificate it does not trust', async () => {
    const { peer } = await tlsPeer(Buffer.from('x'));
    const error = await newClient()
      .get(peer.url, {}, never)
      .catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });
});

describe('downloadFile: hostile answers to its ranged GETs', () => {
  const PART = 64 * 1024;
  const size = 2 * PART;
  const options = { partSize: PART, concurrency: 2, retryDelayMs: 1 };

  /** A raw peer serving `data` by range; `hostile` may answer a request itself (true). */
  async function setup(
    hostile: (socket: Socket, range: { first: number; last: number }, n: number) => boolean,
  ) {
    const data = randomBytes(size);
    const peer = await new RawPeer().start();
    peer.answer = (socket, head, n) => {
      const m = /\r\nRange: bytes=(\d+)-(\d+)/i.exec(head);
      const range = { first: Number(m?.[1] ?? 0), last: Number(m?.[2] ?? size - 1) };
      if (hostile(socket, range, n)) return;
      const body = data.subarray(range.first, range.last + 1);
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nContent-Range: bytes ${range.first}-${range.last}/${size}\r\nETag: "e"\r\n\r\n`,
      );
      socket.write(body);
    };
    const root = mkdtempSync(join(tmpdir(), 'metalplane-hostile-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const uuid = randomUUID();
    mkdirSync(join(root, uuid));
    const sha256 = createHash('sha256').update(data).digest('hex');
    const spec = { root, uuid, role: 'iso' as const, size, sha256, url: peer.url };
    const partial = partialFile(root, uuid, 'iso');
    return { data, peer, spec, target: join(root, uuid, 'iso'), partial };
  }
  const lastPart = (range: { first: number }) => range.first >= PART;
  const rangesAsked = (peer: RawPeer) => peer.requests.map((r) => /Range: (\S+)/.exec(r.head)?.[1]);

  it('a wrong Content-Range is refused, retried, and fails clearly; nothing in place', async () => {
    const { peer, spec, target, partial } = await setup((socket, range) => {
      if (!lastPart(range)) return false;
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${PART}\r\nContent-Range: bytes ${range.first - 1}-${range.last - 1}/${size}\r\n\r\n`,
      );
      socket.write(Buffer.alloc(PART, 0x58));
      return true;
    });
    const error = await downloadFile(spec, { ...options, partAttempts: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpProtocolError);
    expect((error as Error).message).toMatch(
      /unexpected Content-Range "bytes 65535-131070\/131072" for bytes 65536-131071/,
    );
    expect(rangesAsked(peer).filter((r) => r === `bytes=${PART}-${size - 1}`)).toHaveLength(2);
    expect(existsSync(target)).toBe(false);
    // Not one byte of that body written (the data is random: no run of 64 'X's by chance).
    expect(readFileSync(partial).includes(Buffer.alloc(64, 0x58))).toBe(false);
  });

  it('more bytes than the range asked for (a body ended by the close) fails without writing past the part', async () => {
    const { spec, target, partial } = await setup((socket, range) => {
      if (!lastPart(range)) return false;
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${range.first}-${range.last}/${size}\r\n\r\n`,
      );
      socket.end(Buffer.alloc(PART + 4096, 0x58));
      return true;
    });
    const error = await downloadFile(spec, { ...options, partAttempts: 1 }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/more bytes than asked for/);
    expect(existsSync(target)).toBe(false);
    expect(statSync(partial).size).toBeLessThanOrEqual(size);
  });

  it.each([
    ['a chunked 206', 'Transfer-Encoding: chunked\r\n', /chunked 206/],
    ['a Content-Length other than the range', `Content-Length: ${PART + 1}\r\n`, /Content-Length 65537/],
  ])('%s is refused with a clear error', async (_what, field, message) => {
    const { spec, target } = await setup((socket, range) => {
      socket.write(
        `HTTP/1.1 206 Partial Content\r\n${field}Content-Range: bytes ${range.first}-${range.last}/${size}\r\n\r\n`,
      );
      return true;
    });
    const error = await downloadFile(spec, { ...options, partAttempts: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpProtocolError);
    expect((error as Error).message).toMatch(message);
    expect(existsSync(target)).toBe(false);
  });

  it('a body cut short, a 503 and a bad head are retried: the file lands whole', async () => {
    const trouble = ['cut', '503', 'garbage'];
    const { data, peer, spec, target } = await setup((socket, range) => {
      if (!lastPart(range)) return false;
      const next = trouble.shift();
      if (next === 'cut') {
        socket.write(
          `HTTP/1.1 206 Partial Content\r\nContent-Length: ${PART}\r\nContent-Range: bytes ${range.first}-${range.last}/${size}\r\n\r\n`,
        );
        socket.end(data.subarray(range.first, range.first + 1000));
      } else if (next === '503') {
        socket.write(
          'HTTP/1.1 503 Slow Down\r\nContent-Length: 35\r\n\r\n<Error><Code>SlowDown</Code></Error>',
        );
      } else if (next === 'garbage') {
        socket.end('HTTP/1.1 206 Partial Content\r\nContent-Range bytes\r\n\r\n');
      } else return false;
      return true;
    });
    await downloadFile(spec, { ...options, partAttempts: 4 });
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(rangesAsked(peer).filter((r) => r?.endsWith(`-${size - 1}`))).toHaveLength(4);
  });

  it('a redirect is not followed: HttpStatusError, not retried', async () => {
    const { peer, spec, target } = await setup((socket) => {
      socket.write(
        'HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n',
      );
      return true;
    });
    const error = await downloadFile(spec, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect((error as HttpStatusError).status).toBe(301);
    expect(peer.requests.length).toBeLessThanOrEqual(2); // the first wave, none retried
    expect(existsSync(target)).toBe(false);
  });

  it('an interim 100 before the 206 is skipped', async () => {
    const { data, spec, target } = await setup((socket) => {
      socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      return false; // then the real answer
    });
    await downloadFile(spec, options);
    expect(readFileSync(target).equals(data)).toBe(true);
  });
});

describe('downloadFile over https', () => {
  it('fetches the parts over TLS (the peer trusted through the default CA store): right bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metalplane-range-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    selfSignedCert(dir, 'IP:127.0.0.1');
    const cert = readFileSync(join(dir, 'tls.crt'), 'utf8');
    const defaults = getCACertificates('default');
    setDefaultCACertificates([...defaults, cert]);
    cleanups.push(() => setDefaultCACertificates(defaults));
    const PART = 512 * 1024; // two staging buffers a part: writes and pauses on every part
    const data = randomBytes(4 * PART + 99);
    const peer = await new RawPeer(createTlsServer({ key: readFileSync(join(dir, 'tls.key')), cert })).start(
      'https',
    );
    peer.answer = (socket, head) => {
      const m = /\r\nRange: bytes=(\d+)-(\d+)/i.exec(head)!;
      const [first, last] = [Number(m[1]), Number(m[2])];
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${last - first + 1}\r\nContent-Range: bytes ${first}-${last}/${data.length}\r\n\r\n`,
      );
      socket.write(data.subarray(first, last + 1));
    };
    const root = mkdtempSync(join(tmpdir(), 'metalplane-https-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const uuid = randomUUID();
    mkdirSync(join(root, uuid));
    const sha256 = createHash('sha256').update(data).digest('hex');
    const result = await downloadFile(
      { root, uuid, role: 'iso', size: data.length, sha256, url: peer.url },
      { partSize: PART, concurrency: 2 },
    );
    expect(readFileSync(join(root, uuid, 'iso')).equals(data)).toBe(true);
    expect(result.transferred).toBe(data.length);
    expect(peer.requests).toHaveLength(5);
    expect(peer.sockets.length).toBeLessThanOrEqual(2); // kept alive across parts
  });
});
