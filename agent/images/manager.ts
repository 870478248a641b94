/**
 * Image sync: keeps `<images dir>/<uuid>/<role>` in step with the images the control
 * plane says this site should hold (docs/agent.md, "Images").
 *
 * - The list: `images_pull` (following `cursor` pages) at start, when the channel comes
 *   up, on `wake {topic: 'images'}`, every `refreshIntervalMs`, and when a presigned URL
 *   has expired (by `url_expires_at`, or a 403 from S3).
 * - Each file is a job: verified already (ready), queued, downloading, or failed (retried
 *   with exponential backoff). At most `concurrency` downloads run at once, all sharing
 *   one optional bandwidth cap. Downloads are streamed, verified and renamed into place
 *   by `download.ts`.
 * - What is on disk and verified is recorded in `<uuid>/.manifest.json` (size, mtime,
 *   inode, SHA-256). On start each recorded file is checked: size + mtime + inode equal
 *   → trusted (fast path); otherwise re-hashed in full, and removed if the digest is
 *   wrong, so that it is downloaded again. `verifyIntervalMs` re-hashes every ready file
 *   now and then (catches corruption that kept size and mtime).
 * - Progress goes to the control plane as `image_report` (batched; per image at most one
 *   progress report per `reportIntervalMs`, state changes at once) and to the log.
 * - An image no longer on the list is removed after `gcGraceMs`, unless pinned
 *   (`pin(uuid, holder)`: a node being provisioned from it). Nothing is collected before
 *   a complete list has been received once.
 * - Offline, it keeps what it has; downloads with valid URLs go on; reports wait.
 * - A whole-disk image (`disk_format`, one `disk` file) is prepared for the deploy ramdisk
 *   once verified (`prepare.ts`: qcow2 and raw+zstd become `disk.raw.gz`; raw and
 *   raw+gzip are served as they are); the file served, its format, SHA-256 and size go in
 *   the manifest and in the image's `ready` report (`served`). It is `ready` only then.
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  AgentMessage,
  DiskImageFormat,
  ImageAssignment,
  ImageFile,
  ImageFileRole,
  ImageReport,
  ServedDiskImage,
  ServerMessage,
} from '../../protocol/messages.ts';
import { errorMessage, type Logger } from '../log.ts';
import {
  ChecksumError,
  DiskFullError,
  downloadFile,
  HttpStatusError,
  hashFile,
  partialBytes,
  UrlExpiredError,
  writeFileAtomic,
} from './download.ts';
import { imageDir, imageFile, isImageUuid, isRole, isSha256, MANIFEST, maskUrl } from './paths.ts';
import { needsPreparation, PrepareError, prepareDisk, servedName } from './prepare.ts';
import { TokenBucket } from './throttle.ts';

export type ImagesMessage = Extract<ServerMessage, { type: 'images' }>;

export interface ImageManagerOptions {
  readonly dir: string;
  /** Sends a message to the control plane; rejects when it cannot (offline). */
  readonly send: (msg: AgentMessage) => Promise<void>;
  readonly log: Logger;
  /** Downloads at once (default 2). */
  readonly concurrency?: number;
  /** Bytes per second for all downloads together; 0 or undefined: unlimited. */
  readonly bandwidthLimit?: number;
  /** How often the list is asked for (default 5 min). */
  readonly refreshIntervalMs?: number;
  /** How long an image no longer wanted stays (default 1 h). */
  readonly gcGraceMs?: number;
  /** How often every ready file is re-hashed (0: never; default 0). */
  readonly verifyIntervalMs?: number;
  /** Backoff after a failure: first delay, and ceiling (defaults 30 s, 1 h). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
  /** Least time between two progress reports of one image (default 2 s). */
  readonly reportIntervalMs?: number;
  /** A download that receives nothing for this long is cut and resumed (default 60 s). */
  readonly stallTimeoutMs?: number;
  /** An unanswered `images_pull` no longer holds back the next after this long (default 30 s). */
  readonly pullTimeoutMs?: number;
  /** Bound of one whole-disk image's preparation (default 2 h). */
  readonly prepareTimeoutMs?: number;
  /** The programs preparation runs (default `qemu-img` and `zstd` from PATH). */
  readonly qemuImg?: string;
  readonly zstd?: string;
}

export interface ImageStats {
  readonly bytesDownloaded: number;
  readonly downloadsRunning: number;
  readonly ready: number;
  readonly syncing: number;
  readonly pending: number;
  readonly error: number;
  readonly corruptDetected: number;
  readonly removed: number;
}

type JobState = 'ready' | 'queued' | 'running' | 'error';

interface Job {
  readonly uuid: string;
  readonly role: ImageFileRole;
  file: ImageFile;
  /** A `disk` file: the image's format (what its preparation does). */
  diskFormat: DiskImageFormat | undefined;
  state: JobState;
  /** Bytes of the file on disk (partial included) as last seen. */
  done: number;
  /** Failures in a row (backoff exponent). */
  failures: number;
  /** Transient interruptions in a row (resumed at once, up to a few times). */
  interruptions: number;
  /** 403s in a row, each after a fresh URL. */
  refusals: number;
  /** Not before (epoch ms). */
  notBefore: number;
  /** Waiting for a list newer than this (epoch ms) because its URL expired. */
  needsUrlAfter: number | undefined;
  /** When a fresh URL was last asked for because the clock said this one expired. */
  urlAskedAt: number | undefined;
  error: string | undefined;
  abort: AbortController | undefined;
  lastLogAt: number;
}

