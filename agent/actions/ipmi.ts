/**
 * `ipmi`: Ironic's IPMI hardware type, power and management through `ipmitool -I lanplus`
 * (`agent/ipmi/ipmitool.ts`: the password in a 0600 file, a hard timeout, one call at a
 * time per BMC with a minimum interval). Transient failures (a busy BMC, a lost reply)
 * are retried a few times; refused credentials and silence are not — retrying those
 * only costs more time before the operator learns what is wrong.
 */

import { SUPPORTED_BOOT_DEVICES } from '../../protocol/actions.ts';
import {
  connectionArgs,
  getBootDevice,
  type IpmiError,
  type IpmiTarget,
  Ipmitool,
  powerStatus,
  setBootDevice,
} from '../ipmi/ipmitool.ts';
import { managementActions, type NodeHandle, type PowerControl, powerActions } from './power.ts';
import { ActionFailure, type Driver } from './types.ts';

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
