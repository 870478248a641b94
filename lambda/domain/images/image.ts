/**
 * An image of the catalog (`/v1/images`): an ISO, a kernel, a ramdisk, a kernel +
 * ramdisk pair, or a whole-disk image (`disk`, with its `disk_format`), registered with
 * each file's size and SHA-256 before any byte is uploaded, and `active` only once every
 * stored object was read back and matched them.
 *
 * States of an image:
 *
 *   uploading ──(every file verified)──► active
 *       │    ╲──(a file's size or SHA-256 differs)──► error ──(upload that file again)──► uploading
 *       ╰──(a large file completed)──► verifying ──► active | error
 *
 * Each file has its own state (`pending`, `uploading`, `verifying`, `verified`, `error`);
 * the image's state is derived from them (`imageState`). Only `active` images are
 * offered to sites. Pure logic: no AWS imports (the S3 and DynamoDB edges are in
 * `lambda/adapters/`).
 */
import { invalid } from '../errors.ts';
import { canonicalUuid, isUuidLike, isValidLogicalName } from '../identifiers.ts';
import { validateSiteName } from '../sites/site.ts';

export type ImageKind = 'iso' | 'kernel' | 'ramdisk' | 'kernel+ramdisk' | 'disk';
export type FileRole = 'iso' | 'kernel' | 'ramdisk' | 'disk';
/**
 * How the bytes of a whole-disk image's file are laid out (Ironic's
 * `instance_info.image_disk_format`, Glance's `disk_format`): `raw` (a disk's bytes),
 * `raw+gzip` / `raw+zstd` (those bytes compressed), `qcow2`. The site agent serves the
 * deploy ramdisk `raw` or `raw+gzip` only: it converts the others once (docs/images.md).
 */
export type DiskFormat = 'raw' | 'raw+gzip' | 'raw+zstd' | 'qcow2';
export type ImageState = 'uploading' | 'verifying' | 'active' | 'error';
export type FileState = 'pending' | 'uploading' | 'verifying' | 'verified' | 'error';

export const IMAGE_KINDS: readonly ImageKind[] = ['iso', 'kernel', 'ramdisk', 'kernel+ramdisk', 'disk'];
export const FILE_ROLES: readonly FileRole[] = ['iso', 'kernel', 'ramdisk', 'disk'];
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'raw+gzip', 'raw+zstd', 'qcow2'];

/** The files each kind is made of, in this order. */
export const ROLES_OF_KIND: Readonly<Record<ImageKind, readonly FileRole[]>> = {
  iso: ['iso'],
  kernel: ['kernel'],
  ramdisk: ['ramdisk'],
  'kernel+ramdisk': ['kernel', 'ramdisk'],
  disk: ['disk'],
};

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Largest file: 64 GiB. Verification streams the whole object once; at the ~100 MB/s a
 * Lambda reads from S3 that takes ~11 minutes, inside the verify Lambda's 15.
 */
export const MAX_FILE_BYTES = 64 * GiB;
/** Files up to this size may be uploaded with one presigned PUT (S3 allows up to 5 GiB). */
export const MAX_SINGLE_PUT_BYTES = 5 * GiB;
/** Without a choice from the client, files above this size are uploaded in parts. */
export const DEFAULT_SINGLE_PUT_BYTES = 64 * MiB;
/** S3's bounds on a multipart upload. */
export const MIN_PART_BYTES = 5 * MiB;
export const MAX_PARTS = 10_000;
/** Part URLs handed out per request. */
export const MAX_PART_URLS = 100;

export interface UploadSession {
  readonly mode: 'single' | 'multipart';
  /** S3's upload id (multipart). */
  readonly upload_id?: string;
  readonly part_size?: number;
  readonly parts?: number;
  readonly started_at: string;
}

export interface ImageFileRecord {
  readonly role: FileRole;
  readonly size: number;
  readonly sha256: string;
  /** Object key in the images bucket. */
  readonly key: string;
  readonly state: FileState;
  readonly error: string | null;
  readonly upload: UploadSession | null;
  /** ETag of the object that was verified (what the agents are then sent). */
  readonly etag: string | null;
  readonly verified_at: string | null;
}

