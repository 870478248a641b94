/**
 * Actions and drivers, shaped like Ironic's hardware types: a driver (hardware type)
 * composes interfaces (power, management, boot, deploy), and each interface exposes
 * actions the control plane can name in a command. Actions that need no hardware
 * (`noop`, `sleep`, `fail`) are common to every driver.
 */
import type { ActionName, ActionResult } from '../../protocol/actions.ts';
import type { Command } from '../../protocol/messages.ts';
import type { Logger } from '../log.ts';

export interface ActionContext {
  readonly command: Command;
  readonly args: Record<string, unknown>;
  /** Aborted at the command's deadline and when the agent stops: actions must honour it. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

export interface Action {
  readonly name: string;
  readonly description: string;
  /** An error message when `args` are unusable (the command then fails without running). */
  validate?(args: Record<string, unknown>): string | undefined;
  /** The result (a JSON object) on success; throws (preferably an ActionFailure) on failure. */
  run(ctx: ActionContext): Promise<Record<string, unknown>>;
}

/**
 * An action of the catalog (`protocol/actions.ts`): its name is one the control plane
 * knows, its result the type the catalog declares.
 */
export interface CatalogAction<N extends ActionName> extends Action {
  readonly name: N;
  run(ctx: ActionContext): Promise<ActionResult<N> & Record<string, unknown>>;
}

/** An expected failure, reported with its message as the command's error. */
export class ActionFailure extends Error {
  override readonly name = 'ActionFailure';
}

export type InterfaceKind = 'power' | 'management' | 'boot' | 'deploy';

export interface DriverInterface {
  /** Ironic's interface name, e.g. `ipmitool`, `fake`, `ipxe`. */
  readonly name: string;
  readonly actions: readonly Action[];
}

/** A hardware type. */
export interface Driver {
  readonly name: string;
  readonly interfaces: Partial<Record<InterfaceKind, DriverInterface>>;
}
