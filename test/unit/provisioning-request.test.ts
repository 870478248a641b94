/** `PUT /v1/nodes/{node}/states/provision`: body, microversions, checks and messages as Ironic 21.4. */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lambda/domain/errors.ts';
import {
  checkProvisionRequest,
  type ProvisionBody,
  type ProvisionNode,
  parseProvisionBody,
  provisionLocation,
  validateProvisionBody,
  validateProvisionRequest,
} from '../../lambda/domain/provisioning/request.ts';
import { exchange } from '../support/reference.ts';

const UUID = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';

function node(overrides: Partial<ProvisionNode> = {}): ProvisionNode {
  return {
    uuid: UUID,
    provision_state: 'enroll',
    target_provision_state: null,
    maintenance: false,
    protected: false,
    retired: false,
    reservation: null,
    ...overrides,
  };
}

/** The error a call throws, as [kind, message]. */
function failure(run: () => unknown): [string, string] | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError) return [error.kind, error.message];
    throw error;
  }
  return undefined;
}

const check = (state: Partial<ProvisionNode>, body: ProvisionBody, minor = 82) =>
  checkProvisionRequest(node(state), body, { minor });
const refusal = (state: Partial<ProvisionNode>, body: ProvisionBody, minor = 82) =>
  failure(() => check(state, body, minor));

/** The faultstring of a recorded exchange. */
function recordedFault(number: number): string {
  const body = exchange(number).response.body as { error_message: string };
  return (JSON.parse(body.error_message) as { faultstring: string }).faultstring;
}

describe('the body (args.validate)', () => {
  it('refuses arguments provision() does not take', () => {
    expect(failure(() => validateProvisionBody({ target: 'manage', force: true }))).toStrictEqual([
      'invalid',
      'Unexpected arguments: force',
    ]);
  });

  it('needs a target, whatever else the body is', () => {
    const missing = ['invalid', 'Missing mandatory parameter: target'];
    expect(failure(() => parseProvisionBody(undefined))).toStrictEqual(missing);
    expect(failure(() => parseProvisionBody('{"configdrive": "x"}'))).toStrictEqual(missing);
    // pecan reads no arguments from malformed JSON or a JSON array.
    expect(failure(() => parseProvisionBody('{"target": '))).toStrictEqual(missing);
    expect(failure(() => parseProvisionBody('["manage"]'))).toStrictEqual(missing);
    expect(parseProvisionBody('{"target": "manage"}')).toStrictEqual({ target: 'manage' });
  });

  it('checks each argument type with the message Python writes', () => {
    expect(failure(() => validateProvisionBody({ target: 5 }))?.[1]).toBe('Expected string for target: 5');
    expect(failure(() => validateProvisionBody({ target: 'active', configdrive: [1, 'a'] }))?.[1]).toBe(
      "Expected types <class 'NoneType'>, <class 'dict'>, <class 'str'> for configdrive: [1, 'a']",
    );
    expect(failure(() => validateProvisionBody({ target: 'clean', clean_steps: { a: true } }))?.[1]).toBe(
      "Expected types <class 'NoneType'>, <class 'list'> for clean_steps: {'a': True}",
    );
    expect(failure(() => validateProvisionBody({ target: 'active', deploy_steps: 'x' }))?.[1]).toBe(
      "Expected types <class 'NoneType'>, <class 'list'> for deploy_steps: x",
    );
    expect(failure(() => validateProvisionBody({ target: 'rescue', rescue_password: 1 }))?.[1]).toBe(
      'Expected string for rescue_password: 1',
    );
    expect(failure(() => validateProvisionBody({ target: 'clean', disable_ramdisk: 'maybe' }))?.[1]).toBe(
      "Invalid disable_ramdisk: Unrecognized value 'maybe', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
    );
    expect(validateProvisionBody({ target: 'clean', disable_ramdisk: 'Yes' }).disable_ramdisk).toBe(true);
    expect(validateProvisionBody({ target: 'clean', disable_ramdisk: 0 }).disable_ramdisk).toBe(false);
    expect(validateProvisionBody({ target: null })).toStrictEqual({ target: null });
  });
});

