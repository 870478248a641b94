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
 * - `management.inject_nmi`: the driver's `injectNmi` (ipmitool `power diag`, Redfish
 *   `ResetType: Nmi`, fake: nothing).
 *
 * Every action's arguments carry `driver_info` (the BMC's address and credentials); the
 * driver validates it before anything is sent.
 */
import {
  ACTIONS,
  type BootDevice,
  type BootMode,
  type IndicatorComponent,
  type IndicatorState,
  type InsertVmediaArgs,
  POWER_OFF,
  POWER_ON,
  type PowerState,
  type PowerTarget,
  REBOOT,
  SOFT_POWER_OFF,
  SOFT_REBOOT,
  type SupportedIndicators,
} from '../../protocol/actions.ts';
import type { Action, ActionContext, CatalogAction, VirtualMediaSource } from './types.ts';
import { ActionFailure } from './types.ts';

export type { BootDevice, PowerState };
export type ChassisAction = 'on' | 'off' | 'soft' | 'reset' | 'cycle';

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
  /** The boot devices the BMC takes, of `supportedBootDevices` (absent: those). */
  readSupportedBootDevices?(node: NodeHandle): Promise<BootDevice[]>;
  /** Sends the node a diagnostic interrupt (NMI); absent: the action fails, as Ironic's unsupported extension. */
  injectNmi?(node: NodeHandle): Promise<void>;
  /** The boot mode (firmware) the node boots in, where the BMC says. */
  bootMode?(node: NodeHandle): Promise<BootMode | null>;
  setBootMode?(node: NodeHandle, mode: BootMode): Promise<void>;
  /** Whether UEFI secure boot is on, where the BMC offers it. */
  secureBoot?(node: NodeHandle): Promise<boolean | null>;
  setSecureBoot?(node: NodeHandle, enabled: boolean): Promise<void>;
  /** Virtual media (a BMC that mounts an ISO from a URL as the node's CD drive). */
  insertVirtualMedia?(node: NodeHandle, url: string): Promise<void>;
  ejectVirtualMedia?(node: NodeHandle): Promise<void>;
  /** The node's indicators (LEDs) by component, as Ironic's get_supported_indicators. */
  indicators?(node: NodeHandle): Promise<SupportedIndicators>;
  indicatorState?(
    node: NodeHandle,
    component: IndicatorComponent,
    indicator: string,
  ): Promise<IndicatorState>;
  setIndicatorState?(
    node: NodeHandle,
    component: IndicatorComponent,
    indicator: string,
    state: IndicatorState,
  ): Promise<void>;
  readonly supportedBootDevices: readonly BootDevice[];
  /** Pause between two reads while waiting for a state. */
  readonly pollIntervalMs: number;
}

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
  target: PowerTarget,
  timeoutMs: number,
): Promise<PowerState> {
  const current = await control.powerState(node);
  switch (target) {
    case POWER_ON:
      return current === POWER_ON ? current : turn(control, node, 'on', POWER_ON, timeoutMs);
    case POWER_OFF:
      return current === POWER_OFF ? current : turn(control, node, 'off', POWER_OFF, timeoutMs);
    case SOFT_POWER_OFF:
      return current === POWER_OFF ? current : turn(control, node, 'soft', POWER_OFF, timeoutMs);
    case REBOOT:
      if (current === POWER_ON) await turn(control, node, 'off', POWER_OFF, timeoutMs);
      return turn(control, node, 'on', POWER_ON, timeoutMs);
    case SOFT_REBOOT:
      if (current === POWER_ON) await turn(control, node, 'soft', POWER_OFF, timeoutMs);
      return turn(control, node, 'on', POWER_ON, timeoutMs);
  }
}

