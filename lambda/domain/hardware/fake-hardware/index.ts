/**
 * The `fake-hardware` type, Ironic's: everything simulated, for development and tests,
 * with the real boot and deploy implementations and the `no-*` ones also enabled.
 */
import {
  agentInspect,
  agentRescue,
  directDeploy,
  fake,
  ipxeBoot,
  noBios,
  noConsole,
  noInspect,
  noopNetwork,
  noopStorage,
  noRaid,
  noRescue,
  noVendor,
  pxeBoot,
  ramdiskDeploy,
} from '../generic.ts';
import { defineHardwareType } from '../interfaces.ts';

export const fakeHardware = defineHardwareType('fake-hardware', {
  bios: { default: fake.bios, enabled: [fake.bios, noBios] },
  boot: { default: fake.boot, enabled: [ipxeBoot, fake.boot, pxeBoot] },
  console: { default: fake.console, enabled: [noConsole, fake.console] },
  deploy: { default: fake.deploy, enabled: [directDeploy, fake.deploy, ramdiskDeploy] },
  inspect: { default: fake.inspect, enabled: [noInspect, fake.inspect, agentInspect] },
  management: { default: fake.management, enabled: [fake.management] },
  network: { default: noopNetwork, enabled: [noopNetwork] },
  power: { default: fake.power, enabled: [fake.power] },
  raid: { default: fake.raid, enabled: [fake.raid, noRaid] },
  rescue: { default: fake.rescue, enabled: [noRescue, fake.rescue, agentRescue] },
  storage: { default: noopStorage, enabled: [noopStorage] },
  vendor: { default: fake.vendor, enabled: [noVendor, fake.vendor] },
});
