/**
 * Provisioning: Ironic's provision state machine (`domain/provisioning/`) driven through
 * the site's agent. A provision action is a conductor task (`conductor.ts`): the node is
 * locked and moved to the working state (verifying, cleaning, deploying, deleting ...)
 * in one conditional write with its history event, then the flow's steps run one agent
 * command at a time; the last one's success fires the machine's `done` (or `wait`, for
 * a deploy that waits for its booted system to call back), a failure fires `fail` with a
 * clear `last_error`. Each transition writes its history event in the same transaction.
 *
 * Flows (steps in order; which ones depend on the node's interfaces):
 *   manage    verifying:  read power (the BMC answers)                → manageable | enroll
 *   provide   cleaning:   power off                                    → available
 *   deploy    deploying:  [wait for the image at the site], boot files, boot device PXE,
 *                         reboot                     → wait call-back (callback) | active
 *   rebuild   as deploy, from active
 *   undeploy  deleting:   power off, remove boot files, boot device disk → cleaning → available
 *   adopt     adopting:   read power                                   → active
 *   inspect   inspecting: read power and boot device                   → manageable
 *   clean     cleaning:   the requested power/management steps         → manageable
 *   abort     clean wait / inspect wait / rescue wait                  → ... failed
 *   (a verb landing on a stable state — manage from available or a failure — is a
 *   transition alone)
 *
 * `fake` boot and deploy interfaces write no boot files and need no image (Ironic's fake
 * deploy): their deploy is a power-on. `ipxe`/`pxe` + `ramdisk` render boot files for the
 * node's PXE-enabled ports and wait for the callback.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  ACTIONS,
  type ActionArgs,
  type ActionName,
  actionSpec,
  type BootMode,
  type BootPrepareArgs,
  isPowerState,
  POWER_OFF,
  POWER_ON,
  REBOOT,
} from '../../protocol/actions.ts';
import { historyCreateOp } from '../adapters/dynamo/history-repository.ts';
import type { WriteOp } from '../adapters/dynamo/inventory-store.ts';
import type { VersionedNode } from '../adapters/dynamo/node-repository.ts';
import type { CommandRecord } from '../domain/commands/command.ts';
import { invalid } from '../domain/errors.ts';
import { errorRecord, transitionRecord } from '../domain/history/history.ts';
import type { JsonObject, Node, NodeTask } from '../domain/nodes/node.ts';
import { supportedBootDevices } from '../domain/power/power.ts';
import { advance, isStable, type ProvisionPosition } from '../domain/provisioning/machine.ts';
import type { ProvisionRequest } from '../domain/provisioning/request.ts';
import type { ProvisionEvent, ProvisionState, StableState } from '../domain/provisioning/states.ts';
import { ironicTimestamp } from '../domain/time.ts';
import type { Conductor, TaskResult, TaskStep } from './conductor.ts';
import { agentArgs, agentCommand } from './power.ts';

export const PROVISION_KIND = 'provision';
/** Ironic's `[conductor]deploy_callback_timeout` (seconds); env `METALPLANE_DEPLOY_CALLBACK_TIMEOUT`. */
export const DEPLOY_CALLBACK_TIMEOUT_SECONDS = 1800;
/** How long a deploy waits for its image to be ready at the site; env `METALPLANE_IMAGE_WAIT_TIMEOUT`. */
export const IMAGE_WAIT_TIMEOUT_SECONDS = 3600;

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
  /** Waiting for an image to be ready at the node's site: its UUID and since when. */
  readonly waitingImage?: { readonly uuid: string; readonly since: string };
  /** For a clean step: its args (e.g. the boot device). */
  readonly stepArgs?: readonly JsonObject[];
  /** The deploy's single-use callback token (its SHA-256 is on the node; internal, never shown). */
  readonly callbackToken?: string;
}

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

