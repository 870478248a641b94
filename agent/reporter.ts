/**
 * Hands reports (command results, power reports) to the control plane in the order they
 * were made, through the durable outbox: a report is on disk before anything tries to
 * send it. While the channel is down reports pile up; when it comes back they are
 * replayed oldest first, and new reports queue behind them.
 *
 * A command result leaves the outbox only when the control plane answers `result_ack`
 * (it holds the result): a frame lost on a dropped socket, or by a control-plane
 * invocation that died before storing it, is sent again after `resendMs`, and at once on
 * a new connection. After `maxSends` sends without an answer (a control plane too old to
 * acknowledge) it is let go: the command's message then comes back from the queue after
 * its visibility timeout, and the journal answers it. A power report is fire-and-forget:
 * the next sweep reports again whatever it did not change.
 */
import { type Channel, UnsendableError } from './channel.ts';
import { errorMessage, type Logger } from './log.ts';
import type { Outbox, OutboxEntry, Report } from './state.ts';

/** How long a sent result waits for its `result_ack` before it is sent again. */
export const RESEND_MS = 10_000;
/** Sends of one result before it is left to the queue's redelivery. */
export const MAX_SENDS = 5;

interface Awaiting {
  readonly sentAt: number;
  readonly sends: number;
}

export class Reporter {
  readonly #outbox: Outbox;
  readonly #channel: () => Channel | undefined;
  readonly #log: Logger;
  readonly #resendMs: number;
  readonly #maxSends: number;
  readonly #now: () => number;
  readonly #awaiting = new Map<number, Awaiting>();
  readonly #timer: NodeJS.Timeout | undefined;
  #pumping: Promise<void> | undefined;
  #again = false;
  sent = 0;
  /** Results sent again for want of an acknowledgement. */
  resent = 0;

  readonly #onSent: ((report: Report) => void) | undefined;

  constructor(options: {
    outbox: Outbox;
    channel: () => Channel | undefined;
    log: Logger;
    /** Called after the first send of each report (the agent pulls after each result). */
    onSent?: (report: Report) => void;
    resendMs?: number;
    maxSends?: number;
    /** Monotonic milliseconds (tests move it). */
    now?: () => number;
    /** Whether a timer pumps unacknowledged results again (off in unit tests). */
    timer?: boolean;
  }) {
    this.#outbox = options.outbox;
    this.#channel = options.channel;
    this.#log = options.log;
    this.#onSent = options.onSent;
    this.#resendMs = options.resendMs ?? RESEND_MS;
    this.#maxSends = options.maxSends ?? MAX_SENDS;
    this.#now = options.now ?? (() => performance.now());
    if (options.timer !== false) {
      this.#timer = setInterval(() => {
        if (this.#awaiting.size > 0) void this.pump();
      }, this.#resendMs);
      this.#timer.unref();
    }
  }

  get length(): number {
    return this.#outbox.length;
  }

  /** Results sent and not yet acknowledged. */
  get unacknowledged(): number {
    return this.#awaiting.size;
  }

  /** Queues a report durably, then tries to send what waits. */
  async add(report: Report): Promise<void> {
    await this.#outbox.add(report);
    void this.pump();
  }

  /** The control plane holds this command's result: its outbox entries go. */
  async acknowledged(commandId: string): Promise<void> {
    const held = this.#outbox
      .entries()
      .filter((entry) => entry.msg.type === 'command_result' && entry.msg.command_id === commandId);
    for (const entry of held) {
      this.#awaiting.delete(entry.seq);
      await this.#outbox.done(entry.seq);
    }
  }

  /** A new connection: what waited for an answer on the old one is sent again now. */
  reconnected(): Promise<void> {
    this.#awaiting.forEach((awaiting, seq) => {
      this.#awaiting.set(seq, { sentAt: Number.NEGATIVE_INFINITY, sends: awaiting.sends });
    });
    return this.pump();
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
    while (this.#again) {
      this.#again = false;
      for (const entry of [...this.#outbox.entries()]) {
        const channel = this.#channel();
        if (!channel?.up) return;
        const awaiting = this.#awaiting.get(entry.seq);
        if (awaiting && this.#now() - awaiting.sentAt < this.#resendMs) continue;
        try {
          await channel.send(entry.msg);
        } catch (error) {
          if (error instanceof UnsendableError) {
            this.#log.error('report can never be sent: dropped', {
              type: entry.msg.type,
              error: error.message,
            });
            await this.#forget(entry);
            continue;
          }
          this.#log.warn('report not sent; kept for the next connection', {
            type: entry.msg.type,
            error: errorMessage(error),
            waiting: this.#outbox.length,
          });
          return;
        }
        await this.#sent(entry, awaiting);
      }
    }
  }

  async #sent(entry: OutboxEntry, awaiting: Awaiting | undefined): Promise<void> {
    this.sent++;
    if (awaiting) this.resent++;
    else this.#onSent?.(entry.msg);
    if (entry.msg.type !== 'command_result') {
      await this.#forget(entry);
      return;
    }
    // Acknowledged while the send was under way: nothing to wait for.
    if (!this.#outbox.entries().some((held) => held.seq === entry.seq)) return;
    const sends = (awaiting?.sends ?? 0) + 1;
    if (sends < this.#maxSends) {
      this.#awaiting.set(entry.seq, { sentAt: this.#now(), sends });
      return;
    }
    this.#log.warn('result never acknowledged: left to the queue, which delivers its command again', {
      command_id: entry.msg.command_id,
      sends,
    });
    await this.#forget(entry);
  }

  async #forget(entry: OutboxEntry): Promise<void> {
    this.#awaiting.delete(entry.seq);
    await this.#outbox.done(entry.seq);
  }

  /** Tries to empty the outbox (acknowledgements included) within `timeoutMs` (at shutdown). */
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

  close(): void {
    clearInterval(this.#timer);
  }
}
