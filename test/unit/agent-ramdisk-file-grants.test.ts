/**
 * Files granted to a node's ramdisk (agent/ramdisk/file-grants.ts) on the agent's real
 * HTTP boot server: a granted file streams whole (a multi-MiB one too) with its
 * Content-Length, HEAD answers the headers; unknown, revoked and traversal-looking ids are
 * all the same 404; a revoke cuts a download in progress; a node's grants end with its
 * revokeNode and with its ramdisk session.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpBootServer } from '../../agent/boot/http-server.ts';
import { FILES_PATH, FileGrants } from '../../agent/ramdisk/file-grants.ts';
import { RamdiskSessions } from '../../agent/ramdisk/sessions.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const OTHER = '2ce26c0b-03f2-4d2e-ae87-c02d7f33c124';
const MiB = 1024 * 1024;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function setup(sessions?: RamdiskSessions) {
  const dir = mkdtempSync(join(tmpdir(), 'file-grants-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  // A file in the static root too: a request the grants refuse must not reach it either.
  writeFileSync(join(dir, 'secret'), 'static root file');
  let grants!: FileGrants;
  const http = await HttpBootServer.start({
    root: dir,
    port: 0,
    extraRoutes: (req, res) => grants.route()(req, res),
  });
  cleanups.push(() => http.close());
  const base = `http://127.0.0.1:${http.port}`;
  grants = new FileGrants({ httpBaseUrl: `${base}/`, ...(sessions ? { sessions } : {}) });
  return { dir, base, grants, port: http.port };
}

/** A raw request: the path is sent as it is (fetch would normalize `..`). */
function raw(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('file grants', () => {
  it('streams a granted multi-MiB file whole, answers HEAD, and 404s it once revoked', async () => {
    const s = await setup();
    const data = randomBytes(9 * MiB + 123);
    const file = join(s.dir, 'image.raw.gz');
    writeFileSync(file, data);
    const grant = s.grants.grant(NODE, file);
    expect(grant.url).toMatch(new RegExp(`^${s.base}/ramdisk/v1/files/[A-Za-z0-9_-]{43}$`));

    const got = await fetch(grant.url);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-length')).toBe(String(data.length));
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('cache-control')).toBe('no-store');
    expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(sha256(data));

    const head = await fetch(grant.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(data.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const post = await fetch(grant.url, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');

    const unknown = await fetch(`${s.base}${FILES_PATH}${'A'.repeat(43)}`);
    grant.revoke();
    const revoked = await fetch(grant.url);
    // The same answer for an id that never was and one that was: nothing to tell them apart.
    expect([unknown.status, revoked.status]).toEqual([404, 404]);
    expect(await revoked.text()).toBe(await unknown.text());
    expect(s.grants.size).toBe(0);
  });

  it('never turns a URL into a path: traversal-looking ids are unknown ids', async () => {
    const s = await setup();
    const file = join(s.dir, 'granted');
    writeFileSync(file, 'granted');
    const id = new URL(s.grants.grant(NODE, file).url).pathname.slice(FILES_PATH.length);
    const paths = [
      `${FILES_PATH}../../secret`,
      `${FILES_PATH}..%2f..%2fsecret`,
      `${FILES_PATH}%2e%2e/%2e%2e/secret`,
      `${FILES_PATH}${id}/../secret`,
      `${FILES_PATH}${id}/`,
      `${FILES_PATH}${id}x`,
      `${FILES_PATH}${id}%00`,
      `${FILES_PATH}/${id}`,
      `${FILES_PATH}${file}`,
      FILES_PATH,
    ];
    for (const path of paths) {
      const res = await raw(s.port, path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString()).toBe('not found\n');
    }
    // The id itself, with a query string, is still the grant.
    expect((await raw(s.port, `${FILES_PATH}${id}?x=1`)).body.toString()).toBe('granted');
  });

  it('cuts a download in progress when revoked', async () => {
    const s = await setup();
    const file = join(s.dir, 'big');
    writeFileSync(file, '');
    truncateSync(file, 256 * MiB); // sparse: far more than the socket buffers hold
    const grant = s.grants.grant(NODE, file);
    const outcome = await new Promise<{ received: number; complete: boolean }>((resolve) => {
      let received = 0;
      const req = request(grant.url, (res) => {
        expect(res.headers['content-length']).toBe(String(256 * MiB));
        res.once('data', () => grant.revoke());
        res.on('data', (c: Buffer) => {
          received += c.length;
        });
        res.on('close', () => resolve({ received, complete: res.complete }));
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end();
    });
    expect(outcome.complete).toBe(false);
    expect(outcome.received).toBeLessThan(256 * MiB);
  });

  it("revokeNode ends that node's grants only; a node's session end ends them too", async () => {
    const sessions = new RamdiskSessions({ heartbeatIntervalMs: 1000, sweepIntervalMs: 0 });
    cleanups.push(() => sessions.close());
    const s = await setup(sessions);
    const file = join(s.dir, 'f');
    writeFileSync(file, 'x');
    const mine = [s.grants.grant(NODE, file), s.grants.grant(NODE, file)];
    const theirs = s.grants.grant(OTHER, file);
    s.grants.revokeNode(NODE);
    for (const g of mine) expect((await fetch(g.url)).status).toBe(404);
    expect((await fetch(theirs.url)).status).toBe(200);

    // A ramdisk session, then the node booted again (a new token ends the session).
    const token = sessions.mint(OTHER, 60_000);
    expect(sessions.hello(token, { version: 't', bootMac: null })).toBeDefined();
    const during = s.grants.grant(OTHER, file);
    sessions.mint(OTHER, 60_000);
    expect((await fetch(during.url)).status).toBe(404);
    expect((await fetch(theirs.url)).status).toBe(404);
    expect(s.grants.size).toBe(0);
  });
});
