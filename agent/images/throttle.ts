/**
 * A token bucket shared by all downloads: `rate` bytes per second on average, bursts up
 * to `burst` bytes. Waiters are served in arrival order, so one download cannot starve
 * the others.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export class TokenBucket {
  readonly rate: number;
  readonly burst: number;
  #tokens: number;
  #last = performance.now();
  #tail: Promise<void> = Promise.resolve();

  constructor(bytesPerSecond: number, burst = Math.max(64 * 1024, Math.floor(bytesPerSecond / 10))) {
    if (!(bytesPerSecond > 0)) throw new Error('token bucket rate must be positive');
    this.rate = bytesPerSecond;
    this.burst = burst;
    this.#tokens = burst;
  }

  /** Resolves once `bytes` may pass (rejects if `signal` aborts first). */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.#tail.then(() => this.#take(bytes, signal));
    this.#tail = turn.catch(() => {});
    return turn;
  }

  async #take(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    let left = bytes;
    while (left > 0) {
      signal?.throwIfAborted();
      const now = performance.now();
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
      this.#last = now;
      const want = Math.min(left, this.burst);
      if (this.#tokens >= want) {
        this.#tokens -= want;
        left -= want;
        continue;
      }
      await sleep(Math.max(1, Math.ceil(((want - this.#tokens) / this.rate) * 1000)), undefined, { signal });
    }
  }
}
