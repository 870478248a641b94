/**
 * `ipmi`: Ironic's IPMI hardware type, power and management through `ipmitool -I lanplus`
 * (`ipmitool.ts`: the password in a 0600 file, a hard timeout, one call at a time per BMC
 * with a minimum interval). Transient failures (a busy BMC, a lost reply) are retried a
 * few times; refused credentials and silence are not — retrying those only costs more
 * time before the operator learns what is wrong.
 *
 * The power sync's probe reads through the native RMCP+ client (`power-probe.ts`;
 * ipmitool for BMCs it cannot talk to, or everywhere with `power_sync.native: false`),
 * inside the shared runner's per-BMC turn, so a sweep never opens a session to a BMC
 * while a power action is talking to it.
 */

import { SUPPORTED_BOOT_DEVICES } from '../../../protocol/actions.ts';
import { managementActions, type NodeHandle, type PowerControl, powerActions } from '../power-interface.ts';
import {
  ActionFailure,
  type Driver,
  type DriverContext,
  type HardwareModule,
  type LoadedDriver,
  type PowerProbe,
} from '../types.ts';
import {
  connectionArgs,
  getBootDevice,
  type IpmiError,
  type IpmiTarget,
  Ipmitool,
  powerStatus,
  setBootDevice,
} from './ipmitool.ts';
import { IpmitoolPowerProbe, NativePowerProbe, type PowerStatusProbe } from './power-probe.ts';

export interface IpmiDriverOptions {
  /** Extra attempts after a transient failure (Ironic retries until `command_retry_timeout`). */
  readonly retries?: number;
  readonly retryDelayMs?: number;
  /** Pause between reads while waiting for the chassis to reach a state (Ironic: 1 s). */
  readonly pollIntervalMs?: number;
}

const TRANSIENT = new Set(['failed', 'timeout']);

/** Ironic's driver_info check (`_parse_driver_info`): the message of the first problem. */
export function ipmiTargetProblem(info: Record<string, unknown>): string | undefined {
  if (info.ipmi_address === undefined || info.ipmi_address === null || info.ipmi_address === '') {
    return "Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].";
  }
  try {
    connectionArgs(info as unknown as IpmiTarget);
  } catch (error) {
    return (error as Error).message;
  }
  if (info.ipmi_password !== undefined && typeof info.ipmi_password !== 'string') {
    return 'ipmi_password must be a string';
  }
  return undefined;
}

export function ipmiPowerControl(ipmitool: Ipmitool, options: IpmiDriverOptions = {}): PowerControl {
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 1000;

  async function call<T>(node: NodeHandle, what: string, fn: (target: IpmiTarget) => Promise<T>): Promise<T> {
    const target = node.driverInfo as unknown as IpmiTarget;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn(target);
      } catch (error) {
        const kind = (error as IpmiError).kind;
        if (attempt < retries && TRANSIENT.has(kind) && !node.signal.aborted) {
          await new Promise((resolve) => setTimeout(resolve, retryDelayMs * (attempt + 1)));
          continue;
        }
        throw new ActionFailure(
          `IPMI ${what} failed for ${target.ipmi_address}: ${(error as Error).message}`,
        );
      }
    }
  }

  return {
    validate: ipmiTargetProblem,
    powerState: (node) => call(node, 'power status', (target) => powerStatus(ipmitool, target)),
    chassis: (node, action) =>
      call(node, `power ${action}`, async (target) => {
        await ipmitool.run(target, ['power', action]);
      }),
    bootDevice: (node) =>
      call(node, 'boot device read', async (target) => {
        const { device, persistent } = await getBootDevice(ipmitool, target);
        return { boot_device: device, persistent };
      }),
    setBootDevice: (node, device, persistent) =>
      call(node, `boot device ${device}`, (target) => setBootDevice(ipmitool, target, device, persistent)),
    // Ironic's ipmitool inject_nmi: `power diag` (Chassis Control, pulse diagnostic interrupt).
    injectNmi: (node) =>
      call(node, 'power diag', async (target) => {
        await ipmitool.run(target, ['power', 'diag']);
      }),
    supportedBootDevices: SUPPORTED_BOOT_DEVICES.ipmitool,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
  };
}

export function ipmiHardware(ipmitool: Ipmitool = new Ipmitool(), options: IpmiDriverOptions = {}): Driver {
  const control = ipmiPowerControl(ipmitool, options);
  return {
    name: 'ipmi',
    interfaces: {
      power: { name: 'ipmitool', actions: powerActions(control) },
      management: { name: 'ipmitool', actions: managementActions(control) },
    },
  };
}

/**
 * The power sync's probe: the native RMCP+ client (ipmitool as fallback, or only ipmitool
 * with `native: false`), each read inside `ipmitool`'s turn for the BMC. Returns the probe
 * and what closes it.
 */
export function ipmiPowerProbe(
  ipmitool: Ipmitool,
  options: { native: boolean; timeoutMs: number; log: DriverContext['log'] },
): { probe: PowerProbe; close(): void } {
  // The fallback runs inside the shared runner's turn for the BMC: it needs a runner of its own.
  const fallback = new IpmitoolPowerProbe(new Ipmitool({ timeoutMs: options.timeoutMs }));
  const reader: PowerStatusProbe = options.native
    ? new NativePowerProbe({
        fallback,
        onFallback: (info, reason) =>
          options.log.info('power sync: BMC read with ipmitool instead', {
            bmc: `${info.ipmi_address}:${info.ipmi_port ?? 623}`,
            reason,
          }),
      })
    : fallback;
  return {
    probe: (node, signal) => {
      const target = node.driver_info as unknown as IpmiTarget;
      return ipmitool.exclusive(target, () => reader.powerState(target, signal));
    },
    close: () => {
      if (reader instanceof NativePowerProbe) reader.close();
    },
  };
}

/**
 * The `ipmi` hardware type: one ipmitool runner per agent, shared by the power and
 * management actions and the power sync's probe (one conversation per BMC at a time).
 */
export const ipmiModule: HardwareModule = {
  name: 'ipmi',
  create(ctx: DriverContext): LoadedDriver {
    const ipmitool = new Ipmitool({
      timeoutMs: ctx.ipmi.commandTimeoutMs,
      minIntervalMs: ctx.ipmi.minCommandIntervalMs,
    });
    const { probe, close } = ipmiPowerProbe(ipmitool, {
      native: ctx.powerSync.native,
      timeoutMs: ctx.powerSync.probeTimeoutMs,
      log: ctx.log,
    });
    return {
      ...ipmiHardware(ipmitool, { retries: ctx.ipmi.retries }),
      powerProbe: probe,
      close,
    };
  },
};
