/**
 * build:ramdisk — Metalplane's deploy ramdisk: the Debian kernel + a small initramfs
 * (busybox-static, the NIC/disk/fs modules with their dependencies, sfdisk with its
 * libraries, `/init` and the udhcpc script of `ramdisk/initramfs/`, and the ramdisk
 * program `ramdisk/cmd/metalplane-ramdisk`, a static Go binary). docs/ramdisk.md.
 *
 *   npm run build:ramdisk -- [--program PATH] [--cache-dir DIR] [--compression auto|gzip|zstd]
 *                            [--force] [--upload [--name NAME] [--url URL] [--os-username U --os-password P]]
 *
 * Inputs come only from installed Debian packages (their versions, from dpkg, are part of
 * the cache key) plus the program and the init scripts. The archive is written here in
 * TypeScript (newc cpio, entries sorted, owner root, every mtime = SOURCE_DATE_EPOCH = the
 * newest input package's changelog date), compressed deterministically (gzip -9 without a
 * name or time, or zstd -19, whichever is smaller), so the same inputs give the same bytes.
 * Output: `<cache>/<key>/{vmlinuz,initramfs.img,manifest.json}`; a second run with the
 * same inputs is a cache hit.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  existsSync,
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  gunzipSync,
  gzipSync,
  constants as zlibConstants,
  zstdCompressSync,
  zstdDecompressSync,
} from 'node:zlib';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { publishCacheEntry, withBuildLock } from './cache-entry.ts';

/** Bump to rebuild every cached ramdisk (the builder's own source is hashed into the key as well). */
export const BUILDER_VERSION = 1;
export const REPO_ROOT = resolve(import.meta.dirname, '..');
export const DEFAULT_CACHE_DIR = join(REPO_ROOT, '.cache', 'ramdisk');
export const DEFAULT_INIT_DIR = join(REPO_ROOT, 'ramdisk', 'initramfs');
const PROGRAM_PACKAGE = './cmd/metalplane-ramdisk';

/** Modules loaded at boot (with their dependencies); those the kernel lacks are listed in the manifest. */
export const MODULES = {
  nic: ['e1000', 'e1000e', 'virtio_net', 'igb', 'ixgbe', 'i40e', 'bnxt_en', 'tg3', 'r8169'],
  disk: ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'ahci', 'ata_piix', 'nvme'],
  fs: ['vfat', 'isofs', 'nls_cp437', 'nls_ascii', 'nls_utf8', 'nls_iso8859-1'],
} as const;
/** Binaries copied with their shared libraries (ldd). */
const EXTRA_BINARIES = ['/usr/sbin/sfdisk'];
const BUSYBOX = '/bin/busybox';

export type Compression = 'gzip' | 'zstd';

export interface BuildOptions {
  readonly cacheDir?: string;
  /** A prebuilt program; default: build `ramdisk/cmd/metalplane-ramdisk` with Go. */
  readonly program?: string;
  readonly initDir?: string;
  readonly kernelVersion?: string;
  readonly compression?: Compression | 'auto';
  /** Rebuild even when the cache has this key. */
  readonly force?: boolean;
  readonly log?: (line: string) => void;
}

export interface FileSummary {
  readonly name: string;
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly key: string;
  readonly builder_version: number;
  readonly kernel_version: string;
  readonly source_date_epoch: number;
  readonly compression: Compression;
  readonly compressed_sizes: Partial<Record<Compression, number>>;
  readonly unpacked_bytes: number;
  readonly entries: number;
  readonly packages: Record<string, string>;
  readonly program_sha256: string;
  readonly init_files: Record<string, string>;
  readonly modules: string[];
  readonly modules_missing: string[];
  readonly files: Record<string, { size: number; sha256: string }>;
}

export interface BuildResult {
  readonly key: string;
  readonly dir: string;
  readonly hit: boolean;
  readonly seconds: number;
  readonly files: FileSummary[];
  readonly manifest: Manifest;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const sha256File = (path: string) => sha256(readFileSync(path));

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
}

