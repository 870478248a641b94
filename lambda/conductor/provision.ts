/**
 * Provisioning: Ironic's provision state machine (`domain/provisioning/`) driven through
 * the site's agent. A provision action is a conductor task (`conductor.ts`): the node is
 * locked and moved to the working state (verifying, cleaning, deploying, deleting ...)
 * in one conditional write with its history event, then the flow's steps run one agent
 * command at a time; the last one's success fires the machine's `done` (or `wait`, for
 * a deploy that waits for its booted system to call back), a failure fires `fail` with a
 * clear `last_error`. Each transition writes its history event in the same transaction.
 *
 * `Provisioner` is the entry: it plans the request's flow and starts it; the flows live
 * in `flows/`, one file per family (as Ironic's conductor):
 *   flows/clean.ts     manage (verifying), provide (cleaning), clean (manual cleaning)
 *   flows/deploy.ts    deploy / rebuild (ramdisk: boot the instance's image; direct: the
 *                      ramdisk writes it to disk, in Ironic's deploy step order), the
 *                      deploy callback, image waits and timeouts
 *   flows/undeploy.ts  undeploy (deleting → cleaning → available)
 *   flows/inspect.ts   inspect (out of band, or in band on the Metalplane ramdisk, whose
 *                      boot the cleaning flows share);  flows/adopt.ts  adopt
 *   flows/rescue.ts    rescue / unrescue on the Metalplane ramdisk (agent rescue interface)
 *   flows/boot-inputs.ts  the inputs read before a flow starts, the ramdisk's boot steps
 *   flows/runner.ts    what they share (events, history, next step, finish, failure)
 *   flows/steps.ts     the steps and their agent commands;  flows/settings.ts  timeouts
 * An abort, or a verb landing on a stable state (manage from available or a failure), is
 * a transition alone.
 */
import type { VersionedNode } from '../adapters/dynamo/node-repository.ts';
import type { CommandRecord } from '../domain/commands/command.ts';
import type { Node } from '../domain/nodes/node.ts';
import { isStable } from '../domain/provisioning/machine.ts';
import type { ProvisionRequest } from '../domain/provisioning/request.ts';
import type { SiteCleaning } from '../domain/sites/site.ts';
import { ironicTimestamp } from '../domain/time.ts';
import type { Conductor } from './conductor.ts';
import { planAdopt } from './flows/adopt.ts';
import {
  cleanHooks,
  planManualClean,
  planProvide,
  planVerify,
  verifyHooks,
  withSiteCleaning,
} from './flows/clean.ts';
import {
  callback,
  type DeployInputs,
  deployHooks,
  planDeploy,
  resumeImageWaits,
  timeoutCallbacks,
} from './flows/deploy.ts';
import { type InspectionStores, inspectHooks, planInspect } from './flows/inspect.ts';
import { planRescue, planUnrescue, rescueHooks, unrescueHooks } from './flows/rescue.ts';
import { FlowRunner, type Plan } from './flows/runner.ts';
import { type ProvisionSettings, provisionSettingsFromEnv } from './flows/settings.ts';
import { type FlowState, PROVISION_KIND } from './flows/steps.ts';
import { planUndeploy, undeployHooks } from './flows/undeploy.ts';

export { bootsRamdisk, inspectsInBand } from './flows/boot-inputs.ts';
export { cleansWithRamdisk, manualCleanNeedsRamdisk, withSiteCleaning } from './flows/clean.ts';
export { type DeployInputs, rendersBootFiles, usesCallback } from './flows/deploy.ts';
export type { InspectionStores } from './flows/inspect.ts';
export {
  DEPLOY_CALLBACK_TIMEOUT_SECONDS,
  IMAGE_WAIT_TIMEOUT_SECONDS,
  type ProvisionSettings,
  provisionSettingsFromEnv,
} from './flows/settings.ts';
export {
  type DeployBoot,
  type FlowState,
  PROVISION_KIND,
  STEP_NAMES,
  type StepName,
  stepCommand,
} from './flows/steps.ts';

/** Each flow's own part, by `FlowState.flow`. */
const flowHooks = (now: () => Date, newId: () => string, stores?: InspectionStores) => ({
  verify: verifyHooks,
  clean: cleanHooks,
  'manual-clean': cleanHooks,
  deploy: deployHooks,
  undeploy: undeployHooks,
  inspect: inspectHooks(stores, now, newId),
  rescue: rescueHooks,
  unrescue: unrescueHooks,
  // adopt: the default failure message (`adopt: <step> failed`), nothing more.
});

interface Started {
  readonly node: Node;
  readonly command?: CommandRecord;
}

export class Provisioner {
  readonly #conductor: Conductor;
  readonly #run: FlowRunner;
  readonly #settings: ProvisionSettings | undefined;

