/**
 * The deploy flow (deploy / active, rebuild; Ironic's `deployments.py`), its callback
 * and its waits:
 *
 *   deploying: [wait for the image at the site], boot files (`boot.prepare`), boot device
 *              PXE, reboot → wait call-back → (callback) → active; without boot files
 *              (`fake` boot or deploy) a power-on → active.
 *
 * - `callback`: the booted system called back through the agent (single-use token, its
 *   SHA-256 on the node): wait call-back → resume → deploying → done → active.
 * - `timeoutCallbacks`: past `callbackTimeoutSeconds` in wait call-back the deploy fails.
 * - `resumeImageWaits`: a deploy held for its image goes on once the site holds it, and
 *   fails past `imageWaitTimeoutSeconds`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { invalid } from '../../domain/errors.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import { resolveDeploySteps } from '../../domain/provisioning/deploy-steps.ts';
import type { ConfigDrive } from '../../domain/provisioning/request.ts';
import { ironicTimestamp } from '../../domain/time.ts';
import { bootMode, type DeployInputs, RAMDISK_BOOT, ramdiskFlow, waitFor } from './boot-inputs.ts';
import type { Changed, FlowHooks, FlowRunner, Plan } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import {
  type DeployBoot,
  type FlowState,
  PROVISION_KIND,
  type StepName,
  VIRTUAL_MEDIA_BOOT,
} from './steps.ts';

export { VIRTUAL_MEDIA_BOOT };

export const bootsVirtualMedia = (node: Node): boolean => node.boot_interface === VIRTUAL_MEDIA_BOOT;

/**
 * Whether the node's boot interface prepares the instance's boot (boot files, or virtual
 * media) and its deploy may wait for a callback.
 */
export function rendersBootFiles(node: Node): boolean {
  return (
    (node.boot_interface === 'ipxe' || node.boot_interface === 'pxe' || bootsVirtualMedia(node)) &&
    node.deploy_interface !== 'fake'
  );
}

/**
 * Whether the deployed system is expected to call back (the default with boot files):
 * `instance_info.deploy_callback` (or `driver_info.deploy_callback`) `false` turns it
 * off, and the deploy ends when the node has been powered on into its boot files — as
 * Ironic's ramdisk deploy does.
 */
