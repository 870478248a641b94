/**
 * Rescue and unrescue (Ironic's `AgentRescue`), with Metalplane's ramdisk:
 *
 *   rescue    rescuing:   power off, boot files for the ramdisk (`rescue_kernel`/
 *                         `rescue_ramdisk`, else the deploy ones), boot device PXE, power
 *                         on, wait for its hello, set the `rescue` user's password → rescue
 *   unrescue  unrescuing: power off, boot files away, boot device disk, power on → active
 *
 * The password is hashed here (SHA-512 crypt, `$6$`, what /etc/shadow takes) and kept
 * only as `instance_info.hashed_rescue_password`, sealed at rest and masked as every
 * `*password*` value; the clear one is never stored. The rescue's end forgets the hash
 * (Ironic's `remove_node_rescue_password`). The `fake` rescue interface rescues and
 * unrescues at once (a no-op, as Ironic's); `no-rescue` is refused (400) before anything
 * changes, as Ironic refuses a driver without one.
 */
import { randomBytes } from 'node:crypto';
import { encrypt } from 'unixcrypt';
import { invalid } from '../../domain/errors.ts';
import type { Node } from '../../domain/nodes/node.ts';
import { type DeployInputs, RAMDISK_BOOT, ramdiskFlow } from './boot-inputs.ts';
import type { FlowHooks, Plan } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import type { FlowState, StepName } from './steps.ts';

/** Whether the node rescues on the Metalplane ramdisk (its rescue interface is `agent`). */
export const rescuesWithRamdisk = (node: Node): boolean => node.rescue_interface === 'agent';

export function refuseRescue(node: Node): never {
  throw invalid(`Driver ${node.driver} does not support rescue (disabled or not implemented).`);
}

/** SHA-512 crypt of the rescue password, with a random 16-character salt. */
export function hashRescuePassword(password: string): string {
  const salt = randomBytes(12).toString('base64').replace(/\+/g, '.').replace(/=/g, '');
  return encrypt(password, `$6$${salt}`);
}

type Base = Pick<FlowState, 'index' | 'user'>;

export function planRescue(
  node: Node,
  base: Base,
  password: string,
  inputs: DeployInputs | undefined,
  settings: ProvisionSettings,
  now: Date,
): Plan {
  // fake-hardware's `fake` rescue, as Ironic's: nothing to do, rescued at once.
  if (node.rescue_interface === 'fake')
    return { flow: { ...base, flow: 'rescue', steps: [], finish: ['done'] } };
  if (!rescuesWithRamdisk(node)) refuseRescue(node);
  if (!inputs) throw invalid(`Node ${node.uuid} has no rescue ramdisk to boot.`);
  // RAMDISK_BOOT reboots; from an instance that is running, off first, as Ironic does.
  const boot: StepName[] = ['power_off', ...RAMDISK_BOOT.filter((step) => step !== 'reboot')];
  boot.splice(boot.indexOf('ramdisk_wait'), 0, 'power_on');
  const hashed = hashRescuePassword(password);
  return {
    flow: {
      ...base,
      flow: 'rescue',
      steps: [...boot, 'set_rescue_password'],
      finish: ['done'],
      ...ramdiskFlow(node, inputs, settings, now),
    },
    onStart: () => ({ instance_info: { ...node.instance_info, hashed_rescue_password: hashed } }),
  };
}

export function planUnrescue(node: Node, base: Base): FlowState {
  if (node.rescue_interface === 'fake') return { ...base, flow: 'unrescue', steps: [], finish: ['done'] };
  if (!rescuesWithRamdisk(node)) refuseRescue(node);
  return {
    ...base,
    flow: 'unrescue',
    steps: ['power_off', 'clean_boot', 'boot_device_disk', 'power_on'],
    finish: ['done'],
  };
}

/** Forgets the rescue password's hash (it reached the ramdisk, or the rescue failed). */
function withoutPassword(node: Node): Node {
  const { hashed_rescue_password: _gone, ...rest } = node.instance_info;
  return { ...node, instance_info: rest };
}

export const rescueHooks: FlowHooks = {
  failure: (step) => `Failed to rescue node: ${step} failed`,
  finished: (node) => ({ node: withoutPassword(node), ops: [] }),
};

export const unrescueHooks: FlowHooks = {
  failure: (step) => `Failed to unrescue node: ${step} failed`,
};