export interface Image {
  readonly uuid: string;
  readonly name: string;
  readonly kind: ImageKind;
  /** Kind `disk` only (absent on the other kinds, and on records from before it existed). */
  readonly disk_format?: DiskFormat;
  readonly description: string | null;
  readonly labels: Readonly<Record<string, string>>;
  /** Sites that hold the image; null: every site. */
  readonly sites: readonly string[] | null;
  readonly state: ImageState;
  /** Why the image is in `error` (the first file's reason). */
  readonly last_error: string | null;
  readonly files: readonly ImageFileRecord[];
  readonly created_at: string;
  readonly updated_at: string | null;
}

const SHA256 = '^[0-9a-f]{64}$';
const LABEL_KEY = '^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$';
const TEXT_MAX = 255;

/** `POST /v1/images`. */
export const IMAGE_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 255 },
    kind: { enum: [...IMAGE_KINDS] },
    /** Kind `disk` only, and required there. */
    disk_format: { enum: [...DISK_FORMATS] },
    files: {
      type: 'array',
      minItems: 1,
      maxItems: 2,
      items: {
        type: 'object',
        properties: {
          role: { enum: [...FILE_ROLES] },
          size: { type: 'integer', minimum: 1, maximum: MAX_FILE_BYTES },
          sha256: { type: 'string', pattern: SHA256 },
        },
        required: ['role', 'size', 'sha256'],
        additionalProperties: false,
      },
    },
    description: { type: ['string', 'null'], maxLength: TEXT_MAX },
    labels: {
      type: 'object',
      maxProperties: 32,
      propertyNames: { pattern: LABEL_KEY },
      additionalProperties: { type: 'string', maxLength: TEXT_MAX },
    },
    sites: {
      type: ['array', 'null'],
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', maxLength: 64 },
    },
  },
  required: ['name', 'kind', 'files'],
  additionalProperties: false,
} as const;

/** What a PATCH may change, and the shape the patched view must keep. */
export const IMAGE_PATCHABLE_FIELDS = ['name', 'description', 'labels', 'sites'] as const;

export const IMAGE_VIEW_SCHEMA = {
  type: 'object',
  properties: {
    name: IMAGE_CREATE_SCHEMA.properties.name,
    description: IMAGE_CREATE_SCHEMA.properties.description,
    labels: IMAGE_CREATE_SCHEMA.properties.labels,
    sites: IMAGE_CREATE_SCHEMA.properties.sites,
  },
  required: ['name', 'description', 'labels', 'sites'],
  additionalProperties: false,
} as const;

export interface ImageCreateBody {
  name: string;
  kind: ImageKind;
  disk_format?: DiskFormat;
  files: Array<{ role: FileRole; size: number; sha256: string }>;
  description?: string | null;
  labels?: Record<string, string>;
  sites?: string[] | null;
}

/** An image name: a logical name (it may stand where a UUID could, as node names do). */
export function validateImageName(value: string): string {
  if (!isValidLogicalName(value)) {
    throw invalid(
      `Invalid image name ${JSON.stringify(value)}: use 1 to 255 letters, digits, '.', '_', '~' or '-', not shaped like a UUID.`,
    );
  }
  return value;
}

export function validateSites(sites: readonly string[] | null | undefined): string[] | null {
  if (sites === null || sites === undefined) return null;
  return [...new Set(sites.map((site) => validateSiteName(site)))].sort();
}

/** The object key of a file: `images/<uuid>/<role>`. */
export function objectKey(uuid: string, role: FileRole): string {
  return `images/${uuid}/${role}`;
}

/**
 * Checks a registration beyond its schema: the files must be exactly those of the kind,
 * and a `disk_format` is given for (and only for) a whole-disk image.
 */
export function newImage(body: ImageCreateBody, uuid: string, now: string): Image {
  const name = validateImageName(body.name);
  const roles = ROLES_OF_KIND[body.kind];
  const given = body.files.map((file) => file.role);
  if (given.length !== roles.length || !roles.every((role) => given.includes(role))) {
    throw invalid(
      `An image of kind ${body.kind} has exactly the files ${roles.join(' and ')}; got ${given.join(', ') || 'none'}.`,
    );
  }
  const diskFormat = validateDiskFormat(body.kind, body.disk_format);
  return {
    uuid,
    name,
    kind: body.kind,
    ...(diskFormat !== undefined ? { disk_format: diskFormat } : {}),
    description: body.description ?? null,
    labels: { ...(body.labels ?? {}) },
    sites: validateSites(body.sites),
    state: 'uploading',
    last_error: null,
    files: roles.map((role) => {
      const file = body.files.find((candidate) => candidate.role === role)!;
      return {
        role,
        size: file.size,
        sha256: file.sha256,
        key: objectKey(uuid, role),
        state: 'pending',
        error: null,
        upload: null,
        etag: null,
        verified_at: null,
      };
    }),
    created_at: now,
    updated_at: null,
  };
}