interface LocalFile {
  size: number;
  sha256: string;
  mtimeMs: number;
  ino: number;
  verifiedAt: string;
}

/** What a whole-disk image's preparation produced (served to the deploy ramdisk). */
interface LocalServed extends ServedDiskImage {
  /** The `disk` file it was prepared from, and that file's format. */
  sourceSha256: string;
  sourceFormat: DiskImageFormat;
  mtimeMs: number;
  ino: number;
}

interface LocalImage {
  name: string;
  files: Map<ImageFileRole, LocalFile>;
  served?: LocalServed | undefined;
}

interface ManifestFile {
  version: 1;
  uuid: string;
  name: string;
  files: Record<string, { size: number; sha256: string; mtime_ms: number; ino: number; verified_at: string }>;
  /** A whole-disk image's served file (absent in manifests of other images and older agents). */
  served?: {
    path: string;
    format: 'raw' | 'raw+gzip';
    sha256: string;
    size: number;
    source_sha256: string;
    source_format: DiskImageFormat;
    mtime_ms: number;
    ino: number;
  };
}

/** Transient interruptions resumed right away before one counts as a failure. */
const QUICK_RESUMES = 3;
/** 403s with fresh URLs before giving up for a backoff period. */
const MAX_REFUSALS = 3;
/** A URL this close to its expiry is not worth starting with. */
const URL_MARGIN_MS = 5000;
/** Progress in the log at most this often per file. */
const LOG_PROGRESS_MS = 10_000;
/** At most this many reports per message (the protocol's limit is 500). */
const REPORTS_PER_MESSAGE = 200;

const key = (uuid: string, role: string) => `${uuid}/${role}`;

export class ImageManager {
  readonly dir: string;
  readonly #o: ImageManagerOptions;
  readonly #log: Logger;
  readonly #concurrency: number;
  readonly #bucket: TokenBucket | undefined;
  readonly #refreshMs: number;
  readonly #graceMs: number;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;
  readonly #reportMs: number;
  readonly #pullTimeoutMs: number;

  #started = false;
  #stopped = false;
  #ready: Promise<void> = Promise.resolve();
  /** The last complete list; undefined until one arrived. */
  #wanted: Map<string, ImageAssignment> | undefined;
  #listAt = 0;
  #collect: { images: Map<string, ImageAssignment>; at: number; again: boolean } | undefined;
  #urlPullTimer: NodeJS.Timeout | undefined;
  #lastPullAt = 0;
  readonly #jobs = new Map<string, Job>();
  readonly #local = new Map<string, LocalImage>();
  readonly #unwantedSince = new Map<string, number>();
  readonly #pins = new Map<string, Set<string>>();
  readonly #manifestWrites = new Map<string, Promise<void>>();
  readonly #runs = new Set<Promise<void>>();
  #running = 0;
  #wakeTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #gcTimer: NodeJS.Timeout | undefined;
  #verifyTimer: NodeJS.Timeout | undefined;
  #verifying = false;
  // reports
  readonly #lastSent = new Map<string, { at: number; state: string }>();
  readonly #dirty = new Map<string, number>();
  #reportTimer: NodeJS.Timeout | undefined;
  #reportTimerAt = 0;
  // counters
  #bytesDownloaded = 0;
  #corruptDetected = 0;
  #removed = 0;

  constructor(options: ImageManagerOptions) {
    this.#o = options;
    this.dir = options.dir;
    this.#log = options.log.child({ component: 'images' });
    this.#concurrency = Math.max(1, options.concurrency ?? 2);
    this.#bucket = options.bandwidthLimit ? new TokenBucket(options.bandwidthLimit) : undefined;
    this.#refreshMs = options.refreshIntervalMs ?? 300_000;
    this.#graceMs = options.gcGraceMs ?? 3_600_000;
    this.#retryInitialMs = options.retryInitialMs ?? 30_000;
    this.#retryMaxMs = options.retryMaxMs ?? 3_600_000;
    this.#reportMs = options.reportIntervalMs ?? 2000;
    this.#pullTimeoutMs = options.pullTimeoutMs ?? 30_000;
  }

  // --- life cycle ------------------------------------------------------------------------