function findOnPath(name: string, fallbacks: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...fallbacks]) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** The Go toolchain: `go` on PATH, else /usr/local/go/bin/go. */
export function findGo(): string | undefined {
  return findOnPath('go', ['/usr/local/go/bin']);
}

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function newestKernelVersion(): string {
  const versions = readdirSync('/boot')
    .filter((name) => name.startsWith('vmlinuz-'))
    .map((name) => name.slice('vmlinuz-'.length))
    .filter((version) => existsSync(join('/lib/modules', version, 'modules.dep')))
    .sort(compareVersions);
  const newest = versions.at(-1);
  if (!newest)
    throw new Error('no /boot/vmlinuz-* with /lib/modules/*/modules.dep: install linux-image-amd64');
  return newest;
}

const moduleName = (path: string) =>
  basename(path)
    .replace(/\.ko(\.xz|\.zst|\.gz)?$/, '')
    .replaceAll('-', '_');

/** The named modules and their dependencies (from modules.dep), dependencies first; unknown names in `missing`. */
export function resolveModules(
  modulesDep: string,
  names: readonly string[],
): { paths: string[]; missing: string[] } {
  const byName = new Map<string, { path: string; deps: string[] }>();
  for (const line of modulesDep.split('\n')) {
    const at = line.indexOf(':');
    if (at <= 0) continue;
    const path = line.slice(0, at);
    const deps = line
      .slice(at + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    byName.set(moduleName(path), { path, deps });
  }
  const paths: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const module = byName.get(name);
    if (!module) {
      missing.push(name);
      return;
    }
    for (const dep of module.deps) visit(moduleName(dep));
    paths.push(module.path);
  };
  for (const name of names) visit(name.replaceAll('-', '_'));
  return { paths, missing };
}

/** The shared libraries (and the loader) a dynamic binary needs, from ldd. */
function sharedLibraries(binary: string): string[] {
  return [...run('ldd', [binary]).matchAll(/(\/\S+)/g)].map((match) => match[1]!).filter((p) => p !== binary);
}

/** Package name → version of the packages owning the given files (dpkg -S, dpkg-query). */
function owningPackages(paths: readonly string[]): Record<string, string> {
  const owners = new Set<string>();
  const query = (list: readonly string[]) => {
    let output = '';
    try {
      output = run('dpkg', ['-S', ...list]);
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? '');
    }
    const found = new Set<string>();
    for (const line of output.split('\n')) {
      const at = line.lastIndexOf(': ');
      if (at <= 0 || line.startsWith('diversion ')) continue;
      for (const name of line.slice(0, at).split(', ')) owners.add(name.trim());
      found.add(line.slice(at + 2));
    }
    return list.filter((path) => !found.has(path));
  };
  // usrmerge: dpkg may know a file under its /usr or /usr-less name, or under its real name.
  const toggled = (path: string) => (path.startsWith('/usr/') ? path.slice('/usr'.length) : `/usr${path}`);
  for (const path of query(paths)) {
    const real = realpathSync(path);
    const alternatives = [...new Set([toggled(path), real, toggled(real)])];
    if (query(alternatives).length === alternatives.length)
      throw new Error(`${path} is not from a Debian package`);
  }
  const packages: Record<string, string> = {};
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format placeholders
  const format = '${Package}:${Architecture}\t${Version}\n';
  const output = run('dpkg-query', ['-W', '-f', format, ...owners]);
  for (const line of output.split('\n').filter(Boolean).sort()) {
    const [name, version] = line.split('\t') as [string, string];
    packages[name] = version;
  }
  return packages;
}

