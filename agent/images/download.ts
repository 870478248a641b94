/**
 * One file of an image, from a presigned S3 GET URL to `<images dir>/<uuid>/<role>`.
 *
 * Files larger than one part (`partSize`, 8 MiB) are fetched as ranged GETs in parallel,
 * as `aws s3 cp` does (`downloadRanged`):
 *
 * - `concurrency` (8) parts in flight over kept-alive connections of a lean HTTP/1.1
 *   client (agent/images/range-get.ts: one reused read buffer per connection, no
 *   allocation per read, a strict response parser), each part's bytes copied into staging
 *   buffers of STAGE bytes and written at their offsets (agent/images/part-writer.ts):
 *   memory stays bounded at about `concurrency` × (2 × STAGE + 2 × READ_SIZE) whatever
 *   the size, and the CPU per byte near what copying it costs;
 * - SHA-256 over every byte, in order, overlapped with the download: a reader follows the
 *   contiguous prefix of written parts and hashes it back from the file (the page cache);
 * - resumable: `.<role>.partial.json` records the completed parts (written after the
 *   partial's data is fdatasync'd, so a part recorded is a part on disk). A later attempt
 *   fetches only the others; it re-hashes the kept parts from disk (Node's hash state
 *   cannot be saved). A different ETag restarts from zero;
 * - a part that fails (network error, 5xx, short body, no data for `stallTimeoutMs`) is
 *   retried from where its written bytes end, `partAttempts` times in all; then the
 *   download fails as a whole (and resumes later from the recorded parts);
 * - a server that ignores Range (200 with the whole body) is downloaded with one GET.
 *
 * Smaller files take one GET (`downloadWhole`): streamed with positional writes, hashed
 * while streaming, resumable with `Range: bytes=N-` from the partial's length (a server
 * that answers 200, or a different ETag, restarts from zero).
 *
 * Both write to a hidden `.<role>.partial` next to the target, which is fsync'd and
 * renamed over the target (then the directory is fsync'd) only when size and digest
 * match; a mismatch removes the partial and keeps whatever good file was there. Disk full
 * (ENOSPC/EDQUOT) removes the partial and fails with DiskFullError. All downloads share
 * the optional TokenBucket (bandwidth cap).
 *
 * The one-GET path uses node:http(s) rather than fetch: no transparent decompression (an
 * object stored with `Content-Encoding: gzip` must land byte for byte), and plain stream
 * backpressure; it also takes what the ranged client refuses (a 200 to a ranged GET,
 * which may be chunked). The ranged client asks for `Accept-Encoding: identity` and
 * never decodes either.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { ImageFileRole } from '../../protocol/messages.ts';
import { ChecksumError, DiskFullError, DownloadError, HttpStatusError, UrlExpiredError } from './errors.ts';
import { HttpProtocolError, parseContentRange } from './http-response.ts';
import { PartWriter, STAGE, StagePool } from './part-writer.ts';
import { imageFile, partialFile, partialMeta } from './paths.ts';
import { type Exchange, HttpClient } from './range-get.ts';
import type { TokenBucket } from './throttle.ts';

const MiB = 1024 * 1024;
/** Bytes gathered before one positional write (fewer, larger writes; bounded memory). */
const WRITE_BATCH = MiB;
/** Ranged GETs of this many bytes for files larger than one part. */
export const PART_SIZE = 8 * MiB;
/** Parts in flight at once, per file. */
export const PART_CONCURRENCY = 8;
/** Attempts per part (the first and the retries) before the download fails. */
export const PART_ATTEMPTS = 4;
/** Bytes read back per read by the in-order hasher (from the page cache: 256 KiB reads cost
 *  little more CPU than 4 MiB ones, and hold less memory: the sync's RSS goal is 100 MiB). */
