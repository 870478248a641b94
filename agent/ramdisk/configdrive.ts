/**
 * Ironic's config drive (`instance_info.configdrive`), made ready for the ramdisk's
 * `write_configdrive` step: one gzipped image file, in a private temporary directory.
 *
 * Ironic accepts two forms, and so does the agent:
 *
 * - a string: base64 of a gzipped ISO 9660 (or vfat) image. Decoded strictly (base64
 *   alphabet, line breaks allowed as `base64` wraps them), gunzipped within
 *   MAX_CONFIGDRIVE_BYTES, checked to be ISO 9660 or FAT, and gzipped again by the agent
 *   (what is served is then always one plain gzip member).
 * - Ironic's JSON form `{meta_data?, user_data?, network_data?, vendor_data?}`, built into
 *   an ISO as Ironic's conductor does (`ironic/conductor/utils.py` `build_configdrive` and
 *   openstacksdk's `openstack/baremetal/configdrive.py`): `meta_data.uuid` defaults to the
 *   node's UUID; every version directory (`2012-08-10` and `latest`, openstacksdk's
 *   default) gets `meta_data.json`, and `network_data.json`, `vendor_data2.json`,
 *   `user_data` when given and not empty; a `user_data` object or array is its JSON, a
 *   string its UTF-8; JSON is written as Python's `json.dump` writes it. The ISO is made
 *   by `xorriso -as mkisofs` with openstacksdk's options (Rock Ridge with rationalized
 *   owners and modes, Joliet, volume label `config-2`).
 *
 * User data holds secrets: nothing of the input is logged or put in an error message,
 * the directory is 0700 and its files 0600, and the caller removes it (`remove()`) in a
 * `finally`. File names inside the tree are fixed here, never taken from the input.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { runTool, ToolError } from '../boot/run-tool.ts';

/** Largest config drive image (decompressed), as Ironic and the ramdisk bound it. */
export const MAX_CONFIGDRIVE_BYTES = 64 * 1024 * 1024;
/** Largest JSON form (serialized): meta data, network data and user data, not an image. */
export const MAX_CONFIGDRIVE_JSON_BYTES = 64 * 1024;
/** ISO volume label the guest's cloud-init looks for. */
export const CONFIGDRIVE_LABEL = 'config-2';
/** openstacksdk's default metadata versions (`populate_directory`). */
export const CONFIGDRIVE_VERSIONS = ['2012-08-10', 'latest'] as const;
export const DEFAULT_XORRISO_TIMEOUT_MS = 30_000;
/** The name of the served file in the temporary directory. */
const SERVED_NAME = 'configdrive.gz';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** A config drive refused or not built: the message says why, never what it held. */
export class ConfigdriveError extends Error {
  override readonly name = 'ConfigdriveError';
}

export interface ConfigdriveJson {
  readonly meta_data?: Record<string, unknown>;
  readonly user_data?: string | Record<string, unknown> | unknown[] | null;
  readonly network_data?: Record<string, unknown>;
  readonly vendor_data?: Record<string, unknown>;
}

export interface ConfigdriveOptions {
  /** Where the private directory is made (default the system's temporary directory). */
  readonly tmpDir?: string;
  /** The xorriso program (default `xorriso` from PATH). */
  readonly xorriso?: string;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface PreparedConfigdrive {
  /** The gzipped image, in a 0700 directory of its own. */
  readonly file: string;
  readonly sha256: string;
  readonly size: number;
  /** Removes the directory (idempotent). */
  remove(): Promise<void>;
}

const KEYS = new Set(['meta_data', 'user_data', 'network_data', 'vendor_data']);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks Ironic's JSON form (the API's schema, plus a size bound); a message, or undefined. */
export function configdriveJsonProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'configdrive must be a string or an object';
  const unknown = Object.keys(value).filter((k) => !KEYS.has(k));
  if (unknown.length > 0) {
    return `configdrive: unknown key ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')} (allowed: meta_data, user_data, network_data, vendor_data)`;
  }
  for (const key of ['meta_data', 'network_data', 'vendor_data']) {
    if (value[key] !== undefined && !isObject(value[key])) return `configdrive: ${key} must be an object`;
  }
  const user = value.user_data;
  // Ironic's schema allows null (no user data) as well.
  if (user !== undefined && user !== null && typeof user !== 'string' && typeof user !== 'object') {
    return 'configdrive: user_data must be a string, an object or an array';
  }
  const size = Buffer.byteLength(JSON.stringify(value));
  if (size > MAX_CONFIGDRIVE_JSON_BYTES) {
    return `configdrive: the JSON form is ${size} bytes, more than ${MAX_CONFIGDRIVE_JSON_BYTES}`;
  }
  return undefined;
}

