/**
 * One file of an image, from a presigned S3 GET URL to `<images dir>/<uuid>/<role>`:
 *
 * - streamed: the response is read chunk by chunk and written with positional writes,
 *   with backpressure, so memory stays bounded whatever the size (≤ WRITE_BATCH bytes
 *   held);
 * - SHA-256 computed while streaming; the bytes go to a hidden `.<role>.partial` next to
 *   the target, which is fsync'd and renamed over the target (then the directory is
 *   fsync'd) only when size and digest match; a mismatch removes the partial and keeps
 *   whatever good file was there;
 * - resumable: `.<role>.partial.json` records what the partial is a download of (size,
 *   digest, ETag). A later attempt re-hashes the partial's bytes from disk (Node's hash
 *   state cannot be saved) and asks for the rest with `Range: bytes=N-`; a server that
 *   answers 200, or a different ETag, restarts from zero;
 * - disk full (ENOSPC/EDQUOT) removes the partial and fails with DiskFullError.
 *
 * It uses node:http(s) rather than fetch: no transparent decompression (an object stored
 * with `Content-Encoding: gzip` must land byte for byte), and plain stream backpressure.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import type { ImageFileRole } from '../../protocol/messages.ts';
import { imageFile, partialFile, partialMeta } from './paths.ts';
import type { TokenBucket } from './throttle.ts';

/** Bytes gathered before one positional write (fewer, larger writes; bounded memory). */
const WRITE_BATCH = 1024 * 1024;

export class DownloadError extends Error {
  override readonly name: string = 'DownloadError';
}
/** The presigned URL was refused (expired or no longer valid): ask for a new one. */
export class UrlExpiredError extends DownloadError {
  override readonly name = 'UrlExpiredError';
}
/** Size or SHA-256 differ from what the control plane registered: not worth retrying soon. */
export class ChecksumError extends DownloadError {
  override readonly name = 'ChecksumError';
}
/** No space left on the images' file system. */
export class DiskFullError extends DownloadError {
  override readonly name = 'DiskFullError';
}
/** A response status that a retry may or may not fix (404, 5xx...). */
export class HttpStatusError extends DownloadError {
  override readonly name = 'HttpStatusError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

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
  /** No byte for this long aborts the attempt (default 60 s). */
  readonly stallTimeoutMs?: number;
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
        let written = 0;
        while (written < length) {
          const { bytesWritten } = await handle!.writev(
            written === 0 ? buffers : [Buffer.concat(buffers).subarray(written)],
            position + written,
          );
          written += bytesWritten;
        }
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
