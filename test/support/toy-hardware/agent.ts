/**
 * `toy-hardware`, the agent's half (see `control-plane.ts` beside it): BMCs that are
 * entries in a map keyed by `driver_info.toy_address`, which the test reads and changes
 * "behind Metalplane's back". Power and management are the agent's generic actions over
 * a `PowerControl`; the power sync reads the same map through the module's probe.
 */

import {
  managementActions,
  type NodeHandle,
  type PowerControl,
  powerActions,
} from '../../../agent/drivers/power-interface.ts';
import { ActionFailure, type HardwareModule } from '../../../agent/drivers/types.ts';
import { type BootDevice, POWER_OFF, POWER_ON, type PowerState } from '../../../protocol/actions.ts';
import { toyDriverInfoProblem } from './control-plane.ts';

export interface ToyBmc {
  power: PowerState;
  boot: BootDevice;
  persistent: boolean;
  /** Chassis commands received. */
  commands: string[];
}

/** The toy BMCs of one test, by address; a BMC is created on first contact, powered off. */
export class ToyBmcs {
  readonly #bmcs = new Map<string, ToyBmc>();
  /** Addresses that do not answer (the action fails, as with a BMC off the network). */
  readonly unreachable = new Set<string>();

  bmc(address: string): ToyBmc {
    if (this.unreachable.has(address)) throw new ActionFailure(`toy BMC ${address} does not answer`);
    let bmc = this.#bmcs.get(address);
    if (!bmc) {
      bmc = { power: POWER_OFF, boot: 'disk', persistent: false, commands: [] };
      this.#bmcs.set(address, bmc);
    }
    return bmc;
  }
}

const addressOf = (node: Pick<NodeHandle, 'driverInfo'>) => String(node.driverInfo.toy_address);

function toyControl(bmcs: ToyBmcs): PowerControl {
  return {
    validate: toyDriverInfoProblem,
    powerState: async (node) => bmcs.bmc(addressOf(node)).power,
    async chassis(node, action) {
      const bmc = bmcs.bmc(addressOf(node));
      bmc.commands.push(action);
      bmc.power = action === 'off' || action === 'soft' ? POWER_OFF : POWER_ON;
    },
    async bootDevice(node) {
      const bmc = bmcs.bmc(addressOf(node));
      return { boot_device: bmc.boot, persistent: bmc.persistent };
    },
    async setBootDevice(node, device, persistent) {
      const bmc = bmcs.bmc(addressOf(node));
      bmc.boot = device;
      bmc.persistent = persistent;
    },
    supportedBootDevices: ['pxe', 'disk'],
    pollIntervalMs: 0,
  };
}

export function toyHardwareModule(bmcs: ToyBmcs): HardwareModule {
  return {
    name: 'toy-hardware',
    create() {
      const control = toyControl(bmcs);
      return {
        name: 'toy-hardware',
        interfaces: {
          power: { name: 'toy', actions: powerActions(control) },
          management: { name: 'toy', actions: managementActions(control) },
        },
        powerProbe: async (node) => bmcs.bmc(String(node.driver_info.toy_address)).power,
      };
    },
  };
}