describe('verbs and microversions', () => {
  // A state each verb is allowed from, and the minimum microversion Ironic requires.
  const cases: Array<[verb: string, state: string, minMinor: number, extra?: Partial<ProvisionBody>]> = [
    ['manage', 'enroll', 4],
    ['provide', 'manageable', 4],
    ['inspect', 'manageable', 6],
    ['abort', 'clean wait', 13],
    ['clean', 'manageable', 15, { clean_steps: [{ interface: 'deploy', step: 'erase_devices' }] }],
    ['adopt', 'manageable', 17],
    ['rescue', 'active', 38, { rescue_password: 'secret' }],
    ['unrescue', 'rescue', 38],
    ['deploy', 'available', 73],
    ['undeploy', 'active', 73],
    ['active', 'available', 1],
    ['deleted', 'active', 1],
    ['rebuild', 'active', 1],
  ];

  it.each(cases)('%s from %s needs 1.%i (406 below)', (verb, state, minMinor, extra) => {
    const body = { target: verb, ...extra };
    if (minMinor > 1) {
      expect(refusal({ provision_state: state }, body, minMinor - 1)).toStrictEqual([
        'not-acceptable',
        'Request not acceptable.',
      ]);
    }
    expect(check({ provision_state: state }, body, minMinor).verb).toBe(verb);
  });

  it('answers an invalid transition exactly as exchange 085, naming the node by uuid', () => {
    expect(refusal({ provision_state: 'enroll' }, { target: 'provide' })).toStrictEqual([
      'invalid',
      recordedFault(85),
    ]);
    expect(exchange(85).response.status).toBe(400);
  });

  it('answers an unknown target exactly as exchange 086', () => {
    expect(refusal({ provision_state: 'enroll' }, { target: 'teleport' })).toStrictEqual([
      'invalid',
      recordedFault(86),
    ]);
    expect(refusal({}, { target: null })?.[1]).toBe(
      `The requested action "None" can not be performed on node "${UUID}" while it is in state "enroll".`,
    );
  });

  it('answers a locked node 409 exactly as exchange 094, not 400', () => {
    const fault = recordedFault(94).replace('anchor-conductor', 'fra1-agent-1');
    expect(
      refusal({ provision_state: 'deploying', reservation: 'fra1-agent-1' }, { target: 'active' }),
    ).toStrictEqual(['conflict', fault]);
    expect(exchange(94).response.status).toBe(409);
    // A valid action on a locked node is refused by the conductor's lock too.
    expect(
      refusal({ provision_state: 'clean wait', reservation: 'fra1-agent-1' }, { target: 'abort' })?.[0],
    ).toBe('conflict');
  });

  it('does not understand internal events even where the machine has them', () => {
    expect(refusal({ provision_state: 'cleaning' }, { target: 'done' })).toStrictEqual([
      'invalid',
      'The requested action "done" could not be understood.',
    ]);
    expect(refusal({ provision_state: 'active' }, { target: 'delete' })?.[1]).toBe(
      'The requested action "delete" could not be understood.',
    );
    expect(refusal({ provision_state: 'deploying' }, { target: 'wait' })?.[1]).toContain(
      'could not be understood',
    );
  });

  it('needs 1.41 to abort an inspection', () => {
    expect(refusal({ provision_state: 'inspect wait' }, { target: 'abort' }, 40)?.[0]).toBe('not-acceptable');
    expect(check({ provision_state: 'inspect wait' }, { target: 'abort' }, 41).next).toStrictEqual({
      provision_state: 'inspect failed',
      target_provision_state: 'manageable',
    });
  });
});

