/**
 * Deploy steps combined as Ironic's `_get_all_deployment_steps` combines them: the
 * driver's, the deploy templates', the request's; order and Ironic's refusals.
 */
import { describe, expect, it } from 'vitest';
import {
  DRIVER_DEPLOY_STEPS,
  instanceTraits,
  resolveDeploySteps,
  type UserDeployStep,
} from '../../lambda/domain/provisioning/deploy-steps.ts';

const ids = (steps: ReadonlyArray<{ interface: string; step: string }>) =>
  steps.map((s) => `${s.interface}.${s.step}`);

const user = (iface: string, step: string, priority: number | string, args = {}): UserDeployStep => ({
  interface: iface,
  step,
  priority,
  args,
});

const resolve = (
  requested: UserDeployStep[] | null,
  templates: Array<{ name: string; steps: UserDeployStep[] }> = [],
  deployInterface = 'direct',
) => resolveDeploySteps({ deployInterface, requested, templates });

function refusal(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('resolveDeploySteps', () => {
  it("runs the direct interface's steps by priority, as Ironic's AgentDeploy", () => {
    expect(ids(resolve(null))).toEqual([
      'deploy.deploy',
      'deploy.write_image',
      'deploy.prepare_instance_boot',
      'deploy.tear_down_agent',
      'deploy.switch_to_tenant_network',
      'deploy.boot_instance',
    ]);
    expect(ids(resolve(null, [], 'ramdisk'))).toEqual(['deploy.deploy']);
    expect(DRIVER_DEPLOY_STEPS.direct?.map((s) => s.priority)).toEqual([100, 80, 60, 40, 30, 20]);
  });

  it('lets user steps re-prioritise, disable (0) and add flow steps; ties go by interface order', () => {
    const steps = resolve([
      user('deploy', 'prepare_instance_boot', 0),
      user('deploy', 'boot_instance', '90'),
      user('power', 'reboot', 90),
    ]);
    expect(ids(steps)).toEqual([
      'deploy.deploy',
      'power.reboot',
      'deploy.boot_instance',
      'deploy.write_image',
      'deploy.tear_down_agent',
      'deploy.switch_to_tenant_network',
    ]);
    expect(steps.find((s) => s.step === 'boot_instance')?.priority).toBe(90);
  });

  it('takes template steps unless the request names the same step', () => {
    const templates = [
      {
        name: 'CUSTOM_FAST',
        steps: [user('deploy', 'switch_to_tenant_network', 0), user('deploy', 'boot_instance', 10)],
      },
    ];
    expect(ids(resolve(null, templates))).not.toContain('deploy.switch_to_tenant_network');
    const overridden = resolve([user('deploy', 'boot_instance', 25)], templates);
    expect(overridden.find((s) => s.step === 'boot_instance')?.priority).toBe(25);
  });

  it("refuses with Ironic's messages", () => {
    expect(refusal(() => resolve([user('deploy', 'nope', 10)]))).toBe(
      `Validation of deploy steps from "deploy steps" argument failed. node does not support this deploy step: {'interface': 'deploy', 'step': 'nope', 'priority': 10, 'args': {}}`,
    );
    expect(refusal(() => resolve([user('deploy', 'deploy', 50)]))).toContain(
      'deploy step deploy on interface deploy is a core step and cannot be overridden by user steps. It may be disabled by setting the priority to 0',
    );
    expect(refusal(() => resolve([user('deploy', 'write_image', 80, { force: true })]))).toContain(
      'has these unexpected arguments: force',
    );
    expect(
      refusal(() => resolve([user('deploy', 'write_image', 80), user('deploy', 'write_image', 70)])),
    ).toContain('Duplicate deploy steps for deploy.write_image');
    expect(
      refusal(() =>
        resolve(null, [{ name: 'CUSTOM_RAID', steps: [user('raid', 'apply_configuration', 10)] }]),
      ),
    ).toMatch(
      /^Validation of deploy steps from deploy templates matching this node's instance traits failed\. Matching deploy templates: CUSTOM_RAID\. Errors: node does not support this deploy step/,
    );
  });

  it('reads the instance traits as Ironic does (a list of strings, else none)', () => {
    expect(instanceTraits({ traits: ['CUSTOM_A', 3, 'CUSTOM_B'] })).toEqual(['CUSTOM_A', 'CUSTOM_B']);
    expect(instanceTraits({ traits: 'CUSTOM_A' })).toEqual([]);
    expect(instanceTraits({})).toEqual([]);
  });
});
