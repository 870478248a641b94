/**
 * Site preparation of a whole-disk image (kind `disk`): what the deploy ramdisk reads.
 * The ramdisk writes `raw` or `raw+gzip` only (protocol/ramdisk.ts `WriteImageArgs`), so:
 *
 * - `raw`, `raw+gzip`: served as downloaded (`<uuid>/disk`); nothing to do;
 * - `qcow2`: inspected (`qemu-img info`: a backing file or an external data file is
 *   refused — it would make the agent read files outside the image), converted with
 *   `qemu-img convert -f qcow2 -O raw` into a sparse temporary file, then gzip'ed
 *   (level 1) into `<uuid>/disk.raw.gz`;
 * - `raw+zstd`: `zstd -d` streamed straight into gzip (level 1), `<uuid>/disk.raw.gz`.
 *
 * Why gzip rather than raw (docs/images.md, "Whole-disk images at the site"): measured on a
 * 1 GiB ext4 image holding 228 MiB of files, raw is 1 GiB on the wire (263 MiB on disk,
 * sparse) while gzip -1 is 108 MB for both, for ~7 s of one core, once per image per site;
 * gzip -6 saved only another 9 % for three times the CPU. Every deploy from the site then
 * moves ~10× fewer bytes over its LAN, and the ramdisk's gunzip (~250 MB/s) outruns a
 * 1 Gbit/s link.
 *
 * Atomic: the output is written to a hidden `.disk.raw.gz.partial`, fsync'd and renamed;
 * the temporary raw file and the partial are removed whatever happens, so a failure leaves
 * nothing half-written. Bounded in time (`timeoutMs`, the child processes killed). The
 * prepared file's SHA-256 and size are computed while writing it.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { DiskImageFormat, ServedDiskImage } from '../../protocol/messages.ts';
import { syncDir } from './download.ts';
import { imageDir, imageFile } from './paths.ts';

/** The file a qcow2 or zstd image is prepared into, next to `disk`. */
export const PREPARED_FILE = 'disk.raw.gz';
/** Default bound of one preparation (qemu-img, zstd and gzip together). */
export const DEFAULT_PREPARE_TIMEOUT_MS = 2 * 60 * 60 * 1000;
/** gzip level: 1 (see above: -6 saved 9 % for 3× the CPU). */
const GZIP_LEVEL = 1;
const STDERR_KEEP = 2048;

/** The preparation failed: the image's bytes or the site's tools are at fault, not the network. */
export class PrepareError extends Error {
  override readonly name = 'PrepareError';
}

export interface PrepareSpec {
  readonly root: string;
  readonly uuid: string;
  readonly format: DiskImageFormat;
  /** SHA-256 and size of the downloaded (verified) `disk` file. */
  readonly sha256: string;
  readonly size: number;
}

export interface PrepareOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  /** The programs (default from PATH). */
  readonly qemuImg?: string;
  readonly zstd?: string;
}

export interface PreparedDisk extends ServedDiskImage {
  /** The file's absolute path. */
  readonly file: string;
  readonly mtimeMs: number;
  readonly ino: number;
}

/** Does `format` need converting before the ramdisk can read it? */
export function needsPreparation(format: DiskImageFormat): boolean {
  return format === 'qcow2' || format === 'raw+zstd';
}

/** What the ramdisk is served for an image of `format`: `<uuid>/<file>`. */
export function servedName(format: DiskImageFormat): string {
  return needsPreparation(format) ? PREPARED_FILE : 'disk';
}

