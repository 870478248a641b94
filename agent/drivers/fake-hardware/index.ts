/**
 * `fake-hardware`: Ironic's development hardware type, simulated in memory. Its power and
 * management interfaces behave as a BMC would as far as the control plane can tell —
 * power actions change a per-node state and are read back, the boot device is
 * remembered — without any hardware: for development, the local stack and tests.
 *
 * Like Ironic's fake power interface, a node the agent has not seen yet is in the state
 * the control plane records for it (`recorded` in the sync; off otherwise): the power
 * sync's probe reads the simulated state, adopting the recorded one for a new node (as
 * Ironic's fake power interface answers what the database says).
 */
import { isPowerState, POWER_OFF, POWER_ON, SUPPORTED_BOOT_DEVICES } from '../../../protocol/actions.ts';
import {
  type BootDevice,
  managementActions,
  type PowerControl,
  type PowerState,
  powerActions,
} from '../power-interface.ts';
import type { Driver, HardwareModule, LoadedDriver, PowerProbe } from '../types.ts';

interface FakeNode {
  power: PowerState;
  boot: BootDevice;
  persistent: boolean;
}

/** The simulated hardware of every fake node of this agent (lost on restart, as RAM is). */
export class FakeHardwareState {
  readonly #nodes = new Map<string, FakeNode>();
  /** Chassis actions done, for tests. */
  actions = 0;

  node(uuid: string, recorded?: PowerState | null): FakeNode {
    let node = this.#nodes.get(uuid);
    if (!node) {
      node = { power: recorded ?? POWER_OFF, boot: 'pxe', persistent: false };
      this.#nodes.set(uuid, node);
    }
    return node;
  }

  /** Changes a node's power "behind Metalplane's back" (tests of the sync). */
  setPower(uuid: string, power: PowerState): void {
    this.node(uuid).power = power;
  }
}

export function fakePowerControl(state: FakeHardwareState): PowerControl {
  return {
    validate: () => undefined,
    async powerState(node) {
      return state.node(node.node).power;
    },
    async chassis(node, action) {
      state.actions++;
      const fake = state.node(node.node);
      // reset and cycle end powered on; soft is an ACPI shutdown the fake OS obeys at once.
      fake.power = action === 'off' || action === 'soft' ? POWER_OFF : POWER_ON;
    },
    async bootDevice(node) {
      const fake = state.node(node.node);
      return { boot_device: fake.boot, persistent: fake.persistent };
    },
    async setBootDevice(node, device, persistent) {
      const fake = state.node(node.node);
      fake.boot = device;
      fake.persistent = persistent;
    },
    // Ironic's fake management supports PXE only.
    supportedBootDevices: SUPPORTED_BOOT_DEVICES.fake,
    pollIntervalMs: 0,
  };
}

export function fakeHardware(state: FakeHardwareState = new FakeHardwareState()): Driver {
  const control = fakePowerControl(state);
  return {
    name: 'fake-hardware',
    interfaces: {
      power: { name: 'fake', actions: powerActions(control) },
      management: { name: 'fake', actions: managementActions(control) },
    },
  };
}

/** The power sync's probe: the simulated state (the recorded one for a node not seen yet). */
export function fakePowerProbe(state: FakeHardwareState): PowerProbe {
  return async (node) => {
    const recorded = isPowerState(node.power_state) ? node.power_state : null;
    return state.node(node.uuid, recorded).power;
  };
}

/** The `fake-hardware` hardware type: one simulated memory per agent, shared by its actions and probe. */
export const fakeHardwareModule: HardwareModule = {
  name: 'fake-hardware',
  create(): LoadedDriver {
    const state = new FakeHardwareState();
    return { ...fakeHardware(state), powerProbe: fakePowerProbe(state) };
  },
};
