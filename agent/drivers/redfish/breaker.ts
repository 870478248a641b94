/**
 * One BMC's circuit breaker. A BMC that times out or refuses connections is usually down
 * for a while (powered off PDU, cabling, a BMC rebooting): asking again at once only costs
 * another timeout per call, and the power sync would spend one per node of that BMC per
 * sweep. So after such a failure the circuit opens for a cool-down (default 30 s, about one
 * sweep): calls fail at once, without I/O, naming the failure that opened it. After the
 * cool-down one call goes through (half-open): an answer closes the circuit, another
 * failure opens it again. An HTTP answer, even an error, proves the BMC alive: it closes.
 *
 * The clock is injected (tests drive it); nothing here does I/O or keeps timers.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  readonly cooldownMs: number;
  readonly now: () => number;
}

export class CircuitBreaker {
  readonly #cooldownMs: number;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #openUntil = 0;
  #reason = '';

  constructor(options: BreakerOptions) {
    this.#cooldownMs = options.cooldownMs;
    this.#now = options.now;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** The failure that opened the circuit ('' when closed). */
  get reason(): string {
    return this.#reason;
  }

  /**
   * Whether a call may be queued: the refusal (why) while open and cooling down, else
   * undefined. Changes nothing (the call is admitted, or not, by `enter` at its turn).
   */
  peek(): string | undefined {
    if (this.#state === 'open' && this.#now() < this.#openUntil) return this.#refusal();
    return undefined;
  }

  /**
   * Admits one call about to do I/O, or says why not. Open and cooled down: this call is
   * the trial (half-open), and others are refused until it ends.
   */
  enter(): string | undefined {
    if (this.#state === 'closed') return undefined;
    if (this.#state === 'half-open') return this.#refusal();
    if (this.#now() < this.#openUntil) return this.#refusal();
    this.#state = 'half-open';
    return undefined;
  }

  /** The BMC answered (any HTTP status, or a TLS handshake): close. */
  success(): void {
    this.#state = 'closed';
    this.#reason = '';
  }

  /** A timeout or connection failure: open for the cool-down, with this as the reason. */
  failure(reason: string): void {
    this.#state = 'open';
    this.#openUntil = this.#now() + this.#cooldownMs;
    this.#reason = reason;
  }

  /** The call ended without a verdict (the caller gave up): a trial gives its turn to the next call. */
  abandon(): void {
    if (this.#state === 'half-open') {
      this.#state = 'open';
      this.#openUntil = this.#now();
    }
  }

  /** Seconds left before a trial call is let through (at least 1 while open). */
  remainingSeconds(): number {
    return Math.max(1, Math.ceil((this.#openUntil - this.#now()) / 1000));
  }

  #refusal(): string {
    return this.#state === 'half-open'
      ? `circuit half-open, a trial call is in flight, after: ${this.#reason}`
      : `circuit open, next try in ${this.remainingSeconds()}s, after: ${this.#reason}`;
  }
}
