/**
 * The power and management interfaces' actions, shared by every hardware type: a driver
 * supplies a `PowerControl` (how to read and set power and the boot device of one node)
 * and gets Ironic's semantics on top of it:
 *
 * - `power.set {target, timeout}`: nothing to do when the node already is in the target
 *   state (Ironic's `_can_skip_state_change`); otherwise the BMC is told, then read back
 *   until it reports the target or `timeout` seconds pass (a BMC acknowledges before the
 *   chassis has changed). `rebooting` = off, wait, on, wait; `soft power off` = ACPI
 *   shutdown, wait (up to the long soft timeout); `soft rebooting` = soft off, wait, on.
 *   Result: `{power_state}` as read back last.
 * - `management.set_boot_device {boot_device, persistent}` / `management.get_boot_device`.
 *
 * Every action's arguments carry `driver_info` (the BMC's address and credentials); the
 * driver validates it before anything is sent.
 */
import type { Action, ActionContext } from './types.ts';
import { ActionFailure } from './types.ts';

export type PowerState = 'power on' | 'power off';
export type ChassisAction = 'on' | 'off' | 'soft' | 'reset' | 'cycle';
export const BOOT_DEVICES = ['pxe', 'disk', 'cdrom', 'bios', 'safe'] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

/** What the actions need to know of one node. */
export interface NodeHandle {
  readonly node: string;
  readonly driverInfo: Record<string, unknown>;
  readonly signal: AbortSignal;
}

/** A hardware type's way to one node's power and boot device. */
export interface PowerControl {
  /** A `driver_info` problem, or undefined when usable. */
  validate(driverInfo: Record<string, unknown>): string | undefined;
  powerState(node: NodeHandle): Promise<PowerState>;
  chassis(node: NodeHandle, action: ChassisAction): Promise<void>;
  bootDevice(node: NodeHandle): Promise<{ boot_device: BootDevice | null; persistent: boolean | null }>;
  setBootDevice(node: NodeHandle, device: BootDevice, persistent: boolean): Promise<void>;
  readonly supportedBootDevices: readonly BootDevice[];
  /** Pause between two reads while waiting for a state. */
  readonly pollIntervalMs: number;
}

const TARGETS = ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'] as const;
type Target = (typeof TARGETS)[number];
const MAX_TIMEOUT_SECONDS = 3600;

function driverInfoOf(args: Record<string, unknown>): Record<string, unknown> {
  const info = args.driver_info;
  return typeof info === 'object' && info !== null && !Array.isArray(info)
    ? (info as Record<string, unknown>)
    : {};
}

function handle(ctx: ActionContext): NodeHandle {
  return { node: ctx.command.node, driverInfo: driverInfoOf(ctx.args), signal: ctx.signal };
}

function validateDriverInfo(control: PowerControl, args: Record<string, unknown>): string | undefined {
  const info = args.driver_info;
  if (info !== undefined && (typeof info !== 'object' || info === null || Array.isArray(info))) {
    return 'args.driver_info must be an object';
  }
  return control.validate(driverInfoOf(args));
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(new ActionFailure('aborted'));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ActionFailure('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Reads until the node reports `wanted` or `timeoutMs` passes; the last state read. */
async function waitFor(
  control: PowerControl,
  node: NodeHandle,
  wanted: PowerState,
  timeoutMs: number,
): Promise<PowerState> {
  const until = Date.now() + timeoutMs;
  let state = await control.powerState(node);
  for (let round = 0; state !== wanted && round < 100_000; round++) {
    const left = until - Date.now();
    if (left <= 0) {
      throw new ActionFailure(
        `the BMC still reports '${state}' ${Math.round(timeoutMs / 1000)} s after the request for '${wanted}'`,
      );
    }
    await sleep(Math.min(control.pollIntervalMs, left), node.signal);
    state = await control.powerState(node);
  }
  return state;
}

async function turn(
  control: PowerControl,
  node: NodeHandle,
  action: ChassisAction,
  wanted: PowerState,
  timeoutMs: number,
) {
  await control.chassis(node, action);
  return waitFor(control, node, wanted, timeoutMs);
}

/** Ironic's power action on one node; the state read back last. */
export async function setPower(
  control: PowerControl,
  node: NodeHandle,
  target: Target,
  timeoutMs: number,
): Promise<PowerState> {
  const current = await control.powerState(node);
  switch (target) {
    case 'power on':
      return current === 'power on' ? current : turn(control, node, 'on', 'power on', timeoutMs);
    case 'power off':
      return current === 'power off' ? current : turn(control, node, 'off', 'power off', timeoutMs);
    case 'soft power off':
      return current === 'power off' ? current : turn(control, node, 'soft', 'power off', timeoutMs);
    case 'rebooting':
      if (current === 'power on') await turn(control, node, 'off', 'power off', timeoutMs);
      return turn(control, node, 'on', 'power on', timeoutMs);
    case 'soft rebooting':
      if (current === 'power on') await turn(control, node, 'soft', 'power off', timeoutMs);
      return turn(control, node, 'on', 'power on', timeoutMs);
  }
}

export function powerActions(control: PowerControl): Action[] {
  const powerSet: Action = {
    name: 'power.set',
    description: 'Change the power state and wait for the BMC to report it: {target, timeout?}',
    validate(args) {
      if (!TARGETS.includes(args.target as Target)) return `args.target must be one of ${TARGETS.join(', ')}`;
      const timeout = args.timeout;
      if (
        timeout !== undefined &&
        (typeof timeout !== 'number' ||
          !Number.isInteger(timeout) ||
          timeout < 1 ||
          timeout > MAX_TIMEOUT_SECONDS)
      ) {
        return `args.timeout must be an integer from 1 to ${MAX_TIMEOUT_SECONDS} (seconds)`;
      }
      return validateDriverInfo(control, args);
    },
    async run(ctx) {
      const timeoutMs = ((ctx.args.timeout as number | undefined) ?? 60) * 1000;
      const state = await setPower(control, handle(ctx), ctx.args.target as Target, timeoutMs);
      return { power_state: state };
    },
  };
  const powerGet: Action = {
    name: 'power.get',
    description: 'Read the power state',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      return { power_state: await control.powerState(handle(ctx)) };
    },
  };
  return [powerSet, powerGet];
}

export function managementActions(control: PowerControl): Action[] {
  const setBoot: Action = {
    name: 'management.set_boot_device',
    description: 'Set the boot device: {boot_device, persistent?}',
    validate(args) {
      if (!control.supportedBootDevices.includes(args.boot_device as BootDevice)) {
        return `Invalid boot device ${String(args.boot_device)} specified.`;
      }
      if (args.persistent !== undefined && typeof args.persistent !== 'boolean') {
        return 'args.persistent must be true or false';
      }
      return validateDriverInfo(control, args);
    },
    async run(ctx) {
      await control.setBootDevice(
        handle(ctx),
        ctx.args.boot_device as BootDevice,
        ctx.args.persistent === true,
      );
      return {};
    },
  };
  const getBoot: Action = {
    name: 'management.get_boot_device',
    description: 'Read the boot device',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      return { ...(await control.bootDevice(handle(ctx))) };
    },
  };
  return [setBoot, getBoot];
}