/** The newest date among the packages' Debian changelogs (seconds), or 0: SOURCE_DATE_EPOCH. */
function packagesEpoch(packages: Record<string, string>): number {
  let newest = 0;
  for (const fullName of Object.keys(packages)) {
    const dir = join('/usr/share/doc', fullName.split(':')[0]!);
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((name) => /^changelog\.Debian(\.[\w-]+)?\.gz$/.test(name));
    } catch {}
    for (const name of names) {
      try {
        const text = gunzipSync(readFileSync(join(dir, name)))
          .subarray(0, 65536)
          .toString('utf8');
        const match = /^ -- .*?>\s+(.+)$/m.exec(text);
        const when = match ? Date.parse(match[1]!) : Number.NaN;
        if (Number.isFinite(when)) newest = Math.max(newest, Math.floor(when / 1000));
      } catch {}
    }
  }
  return newest;
}

const PROGRAM_SOURCE = join(REPO_ROOT, 'ramdisk', 'cmd', 'metalplane-ramdisk');

/** Whether `ramdisk/cmd/metalplane-ramdisk` has Go sources to build (else pass a prebuilt program). */
export function hasProgramSource(): boolean {
  try {
    return readdirSync(PROGRAM_SOURCE).some((name) => name.endsWith('.go'));
  } catch {
    return false;
  }
}

function buildProgram(log: (line: string) => void): { path: string; cleanup: () => void } {
  const source = PROGRAM_SOURCE;
  if (!hasProgramSource()) {
    throw new Error(`${source} has no Go files yet: pass --program PATH (a static linux/amd64 binary)`);
  }
  const go = findGo();
  if (!go) throw new Error('Go not found (PATH or /usr/local/go/bin/go): install Go or pass --program PATH');
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-ramdisk-program-'));
  const out = join(dir, 'metalplane-ramdisk');
  log(`go build ${PROGRAM_PACKAGE}`);
  execFileSync(
    go,
    ['build', '-C', join(REPO_ROOT, 'ramdisk'), '-trimpath', '-ldflags=-s -w', '-o', out, PROGRAM_PACKAGE],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CGO_ENABLED: '0', GOOS: 'linux', GOARCH: 'amd64' },
    },
  );
  return { path: out, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

interface Inputs {
  readonly kernelVersion: string;
  readonly vmlinuz: string;
  readonly modulePaths: string[];
  readonly modulesMissing: string[];
  readonly binaries: string[];
  readonly packages: Record<string, string>;
  readonly programSha256: string;
  readonly initFiles: Record<string, string>;
  readonly sourceDateEpoch: number;
  readonly compression: Compression | 'auto';
}

/** The cache key: everything that decides the output's bytes. */
export function cacheKey(inputs: Omit<Inputs, 'vmlinuz' | 'modulePaths' | 'binaries'>): string {
  const builder = sha256(readFileSync(import.meta.filename));
  return sha256(
    JSON.stringify({
      builder_version: BUILDER_VERSION,
      builder,
      kernel: inputs.kernelVersion,
      packages: inputs.packages,
      program: inputs.programSha256,
      init: inputs.initFiles,
      modules_missing: inputs.modulesMissing,
      source_date_epoch: inputs.sourceDateEpoch,
      compression: inputs.compression,
    }),
  ).slice(0, 32);
}

// ---- newc cpio ------------------------------------------------------------------------

export type Entry =
  | { path: string; type: 'dir'; mode: number }
  | { path: string; type: 'file'; mode: number; data: Buffer }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'char'; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** A newc ("070701") archive of the entries, sorted by path, inode numbers in that order, owner 0:0. */
export function newcArchive(entries: readonly Entry[], mtime: number): Buffer {
  const chunks: Buffer[] = [];
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const header = (fields: number[], name: string, data: Buffer) => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const head = Buffer.from(
      `070701${fields.map((n) => n.toString(16).padStart(8, '0')).join('')}${nameBytes.length.toString(16).padStart(8, '0')}00000000`,
      'ascii',
    );
    chunks.push(head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length));
  };
  let ino = 1;
  for (const entry of sorted) {
    const name = entry.path.replace(/^\/+/, '');
    let mode: number;
    let data: Buffer = Buffer.alloc(0);
    let nlink = 1;
    let rdev = [0, 0];
    switch (entry.type) {
      case 'dir':
        mode = S_IFDIR | entry.mode;
        nlink = 2;
        break;
      case 'file':
        mode = S_IFREG | entry.mode;
        data = entry.data;
        break;
      case 'symlink':
        mode = S_IFLNK | 0o777;
        data = Buffer.from(entry.target, 'utf8');
        break;
      case 'char':
        mode = S_IFCHR | entry.mode;
        rdev = [entry.major, entry.minor];
        break;
    }
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
    header([ino++, mode, 0, 0, nlink, mtime, data.length, 0, 0, rdev[0]!, rdev[1]!], name, data);
  }
  header([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 'TRAILER!!!', Buffer.alloc(0));
  return Buffer.concat(chunks);
}

