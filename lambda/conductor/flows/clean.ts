/**
 * The flows of manageable and available nodes (Ironic's `cleaning.py`, `verify.py`):
 *
 *   manage    verifying:  read power (the BMC answers)       → manageable | enroll
 *   provide   cleaning:   power off                           → available
 *   clean     cleaning:   the requested power/management steps → manageable
 */
import { invalid } from '../../domain/errors.ts';
import type { JsonObject } from '../../domain/nodes/node.ts';
import type { CleanStep } from '../../domain/provisioning/request.ts';
import type { FlowHooks } from './runner.ts';
import type { FlowState, StepName } from './steps.ts';

type Base = Pick<FlowState, 'index' | 'user'>;

export const planVerify = (base: Base): FlowState => ({
  ...base,
  flow: 'verify',
  steps: ['read_power'],
  finish: ['done'],
});

export const planProvide = (base: Base): FlowState => ({
  ...base,
  flow: 'clean',
  steps: ['power_off'],
  finish: ['done'],
});

/** Manual cleaning: the requested steps, each one Metalplane can run; ends with `manage` (Ironic), back to manageable. */
export function planManualClean(base: Base, cleanSteps: readonly CleanStep[]): FlowState {
  const steps: StepName[] = [];
  const stepArgs: JsonObject[] = [];
  for (const clean of cleanSteps) {
    const name = cleanStepName(clean.interface, clean.step, clean.args ?? {});
    if (!name) {
      throw invalid(
        `Clean step ${clean.interface}.${clean.step} is not supported by Metalplane (power: power_on, power_off, reboot; management: set_boot_device {boot_device: pxe|disk}).`,
      );
    }
    steps.push(name);
    stepArgs.push(clean.args ?? {});
  }
  return { ...base, flow: 'manual-clean', steps, finish: ['manage'], target: 'manageable', stepArgs };
}

export const verifyHooks: FlowHooks = { failure: (step) => `Failed to verify node: ${step} failed` };

export const cleanHooks: FlowHooks = { failure: (step) => `Clean step ${step} failed`, shows: 'clean_step' };

function cleanStepName(iface: string, step: string, args: JsonObject): StepName | undefined {
  if (iface === 'power') {
    if (step === 'power_on') return 'power_on';
    if (step === 'power_off') return 'power_off';
    if (step === 'reboot') return 'reboot';
  }
  if (iface === 'management' && step === 'set_boot_device') {
    if (args.boot_device === 'pxe') return 'boot_device_pxe';
    if (args.boot_device === 'disk') return 'boot_device_disk';
  }
  return undefined;
}
