/**
 * The steps of the provision flows: their names (shown in `deploy_step`/`clean_step`),
 * what a running flow keeps on its node's task (`FlowState`), and the agent command of
 * each step (`stepCommand`).
 */
import {
  ACTIONS,
  type ActionArgs,
  type ActionName,
  type BootPrepareArgs,
  POWER_OFF,
  POWER_ON,
  REBOOT,
} from '../../../protocol/actions.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import { supportedBootDevices } from '../../domain/power/power.ts';
import type { ProvisionEvent, StableState } from '../../domain/provisioning/states.ts';
import type { TaskStep } from '../conductor.ts';
import { agentArgs, agentCommand } from '../power.ts';

/** The boot interface that has the BMC mount an ISO (no boot files, no PXE). */
export const VIRTUAL_MEDIA_BOOT = 'redfish-virtual-media';

/** How long an insert that builds an ISO may take (tools, the BMC's download and insert). */
const VMEDIA_BUILD_DEADLINE_SECONDS = 900;

/** The conductor task kind of every provision flow (its handler: `Provisioner`). */
export const PROVISION_KIND = 'provision';

/** The steps of the flows: their names (shown in `deploy_step`/`clean_step`). */
export const STEP_NAMES = [
  'power_on',
  'power_off',
  'reboot',
  'read_power',
  'read_boot_device',
  'prepare_boot',
  'clean_boot',
  'boot_device_pxe',
  'boot_device_disk',
  'boot_device_cdrom',
  // The ramdisk's boot device, once: the network (PXE), or the virtual CD (virtual media).
  'boot_device_ramdisk',
  // The Metalplane ramdisk (inspection, cleaning): boot it, wait for its hello, run its steps.
  'prepare_ramdisk',
  'ramdisk_wait',
  'ramdisk_inspect',
  'erase_devices_metadata',
  'erase_devices',
  // The direct deploy's writes and the rescue's password, on the ramdisk.
  'write_image',
  'write_configdrive',
  'set_rescue_password',
] as const;
/** One step of a flow: its name and (`stepCommand`) its command. */
export type StepName = (typeof STEP_NAMES)[number];

/** A deploy's boot inputs (`boot.prepare`'s args but the node and the callback). */
export type DeployBoot = Omit<BootPrepareArgs, 'driver' | 'node_uuid' | 'callback_token' | 'callback_url'>;

/** What a flow is doing, kept on the node's task. */
export interface FlowState {
  readonly flow: string;
  readonly steps: readonly StepName[];
  readonly index: number;
  /** Events to fire when the last step succeeds (e.g. deleting: clean, then done). */
  readonly finish: readonly ProvisionEvent[];
  /** Manual cleaning ends in manageable, not available. */
  readonly target?: StableState;
  readonly user: string | null;
  /** The deploy's boot inputs (image UUIDs, MACs ...), resolved when it started. */
  readonly boot?: DeployBoot;
  /**
   * Waiting for images to be ready at the node's site: the first one's UUID (shown), the
   * others it needs too (`also`), and since when.
   */
  readonly waitingImage?: {
    readonly uuid: string;
    readonly since: string;
    readonly also?: readonly string[];
  };
  /** The direct deploy's whole-disk image (a Metalplane image UUID, kind `disk`). */
  readonly diskImage?: string;
  /**
   * Ironic's step each step belongs to, shown in `deploy_step` (`{interface, step,
   * priority, args}`): the deploy steps resolved from the driver, templates and request.
   */
  readonly shown?: readonly JsonObject[];
  /** For a clean step: its args (e.g. the boot device). */
  readonly stepArgs?: readonly JsonObject[];
  /** The deploy's single-use callback token (its SHA-256 is on the node; internal, never shown). */
  readonly callbackToken?: string;
  /** How long `ramdisk_wait` waits for the ramdisk's hello (seconds), set when the flow is planned. */
  readonly ramdiskWaitSeconds?: number;
  /**
   * What to run when a step fails before the flow fails (the node powered off, the
   * ramdisk's boot files and token gone, as Ironic's error handlers clean up), and, while
   * it runs, the failure it ends with (`failing`, the `last_error`).
   */
  readonly cleanup?: readonly StepName[];
  readonly failing?: string;
  /** Fire this machine event before running the step at `index` (undeploy: deleting → cleaning). */
  readonly fireAt?: { readonly index: number; readonly event: ProvisionEvent };
}

