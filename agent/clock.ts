/**
 * The control plane's clock, as the agent estimates it.
 *
 * A command carries an absolute deadline written by the control plane's clock. An agent
 * whose own clock is off (no NTP in the datacenter, a BMC-fed RTC drifting) would judge
 * those deadlines wrong: five minutes fast, it refused every command shorter than five
 * minutes as "deadline passed"; five minutes slow, it ran commands the control plane had
 * already expired. The agent therefore reads the control plane's time from the `Date`
 * header of its HTTPS answers (every API Gateway answer has one, to the second) and
 * judges deadlines on `now()`: its own clock plus the offset measured.
 *
 * The estimate takes the midpoint of the request (the answer was written somewhere
 * between sending and receiving) and the middle of the header's second, so it is good to
 * about ±(0.5 s + half the round trip); offsets under a second are treated as none.
 */
import type { Logger } from './log.ts';

/** Below this the measurement cannot tell an offset from its own error. */
const NEGLIGIBLE_MS = 1000;
/** An offset worth telling the operator about (their NTP is broken). */
const WARN_MS = 30_000;

export class ControlPlaneClock {
  #offsetMs = 0;
  #sampled = false;
  readonly #wall: () => number;
  readonly #log: Logger | undefined;

  constructor(options: { wall?: () => number; log?: Logger } = {}) {
    this.#wall = options.wall ?? Date.now;
    this.#log = options.log;
  }

  /** Milliseconds to add to the agent's wall clock to get the control plane's. */
  get offsetMs(): number {
    return this.#offsetMs;
  }

  /** Whether an answer has been measured yet. */
  get sampled(): boolean {
    return this.#sampled;
  }

  /** The control plane's time now, as well as the agent can tell (epoch ms). */
  now(): number {
    return this.#wall() + this.#offsetMs;
  }

  /**
   * Takes an answer's `Date` header into account; `sentAt`/`receivedAt` are the agent's
   * wall-clock times around the request. A missing or malformed header changes nothing.
   */
  sample(dateHeader: string | null | undefined, sentAt: number, receivedAt: number): void {
    if (!dateHeader) return;
    const serverSecond = Date.parse(dateHeader);
    if (!Number.isFinite(serverSecond) || receivedAt < sentAt) return;
    const measured = serverSecond + 500 - (sentAt + receivedAt) / 2;
    const offset = Math.abs(measured) < NEGLIGIBLE_MS ? 0 : Math.round(measured);
    const changed = Math.abs(offset - this.#offsetMs) >= NEGLIGIBLE_MS;
    this.#sampled = true;
    if (!changed) return;
    this.#offsetMs = offset;
    if (Math.abs(offset) >= WARN_MS) {
      this.#log?.warn(
        "the agent's clock is off the control plane's: deadlines are judged on the control plane's time; fix this host's NTP",
        {
          offset_ms: offset,
        },
      );
    } else {
      this.#log?.info('clock offset to the control plane', { offset_ms: offset });
    }
  }
}
