/**
 * What the flows that boot a node share before they start: the inputs read from outside
 * the node (`DeployInputs`: MACs, images, what to wait for), the node's boot mode, and
 * the steps that boot Metalplane's ramdisk and end its work (inspection, cleaning, the
 * direct deploy, rescue).
 */
import type { BootMode } from '../../../protocol/actions.ts';
import { invalid } from '../../domain/errors.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import type { IronicDeployStep } from '../../domain/provisioning/deploy-steps.ts';
import type { ProvisionSettings } from './settings.ts';
import type { FlowState, StepName } from './steps.ts';

/** What the deploy flow needs of the outside world (images, ports), read before it starts. */
export interface DeployInputs {
  /** PXE-enabled MACs of the node's ports. */
  readonly macs: readonly string[];
  /** The image files to boot, as UUIDs of Metalplane images: kernel+ramdisk or iso. */
  readonly images: { kernel: string; ramdisk: string } | { iso: string } | null;
  /** The images the site must hold before the boot files can be written. */
  readonly needs: readonly string[];
  /** The direct deploy: the whole-disk image the ramdisk writes (`images` is then the ramdisk). */
  readonly diskImage?: string;
  /** The deploy steps, resolved from the driver, the deploy templates and the request. */
  readonly steps?: readonly IronicDeployStep[];
}

/** The node's boot mode: its instance's, its capabilities', or its own (bios by default). */
export function bootMode(node: Node): BootMode {
  const fromInstance = node.instance_info.deploy_boot_mode ?? node.instance_info.boot_mode;
  if (fromInstance === 'uefi' || fromInstance === 'bios') return fromInstance;
  const caps = node.properties.capabilities;
  const text = typeof caps === 'string' ? caps : '';
  const match = /(?:^|,)boot_mode:(uefi|bios)(?:,|$)/.exec(text);
  if (match) return match[1] as BootMode;
  if (typeof caps === 'object' && caps !== null && !Array.isArray(caps)) {
    const mode = (caps as JsonObject).boot_mode;
    if (mode === 'uefi' || mode === 'bios') return mode;
  }
  return node.boot_mode === 'uefi' ? 'uefi' : 'bios';
}

/** Whether the node is inspected in band, by the Metalplane ramdisk (Ironic's `agent` inspect interface). */
export const inspectsInBand = (node: Node): boolean => node.inspect_interface === 'agent';

/**
 * The steps that boot the Metalplane ramdisk and wait for it (inspection, cleaning): its
 * boot files, or (virtual media) an ISO built from it, inserted; boot once from it.
 */
export const RAMDISK_BOOT: readonly StepName[] = [
  'prepare_ramdisk',
  'boot_device_ramdisk',
  'reboot',
  'ramdisk_wait',
];
/** The steps after the ramdisk's work: the node off, its boot files removed. */
export const RAMDISK_END: readonly StepName[] = ['power_off', 'clean_boot'];

/**
 * What a flow booting the ramdisk keeps: its boot inputs, its wait, and (the images not
 * at the site yet) the image it waits for first, as a deploy does.
 */
export function ramdiskFlow(
  node: Node,
  inputs: DeployInputs,
  settings: ProvisionSettings,
  now: Date,
): Pick<FlowState, 'boot' | 'ramdiskWaitSeconds' | 'cleanup'> &
  Partial<Pick<FlowState, 'waitingImage' | 'index'>> {
  const images = inputs.images;
  if (!images || !('kernel' in images)) throw invalid(`Node ${node.uuid} has no deploy ramdisk to boot.`);
  const waiting = inputs.needs[0];
  return {
    boot: {
      macs: [...inputs.macs],
      boot_mode: bootMode(node),
      kernel: images.kernel,
      ramdisk: images.ramdisk,
    },
    ramdiskWaitSeconds: settings.ramdiskWaitTimeoutSeconds,
    // Should a step fail, the node is not left running the ramdisk, nor its token valid.
    cleanup: RAMDISK_END,
    // A held flow resumes at the step after `index`: index -1 means "before the first".
    ...(waiting ? { index: -1, waitingImage: waitFor(inputs.needs, now) } : {}),
  };
}

/** What a flow holding for images keeps: the first it waits for, the others, since when. */
export function waitFor(needs: readonly string[], now: Date): NonNullable<FlowState['waitingImage']> {
  const [first, ...also] = needs;
  return { uuid: first as string, since: now.toISOString(), ...(also.length > 0 ? { also } : {}) };
}

/**
 * Whether the node boots Metalplane's ramdisk to be worked on: its deploy interface is
 * `direct` (Ironic's agent deploy: the ramdisk writes the image, and its cleaning runs
 * the ramdisk's erase steps), or its inspection is in band.
 */
export const bootsRamdisk = (node: Node): boolean =>
  node.deploy_interface === 'direct' || inspectsInBand(node);
