/**
 * `redfish`: Ironic's Redfish hardware type, power and management spoken by the agent to
 * the BMC's Redfish service (`client.ts`), with Ironic's `driver_info` (`driver-info.ts`),
 * power (`power.ts`) and boot device (`management.ts`) semantics, and the shared power
 * interface's actions and waits (`../power-interface.ts`), exactly as `ipmi` uses them.
 *
 * One client per agent: the actions and the power sync's probe share its per-BMC turn,
 * session and circuit breaker, so a sweep never talks to a BMC while an action does, and a
 * dead BMC costs the sweep one timeout per cool-down, not one per node and sweep.
 */
import { SUPPORTED_BOOT_DEVICES } from '../../../protocol/actions.ts';
import { managementActions, type NodeHandle, type PowerControl, powerActions } from '../power-interface.ts';
import {
  ActionFailure,
  type DriverContext,
  type HardwareModule,
  type LoadedDriver,
  type PowerProbe,
  type VirtualMediaSource,
} from '../types.ts';
import { type CallOptions, RedfishClient, type RedfishClientOptions } from './client.ts';
import { parseRedfishDriverInfo, type RedfishTarget, redfishDriverInfoProblem } from './driver-info.ts';
import {
  ejectVirtualMedia,
  getBootMode,
  getIndicatorState,
  getIndicators,
  getSecureBoot,
  insertVirtualMedia,
  setBootMode,
  setIndicatorState,
  setSecureBoot,
} from './extras.ts';
import { getBootDevice, setBootDevice, supportedBootDevices } from './management.ts';
import { chassis, injectNmi, readPowerState } from './power.ts';

export { RedfishClient, type RedfishClientOptions } from './client.ts';
export { parseRedfishDriverInfo, type RedfishTarget, redfishDriverInfoProblem } from './driver-info.ts';
export { RedfishError, type RedfishErrorKind } from './errors.ts';
export { injectNmi, readPowerState } from './power.ts';
export { supportedBootDevices };

export interface RedfishDriverOptions {
  /** Pause between two reads while waiting for a power state (Ironic: 1 s). */
  readonly pollIntervalMs?: number;
  /** The power sync's probe timeout: each probe request is bounded by it (default: the client's). */
  readonly probeTimeoutMs?: number;
  /** Where virtual media come from (none: insert_vmedia fails as unsupported). */
  readonly media?: VirtualMediaSource;
}

/** The node's target, or an ActionFailure with Ironic's message. */
export function redfishTarget(node: Pick<NodeHandle, 'node' | 'driverInfo'>): RedfishTarget {
  const parsed = parseRedfishDriverInfo(node.driverInfo, node.node);
  if ('problem' in parsed) throw new ActionFailure(parsed.problem);
  return parsed.target;
}

export function redfishPowerControl(client: RedfishClient, options: RedfishDriverOptions = {}): PowerControl {
  const call = (node: NodeHandle): CallOptions => ({ signal: node.signal });
  return {
    // An action's validate sees only its args, not the node: the UUID shows at run time.
    validate: (info) => redfishDriverInfoProblem(info),
    powerState: async (node) => readPowerState(client, redfishTarget(node), call(node)),
    chassis: async (node, action) => chassis(client, redfishTarget(node), action, call(node)),
    bootDevice: async (node) => getBootDevice(client, redfishTarget(node), call(node)),
    setBootDevice: async (node, device, persistent) => {
      // The shared interface checks `supportedBootDevices` first; `safe` cannot get here.
      if (device === 'safe') throw new ActionFailure(`Invalid boot device ${device} specified.`);
      await setBootDevice(client, redfishTarget(node), device, persistent, call(node));
    },
    injectNmi: async (node) => injectNmi(client, redfishTarget(node), call(node)),
    readSupportedBootDevices: async (node) => supportedBootDevices(client, redfishTarget(node), call(node)),
    // Boot mode, secure boot, LEDs and virtual media (`extras.ts`).
    bootMode: async (node) => getBootMode(client, redfishTarget(node), call(node)),
    setBootMode: async (node, mode) => setBootMode(client, redfishTarget(node), mode, call(node)),
    secureBoot: async (node) => getSecureBoot(client, redfishTarget(node), call(node)),
    setSecureBoot: async (node, enabled) => setSecureBoot(client, redfishTarget(node), enabled, call(node)),
    indicators: async (node) => getIndicators(client, redfishTarget(node), call(node)),
    indicatorState: async (node, component, indicator) =>
      getIndicatorState(client, redfishTarget(node), component, indicator, call(node)),
    setIndicatorState: async (node, component, indicator, state) =>
      setIndicatorState(client, redfishTarget(node), component, indicator, state, call(node)),
    insertVirtualMedia: async (node, url) => insertVirtualMedia(client, redfishTarget(node), url, call(node)),
    ejectVirtualMedia: async (node) => ejectVirtualMedia(client, redfishTarget(node), call(node)),
    supportedBootDevices: SUPPORTED_BOOT_DEVICES.redfish,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
  };
}

/** The power sync's probe: one GET of the node's system, through the shared client. */
export function redfishPowerProbe(client: RedfishClient, options: RedfishDriverOptions = {}): PowerProbe {
  return async (node, signal) => {
    const parsed = parseRedfishDriverInfo(node.driver_info, node.uuid);
    if ('problem' in parsed) throw new ActionFailure(parsed.problem);
    return readPowerState(client, parsed.target, { signal, timeoutMs: options.probeTimeoutMs });
  };
}

/** The hardware type on one client: its interfaces, probe and clean-up (sessions deleted). */
export function redfishDriver(client: RedfishClient, options: RedfishDriverOptions = {}): LoadedDriver {
  const control = redfishPowerControl(client, options);
  return {
    name: 'redfish',
    interfaces: {
      power: { name: 'redfish', actions: powerActions(control) },
      management: { name: 'redfish', actions: managementActions(control, options.media) },
    },
    powerProbe: redfishPowerProbe(client, options),
    close: () => {
      void client.close();
    },
  };
}

/** The client options the agent's config gives (undefined: the client's defaults). */
export function redfishClientOptions(ctx: DriverContext): RedfishClientOptions {
  return {
    requestTimeoutMs: ctx.redfish?.requestTimeoutMs,
    minIntervalMs: ctx.redfish?.minRequestIntervalMs,
    circuitCooldownMs: ctx.redfish?.circuitCooldownMs,
    log: ctx.log,
  };
}

/** The `redfish` hardware type: one Redfish client per agent. */
export const redfishModule: HardwareModule = {
  name: 'redfish',
  create(ctx: DriverContext): LoadedDriver {
    return redfishDriver(new RedfishClient(redfishClientOptions(ctx)), {
      pollIntervalMs: ctx.redfish?.pollIntervalMs,
      probeTimeoutMs: ctx.powerSync.probeTimeoutMs,
      ...(ctx.virtualMedia ? { media: ctx.virtualMedia } : {}),
    });
  },
};