  /**
   * `settings`: the flows' timeouts. The entry points' composition root passes them, read
   * once with the configuration; without them (a control plane built on the live
   * environment's configuration, as the tests and the local stack build it) they are read
   * at each tick call (test/integration/provision.test.ts changes
   * `METALPLANE_DEPLOY_CALLBACK_TIMEOUT` after its stack is built).
   */
  constructor(
    conductor: Conductor,
    newId: () => string,
    settings?: ProvisionSettings,
    stores?: InspectionStores,
  ) {
    this.#conductor = conductor;
    this.#run = new FlowRunner(
      conductor,
      newId,
      flowHooks(() => conductor.now(), newId, stores),
    );
    this.#settings = settings;
    conductor.onTaskFinished(
      PROVISION_KIND,
      (node, task, command, at, prepared) => this.#run.stepFinished(node, task, command, at, prepared),
      this.#run.preparer(),
    );
  }

  /** The flows' settings now (timeouts, automated cleaning). */
  settings(): ProvisionSettings {
    return this.#currentSettings();
  }

  /**
   * Starts the request's action on the node (already checked by
   * `checkProvisionRequest`; `inputs` resolved by the caller for deploy/rebuild;
   * `siteCleaning`: the node's site's cleaning setting, read by the caller for provide
   * and undeploy).
   */
  async start(
    found: VersionedNode,
    request: ProvisionRequest,
    user: string | null,
    inputs?: DeployInputs,
    siteCleaning?: SiteCleaning | null,
  ): Promise<Started> {
    const node = found.node;
    const now = this.#conductor.now();
    const settings = withSiteCleaning(this.#currentSettings(), siteCleaning);
    const plan = this.#plan(node, request, user, inputs, settings, now);
    const at = ironicTimestamp(now);
    const run = this.#run;
    if (plan === undefined) {
      // Nothing to run (abort of a wait): the transition alone.
      const changed = run.fire(node, request.event, at, user, {});
      await this.#conductor.writeNode(found, changed.node, changed.ops);
      return { node: changed.node };
    }
    const { flow } = plan;
    const position = request.next;
    const ops = [run.entered(node, request.event, position, at, user)];
    const enter = (current: Node, state: FlowState): Node => ({
      ...run.enterState(current, position, at, state, state.steps[state.index]),
      last_error: null,
      ...plan.onStart?.(at),
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
    const first = run.nextCommand(node, flow);
    if (!first) {
      // No step applies to this node: finish at once.
      const entered = enter(node, flow);
      const finished = run.finish({ ...entered, provision_state: position.provision_state }, flow, at, ops);
      await this.#conductor.writeNode(found, finished.node, finished.ops);
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
    return callback(this.#run, site, nodeUuid, token);
  }

  /** Deploys waiting for the callback too long fail (Ironic's deploy callback timeout). */
  async timeoutCallbacks(nodes: readonly Node[], now: Date = this.#conductor.now()): Promise<number> {
    return timeoutCallbacks(this.#run, this.#currentSettings(), nodes, now);
  }

  /**
   * Resumes deploys held for their image: `ready(image, site)` says whether the site
   * holds it now. Past the wait timeout the deploy fails.
   */
  async resumeImageWaits(
    nodes: readonly Node[],
    ready: (image: string, site: string) => Promise<boolean>,
    now: Date = this.#conductor.now(),
  ): Promise<number> {
    return resumeImageWaits(this.#run, this.#currentSettings(), nodes, ready, now);
  }

  /** The conductor's clock (what the tick's provisioning work compares with). */
  now(): Date {
    return this.#conductor.now();
  }

  #currentSettings(): ProvisionSettings {
    return this.#settings ?? provisionSettingsFromEnv();
  }

  /** The request's flow (undefined: a transition alone, nothing for the agent to do). */
  #plan(
    node: Node,
    request: ProvisionRequest,
    user: string | null,
    inputs: DeployInputs | undefined,
    settings: ProvisionSettings,
    now: Date,
  ): Plan | undefined {
    // A verb that lands on a stable state (manage from available or a failure, abort)
    // is a transition alone: nothing for the agent to do.
    if (isStable(request.next.provision_state)) return undefined;
    const base = { index: 0, user };
    switch (request.action) {
      case 'manage':
        return { flow: planVerify(base) };
      case 'provide':
        return { flow: planProvide(node, base, inputs, settings, now) };
      case 'clean':
        return { flow: planManualClean(node, base, request.cleanSteps, inputs, settings, now) };
      case 'adopt':
        return { flow: planAdopt(base) };
      case 'inspect':
        return planInspect(node, base, inputs, settings, now);
      case 'undeploy':
        return { flow: planUndeploy(node, base, inputs, settings, now) };
      case 'deploy':
      case 'rebuild':
        return planDeploy(node, base, inputs, now, {
          settings,
          configdrive: request.configdrive,
          rebuild: request.action === 'rebuild',
        });
      case 'abort':
        return undefined;
      case 'rescue':
        return planRescue(node, base, request.rescuePassword, inputs, settings, now);
      case 'unrescue':
        return { flow: planUnrescue(node, base) };
    }
  }
}
