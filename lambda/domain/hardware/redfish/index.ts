/**
 * The `redfish` hardware type: power and management through the BMC's Redfish service,
 * spoken by the site agent itself (`agent/drivers/redfish/`), with the boot, deploy,
 * inspect and rescue interfaces every agent-driven type shares (`AGENT_BASELINE`).
 * Ironic's redfish type also offers `redfish-https` boot and `redfish` inspect/bios/raid/
 * vendor interfaces: only what Metalplane implements is enabled.
 */
import { SUPPORTED_BOOT_DEVICES } from '../../../../protocol/actions.ts';
import { AGENT_BASELINE, agentInspect, ipxeBoot, noInspect, only, pxeBoot } from '../generic.ts';
import { defineHardwareType, type InterfaceImpl } from '../interfaces.ts';
import { REDFISH_PROPERTIES, redfishDriverInfoProblem } from './driver-info.ts';

export const redfishPower: InterfaceImpl = {
  kind: 'power',
  name: 'redfish',
  properties: REDFISH_PROPERTIES,
  validate: (node) => redfishDriverInfoProblem(node.uuid, node.driver_info),
};

export const redfishManagement: InterfaceImpl = {
  kind: 'management',
  name: 'redfish',
  properties: REDFISH_PROPERTIES,
  validate: (node) => redfishDriverInfoProblem(node.uuid, node.driver_info),
  bootDevices: SUPPORTED_BOOT_DEVICES.redfish,
  bootDevicesFromBmc: true,
};

/**
 * `redfish-virtual-media` boot: the BMC mounts the ISO the site agent serves as the node's
 * CD drive; no PXE, no DHCP, no port needed. Metalplane boots catalog ISOs this way (the
 * ramdisk deploy of an ISO); building an ISO from a kernel and ramdisk is not done yet.
 */
export const redfishVirtualMediaBoot: InterfaceImpl = {
  kind: 'boot',
  name: 'redfish-virtual-media',
  properties: REDFISH_PROPERTIES,
  validate: (node) => redfishDriverInfoProblem(node.uuid, node.driver_info),
};

export const redfish = defineHardwareType('redfish', {
  ...AGENT_BASELINE,
  boot: { default: ipxeBoot, enabled: [ipxeBoot, pxeBoot, redfishVirtualMediaBoot] },
  management: only(redfishManagement),
  power: only(redfishPower),
  // As for ipmi: `agent` enabled, `no-inspect` the default of Ironic's stock configuration.
  inspect: { default: noInspect, enabled: [agentInspect, noInspect] },
});
