/**
 * Which code runs a command. `command.action` names an action; when `command.args.driver`
 * names a hardware type, that driver's interfaces are searched first, then the common
 * actions; without it only the common actions are. A driver that is not enabled on this
 * agent, or an action nobody provides, fails the command without running anything.
 *
 * The hardware types this build knows are `BUILT_IN_HARDWARE`, one line each; a caller
 * (a test) may add its own modules to those (`createRegistry`'s `extra`).
 */
import type { Command } from '../../protocol/messages.ts';
import { silentLogger } from '../log.ts';
import { BUILTIN_ACTIONS } from './builtin.ts';
import { fakeHardwareModule } from './fake-hardware/index.ts';
import { ipmiModule } from './ipmi/index.ts';
import { redfishModule } from './redfish/index.ts';
import type { Action, Driver, DriverContext, HardwareModule, LoadedDriver, PowerProbe } from './types.ts';

/** Every hardware type this build knows (enabled or not by the config's `drivers`): one line each. */
export const BUILT_IN_HARDWARE: readonly HardwareModule[] = [
  fakeHardwareModule, // fake-hardware/: simulated in memory, for development and tests
  ipmiModule, // ipmi/: ipmitool, and the native RMCP+ client for the power sync
  redfishModule, // redfish/: Redfish over HTTPS, sessions, per-BMC turns and a circuit breaker
];

/** Names of the built-in hardware types (what the config's `drivers` may list). */
export const DRIVER_NAMES: readonly string[] = BUILT_IN_HARDWARE.map((m) => m.name);

/** A context with the config's defaults (no boot actions, native probes, 5 s probe timeout): for tests and tools. */
export function defaultDriverContext(over: Partial<DriverContext> = {}): DriverContext {
  return {
    log: silentLogger,
    ipmi: {},
    powerSync: { native: true, probeTimeoutMs: 5000 },
    ...over,
  };
}

/**
 * The hardware modules by name: the built-in ones plus `extra`. Two modules of one name
 * (an extra shadowing a built-in included) are refused.
 */
export function hardwareModules(extra: readonly HardwareModule[] = []): Map<string, HardwareModule> {
  const modules = new Map<string, HardwareModule>();
  for (const module of [...BUILT_IN_HARDWARE, ...extra]) {
    if (modules.has(module.name)) throw new Error(`hardware type ${module.name} defined twice`);
    modules.set(module.name, module);
  }
  return modules;
}

/** Loads one hardware type; the boot actions of `ctx`, when given, become its boot interface. */
export function createDriver(module: HardwareModule, ctx: DriverContext): LoadedDriver {
  const driver = module.create(ctx);
  if (driver.name !== module.name) {
    throw new Error(`hardware type ${module.name} created a driver named ${driver.name}`);
  }
  if (!ctx.bootActions || ctx.bootActions.length === 0) return driver;
  return {
    ...driver,
    interfaces: { ...driver.interfaces, boot: { name: 'metalplane', actions: ctx.bootActions } },
  };
}

export class ActionRegistry {
  readonly #common = new Map<string, Action>();
  readonly #drivers = new Map<string, LoadedDriver>();

  registerAction(action: Action): this {
    if (this.#common.has(action.name)) throw new Error(`action ${action.name} registered twice`);
    this.#common.set(action.name, action);
    return this;
  }

  registerDriver(driver: Driver | LoadedDriver): this {
    if (this.#drivers.has(driver.name)) throw new Error(`driver ${driver.name} registered twice`);
    this.#drivers.set(driver.name, driver);
    return this;
  }

  /** Names of the enabled drivers, as advertised in `hello` and enrollment. */
  driverNames(): string[] {
    return [...this.#drivers.keys()];
  }

  /** The power sync's probe for a hardware type, or undefined (not enabled, or no probe). */
  powerProbe(driverName: string): PowerProbe | undefined {
    return this.#drivers.get(driverName)?.powerProbe;
  }

  /** Closes every driver (what their `create` opened); once, when the agent stops. */
  close(): void {
    for (const driver of this.#drivers.values()) driver.close?.();
  }

  /** Names of every action reachable (common and per driver), for metrics labels. */
  actionNames(): Set<string> {
    const names = new Set(this.#common.keys());
    for (const d of this.#drivers.values()) {
      for (const i of Object.values(d.interfaces)) for (const a of i?.actions ?? []) names.add(a.name);
    }
    return names;
  }

  resolve(command: Pick<Command, 'action' | 'args'>): { action: Action } | { error: string } {
    const driverName = command.args.driver;
    if (driverName !== undefined) {
      if (typeof driverName !== 'string') return { error: 'args.driver must be a string' };
      const driver = this.#drivers.get(driverName);
      if (!driver) {
        return {
          error: `driver ${driverName} is not enabled on this agent (enabled: ${this.driverNames().join(', ')})`,
        };
      }
      for (const iface of Object.values(driver.interfaces)) {
        const action = iface?.actions.find((a) => a.name === command.action);
        if (action) return { action };
      }
    }
    const action = this.#common.get(command.action);
    if (action) return { action };
    return {
      error: `unknown action ${command.action}${driverName ? ` for driver ${String(driverName)}` : ''}`,
    };
  }
}

/**
 * The registry of a running agent: the common actions plus the enabled drivers, each
 * looked up among the built-in hardware types and `extra`. An unknown name, or two
 * modules of one name, throws (nothing is created then).
 */
export function createRegistry(
  enabledDrivers: readonly string[],
  ctx: DriverContext = defaultDriverContext(),
  extra: readonly HardwareModule[] = [],
): ActionRegistry {
  const modules = hardwareModules(extra);
  const unknown = enabledDrivers.filter((name) => !modules.has(name));
  if (unknown.length > 0) {
    throw new Error(
      `unknown driver${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (known: ${[...modules.keys()].join(', ')})`,
    );
  }
  const registry = new ActionRegistry();
  for (const action of BUILTIN_ACTIONS) registry.registerAction(action);
  try {
    for (const name of enabledDrivers)
      registry.registerDriver(createDriver(modules.get(name) as HardwareModule, ctx));
  } catch (error) {
    registry.close();
    throw error;
  }
  return registry;
}

/** `createRegistry` without extra modules. */
export function defaultRegistry(
  enabledDrivers: readonly string[],
  ctx: DriverContext = defaultDriverContext(),
): ActionRegistry {
  return createRegistry(enabledDrivers, ctx);
}