describe('maintenance, protection, retirement', () => {
  it('refuses active and rebuild in maintenance before looking at the state', () => {
    const message = `The provisioning operation can't be performed on node ${UUID} because it's in maintenance mode.`;
    expect(refusal({ provision_state: 'enroll', maintenance: true }, { target: 'active' })).toStrictEqual([
      'invalid',
      message,
    ]);
    expect(refusal({ provision_state: 'active', maintenance: true }, { target: 'rebuild' })?.[1]).toBe(
      message,
    );
    // The `deploy` alias reaches the same check in the conductor, after the state's.
    expect(refusal({ provision_state: 'available', maintenance: true }, { target: 'deploy' })?.[1]).toBe(
      message,
    );
    expect(refusal({ provision_state: 'enroll', maintenance: true }, { target: 'deploy' })?.[1]).toContain(
      'can not be performed',
    );
  });

  it('refuses cleaning, providing and rescue operations in maintenance', () => {
    const steps = [{ interface: 'deploy', step: 'erase_devices' }];
    expect(
      refusal({ provision_state: 'manageable', maintenance: true }, { target: 'clean', clean_steps: steps }),
    ).toStrictEqual([
      'invalid',
      `The cleaning operation can't be performed on node ${UUID} because it's in maintenance mode.`,
    ]);
    expect(
      refusal({ provision_state: 'manageable', maintenance: true }, { target: 'provide' })?.[1],
    ).toContain('The providing operation');
    expect(
      refusal(
        { provision_state: 'active', maintenance: true },
        { target: 'rescue', rescue_password: 'p' },
      )?.[1],
    ).toContain('The rescuing operation');
    expect(refusal({ provision_state: 'rescue', maintenance: true }, { target: 'unrescue' })?.[1]).toContain(
      'The unrescuing operation',
    );
    // Managing and undeploying are allowed in maintenance.
    expect(check({ provision_state: 'enroll', maintenance: true }, { target: 'manage' }).action).toBe(
      'manage',
    );
    expect(check({ provision_state: 'active', maintenance: true }, { target: 'deleted' }).action).toBe(
      'undeploy',
    );
  });

  it('refuses to undeploy or rebuild a protected node (403), but deploys it', () => {
    const message = `Node ${UUID} is protected and cannot be undeployed, rebuilt or deleted`;
    expect(refusal({ provision_state: 'active', protected: true }, { target: 'undeploy' })).toStrictEqual([
      'forbidden',
      message,
    ]);
    expect(refusal({ provision_state: 'active', protected: true }, { target: 'rebuild' })).toStrictEqual([
      'forbidden',
      message,
    ]);
    expect(check({ provision_state: 'deploy failed', protected: true }, { target: 'active' }).action).toBe(
      'deploy',
    );
  });

  it('refuses to provide a retired node', () => {
    expect(refusal({ provision_state: 'manageable', retired: true }, { target: 'provide' })).toStrictEqual([
      'invalid',
      `The providing operation can't be performed on node ${UUID} because it is retired.`,
    ]);
  });
});

describe('configdrive', () => {
  const base = { provision_state: 'available' };

  it('takes a base64 string or a URL for active', () => {
    const request = check(base, { target: 'active', configdrive: 'H4sIAAAA\nAAAA==' });
    expect(request).toMatchObject({ action: 'deploy', configdrive: 'H4sIAAAA\nAAAA==' });
    expect(check(base, { target: 'active', configdrive: 'https://cd.example/x.iso' }).action).toBe('deploy');
    expect(refusal(base, { target: 'active', configdrive: 'not base64!' })?.[1]).toBe(
      'Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string',
    );
    // An empty one is ignored, as Python's `if not configdrive`.
    expect(check(base, { target: 'active', configdrive: '' })).toMatchObject({ configdrive: null });
  });

  it('takes one with rebuild from 1.35, and never with the deploy alias (as Ironic 21.4)', () => {
    const active = { provision_state: 'active' };
    expect(refusal(active, { target: 'rebuild', configdrive: 'abcd' }, 34)?.[1]).toBe(
      'Adding a config drive is only supported when setting provision state to active',
    );
    expect(check(active, { target: 'rebuild', configdrive: 'abcd' }, 35).action).toBe('rebuild');
    expect(refusal(base, { target: 'deploy', configdrive: 'abcd' })?.[1]).toBe(
      'Adding a config drive is only supported when setting provision state to active, rebuild',
    );
  });

  it('builds one from a JSON object from 1.56, vendor_data from 1.59', () => {
    const content = { meta_data: { hostname: 'n1' }, user_data: '#cloud-config' };
    expect(refusal(base, { target: 'active', configdrive: content }, 55)?.[1]).toBe(
      'Providing a JSON object for configdrive is only supported starting with API version 1.56',
    );
    expect(check(base, { target: 'active', configdrive: content }, 56)).toMatchObject({
      configdrive: content,
    });
    expect(refusal(base, { target: 'active', configdrive: { vendor_data: {} } }, 58)?.[1]).toBe(
      'Providing vendor_data in configdrive is only supported starting with API version 1.59',
    );
    expect(refusal(base, { target: 'active', configdrive: { bogus: 1 } })?.[1]).toBe(
      "Invalid configdrive format: Additional properties are not allowed ('bogus' was unexpected)",
    );
    expect(refusal(base, { target: 'active', configdrive: { meta_data: 'x' } })?.[1]).toBe(
      "Invalid configdrive format: 'x' is not of type 'object'",
    );
  });

  it('is refused with other targets', () => {
    expect(refusal({ provision_state: 'enroll' }, { target: 'manage', configdrive: 'abcd' })?.[1]).toContain(
      'Adding a config drive is only supported',
    );
  });
});