const HASH_READ = 256 * 1024;
/**
 * The in-order hasher as a worker thread (plain JavaScript, evaluated: no file to ship):
 * reads the partial file up to the `limit` it is told and hashes it, off the event loop.
 */
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { openSync, readSync, closeSync } = require('node:fs');
const { createHash } = require('node:crypto');
const fd = openSync(workerData.path, 'r');
const hash = createHash('sha256');
const buffer = Buffer.allocUnsafeSlow(workerData.chunk);
let hashed = 0;
let limit = 0;
parentPort.on('message', (message) => {
  limit = Math.max(limit, message.limit);
  while (hashed < limit) {
    const n = readSync(fd, buffer, 0, Math.min(buffer.length, limit - hashed), hashed);
    if (n === 0) throw new Error('the partial file ends at ' + hashed);
    hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
    hashed += n;
  }
  if (hashed === workerData.size) {
    closeSync(fd);
    parentPort.postMessage({ digest: hash.digest('hex') });
  }
});
`;

export { ChecksumError, DiskFullError, DownloadError, HttpStatusError, UrlExpiredError };

export interface DownloadSpec {
  readonly root: string;
  readonly uuid: string;
  readonly role: ImageFileRole;
  readonly size: number;
  readonly sha256: string;
  readonly url: string;
}

export interface DownloadOptions {
  readonly signal?: AbortSignal;
  readonly bucket?: TokenBucket | undefined;
  /** Called as bytes land on disk: `done` counts the file's bytes (resumed ones included). */
  readonly onProgress?: (done: number) => void;
  /** Called with each chunk's size as it arrives from the network. */
  readonly onBytes?: (bytes: number) => void;
  /** No byte for this long aborts the attempt (default 60 s); for a part: retries it. */
  readonly stallTimeoutMs?: number;
  /** Ranged GETs of this size for larger files (default PART_SIZE); Infinity: one GET. */
  readonly partSize?: number;
  /** Parts in flight at once (default PART_CONCURRENCY). */
  readonly concurrency?: number;
  /** Attempts per part (default PART_ATTEMPTS). */
  readonly partAttempts?: number;
  /** Where the ranged download's in-order SHA-256 runs (default: a worker thread). */
  readonly hashIn?: 'worker' | 'main';
  /** First delay before a part's retry, doubled each time (default 250 ms). */
  readonly retryDelayMs?: number;
}

export interface DownloadResult {
  /** Bytes received over the network in this attempt. */
  readonly transferred: number;
  /** Bytes of an earlier partial download kept (0: started from scratch). */
  readonly resumedFrom: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

interface PartialMeta {
  size: number;
  sha256: string;
  etag?: string;
}

const isCode = (error: unknown, ...codes: string[]): boolean =>
  codes.includes((error as NodeJS.ErrnoException | null)?.code ?? '');

/** SHA-256 of a file's first `length` bytes (all of it when undefined), streamed. */
export async function hashFile(
  path: string,
  options: { length?: number; hash?: Hash; signal?: AbortSignal } = {},
): Promise<Hash> {
  const hash = options.hash ?? createHash('sha256');
  if (options.length === 0) return hash;
  const stream = createReadStream(path, {
    highWaterMark: WRITE_BATCH,
    ...(options.length !== undefined ? { end: options.length - 1 } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}

/** Flushes a directory's entries (a rename in it) to disk. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a small file atomically: temporary file, fsync, rename, fsync of the directory. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

async function readPartialMeta(path: string): Promise<PartialMeta | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<PartialMeta>;
    if (typeof value.size !== 'number' || typeof value.sha256 !== 'string') return undefined;
    return {
      size: value.size,
      sha256: value.sha256,
      ...(typeof value.etag === 'string' ? { etag: value.etag } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Bytes of a partial download kept on disk (for a ranged one: its recorded parts). */
export async function partialBytes(root: string, uuid: string, role: string): Promise<number> {
  const have = await stat(partialFile(root, uuid, role)).catch(() => undefined);
  if (!have) return 0;
  const meta = await readRangedMeta(partialMeta(root, uuid, role));
  if (!meta) return have.size;
  let bytes = 0;
  for (const [first, last] of meta.done)
    for (let i = first; i <= last; i++)
      bytes += Math.max(0, Math.min(have.size, (i + 1) * meta.part_size) - i * meta.part_size);
  return bytes;
}

/** Removes a partial download and its description. */
export async function discardPartial(root: string, uuid: string, role: string): Promise<void> {
  await rm(partialFile(root, uuid, role), { force: true });
  await rm(partialMeta(root, uuid, role), { force: true });
}

function get(url: string, headers: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : u.protocol === 'http:' ? httpRequest : undefined;
  if (!send) return Promise.reject(new DownloadError(`unsupported URL scheme ${u.protocol}`));
  return new Promise((resolve, reject) => {
    const req = send(u, { method: 'GET', headers, signal }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function smallBody(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    if (text.length < 4096) text += (chunk as Buffer).toString('utf8');
  }
  return text.slice(0, 4096);
}

/** S3's `<Code>` and `<Message>` of an error body, for the report. */
function s3Error(body: string): { code: string | undefined; text: string } {
  const code = /<Code>([^<]{1,64})<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]{1,200})<\/Message>/.exec(body)?.[1];
  return { code, text: [code, message].filter(Boolean).join(': ') };
}

/** `bytes START-END/TOTAL` → {start, total}. */
function contentRange(value: string | undefined): { start: number; total: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? Number.NaN : Number(m[3]) };
}

/**
 * Downloads one file into place, resuming a partial download when there is one. Resolves
 * when the verified file has been renamed into place; rejects with one of the errors
 * above (or an abort / network error, after which the partial is kept for a resume).
 */
export async function downloadFile(
  spec: DownloadSpec,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const partSize = options.partSize ?? PART_SIZE;
  if (spec.size > partSize) return downloadRanged(spec, options, partSize);
  return downloadWhole(spec, options);
}

/** One GET (with `Range: bytes=N-` to resume), streamed, hashed while streaming. */
async function downloadWhole(spec: DownloadSpec, options: DownloadOptions): Promise<DownloadResult> {
  const target = imageFile(spec.root, spec.uuid, spec.role);
  const partial = partialFile(spec.root, spec.uuid, spec.role);
  const metaPath = partialMeta(spec.root, spec.uuid, spec.role);
  const dir = dirname(target);
  const stall = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stall.signal]) : stall.signal;
  const stallMs = options.stallTimeoutMs ?? 60_000;
  let stallTimer: NodeJS.Timeout | undefined;
  const kick = () => {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(
      () => stall.abort(new DownloadError(`no data for ${Math.round(stallMs / 1000)} s`)),
      stallMs,
    );
  };

  // What can be kept of an earlier attempt?
  let offset = 0;
  let meta = await readPartialMeta(metaPath);
  const have = await stat(partial).catch(() => undefined);
  if (have && meta && meta.size === spec.size && meta.sha256 === spec.sha256 && have.size <= spec.size) {
    offset = have.size;
  } else {
    if (have || meta) await discardPartial(spec.root, spec.uuid, spec.role);
    meta = undefined;
  }

  const free = await statfs(dir).catch(() => undefined);
  if (free && free.bavail * free.bsize < spec.size - offset) {
    throw new DiskFullError(
      `disk full: ${spec.size - offset} bytes needed for ${spec.role} in ${dir}, ${free.bavail * free.bsize} free`,
    );
  }

  let hash = createHash('sha256');
  if (offset > 0) hash = await hashFile(partial, { length: offset, hash, signal });

  kick();
  let handle: FileHandle | undefined;
  let transferred = 0;
  try {
    const headers: Record<string, string> = {
      'Accept-Encoding': 'identity',
      'User-Agent': 'metalplane-agent',
    };
    if (offset > 0) headers.Range = `bytes=${offset}-`;
    const res = await get(spec.url, headers, signal);
    /** The body to save (none when the partial turns out complete already). */
    let body: IncomingMessage | undefined = res;
    const etag = typeof res.headers.etag === 'string' ? res.headers.etag : undefined;

    if (res.statusCode === 416 && offset > 0) {
      // Nothing after `offset`: the partial is all there is (or the object shrank).
      await smallBody(res);
      if (offset !== spec.size) {
        await discardPartial(spec.root, spec.uuid, spec.role);
        throw new DownloadError(`server has fewer bytes than the ${offset} already downloaded: restarting`);
      }
      body = undefined;
    } else if (res.statusCode === 403 || res.statusCode === 400) {
      const { code, text } = s3Error(await smallBody(res));
      if (res.statusCode === 403 || code === 'ExpiredToken' || code === 'TokenRefreshRequired')
        throw new UrlExpiredError(`HTTP ${res.statusCode}${text ? ` ${text}` : ''}`);
      throw new HttpStatusError(res.statusCode, `HTTP ${res.statusCode}${text ? ` ${text}` : ''}`);
    } else if (res.statusCode === 206 && offset > 0) {
      const range = contentRange(res.headers['content-range']);
      if (!range || range.start !== offset) {
        await smallBody(res);
        throw new DownloadError(`unexpected Content-Range ${res.headers['content-range'] ?? '(none)'}`);
      }
      if (!Number.isNaN(range.total) && range.total !== spec.size) {
        await smallBody(res);
        await discardPartial(spec.root, spec.uuid, spec.role);
        throw new ChecksumError(`size mismatch: the object has ${range.total} bytes, expected ${spec.size}`);
      }
      if (meta?.etag && etag && meta.etag !== etag) {
        // The object changed under the same key: what we have belongs to another version.
        res.destroy();
        await discardPartial(spec.root, spec.uuid, spec.role);
        throw new DownloadError('the object changed since the partial download began: restarting');
      }
    } else if (res.statusCode === 200) {
      const length = Number(res.headers['content-length']);
      if (Number.isFinite(length) && res.headers['content-length'] !== undefined && length !== spec.size) {
        res.destroy();
        await discardPartial(spec.root, spec.uuid, spec.role);
        throw new ChecksumError(`size mismatch: the object has ${length} bytes, expected ${spec.size}`);
      }
      if (offset > 0) {
        // The server ignored the Range: start over.
        offset = 0;
        hash = createHash('sha256');
      }
    } else {
      const { text } = s3Error(await smallBody(res));
      throw new HttpStatusError(res.statusCode ?? 0, `HTTP ${res.statusCode}${text ? ` ${text}` : ''}`);
    }

    if (body) {
      if (!meta || offset === 0) {
        meta = { size: spec.size, sha256: spec.sha256, ...(etag ? { etag } : {}) };
        await writeFile(metaPath, JSON.stringify(meta));
      }
      handle = await open(partial, offset > 0 ? 'r+' : 'w', 0o644);
      let position = offset;
      let batch: Buffer[] = [];
      let batched = 0;
      const flush = async () => {
        if (batched === 0) return;
        const buffers = batch;
        const length = batched;
        batch = [];
        batched = 0;
        await writeAllAt(handle!, buffers, length, position);
        position += length;
        options.onProgress?.(position);
      };
      for await (const data of body) {
        const chunk = data as Buffer;
        kick();
        if (position + batched + chunk.length > spec.size) {
          res.destroy();
          throw new ChecksumError(`size mismatch: the object has more than the expected ${spec.size} bytes`);
        }
        if (options.bucket) await options.bucket.take(chunk.length, signal);
        transferred += chunk.length;
        options.onBytes?.(chunk.length);
        hash.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) await flush();
      }
      await flush();
      if (signal.aborted) throw signal.reason;
      if (position < spec.size)
        throw new DownloadError(`connection ended after ${position} of ${spec.size} bytes`);
      await handle.sync();
      await handle.close();
      handle = undefined;
    }

    const digest = hash.digest('hex');
    if (digest !== spec.sha256) {
      await discardPartial(spec.root, spec.uuid, spec.role);
      throw new ChecksumError(`SHA-256 mismatch: got ${digest}, expected ${spec.sha256}`);
    }
    await rename(partial, target);
    await syncDir(dir);
    await rm(metaPath, { force: true });
    const done = await stat(target);
    return { transferred, resumedFrom: offset, mtimeMs: done.mtimeMs, ino: done.ino };
  } catch (error) {
    if (isCode(error, 'ENOSPC', 'EDQUOT')) {
      await handle?.close().catch(() => {});
      handle = undefined;
      await discardPartial(spec.root, spec.uuid, spec.role).catch(() => {});
      throw new DiskFullError(
        `disk full: no space left on device in ${dir} while writing ${spec.role} (${spec.size} bytes)`,
      );
    }
    if (stall.signal.aborted && !options.signal?.aborted) throw stall.signal.reason;
    throw error;
  } finally {
    clearTimeout(stallTimer);
    await handle?.close().catch(() => {});
  }
}

/** What a ranged partial download holds: `.<role>.partial.json` (no top-level `size`, so
 *  an older agent, which reads only the single-GET form, discards it rather than misread it). */
interface RangedMeta {
  format: 'parts';
  file: { size: number; sha256: string };
  part_size: number;
  etag?: string;
  /** Completed parts, as runs of part indexes `[first, last]`. */
  done: Array<[number, number]>;
}

async function readRangedMeta(path: string): Promise<RangedMeta | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<RangedMeta>;
    if (
      value.format !== 'parts' ||
      typeof value.file?.size !== 'number' ||
      typeof value.file.sha256 !== 'string' ||
      typeof value.part_size !== 'number' ||
      !Array.isArray(value.done)
    )
      return undefined;
    return {
      format: 'parts',
      file: { size: value.file.size, sha256: value.file.sha256 },
      part_size: value.part_size,
      ...(typeof value.etag === 'string' ? { etag: value.etag } : {}),
      done: value.done.filter(
        (r): r is [number, number] =>
          Array.isArray(r) && r.length === 2 && Number.isInteger(r[0]) && Number.isInteger(r[1]),
      ),
    };
  } catch {
    return undefined;
  }
}

/** Runs of set indexes: [1,1,0,1] → [[0,1],[3,3]]. */
function runs(done: Uint8Array): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < done.length; i++) {
    if (!done[i]) continue;
    const first = i;
    while (i + 1 < done.length && done[i + 1]) i++;
    out.push([first, i]);
  }
  return out;
}

/** The server answered a ranged GET with the whole object (200): use one GET instead. */
class RangeIgnored extends Error {}
/** Another ETag than the parts already written: they belong to another version. */
class ObjectChangedError extends DownloadError {}
/** An error that ends the whole download rather than one attempt of a part. */
const isFatal = (error: unknown): boolean =>
  error instanceof ChecksumError ||
  error instanceof UrlExpiredError ||
  error instanceof DiskFullError ||
  error instanceof RangeIgnored ||
  error instanceof ObjectChangedError ||
  (error instanceof HttpStatusError && error.status < 500) ||
  isCode(error, 'ENOSPC', 'EDQUOT');

/** 403/400 → UrlExpiredError or HttpStatusError, anything else → HttpStatusError. */
async function statusError(res: Exchange, signal: AbortSignal): Promise<DownloadError> {
  const status = res.head.status;
  const { code, text } = s3Error(await res.text(signal));
  const message = `HTTP ${status}${text ? ` ${text}` : ''}`;
  if (status === 403 || (status === 400 && (code === 'ExpiredToken' || code === 'TokenRefreshRequired')))
    return new UrlExpiredError(message);
  return new HttpStatusError(status, message);
}

/** A part's attempt failed with `cause`; the bytes written before it end at `writtenEnd`. */
class PartAttemptError extends Error {
  override readonly cause: unknown;
  writtenEnd = 0;
  constructor(cause: unknown) {
    super('part attempt failed');
    this.cause = cause;
  }
}

/**
 * Parallel ranged GETs of `partSize` bytes into the partial file at their offsets, the
 * SHA-256 computed in order behind them, completed parts recorded for a resume.
 */
async function downloadRanged(
  spec: DownloadSpec,
  options: DownloadOptions,
  partSize: number,
): Promise<DownloadResult> {
  const target = imageFile(spec.root, spec.uuid, spec.role);
  const partial = partialFile(spec.root, spec.uuid, spec.role);
  const metaPath = partialMeta(spec.root, spec.uuid, spec.role);
  const dir = dirname(target);
  const count = Math.ceil(spec.size / partSize);
  const partStart = (i: number) => i * partSize;
  const partEnd = (i: number) => Math.min(spec.size, (i + 1) * partSize); // exclusive
  const stallMs = options.stallTimeoutMs ?? 60_000;
  const attempts = Math.max(1, options.partAttempts ?? PART_ATTEMPTS);
  const retryDelayMs = options.retryDelayMs ?? 250;

  // What can be kept of an earlier attempt: the recorded parts that the file holds (a
  // partial of the single-GET form: the parts within its contiguous prefix).
  const done = new Uint8Array(count);
  let etag: string | undefined;
  const have = await stat(partial).catch(() => undefined);
  const ranged = await readRangedMeta(metaPath);
  const whole = ranged ? undefined : await readPartialMeta(metaPath);
  if (
    have &&
    ranged &&
    ranged.file.size === spec.size &&
    ranged.file.sha256 === spec.sha256 &&
    ranged.part_size === partSize
  ) {
    for (const [first, last] of ranged.done)
      for (let i = Math.max(0, first); i <= Math.min(last, count - 1); i++)
        if (partEnd(i) <= have.size) done[i] = 1;
    etag = ranged.etag;
  } else if (have && whole && whole.size === spec.size && whole.sha256 === spec.sha256) {
    for (let i = 0; i < count && partEnd(i) <= have.size; i++) done[i] = 1;
    etag = whole.etag;
  } else if (have || ranged || whole) {
    await discardPartial(spec.root, spec.uuid, spec.role);
  }
  let kept = 0;
  for (let i = 0; i < count; i++) if (done[i]) kept += partEnd(i) - partStart(i);

  const free = await statfs(dir).catch(() => undefined);
  if (free && free.bavail * free.bsize < spec.size - kept) {
    throw new DiskFullError(
      `disk full: ${spec.size - kept} bytes needed for ${spec.role} in ${dir}, ${free.bavail * free.bsize} free`,
    );
  }

  // One failure (or the caller's abort) stops every part.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  let failure: unknown;
  const fail = (error: unknown) => {
    if (failure === undefined) failure = error;
    stop.abort(error);
  };

  let handle: FileHandle | undefined;
  let transferred = 0;
  let written = kept;
  let discard = false;
  /** Parts in flight: when each last received a byte, and how to cut it. */
  const active = new Map<number, { lastData: number; cut: AbortController }>();
  const watchdog = setInterval(
    () => {
      const now = performance.now();
      for (const part of active.values())
        if (now - part.lastData > stallMs)
          part.cut.abort(new DownloadError(`no data for ${Math.round(stallMs / 1000)} s`));
    },
    Math.max(10, Math.min(1000, stallMs / 4)),
  );
  watchdog.unref();

  // Checkpoints: fdatasync the partial, then record the parts completed before it began.
  let checkpointDue = false;
  let checkpoints: Promise<void> = Promise.resolve();
  let checkpointError: unknown;
  const saveMeta = async () => {
    const meta: RangedMeta = {
      format: 'parts',
      file: { size: spec.size, sha256: spec.sha256 },
      part_size: partSize,
      ...(etag ? { etag } : {}),
      done: runs(done),
    };
    await handle!.datasync();
    await writeFile(`${metaPath}.tmp`, JSON.stringify(meta));
    await rename(`${metaPath}.tmp`, metaPath);
  };
  const checkpoint = () => {
    if (checkpointDue) return;
    checkpointDue = true;
    checkpoints = checkpoints.then(async () => {
      checkpointDue = false;
      if (checkpointError !== undefined || discard) return;
      await saveMeta().catch((error: unknown) => {
        checkpointError = error;
        fail(error);
      });
    });
  };

  // The in-order hasher follows the contiguous prefix of completed parts.
  let hashed = 0;
  let wake: (() => void) | undefined;
  let worker: Worker | undefined;
  let told = 0;
  const hashInWorker = options.hashIn !== 'main';
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
    if (worker) {
      let part = told === spec.size ? count : Math.floor(told / partSize);
      while (part < count && done[part]) part++;
      const limit = part < count ? partStart(part) : spec.size;
      if (limit > told) {
        told = limit;
        worker.postMessage({ limit });
      }
    }
  };
  const startHashWorker = (): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      worker = new Worker(HASH_WORKER, {
        eval: true,
        workerData: { path: partial, size: spec.size, chunk: HASH_READ },
        // It allocates one read buffer and nothing per chunk: a small young generation
        // keeps the sync's RSS down (docs/performance.md, "Image sync").
        resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
      });
      worker.unref();
      worker.on('message', (message: { digest: string }) => resolve(message.digest));
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new DownloadError(`the hashing thread exited (${code})`)));
    });
  const hashBehind = async (): Promise<string> => {
    const hash = createHash('sha256');
    const buffers = [Buffer.allocUnsafeSlow(HASH_READ), Buffer.allocUnsafeSlow(HASH_READ)];
    let flip = 0;
    let part = 0;
    const ready = () => {
      while (part < count && done[part]) part++;
      return part < count ? partStart(part) : spec.size;
    };
    const read = async (position: number, length: number) => {
      const buffer = buffers[flip]!;
      flip ^= 1;
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle!.read(buffer, got, length - got, position + got);
        if (bytesRead === 0) throw new DownloadError(`the partial file ends at ${position + got}`);
        got += bytesRead;
      }
      return buffer.subarray(0, length);
    };
    let next: Promise<Buffer> | undefined;
    try {
      return await hashLoop();
    } finally {
      await next?.catch(() => {}); // no read of a closed file left behind
    }
    async function hashLoop(): Promise<string> {
      while (hashed < spec.size) {
        if (signal.aborted) throw signal.reason;
        const limit = ready();
        if (!next) {
          if (limit <= hashed) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            continue;
          }
          next = read(hashed, Math.min(HASH_READ, limit - hashed));
        }
        const chunk = await next;
        next = undefined;
        const after = hashed + chunk.length;
        const limitNow = ready();
        if (after < limitNow) next = read(after, Math.min(HASH_READ, limitNow - after)); // overlap I/O and hashing
        hash.update(chunk);
        hashed = after;
      }
      return hash.digest('hex');
    }
  };

  // The parts' GETs: connections kept alive between parts, staging buffers shared.
  const client = new HttpClient();
  const stages = new StagePool(STAGE, 2 * Math.max(1, options.concurrency ?? PART_CONCURRENCY));

  /**
   * The 206 response to a GET of bytes `[position, end)` of part `i`, into the partial file.
   * Resolves with the part's end; rejects with a PartAttemptError saying where the bytes
   * written so far end (where a retry starts).
   */
  const receivePart = async (
    res: Exchange,
    i: number,
    position: number,
    end: number,
    slot: { lastData: number; cut: AbortController },
    partSignal: AbortSignal,
  ): Promise<number> => {
    checkPartHead(res, i, position, end);
    let writer: PartWriter | undefined;
    // The bandwidth cap: bytes received are paid for after the fact, reading paused meanwhile.
    let owed = 0;
    let throttled: Promise<void> | undefined;
    try {
      writer = new PartWriter(handle!.fd, stages, position, end, {
        onWritten: (bytes) => {
          written += bytes;
          options.onProgress?.(written);
        },
        onError: (error) => slot.cut.abort(error),
        onDrain: () => {
          if (!throttled && !writer!.congested) res.resume();
        },
      });
      const pay = async () => {
        while (owed > 0) {
          const bytes = owed;
          owed = 0;
          await options.bucket!.take(bytes, partSignal);
        }
        throttled = undefined;
        if (!writer!.congested) res.resume();
      };
      await res.body((buffer, from, to) => {
        slot.lastData = performance.now();
        writer!.accept(buffer, from, to);
        transferred += to - from;
        options.onBytes?.(to - from);
        if (options.bucket) {
          owed += to - from;
          throttled ??= pay();
          res.pause();
        }
        if (writer!.congested) res.pause();
      }, partSignal);
      await throttled;
      await writer.finish();
      if (partSignal.aborted) throw partSignal.reason;
      if (writer.next < end)
        throw new DownloadError(`part ${i}: connection ended after ${writer.next - partStart(i)} bytes`);
      return end;
    } catch (error) {
      res.destroy();
      const kept = await writer?.abandon();
      throw Object.assign(new PartAttemptError(error), { writtenEnd: kept ?? position });
    }
  };

  /** Refuses a part's response head that is not the 206 of the bytes asked for. */
  const checkPartHead = (res: Exchange, i: number, position: number, end: number) => {
    const status = res.head.status;
    if (status === 200) {
      res.destroy();
      throw new RangeIgnored('the server ignored Range');
    }
    if (status !== 206) return; // the caller's statusError below
    const range = parseContentRange(res.header('content-range'));
    if (range?.total !== undefined && range.total !== spec.size) {
      res.destroy();
      discard = true;
      throw new ChecksumError(`size mismatch: the object has ${range.total} bytes, expected ${spec.size}`);
    }
    const framing = res.head.framing;
    const problem =
      !range || range.first !== position || range.last !== end - 1
        ? `unexpected Content-Range ${JSON.stringify(res.header('content-range') ?? '(none)')}`
        : framing.kind === 'chunked'
          ? 'a chunked 206 response (image data must come with a Content-Length)'
          : framing.kind === 'length' && framing.length !== end - position
            ? `Content-Length ${framing.length}`
            : undefined;
    if (problem) {
      res.destroy();
      throw new HttpProtocolError(`part ${i}: ${problem} for bytes ${position}-${end - 1}`);
    }
    const tag = res.header('etag');
    if (tag) {
      if (etag && etag !== tag) {
        // The object changed under the same key: what we have belongs to another version.
        res.destroy();
        discard = true;
        throw new ObjectChangedError('the object changed since the partial download began: restarting');
      }
      etag = tag;
    }
  };

  const fetchPart = async (i: number): Promise<void> => {
    const end = partEnd(i);
    let position = partStart(i);
    for (let attempt = 1; ; attempt++) {
      const cut = new AbortController();
      const slot = { lastData: performance.now(), cut };
      active.set(i, slot);
      const partSignal = AbortSignal.any([signal, cut.signal]);
      try {
        const res = await client.get(
          spec.url,
          {
            'Accept-Encoding': 'identity',
            'User-Agent': 'metalplane-agent',
            Range: `bytes=${position}-${end - 1}`,
          },
          partSignal,
        );
        if (res.head.status === 416) {
          await res.text(partSignal);
          discard = true;
          throw new ChecksumError(`size mismatch: the object has fewer than the expected ${spec.size} bytes`);
        }
        if (res.head.status !== 206 && res.head.status !== 200) throw await statusError(res, partSignal);
        position = await receivePart(res, i, position, end, slot, partSignal);
        active.delete(i);
        done[i] = 1;
        notify();
        checkpoint();
        return;
      } catch (caught) {
        active.delete(i);
        let error = caught;
        if (caught instanceof PartAttemptError) {
          position = caught.writtenEnd;
          error = caught.cause;
        }
        if (signal.aborted) throw signal.reason;
        const reason = cut.signal.aborted ? cut.signal.reason : error;
        if (isFatal(reason) || attempt >= attempts) throw reason;
        await sleep(retryDelayMs * 2 ** (attempt - 1), undefined, { signal });
      }
    }
  };

  try {
    handle = await open(partial, kept > 0 ? 'r+' : 'w+', 0o644); // read back by the hasher
    if (kept === 0) await saveMeta(); // the sidecar says what this partial is from the start
    const queue: number[] = [];
    for (let i = 0; i < count; i++) if (!done[i]) queue.push(i);
    const workers = Array.from(
      { length: Math.min(queue.length, Math.max(1, options.concurrency ?? PART_CONCURRENCY)) },
      async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) await fetchPart(i);
      },
    );
    const hashing = hashInWorker ? startHashWorker() : hashBehind();
    hashing.catch(fail);
    notify();
    await Promise.all(workers.map((w) => w.catch(fail)));
    if (failure !== undefined || signal.aborted) {
      notify();
      await worker?.terminate();
      await hashing.catch(() => {});
      throw failure ?? signal.reason;
    }
    const digest = await hashing;
    await worker?.terminate();
    await checkpoints;
    await handle.sync();
    await handle.close();
    handle = undefined;
    if (digest !== spec.sha256) {
      discard = true;
      throw new ChecksumError(`SHA-256 mismatch: got ${digest}, expected ${spec.sha256}`);
    }
    await rename(partial, target);
    await syncDir(dir);
    await rm(metaPath, { force: true });
    const st = await stat(target);
    return { transferred, resumedFrom: kept, mtimeMs: st.mtimeMs, ino: st.ino };
  } catch (error) {
    const reason = error === stop.signal.reason && failure !== undefined ? failure : error;
    await checkpoints.catch(() => {});
    await handle?.close().catch(() => {});
    handle = undefined;
    if (reason instanceof RangeIgnored) {
      await discardPartial(spec.root, spec.uuid, spec.role);
      return downloadWhole(spec, options);
    }
    if (isCode(reason, 'ENOSPC', 'EDQUOT')) {
      await discardPartial(spec.root, spec.uuid, spec.role).catch(() => {});
      throw new DiskFullError(
        `disk full: no space left on device in ${dir} while writing ${spec.role} (${spec.size} bytes)`,
      );
    }
    if (discard || reason instanceof ChecksumError) {
      await discardPartial(spec.root, spec.uuid, spec.role).catch(() => {});
    }
    throw reason;
  } finally {
    clearInterval(watchdog);
    client.close();
    await worker?.terminate();
    await handle?.close().catch(() => {});
  }
}

/** Writes `buffers` (`length` bytes in all) at `position`, however short each writev is. */
async function writeAllAt(
  handle: FileHandle,
  buffers: Buffer[],
  length: number,
  position: number,
): Promise<void> {
  let written = 0;
  while (written < length) {
    const { bytesWritten } = await handle.writev(
      written === 0 ? buffers : [Buffer.concat(buffers).subarray(written)],
      position + written,
    );
    written += bytesWritten;
  }
}