/**
 * What Python's `json.dumps(value)` writes (Ironic and openstacksdk write the files with
 * it): `", "` and `": "` separators, every character outside printable ASCII escaped.
 */
export function pythonJson(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return pythonString(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(', ')}]`;
  if (isObject(value)) {
    return `{${Object.entries(value)
      .map(([k, v]) => `${pythonString(k)}: ${pythonJson(v)}`)
      .join(', ')}}`;
  }
  throw new ConfigdriveError('configdrive: a value JSON cannot hold');
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

function pythonString(text: string): string {
  // Python's ensure_ascii: UTF-16 code units outside ' '..'~' become \uXXXX (lowercase hex).
  return `"${text.replace(/[^ -~]|["\\]/g, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/** The config drive's files (path in the ISO → content), as Ironic lays them out. */
export function configdriveFiles(drive: ConfigdriveJson, nodeUuid: string): Map<string, Buffer> {
  // Ironic: meta_data.setdefault('uuid', node.uuid) (and `name`, which the agent does not know).
  const meta = { ...(drive.meta_data ?? {}) };
  if (!('uuid' in meta)) meta.uuid = nodeUuid;
  const user = drive.user_data;
  const userData =
    typeof user === 'string'
      ? Buffer.from(user, 'utf8')
      : user !== undefined && user !== null
        ? Buffer.from(pythonJson(user), 'utf8')
        : undefined;
  const files = new Map<string, Buffer>();
  for (const version of CONFIGDRIVE_VERSIONS) {
    const dir = `openstack/${version}`;
    files.set(`${dir}/meta_data.json`, Buffer.from(pythonJson(meta), 'utf8'));
    // openstacksdk writes each of these only when truthy: an empty object is left out.
    if (drive.network_data && Object.keys(drive.network_data).length > 0) {
      files.set(`${dir}/network_data.json`, Buffer.from(pythonJson(drive.network_data), 'utf8'));
    }
    if (drive.vendor_data && Object.keys(drive.vendor_data).length > 0) {
      files.set(`${dir}/vendor_data2.json`, Buffer.from(pythonJson(drive.vendor_data), 'utf8'));
    }
    if (userData && userData.length > 0) files.set(`${dir}/user_data`, userData);
  }
  return files;
}

/**
 * Ironic's `configdrive` (string or JSON form) → the gzipped image to serve, in a new
 * private directory. Throws ConfigdriveError for an input refused or a build that failed.
 */