describe('clean_steps, disable_ramdisk', () => {
  const manageable = { provision_state: 'manageable' };
  const steps = [{ interface: 'bios', step: 'apply_configuration', args: { settings: [] } }];

  it('requires clean_steps for clean, and validates them', () => {
    expect(refusal(manageable, { target: 'clean' })).toStrictEqual([
      'invalid',
      '"clean_steps" is required when setting target provision state to clean',
    ]);
    expect(refusal(manageable, { target: 'clean', clean_steps: [] })?.[1]).toContain('is required');
    expect(refusal(manageable, { target: 'clean', clean_steps: [{ interface: 'x', step: 'a' }] })?.[1]).toBe(
      "Invalid clean_steps: 'x' is not one of ['power', 'management', 'deploy', 'bios', 'raid']",
    );
    expect(refusal(manageable, { target: 'clean', clean_steps: [{ interface: 'deploy' }] })?.[1]).toBe(
      "Invalid clean_steps: 'step' is a required property",
    );
    expect(
      refusal(manageable, {
        target: 'clean',
        clean_steps: [{ interface: 'deploy', step: 'a', priority: 1 }],
      })?.[1],
    ).toBe("Invalid clean_steps: Additional properties are not allowed ('priority' was unexpected)");
  });

  it('answers a manual clean that returns to manageable', () => {
    const request = check(manageable, { target: 'clean', clean_steps: steps, disable_ramdisk: true });
    expect(request).toStrictEqual({
      verb: 'clean',
      event: 'clean',
      from: 'manageable',
      action: 'clean',
      next: { provision_state: 'cleaning', target_provision_state: 'manageable' },
      cleanSteps: steps,
      disableRamdisk: true,
    });
    // An abort of it keeps that target.
    const aborted = check(
      { provision_state: 'clean wait', target_provision_state: 'manageable' },
      { target: 'abort' },
    );
    expect(aborted.next).toStrictEqual({
      provision_state: 'clean failed',
      target_provision_state: 'manageable',
    });
  });

  it('takes clean_steps only for clean', () => {
    expect(refusal({ provision_state: 'enroll' }, { target: 'manage', clean_steps: steps })).toStrictEqual([
      'invalid',
      '"clean_steps" is only valid when setting target provision state to clean',
    ]);
  });

  it('takes disable_ramdisk from 1.70, for clean only', () => {
    expect(
      refusal(manageable, { target: 'clean', clean_steps: steps, disable_ramdisk: false }, 69),
    ).toStrictEqual(['not-acceptable', 'disable_ramdisk is not acceptable in this API version']);
    expect(refusal(manageable, { target: 'provide', disable_ramdisk: true })).toStrictEqual([
      'invalid',
      'disable_ramdisk is supported only with manual cleaning',
    ]);
  });
});

describe('deploy_steps, rescue_password', () => {
  const available = { provision_state: 'available' };
  const steps = [{ interface: 'deploy', step: 'write_image', args: {}, priority: '80' }];

  it('takes deploy_steps from 1.69 for active and rebuild, validated', () => {
    expect(refusal(available, { target: 'active', deploy_steps: steps }, 68)).toStrictEqual([
      'not-acceptable',
      'Request not acceptable. The minimal required API version should be 1.69',
    ]);
    expect(check(available, { target: 'active', deploy_steps: steps }, 69)).toMatchObject({
      deploySteps: steps,
    });
    expect(refusal(available, { target: 'deploy', deploy_steps: steps })?.[1]).toBe(
      '"deploy_steps" is only valid when setting target provision state to active or rebuild',
    );
    expect(
      refusal(available, {
        target: 'active',
        deploy_steps: [{ interface: 'deploy', step: 'x', args: {} }],
      })?.[1],
    ).toBe("Invalid deploy_steps: 'priority' is a required property");
  });

  it('requires a non-empty rescue_password for rescue, and only there', () => {
    const active = { provision_state: 'active' };
    expect(refusal(active, { target: 'rescue' })?.[1]).toBe(
      'A non-empty "rescue_password" is required when setting target provision state to rescue',
    );
    expect(refusal(active, { target: 'rescue', rescue_password: '  ' })?.[1]).toContain('A non-empty');
    expect(check(active, { target: 'rescue', rescue_password: 'pw' })).toMatchObject({
      action: 'rescue',
      rescuePassword: 'pw',
      next: { provision_state: 'rescuing', target_provision_state: 'rescue' },
    });
    expect(refusal(active, { target: 'deleted', rescue_password: 'pw' })?.[1]).toBe(
      '"rescue_password" is only valid when setting target provision state to rescue',
    );
  });
});