function compress(archive: Buffer, compression: Compression): Buffer {
  if (compression === 'gzip') return gzipSync(archive, { level: 9 }); // no name, mtime 0 (gzip -n -9)
  return zstdCompressSync(archive, {
    params: { [zlibConstants.ZSTD_c_compressionLevel]: 19, [zlibConstants.ZSTD_c_checksumFlag]: 1 },
  });
}

function readModule(path: string): Buffer {
  const data = readFileSync(path);
  if (path.endsWith('.zst')) return zstdDecompressSync(data);
  if (path.endsWith('.gz')) return gunzipSync(data);
  if (path.endsWith('.xz')) return execFileSync('xz', ['-dc', path], { maxBuffer: 1 << 28 });
  return data;
}

function initramfsEntries(inputs: Inputs, programPath: string, initDir: string, key: string): Entry[] {
  const entries: Entry[] = [];
  const dirs = new Set<string>();
  const addDir = (path: string) => {
    for (let d = path; d !== '/' && d !== '.' && !dirs.has(d); d = dirname(d)) {
      dirs.add(d);
      entries.push({ path: d, type: 'dir', mode: 0o755 });
    }
  };
  const addFile = (path: string, data: Buffer, mode = 0o755) => {
    addDir(dirname(path));
    entries.push({ path, type: 'file', mode, data });
  };
  for (const d of [
    '/bin',
    '/sbin',
    '/usr/bin',
    '/usr/sbin',
    '/etc',
    '/proc',
    '/sys',
    '/dev',
    '/run',
    '/root',
  ])
    addDir(d);
  addDir('/tmp');
  entries.push({ path: '/dev/console', type: 'char', mode: 0o600, major: 5, minor: 1 });
  entries.push({ path: '/dev/null', type: 'char', mode: 0o666, major: 1, minor: 3 });
  addFile('/init', readFileSync(join(initDir, 'init')));
  addFile('/etc/udhcpc.script', readFileSync(join(initDir, 'udhcpc.script')));
  addFile('/etc/metalplane-ramdisk.version', Buffer.from(`${key}\n`), 0o644);
  addFile(BUSYBOX, readFileSync(BUSYBOX));
  entries.push({ path: '/bin/sh', type: 'symlink', target: 'busybox' });
  addFile('/bin/metalplane-ramdisk', readFileSync(programPath));
  const moduleDir = join('/lib/modules', inputs.kernelVersion);
  const order: string[] = [];
  for (const rel of inputs.modulePaths) {
    const name = basename(rel).replace(/\.(xz|zst|gz)$/, '');
    addFile(`/lib/modules/${name}`, readModule(join(moduleDir, rel)), 0o644);
    order.push(name);
  }
  addFile('/lib/modules/load-order', Buffer.from(`${order.join('\n')}\n`), 0o644);
  for (const binary of inputs.binaries) {
    addFile(binary, readFileSync(binary)); // readFileSync follows symlinks (cp -L)
  }
  return entries;
}

