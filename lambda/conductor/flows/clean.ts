/**
 * The flows of manageable and available nodes (Ironic's `cleaning.py`, `verify.py`):
 *
 *   manage    verifying:  read power (the BMC answers)       → manageable | enroll
 *   provide   cleaning:   power off                           → available
 *             — or, automated cleaning with the ramdisk (`cleansWithRamdisk`): boot the
 *             Metalplane ramdisk, erase_devices_metadata [, erase_devices], power off,
 *             remove the boot files → available
 *   clean     cleaning:   the requested power/management steps → manageable; the deploy
 *             steps erase_devices_metadata / erase_devices run on the ramdisk, booted first
 *
 * Automated cleaning with the ramdisk: Ironic's automated cleaning runs the steps of the
 * node's deploy interface, which on an agent-based one (`direct`) are the ramdisk's erase
 * steps and on `fake` or `ramdisk` nothing. A node cleans on the Metalplane ramdisk when
 * its deploy interface is `direct`, or when its inspect interface is `agent` (it has
 * `driver_info.deploy_kernel`/`deploy_ramdisk` then too; `bootsRamdisk`): its automated
 * cleaning (`automated_clean`, null → `[conductor]automated_clean`, default true) runs on
 * the ramdisk; every other node keeps the power off.
 * `erase_devices_metadata` always runs (Ironic's priority 99); `erase_devices` (priority
 * 10 in ironic-python-agent, but hours per disk, and set to 0 by many operators) only
 * when `METALPLANE_CLEAN_ERASE_DEVICES` is on.
 * A site may set both for its nodes (`cleaning.automated_clean`, `cleaning.erase_devices`,
 * `withSiteCleaning`): node's `automated_clean` → site's → control plane's.
 */
import { invalid } from '../../domain/errors.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import type { CleanStep } from '../../domain/provisioning/request.ts';
import type { SiteCleaning } from '../../domain/sites/site.ts';
import { bootsRamdisk, type DeployInputs, RAMDISK_BOOT, RAMDISK_END, ramdiskFlow } from './boot-inputs.ts';
import type { FlowHooks } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import type { FlowState, StepName } from './steps.ts';

type Base = Pick<FlowState, 'index' | 'user'>;

export const planVerify = (base: Base): FlowState => ({
  ...base,
  flow: 'verify',
  steps: ['read_power'],
  finish: ['done'],
});

/**
 * The control plane's cleaning settings with a site's own (`Site.cleaning`, null fields
 * keep the control plane's): what `cleansWithRamdisk` and `automatedCleanSteps` read.
 */
export function withSiteCleaning(settings: ProvisionSettings, cleaning: SiteCleaning | null | undefined) {
  if (!cleaning) return settings;
  return {
    ...settings,
    automatedClean: cleaning.automated_clean ?? settings.automatedClean,
    eraseDevices: cleaning.erase_devices ?? settings.eraseDevices,
  };
}

/** Whether the node's automated cleaning runs on the Metalplane ramdisk (see above). */
export function cleansWithRamdisk(node: Node, settings: ProvisionSettings): boolean {
  return (node.automated_clean ?? settings.automatedClean) && bootsRamdisk(node);
}

/** The ramdisk's automated clean steps, in Ironic's priority order. */
export const automatedCleanSteps = (settings: ProvisionSettings): StepName[] =>
  settings.eraseDevices ? ['erase_devices_metadata', 'erase_devices'] : ['erase_devices_metadata'];

export function planProvide(
  node: Node,
  base: Base,
  inputs: DeployInputs | undefined,
  settings: ProvisionSettings,
  now: Date,
): FlowState {
  if (!inputs || !cleansWithRamdisk(node, settings))
    return { ...base, flow: 'clean', steps: ['power_off'], finish: ['done'] };
  return {
    ...base,
    flow: 'clean',
    steps: [...RAMDISK_BOOT, ...automatedCleanSteps(settings), ...RAMDISK_END],
    finish: ['done'],
    ...ramdiskFlow(node, inputs, settings, now),
  };
}

const RAMDISK_CLEAN_STEPS: readonly StepName[] = ['erase_devices_metadata', 'erase_devices'];

/** Whether manual cleaning with these steps needs the ramdisk (a deploy step among them). */
export const manualCleanNeedsRamdisk = (node: Node, cleanSteps: readonly CleanStep[]): boolean =>
  bootsRamdisk(node) && cleanSteps.some((clean) => clean.interface === 'deploy');

/**
 * Manual cleaning: the requested steps, each one Metalplane can run; ends with `manage`
 * (Ironic), back to manageable. With a deploy step (erase_devices_metadata,
 * erase_devices), the ramdisk is booted first and the node powered off after.
 */
export function planManualClean(
  node: Node,
  base: Base,
  cleanSteps: readonly CleanStep[],
  inputs: DeployInputs | undefined,
  settings: ProvisionSettings,
  now: Date,
): FlowState {
  const steps: StepName[] = [];
  const stepArgs: JsonObject[] = [];
  for (const clean of cleanSteps) {
    const name = cleanStepName(clean.interface, clean.step, clean.args ?? {});
    // The deploy steps run on the Metalplane ramdisk: only a node that boots it has them.
    if (!name || (RAMDISK_CLEAN_STEPS.includes(name) && !bootsRamdisk(node))) {
      throw invalid(
        `Clean step ${clean.interface}.${clean.step} is not supported by Metalplane (power: power_on, power_off, reboot; management: set_boot_device {boot_device: pxe|disk}; deploy: erase_devices_metadata, erase_devices, on a node whose deploy interface is direct or whose inspect interface is agent).`,
      );
    }
    steps.push(name);
    stepArgs.push(clean.args ?? {});
  }
  const manual = { ...base, flow: 'manual-clean', finish: ['manage'], target: 'manageable' } as const;
  if (!steps.some((step) => RAMDISK_CLEAN_STEPS.includes(step))) return { ...manual, steps, stepArgs };
  if (!inputs) throw invalid(`Node ${node.uuid} has no deploy ramdisk to boot.`);
  const pad = (list: readonly StepName[]) => list.map((): JsonObject => ({}));
  return {
    ...manual,
    steps: [...RAMDISK_BOOT, ...steps, ...RAMDISK_END],
    stepArgs: [...pad(RAMDISK_BOOT), ...stepArgs, ...pad(RAMDISK_END)],
    ...ramdiskFlow(node, inputs, settings, now),
  };
}

export const verifyHooks: FlowHooks = { failure: (step) => `Failed to verify node: ${step} failed` };

export const cleanHooks: FlowHooks = { failure: (step) => `Clean step ${step} failed`, shows: 'clean_step' };

function cleanStepName(iface: string, step: string, args: JsonObject): StepName | undefined {
  if (iface === 'power') {
    if (step === 'power_on') return 'power_on';
    if (step === 'power_off') return 'power_off';
    if (step === 'reboot') return 'reboot';
  }
  if (iface === 'deploy' && (step === 'erase_devices_metadata' || step === 'erase_devices')) return step;
  if (iface === 'management' && step === 'set_boot_device') {
    if (args.boot_device === 'pxe') return 'boot_device_pxe';
    if (args.boot_device === 'disk') return 'boot_device_disk';
  }
  return undefined;
}
