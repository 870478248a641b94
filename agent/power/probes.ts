/**
 * The power sync's probe per hardware type. `ipmi` reads through the native RMCP+ client
 * (`agent/ipmi/power-probe.ts`; ipmitool for BMCs it cannot talk to, or everywhere with
 * `power_sync.native: false`), inside the shared runner's per-BMC turn, so a sweep never
 * opens a session to a BMC while a power action is talking to it. `fake-hardware` reads
 * the simulated state, adopting the recorded state for a node it has not seen (as
 * Ironic's fake power interface answers what the database says).
 */
import { isPowerState } from '../../protocol/actions.ts';
import type { DriverEnvironment } from '../actions/registry.ts';
import type { IpmiTarget } from '../ipmi/ipmitool.ts';
import { Ipmitool } from '../ipmi/ipmitool.ts';
import { IpmitoolPowerProbe, NativePowerProbe, type PowerStatusProbe } from '../ipmi/power-probe.ts';
import type { Logger } from '../log.ts';
import type { Probe, SyncNode } from './sync.ts';

export interface SyncProbes {
  probeFor(driver: string): Probe | undefined;
  close(): void;
}

export function syncProbes(
  env: DriverEnvironment,
  enabledDrivers: readonly string[],
  options: { native: boolean; timeoutMs: number; log: Logger },
): SyncProbes {
  // The fallback runs inside the shared runner's turn for the BMC: it needs a runner of its own.
  const fallback = new IpmitoolPowerProbe(new Ipmitool({ timeoutMs: options.timeoutMs }));
  const ipmiProbe: PowerStatusProbe = options.native
    ? new NativePowerProbe({
        fallback,
        onFallback: (info, reason) =>
          options.log.info('power sync: BMC read with ipmitool instead', {
            bmc: `${info.ipmi_address}:${info.ipmi_port ?? 623}`,
            reason,
          }),
      })
    : fallback;
  const probes: Record<string, Probe> = {
    ipmi: (node: SyncNode, signal: AbortSignal) => {
      const target = node.driver_info as unknown as IpmiTarget;
      return env.ipmitool.exclusive(target, () => ipmiProbe.powerState(target, signal));
    },
    'fake-hardware': async (node: SyncNode) => {
      const recorded = isPowerState(node.power_state) ? node.power_state : null;
      return env.fake.node(node.uuid, recorded).power;
    },
  };
  return {
    probeFor: (driver) => (enabledDrivers.includes(driver) ? probes[driver] : undefined),
    close: () => {
      if (ipmiProbe instanceof NativePowerProbe) ipmiProbe.close();
    },
  };
}
