/**
 * The port through which the command channel reports finished commands (DESIGN.md,
 * "Commands"). The channel's adapter (`adapters/command-queue.ts`) calls it; the
 * conductor implements it, and is the only one that writes nodes: the adapter never
 * knows which node awaited a command, nor what a finished command means for it.
 */
import type { CommandRecord } from './command.ts';

export interface CommandCompletions {
  /**
   * A command finished: its result is stored, it expired, or it failed on our side
   * (dead-lettered, its secrets did not open). Called once when it finishes, and again by
   * the tick if that call failed (or the command was not settled after it): so it must be
   * idempotent. Resolves once what the
   * command means for its node is written; a rejection leaves the command unsettled, and
   * the tick calls again at its recheck time. It never undoes the command's outcome.
   */
  finished(command: CommandRecord): Promise<void>;
}
