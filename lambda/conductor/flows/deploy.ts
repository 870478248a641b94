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
import type { BootMode } from '../../../protocol/actions.ts';
import { invalid } from '../../domain/errors.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import { ironicTimestamp } from '../../domain/time.ts';
import type { Changed, FlowHooks, FlowRunner, Plan } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import { type DeployBoot, type FlowState, PROVISION_KIND } from './steps.ts';

/** What the deploy flow needs of the outside world (images, ports), read before it starts. */
export interface DeployInputs {
  /** PXE-enabled MACs of the node's ports. */
  readonly macs: readonly string[];
  /** The image files to boot, as UUIDs of Metalplane images: kernel+ramdisk or iso. */
  readonly images: { kernel: string; ramdisk: string } | { iso: string } | null;
  /** The images the site must hold before the boot files can be written. */
  readonly needs: readonly string[];
}

/** Whether the node's boot interface writes boot files (and its deploy waits for a callback). */
export function rendersBootFiles(node: Node): boolean {
  return (
    (node.boot_interface === 'ipxe' || node.boot_interface === 'pxe') && node.deploy_interface !== 'fake'
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

/** Deploy or rebuild: the flow, with its callback token when the booted system calls back. */
export function planDeploy(
  node: Node,
  base: { index: number; user: string | null },
  inputs: DeployInputs | undefined,
  now: Date,
): Plan {
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
    ...(waiting ? { index: -1, waitingImage: { uuid: waiting, since: now.toISOString() } } : {}),
    steps: ['prepare_boot', 'boot_device_pxe', 'reboot'],
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
    const isReady = await ready(waiting.uuid, candidate.conductor_group);
    const overdue = now.getTime() - Date.parse(waiting.since) > settings.imageWaitTimeoutSeconds * 1000;
    if (!isReady && !overdue) continue;
    const done = await run.conductor.resumeHeld(candidate.uuid, (node, task, at) => {
      const held = task.args as unknown as FlowState;
      if (!held.waitingImage) return undefined;
      if (!isReady) {
        return run.fail(
          node,
          `Image ${held.waitingImage.uuid} was not ready at site ${node.conductor_group} within ${settings.imageWaitTimeoutSeconds} seconds.`,
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
