/**
 * Power and boot-device tasks: what the conductor asks the site's agent to do, and what
 * a finished command leaves on the node (Ironic's `node_power_action` bookkeeping).
 *
 * Agent actions (the agent's power and management interfaces, `agent/actions/power.ts`;
 * their args and results are declared in `protocol/actions.ts`):
 *   power.set                  {driver, driver_info, target, timeout} → {power_state}
 *   management.set_boot_device {driver, driver_info, boot_device, persistent} → {}
 *   management.get_boot_device {driver, driver_info} → {boot_device, persistent}
 * `driver_info` travels in the command's arguments because the agent needs the BMC's
 * credentials; command records are shown to admins only, with secrets masked.
 */
import {
  type ActionArgs,
  type ActionName,
  type BmcArgs,
  type BootMode,
  type IndicatorComponent,
  type IndicatorState,
  isPowerState,
  type PowerState,
} from '../../protocol/actions.ts';
import type { VersionedNode } from '../adapters/dynamo/node-repository.ts';
import type { CommandRecord } from '../domain/commands/command.ts';
import type { Node, NodeTask } from '../domain/nodes/node.ts';
import {
  type BootDeviceRequest,
  type PowerRequest,
  powerFailureMessage,
  powerTimeoutSeconds,
  targetPowerState,
} from '../domain/power/power.ts';
import type { Conductor } from './conductor.ts';

export const POWER_SET = 'power.set' satisfies ActionName;
export const SET_BOOT_DEVICE = 'management.set_boot_device' satisfies ActionName;
export const GET_BOOT_DEVICE = 'management.get_boot_device' satisfies ActionName;
export const INJECT_NMI = 'management.inject_nmi' satisfies ActionName;
export const GET_SUPPORTED_BOOT_DEVICES = 'management.get_supported_boot_devices' satisfies ActionName;
export const SET_BOOT_MODE = 'management.set_boot_mode' satisfies ActionName;
export const SET_SECURE_BOOT = 'management.set_secure_boot' satisfies ActionName;
export const GET_INDICATORS = 'management.get_indicators' satisfies ActionName;
export const GET_INDICATOR_STATE = 'management.get_indicator_state' satisfies ActionName;
export const SET_INDICATOR_STATE = 'management.set_indicator_state' satisfies ActionName;

/** An indicator request: list them (no `indicator`), read one, or set one (`state`). */
export interface IndicatorRequest {
  readonly component?: IndicatorComponent;
  readonly indicator?: string;
  readonly state?: IndicatorState;
}

/** A command of the catalog (`protocol/actions.ts`): its args typed by its action. */
export function agentCommand<N extends ActionName>(
  action: N,
  args: ActionArgs<N>,
): { action: N; commandArgs: Record<string, unknown> } {
  return { action, commandArgs: { ...args } };
}

/**
 * The agent's budget beyond the BMC wait: a queued command may wait for the node's
 * earlier commands, and ipmitool retries; past this the command expires and the task
 * fails with a clear `last_error`.
 */
const AGENT_MARGIN_SECONDS = 60;

/** Boot device calls are quick; the API waits for them (Ironic answers them synchronously). */
export const BOOT_DEVICE_DEADLINE_SECONDS = 60;

/** What every BMC-facing agent action needs: the hardware type and its `driver_info`. */
export function agentArgs(node: Node): Required<BmcArgs> {
  return { driver: node.driver, driver_info: node.driver_info };
}

/** Starts a power change (`PUT .../states/power`): the node shows `target_power_state` until it ends. */
export async function startPowerChange(
  conductor: Conductor,
  found: VersionedNode,
  request: PowerRequest,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const timeout = powerTimeoutSeconds(request);
  const { command } = await conductor.startTask(found, {
    ...agentCommand(POWER_SET, { ...agentArgs(found.node), target: request.target, timeout }),
    taskArgs: { target: request.target },
    deadlineSeconds: timeout + AGENT_MARGIN_SECONDS,
    requestedBy,
    apply: (node) => ({ ...node, target_power_state: targetPowerState(request.target), last_error: null }),
  });
  return command;
}

function reportedPowerState(command: CommandRecord): PowerState | undefined {
  const state = command.result?.power_state;
  return isPowerState(state) ? state : undefined;
}

/** A finished `power.set`: the state the agent read back, or Ironic's failure message. */
export function powerSetFinished(node: Node, task: NodeTask, command: CommandRecord): Node {
  const target = String(task.args.target ?? '');
  const reported = reportedPowerState(command);
  if (command.status === 'succeeded') {
    return {
      ...node,
      power_state: reported ?? targetPowerState(target as PowerRequest['target']),
      target_power_state: null,
      // The node answered: a sync fault it had is over.
      ...(node.fault === 'power failure' ? { fault: null } : {}),
    };
  }
  return {
    ...node,
    ...(reported ? { power_state: reported } : {}),
    target_power_state: null,
    last_error: powerFailureMessage(target, command.error ?? `command ${command.status}`),
  };
}

