/**
 * The image catalog (docs/images.md), Metalplane's own:
 *   metalplane image create NAME (--iso PATH | --kernel PATH [--ramdisk PATH] | --ramdisk PATH
 *                           | --disk PATH [--disk-format raw|raw+gzip|raw+zstd|qcow2])
 *                           [--description TEXT] [--label KEY=VALUE]... [--site SITE]...
 *   metalplane image upload NAME (same file options) [--parallel N] [--multipart] [--no-progress]
 *                           registers the image if needed, uploads, waits for the verification
 *   metalplane image list [--state STATE] [--long]
 *   metalplane image show NAME
 *   metalplane image sync-status SITE [--long]   which images the site's agent holds
 *   metalplane image delete NAME
 *
 * Sizes and SHA-256 digests are computed streaming, and uploads read one part at a
 * time per worker: memory stays bounded by `--parallel` × the part size whatever the
 * file's size.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { ApiError, type Client } from '../os-config.ts';
import type { OutputOptions } from '../output.ts';
import {
  type Context,
  collect,
  detailed,
  listAll,
  type Options,
  printList,
  printOne,
  query,
  type Row,
  segment,
  withOutput,
  without,
} from './context.ts';

type Role = 'iso' | 'kernel' | 'ramdisk' | 'disk';

const DISK_FORMATS = ['raw', 'raw+gzip', 'raw+zstd', 'qcow2'] as const;
type DiskFormat = (typeof DISK_FORMATS)[number];

interface LocalFile {
  readonly role: Role;
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

interface ImageView {
  uuid: string;
  name: string;
  kind: string;
  state: string;
  last_error: string | null;
  files: Array<{ role: Role; size: number; sha256: string; state: string; error: string | null }>;
}

export class CliError extends Error {
  override readonly name = 'CliError';
}

type Connection = Client;

async function request(
  connection: Connection,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  return connection.request(method, path, body);
}

/** Size and SHA-256 of a file, read once as a stream. */
export async function digestFile(path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(buffer, done, length - done, start + done);
      if (bytesRead === 0)
        throw new CliError(`${path} is shorter than expected (it changed during the upload?)`);
      done += bytesRead;
    }
    return buffer;
  } finally {
    await handle.close();
  }
}

/** PUT to a presigned URL, retried a few times (a part may be re-sent: S3 keeps the last). */
async function put(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<void> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const response = await fetch(url, { method: 'PUT', body, headers });
      const text = await response.text();
      if (response.ok) return;
      lastError = new CliError(`upload refused by storage: ${response.status} ${text.slice(0, 300)}`);
      if (response.status < 500) break;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
  }
  throw lastError;
}

function kindOf(files: readonly LocalFile[]): string {
  const roles = files.map((file) => file.role);
  if (roles.includes('kernel') && roles.includes('ramdisk')) return 'kernel+ramdisk';
  if (roles.length !== 1) throw new InvalidArgumentError('give --iso, --disk, or --kernel and/or --ramdisk');
  return roles[0] as string;
}

interface FileOptions {
  iso?: string;
  kernel?: string;
  ramdisk?: string;
  disk?: string;
  diskFormat?: string;
}

/** A whole-disk image's format: as given, else from the file's name (.qcow2, .gz, .zst), else raw. */
export function diskFormatOf(path: string, given?: string): DiskFormat {
  if (given !== undefined) {
    if (!(DISK_FORMATS as readonly string[]).includes(given))
      throw new InvalidArgumentError(`--disk-format must be one of ${DISK_FORMATS.join(', ')}`);
    return given as DiskFormat;
  }
  if (/\.qcow2$/i.test(path)) return 'qcow2';
  if (/\.gz$/i.test(path)) return 'raw+gzip';
  if (/\.zst$/i.test(path)) return 'raw+zstd';
  return 'raw';
}

async function localFiles(options: FileOptions): Promise<LocalFile[]> {
  const kinds = [options.iso, options.disk, options.kernel ?? options.ramdisk].filter((v) => v !== undefined);
  if (kinds.length > 1) {
    throw new InvalidArgumentError('an image is an ISO, a whole disk or a kernel/ramdisk: one of them');
  }
  if (options.diskFormat !== undefined && options.disk === undefined)
    throw new InvalidArgumentError('--disk-format goes with --disk');
  const given = (['iso', 'kernel', 'ramdisk', 'disk'] as const).filter((role) => options[role] !== undefined);
  if (given.length === 0)
    throw new InvalidArgumentError('give --iso PATH, --disk PATH, or --kernel PATH and/or --ramdisk PATH');
  return Promise.all(
    given.map(async (role) => {
      const path = options[role] as string;
      if (!(await stat(path)).isFile()) throw new InvalidArgumentError(`${path} is not a file`);
      return { role, path, ...(await digestFile(path)) };
    }),
  );
}

