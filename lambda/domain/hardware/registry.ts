/**
 * The hardware types this control plane serves. A built-in type is one folder here plus
 * one entry in BUILT_IN; `register()` adds one at run time (extensions, tests), for the
 * process it runs in.
 */
import { fakeHardware } from './fake-hardware/index.ts';
import type { HardwareType, InterfaceImpl, InterfaceName } from './interfaces.ts';
import { ipmi } from './ipmi/index.ts';
import { redfish } from './redfish/index.ts';

/** The built-in hardware types: one entry each. */
const BUILT_IN: readonly HardwareType[] = [fakeHardware, ipmi, redfish];

export class HardwareTypeRegistry {
  readonly #types = new Map<string, HardwareType>();

  constructor(types: Iterable<HardwareType> = []) {
    for (const type of types) this.register(type);
  }

  /** Adds a type; a name already registered is refused. */
  register(type: HardwareType): void {
    if (this.#types.has(type.name)) throw new Error(`Hardware type ${type.name} is already registered.`);
    this.#types.set(type.name, type);
  }

  get(name: string): HardwareType | undefined {
    return this.#types.get(name);
  }

  /** The registered types' names, sorted. */
  names(): string[] {
    return [...this.#types.keys()].sort();
  }

  /** The registered types, sorted by name. */
  all(): HardwareType[] {
    return this.names().map((name) => this.#types.get(name) as HardwareType);
  }

  /**
   * The implementation of `kind` named `name`: the one `driver` enables, else the first
   * registered type's that enables one so named (a node whose type is gone still validates).
   */
  implementation(kind: InterfaceName, name: string, driver?: string): InterfaceImpl | undefined {
    const own = driver === undefined ? undefined : this.#types.get(driver)?.implementation(kind, name);
    if (own) return own;
    for (const type of this.#types.values()) {
      const impl = type.implementation(kind, name);
      if (impl) return impl;
    }
    return undefined;
  }
}

/** The process's registry: the built-in types, and any registered since. */
export const hardwareTypes = new HardwareTypeRegistry(BUILT_IN);

export function hardwareType(name: string): HardwareType | undefined {
  return hardwareTypes.get(name);
}