/** `disk_format` of a registration: required for kind `disk`, refused for the others. */
export function validateDiskFormat(kind: ImageKind, value: unknown): DiskFormat | undefined {
  if (kind !== 'disk') {
    if (value === undefined) return undefined;
    throw invalid(
      `disk_format is for whole-disk images (kind disk) only; an image of kind ${kind} has none.`,
    );
  }
  if (value === undefined) {
    throw invalid(`An image of kind disk needs a disk_format: one of ${DISK_FORMATS.join(', ')}.`);
  }
  if (!DISK_FORMATS.includes(value as DiskFormat)) {
    throw invalid(
      `Invalid disk_format ${JSON.stringify(value)}: one of ${DISK_FORMATS.join(', ')} (compress a raw image with gzip or zstd; convert other formats to qcow2 or raw first).`,
    );
  }
  return value as DiskFormat;
}

/** The image's state from its files'. */
export function imageState(files: readonly ImageFileRecord[]): {
  state: ImageState;
  last_error: string | null;
} {
  const failed = files.find((file) => file.state === 'error');
  if (failed) return { state: 'error', last_error: `${failed.role}: ${failed.error ?? 'failed'}` };
  if (files.every((file) => file.state === 'verified')) return { state: 'active', last_error: null };
  if (files.some((file) => file.state === 'verifying')) return { state: 'verifying', last_error: null };
  return { state: 'uploading', last_error: null };
}

/** `image` with `role`'s file changed and the image's state derived again. */
export function withFile(
  image: Image,
  role: FileRole,
  change: (file: ImageFileRecord) => ImageFileRecord,
  now: string,
): Image {
  const files = image.files.map((file) => (file.role === role ? change(file) : file));
  return { ...image, files, ...imageState(files), updated_at: now };
}

export function fileOf(image: Image, role: string): ImageFileRecord {
  const file = image.files.find((candidate) => candidate.role === role);
  if (!file) {
    throw invalid(
      `Image ${image.name} (${image.kind}) has no ${role} file; its files are: ${image.files.map((f) => f.role).join(', ')}.`,
    );
  }
  return file;
}

/**
 * The part size of a multipart upload: at least 16 MiB (fewer requests), a whole
 * number of MiB, and large enough that the file fits S3's 10,000 parts.
 */
export function partPlan(size: number): { part_size: number; parts: number } {
  const least = Math.ceil(size / MAX_PARTS / MiB) * MiB;
  const partSize = Math.max(16 * MiB, least, MIN_PART_BYTES);
  return { part_size: partSize, parts: Math.max(1, Math.ceil(size / partSize)) };
}

/** The size part `n` (1-based) of the plan must have. */
export function expectedPartSize(
  size: number,
  plan: { part_size: number; parts: number },
  n: number,
): number {
  return n < plan.parts ? plan.part_size : size - plan.part_size * (plan.parts - 1);
}

/** Does the image go to `site`? Every site when `sites` is null, else the listed ones. */
export function isSelectedFor(image: Pick<Image, 'sites'>, site: string): boolean {
  return image.sites === null || image.sites.includes(site);
}

/**
 * What a node's `instance_info.image_source` may name in the catalog: a logical name
 * or a UUID (a URL such as `http://…` is not a catalog image, and is not indexed).
 */
export function catalogReference(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (isUuidLike(value)) return canonicalUuid(value);
  return isValidLogicalName(value) ? value : undefined;
}

/** The sync state of an image at a site, as its agent last reported it. */
export interface ImageSync {
  readonly image: string;
  readonly site: string;
  readonly state: 'pending' | 'syncing' | 'ready' | 'error';
  readonly bytes_done: number;
  readonly bytes_total: number;
  readonly error: string | null;
  readonly observed_at: string;
  readonly reported_by: string;
  readonly updated_at: string;
  /**
   * A `disk` image ready at the site: the file its agent serves the deploy ramdisk
   * (relative to the site's images directory, `<uuid>/<file>`), its format and the
   * SHA-256 and size of the bytes served (what `write_image` verifies).
   */
  readonly served?: ServedDisk;
}

export interface ServedDisk {
  readonly path: string;
  readonly format: 'raw' | 'raw+gzip';
  readonly sha256: string;
  readonly size: number;
}