  /** Checks what is on disk (in the background), then asks for the list. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#ready = this.#scan().catch((error) =>
      this.#log.error('images directory scan failed', { dir: this.dir, error: errorMessage(error) }),
    );
    void this.#ready.then(() => {
      if (this.#stopped) return;
      this.requestList('start');
      this.#refreshTimer = setInterval(() => this.requestList('interval'), this.#refreshMs);
      this.#refreshTimer.unref();
      const gcEvery = Math.min(60_000, Math.max(100, Math.floor(this.#graceMs / 2)));
      this.#gcTimer = setInterval(() => this.#gcSafely(), gcEvery);
      this.#gcTimer.unref();
      const verifyMs = this.#o.verifyIntervalMs ?? 0;
      if (verifyMs > 0) {
        this.#verifyTimer = setInterval(
          () =>
            void this.verifyAll().catch((error) =>
              this.#log.error('image verification failed', { error: errorMessage(error) }),
            ),
          verifyMs,
        );
        this.#verifyTimer.unref();
      }
    });
  }

  /** Resolves when the start-up check of the files on disk is done. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** Stops downloads (their partial files stay for a resume) and timers; sends what reports it can. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of [this.#refreshTimer, this.#gcTimer, this.#verifyTimer]) clearInterval(t);
    for (const t of [this.#wakeTimer, this.#reportTimer, this.#urlPullTimer]) clearTimeout(t);
    for (const job of this.#jobs.values()) job.abort?.abort(new Error('agent stopping'));
    await Promise.allSettled([...this.#runs]);
    await this.#flushReports(true).catch(() => {});
  }

  // --- what the channel and the boot code call ---------------------------------------------

  /** Asks the control plane for the list (coalesced with one still being answered). */
  requestList(reason: string): void {
    if (!this.#started || this.#stopped) return;
    const now = Date.now();
    if (this.#collect && now - this.#collect.at < this.#pullTimeoutMs) {
      this.#collect.again = true;
      return;
    }
    this.#collect = { images: new Map(), at: now, again: false };
    this.#lastPullAt = now;
    this.#log.debug('images_pull', { reason });
    this.#o.send({ v: 1, type: 'images_pull', accepts: ['disk'] }).catch((error) => {
      this.#collect = undefined;
      this.#log.debug('images_pull not sent', { reason, error: errorMessage(error) });
    });
  }

  /** The control plane's `wake {topic: 'images'}`. */
  onWake(): void {
    this.requestList('wake');
  }

  /** The channel is up: ask for the list, send the reports that waited. */
  onConnected(): void {
    this.requestList('connected');
    for (const uuid of this.#wanted?.keys() ?? []) this.#touch(uuid, true);
  }

  /** One page of the list (`images`), already validated against the protocol's schema. */
  onImages(msg: ImagesMessage): void {
    if (this.#stopped) return;
    const collect = this.#collect ?? { images: new Map(), at: Date.now(), again: false };
    this.#collect = collect;
    collect.at = Date.now();
    for (const image of msg.images) {
      const problem = checkAssignment(image);
      if (problem) {
        this.#log.warn('image assignment refused', { image: String(image.uuid).slice(0, 64), problem });
        continue;
      }
      collect.images.set(image.uuid, image);
    }
    if (msg.cursor) {
      this.#o.send({ v: 1, type: 'images_pull', cursor: msg.cursor, accepts: ['disk'] }).catch((error) => {
        this.#collect = undefined;
        this.#log.warn('images_pull (next page) not sent', { error: errorMessage(error) });
      });
      return;
    }
    this.#collect = undefined;
    void this.#ready.then(() => {
      if (this.#stopped) return;
      this.#apply(collect.images);
      if (collect.again) this.requestList('again');
    });
  }

  /** Keeps an image on disk while `holder` (e.g. a node being provisioned) uses it. */
  pin(uuid: string, holder: string): void {
    if (!isImageUuid(uuid)) throw new Error(`not an image UUID: ${JSON.stringify(uuid.slice(0, 64))}`);
    const holders = this.#pins.get(uuid) ?? new Set<string>();
    this.#pins.set(uuid, holders);
    holders.add(holder);
  }

  unpin(uuid: string, holder: string): void {
    const holders = this.#pins.get(uuid);
    holders?.delete(holder);
    if (holders?.size === 0) this.#pins.delete(uuid);
  }

  isPinned(uuid: string): boolean {
    return (this.#pins.get(uuid)?.size ?? 0) > 0;
  }

  /** The path of a verified file, or undefined while it is not there. */
  path(uuid: string, role: ImageFileRole): string | undefined {
    if (!isImageUuid(uuid) || !this.#local.get(uuid)?.files.has(role)) return undefined;
    return imageFile(this.dir, uuid, role);
  }

  /**
   * What a whole-disk image serves the deploy ramdisk once ready: `path` relative to the
   * images directory, `file` absolute; undefined while it is not ready.
   */
  served(uuid: string): (ServedDiskImage & { file: string }) | undefined {
    const image = this.#wanted?.get(uuid);
    if (!image || this.#reportOf(image).state !== 'ready') return undefined;
    const served = this.#local.get(uuid)?.served;
    return served && { ...servedView(served), file: join(this.dir, served.path) };
  }

  /** The report of one image, as the control plane gets it. */
  report(uuid: string): ImageReport | undefined {
    const image = this.#wanted?.get(uuid);
    return image ? this.#reportOf(image) : undefined;
  }

  stats(): ImageStats {
    const counts = { ready: 0, syncing: 0, pending: 0, error: 0 };
    for (const image of this.#wanted?.values() ?? []) counts[this.#reportOf(image).state]++;
    return {
      ...counts,
      bytesDownloaded: this.#bytesDownloaded,
      downloadsRunning: this.#running,
      corruptDetected: this.#corruptDetected,
      removed: this.#removed,
    };
  }

  // --- the list ------------------------------------------------------------------------------

  #apply(images: Map<string, ImageAssignment>): void {
    this.#wanted = images;
    this.#listAt = Date.now();
    for (const [id, job] of this.#jobs) {
      const file = images.get(job.uuid)?.files.find((f) => f.role === job.role);
      if (!file || file.sha256 !== job.file.sha256 || file.size !== job.file.size) {
        job.abort?.abort(new Error('no longer wanted'));
        this.#jobs.delete(id);
        continue;
      }
      job.file = file; // a fresh URL
      job.diskFormat = images.get(job.uuid)?.disk_format;
      if (job.needsUrlAfter !== undefined && this.#listAt > job.needsUrlAfter) job.needsUrlAfter = undefined;
    }
    for (const image of images.values()) {
      this.#unwantedSince.delete(image.uuid);
      const local = this.#local.get(image.uuid);
      if (local) local.name = image.name;
      for (const file of image.files) {
        const id = key(image.uuid, file.role);
        if (this.#jobs.has(id)) continue;
        const have = local?.files.get(file.role);
        const ready =
          have?.sha256 === file.sha256 &&
          have.size === file.size &&
          (file.role !== 'disk' || isServedFor(local?.served, file, image.disk_format));
        this.#jobs.set(id, {
          uuid: image.uuid,
          role: file.role,
          file,
          diskFormat: image.disk_format,
          state: ready ? 'ready' : 'queued',
          done: ready ? file.size : 0,
          failures: 0,
          interruptions: 0,
          refusals: 0,
          notBefore: 0,
          needsUrlAfter: undefined,
          urlAskedAt: undefined,
          error: undefined,
          abort: undefined,
          lastLogAt: 0,
        });
      }
      this.#touch(image.uuid, true);
    }
    this.#log.info('image list received', {
      images: images.size,
      ready: [...images.values()].filter((i) => this.#reportOf(i).state === 'ready').length,
    });
    this.#pump();
    this.#gcSafely();
  }

  #gcSafely(): void {
    this.#gc().catch((error) => this.#log.error('image collection failed', { error: errorMessage(error) }));
  }

  /** Asks for fresh URLs soon (at most once per 2 s, whatever number of jobs need them). */
  #wantFreshUrls(): void {
    if (this.#urlPullTimer) return;
    const wait = Math.max(0, this.#lastPullAt + 2000 - Date.now());
    this.#urlPullTimer = setTimeout(() => {
      this.#urlPullTimer = undefined;
      this.requestList('url expired');
    }, wait);
    this.#urlPullTimer.unref();
  }

  // --- jobs ----------------------------------------------------------------------------------

  #pump(): void {
    if (this.#stopped) return;
    clearTimeout(this.#wakeTimer);
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const job of this.#jobs.values()) {
      if (this.#running >= this.#concurrency) break;
      if (job.state !== 'queued' && job.state !== 'error') continue;
      if (job.needsUrlAfter !== undefined) continue;
      if (job.notBefore > now) {
        next = Math.min(next, job.notBefore);
        continue;
      }
      this.#start(job);
    }
    if (Number.isFinite(next)) {
      this.#wakeTimer = setTimeout(() => this.#pump(), Math.max(10, next - now));
      this.#wakeTimer.unref();
    }
  }

  #start(job: Job): void {
    this.#running++;
    job.state = 'running';
    job.abort = new AbortController();
    const run = this.#run(job)
      .catch((error) => this.#fail(job, this.#log.child({ image: job.uuid }), errorMessage(error)))
      .finally(() => {
        this.#running--;
        job.abort = undefined;
        this.#runs.delete(run);
        this.#pump();
      });
    this.#runs.add(run);
  }

  async #run(job: Job): Promise<void> {
    const { uuid, role } = job;
    const file = job.file;
    const log = this.#log.child({ image: uuid, role });
    const signal = job.abort!.signal;
    const target = imageFile(this.dir, uuid, role);
    try {
      await mkdirp(imageDir(this.dir, uuid));
      // A whole-disk image downloaded and verified already, not (or no longer) prepared.
      const have = this.#local.get(uuid)?.files.get(role);
      if (role === 'disk' && have?.sha256 === file.sha256 && have.size === file.size) {
        await this.#prepare(job, log, signal);
        this.#finish(job, log, 'prepared');
        return;
      }
      // A file of the right size that no manifest vouches for (a crash between the rename
      // and the manifest, a lost manifest): hash it rather than download it again.
      const st = await stat(target).catch(() => undefined);
      if (st && st.size === file.size && this.#local.get(uuid)?.files.get(role)?.sha256 !== file.sha256) {
        const digest = (await hashFile(target, { signal })).digest('hex');
        if (digest === file.sha256) {
          await this.#recordLocal(uuid, role, file, st.mtimeMs, st.ino);
          if (role === 'disk') await this.#prepare(job, log, signal);
          this.#finish(job, log, 'verified on disk');
          return;
        }
      }
      // An expired URL by the look of it: ask for a new one first (once; after a fresh list
      // try it anyway: only S3's answer is authoritative, the clocks may disagree).
      const expires = Date.parse(file.url_expires_at);
      if (
        expires - URL_MARGIN_MS < Date.now() &&
        (job.urlAskedAt === undefined || this.#listAt <= job.urlAskedAt)
      ) {
        job.state = 'queued';
        job.needsUrlAfter = Date.now();
        job.urlAskedAt = Date.now();
        log.info('image URL expired: asking for a new one', { url: maskUrl(file.url) });
        this.#wantFreshUrls();
        return;
      }
      this.#touch(uuid, true);
      const started = performance.now();
      log.info('image download starting', { url: maskUrl(file.url), bytes: file.size });
      const result = await downloadFile(
        { root: this.dir, uuid, role, size: file.size, sha256: file.sha256, url: file.url },
        {
          signal,
          bucket: this.#bucket,
          ...(this.#o.stallTimeoutMs ? { stallTimeoutMs: this.#o.stallTimeoutMs } : {}),
          onBytes: (n) => {
            this.#bytesDownloaded += n;
          },
          onProgress: (done) => {
            job.done = done;
            this.#touch(uuid, false);
            const now = Date.now();
            if (now - job.lastLogAt >= LOG_PROGRESS_MS) {
              job.lastLogAt = now;
              log.info('image download progress', {
                bytes_done: done,
                bytes_total: file.size,
                percent: Math.floor((done / Math.max(1, file.size)) * 100),
              });
            }
          },
        },
      );
      await this.#recordLocal(uuid, role, file, result.mtimeMs, result.ino);
      if (role === 'disk') await this.#prepare(job, log, signal);
      const seconds = (performance.now() - started) / 1000;
      this.#finish(job, log, 'downloaded', {
        bytes: file.size,
        transferred: result.transferred,
        resumed_from: result.resumedFrom,
        seconds: Math.round(seconds * 100) / 100,
        mib_per_second: Math.round((result.transferred / 1048576 / Math.max(seconds, 0.001)) * 10) / 10,
      });
    } catch (error) {
      if (signal.aborted) {
        job.state = 'queued';
        log.info('image download stopped', { reason: errorMessage(signal.reason) });
        return;
      }
      job.done = await partialBytes(this.dir, uuid, role).catch(() => 0);
      if (error instanceof UrlExpiredError) {
        job.refusals++;
        if (job.refusals <= MAX_REFUSALS) {
          job.state = 'queued';
          job.needsUrlAfter = Date.now();
          log.info('image URL refused: asking for a new one', {
            url: maskUrl(file.url),
            error: errorMessage(error),
          });
          this.#wantFreshUrls();
          return;
        }
        job.refusals = 0;
        this.#fail(job, log, `URL refused ${MAX_REFUSALS + 1} times (${errorMessage(error)})`);
        return;
      }
      if (
        error instanceof PrepareError ||
        error instanceof ChecksumError ||
        error instanceof DiskFullError ||
        error instanceof HttpStatusError
      ) {
        this.#fail(job, log, errorMessage(error));
        return;
      }
      // A network error, a stall, a short body: resume at once, a few times.
      job.interruptions++;
      if (job.interruptions <= QUICK_RESUMES) {
        job.state = 'queued';
        job.notBefore = Date.now() + 500 * 2 ** (job.interruptions - 1);
        log.warn('image download interrupted: resuming', {
          error: errorMessage(error),
          bytes_done: job.done,
          attempt: job.interruptions,
        });
        this.#touch(uuid, false);
        return;
      }
      this.#fail(job, log, `download failed: ${errorMessage(error)}`);
    }
  }

  /**
   * Prepares a verified `disk` file for the deploy ramdisk (once: skipped when the manifest
   * says it was, from these bytes) and records the result; PrepareError when it cannot.
   */
  async #prepare(job: Job, log: Logger, signal: AbortSignal): Promise<void> {
    const { uuid, file } = job;
    const format = job.diskFormat;
    if (format === undefined) throw new PrepareError('a disk image without a disk_format');
    const local = this.#local.get(uuid);
    if (isServedFor(local?.served, file, format)) return;
    const started = performance.now();
    if (needsPreparation(format)) {
      log.info('disk image preparation starting', { disk_format: format, bytes: file.size });
    }
    const prepared = await prepareDisk(
      { root: this.dir, uuid, format, sha256: file.sha256, size: file.size },
      {
        signal,
        ...(this.#o.prepareTimeoutMs ? { timeoutMs: this.#o.prepareTimeoutMs } : {}),
        ...(this.#o.qemuImg ? { qemuImg: this.#o.qemuImg } : {}),
        ...(this.#o.zstd ? { zstd: this.#o.zstd } : {}),
      },
    );
    const current = this.#local.get(uuid);
    if (!current) throw new PrepareError('the image was removed during its preparation');
    current.served = {
      path: prepared.path,
      format: prepared.format,
      sha256: prepared.sha256,
      size: prepared.size,
      sourceSha256: file.sha256,
      sourceFormat: format,
      mtimeMs: prepared.mtimeMs,
      ino: prepared.ino,
    };
    await this.#writeManifest(uuid);
    if (needsPreparation(format)) {
      log.info('disk image prepared', {
        disk_format: format,
        served: prepared.path,
        served_format: prepared.format,
        served_bytes: prepared.size,
        sha256: prepared.sha256,
        seconds: Math.round((performance.now() - started) / 10) / 100,
      });
    }
  }

  #finish(job: Job, log: Logger, how: string, fields: Record<string, unknown> = {}): void {
    job.state = 'ready';
    job.done = job.file.size;
    job.failures = 0;
    job.interruptions = 0;
    job.refusals = 0;
    job.urlAskedAt = undefined;
    job.error = undefined;
    log.info(`image file ready (${how})`, { sha256: job.file.sha256, ...fields });
    this.#touch(job.uuid, true);
  }

  #fail(job: Job, log: Logger, reason: string): void {
    job.failures++;
    job.interruptions = 0;
    const ceiling = Math.min(this.#retryMaxMs, this.#retryInitialMs * 2 ** Math.min(job.failures - 1, 30));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    job.state = 'error';
    job.error = reason.slice(0, 1000);
    job.notBefore = Date.now() + delay;
    log.error('image file failed', { error: job.error, failures: job.failures, retry_in_ms: delay });
    this.#touch(job.uuid, true);
  }

  // --- disk ----------------------------------------------------------------------------------

  async #recordLocal(
    uuid: string,
    role: ImageFileRole,
    file: ImageFile,
    mtimeMs: number,
    ino: number,
  ): Promise<void> {
    const local = this.#local.get(uuid) ?? { name: this.#wanted?.get(uuid)?.name ?? '', files: new Map() };
    this.#local.set(uuid, local);
    local.files.set(role, {
      size: file.size,
      sha256: file.sha256,
      mtimeMs,
      ino,
      verifiedAt: new Date().toISOString(),
    });
    await this.#writeManifest(uuid);
  }

  /** Writes `<uuid>/.manifest.json` from memory; writes of one image are serialized. */
  #writeManifest(uuid: string): Promise<void> {
    const previous = this.#manifestWrites.get(uuid) ?? Promise.resolve();
    const next = previous.then(async () => {
      const local = this.#local.get(uuid);
      if (!local) return;
      const manifest: ManifestFile = { version: 1, uuid, name: local.name, files: {} };
      if (local.served) {
        const served = local.served;
        manifest.served = {
          ...servedView(served),
          source_sha256: served.sourceSha256,
          source_format: served.sourceFormat,
          mtime_ms: served.mtimeMs,
          ino: served.ino,
        };
      }
      for (const [role, f] of local.files) {
        manifest.files[role] = {
          size: f.size,
          sha256: f.sha256,
          mtime_ms: f.mtimeMs,
          ino: f.ino,
          verified_at: f.verifiedAt,
        };
      }
      await writeFileAtomic(
        join(imageDir(this.dir, uuid), MANIFEST),
        `${JSON.stringify(manifest, null, 2)}\n`,
      );
    });
    const settled = next.catch((error) =>
      this.#log.error('image manifest not written', { image: uuid, error: errorMessage(error) }),
    );
    this.#manifestWrites.set(uuid, settled);
    return next;
  }

  /** Start-up: what is on disk, checked against the manifests (fast path, else a full hash). */
  async #scan(): Promise<void> {
    await mkdirp(this.dir);
    let checked = 0;
    let rehashed = 0;
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !isImageUuid(entry.name)) continue;
      const uuid = entry.name;
      const manifest = await readManifest(join(this.dir, uuid, MANIFEST));
      const local: LocalImage = { name: manifest?.name ?? '', files: new Map() };
      this.#local.set(uuid, local);
      let changed = false;
      for (const [role, f] of Object.entries(manifest?.files ?? {})) {
        if (!isRole(role)) continue;
        const path = imageFile(this.dir, uuid, role);
        const st = await stat(path).catch(() => undefined);
        checked++;
        if (!st) {
          changed = true;
          continue;
        }
        if (st.size === f.size && st.mtimeMs === f.mtime_ms && st.ino === f.ino) {
          local.files.set(role, {
            size: f.size,
            sha256: f.sha256,
            mtimeMs: f.mtime_ms,
            ino: f.ino,
            verifiedAt: f.verified_at,
          });
          continue;
        }
        rehashed++;
        changed = true;
        const digest = st.size === f.size ? (await hashFile(path)).digest('hex') : undefined;
        if (digest === f.sha256) {
          local.files.set(role, {
            size: f.size,
            sha256: f.sha256,
            mtimeMs: st.mtimeMs,
            ino: st.ino,
            verifiedAt: new Date().toISOString(),
          });
        } else {
          this.#corruptDetected++;
          this.#log.warn('corrupt image file removed (it will be downloaded again)', {
            image: uuid,
            role,
            path,
            size: st.size,
            expected_size: f.size,
            ...(digest ? { sha256: digest, expected_sha256: f.sha256 } : {}),
          });
          await rm(path, { force: true });
        }
      }
      if (manifest?.served) {
        const served = await this.#checkServed(uuid, manifest.served, local);
        if (served) local.served = served;
        else changed = true;
      }
      if (changed) await this.#writeManifest(uuid);
    }
    this.#log.info('images on disk checked', {
      dir: this.dir,
      images: this.#local.size,
      files: checked,
      rehashed,
      corrupt: this.#corruptDetected,
    });
  }

  /**
   * Start-up check of a prepared file: trusted on size + mtime + inode, else re-hashed; a
   * wrong one is removed (prepared again). The `disk` file it comes from must still be there.
   */
  async #checkServed(
    uuid: string,
    m: NonNullable<ManifestFile['served']>,
    local: LocalImage,
  ): Promise<LocalServed | undefined> {
    const source = local.files.get('disk');
    const name = servedName(m.source_format);
    if (!source || source.sha256 !== m.source_sha256 || m.path !== `${uuid}/${name}`) return undefined;
    const served: LocalServed = {
      path: m.path,
      format: m.format,
      sha256: m.sha256,
      size: m.size,
      sourceSha256: m.source_sha256,
      sourceFormat: m.source_format,
      mtimeMs: m.mtime_ms,
      ino: m.ino,
    };
    if (name === 'disk') return served; // the disk file itself, checked above
    const path = join(this.dir, m.path);
    const st = await stat(path).catch(() => undefined);
    if (!st) return undefined;
    if (st.size === m.size && st.mtimeMs === m.mtime_ms && st.ino === m.ino) return served;
    const digest = st.size === m.size ? (await hashFile(path)).digest('hex') : undefined;
    if (digest === m.sha256) return { ...served, mtimeMs: st.mtimeMs, ino: st.ino };
    this.#corruptDetected++;
    this.#log.warn('corrupt prepared disk image removed (it will be prepared again)', {
      image: uuid,
      path,
      ...(digest ? { sha256: digest, expected_sha256: m.sha256 } : { size: st.size, expected_size: m.size }),
    });
    await rm(path, { force: true });
    return undefined;
  }

  /** Re-hashes every ready file; a wrong one is removed and downloaded again. */
  async verifyAll(): Promise<number> {
    if (this.#verifying || this.#stopped) return 0;
    this.#verifying = true;
    let bad = 0;
    try {
      for (const [uuid, local] of this.#local) {
        for (const [role, f] of [...local.files]) {
          if (this.#stopped) return bad;
          const job = this.#jobs.get(key(uuid, role));
          if (job?.state === 'running') continue;
          const path = imageFile(this.dir, uuid, role);
          const digest = await hashFile(path)
            .then((h) => h.digest('hex'))
            .catch(() => undefined);
          if (digest === f.sha256) continue;
          bad++;
          this.#corruptDetected++;
          this.#log.warn('corrupt image file removed (it will be downloaded again)', {
            image: uuid,
            role,
            path,
            ...(digest ? { sha256: digest, expected_sha256: f.sha256 } : { error: 'unreadable' }),
          });
          local.files.delete(role);
          await rm(path, { force: true });
          await this.#writeManifest(uuid);
          if (job) {
            job.state = 'queued';
            job.done = 0;
            job.notBefore = 0;
            this.#touch(uuid, true);
          }
        }
        const served = local.served;
        if (served && needsPreparation(served.sourceFormat)) {
          if (this.#stopped) return bad;
          const job = this.#jobs.get(key(uuid, 'disk'));
          if (job?.state === 'running') continue;
          const path = join(this.dir, served.path);
          const digest = await hashFile(path)
            .then((h) => h.digest('hex'))
            .catch(() => undefined);
          if (digest === served.sha256) continue;
          bad++;
          this.#corruptDetected++;
          this.#log.warn('corrupt prepared disk image removed (it will be prepared again)', {
            image: uuid,
            path,
            ...(digest ? { sha256: digest, expected_sha256: served.sha256 } : { error: 'unreadable' }),
          });
          local.served = undefined;
          await rm(path, { force: true });
          await this.#writeManifest(uuid);
          if (job) {
            job.state = 'queued';
            job.notBefore = 0;
            this.#touch(uuid, true);
          }
        }
      }
    } finally {
      this.#verifying = false;
    }
    if (bad > 0) this.#pump();
    return bad;
  }

  /** Removes images no longer wanted once their grace period is over, unless pinned. */
  async #gc(): Promise<void> {
    if (!this.#wanted || this.#stopped) return;
    const wanted = this.#wanted;
    const now = Date.now();
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const uuid of names) {
      if (!isImageUuid(uuid) || wanted.has(uuid)) continue;
      const since = this.#unwantedSince.get(uuid) ?? now;
      this.#unwantedSince.set(uuid, since);
      if (now - since < this.#graceMs) continue;
      if (this.isPinned(uuid)) continue;
      if ([...this.#jobs.values()].some((j) => j.uuid === uuid && j.state === 'running')) continue;
      await rm(imageDir(this.dir, uuid), { recursive: true, force: true });
      this.#local.delete(uuid);
      this.#unwantedSince.delete(uuid);
      this.#removed++;
      this.#log.info('image removed (no longer wanted)', {
        image: uuid,
        unwanted_for_ms: now - since,
      });
    }
  }

  // --- reports -------------------------------------------------------------------------------

  #reportOf(image: ImageAssignment): ImageReport {
    let total = 0;
    let done = 0;
    let ready = 0;
    let started = false;
    let error: string | undefined;
    for (const file of image.files) {
      const job = this.#jobs.get(key(image.uuid, file.role));
      total += file.size;
      if (!job) continue;
      done += job.state === 'ready' ? file.size : Math.min(job.done, file.size);
      if (job.state === 'ready') ready++;
      if (job.state === 'running' || job.done > 0) started = true;
      if (job.state === 'error' && !error) error = `${file.role}: ${job.error ?? 'failed'}`;
    }
    const state =
      error !== undefined
        ? 'error'
        : ready === image.files.length
          ? 'ready'
          : started
            ? 'syncing'
            : 'pending';
    const served = this.#local.get(image.uuid)?.served;
    const disk = image.files.find((file) => file.role === 'disk');
    const serving = state === 'ready' && disk && isServedFor(served, disk, image.disk_format);
    return {
      image: image.uuid,
      state,
      bytes_done: done,
      bytes_total: total,
      ...(error ? { error } : {}),
      observed_at: new Date().toISOString(),
      ...(serving && served ? { served: servedView(served) } : {}),
    };
  }

  /** Marks an image's report due: at once for a state change, else throttled. */
  #touch(uuid: string, important: boolean): void {
    if (this.#stopped) return;
    const image = this.#wanted?.get(uuid);
    if (!image) return;
    const now = Date.now();
    const last = this.#lastSent.get(uuid);
    const changed = important || last?.state !== this.#reportOf(image).state;
    const due = changed ? now + 100 : Math.max(now + 100, (last?.at ?? 0) + this.#reportMs);
    const current = this.#dirty.get(uuid);
    this.#dirty.set(uuid, current === undefined ? due : Math.min(current, due));
    this.#scheduleReports();
  }

  #scheduleReports(): void {
    if (this.#dirty.size === 0) return;
    const next = Math.min(...this.#dirty.values());
    if (this.#reportTimer && this.#reportTimerAt <= next) return;
    clearTimeout(this.#reportTimer);
    this.#reportTimerAt = next;
    this.#reportTimer = setTimeout(
      () => {
        this.#reportTimer = undefined;
        void this.#flushReports(false);
      },
      Math.max(0, next - Date.now()),
    );
    this.#reportTimer.unref();
  }

  async #flushReports(all: boolean): Promise<void> {
    const now = Date.now();
    const reports: ImageReport[] = [];
    for (const [uuid, due] of this.#dirty) {
      if (!all && due > now) continue;
      const image = this.#wanted?.get(uuid);
      this.#dirty.delete(uuid);
      if (image) reports.push(this.#reportOf(image));
    }
    for (let i = 0; i < reports.length; i += REPORTS_PER_MESSAGE) {
      const batch = reports.slice(i, i + REPORTS_PER_MESSAGE);
      try {
        await this.#o.send({ v: 1, type: 'image_report', reports: batch });
        for (const r of batch) this.#lastSent.set(r.image, { at: Date.now(), state: r.state });
      } catch (error) {
        // Offline: nothing is lost, the next connection sends a full set.
        this.#log.debug('image report not sent', { error: errorMessage(error), reports: batch.length });
      }
    }
    if (!this.#stopped) this.#scheduleReports();
  }
}

/** Why an assignment cannot be used (the schema checked the shapes already), or undefined. */
export function checkAssignment(image: ImageAssignment): string | undefined {
  if (!isImageUuid(image.uuid)) return 'uuid is not a lower-case UUID';
  const roles = new Set<string>();
  for (const file of image.files) {
    if (!isRole(file.role)) return `unknown role ${JSON.stringify(file.role)}`;
    if (roles.has(file.role)) return `role ${file.role} appears twice`;
    roles.add(file.role);
    if (!isSha256(file.sha256)) return `${file.role}: sha256 is not 64 lower-case hex digits`;
    if (!Number.isSafeInteger(file.size) || file.size < 0) return `${file.role}: bad size`;
    if (!/^https?:\/\//.test(file.url)) return `${file.role}: url must be http(s)`;
  }
  if (roles.has('iso') && roles.size > 1) return 'an iso image has no other files';
  if (roles.has('disk') && roles.size > 1) return 'a disk image has no other files';
  if (roles.has('disk') && image.disk_format === undefined) return 'a disk image without a disk_format';
  if (!roles.has('disk') && image.disk_format !== undefined) return 'a disk_format without a disk file';
  return undefined;
}

/** Was `served` prepared from these bytes, read as this format? */
function isServedFor(
  served: LocalServed | undefined,
  file: ImageFile,
  format: DiskImageFormat | undefined,
): served is LocalServed {
  return served !== undefined && served.sourceSha256 === file.sha256 && served.sourceFormat === format;
}

function servedView(served: LocalServed): ServedDiskImage {
  return { path: served.path, format: served.format, sha256: served.sha256, size: served.size };
}

async function readManifest(path: string): Promise<ManifestFile | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<ManifestFile>;
    if (value.version !== 1 || typeof value.files !== 'object' || value.files === null) return undefined;
    for (const f of Object.values(value.files)) {
      if (
        typeof f?.size !== 'number' ||
        typeof f.sha256 !== 'string' ||
        typeof f.mtime_ms !== 'number' ||
        typeof f.ino !== 'number'
      )
        return undefined;
    }
    return value as ManifestFile;
  } catch {
    return undefined;
  }
}

async function mkdirp(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
}
