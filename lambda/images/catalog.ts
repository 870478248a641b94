/**
 * The image catalog's behaviour shared by the api Lambda (`/v1/images`), the agents
 * Lambda (`images_pull`, `image_report`) and the verify Lambda (`verify-handler.ts`):
 *
 * - verification: an uploaded file is read back from S3, streaming, and its size and
 *   SHA-256 compared with the registration; only then is it `verified`, and the image
 *   `active` once all its files are. A mismatch makes the file (and the image) `error`
 *   with the reason, and the object is deleted: a corrupt upload is never offered.
 * - what a site holds: the active images selected for it (`sites` null = every site),
 *   handed to its agent with short-lived presigned GET URLs, 20 per `images` message;
 *   whole-disk images (kind `disk`) only to an agent whose `images_pull` `accepts` them
 *   (an older agent would refuse the whole message over the unknown file role);
 * - sync state: the agent's reports, only for images its own site holds; for a `disk`
 *   image `ready` at the site, the file it serves the deploy ramdisk (`served`);
 * - `wake` with topic `images` to a site's open sockets when what it should hold changes.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { imageVerifyQueue } from '../../infra/resources.ts';
import type { ImageAssignment, ImageExtraKind, ImageReport } from '../../protocol/messages.ts';
import { clientSqs, type Sender } from '../adapters/aws-sdk.ts';
import type { ChannelLogger } from '../adapters/command-queue.ts';
import type { ConnectionNotifier } from '../adapters/connection-notifier.ts';
import type { ConnectionRepository } from '../adapters/dynamo/connection-repository.ts';
import { ImageRepository, imageListSortKey } from '../adapters/dynamo/image-repository.ts';
import type { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import type { SiteRepository } from '../adapters/dynamo/site-repository.ts';
import type { ImageObjects } from '../adapters/s3/image-objects.ts';
import { DomainError } from '../domain/errors.ts';
import {
  type FileRole,
  fileOf,
  type Image,
  type ImageFileRecord,
  type ImageSync,
  isSelectedFor,
  type ServedDisk,
  withFile,
} from '../domain/images/image.ts';

/** Lifetime of the presigned GET URLs handed to agents (they ask again when one expires). */
export const DOWNLOAD_URL_SECONDS = 15 * 60;
/** Images per `images` message (the protocol's bound: the message stays under 128 KiB). */
export const IMAGES_PER_MESSAGE = 20;

const WAKE_IMAGES = JSON.stringify({ v: 1, type: 'wake', topic: 'images' });

/** Where a completed upload's verification runs when it is too large for the request. */
export type VerifyScheduler = (image: string, role: FileRole) => Promise<void>;

export interface ImageCatalogOptions {
  readonly store: InventoryStore;
  readonly objects: ImageObjects;
  readonly sites: SiteRepository;
  readonly connections: ConnectionRepository;
  readonly notifier: ConnectionNotifier;
  readonly logger: ChannelLogger;
  /** Ironic timestamps. */
  readonly now: () => string;
  /** Default: in-process in the local stack, else a message on the image-verify queue. */
  readonly scheduler?: VerifyScheduler;
  readonly sqs?: () => Sender<SQSClient>;
  /** The local stack (`METALPLANE_LOCAL_STACK`): verify in-process (default false). */
  readonly localStack?: () => boolean;
  /** The image-verify queue's name (`METALPLANE_IMAGE_VERIFY_QUEUE`). */
  readonly verifyQueueName?: () => string | undefined;
}

export type VerifyOutcome =
  | { readonly kind: 'verified'; readonly image: Image }
  | { readonly kind: 'failed'; readonly image: Image; readonly reason: string }
  | { readonly kind: 'unchanged'; readonly image?: Image };

export class ImageCatalog {
  readonly repo: ImageRepository;
  readonly objects: ImageObjects;
  private readonly options: ImageCatalogOptions;
  private verifyQueueUrl: string | undefined;

  constructor(options: ImageCatalogOptions) {
    this.options = options;
    this.repo = new ImageRepository(options.store);
    this.objects = options.objects;
  }

  private get log(): ChannelLogger {
    return this.options.logger;
  }

  // --- verification ----------------------------------------------------------------