interface RegisterOptions {
  description?: string;
  label?: string[];
  site?: string[];
  diskFormat?: string;
}

function labelsOf(given: string[] = []): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const label of given) {
    const at = label.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`--label ${label}: use KEY=VALUE`);
    labels[label.slice(0, at)] = label.slice(at + 1);
  }
  return labels;
}

async function register(
  api: Connection,
  name: string,
  files: LocalFile[],
  options: RegisterOptions,
): Promise<ImageView> {
  const labels = labelsOf(options.label);
  const disk = files.find((file) => file.role === 'disk');
  const created = await request(api, 'POST', '/v1/images', {
    name,
    kind: kindOf(files),
    ...(disk ? { disk_format: diskFormatOf(disk.path, options.diskFormat) } : {}),
    files: files.map(({ role, size, sha256 }) => ({ role, size, sha256 })),
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(options.site?.length ? { sites: options.site } : {}),
  });
  return created.body as ImageView;
}

const withFileOptions = (command: Command) =>
  command
    .option('--iso <path>', 'an ISO image')
    .option('--kernel <path>', 'a kernel')
    .option('--ramdisk <path>', 'a ramdisk (initrd)')
    .option('--disk <path>', 'a whole-disk image (the direct deploy writes it to the root device)')
    .option(
      '--disk-format <format>',
      `the whole-disk image's format: ${DISK_FORMATS.join(', ')} (default: from its name)`,
    )
    .option('--description <text>', 'description')
    .option('--label <key=value>', 'a label (repeatable)', collect)
    .option('--site <site>', 'a site that holds it (repeatable; default: every site)', collect);

const IMAGE_LIST_FIELDS = ['uuid', 'name', 'kind', 'state', 'size'];
const IMAGE_DETAILED_FIELDS = [
  ...IMAGE_LIST_FIELDS,
  'disk_format',
  'description',
  'labels',
  'sites',
  'last_error',
  'created_at',
  'updated_at',
];
const SYNC_FIELDS = ['uuid', 'name', 'kind', 'state', 'bytes_done', 'bytes_total'];
const SYNC_DETAILED_FIELDS = [...SYNC_FIELDS, 'error', 'observed_at', 'reported_by', 'disk_format', 'served'];

/** An image as `image list` shows it: with its size, the sum of its files'. */
function withSize(image: Row): Row {
  const files = (image.files ?? []) as Array<{ size: number }>;
  return { ...image, size: files.reduce((sum, file) => sum + file.size, 0) };
}

type UploadOptions = FileOptions &
  RegisterOptions & { parallel?: number; progress: boolean; multipart?: boolean };

/** The image registered under this name, or registered now. */
async function existingOrRegistered(
  api: Connection,
  name: string,
  files: LocalFile[],
  options: UploadOptions,
) {
  try {
    return (await request(api, 'GET', `/v1/images/${segment(name)}`)).body as ImageView;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    return register(api, name, files, options);
  }
}

/** Uploads the files not yet there; a local file must be the one registered. */
async function uploadMissing(api: Connection, start: ImageView, files: LocalFile[], options: UploadOptions) {
  let view = start;
  for (const file of files) {
    const registered = view.files.find((candidate) => candidate.role === file.role);
    if (!registered) throw new CliError(`image ${view.name} has no ${file.role} file`);
    if (registered.size !== file.size || registered.sha256 !== file.sha256) {
      throw new CliError(
        `${file.path} is not the ${file.role} registered for ${view.name} (size ${registered.size}, SHA-256 ${registered.sha256})`,
      );
    }
    if (registered.state === 'verified' || registered.state === 'verifying') continue;
    view = await uploadFile(api, view, file, {
      parallel: options.parallel ?? 4,
      progress: options.progress,
      multipart: options.multipart === true,
    });
  }
  return view;
}

