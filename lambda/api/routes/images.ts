/**
 * /v1/images: Metalplane's image catalog (docs/images.md), in Ironic's conventions
 * (error bodies, JSON Patch, limit/marker/next, fields, links).
 *
 *   POST   /v1/images                                  register: name, kind (disk: disk_format), files (size, SHA-256)
 *   GET    /v1/images[?state=&limit=&marker=&sort_key=&sort_dir=&fields=]
 *   GET    /v1/images/{image}                          by UUID or name
 *   PATCH  /v1/images/{image}                          name, description, labels, sites
 *   DELETE /v1/images/{image}                          409 while a node's instance_info names it
 *   POST   /v1/images/{image}/files/{role}/upload      start: a presigned PUT, or a multipart upload
 *   POST   /v1/images/{image}/files/{role}/parts       presigned URLs of some parts
 *   POST   /v1/images/{image}/files/{role}/complete    finish, then verify (inline, or queued: 202)
 *   DELETE /v1/images/{image}/files/{role}/upload      abort the upload in progress
 *   GET    /v1/sites/{site}/images                     what the site holds, and its sync state
 *
 * Admins manage images; readers and members read them (members pick images for
 * `instance_info.image_source`); agents never use these routes (their images come over
 * the channel: `images_pull`).
 */

import { imageListSortKey } from '../../adapters/dynamo/image-repository.ts';
import { INLINE_VERIFY_ENV } from '../../config.ts';
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike } from '../../domain/identifiers.ts';
import {
  DEFAULT_SINGLE_PUT_BYTES,
  expectedPartSize,
  FILE_ROLES,
  type FileRole,
  fileOf,
  IMAGE_CREATE_SCHEMA,
  IMAGE_PATCHABLE_FIELDS,
  IMAGE_VIEW_SCHEMA,
  type Image,
  type ImageCreateBody,
  type ImageFileRecord,
  isSelectedFor,
  MAX_PART_URLS,
  MAX_SINGLE_PUT_BYTES,
  newImage,
  partPlan,
  validateImageName,
  validateSites,
  withFile,
} from '../../domain/images/image.ts';
import { selectFields } from '../../domain/inventory/common.ts';
import { applyPatch, checkPatchAllowed, PATCH_SCHEMA, validatePatch } from '../../domain/json-patch.ts';
import { validator } from '../../domain/schema.ts';
import { validateSiteName } from '../../domain/sites/site.ts';
import { resourceLinks } from '../../http/links.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { controlPlaneFor, type ImageAccess } from '../../runtime.ts';
import { authorize } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

/** Lifetime of presigned upload URLs. */
export const UPLOAD_URL_SECONDS = 60 * 60;
/** Files up to this size are verified within the request; larger ones off it (202). */
export const inlineVerifyEnvVar = INLINE_VERIFY_ENV;

const UPLOAD_SCHEMA = {
  type: 'object',
  properties: { multipart: { type: 'boolean' } },
  additionalProperties: false,
} as const;

const PARTS_SCHEMA = {
  type: 'object',
  properties: {
    part_numbers: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_PART_URLS,
      uniqueItems: true,
      items: { type: 'integer', minimum: 1, maximum: 10_000 },
    },
  },
  required: ['part_numbers'],
  additionalProperties: false,
} as const;

const COMPLETE_SCHEMA = { type: 'object', properties: {}, additionalProperties: false } as const;