/** Deadlines of the ramdisk's steps (seconds): an inventory is quick, erasing every disk is not. */
const RAMDISK_STEP_DEADLINES = {
  inspect: 600,
  erase_devices_metadata: 1800,
  erase_devices: 12 * 3600,
  // A large image over a slow provisioning network: hours, not minutes.
  write_image: 6 * 3600,
  write_configdrive: 900,
  set_rescue_password: 300,
} as const;

/** Ironic's root device hints of the node (`properties.root_device`), when it has some. */
function rootDevice(node: Node): { root_device: JsonObject } | Record<string, never> {
  const hints = node.properties.root_device;
  return typeof hints === 'object' && hints !== null && !Array.isArray(hints)
    ? { root_device: hints as JsonObject }
    : {};
}

/** Python's truthiness of `instance_info.configdrive` (absent, null, '' and {} are none). */
function hasConfigdrive(node: Node): boolean {
  const drive = node.instance_info.configdrive;
  if (typeof drive === 'string') return drive !== '';
  return typeof drive === 'object' && drive !== null && Object.keys(drive).length > 0;
}

/** The agent command of a step (undefined: the step does nothing for this node). */
export function stepCommand(node: Node, flow: FlowState, name: StepName): TaskStep | undefined {
  const step = <N extends ActionName>(action: N, args: ActionArgs<N>, deadlineSeconds = 180): TaskStep => ({
    ...agentCommand(action, {
      // Boot files need no BMC: the BMC's credentials go only to the power and management actions.
      ...(ACTIONS[action].bmc ? agentArgs(node) : { driver: node.driver }),
      ...args,
    }),
    taskArgs: { ...flow } as unknown as Record<string, unknown>,
    deadlineSeconds,
    kind: PROVISION_KIND,
  });
  // Virtual media: the catalog ISO, or an ISO the agent builds from the kernel and ramdisk
  // (with what boot files would put on the kernel command line).
  const insertVmedia = (
    boot: DeployBoot,
    extra: { callback_token?: string; metalplane_ramdisk?: true },
  ): TaskStep | undefined => {
    if (boot.iso) return step('management.insert_vmedia', { node_uuid: node.uuid, iso: boot.iso });
    if (!boot.kernel || !boot.ramdisk) return undefined;
    return step(
      'management.insert_vmedia',
      {
        node_uuid: node.uuid,
        kernel: boot.kernel,
        ramdisk: boot.ramdisk,
        boot_mode: boot.boot_mode,
        ...(boot.kernel_append_params ? { kernel_append_params: boot.kernel_append_params } : {}),
        ...extra,
      },
      // The agent packs the ISO first (each tool bounded at 120 s; a UEFI build runs several).
      VMEDIA_BUILD_DEADLINE_SECONDS,
    );
  };
  switch (name) {
    case 'power_on':
      return step('power.set', { target: POWER_ON, timeout: 60 });
    case 'power_off':
      return step('power.set', { target: POWER_OFF, timeout: 60 });
    case 'reboot':
      return step('power.set', { target: REBOOT, timeout: 60 });
    case 'read_power':
      return step('power.get', {});
    case 'read_boot_device':
      return step('management.get_boot_device', {});
    case 'boot_device_pxe':
      return supportedBootDevices(node).includes('pxe')
        ? step('management.set_boot_device', { boot_device: 'pxe', persistent: false })
        : undefined;
    case 'boot_device_cdrom':
      return supportedBootDevices(node).includes('cdrom')
        ? step('management.set_boot_device', { boot_device: 'cdrom', persistent: true })
        : undefined;
    case 'boot_device_disk':
      return supportedBootDevices(node).includes('disk')
        ? step('management.set_boot_device', { boot_device: 'disk', persistent: true })
        : undefined;
    case 'boot_device_ramdisk': {
      const device = node.boot_interface === VIRTUAL_MEDIA_BOOT ? 'cdrom' : 'pxe';
      return supportedBootDevices(node).includes(device)
        ? step('management.set_boot_device', { boot_device: device, persistent: false })
        : undefined;
    }
    case 'prepare_boot': {
      const boot = flow.boot ?? ({} as DeployBoot);
      const callback = flow.callbackToken ? { callback_token: flow.callbackToken } : {};
      if (node.boot_interface === VIRTUAL_MEDIA_BOOT) return insertVmedia(boot, callback);
      return step('boot.prepare', { node_uuid: node.uuid, ...boot, ...callback });
    }
    case 'clean_boot':
      return node.boot_interface === VIRTUAL_MEDIA_BOOT
        ? step('management.eject_vmedia', { node_uuid: node.uuid })
        : step('boot.clean', { node_uuid: node.uuid });
    case 'prepare_ramdisk': {
      const boot = flow.boot ?? ({} as DeployBoot);
      if (node.boot_interface === VIRTUAL_MEDIA_BOOT) return insertVmedia(boot, { metalplane_ramdisk: true });
      return step('boot.prepare', { node_uuid: node.uuid, ...boot, metalplane_ramdisk: true });
    }
    case 'ramdisk_wait':
      return step('ramdisk.wait', { node_uuid: node.uuid }, Math.ceil(flow.ramdiskWaitSeconds ?? 1800));
    case 'ramdisk_inspect':
      return step(
        'ramdisk.run_step',
        { node_uuid: node.uuid, step: 'inspect', step_args: {} },
        RAMDISK_STEP_DEADLINES.inspect,
      );
    case 'erase_devices_metadata':
    case 'erase_devices':
      return step(
        'ramdisk.run_step',
        { node_uuid: node.uuid, step: name, step_args: {} },
        RAMDISK_STEP_DEADLINES[name],
      );
    case 'write_image':
      if (!flow.diskImage) return undefined;
      return step(
        'ramdisk.write_image',
        { node_uuid: node.uuid, image_uuid: flow.diskImage, ...rootDevice(node) },
        RAMDISK_STEP_DEADLINES.write_image,
      );
    case 'write_configdrive':
      // Stored (sealed) on the node when the deploy started; opened for the agent alone.
      if (!hasConfigdrive(node)) return undefined;
      return step(
        'ramdisk.write_configdrive',
        {
          node_uuid: node.uuid,
          configdrive: node.instance_info.configdrive as string | JsonObject,
          ...rootDevice(node),
        },
        RAMDISK_STEP_DEADLINES.write_configdrive,
      );
    case 'set_rescue_password': {
      const hashed = node.instance_info.hashed_rescue_password;
      if (typeof hashed !== 'string') return undefined;
      return step(
        'ramdisk.run_step',
        { node_uuid: node.uuid, step: 'set_rescue_password', step_args: { hashed_password: hashed } },
        RAMDISK_STEP_DEADLINES.set_rescue_password,
      );
    }
  }
}

/** The interface a step belongs to (as Ironic shows it in `deploy_step`/`clean_step`). */
export function stepInterface(step: StepName): string {
  if (step === 'prepare_boot' || step === 'clean_boot' || step === 'prepare_ramdisk') return 'boot';
  if (
    step === 'ramdisk_wait' ||
    step === 'erase_devices_metadata' ||
    step === 'erase_devices' ||
    step === 'write_image' ||
    step === 'write_configdrive'
  )
    return 'deploy';
  if (step === 'set_rescue_password') return 'rescue';
  if (step === 'ramdisk_inspect') return 'inspect';
  if (step.startsWith('boot_device') || step === 'read_boot_device') return 'management';
  return 'power';
}
