/**
 * The agent's download of one image file (agent/images/download.ts) against a local HTTP
 * server that serves Range requests and can misbehave on demand: parallel ranged GETs
 * give the right bytes, a failed part is retried, an interrupted download resumes from
 * its recorded parts without fetching them again, a wrong SHA-256 leaves nothing in the
 * served tree, a server that ignores Range still works, and the bandwidth cap holds.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ChecksumError,
  DownloadError,
  downloadFile,
  HttpStatusError,
  partialBytes,
  UrlExpiredError,
} from '../../agent/images/download.ts';
import { partialFile, partialMeta } from '../../agent/images/paths.ts';
import { TokenBucket } from '../../agent/images/throttle.ts';

const KiB = 1024;
const PART = 64 * KiB;

interface Served {
  readonly range: string | undefined;
  readonly status: number;
  bytes: number;
}

/** A file over HTTP with Range support; `behave` may answer a request itself (true). */
class RangeServer {
  readonly requests: Served[] = [];
  url = '';
  ignoreRange = false;
  etag = '"v1"';
  /** Each answer waits this long (so that parallel requests overlap). */
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  behave?: (req: IncomingMessage, res: ServerResponse, n: number) => boolean;
  readonly #server: Server;

  data: Buffer;

  constructor(data: Buffer) {
    this.data = data;
    this.#server = createServer((req, res) => {
      const n = this.requests.length;
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      const ranged = m !== null && !this.ignoreRange;
      const start = ranged ? Number(m[1]) : 0;
      const end = ranged && m[2] ? Math.min(Number(m[2]), this.data.length - 1) : this.data.length - 1;
      const record: Served = { range: req.headers.range, status: ranged ? 206 : 200, bytes: 0 };
      this.requests.push(record);
      if (this.behave?.(req, res, n)) return;
      if (ranged && start >= this.data.length) {
        res.writeHead(416).end();
        return;
      }
      const body = this.data.subarray(start, end + 1);
      record.bytes = body.length;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      res.on('close', () => this.inFlight--);
      setTimeout(() => {
        res.writeHead(ranged ? 206 : 200, {
          'Content-Length': body.length,
          ETag: this.etag,
          ...(ranged ? { 'Content-Range': `bytes ${start}-${end}/${this.data.length}` } : {}),
        });
        res.end(body);
      }, this.delayMs);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/image?X-Amz-Signature=s`;
    return this;
  }

  ranges(): string[] {
    return this.requests.map((r) => r.range ?? '(none)');
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(size: number) {
  const data = randomBytes(size);
  const server = await new RangeServer(data).start();
  cleanups.push(() => server.close());
  const root = mkdtempSync(join(tmpdir(), 'metalplane-download-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const uuid = randomUUID();
  mkdirSync(join(root, uuid));
  const sha256 = createHash('sha256').update(data).digest('hex');
  const spec = { root, uuid, role: 'iso' as const, size, sha256, url: server.url };
  const served = () => readdirSync(join(root, uuid));
  return { data, server, root, uuid, spec, served, target: join(root, uuid, 'iso') };
}

const options = { partSize: PART, concurrency: 4, retryDelayMs: 1 };

describe('ranged download', () => {
  it('fetches the parts in parallel at their offsets: right bytes, verified, renamed into place', async () => {
    const size = 10 * PART + 123;
    const { data, server, spec, served, target } = await setup(size);
    server.delayMs = 20;
    const progress: number[] = [];
    const result = await downloadFile(spec, { ...options, onProgress: (done) => progress.push(done) });
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(served()).toEqual(['iso']); // no partial, no sidecar
    expect(server.requests).toHaveLength(11);
    expect(new Set(server.ranges())).toEqual(
      new Set(
        Array.from({ length: 11 }, (_, i) => `bytes=${i * PART}-${Math.min(size, (i + 1) * PART) - 1}`),
      ),
    );
    expect(server.maxInFlight).toBe(4);
    expect(result).toMatchObject({ transferred: size, resumedFrom: 0 });
    expect(progress.at(-1)).toBe(size);
  });

  it('a file of one part or less takes one GET', async () => {
    const { data, server, spec, target } = await setup(PART);
    await downloadFile(spec, options);
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(server.ranges()).toEqual(['(none)']);
  });

  it('retries a part that fails once (5xx, cut connection), from where its written bytes end', async () => {
    const size = 6 * PART;
    const { data, server, spec, target } = await setup(size);
    const failed = new Set<string>();
    server.behave = (req, res) => {
      const range = req.headers.range ?? '';
      if (range === `bytes=${2 * PART}-${3 * PART - 1}` && !failed.has('5xx')) {
        failed.add('5xx');
        res.writeHead(503).end('<Error><Code>SlowDown</Code></Error>');
        return true;
      }
      if (range === `bytes=${4 * PART}-${5 * PART - 1}` && !failed.has('cut')) {
        failed.add('cut');
        // Headers for the whole part, then half of it, then the connection dies.
        res.writeHead(206, {
          'Content-Length': PART,
          'Content-Range': `bytes ${4 * PART}-${5 * PART - 1}/${size}`,
        });
        res.write(data.subarray(4 * PART, 4 * PART + PART / 2), () => res.destroy());
        return true;
      }
      return false;
    };
    await downloadFile(spec, { ...options, partSize: PART });
    expect(readFileSync(target).equals(data)).toBe(true);
    const ranges = server.ranges();
    expect(ranges.filter((r) => r === `bytes=${2 * PART}-${3 * PART - 1}`)).toHaveLength(2);
    // The cut part is asked for again from a byte within it (what was written is kept),
    // or from its start when nothing of it had been written yet.
    const again = ranges.filter(
      (r) => r !== `bytes=${4 * PART}-${5 * PART - 1}` && r.endsWith(`-${5 * PART - 1}`),
    );
    expect(ranges.length).toBe(8);
    expect(again.length + ranges.filter((r) => r === `bytes=${4 * PART}-${5 * PART - 1}`).length).toBe(2);
  });

  it('gives up on a part after its attempts, keeping the recorded parts for a resume', async () => {
    const size = 6 * PART;
    const { server, spec, root, uuid, served } = await setup(size);
    server.behave = (req, res) => {
      if (req.headers.range === `bytes=${5 * PART}-${6 * PART - 1}`) {
        res.writeHead(500).end();
        return true;
      }
      return false;
    };
    const error = await downloadFile(spec, { ...options, partAttempts: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(server.ranges().filter((r) => r === `bytes=${5 * PART}-${6 * PART - 1}`)).toHaveLength(3);
    expect(served()).not.toContain('iso');
    expect(existsSync(partialMeta(root, uuid, 'iso'))).toBe(true);
    expect(await partialBytes(root, uuid, 'iso')).toBe(5 * PART);
  });

  it('an interrupted download resumes without fetching its completed parts again', async () => {
    const size = 16 * PART;
    const { data, server, spec, root, uuid, target } = await setup(size);
    // The first attempt is aborted once 6 parts have been served.
    const abort = new AbortController();
    server.behave = (_req, res, n) => {
      if (n >= 6) {
        abort.abort(new DownloadError('stopped by the test'));
        res.destroy();
        return true;
      }
      return false;
    };
    const first = await downloadFile(spec, { ...options, signal: abort.signal }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(DownloadError);
    const meta = JSON.parse(readFileSync(partialMeta(root, uuid, 'iso'), 'utf8'));
    expect(meta).toMatchObject({ format: 'parts', part_size: PART, file: { size, sha256: spec.sha256 } });
    const kept = await partialBytes(root, uuid, 'iso');
    expect(kept).toBeGreaterThan(0);
    const done: string[] = [];
    for (const [a, b] of meta.done as Array<[number, number]>)
      for (let i = a; i <= b; i++) done.push(`bytes=${i * PART}-${(i + 1) * PART - 1}`);
    expect(done.length * PART).toBe(kept);

    const before = server.requests.length;
    server.behave = undefined;
    const second = await downloadFile(spec, options);
    expect(readFileSync(target).equals(data)).toBe(true);
    const again = server.ranges().slice(before);
    expect(again).toHaveLength(16 - done.length);
    for (const range of done) expect(again).not.toContain(range);
    expect(second).toMatchObject({ resumedFrom: kept, transferred: size - kept });
    expect(existsSync(partialMeta(root, uuid, 'iso'))).toBe(false);
  });

  it('resumes a partial of the one-GET kind (an older agent) from the parts it holds', async () => {
    const size = 8 * PART;
    const { data, server, spec, root, uuid, target } = await setup(size);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(partialFile(root, uuid, 'iso'), data.subarray(0, 3 * PART + 100));
    writeFileSync(
      partialMeta(root, uuid, 'iso'),
      JSON.stringify({ size, sha256: spec.sha256, etag: server.etag }),
    );
    const result = await downloadFile(spec, options);
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(result.resumedFrom).toBe(3 * PART);
    expect(server.requests).toHaveLength(5);
  });

  it('a wrong SHA-256 is rejected: nothing in the served tree, partial and sidecar removed', async () => {
    const { server, spec, served, target } = await setup(8 * PART);
    const error = await downloadFile({ ...spec, sha256: 'ab'.repeat(32) }, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumError);
    expect((error as Error).message).toMatch(/SHA-256 mismatch/);
    expect(served()).toEqual([]);
    expect(existsSync(target)).toBe(false);
    expect(server.requests).toHaveLength(8);
  });

  it('a corrupted byte in one part is caught (every byte hashed), the good file kept', async () => {
    const { data, server, spec, served, target } = await setup(8 * PART);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(target, 'the previous good file');
    server.data = Buffer.from(data);
    server.data[5 * PART + 17] = data[5 * PART + 17]! ^ 1;
    const error = await downloadFile(spec, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumError);
    expect(served()).toEqual(['iso']);
    expect(readFileSync(target, 'utf8')).toBe('the previous good file');
  });

  it('an object of another size is refused from its Content-Range', async () => {
    const { server, spec, served } = await setup(8 * PART);
    server.data = server.data.subarray(0, 7 * PART);
    const error = await downloadFile(spec, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumError);
    expect((error as Error).message).toMatch(/size mismatch/);
    expect(served()).toEqual([]);
  });

  it('an object that changed (another ETag) between attempts restarts from zero', async () => {
    const size = 8 * PART;
    const { data, server, spec, root, uuid, target } = await setup(size);
    const abort = new AbortController();
    server.behave = (_req, res, n) => {
      if (n >= 6) {
        abort.abort(new DownloadError('stopped'));
        res.destroy();
        return true;
      }
      return false;
    };
    await downloadFile(spec, { ...options, signal: abort.signal }).catch(() => {});
    expect(await partialBytes(root, uuid, 'iso')).toBeGreaterThan(0);
    server.behave = undefined;
    server.etag = '"v2"';
    const before = server.requests.length;
    const error = await downloadFile(spec, options).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/object changed/);
    expect(server.requests.length - before).toBeLessThanOrEqual(4); // not retried part by part
    expect(existsSync(partialFile(root, uuid, 'iso'))).toBe(false);
    const result = await downloadFile(spec, options);
    expect(result.resumedFrom).toBe(0);
    expect(readFileSync(target).equals(data)).toBe(true);
  });

  it('a server that ignores Range (200 with the whole body) is downloaded with one GET', async () => {
    const { data, server, spec, served, target } = await setup(8 * PART);
    server.ignoreRange = true;
    await downloadFile(spec, options);
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(served()).toEqual(['iso']);
    // The ranged attempts (cut at the first 200), then one plain GET.
    expect(server.ranges().at(-1)).toBe('(none)');
    expect(server.requests.filter((r) => r.range === undefined)).toHaveLength(1);
  });

  it('a refused URL (403) is UrlExpiredError, at once, without retries', async () => {
    const { server, spec } = await setup(8 * PART);
    server.behave = (_req, res) => {
      res
        .writeHead(403)
        .end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
      return true;
    };
    const error = await downloadFile(spec, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UrlExpiredError);
    expect(server.requests.length).toBeLessThanOrEqual(4); // the first wave, none retried
  });

  it('a part that stalls is cut and retried', async () => {
    const { data, server, spec, target } = await setup(4 * PART);
    let stalled = false;
    server.behave = (req, res) => {
      if (!stalled && req.headers.range === `bytes=${PART}-${2 * PART - 1}`) {
        stalled = true;
        res.writeHead(206, {
          'Content-Length': PART,
          'Content-Range': `bytes ${PART}-${2 * PART - 1}/${4 * PART}`,
        });
        res.write(data.subarray(PART, PART + 10)); // and then nothing
        return true;
      }
      return false;
    };
    await downloadFile(spec, { ...options, stallTimeoutMs: 200 });
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(stalled).toBe(true);
  });

  it('the shared bandwidth cap holds across the parallel parts', async () => {
    const size = 8 * PART; // 512 KiB
    const { data, spec, target } = await setup(size);
    const bucket = new TokenBucket(2 * 1024 * 1024, 64 * KiB); // 2 MiB/s
    const started = performance.now();
    await downloadFile(spec, { ...options, bucket });
    const seconds = (performance.now() - started) / 1000;
    expect(readFileSync(target).equals(data)).toBe(true);
    expect(seconds).toBeGreaterThan(0.2); // (512 - 64) KiB at 2 MiB/s ≥ 0.22 s
  });
});