export function registerImageCommands(program: Command, context: Context): void {
  const image = program.command('image').description('the image catalog');
  registerImageUploads(image, context);

  withOutput(
    image
      .command('list')
      .description('list images')
      .option('--state <state>', 'only images in this state')
      .option('--long', 'every field'),
  ).action(async (options: Options) => {
    const path = `/v1/images${query({ limit: 1000, state: options.state as string | undefined })}`;
    const images = (await listAll(await context.client(), path, 'images')).map(withSize);
    const fields = options.long ? IMAGE_DETAILED_FIELDS : IMAGE_LIST_FIELDS;
    await printList(context, fields, images, options);
  });

  withOutput(image.command('show <name>').description('show an image and its files')).action(
    async (name: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/images/${segment(name)}`)).body;
      await printOne(context, without(shown as Row, ['links']), options);
    },
  );

  withOutput(
    image
      .command('sync-status <site>')
      .description("the images a site's agent holds, and how far their sync is")
      .option('--long', 'every field'),
  ).action(async (site: string, options: Options) => {
    const images = await listAll(await context.client(), `/v1/sites/${segment(site)}/images`, 'images');
    const fields = options.long ? SYNC_DETAILED_FIELDS : SYNC_FIELDS;
    await printList(
      context,
      fields,
      options.long ? images.map((row) => detailed(row, fields)) : images,
      options,
    );
  });

  image
    .command('delete <name>')
    .description('delete an image and its stored files')
    .action(async (name: string) => {
      await (await context.client()).request('DELETE', `/v1/images/${segment(name)}`);
      context.out(`image ${name} deleted`);
    });
}

function registerImageUploads(image: Command, context: Context): void {
  withOutput(
    withFileOptions(
      image.command('create <name>').description('register an image (size and SHA-256 computed here)'),
    ),
    'json',
  ).action(async (name: string, options: FileOptions & RegisterOptions & OutputOptions) => {
    const created = await register(await context.client(), name, await localFiles(options), options);
    await printOne(context, without(created as unknown as Row, ['links']), options);
  });

  withFileOptions(
    image
      .command('upload <name>')
      .description('register the image if needed, upload its files, and wait for their verification'),
  )
    .option('--parallel <n>', 'parts uploaded at once (1-16)', (value) => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || n > 16) throw new InvalidArgumentError('1 to 16');
      return n;
    })
    .option('--no-progress', 'no progress bar')
    .option('--multipart', 'upload in parts even a small file')
    .action(async (name: string, options: UploadOptions) => {
      const api = await context.client();
      const files = await localFiles(options);
      const registered = await existingOrRegistered(api, name, files, options);
      const view = await waitVerified(api, await uploadMissing(api, registered, files, options));
      context.out(
        `image ${view.name} (${view.uuid}): ${view.state}${view.last_error ? `: ${view.last_error}` : ''}`,
      );
      if (view.state !== 'active') throw new CliError(`image ${view.name} is ${view.state}`);
    });
}

async function uploadFile(
  api: Connection,
  view: ImageView,
  file: LocalFile,
  options: { parallel: number; progress: boolean; multipart: boolean },
): Promise<ImageView> {
  const { parallel, progress } = options;
  const base = `/v1/images/${view.uuid}/files/${file.role}`;
  const started = (await request(api, 'POST', `${base}/upload`, options.multipart ? { multipart: true } : {}))
    .body as
    | { mode: 'single'; url: string; headers: Record<string, string> }
    | { mode: 'multipart'; part_size: number; parts: number };
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    format: `${file.role} [{bar}] {percentage}% {value}/{total} bytes`,
    noTTYOutput: false,
    hideCursor: true,
  });
  if (progress) bar.start(file.size, 0);
  try {
    if (started.mode === 'single') {
      await put(started.url, await readRange(file.path, 0, file.size), started.headers);
      if (progress) bar.update(file.size);
    } else {
      let next = 1;
      let done = 0;
      const urls = new Map<number, string>();
      const urlFor = async (n: number): Promise<string> => {
        if (!urls.has(n)) {
          // Ask for URLs in batches of up to 100, from this part on.
          const numbers = [];
          for (let i = n; i <= Math.min(started.parts, n + 99); i++) numbers.push(i);
          const answer = (await request(api, 'POST', `${base}/parts`, { part_numbers: numbers })).body as {
            parts: Array<{ part_number: number; url: string }>;
          };
          for (const part of answer.parts) urls.set(part.part_number, part.url);
        }
        const url = urls.get(n) as string;
        urls.delete(n);
        return url;
      };
      const worker = async () => {
        for (;;) {
          const n = next++;
          if (n > started.parts) return;
          const start = (n - 1) * started.part_size;
          const length = Math.min(started.part_size, file.size - start);
          const url = await urlFor(n);
          await put(url, await readRange(file.path, start, length));
          done += length;
          if (progress) bar.update(done);
        }
      };
      await Promise.all(Array.from({ length: Math.min(parallel, started.parts) }, worker));
    }
  } finally {
    if (progress) bar.stop();
  }
  return (await request(api, 'POST', `${base}/complete`, {})).body as ImageView;
}

/** Waits while a file is being verified off the request path (large files). */
async function waitVerified(api: Connection, view: ImageView): Promise<ImageView> {
  let current = view;
  const deadline = Date.now() + 20 * 60 * 1000;
  while (current.state === 'verifying' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    current = (await request(api, 'GET', `/v1/images/${current.uuid}`)).body as ImageView;
  }
  return current;
}
