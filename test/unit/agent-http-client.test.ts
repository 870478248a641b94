/** agent/http-client.ts against real node:http / node:https servers on loopback. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  HttpBodyTooLargeError,
  HttpClient,
  HttpTimeoutError,
  httpClient,
  parseJsonBody,
} from '../../agent/http-client.ts';
import { AGENT_VERSION } from '../../agent/version.ts';
import { selfSignedCert } from '../support/tls.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A server on 127.0.0.1 that counts its connections and hands each request, its body read, to `handler`. */
async function serve(handler: Handler, make: () => Server = () => createServer()) {
  const server = make();
  const sockets = new Set<Socket>();
  let connections = 0;
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: Socket) => sockets.add(socket));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const servers: { close(): Promise<void> }[] = [];
const clients: HttpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) await server.close();
});

async function start(handler: Handler) {
  const server = await serve(handler);
  servers.push(server);
  return { server, url: `http://127.0.0.1:${server.port}` };
}

function client(options: ConstructorParameters<typeof HttpClient>[0] = {}): HttpClient {
  const c = new HttpClient(options);
  clients.push(c);
  return c;
}

describe('HttpClient over http', () => {
  it('GETs an answer: status, headers (lower-case), body; JSON parsed by parseJsonBody', async () => {
    const { url } = await start((req, res) => {
      res.setHeader('Date', 'Sat, 05 Dec 2026 02:00:00 GMT');
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ path: req.url, ua: req.headers['user-agent'], accept: req.headers.accept }));
    });
    const res = await client().request(`${url}/v1/x?wait=1`, { headers: { Accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(res.ok).toBe(true);
    expect(res.headers.date).toBe('Sat, 05 Dec 2026 02:00:00 GMT');
    expect(parseJsonBody(res)).toEqual({
      path: '/v1/x?wait=1',
      ua: `metalplane-agent/${AGENT_VERSION}`,
      accept: 'application/json',
    });
  });

  it('POSTs a text or JSON body with its length; a given User-Agent replaces the default', async () => {
    const seen: Record<string, unknown>[] = [];
    const { url } = await start((req, res, body) => {
      seen.push({
        method: req.method,
        type: req.headers['content-type'],
        length: req.headers['content-length'],
        ua: req.headers['user-agent'],
        body,
      });
      res.statusCode = 204;
      res.end();
    });
    const c = client();
    const text = await c.request(url, {
      method: 'POST',
      body: 'héllo',
      headers: { 'Content-Type': 'text/plain', 'user-agent': 'other/1' },
    });
    expect(text.status).toBe(204);
    expect(parseJsonBody(text)).toBeNull();
    await c.request(url, { method: 'POST', json: { a: 1 } });
    expect(seen).toEqual([
      { method: 'POST', type: 'text/plain', length: '6', ua: 'other/1', body: 'héllo' },
      {
        method: 'POST',
        type: 'application/json',
        length: '7',
        ua: `metalplane-agent/${AGENT_VERSION}`,
        body: '{"a":1}',
      },
    ]);
  });

  it('a bad status is an answer, not an error: the caller reads status and body', async () => {
    const { url } = await start((_req, res) => {
      res.statusCode = 503;
      res.end('unwell');
    });
    const res = await client().request(url);
    expect(res).toMatchObject({ status: 503, ok: false, text: 'unwell' });
  });

  it('refuses a body over the cap, whether its length is announced or not', async () => {
    const { url } = await start((req, res) => {
      if (req.url === '/announced') res.setHeader('Content-Length', '2048');
      // Chunked when no length is set: 2 KiB in 256-byte writes.
      for (let i = 0; i < 8; i++) res.write('x'.repeat(256));
      res.end();
    });
    const c = client();
    for (const path of ['/announced', '/chunked']) {
      const error = await c.request(`${url}${path}`, { maxBodyBytes: 1024 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpBodyTooLargeError);
      expect((error as HttpBodyTooLargeError).limit).toBe(1024);
      expect((error as Error).message).toContain('larger than 1024 bytes');
    }
    expect((await c.request(`${url}/chunked`, { maxBodyBytes: 2048 })).text).toHaveLength(2048);
  });

  it('times out a server that does not answer (TimeoutError), and closes that connection', async () => {
    let closed: Promise<void> | undefined;
    const { url } = await start((req) => {
      closed = new Promise((resolve) => req.socket.once('close', () => resolve()));
    });
    const error = await client()
      .request(`${url}/slow`, { timeoutMs: 50 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as Error).name).toBe('TimeoutError');
    expect((error as Error).message).toContain('/slow');
    await closed;
  });

  it('waits out an answer slower than the idle-connection timeout (a long poll)', async () => {
    const { url } = await start((_req, res) => {
      setTimeout(() => res.end('late'), 300);
    });
    expect((await client({ idleTimeoutMs: 50 }).request(url, { timeoutMs: 30_000 })).text).toBe('late');
  });

  it('an aborted signal rejects with its reason, before or during the exchange', async () => {
    let answered: (() => void) | undefined;
    const waiting = new Promise<void>((resolve) => {
      answered = resolve;
    });
    const { url } = await start(() => answered?.());
    const c = client();
    const before = new AbortController();
    before.abort(new Error('stopped before'));
    await expect(c.request(url, { signal: before.signal })).rejects.toThrow('stopped before');
    const during = new AbortController();
    const pending = c.request(url, { signal: during.signal });
    await waiting;
    during.abort(new Error('stopped during'));
    await expect(pending).rejects.toThrow('stopped during');
  });

  it('a connection reset before or during the answer rejects with a network error', async () => {
    const { url } = await start((req, res) => {
      if (req.url === '/mid') {
        res.setHeader('Content-Length', '100');
        res.write('partial', () => req.socket.destroy());
      } else req.socket.destroy();
    });
    const c = client();
    await expect(c.request(`${url}/now`)).rejects.toMatchObject({ code: 'ECONNRESET' });
    await expect(c.request(`${url}/mid`)).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('refused connection: Node’s error and code', async () => {
    const { server, url } = await start(() => undefined);
    await server.close();
    servers.length = 0;
    await expect(client().request(url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('reuses a kept-alive connection for the next request', async () => {
    const { server, url } = await start((_req, res) => res.end('ok'));
    const c = client();
    for (let i = 0; i < 3; i++) expect((await c.request(url)).text).toBe('ok');
    await c.request(url, { method: 'POST', json: {} });
    expect(server.connections).toBe(1);
  });

  it('a GET on a kept-alive connection the server dropped goes again on a new one; a POST does not', async () => {
    const perSocket = new Map<Socket, number>();
    const { server, url } = await start((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      // The second request on a connection: the server closes it without an answer.
      if (n === 2) req.socket.destroy();
      else res.end(`answer ${req.method}`);
    });
    const c = client();
    await c.request(url);
    expect((await c.request(url)).text).toBe('answer GET');
    expect(server.connections).toBe(2);
    // The second request on connection 2: dropped, and not sent again.
    await expect(c.request(url, { method: 'POST' })).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(server.connections).toBe(2);
  });

  it('refuses URLs other than http: and https:', async () => {
    await expect(httpClient.request('ftp://127.0.0.1/')).rejects.toThrow('ftp: URLs are not supported');
  });
});

describe('HttpClient over https', () => {
  let dir: string;
  let cert: string;
  let url: string;
  let close: () => Promise<void>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metalplane-http-client-'));
    selfSignedCert(dir, 'IP:127.0.0.1');
    cert = readFileSync(join(dir, 'tls.crt'), 'utf8');
    const key = readFileSync(join(dir, 'tls.key'), 'utf8');
    const server = await serve(
      (_req, res) => res.end('secure'),
      () => createHttpsServer({ cert, key }),
    );
    url = `https://127.0.0.1:${server.port}`;
    close = server.close;
  });
  afterAll(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies the certificate as Node does: an untrusted one is refused', async () => {
    const error = (await httpClient.request(url).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
  });

  it('answers over https when the certificate is trusted', async () => {
    expect((await client({ ca: cert }).request(url)).text).toBe('secure');
  });
});
