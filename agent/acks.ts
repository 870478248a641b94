/**
 * When the agent acknowledges a command (`command_ack`).
 *
 * The ack tells the control plane that the command runs: it marks the command running
 * and keeps its queue message hidden until its deadline, so that a command longer than
 * the queue's visibility timeout is neither handed out again nor dead-lettered. A command
 * that ends at once needs none of that: its result says everything, and deletes the
 * message. So the ack waits ACK_DELAY_MS after the start and is dropped if the result
 * comes first: most commands (a power action, a boot device, a fake step) end sooner, and
 * each ack costs a control-plane invocation and two DynamoDB calls (docs/decisions.md).
 */
import type { Command } from '../protocol/messages.ts';

/** Far below the site queue's 60 s visibility timeout; longer than a BMC's usual answer. */
export const ACK_DELAY_MS = 250;

export class DeferredAcks {
  readonly #send: (command: Command) => void;
  readonly #delayMs: number;
  readonly #pending = new Map<string, NodeJS.Timeout>();

  constructor(send: (command: Command) => void, delayMs = ACK_DELAY_MS) {
    this.#send = send;
    this.#delayMs = delayMs;
  }

  /** The command started: acknowledge it if it is still running after the delay. */
  started(command: Command): void {
    this.#drop(command.id);
    this.#pending.set(
      command.id,
      setTimeout(() => this.now(command), this.#delayMs),
    );
  }

  /** Acknowledge now (a running command delivered again: the new receipt at once). */
  now(command: Command): void {
    this.#drop(command.id);
    this.#send(command);
  }

  /** The command ended: its result acknowledges it; a pending ack is not sent. */
  finished(id: string): void {
    this.#drop(id);
  }

  /** Drops every pending ack (the agent stops). */
  clear(): void {
    for (const id of [...this.#pending.keys()]) this.#drop(id);
  }

  /** Acks waiting for their delay. */
  get pending(): number {
    return this.#pending.size;
  }

  #drop(id: string): void {
    clearTimeout(this.#pending.get(id));
    this.#pending.delete(id);
  }
}