export async function prepareConfigdrive(
  configdrive: unknown,
  nodeUuid: string,
  options: ConfigdriveOptions = {},
): Promise<PreparedConfigdrive> {
  if (typeof configdrive !== 'string') {
    const problem = configdriveJsonProblem(configdrive);
    if (problem) throw new ConfigdriveError(problem);
  }
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'metalplane-configdrive-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await chmod(dir, 0o700); // mkdtemp makes it 0700; said again in case of an odd umask
    const image =
      typeof configdrive === 'string'
        ? await decodeConfigdrive(configdrive)
        : await buildIso(configdriveFiles(configdrive as ConfigdriveJson, nodeUuid), dir, options);
    const gzipped = await gzipAsync(image);
    const file = join(dir, SERVED_NAME);
    await writeFile(file, gzipped, { mode: 0o600, flag: 'wx' });
    return {
      file,
      sha256: createHash('sha256').update(gzipped).digest('hex'),
      size: gzipped.length,
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The string form: base64 → gzip → an ISO 9660 or FAT image of at most MAX_CONFIGDRIVE_BYTES. */
export async function decodeConfigdrive(text: string): Promise<Buffer> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new ConfigdriveError(
      'configdrive: a URL is not supported: give the image itself (base64 of a gzipped ISO) or the JSON form',
    );
  }
  const compact = text.replace(/\r?\n/g, '');
  if (compact.length === 0 || compact.length % 4 !== 0 || !BASE64.test(compact)) {
    throw new ConfigdriveError('configdrive: not valid base64 (of a gzipped ISO 9660 or vfat image)');
  }
  // A gzip stream is never much larger than what it holds: refuse an oversized one unread.
  if ((compact.length / 4) * 3 > MAX_CONFIGDRIVE_BYTES + 1024 * 1024) {
    throw new ConfigdriveError(`configdrive: larger than ${MAX_CONFIGDRIVE_BYTES} bytes`);
  }
  const gzipped = Buffer.from(compact, 'base64');
  if (gzipped.length < 18 || gzipped[0] !== 0x1f || gzipped[1] !== 0x8b) {
    throw new ConfigdriveError('configdrive: not gzip data (base64 of a gzipped image expected)');
  }
  let image: Buffer;
  try {
    image = await gunzipAsync(gzipped, { maxOutputLength: MAX_CONFIGDRIVE_BYTES });
  } catch (error) {
    if (error instanceof RangeError || (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ConfigdriveError(`configdrive: the image is larger than ${MAX_CONFIGDRIVE_BYTES} bytes`);
    }
    throw new ConfigdriveError('configdrive: not valid gzip data (corrupt or truncated)');
  }
  if (!isIso9660(image) && !isFat(image)) {
    throw new ConfigdriveError('configdrive: the image is neither ISO 9660 nor vfat');
  }
  return image;
}

/** The primary volume descriptor's "CD001" at sector 16 (2048-byte sectors). */
const isIso9660 = (image: Buffer) =>
  image.length >= 32774 && image.toString('latin1', 32769, 32774) === 'CD001';

/** A FAT boot sector: 0x55AA at 510 and "FAT" in the FAT12/16 or the FAT32 type field. */
const isFat = (image: Buffer) =>
  image.length >= 512 &&
  image[510] === 0x55 &&
  image[511] === 0xaa &&
  (image.toString('latin1', 54, 57) === 'FAT' || image.toString('latin1', 82, 85) === 'FAT');

/** Writes the tree into `dir/tree` and packs it with xorriso into `dir/configdrive.iso`. */
async function buildIso(
  files: Map<string, Buffer>,
  dir: string,
  options: ConfigdriveOptions,
): Promise<Buffer> {
  const tree = join(dir, 'tree');
  for (const [path, content] of files) {
    const full = join(tree, path);
    await mkdir(join(full, '..'), { recursive: true, mode: 0o700 });
    await writeFile(full, content, { mode: 0o600, flag: 'wx' });
  }
  const iso = join(dir, 'configdrive.iso');
  // openstacksdk's `pack()` options; `-r` gives every file owner 0 and mode 0444 (our
  // 0600 and our uid do not leak into the guest). Publisher: ours.
  await runXorriso(
    [
      '-as',
      'mkisofs',
      '-o',
      iso,
      '-ldots',
      '-allow-lowercase',
      '-allow-multidot',
      '-l',
      '-publisher',
      'metalplane',
      '-quiet',
      '-J',
      '-r',
      '-V',
      CONFIGDRIVE_LABEL,
      tree,
    ],
    options,
  );
  const image = await readFile(iso);
  if (image.length > MAX_CONFIGDRIVE_BYTES) {
    throw new ConfigdriveError(`configdrive: the ISO is larger than ${MAX_CONFIGDRIVE_BYTES} bytes`);
  }
  return image;
}

/** Runs xorriso bounded in time (killed at the timeout or abort) and in output kept. */
async function runXorriso(args: string[], options: ConfigdriveOptions): Promise<void> {
  try {
    await runTool(options.xorriso ?? 'xorriso', args, {
      timeoutMs: options.timeoutMs ?? DEFAULT_XORRISO_TIMEOUT_MS,
      ...(options.signal ? { signal: options.signal } : {}),
      name: 'xorriso',
      packageName: 'xorriso',
    });
  } catch (error) {
    if (error instanceof ToolError) throw new ConfigdriveError(`configdrive: ${error.message}`);
    throw error;
  }
}