export function usesCallback(node: Node): boolean {
  const flag = node.instance_info.deploy_callback ?? node.driver_info.deploy_callback;
  return !(flag === false || flag === 'false' || flag === 'False' || flag === '0');
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

/** What each of the direct deploy's steps runs (Ironic's steps, by interface → Metalplane's). */
const DIRECT_STEP_RUNS: Readonly<Record<string, Readonly<Record<string, readonly StepName[]>>>> = {
  deploy: {
    deploy: RAMDISK_BOOT,
    // The config drive goes with the image, as ironic-python-agent writes it in write_image.
    write_image: ['write_image', 'write_configdrive'],
    prepare_instance_boot: ['clean_boot', 'boot_device_disk'],
    // The ramdisk synced every write (fsync) before answering: a hard power off is safe.
    tear_down_agent: ['power_off'],
    switch_to_tenant_network: [],
    boot_instance: ['power_on'],
  },
  power: { power_on: ['power_on'], power_off: ['power_off'], reboot: ['reboot'] },
};

/**
 * The direct deploy: the deploy steps (`inputs.steps`, Ironic's order) each run as
 * Metalplane steps, and `deploy_step` shows Ironic's. The request's config drive is
 * stored in `instance_info.configdrive` (sealed at rest, as every `configdrive` value),
 * where `write_configdrive` reads it; a rebuild without one keeps the one there.
 */
function planDirectDeploy(
  node: Node,
  base: { index: number; user: string | null },
  inputs: DeployInputs,
  settings: ProvisionSettings,
  configdrive: ConfigDrive | null,
  rebuild: boolean,
  now: Date,
): Plan {
  if (!inputs.diskImage) throw invalid(`Node ${node.uuid} has no whole-disk image to write.`);
  const resolved =
    inputs.steps ?? resolveDeploySteps({ deployInterface: 'direct', requested: null, templates: [] });
  const steps: StepName[] = [];
  const shown: JsonObject[] = [];
  for (const ironic of resolved) {
    for (const name of DIRECT_STEP_RUNS[ironic.interface]?.[ironic.step] ?? []) {
      steps.push(name);
      shown.push({ ...ironic });
    }
  }
  const flow: FlowState = {
    ...base,
    flow: 'deploy',
    steps,
    shown,
    finish: ['done'],
    diskImage: inputs.diskImage,
    ...ramdiskFlow(node, inputs, settings, now),
  };
  const { configdrive: _old, ...withoutDrive } = node.instance_info;
  const drive =
    typeof configdrive === 'object' && configdrive !== null ? withNodeName(node, configdrive) : configdrive;
  const instanceInfo = drive
    ? { ...withoutDrive, configdrive: drive as JsonObject[string] }
    : rebuild
      ? node.instance_info
      : withoutDrive;
  return { flow, onStart: () => ({ instance_info: instanceInfo, deploy_callback: null }) };
}

/**
 * The JSON form's `meta_data.name`, when not given, is the node's name, as Ironic's
 * conductor fills it (the agent, which builds the ISO, fills `uuid`: it knows no name).
 */
function withNodeName(node: Node, drive: Exclude<ConfigDrive, string>): Exclude<ConfigDrive, string> {
  if (!node.name || (drive.meta_data && 'name' in drive.meta_data)) return drive;
  return { ...drive, meta_data: { ...(drive.meta_data ?? {}), name: node.name } };
}

/** Deploy or rebuild: the flow, with its callback token when the booted system calls back. */
export function planDeploy(
  node: Node,
  base: { index: number; user: string | null },
  inputs: DeployInputs | undefined,
  now: Date,
  direct?: { settings: ProvisionSettings; configdrive: ConfigDrive | null; rebuild: boolean },
): Plan {
  if (node.deploy_interface === 'direct') {
    if (!inputs || !direct) throw invalid(`Node ${node.uuid} has no deploy ramdisk to boot.`);
    return planDirectDeploy(node, base, inputs, direct.settings, direct.configdrive, direct.rebuild, now);
  }
  if (!rendersBootFiles(node))
    return { flow: { ...base, flow: 'deploy', steps: ['power_on'], finish: ['done'] } };
  if (!inputs?.images)
    throw invalid(`Node ${node.uuid} has no image to boot: set instance_info.image_source.`);
  const boot: DeployBoot = {
    macs: [...inputs.macs],
    boot_mode: bootMode(node),
    ...inputs.images,
    ...(typeof node.instance_info.kernel_append_params === 'string'
      ? { kernel_append_params: node.instance_info.kernel_append_params }
      : typeof node.driver_info.kernel_append_params === 'string'
        ? { kernel_append_params: node.driver_info.kernel_append_params }
        : {}),
  };
  const waiting = inputs.needs[0];
  const flow: FlowState = {
    ...base,
    flow: 'deploy',
    // A held deploy resumes at the step after `index`: index -1 means "before the first".
    ...(waiting ? { index: -1, waitingImage: waitFor(inputs.needs, now) } : {}),
    // Virtual media: the ISO inserted, the CD the boot device (kept: the instance runs from it).
    steps: bootsVirtualMedia(node)
      ? ['prepare_boot', 'boot_device_cdrom', 'reboot']
      : ['prepare_boot', 'boot_device_pxe', 'reboot'],
    // Without a callback the deploy ends once the node is powered on into its boot files.
    finish: usesCallback(node) ? ['wait'] : ['done'],
    boot,
  };
  if (!usesCallback(node)) return { flow };
  const token = randomBytes(24).toString('base64url');
  return {
    flow: { ...flow, callbackToken: token },
    onStart: (at) => ({ deploy_callback: { token_sha256: hash(token), issued_at: at } }),
  };
}

export const deployHooks: FlowHooks = {
  failure: (step) => `Deploy step ${step} failed`,
  shows: 'deploy_step',
  finished(node: Node, _flow: FlowState, at: string, run: FlowRunner): Changed {
    // Called back before the reboot step's result came in: straight on to active.
    if (node.provision_state !== 'wait call-back' || !node.deploy_callback?.received_at)
      return { node, ops: [] };
    let current = node;
    const ops: Changed['ops'] = [];
    for (const event of ['resume', 'done'] as const) {
      const fired = run.fire(current, event, at, null, {});
      current = fired.node;
      ops.push(...fired.ops);
    }
    return { node: { ...current, deploy_callback: null }, ops };
  },
};

/** The deploy's booted system called back (through the agent): wait call-back → active. */
export async function callback(
  run: FlowRunner,
  site: string,
  nodeUuid: string,
  token: string,
): Promise<'accepted' | 'refused'> {
  let outcome: 'accepted' | 'refused' = 'refused';
  await run.conductor.changeNode(nodeUuid, (node) => {
    outcome = 'refused';
    const expected = (node.deploy_callback as { token_sha256?: string } | undefined)?.token_sha256;
    if (node.conductor_group !== site || !expected || hash(token) !== expected) return undefined;
    const at = ironicTimestamp(run.now());
    if (node.provision_state === 'deploying' && node.task?.kind === PROVISION_KIND) {
      // Called back before the reboot step's result came in (a fast boot, a slow
      // control plane): noted, and the deploy goes straight to active when it does.
      outcome = 'accepted';
      return { ...node, deploy_callback: { token_sha256: expected, issued_at: at, received_at: at } };
    }
    if (node.provision_state !== 'wait call-back') return undefined;
    outcome = 'accepted';
    // Ironic's path: wait call-back --resume--> deploying --done--> active.
    const resumed = run.fire(node, 'resume', at, null, {});
    const done = run.fire(resumed.node, 'done', at, null, {});
    return {
      node: { ...done.node, deploy_callback: null, deploy_step: {} },
      ops: [...resumed.ops, ...done.ops],
    };
  });
  return outcome;
}

/** Deploys waiting for the callback too long fail (Ironic's deploy callback timeout). */
export async function timeoutCallbacks(
  run: FlowRunner,
  settings: ProvisionSettings,
  nodes: readonly Node[],
  now: Date,
): Promise<number> {
  const limitMs = settings.callbackTimeoutSeconds * 1000;
  let failed = 0;
  for (const candidate of nodes) {
    if (candidate.provision_state !== 'wait call-back') continue;
    const since = Date.parse(candidate.provision_updated_at ?? candidate.updated_at ?? '');
    if (!Number.isFinite(since) || now.getTime() - since < limitMs) continue;
    const written = await run.conductor.changeNode(candidate.uuid, (node) => {
      if (node.provision_state !== 'wait call-back') return undefined;
      const message = `Timeout reached while waiting for callback for node ${node.uuid}`;
      const changed = run.fail(node, message, ironicTimestamp(now), 'fail');
      return { node: { ...changed.node, deploy_callback: null }, ops: changed.ops };
    });
    if (written) failed++;
  }
  return failed;
}

/**
 * Resumes deploys held for their image: `ready(image, site)` says whether the site
 * holds it now. Past the wait timeout the deploy fails.
 */
export async function resumeImageWaits(
  run: FlowRunner,
  settings: ProvisionSettings,
  nodes: readonly Node[],
  ready: (image: string, site: string) => Promise<boolean>,
  now: Date,
): Promise<number> {
  let resumed = 0;
  for (const candidate of nodes) {
    const flow = candidate.task?.command === '' ? (candidate.task.args as unknown as FlowState) : undefined;
    const waiting = flow?.waitingImage;
    if (!flow || !waiting) continue;
    let notReady: string | undefined;
    for (const image of [waiting.uuid, ...(waiting.also ?? [])]) {
      if (!(await ready(image, candidate.conductor_group))) {
        notReady = image;
        break;
      }
    }
    const isReady = notReady === undefined;
    const overdue = now.getTime() - Date.parse(waiting.since) > settings.imageWaitTimeoutSeconds * 1000;
    if (!isReady && !overdue) continue;
    const done = await run.conductor.resumeHeld(candidate.uuid, (node, task, at) => {
      const held = task.args as unknown as FlowState;
      if (!held.waitingImage) return undefined;
      if (!isReady) {
        return run.fail(
          node,
          `Image ${notReady ?? held.waitingImage.uuid} was not ready at site ${node.conductor_group} within ${settings.imageWaitTimeoutSeconds} seconds.`,
          at,
        );
      }
      const { waitingImage: _done, ...rest } = held;
      return run.continue(node, { ...rest, index: held.index + 1 }, at);
    });
    if (done) resumed++;
  }
  return resumed;
}

export { bootMode, type DeployInputs } from './boot-inputs.ts';
