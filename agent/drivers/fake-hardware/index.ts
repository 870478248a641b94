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
 *
 * `driver_info.fake_fault` (a text) makes the node's power actions fail with it, as a BMC
 * that refuses would: rollouts and alarms can be rehearsed on fake hardware. Ironic's fake
 * hardware has no such switch; it changes nothing for nodes without it.
 */
import {
  type BootMode,
  isPowerState,
  POWER_OFF,
  POWER_ON,
  SUPPORTED_BOOT_DEVICES,
} from '../../../protocol/actions.ts';
import {
  type BootDevice,
  managementActions,
  type PowerControl,
  type PowerState,
  powerActions,
} from '../power-interface.ts';
import {
  ActionFailure,
  type Driver,
  type HardwareModule,
  type LoadedDriver,
  type PowerProbe,
} from '../types.ts';

interface FakeNode {
  power: PowerState;
  boot: BootDevice;
  persistent: boolean;
  bootMode: BootMode;
  secureBoot: boolean;
}

/** The simulated hardware of every fake node of this agent (lost on restart, as RAM is). */
export class FakeHardwareState {
  readonly #nodes = new Map<string, FakeNode>();
  /** Chassis actions done, for tests. */
  actions = 0;

  node(uuid: string, recorded?: PowerState | null): FakeNode {
    let node = this.#nodes.get(uuid);
    if (!node) {
      node = {
        power: recorded ?? POWER_OFF,
        boot: 'pxe',
        persistent: false,
        bootMode: 'uefi',
        secureBoot: false,
      };
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
      const fault = node.driverInfo.fake_fault;
      if (typeof fault === 'string' && fault !== '') throw new ActionFailure(`simulated BMC fault: ${fault}`);
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
    // Ironic's fake management keeps boot mode and secure boot (as the fake node's own).
    async bootMode(node) {
      return state.node(node.node).bootMode;
    },
    async setBootMode(node, mode) {
      state.actions++;
      state.node(node.node).bootMode = mode;
    },
    async secureBoot(node) {
      return state.node(node.node).secureBoot;
    },
    async setSecureBoot(node, enabled) {
      state.actions++;
      state.node(node.node).secureBoot = enabled;
    },
    // Ironic's fake management: a read-only chassis LED and a system LED that always read
    // "on" (it cannot set them: set_indicator_state is unsupported there).
    async indicators() {
      return {
        chassis: { 'led-0': { readonly: true, states: ['off', 'on'] } },
        system: { led: { readonly: false, states: ['blinking', 'off', 'on'] } },
      };
    },
    async indicatorState(_node, component, indicator) {
      const known = (await this.indicators?.(_node)) ?? {};
      if (!(component in known)) throw new ActionFailure(`Invalid component ${component} specified.`);
      if (!(indicator in (known[component] ?? {}))) {
        throw new ActionFailure(`Invalid indicator ${indicator} specified.`);
      }
      return 'on';
    },
    // Ironic's fake management accepts inject_nmi and does nothing.
    async injectNmi() {
      state.actions++;
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
