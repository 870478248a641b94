/**
 * The `ipmi` hardware type, what Metalplane's agent implements: power and management
 * through ipmitool, iPXE (or PXE) boot files rendered by the agent, and the ramdisk deploy
 * (boot an ISO or kernel + ramdisk; no image is written to disk), Metalplane's deploy model.
 */
import { SUPPORTED_BOOT_DEVICES } from '../../../../protocol/actions.ts';
import { AGENT_BASELINE, noVendor, only } from '../generic.ts';
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
});
