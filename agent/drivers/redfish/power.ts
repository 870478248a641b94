/**
 * Redfish power, as Ironic's redfish power interface (`ironic/drivers/modules/redfish/power.py`):
 * the ComputerSystem's `PowerState` read, and `ComputerSystem.Reset` with a `ResetType`.
 *
 * Reading: On and PoweringOn are 'power on', Off and PoweringOff 'power off' (Ironic's
 * GET_POWER_STATE_MAP: a node powering off is already off for the control plane).
 *
 * Setting goes through the shared power interface (`../power-interface.ts`), which asks for
 * chassis actions and waits for the state read back: 'power on' = On, 'power off' =
 * ForceOff, 'soft power off' = GracefulShutdown; a reboot is off, wait, On, wait — what
 * Ironic's RedfishPower.reboot does today (ForceOff, wait, On, wait), and what proves the
 * node went down, where a single ForceRestart can only be checked by reading On again.
 */
import { POWER_OFF, POWER_ON, type PowerState } from '../../../protocol/actions.ts';
import type { ChassisAction } from '../power-interface.ts';
import type { CallOptions, JsonObject, RedfishClient } from './client.ts';
import type { RedfishTarget } from './driver-info.ts';
import { RedfishError } from './errors.ts';

/** Ironic's GET_POWER_STATE_MAP. */
export const POWER_STATE_MAP: Readonly<Record<string, PowerState>> = {
  On: POWER_ON,
  PoweringOn: POWER_ON,
  Off: POWER_OFF,
  PoweringOff: POWER_OFF,
};

/**
 * The ResetType of each chassis action. `reset` and `cycle` are what Ironic sends for a
 * one-request reboot (ForceRestart) and what IPMI's `power cycle` is (PowerCycle); the
 * shared power interface does not ask for them today.
 */
export const RESET_TYPES: Readonly<Record<ChassisAction, string>> = {
  on: 'On',
  off: 'ForceOff',
  soft: 'GracefulShutdown',
  reset: 'ForceRestart',
  cycle: 'PowerCycle',
};

/** The system's power state as Ironic's; an unknown or missing `PowerState` is an error. */
export function powerStateOf(system: JsonObject, address: string): PowerState {
  const state = system.PowerState;
  const mapped = typeof state === 'string' ? POWER_STATE_MAP[state] : undefined;
  if (!mapped) {
    throw new RedfishError(
      'malformed',
      `Redfish BMC at ${address} reports an unknown PowerState ${JSON.stringify(state ?? null)}`,
    );
  }
  return mapped;
}

/** Reads the node's power state: one GET of its system. */
export async function readPowerState(
  client: RedfishClient,
  target: RedfishTarget,
  call: CallOptions,
): Promise<PowerState> {
  return powerStateOf(await client.system(target, call), target.address);
}

/** The reset action's path: the system's advertised target, else the standard one. */
async function resetPath(client: RedfishClient, target: RedfishTarget, call: CallOptions): Promise<string> {
  const system = await client.systemPath(target, call);
  let advertised = client.resetTarget(target, system);
  if (advertised === undefined) {
    await client.system(target, call);
    advertised = client.resetTarget(target, system);
  }
  if (advertised === undefined) return `${system}/Actions/ComputerSystem.Reset`;
  const url = new URL(advertised, target.address);
  if (url.origin !== target.address) {
    throw new RedfishError(
      'config',
      `Redfish BMC at ${target.address} advertises its reset action on another origin (${url.origin})`,
    );
  }
  return url.pathname;
}

/** `POST …/Actions/ComputerSystem.Reset {"ResetType": resetType}`. */
export async function reset(
  client: RedfishClient,
  target: RedfishTarget,
  resetType: string,
  call: CallOptions,
): Promise<void> {
  await client.post(target, await resetPath(client, target, call), { ResetType: resetType }, call);
}

/** The chassis action the shared power interface asks for. */
export function chassis(
  client: RedfishClient,
  target: RedfishTarget,
  action: ChassisAction,
  call: CallOptions,
): Promise<void> {
  return reset(client, target, RESET_TYPES[action], call);
}

/** A diagnostic interrupt (Ironic's redfish inject_nmi: ResetType Nmi). */
export function injectNmi(client: RedfishClient, target: RedfishTarget, call: CallOptions): Promise<void> {
  return reset(client, target, 'Nmi', call);
}
