/**
 * Which code runs a command. `command.action` names an action; when `command.args.driver`
 * names a hardware type, that driver's interfaces are searched first, then the common
 * actions; without it only the common actions are. A driver that is not enabled on this
 * agent, or an action nobody provides, fails the command without running anything.
 */
import type { Command } from '../../protocol/messages.ts';
import { Ipmitool } from '../ipmi/ipmitool.ts';
import { BUILTIN_ACTIONS } from './builtin.ts';
import { FakeHardwareState, fakeHardware } from './fake-hardware.ts';
import { type IpmiDriverOptions, ipmiHardware } from './ipmi.ts';
import type { Action, Driver } from './types.ts';

/**
 * What drivers share within one agent: one ipmitool runner (so the power sync and the
 * actions never talk to one BMC at the same time) and the fake hardware's memory.
 */
export interface DriverEnvironment {
  readonly ipmitool: Ipmitool;
  readonly fake: FakeHardwareState;
  readonly ipmi?: IpmiDriverOptions;
  /** Actions of the boot interface (boot files), added to every driver when given. */
  readonly bootActions?: readonly Action[];
}

export function defaultEnvironment(): DriverEnvironment {
  return { ipmitool: new Ipmitool(), fake: new FakeHardwareState() };
}

const FACTORIES: Readonly<Record<string, (env: DriverEnvironment) => Driver>> = {
  'fake-hardware': (env) => fakeHardware(env.fake),
  ipmi: (env) => ipmiHardware(env.ipmitool, env.ipmi),
};

/** Every hardware type this build knows (enabled or not by the config's `drivers`). */
export const DRIVER_NAMES: readonly string[] = Object.keys(FACTORIES);

export function createDriver(name: string, env: DriverEnvironment): Driver {
  const factory = FACTORIES[name];
  if (!factory) throw new Error(`unknown driver ${name}`);
  const driver = factory(env);
  if (!env.bootActions || env.bootActions.length === 0) return driver;
  return {
    ...driver,
    interfaces: { ...driver.interfaces, boot: { name: 'metalplane', actions: env.bootActions } },
  };
}

export class ActionRegistry {
  readonly #common = new Map<string, Action>();
  readonly #drivers = new Map<string, Driver>();

  registerAction(action: Action): this {
    if (this.#common.has(action.name)) throw new Error(`action ${action.name} registered twice`);
    this.#common.set(action.name, action);
    return this;
  }

  registerDriver(driver: Driver): this {
    if (this.#drivers.has(driver.name)) throw new Error(`driver ${driver.name} registered twice`);
    this.#drivers.set(driver.name, driver);
    return this;
  }

  /** Names of the enabled drivers, as advertised in `hello` and enrollment. */
  driverNames(): string[] {
    return [...this.#drivers.keys()];
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

/** The registry of a running agent: the common actions plus the enabled drivers. */
export function defaultRegistry(
  enabledDrivers: readonly string[],
  env: DriverEnvironment = defaultEnvironment(),
): ActionRegistry {
  const registry = new ActionRegistry();
  for (const action of BUILTIN_ACTIONS) registry.registerAction(action);
  for (const name of enabledDrivers) registry.registerDriver(createDriver(name, env));
  return registry;
}