export const IMAGE_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/images': {
    summary: 'List images (state filter, limit/marker, sort_key id|created_at|name, sort_dir, fields)',
    tag: 'images',
  },
  'POST /v1/images': {
    summary:
      'Register an image: name, kind (iso, kernel, ramdisk, kernel+ramdisk, or disk with its disk_format raw, raw+gzip, raw+zstd or qcow2), each file with size and SHA-256 (admin)',
    tag: 'images',
    requestSchema: IMAGE_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/images/{image}': {
    summary: 'Show an image by UUID or name (a whole-disk image with its disk_format)',
    tag: 'images',
  },
  'PATCH /v1/images/{image}': {
    summary: 'Update name, description, labels or sites with an RFC 6902 JSON Patch (admin)',
    tag: 'images',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/images/{image}': {
    summary: "Delete an image no node's instance_info names, and its stored files (admin)",
    tag: 'images',
    status: 204,
  },
  'POST /v1/images/{image}/files/{role}/upload': {
    summary: 'Start uploading a file: one presigned PUT, or a multipart upload (admin)',
    tag: 'images',
    requestSchema: UPLOAD_SCHEMA,
    status: 201,
  },
  'DELETE /v1/images/{image}/files/{role}/upload': {
    summary: 'Abort the upload of a file in progress (admin)',
    tag: 'images',
    status: 204,
  },
  'POST /v1/images/{image}/files/{role}/parts': {
    summary: 'Presigned URLs of parts of a multipart upload, up to 100 at a time (admin)',
    tag: 'images',
    requestSchema: PARTS_SCHEMA,
  },
  'POST /v1/images/{image}/files/{role}/complete': {
    summary: 'Finish an upload and verify size and SHA-256 (200), or queue the verification (202) (admin)',
    tag: 'images',
    requestSchema: COMPLETE_SCHEMA,
  },
  'GET /v1/sites/{site}/images': {
    summary:
      "The images a site holds and their sync state, as the site's agent reports it (a whole-disk image also with the file served to the deploy ramdisk)",
    tag: 'images',
  },
};

const validateCreate = validator<ImageCreateBody>('image', IMAGE_CREATE_SCHEMA);
const validateView = validator<{
  name: string;
  description: string | null;
  labels: Record<string, string>;
  sites: string[] | null;
}>('image', IMAGE_VIEW_SCHEMA);
const validateUpload = validator<{ multipart?: boolean }>('upload', UPLOAD_SCHEMA);
const validateParts = validator<{ part_numbers: number[] }>('parts', PARTS_SCHEMA);
const validateComplete = validator<Record<string, never>>('complete', COMPLETE_SCHEMA);

export const IMAGE_FIELDS = [
  'uuid',
  'name',
  'kind',
  'disk_format',
  'state',
  'last_error',
  'description',
  'labels',
  'sites',
  'files',
  'created_at',
  'updated_at',
] as const;

function renderFile(file: ImageFileRecord) {
  return {
    role: file.role,
    size: file.size,
    sha256: file.sha256,
    state: file.state,
    error: file.error,
    upload: file.upload
      ? {
          mode: file.upload.mode,
          ...(file.upload.mode === 'multipart'
            ? { part_size: file.upload.part_size, parts: file.upload.parts }
            : {}),
          started_at: file.upload.started_at,
        }
      : null,
    verified_at: file.verified_at,
  };
}

function render(request: ApiRequest, image: Image, fields?: readonly string[]) {
  const view = {
    uuid: image.uuid,
    name: image.name,
    kind: image.kind,
    disk_format: image.disk_format ?? null,
    state: image.state,
    last_error: image.last_error,
    description: image.description,
    labels: image.labels,
    sites: image.sites,
    files: image.files.map(renderFile),
    created_at: image.created_at,
    updated_at: image.updated_at,
    links: resourceLinks(request.baseUrl, 'images', image.uuid),
  };
  return selectFields(view, fields);
}

function inlineVerifyLimit(deps: Dependencies): number {
  return deps.config().images.inlineVerifyBytes;
}

function roleParam(request: ApiRequest): FileRole {
  const role = request.params.role as string;
  if (!FILE_ROLES.includes(role as FileRole)) {
    throw notFound(`No file role ${role}: an image's files are ${FILE_ROLES.join(', ')}.`);
  }
  return role as FileRole;
}

