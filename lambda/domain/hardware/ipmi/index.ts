/**
 * The `ipmi` hardware type, what Metalplane's agent implements: power and management
 * through ipmitool, iPXE (or PXE) boot files rendered by the agent, and the ramdisk deploy
 * (boot an ISO or kernel + ramdisk; no image is written to disk), Metalplane's deploy model.
 */
import { SUPPORTED_BOOT_DEVICES } from '../../../../protocol/actions.ts';
import { AGENT_BASELINE, agentInspect, noInspect, noVendor, only } from '../generic.ts';
import { defineHardwareType, type InterfaceImpl } from '../interfaces.ts';
import { IPMI_PROPERTIES, ipmiDriverInfoProblem } from './driver-info.ts';

export const ipmitoolPower: InterfaceImpl = {
  kind: 'power',
  name: 'ipmitool',
  properties: IPMI_PROPERTIES,
  validate: (node) => ipmiDriverInfoProblem(node.driver_info),
};

export const ipmitoolManagement: InterfaceImpl = {
  kind: 'management',
  name: 'ipmitool',
  properties: IPMI_PROPERTIES,
  validate: (node) => ipmiDriverInfoProblem(node.driver_info),
  bootDevices: SUPPORTED_BOOT_DEVICES.ipmitool,
};

export const ipmitoolVendor: InterfaceImpl = { kind: 'vendor', name: 'ipmitool' };

export const ipmi = defineHardwareType('ipmi', {
  ...AGENT_BASELINE,
  management: only(ipmitoolManagement),
  power: only(ipmitoolPower),
  vendor: { default: ipmitoolVendor, enabled: [noVendor, ipmitoolVendor] },
  // Ironic's default is the first of the type's supported inspect interfaces (`agent`,
  // then `no-inspect`) that the configuration enables, and its stock configuration
  // enables `no-inspect` (and `redfish`) only: `no-inspect`. Metalplane enables `agent`
  // as an operator would to inspect, but keeps `no-inspect` the default, so that a node
  // enrolled by someone who expects Ironic's defaults behaves as there (`inspect` is
  // refused until `inspect_interface` is set to `agent`), and stays valid on a site
  // whose ramdisk cannot inspect.
  inspect: { default: noInspect, enabled: [agentInspect, noInspect] },
});