/** Sets the boot device through the agent (the caller waits for the command). */
export async function startBootDeviceChange(
  conductor: Conductor,
  found: VersionedNode,
  request: BootDeviceRequest,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(SET_BOOT_DEVICE, {
      ...agentArgs(found.node),
      boot_device: request.boot_device,
      persistent: request.persistent,
    }),
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
  });
  return command;
}

/** Reads the boot device through the agent (Ironic takes the node's lock for this too). */
export async function startBootDeviceRead(
  conductor: Conductor,
  found: VersionedNode,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(GET_BOOT_DEVICE, agentArgs(found.node)),
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
  });
  return command;
}

/** Asks the BMC which boot devices it takes (a management interface that says, e.g. Redfish). */
export async function startSupportedBootDevicesRead(
  conductor: Conductor,
  found: VersionedNode,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(GET_SUPPORTED_BOOT_DEVICES, agentArgs(found.node)),
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
  });
  return command;
}

/** Sends an NMI through the agent (Ironic's `inject_nmi`: a synchronous conductor call). */
export async function startInjectNmi(
  conductor: Conductor,
  found: VersionedNode,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(INJECT_NMI, agentArgs(found.node)),
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
  });
  return command;
}

/**
 * Changes the boot mode (`PUT .../states/boot_mode`, 202): Ironic clears `last_error`,
 * and on the end sets `boot_mode` or writes its failure message.
 */
export async function startBootModeChange(
  conductor: Conductor,
  found: VersionedNode,
  mode: BootMode,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(SET_BOOT_MODE, { ...agentArgs(found.node), boot_mode: mode }),
    taskArgs: { target: mode },
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
    apply: (node) => ({ ...node, last_error: null }),
  });
  return command;
}

/** Ironic's `node_change_boot_mode` outcome (its message kept as Ironic writes it). */
export function bootModeFinished(node: Node, task: NodeTask, command: CommandRecord): Node {
  const target = String(task.args.target ?? '');
  if (command.status === 'succeeded') return { ...node, boot_mode: target };
  return {
    ...node,
    last_error: `Failed to change boot mode to '${target}: ${command.error ?? `command ${command.status}`}`,
  };
}

/** Turns secure boot on or off (`PUT .../states/secure_boot`, 202). */
export async function startSecureBootChange(
  conductor: Conductor,
  found: VersionedNode,
  enabled: boolean,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const { command } = await conductor.startTask(found, {
    ...agentCommand(SET_SECURE_BOOT, { ...agentArgs(found.node), enabled }),
    taskArgs: { target: enabled },
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
    apply: (node) => ({ ...node, last_error: null }),
  });
  return command;
}

/** Ironic's `node_change_secure_boot` outcome (Python's True/False in its message). */
export function secureBootFinished(node: Node, task: NodeTask, command: CommandRecord): Node {
  const target = task.args.target === true;
  if (command.status === 'succeeded') return { ...node, secure_boot: target };
  return {
    ...node,
    last_error: `Failed to change secure_boot state to '${target ? 'True' : 'False'}': ${command.error ?? `command ${command.status}`}`,
  };
}

/**
 * Indicators through the agent, as Ironic's synchronous conductor calls (which take the
 * node's lock, a read included): list, read one, or set one; the caller waits.
 */
export async function startIndicatorCall(
  conductor: Conductor,
  found: VersionedNode,
  request: IndicatorRequest,
  requestedBy: string | null,
): Promise<CommandRecord> {
  const base = agentArgs(found.node);
  const { component, indicator, state } = request;
  const call =
    component === undefined || indicator === undefined
      ? agentCommand(GET_INDICATORS, base)
      : state === undefined
        ? agentCommand(GET_INDICATOR_STATE, { ...base, component, indicator })
        : agentCommand(SET_INDICATOR_STATE, { ...base, component, indicator, state });
  const { command } = await conductor.startTask(found, {
    ...call,
    deadlineSeconds: BOOT_DEVICE_DEADLINE_SECONDS,
    requestedBy,
  });
  return command;
}

/** Boot device tasks change nothing on the node but the lock; their caller reads the result. */
const unchanged = (node: Node) => node;

export function registerPowerTasks(conductor: Conductor): void {
  conductor
    .onTaskFinished(POWER_SET, powerSetFinished)
    .onTaskFinished(SET_BOOT_DEVICE, unchanged)
    .onTaskFinished(GET_BOOT_DEVICE, unchanged)
    .onTaskFinished(INJECT_NMI, unchanged)
    .onTaskFinished(GET_SUPPORTED_BOOT_DEVICES, unchanged)
    .onTaskFinished(GET_INDICATORS, unchanged)
    .onTaskFinished(GET_INDICATOR_STATE, unchanged)
    .onTaskFinished(SET_INDICATOR_STATE, unchanged)
    .onTaskFinished(SET_BOOT_MODE, bootModeFinished)
    .onTaskFinished(SET_SECURE_BOOT, secureBootFinished);
}