function envSeconds(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
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

export const callbackTimeoutSeconds = () =>
  envSeconds('METALPLANE_DEPLOY_CALLBACK_TIMEOUT', DEPLOY_CALLBACK_TIMEOUT_SECONDS);
export const imageWaitTimeoutSeconds = () =>
  envSeconds('METALPLANE_IMAGE_WAIT_TIMEOUT', IMAGE_WAIT_TIMEOUT_SECONDS);

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

function bootMode(node: Node): BootMode {
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
    case 'boot_device_disk':
      return supportedBootDevices(node).includes('disk')
        ? step('management.set_boot_device', { boot_device: 'disk', persistent: true })
        : undefined;
    case 'prepare_boot': {
      const boot = flow.boot ?? ({} as DeployBoot);
      return step('boot.prepare', {
        node_uuid: node.uuid,
        ...boot,
        ...(flow.callbackToken ? { callback_token: flow.callbackToken } : {}),
      });
    }
    case 'clean_boot':
      return step('boot.clean', { node_uuid: node.uuid });
  }
}

interface Started {
  readonly node: Node;
  readonly command?: CommandRecord;
}

export class Provisioner {
  readonly #conductor: Conductor;
  readonly #newId: () => string;
  /** Orders events written in one transaction (same timestamp); wraps harmlessly. */
  #sequence = 0;

