/**
 * Safe resolution of a client's request path inside a served root (the TFTP and HTTP
 * boot trees). Both servers go through `openInRoot`, so the rules are one set:
 *
 * - the path is a sequence of `/`-separated segments of printable ASCII (0x20–0x7e)
 *   without backslashes; NUL, control characters and bytes ≥ 0x80 are `invalid`;
 * - leading slashes are stripped (as tftpd-hpa's `--secure` does: `/pxelinux.0` is
 *   `pxelinux.0` in the root), empty and `.` segments are dropped;
 * - a `..` segment is `forbidden` (never normalized away: a client that asks for it is
 *   either broken or probing), and so is any segment starting with a dot: hidden files
 *   include the temporary files that boot-file writers rename into place, which must
 *   never be served half-written;
 * - the result must resolve (symlinks followed, `realpath`) to a path inside the real
 *   root: a symlink pointing out of the root is `forbidden`, one inside it is fine;
 * - only regular files are served: directories, FIFOs, devices and sockets are
 *   `not-file` (no directory listing anywhere).
 *
 * The file is opened by its resolved path with O_NOFOLLOW|O_NONBLOCK (a FIFO swapped in
 * cannot block the opener, a symlink swapped in as the last component fails) and
 * checked again with fstat on the open descriptor: what is served is what was checked.
 *
 * The calls are synchronous on purpose: the roots are local directories and every step
 * here is one system call of a few microseconds on cached metadata, while a round trip
 * through libuv's thread pool costs tens of microseconds per call and several are
 * needed per request (measured: it dominates small-file HTTP throughput). Do not put the
 * boot roots on a network filesystem.
 */
import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';

export type RootPathRefusal = 'invalid' | 'forbidden' | 'not-found' | 'not-file';

export class RootPathError extends Error {
  override readonly name = 'RootPathError';
  readonly kind: RootPathRefusal;
  constructor(kind: RootPathRefusal, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Longest request path accepted (PATH_MAX-ish; TFTP and HTTP clients never need more). */
export const MAX_REQUEST_PATH = 1024;

/**
 * Turns a request path (HTTP: already percent-decoded) into a relative path of checked
 * segments joined by `/` (`''` for the root itself). Throws `RootPathError`.
 */
export function sanitizeRequestPath(requested: string): string {
  if (requested.length > MAX_REQUEST_PATH) throw new RootPathError('invalid', 'path too long');
  // Printable ASCII only, no backslash: rejects NUL, control bytes, DEL, non-ASCII, and
  // Windows-style separators that a later component might treat as `/`.
  if (!/^[\x20-\x5b\x5d-\x7e]*$/.test(requested)) {
    throw new RootPathError('invalid', 'path has a control, non-ASCII or backslash character');
  }
  const segments: string[] = [];
  for (const segment of requested.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') throw new RootPathError('forbidden', 'path has a ".." segment');
    if (segment.startsWith('.')) throw new RootPathError('forbidden', 'hidden files are not served');
    segments.push(segment);
  }
  return segments.join('/');
}

export interface OpenedFile {
  /** Open descriptor (read-only); the caller closes it. */
  readonly fd: number;
  /** Resolved real path. */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
}

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function refusalFor(error: unknown, what: string): RootPathError {
  const code = errnoOf(error);
  if (code === 'ENOENT' || code === 'ENOTDIR') return new RootPathError('not-found', `${what}: not found`);
  if (code === 'ELOOP') return new RootPathError('forbidden', `${what}: symlink loop or symlink swapped in`);
  if (code === 'EACCES' || code === 'EPERM')
    return new RootPathError('forbidden', `${what}: permission denied`);
  if (code === 'ENAMETOOLONG') return new RootPathError('invalid', `${what}: name too long`);
  return new RootPathError('not-found', `${what}: ${code ?? String(error)}`);
}

/** The real path of `requested` inside `root` (symlinks resolved and checked), or throws. */
export function resolveInRoot(root: string, requested: string): string {
  const relative = sanitizeRequestPath(requested);
  if (relative === '') throw new RootPathError('not-file', 'the root is a directory');
  let realRoot: string;
  try {
    realRoot = realpathSync.native(root);
  } catch (error) {
    throw refusalFor(error, 'root');
  }
  return resolveRelative(realRoot, relative);
}

function resolveRelative(realRoot: string, relative: string): string {
  let real: string;
  try {
    real = realpathSync.native(join(realRoot, relative));
  } catch (error) {
    throw refusalFor(error, relative);
  }
  if (!real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)) {
    throw new RootPathError('forbidden', `${relative}: resolves outside the root`);
  }
  return real;
}

/** Opens a path `resolveInRoot` returned: O_NOFOLLOW, regular files only. */
export function openResolved(real: string, shown = real): OpenedFile {
  let fd: number;
  try {
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw refusalFor(error, shown);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new RootPathError('not-file', `${shown}: not a regular file`);
    return { fd, path: real, size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino };
  } catch (error) {
    closeSync(fd);
    throw error instanceof RootPathError ? error : refusalFor(error, shown);
  }
}

/** Resolves `requested` inside `root` and opens it, or throws `RootPathError`. */
export function openInRoot(root: string, requested: string): OpenedFile {
  return openResolved(resolveInRoot(root, requested), requested);
}

/**
 * `openInRoot` with the two `realpath` calls remembered for `ttlMs` (the HTTP server's
 * per-request cost is dominated by system calls). What is opened is still the real
 * path, inside the root, with O_NOFOLLOW and fstat: a cached answer can only be a path
 * that was checked inside the root less than `ttlMs` ago; a file renamed over it is
 * seen at once (same path), a removed one fails to open and is resolved again.
 */
export class RootResolver {
  readonly root: string;
  readonly ttlMs: number;
  private realRoot: { path: string; at: number } | undefined;
  private readonly cache = new Map<string, { real: string; at: number }>();
  private static readonly MAX_ENTRIES = 4096;

  constructor(root: string, ttlMs = 1000) {
    this.root = root;
    this.ttlMs = ttlMs;
  }

  private rootPath(now: number): string {
    if (this.realRoot && now - this.realRoot.at < this.ttlMs) return this.realRoot.path;
    let path: string;
    try {
      path = realpathSync.native(this.root);
    } catch (error) {
      this.realRoot = undefined;
      throw refusalFor(error, 'root');
    }
    if (path !== this.realRoot?.path) this.cache.clear();
    this.realRoot = { path, at: now };
    return path;
  }

  /** The checked real path of `requested` (cached for `ttlMs`). */
  resolve(requested: string): string {
    const now = Date.now();
    const hit = this.cache.get(requested);
    if (hit && now - hit.at < this.ttlMs) return hit.real;
    const relative = sanitizeRequestPath(requested);
    if (relative === '') throw new RootPathError('not-file', 'the root is a directory');
    const real = resolveRelative(this.rootPath(now), relative);
    if (this.cache.size >= RootResolver.MAX_ENTRIES) this.cache.clear();
    this.cache.set(requested, { real, at: now });
    return real;
  }

  open(requested: string): OpenedFile {
    const real = this.resolve(requested);
    try {
      return openResolved(real, requested);
    } catch {
      // Perhaps a stale entry (file removed, or a symlink put in its place): resolve afresh
      // once, and let that answer stand.
      this.cache.delete(requested);
      return openResolved(this.resolve(requested), requested);
    }
  }
}