function gatherInputs(options: BuildOptions, programPath: string, initDir: string): Inputs {
  const kernelVersion = options.kernelVersion ?? newestKernelVersion();
  const vmlinuz = join('/boot', `vmlinuz-${kernelVersion}`);
  const moduleDir = join('/lib/modules', kernelVersion);
  const { paths: modulePaths, missing: modulesMissing } = resolveModules(
    readFileSync(join(moduleDir, 'modules.dep'), 'utf8'),
    [...MODULES.nic, ...MODULES.disk, ...MODULES.fs],
  );
  for (const binary of [BUSYBOX, ...EXTRA_BINARIES]) {
    if (!existsSync(binary)) throw new Error(`${binary} missing: see scripts/debian-packages.txt`);
  }
  const binaries = [
    ...new Set(EXTRA_BINARIES.flatMap((binary) => [binary, ...sharedLibraries(binary)])),
  ].sort();
  const packages = owningPackages([vmlinuz, BUSYBOX, ...binaries]);
  const initFiles: Record<string, string> = {};
  for (const name of readdirSync(initDir).sort()) {
    const path = join(initDir, name);
    if (lstatSync(path).isFile()) initFiles[name] = sha256File(path);
  }
  for (const required of ['init', 'udhcpc.script']) {
    if (!initFiles[required]) throw new Error(`${join(initDir, required)} missing`);
  }
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  const sourceDateEpoch =
    fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) : packagesEpoch(packages);
  return {
    kernelVersion,
    vmlinuz,
    modulePaths,
    modulesMissing,
    binaries,
    packages,
    programSha256: sha256File(programPath),
    initFiles,
    sourceDateEpoch,
    compression: options.compression ?? 'auto',
  };
}

function summaries(dir: string, manifest: Manifest): FileSummary[] {
  return Object.entries(manifest.files).map(([name, { size, sha256 }]) => ({
    name,
    path: join(dir, name),
    size,
    sha256,
  }));
}

function readCached(dir: string): Manifest | undefined {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    for (const [name, { size }] of Object.entries(manifest.files)) {
      if (statSync(join(dir, name)).size !== size) return undefined;
    }
    return manifest;
  } catch {
    return undefined;
  }
}

/**
 * The ramdisk for `options`, from the cache or built. One build at a time per cache
 * directory, across processes (`withBuildLock`): on a cold cache, parallel callers wait
 * for the first build and then find it in the cache.
 */
export async function buildRamdisk(options: BuildOptions = {}): Promise<BuildResult> {
  const cacheDir = resolve(options.cacheDir ?? DEFAULT_CACHE_DIR);
  mkdirSync(cacheDir, { recursive: true });
  return withBuildLock(join(cacheDir, '.build.lock'), () => buildHoldingLock(options));
}

