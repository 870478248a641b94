/**
 * Which code runs a command. `command.action` names an action; when `command.args.driver`
 * names a hardware type, that driver's interfaces are searched first, then the common
 * actions; without it only the common actions are. A driver that is not enabled on this
 * agent, or an action nobody provides, fails the command without running anything.
 */
import type { Command } from '../../protocol/messages.ts';
import { BUILTIN_ACTIONS } from './builtin.ts';
import { fakeHardware } from './fake-hardware.ts';
import type { Action, Driver } from './types.ts';

/** Every driver this build knows (enabled or not by the config's `drivers`). */
export const ALL_DRIVERS: readonly Driver[] = [fakeHardware];

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
export function defaultRegistry(enabledDrivers: readonly string[]): ActionRegistry {
  const registry = new ActionRegistry();
  for (const action of BUILTIN_ACTIONS) registry.registerAction(action);
  for (const name of enabledDrivers) {
    const driver = ALL_DRIVERS.find((d) => d.name === name);
    if (!driver) throw new Error(`unknown driver ${name}`);
    registry.registerDriver(driver);
  }
  return registry;
}
