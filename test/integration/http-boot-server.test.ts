/**
 * The agent's HTTP boot server against curl, fetch and raw sockets (for request targets
 * that clients would normalize away).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpBootServer, parseRange } from '../../agent/boot/http-server.ts';
import { type BootTree, makeBootTree, waitFor } from '../support/boot-tree.ts';

const run = promisify(execFile);

let tree: BootTree;
let server: HttpBootServer;
const base = () => `http://127.0.0.1:${server.port}`;

beforeAll(async () => {
  tree = makeBootTree();
  server = await HttpBootServer.start({
    root: tree.root,
    port: 0,
    extraRoutes: (req, res) => {
      if (req.method !== 'POST' || !req.url?.startsWith('/v1/callback/')) return false;
      res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"relayed":true}');
      return true;
    },
  });
});
afterAll(async () => {
  await server?.close();
  tree?.remove();
});

/** A request with the exact target given (node:http does not normalize `..` or `%2e`). */
function rawGet(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('HTTP boot server: files', () => {
  it('GETs a kernel byte-exact with length and validators', async () => {
    const res = await fetch(`${base()}/vmlinuz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(tree.files.kernel.length));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(res.headers.get('last-modified')).toMatch(/GMT$/);
    expect(Buffer.from(await res.arrayBuffer()).equals(tree.files.kernel)).toBe(true);
    const small = await fetch(`${base()}/sub/file.bin?cache=bust`);
    expect(Buffer.from(await small.arrayBuffer())).toEqual(tree.files.hello);
  });

  it('downloads with curl, and curl -I (HEAD) gets the headers without a body', async () => {
    const out = join(tree.dir, 'curl-kernel');
    await run('curl', ['-fsS', '-o', out, `${base()}/vmlinuz`]);
    expect(readFileSync(out).equals(tree.files.kernel)).toBe(true);
    const { stdout } = await run('curl', ['-fsSI', `${base()}/vmlinuz`]);
    expect(stdout).toMatch(/^HTTP\/1\.1 200/);
    expect(stdout).toMatch(new RegExp(`content-length: ${tree.files.kernel.length}`, 'i'));
    const head = await fetch(`${base()}/vmlinuz`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe(String(tree.files.kernel.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
  });

  it('answers single ranges with 206 and exact bytes', async () => {
    const k = tree.files.kernel;
    const mid = await fetch(`${base()}/vmlinuz`, { headers: { Range: 'bytes=1000-1999999' } });
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1000-1999999/${k.length}`);
    expect(mid.headers.get('content-length')).toBe('1999000');
    expect(Buffer.from(await mid.arrayBuffer()).equals(k.subarray(1000, 2_000_000))).toBe(true);

    const suffix = await fetch(`${base()}/vmlinuz`, { headers: { Range: 'bytes=-500' } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe(`bytes ${k.length - 500}-${k.length - 1}/${k.length}`);
    expect(Buffer.from(await suffix.arrayBuffer()).equals(k.subarray(k.length - 500))).toBe(true);

    const open = await fetch(`${base()}/vmlinuz`, { headers: { Range: `bytes=${k.length - 10}-` } });
    expect(open.status).toBe(206);
    expect(Buffer.from(await open.arrayBuffer()).equals(k.subarray(k.length - 10))).toBe(true);

    const past = await fetch(`${base()}/vmlinuz`, { headers: { Range: 'bytes=0-99999999' } });
    expect(past.status).toBe(206);
    expect((await past.arrayBuffer()).byteLength).toBe(k.length);

    const out = join(tree.dir, 'curl-range');
    await run('curl', ['-fsS', '-r', '4096-8191', '-o', out, `${base()}/vmlinuz`]);
    expect(readFileSync(out).equals(k.subarray(4096, 8192))).toBe(true);
  });

  it('answers 416 to an unsatisfiable range, and 200 full to a multi-range', async () => {
    const k = tree.files.kernel;
    const unsat = await fetch(`${base()}/vmlinuz`, { headers: { Range: `bytes=${k.length}-` } });
    expect(unsat.status).toBe(416);
    expect(unsat.headers.get('content-range')).toBe(`bytes */${k.length}`);
    await unsat.arrayBuffer();
    const multi = await fetch(`${base()}/vmlinuz`, { headers: { Range: 'bytes=0-9,20-29' } });
    expect(multi.status).toBe(200);
    expect((await multi.arrayBuffer()).byteLength).toBe(k.length);
    // A stale If-Range gets the whole file.
    const stale = await fetch(`${base()}/vmlinuz`, { headers: { Range: 'bytes=0-9', 'If-Range': '"0-0"' } });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
  });

  it('parses ranges as RFC 9110 says', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=-30', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=-0', 10)).toBe('unsatisfiable');
    expect(parseRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange('bytes=5-2', 10)).toBeUndefined();
    expect(parseRange('items=0-1', 10)).toBeUndefined();
    expect(parseRange('bytes=0-1,3-4', 10)).toBeUndefined();
  });

  it('serves a small file afresh once it is replaced, rewritten or removed (memory cache)', async () => {
    const file = join(tree.root, 'node.ipxe');
    writeFileSync(file, '#!ipxe\nchain first\n');
    expect(await (await fetch(`${base()}/node.ipxe`)).text()).toBe('#!ipxe\nchain first\n');
    expect(await (await fetch(`${base()}/node.ipxe`)).text()).toBe('#!ipxe\nchain first\n');
    // Atomic replacement (temp + rename), as the boot file writer does: a new inode.
    writeFileSync(join(tree.root, '.node.ipxe.tmp'), '#!ipxe\nchain second\n');
    renameSync(join(tree.root, '.node.ipxe.tmp'), file);
    expect(await (await fetch(`${base()}/node.ipxe`)).text()).toBe('#!ipxe\nchain second\n');
    // In place, same size, same inode: ctime/mtime move on.
    await new Promise((resolve) => setTimeout(resolve, 20));
    writeFileSync(file, '#!ipxe\nchain thirds\n');
    expect(await (await fetch(`${base()}/node.ipxe`)).text()).toBe('#!ipxe\nchain thirds\n');
    const range = await fetch(`${base()}/node.ipxe`, { headers: { Range: 'bytes=7-11' } });
    expect(range.status).toBe(206);
    expect(await range.text()).toBe('chain');
    unlinkSync(file);
    const gone = await fetch(`${base()}/node.ipxe`);
    expect(gone.status).toBe(404);
    await gone.arrayBuffer();
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await fetch(`${base()}/hello.txt`);
    await first.arrayBuffer();
    const etag = first.headers.get('etag')!;
    const again = await fetch(`${base()}/hello.txt`, { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
  });

  it('gives the extra routes the first word, and 405 to other methods', async () => {
    const cb = await fetch(`${base()}/v1/callback/abc`, { method: 'POST', body: '{}' });
    expect(cb.status).toBe(202);
    expect(await cb.json()).toEqual({ relayed: true });
    const put = await fetch(`${base()}/hello.txt`, { method: 'PUT', body: 'x' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD');
  });
});

describe('HTTP boot server: path rules', () => {
  const cases: Array<[string, number]> = [
    ['/', 403],
    ['/sub/', 403],
    ['/sub/dir', 403],
    ['/../secret.txt', 403],
    ['/sub/../../secret.txt', 403],
    ['/%2e%2e/secret.txt', 403],
    ['/%2E%2E%2Fsecret.txt', 403],
    ['/sub/%2e%2e/%2e%2e/secret.txt', 403],
    ['/..%2f..%2fsecret.txt', 403],
    ['/%252e%252e/secret.txt', 404],
    ['/hello.txt%00.png', 400],
    ['/%ff', 400],
    ['/%e0%a4%a', 400],
    ['/sub%5cfile.bin', 400],
    ['/escape', 403],
    ['/escape-dir/etc/passwd', 403],
    ['/.hidden', 403],
    ['//etc/passwd', 404],
    ['/no-such-file', 404],
  ];
  for (const [path, status] of cases) {
    it(`answers ${status} to ${path}`, async () => {
      const res = await rawGet(path);
      expect(res.status).toBe(status);
      expect(res.body.toString()).not.toMatch(/SECRET|root:/);
    });
  }

  it('serves a symlink that stays inside the root', async () => {
    const res = await rawGet('/inside');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(tree.files.hello);
  });

  it('answers an absolute-form request target with 400', async () => {
    const res = await rawGet(`http://127.0.0.1:${server.port}/hello.txt`);
    expect(res.status).toBe(400);
  });
});

describe('HTTP boot server: slow clients', () => {
  it('closes a client that never finishes its headers', async () => {
    const slow = await HttpBootServer.start({ root: tree.root, port: 0, headersTimeoutMs: 300 });
    try {
      // Closed by the server's 300 ms headers timeout, or failed after 5 s: seconds of margin.
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(slow.port, '127.0.0.1', () =>
          socket.write('GET /hello.txt HTTP/1.1\r\nHost: x\r\n'),
        );
        let got = '';
        socket.on('data', (d) => {
          got += d.toString();
        });
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
        setTimeout(() => reject(new Error('still open after 5 s')), 5000).unref();
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(await waitFor(() => slow.stats().connections === 0, 2000)).toBe(true);
    } finally {
      await slow.close();
    }
  });

  it('lets go of a client that stops reading a large file', async () => {
    const slow = await HttpBootServer.start({ root: tree.root, port: 0, idleTimeoutMs: 300 });
    const socket = connect(slow.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      // Ask for the kernel many times over (keep-alive pipelining) and never read it:
      // the socket buffers fill up, the server's writes stall, the idle timeout fires.
      socket.pause();
      socket.write('GET /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(8));
      expect(await waitFor(() => slow.stats().connections === 1, 2000)).toBe(true);
      expect(await waitFor(() => slow.stats().connections === 0, 8000)).toBe(true);
    } finally {
      socket.destroy();
      await slow.close();
    }
  }, 15_000);

  it('refuses connections over the cap', async () => {
    const capped = await HttpBootServer.start({ root: tree.root, port: 0, maxConnections: 2 });
    const sockets = [0, 1, 2].map(() => connect(capped.port, '127.0.0.1'));
    try {
      const closed = await new Promise<number>((resolve) => {
        for (const [i, s] of sockets.entries()) s.on('close', () => resolve(i));
        for (const s of sockets) s.on('error', () => {});
        setTimeout(() => resolve(-1), 3000).unref();
      });
      expect(closed).toBe(2);
      expect(capped.stats().connections).toBe(2);
    } finally {
      for (const s of sockets) s.destroy();
      await capped.close();
    }
  });
});

describe('HTTP boot server: memory cache', () => {
  const get = async (port: number, path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  };

  it('serves a cached kernel-sized file afresh after an in-place rewrite of the same size', async () => {
    const cached = await HttpBootServer.start({ root: tree.root, port: 0 });
    try {
      const file = join(tree.root, 'initrd.img');
      const first = randomBytes(1024 * 1024 + 3);
      writeFileSync(file, first);
      expect((await get(cached.port, '/initrd.img')).body).toEqual(first);
      expect((await get(cached.port, '/initrd.img')).body).toEqual(first);
      expect(cached.cacheStats().files).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const second = randomBytes(first.length);
      writeFileSync(file, second); // same inode, same size: mtime/ctime tell
      const after = await get(cached.port, '/initrd.img');
      expect(after.body).toEqual(second);
      const range = await get(cached.port, '/initrd.img', { Range: 'bytes=1000-1999' });
      expect(range.status).toBe(206);
      expect(range.body).toEqual(second.subarray(1000, 2000));
      const etag = after.headers.get('etag') ?? '';
      expect((await get(cached.port, '/initrd.img', { 'If-None-Match': etag })).status).toBe(304);
      unlinkSync(file);
      expect((await get(cached.port, '/initrd.img')).status).toBe(404);
      expect(cached.cacheStats().files).toBe(0);
    } finally {
      await cached.close();
    }
  });

  it('keeps within its byte bound, evicting the least recently used, and streams files over the per-file cap', async () => {
    const bounded = await HttpBootServer.start({
      root: tree.root,
      port: 0,
      cacheBytes: 100 * 1024,
      cacheMaxFileBytes: 40 * 1024,
    });
    try {
      const bodies = [0, 1, 2, 3].map(() => randomBytes(30 * 1024));
      for (const [i, body] of bodies.entries()) writeFileSync(join(tree.root, `c${i}.cfg`), body);
      for (const i of [0, 1, 2]) expect((await get(bounded.port, `/c${i}.cfg`)).body).toEqual(bodies[i]);
      expect(bounded.cacheStats()).toEqual({ files: 3, bytes: 90 * 1024, limit: 100 * 1024 });
      // c0 used again: c1 is now the least recently used, and goes when c3 comes in.
      expect((await get(bounded.port, '/c0.cfg')).body).toEqual(bodies[0]);
      expect((await get(bounded.port, '/c3.cfg')).body).toEqual(bodies[3]);
      expect(bounded.cacheStats()).toEqual({ files: 3, bytes: 90 * 1024, limit: 100 * 1024 });
      for (const i of [0, 1, 2, 3]) expect((await get(bounded.port, `/c${i}.cfg`)).body).toEqual(bodies[i]);
      expect(bounded.cacheStats().bytes).toBeLessThanOrEqual(100 * 1024);
      // Over the per-file cap: streamed from disk (whole and ranges), never kept.
      const kernel = await get(bounded.port, '/vmlinuz');
      expect(kernel.body).toEqual(tree.files.kernel);
      const tail = await get(bounded.port, '/vmlinuz', { Range: 'bytes=-100' });
      expect(tail.status).toBe(206);
      expect(tail.body).toEqual(tree.files.kernel.subarray(tree.files.kernel.length - 100));
      expect(bounded.cacheStats().bytes).toBeLessThanOrEqual(100 * 1024);
      expect(bounded.cacheStats().files).toBe(3);
      // Many first requests at once, of distinct files and of one file: all served whole,
      // the fills in flight within the bound (the rest streamed), the cache within it.
      const more = [0, 1, 2, 3, 4, 5].map(() => randomBytes(35 * 1024));
      for (const [i, body] of more.entries()) writeFileSync(join(tree.root, `m${i}.cfg`), body);
      const paths = [0, 1, 2, 3, 4, 5, 0, 0, 5];
      const got = await Promise.all(paths.map((i) => get(bounded.port, `/m${i}.cfg`)));
      for (const [k, res] of got.entries()) expect(res.body).toEqual(more[paths[k]!]);
      expect(bounded.cacheStats().bytes).toBeLessThanOrEqual(100 * 1024);
    } finally {
      await bounded.close();
    }
  });

  it('keeps nothing with cacheBytes 0, and still serves', async () => {
    const uncached = await HttpBootServer.start({ root: tree.root, port: 0, cacheBytes: 0 });
    try {
      expect((await get(uncached.port, '/hello.txt')).body).toEqual(tree.files.hello);
      expect((await get(uncached.port, '/vmlinuz')).body).toEqual(tree.files.kernel);
      expect(uncached.cacheStats()).toEqual({ files: 0, bytes: 0, limit: 0 });
    } finally {
      await uncached.close();
    }
  });

  it('never serves a cached file once a symlink out of the root replaces it', async () => {
    const file = join(tree.root, 'swapped.ipxe');
    writeFileSync(file, '#!ipxe\nboot\n');
    expect((await get(server.port, '/swapped.ipxe')).status).toBe(200);
    unlinkSync(file);
    symlinkSync('../secret.txt', file);
    const res = await get(server.port, '/swapped.ipxe');
    expect(res.status).toBe(403);
    expect(res.body.toString()).not.toMatch(/SECRET|boot/);
    unlinkSync(file);
  });

  it('lets go of a client that stops reading a streamed (uncached) file', async () => {
    const slow = await HttpBootServer.start({ root: tree.root, port: 0, idleTimeoutMs: 300, cacheBytes: 0 });
    const socket = connect(slow.port, '127.0.0.1');
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      socket.pause();
      socket.write('GET /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(8));
      expect(await waitFor(() => slow.stats().connections === 1, 2000)).toBe(true);
      expect(await waitFor(() => slow.stats().connections === 0, 8000)).toBe(true);
    } finally {
      socket.destroy();
      await slow.close();
    }
  }, 15_000);
});