async function buildHoldingLock(options: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const cacheDir = resolve(options.cacheDir ?? DEFAULT_CACHE_DIR);
  const initDir = resolve(options.initDir ?? DEFAULT_INIT_DIR);
  const built = options.program ? undefined : buildProgram(log);
  const programPath = options.program ? resolve(options.program) : built!.path;
  try {
    const inputs = gatherInputs(options, programPath, initDir);
    const key = cacheKey(inputs);
    const dir = join(cacheDir, key);
    const cached = options.force ? undefined : readCached(dir);
    if (cached) {
      return {
        key,
        dir,
        hit: true,
        seconds: (performance.now() - started) / 1000,
        files: summaries(dir, cached),
        manifest: cached,
      };
    }
    log(`building ${key} (kernel ${inputs.kernelVersion}, ${inputs.modulePaths.length} modules)`);
    const entries = initramfsEntries(inputs, programPath, initDir, key);
    const archive = newcArchive(entries, inputs.sourceDateEpoch);
    const candidates: Compression[] = inputs.compression === 'auto' ? ['gzip', 'zstd'] : [inputs.compression];
    const compressed = candidates.map((c) => ({ compression: c, data: compress(archive, c) }));
    const best = compressed.reduce((a, b) => (b.data.length < a.data.length ? b : a));
    const vmlinuz = readFileSync(inputs.vmlinuz);
    const files = { vmlinuz, 'initramfs.img': best.data };
    const manifest: Manifest = {
      key,
      builder_version: BUILDER_VERSION,
      kernel_version: inputs.kernelVersion,
      source_date_epoch: inputs.sourceDateEpoch,
      compression: best.compression,
      compressed_sizes: Object.fromEntries(compressed.map((c) => [c.compression, c.data.length])),
      unpacked_bytes: archive.length,
      entries: entries.length,
      packages: inputs.packages,
      program_sha256: inputs.programSha256,
      init_files: inputs.initFiles,
      modules: inputs.modulePaths.map((p) => basename(p).replace(/\.(xz|zst|gz)$/, '')),
      modules_missing: inputs.modulesMissing,
      files: Object.fromEntries(
        Object.entries(files).map(([name, data]) => [name, { size: data.length, sha256: sha256(data) }]),
      ),
    };
    mkdirSync(cacheDir, { recursive: true });
    const staging = mkdtempSync(join(cacheDir, `.${key}.`));
    for (const [name, data] of Object.entries(files)) writeFileSync(join(staging, name), data);
    writeFileSync(join(staging, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    if (options.force) rmSync(dir, { recursive: true, force: true });
    // Another process (a parallel test file) may have built the same key meanwhile: its
    // entry stands, and is what this call answers.
    if (!publishCacheEntry(staging, dir, () => readCached(dir) !== undefined)) {
      return buildHoldingLock({ ...options, force: false });
    }
    return {
      key,
      dir,
      hit: false,
      seconds: (performance.now() - started) / 1000,
      files: summaries(dir, manifest),
      manifest,
    };
  } finally {
    built?.cleanup();
  }
}

export function summaryTable(result: BuildResult): string {
  const rows = result.files.map((f) => [f.name, `${(f.size / 1e6).toFixed(2)} MB`, f.sha256]);
  const total = result.files.reduce((sum, f) => sum + f.size, 0);
  rows.push(['total', `${(total / 1e6).toFixed(2)} MB`, '']);
  const widths = [0, 1, 2].map((i) =>
    Math.max(...rows.map((r) => r[i]!.length), ['file', 'size', 'sha256'][i]!.length),
  );
  const line = (r: string[]) =>
    r
      .map((cell, i) => (i === 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(['file', 'size', 'sha256']),
    ...rows.map(line),
    `${result.hit ? 'cache hit' : 'built'}: ${result.dir} (${result.manifest.compression}, kernel ${result.manifest.kernel_version}) in ${result.seconds.toFixed(2)} s`,
  ].join('\n');
}

interface UploadOptions {
  name?: string;
  url?: string;
  osUsername?: string;
  osPassword?: string;
  osCloud?: string;
}

/**
 * The API and credentials of a `clouds.yaml` cloud (as `npm start` writes it for the
 * `baremetal` CLI): `baremetal_endpoint_override` (or `auth.endpoint`), `auth.username`,
 * `auth.password`. Looked up in OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/.
 */
export function cloudCredentials(
  cloud: string,
  env: NodeJS.ProcessEnv = process.env,
): { url?: string; username?: string; password?: string } {
  const candidates = [
    env.OS_CLIENT_CONFIG_FILE,
    'clouds.yaml',
    join(homedir(), '.config', 'openstack', 'clouds.yaml'),
    '/etc/openstack/clouds.yaml',
  ].filter((path): path is string => Boolean(path));
  const file = candidates.find((path) => existsSync(path));
  if (!file) throw new Error(`--os-cloud ${cloud}: no clouds.yaml (tried ${candidates.join(', ')})`);
  const config = parseYaml(readFileSync(file, 'utf8')) as {
    clouds?: Record<
      string,
      {
        auth?: { username?: string; password?: string; endpoint?: string };
        baremetal_endpoint_override?: string;
      }
    >;
  };
  const entry = config.clouds?.[cloud];
  if (!entry) throw new Error(`--os-cloud ${cloud}: not in ${file}`);
  const url = entry.baremetal_endpoint_override ?? entry.auth?.endpoint;
  return {
    ...(url ? { url } : {}),
    ...(entry.auth?.username !== undefined ? { username: entry.auth.username } : {}),
    ...(entry.auth?.password !== undefined ? { password: entry.auth.password } : {}),
  };
}

/** Registers and uploads the pair as one `kernel+ramdisk` image through the operator CLI's code. */
async function upload(result: BuildResult, given: UploadOptions, out: (line: string) => void): Promise<void> {
  const { cliProgram } = await import('../cli/metalplane.ts');
  const cloudName = given.osCloud ?? process.env.OS_CLOUD;
  const cloud = cloudName ? cloudCredentials(cloudName) : {};
  // Flags first, then the cloud; the CLI itself falls back to OS_ENDPOINT / OS_USERNAME / OS_PASSWORD.
  const options = {
    ...given,
    url: given.url ?? cloud.url,
    osUsername: given.osUsername ?? cloud.username,
    osPassword: given.osPassword ?? cloud.password,
  };
  const name = options.name ?? `metalplane-ramdisk-${result.key.slice(0, 12)}`;
  const file = (n: string) => join(result.dir, n);
  const args = [
    ...(options.url ? ['--url', options.url] : []),
    ...(options.osUsername !== undefined ? ['--os-username', options.osUsername] : []),
    ...(options.osPassword !== undefined ? ['--os-password', options.osPassword] : []),
    'image',
    'upload',
    name,
    '--kernel',
    file('vmlinuz'),
    '--ramdisk',
    file('initramfs.img'),
    '--description',
    `Metalplane deploy ramdisk (kernel ${result.manifest.kernel_version}, ${result.manifest.compression})`,
    '--label',
    `metalplane.ramdisk.key=${result.key}`,
    '--label',
    `metalplane.ramdisk.kernel=${result.manifest.kernel_version}`,
    '--no-progress',
  ];
  await cliProgram(out).parseAsync(args, { from: 'user' });
}

export function builderProgram(
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Command {
  return new Command('build-ramdisk')
    .description("build Metalplane's deploy ramdisk (kernel + initramfs), cached by its inputs")
    .option(
      '--program <path>',
      'a prebuilt ramdisk program (default: go build ramdisk/cmd/metalplane-ramdisk)',
    )
    .option('--cache-dir <dir>', 'where builds are kept', DEFAULT_CACHE_DIR)
    .option('--init-dir <dir>', 'the /init and udhcpc.script to use', DEFAULT_INIT_DIR)
    .option('--kernel-version <version>', 'a /boot/vmlinuz-<version> (default: the newest)')
    .addOption(
      new Option('--compression <kind>', 'initramfs compression; auto = the smaller')
        .choices(['auto', 'gzip', 'zstd'])
        .default('auto'),
    )
    .option('--force', 'rebuild even on a cache hit')
    .option('--json', 'print the result as JSON instead of a table')
    .option('--upload', 'register and upload it as a kernel+ramdisk image')
    .option('--name <name>', 'image name for --upload (default metalplane-ramdisk-<short key>)')
    .option('--url <url>', 'the API endpoint for --upload (env OS_ENDPOINT)')
    .option('--os-username <name>', 'HTTP Basic user (env OS_USERNAME)')
    .option('--os-password <password>', 'HTTP Basic password (env OS_PASSWORD)')
    .option('--os-cloud <name>', 'take URL and credentials from this clouds.yaml cloud (env OS_CLOUD)')
    .action(async (options) => {
      if (options.name !== undefined && !options.upload)
        throw new InvalidArgumentError('--name needs --upload');
      const result = await buildRamdisk({
        cacheDir: options.cacheDir,
        program: options.program,
        initDir: options.initDir,
        kernelVersion: options.kernelVersion,
        compression: options.compression,
        force: options.force === true,
        log: (line) => process.stderr.write(`build-ramdisk: ${line}\n`),
      });
      out(options.json ? JSON.stringify({ ...result, manifest: undefined }, null, 2) : summaryTable(result));
      if (options.upload) await upload(result, options, out);
    });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  builderProgram()
    .parseAsync(process.argv)
    .catch((error: unknown) => {
      process.stderr.write(`build-ramdisk: ${(error as Error).message ?? String(error)}\n`);
      process.exit(1);
    });
}
