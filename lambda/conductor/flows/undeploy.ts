/**
 * The undeploy flow (deleted / undeploy; Ironic's tear down):
 *
 *   deleting: power off, [remove the boot files, boot device disk] → cleaning → available
 *
 * Its end forgets the instance (`instance_info`, `instance_uuid`, the deploy callback).
 */
import type { Node } from '../../domain/nodes/node.ts';
import { rendersBootFiles } from './deploy.ts';
import type { FlowHooks } from './runner.ts';
import type { FlowState } from './steps.ts';

export function planUndeploy(node: Node, base: Pick<FlowState, 'index' | 'user'>): FlowState {
  return {
    ...base,
    flow: 'undeploy',
    steps: rendersBootFiles(node) ? ['power_off', 'clean_boot', 'boot_device_disk'] : ['power_off'],
    finish: ['clean', 'done'],
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