/** An optional JSON body: empty means `{}`. */
function optionalBody(request: ApiRequest): unknown {
  return request.body === undefined || request.body.trim() === '' ? {} : jsonBody(request);
}

export function registerImageRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ImageAccess | (() => ImageAccess) = () => controlPlaneFor(deps),
): void {
  const channel = typeof runtime === 'function' ? runtime : () => runtime;
  const catalog = () => channel().images;

  /** By UUID or name; 404 otherwise. */
  const find = async (ident: string) => {
    const repo = catalog().repo;
    const uuid = isUuidLike(ident) ? canonicalUuid(ident) : await repo.uuidForName(ident);
    const found = uuid ? await repo.get(uuid) : undefined;
    if (!found) throw notFound(`Image ${ident} could not be found.`);
    return found;
  };

  /** Applies `change` to the image read at its version; a concurrent write is a 409. */
  const save = async (before: Image, after: Image, version: number) => {
    await catalog().repo.update(before, after, version);
    return after;
  };

  router.on('GET', '/v1/images', async (request) => {
    authorize(request, 'image:list');
    for (const name of Object.keys(request.query)) {
      if (!['limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'state'].includes(name)) {
        throw invalid(`Unknown argument: "${name}"`);
      }
    }
    const params = parseListParams(request, {
      sortKeys: ['id', 'created_at', 'name'],
      selectable: IMAGE_FIELDS,
      defaultFields: IMAGE_FIELDS,
      detailPath: false,
    });
    const state = request.query.state;
    if (state !== undefined && !['uploading', 'verifying', 'active', 'error'].includes(state)) {
      throw invalid(`Invalid state ${state}: one of uploading, verifying, active, error.`);
    }
    const byName = params.sortKey === 'name';
    let after: string | undefined;
    if (params.marker) {
      const marker = await catalog().repo.get(params.marker);
      if (!marker) throw notFound(`Image ${params.marker} could not be found.`);
      after = byName ? `${marker.image.name}#${marker.image.uuid}` : imageListSortKey(marker.image);
    }
    const page = await catalog().repo.list({
      limit: params.limit,
      byName,
      descending: params.descending,
      ...(after !== undefined ? { after } : {}),
      ...(state !== undefined ? { state } : {}),
    });
    const body: Record<string, unknown> = {
      images: page.images.map((image) =>
        render(request, image, request.query.fields ? params.fields : undefined),
      ),
    };
    const last = page.images.at(-1);
    if (page.more && last) body.next = nextLink(request, 'images', params, last.uuid);
    return json(body);
  });

  router.on('POST', '/v1/images', async (request) => {
    authorize(request, 'image:create');
    const body = validateCreate(jsonBody(request));
    const image = newImage(body, deps.newUuid(), deps.now());
    if (image.sites) await requireSites(deps, image.sites);
    await catalog().repo.create(image);
    return json(render(request, image), 201, { Location: `${request.baseUrl}/v1/images/${image.uuid}` });
  });

  router.on('GET', '/v1/images/{image}', async (request) => {
    authorize(request, 'image:get');
    for (const name of Object.keys(request.query)) {
      if (name !== 'fields') throw invalid(`Unknown argument: "${name}"`);
    }
    const { image } = await find(request.params.image as string);
    const fields = request.query.fields;
    const selected = fields === undefined ? undefined : fields.split(',').map((field) => field.trim());
    for (const field of selected ?? []) {
      if (!(IMAGE_FIELDS as readonly string[]).includes(field))
        throw invalid(`Field ${field} is not a valid field.`);
    }
    return json(render(request, image, selected));
  });

  router.on('PATCH', '/v1/images/{image}', async (request) => {
    authorize(request, 'image:update');
    const { image, version } = await find(request.params.image as string);
    const patch = validatePatch(jsonBody(request));
    checkPatchAllowed(patch, IMAGE_PATCHABLE_FIELDS);
    const patched = applyPatch(
      { name: image.name, description: image.description, labels: image.labels, sites: image.sites },
      patch,
    );
    const view = validateView({
      name: patched.name,
      description: patched.description ?? null,
      // `remove` resets labels; an explicit null is not an object (400).
      labels: patched.labels === undefined ? {} : patched.labels,
      sites: patched.sites ?? null,
    });
    const sites = validateSites(view.sites);
    if (sites) await requireSites(deps, sites);
    if (view.name !== image.name) {
      // Nodes that name it by its old name would lose it (and no longer hold its deletion).
      const node = await catalog().repo.referencingNode({ uuid: image.name, name: image.name });
      if (node) {
        throw conflict(
          `Image ${image.name} cannot be renamed: node ${node} names it in instance_info.image_source (use its UUID there first).`,
        );
      }
    }
    const updated: Image = {
      ...image,
      name: validateImageName(view.name),
      description: view.description,
      labels: view.labels,
      sites,
      updated_at: deps.now(),
    };
    await save(image, updated, version);
    if (image.state === 'active' && JSON.stringify(image.sites) !== JSON.stringify(sites)) {
      // Sites that gain or lose the image: every site when either side is "all".
      const affected =
        image.sites === null || sites === null ? null : [...new Set([...image.sites, ...sites])];
      await catalog().wake(affected);
    }
    return json(render(request, updated));
  });

  router.on('DELETE', '/v1/images/{image}', async (request) => {
    authorize(request, 'image:delete');
    const { image, version } = await find(request.params.image as string);
    const node = await catalog().repo.referencingNode(image);
    if (node) {
      throw conflict(
        `Image ${image.name} is in use: node ${node} names it in instance_info.image_source. Change or remove that first.`,
      );
    }
    // The record first: once it is gone nothing offers the files, whatever happens next.
    await catalog().repo.delete(image, version);
    for (const file of image.files) {
      if (file.upload?.mode === 'multipart' && file.upload.upload_id) {
        await catalog().objects.abortMultipart(file.key, file.upload.upload_id);
      }
    }
    await catalog().objects.delete(image.files.map((file) => file.key));
    await catalog().repo.deleteSyncs(image.uuid);
    if (image.state === 'active') await catalog().wake(image.sites);
    return noContent();
  });

  router.on('POST', '/v1/images/{image}/files/{role}/upload', async (request) => {
    authorize(request, 'image:upload');
    const role = roleParam(request);
    const { image, version } = await find(request.params.image as string);
    const body = validateUpload(optionalBody(request));
    const file = fileOf(image, role);
    if (file.state === 'verified' || file.state === 'verifying') {
      throw conflict(
        `The ${role} file of image ${image.name} is ${file.state}: an image's files never change. Register a new image instead.`,
      );
    }
    const multipart = body.multipart ?? file.size > DEFAULT_SINGLE_PUT_BYTES;
    if (!multipart && file.size > MAX_SINGLE_PUT_BYTES) {
      throw invalid(
        `A file over ${MAX_SINGLE_PUT_BYTES} bytes must be uploaded in parts ("multipart": true).`,
      );
    }
    const objects = catalog().objects;
    const startedAt = deps.now();
    const expiresAt = new Date(Date.now() + UPLOAD_URL_SECONDS * 1000).toISOString();
    if (!multipart) {
      const updated = withFile(
        image,
        role,
        (current) => ({
          ...current,
          state: 'uploading',
          error: null,
          upload: { mode: 'single', started_at: startedAt },
        }),
        startedAt,
      );
      await save(image, updated, version);
      await abortPrevious(file);
      const put = await objects.presignPut(file.key, file.sha256, file.size, UPLOAD_URL_SECONDS);
      return json(
        { role, mode: 'single', method: 'PUT', url: put.url, headers: put.headers, expires_at: expiresAt },
        201,
      );
    }
    const plan = partPlan(file.size);
    const uploadId = await objects.createMultipart(file.key);
    const updated = withFile(
      image,
      role,
      (current) => ({
        ...current,
        state: 'uploading',
        error: null,
        upload: { mode: 'multipart', upload_id: uploadId, ...plan, started_at: startedAt },
      }),
      startedAt,
    );
    try {
      await save(image, updated, version);
    } catch (error) {
      await objects.abortMultipart(file.key, uploadId);
      throw error;
    }
    await abortPrevious(file);
    return json({ role, mode: 'multipart', ...plan, expires_at: expiresAt }, 201);

    async function abortPrevious(previous: ImageFileRecord) {
      if (previous.upload?.mode === 'multipart' && previous.upload.upload_id) {
        await objects.abortMultipart(previous.key, previous.upload.upload_id);
      }
    }
  });

  router.on('DELETE', '/v1/images/{image}/files/{role}/upload', async (request) => {
    authorize(request, 'image:upload');
    const role = roleParam(request);
    const { image, version } = await find(request.params.image as string);
    const file = fileOf(image, role);
    if (file.state !== 'uploading') {
      throw conflict(
        `No upload of the ${role} file of image ${image.name} is in progress (it is ${file.state}).`,
      );
    }
    const updated = withFile(
      image,
      role,
      (current) => ({ ...current, state: 'pending', upload: null }),
      deps.now(),
    );
    await save(image, updated, version);
    if (file.upload?.mode === 'multipart' && file.upload.upload_id) {
      await catalog().objects.abortMultipart(file.key, file.upload.upload_id);
    }
    return noContent();
  });

  router.on('POST', '/v1/images/{image}/files/{role}/parts', async (request) => {
    authorize(request, 'image:upload');
    const role = roleParam(request);
    const { image } = await find(request.params.image as string);
    const { part_numbers: numbers } = validateParts(jsonBody(request));
    const file = fileOf(image, role);
    const upload = file.upload;
    if (file.state !== 'uploading' || upload?.mode !== 'multipart' || !upload.upload_id) {
      throw conflict(
        `The ${role} file of image ${image.name} has no multipart upload in progress: start one with POST .../files/${role}/upload.`,
      );
    }
    const parts = upload.parts ?? 0;
    const out = numbers.find((n) => n > parts);
    if (out !== undefined) throw invalid(`Part ${out} does not exist: this upload has parts 1 to ${parts}.`);
    const plan = { part_size: upload.part_size ?? 0, parts };
    const uploadId = upload.upload_id;
    const urls = await Promise.all(
      numbers.map(async (n) => ({
        part_number: n,
        size: expectedPartSize(file.size, plan, n),
        url: await catalog().objects.presignPart(file.key, uploadId, n, UPLOAD_URL_SECONDS),
      })),
    );
    return json({ parts: urls, expires_at: new Date(Date.now() + UPLOAD_URL_SECONDS * 1000).toISOString() });
  });

  router.on('POST', '/v1/images/{image}/files/{role}/complete', async (request) => {
    authorize(request, 'image:upload');
    const role = roleParam(request);
    const { image, version } = await find(request.params.image as string);
    validateComplete(optionalBody(request));
    const file = fileOf(image, role);
    const upload = file.upload;
    if (file.state !== 'uploading' || !upload) {
      throw conflict(
        `No upload of the ${role} file of image ${image.name} is in progress (it is ${file.state}).`,
      );
    }
    const objects = catalog().objects;
    if (upload.mode === 'multipart' && upload.upload_id) {
      const plan = { part_size: upload.part_size ?? 0, parts: upload.parts ?? 0 };
      const stored = await objects.listParts(file.key, upload.upload_id);
      const byNumber = new Map(stored.map((part) => [part.partNumber, part]));
      const missing: number[] = [];
      for (let n = 1; n <= plan.parts; n++) if (!byNumber.has(n)) missing.push(n);
      if (missing.length > 0) {
        throw invalid(
          `The upload is missing ${missing.length} of ${plan.parts} parts (${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', ...' : ''}): upload them, then complete again.`,
        );
      }
      for (let n = 1; n <= plan.parts; n++) {
        const part = byNumber.get(n)!;
        const expected = expectedPartSize(file.size, plan, n);
        if (part.size !== expected) {
          throw invalid(`Part ${n} has ${part.size} bytes where ${expected} were expected: upload it again.`);
        }
      }
      await objects.completeMultipart(
        file.key,
        upload.upload_id,
        stored.filter((part) => part.partNumber <= plan.parts),
      );
    } else if (!(await objects.head(file.key))) {
      throw invalid(
        `Nothing was uploaded for the ${role} file of image ${image.name} yet: PUT it to the presigned URL first.`,
      );
    }
    const now = deps.now();
    const verifying = withFile(image, role, (current) => ({ ...current, state: 'verifying' }), now);
    await save(image, verifying, version);
    if (file.size <= inlineVerifyLimit(deps)) {
      const outcome = await catalog().verify(image.uuid, role);
      const shown = outcome.image ?? verifying;
      return json(render(request, shown));
    }
    await catalog().scheduleVerify(image.uuid, role);
    return json(render(request, verifying), 202);
  });

  router.on('GET', '/v1/sites/{site}/images', async (request) => {
    authorize(request, 'site:images');
    const site = validateSiteName(request.params.site as string);
    if (!(await deps.sites.get(site))) throw notFound(`Site ${site} could not be found.`);
    for (const name of Object.keys(request.query)) {
      if (name !== 'limit' && name !== 'marker') throw invalid(`Unknown argument: "${name}"`);
    }
    const params = parseListParams(request, {
      sortKeys: ['id'],
      selectable: [],
      defaultFields: [],
      detailPath: false,
    });
    let after: string | undefined;
    if (params.marker) {
      const marker = await catalog().repo.get(params.marker);
      if (!marker) throw notFound(`Image ${params.marker} could not be found.`);
      after = imageListSortKey(marker.image);
    }
    const held: Image[] = [];
    let more = true;
    for (let round = 0; round < 25 && held.length < params.limit && more; round++) {
      const page = await catalog().repo.active(params.limit - held.length, after);
      for (const image of page.images) {
        after = imageListSortKey(image);
        if (isSelectedFor(image, site)) held.push(image);
      }
      more = page.more;
    }
    const images = [];
    for (let i = 0; i < held.length; i += 25) {
      const batch = held.slice(i, i + 25);
      images.push(
        ...(await Promise.all(
          batch.map(async (image) => {
            const sync = (await catalog().repo.getSync(image.uuid, site))?.sync;
            const total = image.files.reduce((sum, file) => sum + file.size, 0);
            return {
              uuid: image.uuid,
              name: image.name,
              kind: image.kind,
              state: sync?.state ?? 'pending',
              bytes_done: sync?.bytes_done ?? 0,
              bytes_total: sync?.bytes_total ?? total,
              error: sync?.error ?? null,
              observed_at: sync?.observed_at ?? null,
              reported_by: sync?.reported_by ?? null,
              // What the deploy ramdisk is given: once the site has prepared it.
              ...(image.kind === 'disk'
                ? { disk_format: image.disk_format ?? null, served: sync?.served ?? null }
                : {}),
              links: resourceLinks(request.baseUrl, 'images', image.uuid),
            };
          }),
        )),
      );
    }
    const body: Record<string, unknown> = { site, images };
    const last = held.at(-1);
    if (more && last) {
      body.next = `${request.baseUrl}/v1/sites/${site}/images?limit=${params.limit}&marker=${last.uuid}`;
    }
    return json(body);
  });
}

async function requireSites(deps: Dependencies, sites: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const site of sites) if (!(await deps.sites.get(site))) missing.push(site);
  if (missing.length > 0) throw invalid(`Unknown site(s) in sites: ${missing.join(', ')}.`);
}