/** Prepares (or, for raw and raw+gzip, describes) the file served to the deploy ramdisk. */
export async function prepareDisk(spec: PrepareSpec, options: PrepareOptions = {}): Promise<PreparedDisk> {
  const source = imageFile(spec.root, spec.uuid, 'disk');
  if (!needsPreparation(spec.format)) {
    const st = await stat(source);
    return {
      path: `${spec.uuid}/disk`,
      format: spec.format === 'raw+gzip' ? 'raw+gzip' : 'raw',
      sha256: spec.sha256,
      size: st.size,
      file: source,
      mtimeMs: st.mtimeMs,
      ino: st.ino,
    };
  }
  const dir = imageDir(spec.root, spec.uuid);
  const target = join(dir, PREPARED_FILE);
  const partial = join(dir, `.${PREPARED_FILE}.partial`);
  const rawTmp = join(dir, '.disk.raw.tmp');
  const timeoutMs = options.timeoutMs ?? DEFAULT_PREPARE_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const cleanup = async () => {
    await rm(partial, { force: true });
    await rm(rawTmp, { force: true });
  };
  await cleanup();
  try {
    let digest: { sha256: string; size: number };
    if (spec.format === 'qcow2') {
      const qemuImg = options.qemuImg ?? 'qemu-img';
      await inspectQcow2(qemuImg, source, signal);
      const convert = await run(
        qemuImg,
        ['convert', '-q', '-f', 'qcow2', '-O', 'raw', source, rawTmp],
        signal,
      );
      if (convert.code !== 0) {
        throw new PrepareError(`qcow2: qemu-img convert failed (${convert.status}): ${convert.stderr}`);
      }
      digest = await gzipTo(createReadStream(rawTmp), partial, signal);
      await rm(rawTmp, { force: true });
    } else {
      digest = await zstdToGzip(options.zstd ?? 'zstd', source, partial, signal);
    }
    await rename(partial, target);
    await syncDir(dir);
    const st = await stat(target);
    return {
      path: `${spec.uuid}/${PREPARED_FILE}`,
      format: 'raw+gzip',
      sha256: digest.sha256,
      size: digest.size,
      file: target,
      mtimeMs: st.mtimeMs,
      ino: st.ino,
    };
  } catch (error) {
    await cleanup().catch(() => {});
    if (timeout.aborted && !options.signal?.aborted) {
      throw new PrepareError(
        `${spec.format}: preparation took longer than ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`} and was stopped`,
      );
    }
    if (options.signal?.aborted) throw error;
    const code = (error as NodeJS.ErrnoException | null)?.code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new PrepareError(`${spec.format}: disk full in ${dir} while preparing ${PREPARED_FILE}`);
    }
    if (code === 'ENOENT' && (error as { syscall?: string }).syscall?.startsWith('spawn')) {
      const program = spec.format === 'qcow2' ? 'qemu-img (package qemu-utils)' : 'zstd (package zstd)';
      throw new PrepareError(`${spec.format}: ${program} is not installed at this site`);
    }
    if (error instanceof PrepareError) throw error;
    throw new PrepareError(`${spec.format}: preparation failed: ${(error as Error).message}`);
  }
}

/** Refuses a qcow2 that is not one, or that names other files (backing file, data file). */
async function inspectQcow2(qemuImg: string, source: string, signal: AbortSignal): Promise<void> {
  const info = await run(qemuImg, ['info', '--output=json', '-f', 'qcow2', source], signal);
  if (info.code !== 0) {
    throw new PrepareError(`qcow2: not a valid qcow2 image (qemu-img info ${info.status}): ${info.stderr}`);
  }
  let parsed: {
    format?: string;
    'backing-filename'?: string;
    'format-specific'?: { data?: { 'data-file'?: string } };
  };
  try {
    parsed = JSON.parse(info.stdout) as typeof parsed;
  } catch {
    throw new PrepareError('qcow2: qemu-img info gave no readable answer');
  }
  if (parsed.format !== 'qcow2') throw new PrepareError(`qcow2: the file is ${parsed.format ?? 'unknown'}`);
  if (parsed['backing-filename'] !== undefined) {
    throw new PrepareError('qcow2: the image has a backing file; only self-contained images are accepted');
  }
  if (parsed['format-specific']?.data?.['data-file'] !== undefined) {
    throw new PrepareError(
      'qcow2: the image has an external data file; only self-contained images are accepted',
    );
  }
}

/** gzip (level 1) of `input` into `out`, fsync'd; SHA-256 and size of the gzip bytes. */
async function gzipTo(
  input: Readable,
  out: string,
  signal: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(
    input,
    createGzip({ level: GZIP_LEVEL }),
    count,
    createWriteStream(out, { mode: 0o644, flush: true }),
    { signal },
  );
  return { sha256: hash.digest('hex'), size };
}

/** `zstd -d -c source | gzip -1 > out`, zstd's exit status checked. */
async function zstdToGzip(
  zstd: string,
  source: string,
  out: string,
  signal: AbortSignal,
): Promise<{ sha256: string; size: number }> {
  const child = spawn(zstd, ['-d', '-c', '-q', '--no-progress', source], {
    stdio: ['ignore', 'pipe', 'pipe'],
    signal,
    killSignal: 'SIGKILL',
  });
  const exited = exit(child);
  exited.catch(() => {}); // awaited below; a spawn error must not go unhandled meanwhile
  try {
    const digest = await gzipTo(child.stdout, out, signal);
    const result = await exited;
    if (result.code !== 0) {
      throw new PrepareError(`raw+zstd: zstd -d failed (${result.status}): ${result.stderr}`);
    }
    return digest;
  } catch (error) {
    const result = await exited.catch(() => undefined);
    if (result && result.code !== 0 && !(error instanceof PrepareError) && !signal.aborted) {
      throw new PrepareError(`raw+zstd: zstd -d failed (${result.status}): ${result.stderr}`);
    }
    throw error;
  }
}

interface RunResult {
  readonly code: number | null;
  readonly status: string;
  readonly stdout: string;
  readonly stderr: string;
}

function run(program: string, args: string[], signal: AbortSignal): Promise<RunResult> {
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    if (stdout.length < 1024 * 1024) stdout += chunk.toString('utf8');
  });
  return exit(child).then((result) => ({ ...result, stdout }));
}

function exit(child: ReturnType<typeof spawn>): Promise<Omit<RunResult, 'stdout'>> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, sig) =>
      resolve({
        code,
        status: code !== null ? `exit status ${code}` : `killed by ${sig ?? 'a signal'}`,
        stderr: stderr.trim().replace(/\s+/g, ' ').slice(0, 500) || '(no message)',
      }),
    );
  });
}