export function powerActions(control: PowerControl): Action[] {
  const powerSet: CatalogAction<'power.set'> = {
    name: 'power.set',
    description: 'Change the power state and wait for the BMC to report it: {target, timeout?}',
    validate(args) {
      return ACTIONS['power.set'].validate(args) ?? validateDriverInfo(control, args);
    },
    async run(ctx) {
      const timeoutMs = ((ctx.args.timeout as number | undefined) ?? 60) * 1000;
      const state = await setPower(control, handle(ctx), ctx.args.target as PowerTarget, timeoutMs);
      return { power_state: state };
    },
  };
  const powerGet: CatalogAction<'power.get'> = {
    name: 'power.get',
    description: 'Read the power state',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      return { power_state: await control.powerState(handle(ctx)) };
    },
  };
  return [powerSet, powerGet];
}

export function managementActions(control: PowerControl, media?: VirtualMediaSource): Action[] {
  const setBoot: CatalogAction<'management.set_boot_device'> = {
    name: 'management.set_boot_device',
    description: 'Set the boot device: {boot_device, persistent?}',
    validate(args) {
      // The driver's own devices first (a subset of the catalog's, same message).
      if (!control.supportedBootDevices.includes(args.boot_device as BootDevice)) {
        return `Invalid boot device ${String(args.boot_device)} specified.`;
      }
      return ACTIONS['management.set_boot_device'].validate(args) ?? validateDriverInfo(control, args);
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
  const getBoot: CatalogAction<'management.get_boot_device'> = {
    name: 'management.get_boot_device',
    description: 'Read the boot device',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      return { ...(await control.bootDevice(handle(ctx))) };
    },
  };
  const supported: CatalogAction<'management.get_supported_boot_devices'> = {
    name: 'management.get_supported_boot_devices',
    description: 'The boot devices the BMC takes',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      const read = control.readSupportedBootDevices
        ? await control.readSupportedBootDevices(handle(ctx))
        : [...control.supportedBootDevices];
      return { supported_boot_devices: read.filter((d) => control.supportedBootDevices.includes(d)) };
    },
  };
  const injectNmi: CatalogAction<'management.inject_nmi'> = {
    name: 'management.inject_nmi',
    description: 'Send the node a diagnostic interrupt (NMI)',
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.injectNmi) throw new ActionFailure('this management interface cannot inject an NMI');
      await control.injectNmi(handle(ctx));
      return {};
    },
  };
  return [
    setBoot,
    getBoot,
    supported,
    injectNmi,
    ...firmwareActions(control),
    ...indicatorActions(control),
    ...mediaActions(control, media),
  ];
}

/** `management.insert_vmedia` / `management.eject_vmedia` (the `redfish-virtual-media` boot). */
function mediaActions(control: PowerControl, media: VirtualMediaSource | undefined): Action[] {
  const insert: CatalogAction<'management.insert_vmedia'> = {
    name: 'management.insert_vmedia',
    description:
      "Serve an ISO (a catalog ISO, or one built from kernel + ramdisk) and insert it as the node's virtual CD: " +
      '{node_uuid, iso | kernel + ramdisk + boot_mode?, kernel_append_params?, callback_token?, metalplane_ramdisk?}',
    validate: (args) =>
      ACTIONS['management.insert_vmedia'].validate(args) ??
      media?.validate(args) ??
      validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.insertVirtualMedia || !media) throw unsupported(ctx, 'virtual media');
      const node = String(ctx.args.node_uuid);
      // Checked by validate (the executor runs it first).
      const url = await media.url(ctx.args as unknown as InsertVmediaArgs, ctx.signal);
      try {
        await control.insertVirtualMedia(handle(ctx), url);
      } catch (error) {
        await media.release(node);
        throw error;
      }
      return { url };
    },
  };
  const eject: CatalogAction<'management.eject_vmedia'> = {
    name: 'management.eject_vmedia',
    description: "Eject the node's virtual CD",
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.ejectVirtualMedia) throw unsupported(ctx, 'virtual media');
      await control.ejectVirtualMedia(handle(ctx));
      await media?.release(String(ctx.args.node_uuid));
      return {};
    },
  };
  return [insert, eject];
}