describe('the request the conductor gets', () => {
  it('names the action, the event and where the node goes', () => {
    expect(validateProvisionRequest(node(), '{"target": "manage"}', { minor: 82 })).toStrictEqual({
      verb: 'manage',
      event: 'manage',
      from: 'enroll',
      action: 'manage',
      next: { provision_state: 'verifying', target_provision_state: 'manageable' },
    });
    expect(check({ provision_state: 'available' }, { target: 'deploy' })).toStrictEqual({
      verb: 'deploy',
      event: 'deploy',
      from: 'available',
      action: 'deploy',
      next: { provision_state: 'deploying', target_provision_state: 'active' },
      configdrive: null,
      deploySteps: null,
    });
    expect(check({ provision_state: 'active' }, { target: 'undeploy' })).toMatchObject({
      action: 'undeploy',
      event: 'delete',
      next: { provision_state: 'deleting', target_provision_state: 'available' },
    });
  });

  it("builds the 202's Location from the identifier as sent (exchange 087)", () => {
    const recorded = exchange(87).response.headers.Location;
    expect(provisionLocation('http://127.0.0.1:6385', UUID)).toBe(recorded);
    expect(provisionLocation('https://mp.example', 'node-1')).toBe(
      'https://mp.example/v1/nodes/node-1/states',
    );
  });
});

const IRONIC = '/usr/lib/python3/dist-packages/ironic';

describe.skipIf(!existsSync(IRONIC))("the messages are Ironic's own", () => {
  const source = (path: string) => readFileSync(`${IRONIC}/${path}`, 'utf8').replace(/['"]\s*\n\s*['"]/g, '');

  it.each([
    ['api/controllers/v1/node.py', '"clean_steps" is required when setting target provision state to %s'],
    ['api/controllers/v1/node.py', '"clean_steps" is only valid when setting target provision state to %s'],
    [
      'api/controllers/v1/node.py',
      '"rescue_password" is only valid when setting target provision state to %s',
    ],
    [
      'api/controllers/v1/node.py',
      'A non-empty "rescue_password" is required when setting target provision state to %s',
    ],
    ['api/controllers/v1/node.py', 'The requested action "%(action)s" could not be understood.'],
    [
      'api/controllers/v1/utils.py',
      'Adding a config drive is only supported when setting provision state to %s',
    ],
    [
      'api/controllers/v1/utils.py',
      'Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string',
    ],
    [
      'api/controllers/v1/utils.py',
      '"deploy_steps" is only valid when setting target provision state to %s or %s',
    ],
    ['api/controllers/v1/utils.py', 'disable_ramdisk is not acceptable in this API version'],
    ['api/controllers/v1/utils.py', 'disable_ramdisk is supported only with manual cleaning'],
    [
      'common/exception.py',
      'The requested action "%(action)s" can not be performed on node "%(node)s" while it is in state "%(state)s".',
    ],
    [
      'common/exception.py',
      'Node %(node)s is locked by host %(host)s, please retry after the current operation is completed.',
    ],
    [
      'common/exception.py',
      "The %(op)s operation can't be performed on node %(node)s because it's in maintenance mode.",
    ],
    ['common/exception.py', 'Node %(node)s is protected and cannot be undeployed, rebuilt or deleted'],
    [
      'common/exception.py',
      "The %(op)s operation can't be performed on node %(node)s because it is retired.",
    ],
    ['common/args.py', 'Unexpected arguments: %s'],
    ['common/args.py', 'Missing mandatory parameter: %s'],
  ])('%s has %s', (file, template) => {
    expect(source(file)).toContain(template);
  });
});
