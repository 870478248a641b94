/**
 * What a rollout does to each node, and how it reads the outcome from the node's states:
 * the provision verbs (`PUT .../states/provision`) and the power targets
 * (`PUT .../states/power`). Both are asynchronous: the API has set the target state when
 * it answers 202, so a node seen at rest afterwards has finished, well or badly.
 */
import { UsageError } from '../os-config.ts';
import type { NodeView } from './selector.ts';

/** What the rollout stores of the action, enough to run it again on resume. */
export interface ActionSpec {
  readonly kind: 'provision' | 'power';
  /** The provision verb (deploy, undeploy, clean, ...) or the power target (on, off, reboot). */
  readonly verb: string;
  readonly soft?: boolean;
  readonly cleanSteps?: unknown[];
  readonly configDrive?: string;
}

export type Outcome = { done: true; error?: string } | { done: false };

export interface FleetAction {
  readonly spec: ActionSpec;
  readonly label: string;
  request(node: NodeView): { method: 'PUT'; path: string; body: Record<string, unknown> };
  /** The node is already where the action takes it (it is not sent, and counts as done). */
  alreadyDone(node: NodeView): boolean;
  /** After the request was accepted: finished (with an error when it failed) or still going. */
  outcome(node: NodeView): Outcome;
}

interface ProvisionVerb {
  target: string;
  goal: string;
  /** Whether being in the goal state means there is nothing to do (not for clean, inspect, rebuild). */
  idempotent: boolean;
}

export const PROVISION_VERBS: Readonly<Record<string, ProvisionVerb>> = {
  manage: { target: 'manage', goal: 'manageable', idempotent: true },
  provide: { target: 'provide', goal: 'available', idempotent: true },
  inspect: { target: 'inspect', goal: 'manageable', idempotent: false },
  clean: { target: 'clean', goal: 'manageable', idempotent: false },
  deploy: { target: 'active', goal: 'active', idempotent: true },
  rebuild: { target: 'rebuild', goal: 'active', idempotent: false },
  undeploy: { target: 'deleted', goal: 'available', idempotent: true },
};

const POWER_TARGETS: Readonly<
  Record<string, { hard: string; soft: string; goal: string; idempotent: boolean }>
> = {
  on: { hard: 'power on', soft: 'power on', goal: 'power on', idempotent: true },
  off: { hard: 'power off', soft: 'soft power off', goal: 'power off', idempotent: true },
  reboot: { hard: 'rebooting', soft: 'soft rebooting', goal: 'power on', idempotent: false },
};

const nodePath = (node: NodeView) => `/v1/nodes/${encodeURIComponent(node.uuid)}`;
const isFailedState = (state: string) => /failed$/.test(state) || state === 'error';

function provisionAction(spec: ActionSpec): FleetAction {
  const verb = PROVISION_VERBS[spec.verb];
  if (!verb) throw new UsageError(`unknown provision action ${spec.verb}`);
  return {
    spec,
    label: spec.verb,
    request(node) {
      const body: Record<string, unknown> = { target: verb.target };
      if (spec.cleanSteps) body.clean_steps = spec.cleanSteps;
      if (spec.configDrive !== undefined) body.configdrive = spec.configDrive;
      return { method: 'PUT', path: `${nodePath(node)}/states/provision`, body };
    },
    alreadyDone: (node) =>
      verb.idempotent && node.provision_state === verb.goal && !node.target_provision_state,
    outcome(node) {
      const state = node.provision_state;
      if (isFailedState(state)) {
        return { done: true, error: `${state}${node.last_error ? `: ${node.last_error}` : ''}` };
      }
      if (node.target_provision_state) return { done: false };
      if (state === verb.goal) return { done: true };
      return { done: true, error: `ended in ${state}${node.last_error ? `: ${node.last_error}` : ''}` };
    },
  };
}

function powerAction(spec: ActionSpec): FleetAction {
  const target = POWER_TARGETS[spec.verb];
  if (!target) throw new UsageError(`power ${spec.verb}: use on, off or reboot`);
  return {
    spec,
    label: `power ${spec.verb}${spec.soft ? ' (soft)' : ''}`,
    request: (node) => ({
      method: 'PUT',
      path: `${nodePath(node)}/states/power`,
      body: { target: spec.soft ? target.soft : target.hard },
    }),
    alreadyDone: (node) => target.idempotent && node.power_state === target.goal && !node.target_power_state,
    outcome(node) {
      if (node.target_power_state) return { done: false };
      if (node.last_error) return { done: true, error: node.last_error };
      if (node.power_state !== target.goal)
        return { done: true, error: `ended ${node.power_state ?? 'in no power state'}` };
      return { done: true };
    },
  };
}

export function fleetAction(spec: ActionSpec): FleetAction {
  return spec.kind === 'power' ? powerAction(spec) : provisionAction(spec);
}
