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

/** Boot device tasks change nothing on the node but the lock; their caller reads the result. */
const unchanged = (node: Node) => node;

export function registerPowerTasks(conductor: Conductor): void {
  conductor
    .onTaskFinished(POWER_SET, powerSetFinished)
    .onTaskFinished(SET_BOOT_DEVICE, unchanged)
    .onTaskFinished(GET_BOOT_DEVICE, unchanged);
}
