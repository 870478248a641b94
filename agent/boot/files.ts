/**
 * Writes and removes a node's boot files in the TFTP root, the HTTP root and dnsmasq's
 * `dhcp-hostsdir`, and nothing anywhere else.
 *
 * - Atomic: each file is written to a hidden temporary file in its own directory
 *   (`.<name>.<pid>.<random>.mp-tmp`: hidden, so the servers never serve it, see
 *   `root-path.ts`), fsync'd, renamed over the target, and the directory fsync'd. A
 *   reader sees the old file or the new one, never half of one. Temporary files left by
 *   a crash are swept from a directory the first time this process writes into it.
 * - Confined: a relative path must be plain segments (no `..`, no hidden names, no
 *   control characters), resolve lexically inside its root, and every directory on the
 *   way must be a real directory or a symlink that resolves inside the root: a symlinked
 *   directory leading out of the root is refused. Files are then created by their
 *   resolved real path, with O_EXCL for the temporary file (never through a symlink).
 * - Recorded: what was written for a node is listed in a manifest
 *   (`<manifestDir>/<node uuid>.json`, written before the files as an intent, rewritten
 *   after), so that cleaning removes exactly those files, also after a restart or a crash
 *   mid-prepare. A config file is removed only if its content is still what this node
 *   wrote (its SHA-256 is in the manifest): when a MAC moved to another node whose
 *   prepare rewrote the file, the first node's clean leaves it alone.
 * - Idempotent: preparing twice writes the same files (unchanged files are not even
 *   rewritten); files of the previous prepare that are no longer wanted (a MAC removed,
 *   the boot mode changed) are removed; cleaning a node without a manifest does nothing.
 *
 * The roots are the agent's own directories; a local user who can write into them can
 * race the checks (swap a directory for a symlink between check and use), which is
 * outside what this module defends against.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rmdir,
  stat,
  unlink,
  utimes,
} from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../state.ts';
import { sanitizeRequestPath } from './root-path.ts';

export type TreeRoot = 'tftp' | 'http' | 'dhcp';

export interface BootTreeOptions {
  readonly tftpRoot: string;
  readonly httpRoot: string;
  /** dnsmasq's `dhcp-hostsdir`; without it, DHCP host entries are refused. */
  readonly dhcpHostsDir?: string;
  /** Where the per-node manifests live (not served). */
  readonly manifestDir: string;
  /** Mode of written files; they must be readable by whatever serves them. Default 0644. */
  readonly fileMode?: number;
  /** Mode of created directories. Default 0755. */
  readonly dirMode?: number;
}

/** A text file to write. */
export interface PlannedFile {
  readonly root: TreeRoot;
  readonly path: string;
  readonly content: string;
}

/** An image file to place into a root (hard link, or a copy across filesystems). */
export interface StagedImage {
  readonly root: TreeRoot;
  readonly path: string;
  /** Absolute path of the source, already checked by the caller. */
  readonly source: string;
}

export interface ManifestEntry {
  readonly root: TreeRoot;
  readonly path: string;
  /** SHA-256 of the content(s) this node wrote there; null for a staged image (removed whatever it holds). */
  readonly sha256: readonly string[] | null;
}

export interface Manifest {
  readonly v: 1;
  readonly node_uuid: string;
  /** `preparing` while files are being written (the list is then a superset). */
  readonly state: 'preparing' | 'prepared';
  readonly updated_at: string;
  readonly files: readonly ManifestEntry[];
}

export interface KeptFile {
  readonly root: TreeRoot;
  readonly path: string;
  readonly reason: string;
}

export interface PrepareOutcome {
  readonly files: readonly ManifestEntry[];
  /** Files this node had and no longer needs, removed. */
  readonly removed: readonly { root: TreeRoot; path: string }[];
  readonly kept: readonly KeptFile[];
}

export interface CleanOutcome {
  readonly removed: readonly { root: TreeRoot; path: string }[];
  readonly kept: readonly KeptFile[];
}

/** A path that would lead outside its root, or that cannot be written safely. */
export class BootPathError extends Error {
  override readonly name = 'BootPathError';
}