  /**
   * Verifies a file in `verifying`: size first (HEAD), then the SHA-256 of the whole
   * object, streamed. Idempotent: a file in any other state is left as it is.
   */
  async verify(uuid: string, role: FileRole): Promise<VerifyOutcome> {
    const found = await this.repo.get(uuid);
    if (!found) return { kind: 'unchanged' };
    const file = fileOf(found.image, role);
    if (file.state !== 'verifying') return { kind: 'unchanged', image: found.image };
    const started = file.upload?.started_at ?? null;

    let reason: string | undefined;
    let etag = '';
    const head = await this.objects.head(file.key);
    if (!head) reason = 'no object was stored for this file';
    else if (head.size !== file.size) {
      reason = `size mismatch: the stored object has ${head.size} bytes, ${file.size} were registered`;
    } else {
      const digest = await this.objects.digest(file.key, head.etag || undefined);
      if (!digest) reason = 'the stored object disappeared during verification';
      else if (digest.size !== file.size) {
        reason = `size mismatch: the stored object has ${digest.size} bytes, ${file.size} were registered`;
      } else if (digest.sha256 !== file.sha256) {
        reason = `SHA-256 mismatch: the stored object's is ${digest.sha256}, ${file.sha256} was registered`;
      } else etag = digest.etag;
    }

    const now = this.options.now();
    const change = (current: ImageFileRecord): ImageFileRecord =>
      reason === undefined
        ? { ...current, state: 'verified', error: null, etag, verified_at: now, upload: null }
        : { ...current, state: 'error', error: reason, etag: null, verified_at: null, upload: null };
    // The record may have moved meanwhile (a rename, a label): re-read and retry.
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = attempt === 0 ? found : await this.repo.get(uuid);
      if (!current) return { kind: 'unchanged' };
      const currentFile = fileOf(current.image, role);
      if (currentFile.state !== 'verifying' || (currentFile.upload?.started_at ?? null) !== started) {
        return { kind: 'unchanged', image: current.image };
      }
      const updated = withFile(current.image, role, change, now);
      try {
        await this.repo.update(current.image, updated, current.version);
      } catch (error) {
        if (error instanceof DomainError && error.kind === 'conflict') continue;
        throw error;
      }
      if (reason !== undefined) {
        this.log.warn('image file failed verification', { image: uuid, role, reason });
        // Never served, never kept: the bytes are not the registered ones.
        await this.objects
          .delete([file.key])
          .catch((error: unknown) =>
            this.log.warn('could not delete a corrupt upload', { image: uuid, role, error: String(error) }),
          );
        return { kind: 'failed', image: updated, reason };
      }
      this.log.info('image file verified', { image: uuid, role, size: file.size });
      if (updated.state === 'active') await this.wake(updated.sites);
      return { kind: 'verified', image: updated };
    }
    throw new DomainError('conflict', `Image ${uuid} kept changing during its verification; retry.`);
  }

  /** Runs (or queues) the verification of a large file off the request path. */
  async scheduleVerify(uuid: string, role: FileRole): Promise<void> {
    if (this.options.scheduler) return this.options.scheduler(uuid, role);
    if (this.options.localStack?.()) {
      // (`LOCAL_STACK_ENV` of api/authentication.ts: set by local/stack.ts on loopback only.)
      // The local stack has no verify Lambda: verify in this (long-lived) process.
      setImmediate(() => {
        this.verify(uuid, role).catch((error: unknown) =>
          this.log.error('image verification failed', { image: uuid, role, error: String(error) }),
        );
      });
      return;
    }
    const sqs = this.options.sqs?.();
    if (!sqs) throw new Error('no queue client to schedule an image verification');
    this.verifyQueueUrl ??= await verifyQueueUrl(sqs, this.options.verifyQueueName?.());
    await sqs.send(
      new (await clientSqs()).SendMessageCommand({
        QueueUrl: this.verifyQueueUrl,
        MessageBody: JSON.stringify({ image: uuid, role }),
      }),
    );
  }

  // --- what sites hold ---------------------------------------------------------------

  /**
   * One page of the images `site` should hold, with fresh presigned GET URLs; whole-disk
   * images only when the agent `accepts` them.
   */
  async assignments(
    site: string,
    cursor?: string,
    accepts: readonly ImageExtraKind[] = [],
  ): Promise<{ images: ImageAssignment[]; cursor?: string }> {
    const held = (image: Image) =>
      isSelectedFor(image, site) && (image.kind !== 'disk' || accepts.includes('disk'));
    let after = cursor === undefined ? undefined : decodeCursor(cursor);
    const chosen: Image[] = [];
    let more = true;
    // Reads past images of other sites; bounded so one message never reads forever.
    for (let round = 0; round < 25 && chosen.length < IMAGES_PER_MESSAGE && more; round++) {
      const page = await this.repo.active(IMAGES_PER_MESSAGE - chosen.length, after);
      for (const image of page.images) {
        if (held(image)) chosen.push(image);
        after = imageListSortKey(image);
      }
      more = page.more;
    }
    const expiresAt = new Date(Date.now() + DOWNLOAD_URL_SECONDS * 1000).toISOString();
    const images = await Promise.all(
      chosen.map(async (image) => ({
        uuid: image.uuid,
        name: image.name,
        ...(image.disk_format !== undefined ? { disk_format: image.disk_format } : {}),
        files: await Promise.all(
          image.files.map(async (file) => ({
            role: file.role,
            size: file.size,
            sha256: file.sha256,
            url: await this.objects.presignGet(file.key, DOWNLOAD_URL_SECONDS),
            url_expires_at: expiresAt,
          })),
        ),
      })),
    );
    return more && after !== undefined ? { images, cursor: encodeCursor(after) } : { images };
  }

  /**
   * Stores an agent's reports for its own site. A report on an image the site does not
   * hold (unknown, not active, or not selected for it) changes nothing and is logged:
   * it may be a late report on an image just withdrawn, or a confused agent.
   */
  async storeReports(
    agent: { hostname: string; site: string },
    reports: readonly ImageReport[],
  ): Promise<{ stored: number; ignored: string[] }> {
    const ignored: string[] = [];
    let stored = 0;
    for (let i = 0; i < reports.length; i += 25) {
      const batch = reports.slice(i, i + 25);
      const results = await Promise.all(
        batch.map(async (report) => {
          const found = await this.repo.get(report.image);
          if (found?.image.state !== 'active' || !isSelectedFor(found.image, agent.site)) {
            ignored.push(report.image);
            return false;
          }
          const served = servedOf(found.image, report);
          if (report.served && !served) {
            this.log.warn('image report: served file refused', {
              hostname: agent.hostname,
              site: agent.site,
              image: report.image,
              state: report.state,
              path: report.served.path,
            });
          }
          const sync: ImageSync = {
            image: report.image,
            site: agent.site,
            state: report.state,
            bytes_done: report.bytes_done,
            bytes_total: report.bytes_total,
            error: report.error ?? null,
            observed_at: report.observed_at,
            reported_by: agent.hostname,
            updated_at: this.options.now(),
            ...(served ? { served } : {}),
          };
          return this.repo.putSync(sync, found.image.created_at);
        }),
      );
      stored += results.filter(Boolean).length;
    }
    if (ignored.length > 0) {
      this.log.warn('image reports ignored: images the site does not hold', {
        hostname: agent.hostname,
        site: agent.site,
        images: ignored.slice(0, 20),
      });
    }
    return { stored, ignored };
  }

  /**
   * Pushes `wake` (topic `images`) to the open sockets of the given sites (every site when
   * null). Never throws: the agent also asks on its own schedule.
   */
  async wake(sites: readonly string[] | null): Promise<number> {
    try {
      const names = sites ?? (await this.allSites());
      let sent = 0;
      for (const site of names) {
        const connections = await this.options.connections.ofSite(site);
        const outcomes = await Promise.all(
          connections.map(async (connection) => {
            try {
              const outcome = await this.options.notifier.post(connection.connectionId, WAKE_IMAGES);
              if (outcome === 'gone') await this.options.connections.delete(connection);
              return outcome;
            } catch (error) {
              this.log.warn('images wake not delivered', {
                site,
                connectionId: connection.connectionId,
                error: (error as Error).message,
              });
              return 'failed';
            }
          }),
        );
        sent += outcomes.filter((outcome) => outcome === 'sent').length;
      }
      return sent;
    } catch (error) {
      this.log.warn('images wake failed', { error: (error as Error).message });
      return 0;
    }
  }

  private async allSites(): Promise<string[]> {
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.options.sites.list(1000, after);
      names.push(...page.sites.map((site) => site.name));
      after = page.sites.at(-1)?.name;
      if (!page.more || after === undefined) return names;
    }
  }
}

