/**
 * Deploy steps, as Ironic's `conductor/steps.py` combines them: the deploy interface's
 * own steps (with their priorities), overridden by the steps of the deploy templates
 * whose names are among the instance's traits (`instance_info.traits`), overridden in
 * turn by the request's `deploy_steps`. Priority 0 disables a step; the rest run from
 * the highest priority down, ties broken by Ironic's interface order (power, management,
 * deploy, bios, raid). The core step `deploy.deploy` may be disabled but not moved.
 *
 * The steps Metalplane's deploy interfaces have (Ironic's names and priorities):
 *
 *   direct   deploy.deploy 100 (boot the ramdisk), deploy.write_image 80 (the image and
 *            the config drive), deploy.prepare_instance_boot 60 (boot files away, boot
 *            device disk), deploy.tear_down_agent 40 (the ramdisk stops, the node off),
 *            deploy.switch_to_tenant_network 30 (a no-op: the noop network interface),
 *            deploy.boot_instance 20 (power on)
 *   ramdisk, fake   deploy.deploy 100
 *
 * and the flow steps the conductor runs itself (Ironic skips their validation):
 * power.power_on, power.power_off, power.reboot. Nothing else is known: a step of a
 * bios or raid interface, which Metalplane's hardware types do not implement, is refused.
 */
import { invalid } from '../errors.ts';
import type { JsonObject } from '../nodes/node.ts';
import { pythonRepr } from '../python-repr.ts';

export interface IronicDeployStep {
  readonly interface: string;
  readonly step: string;
  readonly priority: number;
  readonly args: JsonObject;
}

/** A deploy step as a user gives it (request or template); the priority may be a decimal string. */
export interface UserDeployStep {
  readonly interface: string;
  readonly step: string;
  readonly args?: JsonObject;
  readonly priority: number | string;
}

const step = (iface: string, name: string, priority: number): IronicDeployStep => ({
  interface: iface,
  step: name,
  priority,
  args: {},
});

/** The deploy interfaces' own steps. */
export const DRIVER_DEPLOY_STEPS: Readonly<Record<string, readonly IronicDeployStep[]>> = {
  direct: [
    step('deploy', 'deploy', 100),
    step('deploy', 'write_image', 80),
    step('deploy', 'prepare_instance_boot', 60),
    step('deploy', 'tear_down_agent', 40),
    step('deploy', 'switch_to_tenant_network', 30),
    step('deploy', 'boot_instance', 20),
  ],
  ramdisk: [step('deploy', 'deploy', 100)],
  fake: [step('deploy', 'deploy', 100)],
};

/** Steps the conductor runs itself, at whatever priority the user gives them. */
const FLOW_STEPS: readonly IronicDeployStep[] = [
  step('power', 'power_on', 0),
  step('power', 'power_off', 0),
  step('power', 'reboot', 0),
];

/** conductor/steps.py DEPLOYING_INTERFACE_PRIORITY, for ties. */
const INTERFACE_PRIORITY: Readonly<Record<string, number>> = {
  power: 5,
  management: 4,
  deploy: 3,
  bios: 2,
  raid: 1,
};

const id = (s: { interface: string; step: string }) => `${s.interface}.${s.step}`;

function normalized(user: UserDeployStep): IronicDeployStep {
  return {
    interface: user.interface,
    step: user.step,
    priority: typeof user.priority === 'string' ? Number.parseInt(user.priority, 10) : user.priority,
    args: user.args ?? {},
  };
}

/** Ironic's `_validate_user_steps` for deploy steps: the problems, or none. */
function problemsOf(
  steps: readonly IronicDeployStep[],
  known: ReadonlyMap<string, IronicDeployStep>,
): string[] {
  const errors: string[] = [];
  for (const user of steps) {
    const repr = pythonRepr(user);
    if (!known.has(id(user))) {
      errors.push(`node does not support this deploy step: ${repr}`);
      continue;
    }
    const unexpected = Object.keys(user.args);
    if (unexpected.length > 0)
      errors.push(`deploy step ${repr} has these unexpected arguments: ${unexpected.join(', ')}`);
    if (user.priority > 0 && user.interface === 'deploy' && user.step === 'deploy') {
      errors.push(
        `deploy step ${user.step} on interface ${user.interface} is a core step and cannot be overridden by user steps. It may be disabled by setting the priority to 0`,
      );
    }
  }
  const counts = new Map<string, number>();
  for (const user of steps) counts.set(id(user), (counts.get(id(user)) ?? 0) + 1);
  const duplicates = [...counts].filter(([, count]) => count > 1).map(([key]) => key);
  if (duplicates.length > 0) {
    errors.push(
      `deploy steps from all deploy templates matching this node's instance traits cannot have the same interface and step. Duplicate deploy steps for ${duplicates.join(', ')}`,
    );
  }
  return errors;
}

export interface DeployStepSources {
  /** The node's deploy interface (its own steps). */
  readonly deployInterface: string;
  /** The request's `deploy_steps` (null: none given). */
  readonly requested: readonly UserDeployStep[] | null;
  /** The deploy templates named by the instance's traits, in the order found. */
  readonly templates: ReadonlyArray<{ readonly name: string; readonly steps: readonly UserDeployStep[] }>;
}

/**
 * The deploy's steps in the order they run (Ironic's `_get_all_deployment_steps`), or
 * a 400 with Ironic's message when a user step is not valid.
 */
export function resolveDeploySteps(sources: DeployStepSources): IronicDeployStep[] {
  const driverSteps = DRIVER_DEPLOY_STEPS[sources.deployInterface] ?? [];
  const known = new Map([...driverSteps, ...FLOW_STEPS].map((s) => [id(s), s]));
  const requested = (sources.requested ?? []).map(normalized);
  const requestErrors = problemsOf(requested, known);
  if (requestErrors.length > 0)
    throw invalid(
      `Validation of deploy steps from "deploy steps" argument failed. ${requestErrors.join('; ')}`,
    );
  const fromTemplates = sources.templates.flatMap((template) => template.steps.map(normalized));
  const templateErrors = problemsOf(fromTemplates, known);
  if (templateErrors.length > 0) {
    const names = sources.templates.map((template) => template.name).join(',');
    throw invalid(
      `Validation of deploy steps from deploy templates matching this node's instance traits failed. Matching deploy templates: ${names}. Errors: ${templateErrors.join('; ')}`,
    );
  }
  const requestedIds = new Set(requested.map(id));
  const user = [...requested, ...fromTemplates.filter((s) => !requestedIds.has(id(s)))];
  const userIds = new Set(user.map(id));
  const steps = [...driverSteps.filter((s) => !userIds.has(id(s))), ...user.filter((s) => s.priority > 0)];
  return steps.sort(
    (a, b) =>
      b.priority - a.priority ||
      (INTERFACE_PRIORITY[b.interface] ?? 0) - (INTERFACE_PRIORITY[a.interface] ?? 0),
  );
}

/** The traits naming deploy templates: `instance_info.traits`, a list of strings (else none). */
export function instanceTraits(instanceInfo: JsonObject): string[] {
  const traits = instanceInfo.traits;
  if (!Array.isArray(traits)) return [];
  return traits.filter((trait): trait is string => typeof trait === 'string');
}
