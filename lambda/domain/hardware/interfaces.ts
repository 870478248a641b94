/**
 * Hardware types, composed of interfaces as Ironic's are (`ironic/drivers/base.py`). An
 * interface implementation declares itself once: its kind (power, boot ...), its name
 * (`ipmitool`, `ipxe` ...), the `driver_info` properties it needs and its `validate()`.
 * A hardware type names, per kind, the implementations it enables and its default; a
 * node's `*_interface` fields default to its hardware type's defaults, and only enabled
 * implementations may be set.
 *
 * Built-in types live one folder each (`ipmi/`, `fake-hardware/`), implementations shared
 * between types in `generic.ts`, and `registry.ts` lists the types.
 */
import type { BootDevice } from '../../../protocol/actions.ts';
import { pythonRepr } from '../python-repr.ts';

export const INTERFACE_NAMES = [
  'bios',
  'boot',
  'console',
  'deploy',
  'inspect',
  'management',
  'network',
  'power',
  'raid',
  'rescue',
  'storage',
  'vendor',
] as const;

export type InterfaceName = (typeof INTERFACE_NAMES)[number];

/**
 * What an implementation's `validate()` reads of a node. Structural, so that the stored
 * node (`nodes/node.ts`) fits without this module importing it.
 */
export type NodeConfig = {
  readonly uuid: string;
  readonly driver: string;
  readonly driver_info: Readonly<Record<string, unknown>>;
  readonly instance_info: Readonly<Record<string, unknown>>;
} & { readonly [K in InterfaceName as `${K}_interface`]: string | null };

export interface ValidationContext {
  /**
   * How many ports the node has (the PXE/iPXE boot interfaces key boot files by MAC).
   * Absent when the caller did not count them: a power or management action validates
   * only its own interface.
   */
  readonly ports?: number;
}

/** One implementation of one interface kind, e.g. power `ipmitool` or boot `ipxe`. */
export interface InterfaceImpl {
  readonly kind: InterfaceName;
  readonly name: string;
  /** The `driver_info` keys it reads, with their descriptions (`GET /v1/drivers/{name}/properties`). */
  readonly properties?: Readonly<Record<string, string>>;
  /** Whether the node's configuration lets it work: Ironic's message of the first problem. */
  validate?(node: NodeConfig, ctx: ValidationContext): string | undefined;
  /** A management implementation's boot devices (`.../management/boot_device/supported`). */
  readonly bootDevices?: readonly BootDevice[];
  /**
   * Whether the BMC itself says which of `bootDevices` it takes (Redfish's
   * `BootSourceOverrideTarget@Redfish.AllowableValues`): `.../boot_device/supported` then
   * asks it through the agent, as Ironic's conductor asks the driver.
   */
  readonly bootDevicesFromBmc?: boolean;
}

/** How a hardware type declares one interface kind: its default and its enabled implementations. */
export interface InterfaceSpec {
  readonly default: InterfaceImpl;
  readonly enabled: readonly InterfaceImpl[];
}

/** One interface kind of a hardware type, as the API shows it (names). */
export interface InterfaceChoice {
  readonly default: string;
  readonly enabled: readonly string[];
}

export interface HardwareType {
  readonly name: string;
  readonly interfaces: Readonly<Record<InterfaceName, InterfaceChoice>>;
  /**
   * `driver_info` keys and their descriptions (`GET /v1/drivers/{name}/properties`): those
   * of the default implementations, as Ironic builds them from a task with the defaults.
   */
  readonly properties: Readonly<Record<string, string>>;
  /** The enabled implementation of `kind` named `name`, if any. */
  implementation(kind: InterfaceName, name: string): InterfaceImpl | undefined;
}

/** The order the default implementations' properties are merged in (the BMC's first). */
const PROPERTY_ORDER: readonly InterfaceName[] = [
  'power',
  'management',
  ...INTERFACE_NAMES.filter((kind) => kind !== 'power' && kind !== 'management'),
];

/**
 * A hardware type from its implementations, checked: every kind declared, the default
 * enabled, each implementation of the kind it is declared under, no name twice per kind.
 */
export function defineHardwareType(
  name: string,
  interfaces: Readonly<Record<InterfaceName, InterfaceSpec>>,
): HardwareType {
  const choices = {} as Record<InterfaceName, InterfaceChoice>;
  const impls = new Map<string, InterfaceImpl>();
  for (const kind of INTERFACE_NAMES) {
    const spec = interfaces[kind];
    if (!spec) throw new Error(`Hardware type ${name} does not declare its ${kind} interface.`);
    for (const impl of spec.enabled) {
      if (impl.kind !== kind)
        throw new Error(`Hardware type ${name}: ${impl.kind} interface ${impl.name} enabled as ${kind}.`);
      const key = `${kind}/${impl.name}`;
      if (impls.has(key))
        throw new Error(`Hardware type ${name} enables ${kind} interface ${impl.name} twice.`);
      impls.set(key, impl);
    }
    if (impls.get(`${kind}/${spec.default.name}`) !== spec.default) {
      throw new Error(
        `Hardware type ${name}: default ${kind} interface ${spec.default.name} is not enabled.`,
      );
    }
    choices[kind] = { default: spec.default.name, enabled: spec.enabled.map((impl) => impl.name) };
  }
  const properties: Record<string, string> = {};
  for (const kind of PROPERTY_ORDER) Object.assign(properties, interfaces[kind].default.properties);
  return {
    name,
    interfaces: choices,
    properties,
    implementation: (kind, implName) => impls.get(`${kind}/${implName}`),
  };
}

/** Python's truthiness of a `driver_info`/`instance_info` value, as Ironic tests them. */
export function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '' && value !== false && value !== 0;
}

/** Python's repr of a list of strings, as Ironic prints them in messages. */
export const pyList = (items: readonly string[]): string => pythonRepr(items);
