/**
 * Actions and drivers, shaped like Ironic's hardware types: a driver (hardware type)
 * composes interfaces (power, management, boot, deploy), and each interface exposes
 * actions the control plane can name in a command. Actions that need no hardware
 * (`noop`, `sleep`, `fail`) are common to every driver.
 *
 * A hardware type is one folder (`agent/drivers/<name>/`) exporting a `HardwareModule`,
 * listed once in `registry.ts`'s `BUILT_IN_HARDWARE`. The agent calls its `create` once
 * per start with a `DriverContext`; whatever state its actions and its power probe share
 * (a runner, a connection pool, simulated hardware) is made there, not in the context.
 */
import type { ActionName, ActionResult, InsertVmediaArgs, PowerState } from '../../protocol/actions.ts';
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

/** What the power sync tells a probe of one node (`GET /v1/agent/nodes`). */
export interface ProbeNode {
  readonly uuid: string;
  readonly driver_info: Record<string, unknown>;
  /** The state the control plane records (null when unknown). */
  readonly power_state: string | null;
}

/** Reads one node's power state for the power sync; must honour `signal` (aborted at the probe timeout). */
export type PowerProbe = (node: ProbeNode, signal: AbortSignal) => Promise<PowerState>;

/**
 * What every hardware type may use, taken from the agent's config. Nothing in it is
 * specific to one hardware type's state: a module makes its own in `create`.
 */
export interface DriverContext {
  readonly log: Logger;
  /** The config's `ipmi` section (undefined fields: the runner's own defaults). */
  readonly ipmi: {
    readonly commandTimeoutMs?: number;
    readonly minCommandIntervalMs?: number;
    /** Extra attempts after a transient failure. */
    readonly retries?: number;
  };
  /** The config's `redfish` section, if any (undefined fields: the Redfish client's defaults). */
  readonly redfish?: {
    /** Per HTTP request to a BMC (default 10 s). */
    readonly requestTimeoutMs?: number;
    /** Quiet time between two requests to one BMC (default 20 ms). */
    readonly minRequestIntervalMs?: number;
    /** How long a BMC that timed out or refused the connection is skipped (default 30 s). */
    readonly circuitCooldownMs?: number;
    /** Pause between power state reads while waiting for a state (default 1 s). */
    readonly pollIntervalMs?: number;
  };
  /** The config's `power_sync` section, as far as probes care. */
  readonly powerSync: {
    /** Read power states with the built-in client (RMCP+ for IPMI) rather than a tool. */
    readonly native: boolean;
    readonly probeTimeoutMs: number;
  };
  /**
   * Catalog ISOs served for BMCs to mount (`redfish-virtual-media` boot): the URL of an
   * image's ISO at this site, pinned for the node until `release` (absent: no virtual media).
   */
  readonly virtualMedia?: VirtualMediaSource;
  /**
   * Actions of the boot interface (boot files): the registry adds them to every driver as
   * its `boot` interface; a module need not look at them.
   */
  readonly bootActions?: readonly Action[];
}

/** Where virtual media come from: the agent's own HTTP tree. */
export interface VirtualMediaSource {
  /** What is wrong with an insert's args beyond their shape (kernel parameters...). */
  validate(args: Record<string, unknown>): string | undefined;
  /**
   * The ISO's URL for the BMC: the catalog ISO `iso`, or one built from `kernel` +
   * `ramdisk` (an ActionFailure when an image is not at this site or the build fails).
   */
  url(args: InsertVmediaArgs, signal?: AbortSignal): Promise<string>;
  /** The node no longer needs its ISO (ejected, or the insert failed). */
  release(node: string): Promise<void>;
}

/** A hardware type as loaded on one agent: its interfaces, its power probe, its clean-up. */
export interface LoadedDriver extends Driver {
  /** How the power sync reads a node of this type (none: its nodes are not synced). */
  readonly powerProbe?: PowerProbe;
  /** Releases what `create` opened (sockets...); called once when the agent stops, after the power sync and the running commands. */
  close?(): void;
}

/** One hardware type: a folder under `agent/drivers/`, one line in `BUILT_IN_HARDWARE`. */
export interface HardwareModule {
  /** Ironic's hardware type name, as in a node's `driver` and the config's `drivers`. */
  readonly name: string;
  /** Called once per agent start when enabled; the driver's `name` must be the module's. */
  create(ctx: DriverContext): LoadedDriver;
}