const TEMP_SUFFIX = '.mp-tmp';
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{8}\.mp-tmp$/;
/** Config files are small; a larger file at a config's path is not ours to hash. */
const MAX_HASHED_BYTES = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const errno = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;
const key = (root: TreeRoot, path: string) => `${root}:${path}`;

function isInside(realRoot: string, real: string): boolean {
  return real === realRoot || real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errno(error) === 'EPERM';
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

/** Checks a relative path: plain segments that the boot servers would serve as they are. */
export function checkRelativePath(path: string): string {
  let clean: string;
  try {
    clean = sanitizeRequestPath(path);
  } catch (error) {
    throw new BootPathError(`${JSON.stringify(path)}: ${(error as Error).message}`);
  }
  // sanitizeRequestPath strips leading slashes and empty segments: we want none of those.
  if (clean !== path || clean === '')
    throw new BootPathError(`${JSON.stringify(path)}: not a plain relative path`);
  return clean;
}

export class BootTree {
  readonly options: BootTreeOptions;
  readonly #fileMode: number;
  readonly #dirMode: number;
  readonly #swept = new Set<string>();
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(options: BootTreeOptions) {
    this.options = options;
    this.#fileMode = options.fileMode ?? 0o644;
    this.#dirMode = options.dirMode ?? 0o755;
  }

  rootDir(root: TreeRoot): string {
    const dir =
      root === 'tftp'
        ? this.options.tftpRoot
        : root === 'http'
          ? this.options.httpRoot
          : this.options.dhcpHostsDir;
    if (!dir) throw new BootPathError(`no directory configured for ${root} files`);
    return dir;
  }

  /** The real path of a root, created (with parents) when missing. */
  async #realRoot(root: TreeRoot): Promise<string> {
    const dir = resolve(this.rootDir(root));
    await mkdir(dir, { recursive: true, mode: this.#dirMode });
    return realpath(dir);
  }

  /**
   * Resolves `path` inside `root`: the real parent directory (created when `create`, in
   * which case every existing component must stay inside the root) and the target in it.
   * Returns null when a directory on the way does not exist and `create` is false.
   */
  async resolve(
    root: TreeRoot,
    path: string,
    create: boolean,
  ): Promise<{ realRoot: string; dir: string; target: string } | null> {
    const rel = checkRelativePath(path);
    const realRoot = await this.#realRoot(root);
    const lexical = resolve(realRoot, rel);
    if (!isInside(realRoot, lexical) || lexical === realRoot) {
      throw new BootPathError(`${root}:${rel}: outside the ${root} root`);
    }
    const segments = rel.split('/');
    const name = segments.pop()!;
    let current = realRoot;
    for (const segment of segments) {
      current = join(current, segment);
      let info: Awaited<ReturnType<typeof lstat>>;
      try {
        info = await lstat(current);
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
        if (!create) return null;
        await mkdir(current, { mode: this.#dirMode }).catch((e: unknown) => {
          if (errno(e) !== 'EEXIST') throw e;
        });
        info = await lstat(current);
      }
      if (info.isSymbolicLink() || info.isDirectory()) {
        let real: string;
        try {
          real = await realpath(current);
        } catch (error) {
          if (errno(error) === 'ENOENT' && !create) return null;
          throw new BootPathError(`${root}:${rel}: ${segment} is a dangling symlink`);
        }
        if (!isInside(realRoot, real)) {
          throw new BootPathError(`${root}:${rel}: ${segment} is a symlink leading outside the ${root} root`);
        }
        const realInfo = await stat(real);
        if (!realInfo.isDirectory()) throw new BootPathError(`${root}:${rel}: ${segment} is not a directory`);
        current = real;
      } else {
        throw new BootPathError(`${root}:${rel}: ${segment} is not a directory`);
      }
    }
    return { realRoot, dir: current, target: join(current, name) };
  }

  /** Removes temporary files that a crashed process left in `dir` (once per directory per process). */
  async #sweep(dir: string): Promise<void> {
    if (this.#swept.has(dir)) return;
    this.#swept.add(dir);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = TEMP_NAME.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      await unlink(join(dir, name)).catch(() => {});
    }
  }

  #tempPath(dir: string, name: string): string {
    return join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
  }

  /** Does `target` already hold exactly `data` (a regular file, not a symlink)? */
  async #sameContent(target: string, data: Buffer): Promise<boolean> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const info = await fh.stat();
      if (!info.isFile() || info.size !== data.length || (info.mode & 0o7777) !== this.#fileMode)
        return false;
      return (await fh.readFile()).equals(data);
    } catch {
      return false;
    } finally {
      await fh?.close();
    }
  }

  /** Writes `content` at `path` in `root` atomically; returns whether the file changed. */
  async writeFile(root: TreeRoot, path: string, content: string): Promise<boolean> {
    const where = (await this.resolve(root, path, true))!;
    const data = Buffer.from(content, 'utf8');
    if (await this.#sameContent(where.target, data)) return false;
    await this.#sweep(where.dir);
    const tmp = this.#tempPath(where.dir, basename(where.target));
    try {
      // `wx` = O_CREAT|O_EXCL: fails rather than follow anything already at the name.
      const fh = await open(tmp, 'wx', this.#fileMode);
      try {
        await fh.chmod(this.#fileMode); // the umask may have narrowed it
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, where.target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
    await fsyncDir(where.dir);
    return true;
  }

  /**
   * Places `source` at `path` in `root`: a hard link (instant, no space; keeps serving
   * the same bytes if the image is replaced or collected meanwhile), or a copy when
   * the two are on different filesystems. Skipped when already in place.
   */
  async stageImage(root: TreeRoot, path: string, source: string, signal?: AbortSignal): Promise<boolean> {
    const where = (await this.resolve(root, path, true))!;
    const src = await stat(source);
    if (!src.isFile()) throw new BootPathError(`${source}: not a regular file`);
    try {
      const dst = await lstat(where.target);
      // A copy carries the source's mtime (to the millisecond: utimes takes no finer).
      const copied = dst.size === src.size && Math.abs(dst.mtimeMs - src.mtimeMs) < 1;
      if (dst.isFile() && (dst.ino === src.ino || copied)) {
        return false;
      }
    } catch (error) {
      if (errno(error) !== 'ENOENT') throw error;
    }
    await this.#sweep(where.dir);
    const tmp = this.#tempPath(where.dir, basename(where.target));
    try {
      try {
        await link(source, tmp);
      } catch (error) {
        const code = errno(error);
        if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw error;
        await this.#copy(source, tmp, signal);
        await utimes(tmp, src.atime, src.mtime); // so that the next prepare sees it in place
      }
      signal?.throwIfAborted();
      await rename(tmp, where.target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
    await fsyncDir(where.dir);
    return true;
  }

  /** Copies `source` into the new file `tmp`, chunk by chunk, honouring `signal`. */
  async #copy(source: string, tmp: string, signal?: AbortSignal): Promise<void> {
    const input = await open(source, 'r');
    try {
      const fh = await open(tmp, 'wx', this.#fileMode);
      try {
        await fh.chmod(this.#fileMode);
        const buffer = Buffer.allocUnsafe(1024 * 1024);
        // Bounded by the source's size: each round reads at least one byte or ends.
        for (;;) {
          signal?.throwIfAborted();
          const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) break;
          await fh.write(buffer, 0, bytesRead);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
    } finally {
      await input.close();
    }
  }

  /**
   * Removes `path` from `root` if it is a regular file and (when `hashes` is given) its
   * content is one of them. Returns 'removed', 'absent', or why it was kept.
   */
  async removeFile(
    root: TreeRoot,
    path: string,
    hashes: readonly string[] | null,
  ): Promise<'removed' | 'absent' | { kept: string }> {
    const where = await this.resolve(root, path, false);
    if (!where) return 'absent';
    let info: Awaited<ReturnType<typeof lstat>>;
    try {
      info = await lstat(where.target);
    } catch (error) {
      if (errno(error) === 'ENOENT') return 'absent';
      throw error;
    }
    if (info.isSymbolicLink()) return { kept: 'is a symlink now, not the file this node wrote' };
    if (!info.isFile()) return { kept: 'is not a regular file' };
    if (hashes) {
      if (info.size > MAX_HASHED_BYTES) return { kept: 'content changed since this node wrote it' };
      let data: Buffer;
      try {
        data = await readFile(where.target, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
      } catch (error) {
        if (errno(error) === 'ENOENT') return 'absent';
        throw error;
      }
      if (!hashes.includes(sha256(data))) {
        return { kept: 'content changed since this node wrote it (another node uses this MAC now?)' };
      }
    }
    try {
      await unlink(where.target);
    } catch (error) {
      if (errno(error) === 'ENOENT') return 'absent';
      throw error;
    }
    await fsyncDir(where.dir);
    return 'removed';
  }

  // -------------------------------------------------------------------------------------
  // Manifests

  #manifestPath(nodeUuid: string): string {
    if (!UUID.test(nodeUuid)) throw new BootPathError(`node uuid ${JSON.stringify(nodeUuid)} is not a UUID`);
    return join(this.options.manifestDir, `${nodeUuid}.json`);
  }

  /** The node's manifest, or null when nothing is recorded for it. */
  async readManifest(nodeUuid: string): Promise<Manifest | null> {
    let text: string;
    try {
      text = await readFile(this.#manifestPath(nodeUuid), 'utf8');
    } catch (error) {
      if (errno(error) === 'ENOENT') return null;
      throw error;
    }
    const value = JSON.parse(text) as Partial<Manifest> | null;
    if (value?.v !== 1 || value.node_uuid !== nodeUuid || !Array.isArray(value.files)) {
      throw new Error(`${this.#manifestPath(nodeUuid)}: not a boot-files manifest of node ${nodeUuid}`);
    }
    // Entries are re-checked (checkRelativePath, root confinement) when used.
    const files = value.files.filter(
      (f): f is ManifestEntry =>
        (f?.root === 'tftp' || f?.root === 'http' || f?.root === 'dhcp') &&
        typeof f.path === 'string' &&
        (f.sha256 === null ||
          (Array.isArray(f.sha256) && f.sha256.every((h: unknown) => typeof h === 'string'))),
    );
    return {
      v: 1,
      node_uuid: nodeUuid,
      state: value.state ?? 'prepared',
      updated_at: String(value.updated_at),
      files,
    };
  }

  async #writeManifest(
    nodeUuid: string,
    state: Manifest['state'],
    files: readonly ManifestEntry[],
  ): Promise<void> {
    await mkdir(this.options.manifestDir, { recursive: true, mode: 0o700 });
    const manifest: Manifest = {
      v: 1,
      node_uuid: nodeUuid,
      state,
      updated_at: new Date().toISOString(),
      files,
    };
    await writeFileAtomic(this.#manifestPath(nodeUuid), `${JSON.stringify(manifest, null, 2)}\n`, 0o600);
  }

  async #removeManifest(nodeUuid: string): Promise<void> {
    try {
      await unlink(this.#manifestPath(nodeUuid));
      await fsyncDir(this.options.manifestDir);
    } catch (error) {
      if (errno(error) !== 'ENOENT') throw error;
    }
  }

  /** Runs `fn` after any earlier operation on the same node has finished. */
  async #locked<T>(nodeUuid: string, fn: () => Promise<T>): Promise<T> {
    const prior = this.#locks.get(nodeUuid) ?? Promise.resolve();
    const run = prior.catch(() => {}).then(fn);
    this.#locks.set(nodeUuid, run);
    try {
      return await run;
    } finally {
      if (this.#locks.get(nodeUuid) === run) this.#locks.delete(nodeUuid);
    }
  }

  /** Removes the node's own directories (`<uuid>` in the TFTP and HTTP roots) when empty. */
  async #removeNodeDirs(nodeUuid: string): Promise<void> {
    for (const root of ['tftp', 'http'] as const) {
      const where = await this.resolve(root, `${nodeUuid}/x`, false).catch(() => null);
      if (!where || where.dir === where.realRoot) continue;
      await rmdir(where.dir).catch(() => {}); // ENOTEMPTY: something else lives there; keep it
    }
  }

  async #removeEntries(
    entries: readonly ManifestEntry[],
    removed: { root: TreeRoot; path: string }[],
    kept: KeptFile[],
    failed: ManifestEntry[],
  ): Promise<void> {
    for (const entry of entries) {
      try {
        const outcome = await this.removeFile(entry.root, entry.path, entry.sha256);
        if (outcome === 'removed') removed.push({ root: entry.root, path: entry.path });
        else if (outcome !== 'absent')
          kept.push({ root: entry.root, path: entry.path, reason: outcome.kept });
      } catch (error) {
        if (error instanceof BootPathError) {
          kept.push({ root: entry.root, path: entry.path, reason: error.message });
        } else {
          failed.push(entry);
          kept.push({ root: entry.root, path: entry.path, reason: (error as Error).message });
        }
      }
    }
  }

  /**
   * Writes the node's files and staged images, records them, and removes what an earlier
   * prepare of the node wrote that is no longer wanted.
   */
  prepareNode(
    nodeUuid: string,
    files: readonly PlannedFile[],
    images: readonly StagedImage[] = [],
    signal?: AbortSignal,
  ): Promise<PrepareOutcome> {
    return this.#locked(nodeUuid, async () => {
      const entries: ManifestEntry[] = [];
      const seen = new Set<string>();
      for (const f of [...files, ...images]) {
        checkRelativePath(f.path);
        if (seen.has(key(f.root, f.path))) throw new BootPathError(`${f.root}:${f.path} planned twice`);
        seen.add(key(f.root, f.path));
        entries.push({ root: f.root, path: f.path, sha256: 'content' in f ? [sha256(f.content)] : null });
      }
      const old = await this.readManifest(nodeUuid);
      // The intent: every file this node may have on disk once this prepare is cut short.
      const intent = new Map<string, ManifestEntry>();
      for (const e of old?.files ?? []) intent.set(key(e.root, e.path), e);
      for (const e of entries) {
        const prior = intent.get(key(e.root, e.path));
        const hashes = e.sha256 && prior?.sha256 ? [...new Set([...prior.sha256, ...e.sha256])] : e.sha256;
        intent.set(key(e.root, e.path), { ...e, sha256: hashes });
      }
      await this.#writeManifest(nodeUuid, 'preparing', [...intent.values()]);

      for (const image of images) {
        signal?.throwIfAborted();
        await this.stageImage(image.root, image.path, image.source, signal);
      }
      for (const file of files) {
        signal?.throwIfAborted();
        await this.writeFile(file.root, file.path, file.content);
      }

      const removed: { root: TreeRoot; path: string }[] = [];
      const kept: KeptFile[] = [];
      const failed: ManifestEntry[] = [];
      const stale = (old?.files ?? []).filter((e) => !seen.has(key(e.root, e.path)));
      await this.#removeEntries(stale, removed, kept, failed);
      // Stale files that could not be removed stay recorded, so that clean retries them.
      await this.#writeManifest(nodeUuid, 'prepared', [...entries, ...failed]);
      return { files: entries, removed, kept };
    });
  }

  /**
   * Removes what the manifest lists, then the manifest. Files that errored stay listed
   * (and the call throws) so that a retry finishes the job.
   */
  cleanNode(nodeUuid: string): Promise<CleanOutcome> {
    return this.#locked(nodeUuid, async () => {
      const manifest = await this.readManifest(nodeUuid);
      if (!manifest) return { removed: [], kept: [] };
      const removed: { root: TreeRoot; path: string }[] = [];
      const kept: KeptFile[] = [];
      const failed: ManifestEntry[] = [];
      await this.#removeEntries(manifest.files, removed, kept, failed);
      if (failed.length > 0) {
        await this.#writeManifest(nodeUuid, manifest.state, failed);
        throw new Error(
          `could not remove ${failed.length} boot file(s) of node ${nodeUuid}: ${kept
            .filter((k) => failed.some((f) => f.root === k.root && f.path === k.path))
            .map((k) => `${k.root}:${k.path}: ${k.reason}`)
            .join('; ')}`,
        );
      }
      await this.#removeNodeDirs(nodeUuid);
      await this.#removeManifest(nodeUuid);
      return { removed, kept };
    });
  }
}

/** The shape of this module's temporary file names (for tests and operators' cleanup scripts). */
export const TEMP_FILE_PATTERN = TEMP_NAME;