/** `management.get_indicators`, `.get_indicator_state`, `.set_indicator_state`. */
function indicatorActions(control: PowerControl): Action[] {
  const list: CatalogAction<'management.get_indicators'> = {
    name: 'management.get_indicators',
    description: "The node's indicators (LEDs) by component",
    validate: (args) => validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.indicators) throw unsupported(ctx, 'get_supported_indicators');
      return { indicators: await control.indicators(handle(ctx)) };
    },
  };
  const get: CatalogAction<'management.get_indicator_state'> = {
    name: 'management.get_indicator_state',
    description: "One indicator's state: {component, indicator}",
    validate: (args) =>
      ACTIONS['management.get_indicator_state'].validate(args) ?? validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.indicatorState) throw unsupported(ctx, 'get_indicator_state');
      const { component, indicator } = ctx.args as { component: IndicatorComponent; indicator: string };
      return { state: await control.indicatorState(handle(ctx), component, indicator) };
    },
  };
  const set: CatalogAction<'management.set_indicator_state'> = {
    name: 'management.set_indicator_state',
    description: 'Set one indicator: {component, indicator, state}',
    validate: (args) =>
      ACTIONS['management.set_indicator_state'].validate(args) ?? validateDriverInfo(control, args),
    async run(ctx) {
      if (!control.setIndicatorState) throw unsupported(ctx, 'set_indicator_state');
      const { component, indicator, state } = ctx.args as {
        component: IndicatorComponent;
        indicator: string;
        state: IndicatorState;
      };
      await control.setIndicatorState(handle(ctx), component, indicator, state);
      return {};
    },
  };
  return [list, get, set];
}

/** Ironic's message for a management interface without the method. */
const unsupported = (ctx: ActionContext, method: string) =>
  new ActionFailure(
    `Driver ${String(ctx.args.driver ?? 'of this node')} does not support ${method} (disabled or not implemented).`,
  );

/** The current value, or null when it cannot be read (Ironic logs it and sets anyway). */
async function current<T>(read: (() => Promise<T | null>) | undefined): Promise<T | null> {
  if (!read) return null;
  try {
    return await read();
  } catch {
    return null;
  }
}

/**
 * `management.set_boot_mode` / `management.set_secure_boot`, as Ironic's
 * `node_change_boot_mode` / `node_change_secure_boot`: read the current value, change it
 * only when different (a BMC may refuse a no-op PATCH, and a change may need a reboot).
 */
function firmwareActions(control: PowerControl): Action[] {
  const setMode: CatalogAction<'management.set_boot_mode'> = {
    name: 'management.set_boot_mode',
    description: 'Set the boot mode (uefi or bios): {boot_mode}',
    validate: (args) =>
      ACTIONS['management.set_boot_mode'].validate(args) ?? validateDriverInfo(control, args),
    async run(ctx) {
      const wanted = ctx.args.boot_mode as BootMode;
      const node = handle(ctx);
      if (!control.setBootMode) throw unsupported(ctx, 'set_boot_mode');
      const now = await current(
        control.bootMode && (() => control.bootMode?.(node) ?? Promise.resolve(null)),
      );
      if (now !== wanted) await control.setBootMode(node, wanted);
      return { boot_mode: wanted };
    },
  };
  const setSecure: CatalogAction<'management.set_secure_boot'> = {
    name: 'management.set_secure_boot',
    description: 'Turn UEFI secure boot on or off: {enabled}',
    validate: (args) =>
      ACTIONS['management.set_secure_boot'].validate(args) ?? validateDriverInfo(control, args),
    async run(ctx) {
      const wanted = ctx.args.enabled === true;
      const node = handle(ctx);
      if (!control.setSecureBoot) throw unsupported(ctx, 'set_secure_boot_state');
      const now = await current(
        control.secureBoot && (() => control.secureBoot?.(node) ?? Promise.resolve(null)),
      );
      if (now !== wanted) await control.setSecureBoot(node, wanted);
      return { secure_boot: wanted };
    },
  };
  return [setMode, setSecure];
}
