/**
 * `toy-hardware`, the control plane's half: a hardware type that exists only in tests, to
 * prove that a type is one folder on each side plus one registry line
 * (`test/integration/hardware-type-extension.test.ts`; docs/architecture.md, "Adding a
 * hardware type"). Its BMC is an address in `driver_info.toy_address`; it boots from PXE
 * or disk. Everything else is the agent baseline (`AGENT_BASELINE`: iPXE boot, ramdisk deploy, no
 * bios, console, inspect, raid, rescue or vendor).
 */
import { AGENT_BASELINE, only } from '../../../lambda/domain/hardware/generic.ts';
import { defineHardwareType, type InterfaceImpl } from '../../../lambda/domain/hardware/interfaces.ts';

const TOY_PROPERTIES = { toy_address: 'The toy BMC of the node: rack/slot, e.g. "r1/3". Required.' };

/** The message of the first problem with `driver_info`, as Ironic's drivers word them. */
export function toyDriverInfoProblem(info: Record<string, unknown>): string | undefined {
  const address = info.toy_address;
  if (address === undefined || address === null || address === '')
    return "Missing the following toy credentials in node's driver_info: ['toy_address'].";
  if (typeof address !== 'string' || !/^r\d+\/\d+$/.test(address))
    return `Invalid toy_address ${String(address)}: expected rack/slot, e.g. r1/3.`;
  return undefined;
}

const toyPower: InterfaceImpl = {
  kind: 'power',
  name: 'toy',
  properties: TOY_PROPERTIES,
  validate: (node) => toyDriverInfoProblem(node.driver_info),
};

const toyManagement: InterfaceImpl = {
  kind: 'management',
  name: 'toy',
  properties: TOY_PROPERTIES,
  validate: (node) => toyDriverInfoProblem(node.driver_info),
  bootDevices: ['pxe', 'disk'],
};

export const toyHardware = defineHardwareType('toy-hardware', {
  ...AGENT_BASELINE,
  management: only(toyManagement),
  power: only(toyPower),
});
