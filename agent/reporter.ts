/**
 * Hands reports (command results, power reports) to the control plane in the order they
 * were made, through the durable outbox: a report is on disk before anything tries to
 * send it, and leaves the outbox only once the channel took it. While the channel is
 * down reports pile up; when it comes back they are replayed oldest first, and new
 * reports queue behind them.
 */
import { type Channel, UnsendableError } from './channel.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Outbox, Report } from './state.ts';

export class Reporter {
  readonly #outbox: Outbox;
  readonly #channel: () => Channel | undefined;
  readonly #log: Logger;
  #pumping: Promise<void> | undefined;
  #again = false;
  sent = 0;

  readonly #onSent: ((report: Report) => void) | undefined;

  constructor(options: {
    outbox: Outbox;
    channel: () => Channel | undefined;
    log: Logger;
    /** Called after each report the channel took (the agent pulls after each result). */
    onSent?: (report: Report) => void;
  }) {
    this.#outbox = options.outbox;
    this.#channel = options.channel;
    this.#log = options.log;
    this.#onSent = options.onSent;
  }

  get length(): number {
    return this.#outbox.length;
  }

  /** Queues a report durably, then tries to send what waits. */
  async add(report: Report): Promise<void> {
    await this.#outbox.add(report);
    this.pump();
  }

  /** Sends what waits, oldest first, while the channel is up. */
  pump(): Promise<void> {
    this.#again = true;
    this.#pumping ??= this.#drain().finally(() => {
      this.#pumping = undefined;
    });
    return this.#pumping;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const channel = this.#channel();
      const entry = this.#outbox.peek();
      if (!entry || !channel?.up) {
        if (!this.#again) return;
        this.#again = false;
        continue;
      }
      try {
        await channel.send(entry.msg);
      } catch (error) {
        if (error instanceof UnsendableError) {
          this.#log.error('report can never be sent: dropped', {
            type: entry.msg.type,
            error: error.message,
          });
          await this.#outbox.done(entry.seq);
          continue;
        }
        this.#log.warn('report not sent; kept for the next connection', {
          type: entry.msg.type,
          error: errorMessage(error),
          waiting: this.#outbox.length,
        });
        return;
      }
      this.sent++;
      await this.#outbox.done(entry.seq);
      this.#onSent?.(entry.msg);
    }
  }

  /** Tries to empty the outbox within `timeoutMs` (at shutdown). */
  async flush(timeoutMs: number): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (this.#outbox.length > 0 && this.#channel()?.up && performance.now() < until) {
      await Promise.race([
        this.pump(),
        new Promise((r) => setTimeout(r, Math.max(0, until - performance.now()))),
      ]);
      if (this.#outbox.length > 0) await new Promise((r) => setTimeout(r, 20));
    }
    return this.#outbox.length === 0;
  }
}