/**
 * The served file of a report, kept only where it makes sense: a `disk` image reported
 * `ready`, a path inside that image's own directory. (The schema checked the shapes.)
 */
function servedOf(image: Image, report: ImageReport): ServedDisk | undefined {
  const served = report.served;
  if (!served || image.kind !== 'disk' || report.state !== 'ready') return undefined;
  const file = served.path.slice(image.uuid.length + 1);
  if (!served.path.startsWith(`${image.uuid}/`) || file.includes('/') || file.startsWith('.'))
    return undefined;
  return { path: served.path, format: served.format, sha256: served.sha256, size: served.size };
}

async function verifyQueueUrl(sqs: Sender<SQSClient>, name: string | undefined): Promise<string> {
  if (!name)
    throw new Error(`${imageVerifyQueue.envVar} is not set: the queue name comes from the environment`);
  const { QueueUrl } = await sqs.send(new (await clientSqs()).GetQueueUrlCommand({ QueueName: name }));
  if (!QueueUrl) throw new Error(`queue ${name} not found`);
  return QueueUrl;
}

/** The cursor of `images_pull`: the position (list sort key) of the last image examined. */
function encodeCursor(after: string): string {
  return Buffer.from(after, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const after = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^\d{4}-\d{2}-\d{2}T[^#]{1,40}#[0-9a-f-]{36}$/.test(after)) {
    throw new DomainError('invalid', 'images_pull: the cursor is not one this control plane issued');
  }
  return after;
}
