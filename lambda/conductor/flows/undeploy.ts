/**
 * The undeploy flow (deleted / undeploy; Ironic's tear down):
 *
 *   deleting: power off, [remove the boot files, boot device disk] → cleaning → available
 *
 * With automated cleaning on the ramdisk (`cleansWithRamdisk`, clean.ts), the cleaning
 * runs its steps: deleting: power off, [...] → cleaning: boot the ramdisk,
 * erase_devices_metadata [, erase_devices], power off, remove the boot files → available.
 *
 * Its end forgets the instance (`instance_info`, `instance_uuid`, the deploy callback).
 */
import type { Node } from '../../domain/nodes/node.ts';
import { type DeployInputs, RAMDISK_BOOT, RAMDISK_END, ramdiskFlow } from './boot-inputs.ts';
import { automatedCleanSteps, cleansWithRamdisk } from './clean.ts';
import { rendersBootFiles } from './deploy.ts';
import type { FlowHooks } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import type { FlowState, StepName } from './steps.ts';

export function planUndeploy(
  node: Node,
  base: Pick<FlowState, 'index' | 'user'>,
  inputs: DeployInputs | undefined,
  settings: ProvisionSettings,
  now: Date,
): FlowState {
  const teardown: StepName[] = rendersBootFiles(node)
    ? ['power_off', 'clean_boot', 'boot_device_disk']
    : ['power_off'];
  if (!inputs || !cleansWithRamdisk(node, settings))
    return { ...base, flow: 'undeploy', steps: teardown, finish: ['clean', 'done'] };
  return {
    ...base,
    flow: 'undeploy',
    steps: [...teardown, ...RAMDISK_BOOT, ...automatedCleanSteps(settings), ...RAMDISK_END],
    fireAt: { index: teardown.length, event: 'clean' },
    finish: ['done'],
    ...ramdiskFlow(node, inputs, settings, now),
  };
}

export const undeployHooks: FlowHooks = {
  failure: (step) => `Error while tearing down the node: ${step} failed`,
  // Ironic's tear down forgets the instance.
  finished: (node) => ({
    node: { ...node, instance_info: {}, instance_uuid: null, deploy_callback: null },
    ops: [],
  }),
};