  #nextSequence(): number {
    this.#sequence = (this.#sequence + 1) % 10_000;
    return this.#sequence;
  }

  constructor(conductor: Conductor, newId: () => string) {
    this.#conductor = conductor;
    this.#newId = newId;
    conductor.onTaskFinished(PROVISION_KIND, (node, task, command, at) =>
      this.#stepFinished(node, task, command, at),
    );
  }

  /**
   * Starts the request's action on the node (already checked by
   * `checkProvisionRequest`; `inputs` resolved by the caller for deploy/rebuild).
   */
  async start(
    found: VersionedNode,
    request: ProvisionRequest,
    user: string | null,
    inputs?: DeployInputs,
  ): Promise<Started> {
    const node = found.node;
    const token =
      request.action === 'deploy' || request.action === 'rebuild' ? this.#callbackToken(node) : undefined;
    const planned = this.#flowFor(node, request, user, inputs);
    const flow = planned && token ? { ...planned, callbackToken: token.value } : planned;
    const at = ironicTimestamp();
    if (flow === undefined) {
      // Nothing to run (abort of a wait): the transition alone.
      const changed = this.#fire(node, request.event, at, user, {});
      await this.#conductor.nodes.update(node, changed.node, found.version, changed.ops);
      return { node: changed.node };
    }
    const position = request.next;
    const history = transitionRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      from: node.provision_state as ProvisionState,
      event: request.event,
      to: position.provision_state,
      target: position.target_provision_state,
      user,
    });
    const ops = [historyCreateOp(node, history, this.#nextSequence())];
    const enter = (current: Node, state: FlowState): Node => ({
      ...this.#enterState(current, position, at, state, state.steps[state.index]),
      last_error: null,
      ...(request.action === 'inspect' ? { inspection_started_at: at, inspection_finished_at: null } : {}),
      ...(token ? { deploy_callback: { token_sha256: hash(token.value), issued_at: at } } : {}),
    });
    if (flow.waitingImage) {
      const locked = await this.#conductor.holdTask(
        found,
        PROVISION_KIND,
        { ...flow },
        (current) => enter(current, flow),
        ops,
      );
      return { node: locked };
    }
    const first = this.#nextCommand(node, flow);
    if (!first) {
      // No step applies to this node: finish at once.
      const entered = enter(node, flow);
      const finished = this.#finish({ ...entered, provision_state: position.provision_state }, flow, at, ops);
      await this.#conductor.nodes.update(node, finished.node, found.version, finished.ops ?? []);
      return { node: finished.node };
    }
    const { step, flow: running } = first;
    const { node: locked, command } = await this.#conductor.startTask(found, {
      ...step,
      taskArgs: { ...running } as unknown as Record<string, unknown>,
      requestedBy: user,
      apply: (current) => enter(current, running),
      ops,
    });
    return { node: locked, command };
  }

  /** The deploy's booted system called back (through the agent): wait call-back → active. */
  async callback(site: string, nodeUuid: string, token: string): Promise<'accepted' | 'refused'> {
    let outcome: 'accepted' | 'refused' = 'refused';
    await this.#conductor.nodes.modify(nodeUuid, (node) => {
      outcome = 'refused';
      const expected = (node.deploy_callback as { token_sha256?: string } | undefined)?.token_sha256;
      if (node.conductor_group !== site || !expected || hash(token) !== expected) return undefined;
      const at = ironicTimestamp();
      if (node.provision_state === 'deploying' && node.task?.kind === PROVISION_KIND) {
        // Called back before the reboot step's result came in (a fast boot, a slow
        // control plane): noted, and the deploy goes straight to active when it does.
        outcome = 'accepted';
        return {
          ...node,
          deploy_callback: { token_sha256: expected, issued_at: at, received_at: at },
        };
      }
      if (node.provision_state !== 'wait call-back') return undefined;
      outcome = 'accepted';
      // Ironic's path: wait call-back --resume--> deploying --done--> active.
      const resumed = this.#fire(node, 'resume', at, null, {});
      const done = this.#fire(resumed.node, 'done', at, null, {});
      return {
        node: { ...done.node, deploy_callback: null, deploy_step: {} },
        ops: [...resumed.ops, ...done.ops],
      };
    });
    return outcome;
  }

  /** Deploys waiting for the callback too long fail (Ironic's deploy callback timeout). */
  async timeoutCallbacks(nodes: readonly Node[], now: Date): Promise<number> {
    const limitMs = callbackTimeoutSeconds() * 1000;
    let failed = 0;
    for (const candidate of nodes) {
      if (candidate.provision_state !== 'wait call-back') continue;
      const since = Date.parse(candidate.provision_updated_at ?? candidate.updated_at ?? '');
      if (!Number.isFinite(since) || now.getTime() - since < limitMs) continue;
      const written = await this.#conductor.nodes.modify(candidate.uuid, (node) => {
        if (node.provision_state !== 'wait call-back') return undefined;
        const message = `Timeout reached while waiting for callback for node ${node.uuid}`;
        const changed = this.#fail(node, message, ironicTimestamp(now), 'fail');
        return { node: { ...changed.node, deploy_callback: null }, ops: changed.ops ?? [] };
      });
      if (written) failed++;
    }
    return failed;
  }

  /**
   * Resumes deploys held for their image: `ready(image, site)` says whether the site
   * holds it now. Past the wait timeout the deploy fails.
   */
  async resumeImageWaits(
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
      const overdue = now.getTime() - Date.parse(waiting.since) > imageWaitTimeoutSeconds() * 1000;
      if (!isReady && !overdue) continue;
      const done = await this.#conductor.resumeHeld(candidate.uuid, (node, task, at) => {
        const held = task.args as unknown as FlowState;
        if (!held.waitingImage) return undefined;
        if (!isReady) {
          return this.#fail(
            node,
            `Image ${held.waitingImage.uuid} was not ready at site ${node.conductor_group} within ${imageWaitTimeoutSeconds()} seconds.`,
            at,
          );
        }
        const { waitingImage: _done, ...rest } = held;
        return this.#continue(node, { ...rest, index: held.index + 1 }, at);
      });
      if (done) resumed++;
    }
    return resumed;
  }

  // --- flows -----------------------------------------------------------------------

  #flowFor(
    node: Node,
    request: ProvisionRequest,
    user: string | null,
    inputs?: DeployInputs,
  ): FlowState | undefined {
    // A verb that lands on a stable state (manage from available or a failure, abort)
    // is a transition alone: nothing for the agent to do.
    if (isStable(request.next.provision_state)) return undefined;
    const files = rendersBootFiles(node);
    const base = { index: 0, user };
    switch (request.action) {
      case 'manage':
        return { ...base, flow: 'verify', steps: ['read_power'], finish: ['done'] };
      case 'provide':
        return { ...base, flow: 'clean', steps: ['power_off'], finish: ['done'] };
      case 'adopt':
        return { ...base, flow: 'adopt', steps: ['read_power'], finish: ['done'] };
      case 'inspect':
        return { ...base, flow: 'inspect', steps: ['read_power', 'read_boot_device'], finish: ['done'] };
      case 'undeploy':
        return {
          ...base,
          flow: 'undeploy',
          steps: files ? ['power_off', 'clean_boot', 'boot_device_disk'] : ['power_off'],
          finish: ['clean', 'done'],
        };
      case 'deploy':
      case 'rebuild': {
        if (!files) return { ...base, flow: 'deploy', steps: ['power_on'], finish: ['done'] };
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
        return {
          ...base,
          flow: 'deploy',
          // A held deploy resumes at the step after `index`: index -1 means "before the first".
          ...(waiting ? { index: -1, waitingImage: { uuid: waiting, since: new Date().toISOString() } } : {}),
          steps: ['prepare_boot', 'boot_device_pxe', 'reboot'],
          // Without a callback the deploy ends once the node is powered on into its boot files.
          finish: usesCallback(node) ? ['wait'] : ['done'],
          boot,
        };
      }
      case 'clean': {
        const steps: StepName[] = [];
        const stepArgs: JsonObject[] = [];
        for (const clean of request.cleanSteps) {
          const name = cleanStepName(clean.interface, clean.step, clean.args ?? {});
          if (!name) {
            throw invalid(
              `Clean step ${clean.interface}.${clean.step} is not supported by Metalplane (power: power_on, power_off, reboot; management: set_boot_device {boot_device: pxe|disk}).`,
            );
          }
          steps.push(name);
          stepArgs.push(clean.args ?? {});
        }
        // Manual cleaning ends with `manage` (Ironic), back to manageable.
        return { ...base, flow: 'manual-clean', steps, finish: ['manage'], target: 'manageable', stepArgs };
      }
      case 'abort':
        return undefined;
      case 'rescue':
      case 'unrescue':
        throw invalid(`Driver ${node.driver} does not support rescue (disabled or not implemented).`);
    }
  }

  /** The first applicable command from `flow.index` on (steps that do nothing are skipped). */
  #nextCommand(node: Node, flow: FlowState): { step: TaskStep; flow: FlowState } | undefined {
    for (let index = Math.max(flow.index, 0); index < flow.steps.length; index++) {
      const at = { ...flow, index };
      const step = stepCommand(node, at, flow.steps[index] as StepName);
      if (step)
        return { step: { ...step, taskArgs: { ...at } as unknown as Record<string, unknown> }, flow: at };
    }
    return undefined;
  }

  #stepFinished(node: Node, task: NodeTask, command: CommandRecord, at: string): TaskResult {
    const flow = task.args as unknown as FlowState;
    let current = node;
    if (actionSpec(command.action)?.family === 'power') {
      const state = command.result?.power_state;
      if (isPowerState(state)) current = { ...current, power_state: state };
    }
    if (command.status !== 'succeeded') {
      const step = flow.steps[flow.index] ?? command.action;
      return this.#fail(
        current,
        `${stepFailure(flow.flow, step)}: ${command.error ?? `command ${command.status}`}`,
        at,
      );
    }
    return this.#continue(current, { ...flow, index: flow.index + 1 }, at);
  }

  /** Runs the flow from `flow.index`: the next command, or the finish. */
  #continue(node: Node, flow: FlowState, at: string): TaskResult {
    const next = this.#nextCommand(node, flow);
    if (next) {
      return {
        node: this.#enterState(
          node,
          {
            provision_state: node.provision_state as ProvisionState,
            target_provision_state: node.target_provision_state as StableState | null,
          },
          at,
          next.flow,
          next.flow.steps[next.flow.index],
        ),
        next: next.step,
      };
    }
    return this.#finish(node, flow, at, []);
  }

  #finish(node: Node, flow: FlowState, at: string, ops: WriteOp[]): TaskResult {
    let current: Node = { ...node, deploy_step: {}, clean_step: {} };
    const allOps = [...ops];
    for (const event of flow.finish) {
      const fired = this.#fire(current, event, at, flow.user, flow.target ? { target: flow.target } : {});
      current = fired.node;
      allOps.push(...fired.ops);
    }
    if (
      flow.flow === 'deploy' &&
      current.provision_state === 'wait call-back' &&
      current.deploy_callback?.received_at
    ) {
      for (const event of ['resume', 'done'] as const) {
        const fired = this.#fire(current, event, at, null, {});
        current = fired.node;
        allOps.push(...fired.ops);
      }
      current = { ...current, deploy_callback: null };
    }
    if (flow.flow === 'undeploy') {
      // Ironic's tear down forgets the instance.
      current = { ...current, instance_info: {}, instance_uuid: null, deploy_callback: null };
    }
    if (flow.flow === 'inspect') current = { ...current, inspection_finished_at: at };
    return { node: current, ops: allOps };
  }

  #fail(node: Node, message: string, at: string, event: ProvisionEvent = 'fail'): TaskResult {
    const recorded = errorRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      event: message,
      eventType: null,
    });
    const fired = this.#fire(node, event, at, null, {});
    return {
      node: { ...fired.node, last_error: recorded.lastError, deploy_step: {}, clean_step: {} },
      ops: [historyCreateOp(node, recorded.event, this.#nextSequence()), ...fired.ops],
    };
  }

  /** One machine event: the new position and its history event. */
  #fire(
    node: Node,
    event: ProvisionEvent,
    at: string,
    user: string | null,
    options: { target?: StableState },
  ): { node: Node; ops: WriteOp[] } {
    const from = node.provision_state as ProvisionState;
    const position = advance(
      { provision_state: from, target_provision_state: node.target_provision_state as StableState | null },
      event,
      options,
    );
    const record = transitionRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      from,
      event,
      to: position.provision_state,
      target: position.target_provision_state,
      user,
    });
    return {
      node: { ...node, ...position, provision_updated_at: at },
      ops: [historyCreateOp(node, record, this.#nextSequence())],
    };
  }

  #enterState(
    node: Node,
    position: ProvisionPosition,
    at: string,
    flow: FlowState,
    step: StepName | undefined,
  ): Node {
    const shown: JsonObject = step ? { interface: stepInterface(step), step, args: {}, priority: 0 } : {};
    const waiting: JsonObject | undefined = flow.waitingImage
      ? { interface: 'deploy', step: 'wait_for_image', args: { image: flow.waitingImage.uuid }, priority: 0 }
      : undefined;
    const isClean = flow.flow === 'clean' || flow.flow === 'manual-clean';
    return {
      ...node,
      ...position,
      provision_updated_at: at,
      ...(isClean ? { clean_step: shown } : {}),
      ...(flow.flow === 'deploy' ? { deploy_step: waiting ?? shown } : {}),
    };
  }

  #callbackToken(node: Node): { value: string } | undefined {
    return rendersBootFiles(node) && usesCallback(node)
      ? { value: randomBytes(24).toString('base64url') }
      : undefined;
  }
}

function stepInterface(step: StepName): string {
  if (step === 'prepare_boot' || step === 'clean_boot') return 'boot';
  if (step.startsWith('boot_device') || step === 'read_boot_device') return 'management';
  return 'power';
}

function stepFailure(flow: string, step: string): string {
  switch (flow) {
    case 'verify':
      return `Failed to verify node: ${step} failed`;
    case 'deploy':
      return `Deploy step ${step} failed`;
    case 'undeploy':
      return `Error while tearing down the node: ${step} failed`;
    case 'clean':
    case 'manual-clean':
      return `Clean step ${step} failed`;
    case 'inspect':
      return `Failed to inspect hardware: ${step} failed`;
    default:
      return `${flow}: ${step} failed`;
  }
}

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
