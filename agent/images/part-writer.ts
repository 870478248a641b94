/**
 * The bytes of one ranged GET into the partial file at their offsets, for
 * agent/images/download.ts: copied out of the connection's read buffer (reused for the
 * next read: agent/images/range-get.ts) into a staging buffer, which is written with one
 * positional write once full. Staging buffers come from a pool the download's parts share
 * and go back to it once written, so memory stays at about two per part in flight however
 * large the file, and there are few, large write syscalls (one per STAGE bytes).
 *
 * The writer never writes past its part's end (bytes beyond it are an error before any
 * copy), and knows where its written bytes end contiguously: a part cut half way is asked
 * for again from there.
 */
import { write } from 'node:fs';
import { HttpProtocolError } from './http-response.ts';

/**
 * Staging buffers of this many bytes (one positional write each). 128 KiB was tried for
 * the sync's RSS: no measurable saving, and the shipped agent ran slower (209–441 MiB/s
 * against 428–613 in the same week's rounds; docs/performance.md, "Image sync").
 */
export const STAGE = 256 * 1024;

/** Staging buffers shared by a download's parts, kept for reuse up to `limit`. */
export class StagePool {
  readonly size: number;
  readonly #free: Buffer[] = [];
  readonly #limit: number;

  constructor(size: number, limit: number) {
    this.size = size;
    this.#limit = limit;
  }

  /**
   * A buffer to fill: a free one, else a new one. Each part holds at most two (one
   * filling, one being written: PartWriter.congested), so `limit` = 2 × parts in flight
   * makes none after the first few; past it (bytes TLS still hands over after a pause)
   * one is made anyway, as the bytes in hand must go somewhere, and dropped after use.
   */
  take(): Buffer {
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (this.#free.length < this.#limit) this.#free.push(buffer);
  }
}

export interface PartWriterHooks {
  /** `bytes` more are on disk (in any order). */
  readonly onWritten: (bytes: number) => void;
  /** A write failed (ENOSPC...): the caller stops the part. */
  readonly onError: (error: unknown) => void;
  /** A write ended: the caller may read again if it stopped because `congested`. */
  readonly onDrain: () => void;
}

interface Pending {
  readonly position: number;
  readonly length: number;
  done: boolean;
}

/** One attempt at one part: bytes `[position, end)` of the file. */
export class PartWriter {
  readonly #fd: number;
  readonly #pool: StagePool;
  readonly #end: number;
  readonly #hooks: PartWriterHooks;
  #stage: Buffer | undefined;
  #filled = 0;
  /** File offset of the next byte accepted. */
  #next: number;
  /** Writes issued and not yet known to be part of the contiguous written prefix. */
  readonly #pending: Pending[] = [];
  /** Where the bytes written since `position` end, contiguously. */
  #writtenEnd: number;
  #inFlight = 0;
  #error: unknown;
  #settled: (() => void) | undefined;

  constructor(fd: number, pool: StagePool, position: number, end: number, hooks: PartWriterHooks) {
    this.#fd = fd;
    this.#pool = pool;
    this.#next = position;
    this.#writtenEnd = position;
    this.#end = end;
    this.#hooks = hooks;
  }

  /** File offset of the next byte expected. */
  get next(): number {
    return this.#next;
  }

  /**
   * A write is in flight: stop reading until `onDrain` (the kernel's socket buffer takes
   * what comes meanwhile). One staging buffer filling and one being written per part.
   */
  get congested(): boolean {
    return this.#inFlight > 0;
  }

  /** Takes bytes `[start, end)` of `buffer` (copied: the caller reuses it). */
  accept(buffer: Buffer, start: number, end: number): void {
    if (this.#error !== undefined) throw this.#error;
    if (this.#next + (end - start) > this.#end)
      throw new HttpProtocolError(
        `more bytes than asked for: ${this.#next + (end - start) - this.#end} past the part's end`,
      );
    let at = start;
    while (at < end) {
      this.#stage ??= this.#pool.take();
      const n = buffer.copy(this.#stage, this.#filled, at, end);
      this.#filled += n;
      this.#next += n;
      at += n;
      if (this.#filled === this.#stage.length) this.#flush();
    }
  }

  /** Writes what is staged and waits for every write; rejects with a write's error. */
  async finish(): Promise<void> {
    if (this.#filled > 0) this.#flush();
    await this.#drained();
    if (this.#error !== undefined) throw this.#error;
  }

  /**
   * Gives up the attempt: drops what is staged, waits for the writes in flight. Resolves
   * with where the written bytes end contiguously (where a retry starts).
   */
  async abandon(): Promise<number> {
    if (this.#stage) this.#pool.give(this.#stage);
    this.#stage = undefined;
    this.#filled = 0;
    await this.#drained();
    return this.#writtenEnd;
  }

  #flush(): void {
    const stage = this.#stage!;
    const length = this.#filled;
    const entry: Pending = { position: this.#next - length, length, done: false };
    this.#stage = undefined;
    this.#filled = 0;
    this.#pending.push(entry);
    this.#inFlight++;
    this.#writeAll(stage, 0, length, entry.position, (error) => {
      this.#inFlight--;
      this.#pool.give(stage);
      if (error) {
        if (this.#error === undefined) this.#error = error;
        this.#hooks.onError(error);
      } else {
        entry.done = true;
        this.#hooks.onWritten(length);
        // The contiguous prefix: writes may complete out of order.
        while (this.#pending[0]?.done) this.#writtenEnd += this.#pending.shift()!.length;
      }
      if (this.#inFlight === 0) this.#settled?.();
      this.#hooks.onDrain();
    });
  }

  /** fs.write until all `length` bytes are written (a short write continues where it ended). */
  #writeAll(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    done: (error: unknown) => void,
  ): void {
    write(this.#fd, buffer, offset, length, position, (error, written) => {
      if (error) done(error);
      else if (written === 0) done(new Error(`write of ${length} bytes at ${position} wrote nothing`));
      else if (written < length)
        this.#writeAll(buffer, offset + written, length - written, position + written, done);
      else done(undefined);
    });
  }

  #drained(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#settled = resolve;
    });
  }
}
