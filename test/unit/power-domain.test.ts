/** Power, boot device, validation and sync decisions (pure domain), against Ironic's rules. */
import { describe, expect, it } from 'vitest';
import { connectionArgs } from '../../agent/drivers/ipmi/ipmitool.ts';
import { ipmiDriverInfoProblem } from '../../lambda/domain/hardware/ipmi/driver-info.ts';
import { validateNode } from '../../lambda/domain/hardware/validate.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import {
  checkBootDeviceRequest,
  checkPowerRequest,
  powerFailureMessage,
  powerTimeoutSeconds,
  targetPowerState,
} from '../../lambda/domain/power/power.ts';
import { decideSync, isSynced, POWER_FAILURE, SYNC_MAX_RETRIES } from '../../lambda/domain/power/sync.ts';

const UUID = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';

function node(over: Partial<Node> = {}): Node {
  return {
    uuid: UUID,
    driver: 'ipmi',
    driver_info: { ipmi_address: '10.0.0.5', ipmi_username: 'admin', ipmi_password: 'secret' },
    power_interface: 'ipmitool',
    management_interface: 'ipmitool',
    boot_interface: 'ipxe',
    deploy_interface: 'ramdisk',
    console_interface: 'no-console',
    network_interface: 'noop',
    bios_interface: 'no-bios',
    inspect_interface: 'no-inspect',
    raid_interface: 'no-raid',
    rescue_interface: 'no-rescue',
    storage_interface: 'noop',
    vendor_interface: 'ipmitool',
    provision_state: 'manageable',
    power_state: 'power off',
    target_power_state: null,
    reservation: null,
    maintenance: false,
    maintenance_reason: null,
    fault: null,
    instance_info: {},
    ...over,
  } as unknown as Node;
}

describe('checkPowerRequest', () => {
  it('accepts every Ironic target and answers the target state', () => {
    for (const target of ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting']) {
      const request = checkPowerRequest(node(), UUID, { target }, 82);
      expect(request.target).toBe(target);
    }
    expect(targetPowerState('rebooting')).toBe('power on');
    expect(targetPowerState('soft power off')).toBe('power off');
  });

  it('gates soft actions and timeout at 1.27 (406), then checks timeout and target (400)', () => {
    expect(() => checkPowerRequest(node(), UUID, { target: 'soft power off' }, 26)).toThrow(
      /not acceptable/i,
    );
    expect(() => checkPowerRequest(node(), UUID, { target: 'power on', timeout: 10 }, 26)).toThrow(
      /not acceptable/i,
    );
    expect(() => checkPowerRequest(node(), UUID, { target: 'power on', timeout: 0 }, 82)).toThrow(
      'timeout has to be positive integer',
    );
    expect(() => checkPowerRequest(node(), UUID, { target: 'power on', timeout: 'x' }, 82)).toThrow(
      'Expected an integer for timeout: x',
    );
    expect(checkPowerRequest(node(), UUID, { target: 'power on', timeout: '30' }, 82).timeout).toBe(30);
    expect(() => checkPowerRequest(node(), UUID, { target: 'up' }, 82)).toThrow(
      `The requested action "up" can not be performed on node "${UUID}" while it is in state "power off".`,
    );
  });

  it('refuses nodes being cleaned, locked nodes (409) and bad driver_info', () => {
    expect(() =>
      checkPowerRequest(node({ provision_state: 'cleaning' }), UUID, { target: 'power on' }, 82),
    ).toThrow(/while it is in state "cleaning"/);
    expect(() =>
      checkPowerRequest(node({ reservation: 'agent-1' }), UUID, { target: 'power on' }, 82),
    ).toThrow(
      `Node ${UUID} is locked by host agent-1, please retry after the current operation is completed.`,
    );
    expect(() => checkPowerRequest(node({ driver_info: {} }), UUID, { target: 'power on' }, 82)).toThrow(
      "Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].",
    );
  });

  it('uses Ironic’s default timeouts and failure message', () => {
    expect(powerTimeoutSeconds({ target: 'power on', timeout: undefined })).toBe(60);
    expect(powerTimeoutSeconds({ target: 'soft power off', timeout: undefined })).toBe(600);
    expect(powerTimeoutSeconds({ target: 'power on', timeout: 5 })).toBe(5);
    expect(powerFailureMessage('rebooting', 'boom')).toBe(
      "Failed to change power state to 'power on' by 'rebooting': boom",
    );
  });
});

describe('boot device', () => {
  it('allows what the management interface supports, with Ironic’s boolean parsing', () => {
    expect(checkBootDeviceRequest(node(), { boot_device: 'disk', persistent: 'yes' })).toEqual({
      boot_device: 'disk',
      persistent: true,
    });
    expect(() => checkBootDeviceRequest(node(), { boot_device: 'floppy' })).toThrow(
      'Invalid boot device floppy specified.',
    );
    const fake = node({ management_interface: 'fake', driver: 'fake-hardware' });
    expect(() => checkBootDeviceRequest(fake, { boot_device: 'disk' })).toThrow(
      'Invalid boot device disk specified.',
    );
    expect(() => checkBootDeviceRequest(node(), { boot_device: 'pxe', persistent: 'maybe' })).toThrow(
      /Invalid persistent: Unrecognized value 'maybe'/,
    );
  });
});

describe('driver_info validation', () => {
  it('finds Ironic’s problems', () => {
    expect(ipmiDriverInfoProblem({ ipmi_address: 'h', ipmi_port: 70000 })).toMatch(/not a valid ipmi_port/);
    expect(ipmiDriverInfoProblem({ ipmi_address: 'h', ipmi_priv_level: 'GOD' })).toMatch(
      /Invalid privilege level/,
    );
    expect(ipmiDriverInfoProblem({ ipmi_address: 'h', ipmi_protocol_version: '3' })).toMatch(
      /Invalid IPMI protocol/,
    );
    expect(ipmiDriverInfoProblem({ ipmi_address: 'h; rm -rf /' })).toMatch(/Invalid ipmi_address/);
    expect(ipmiDriverInfoProblem({ ipmi_address: 'h', ipmi_password: 'a\nb' })).toMatch(
      /Invalid ipmi_password/,
    );
    expect(
      ipmiDriverInfoProblem({ ipmi_address: '10.0.0.5', ipmi_port: '623', ipmi_cipher_suite: 17 }),
    ).toBeUndefined();
  });

  it('reports per interface, unsupported ones false with a reason', () => {
    const report = validateNode(node({ instance_info: { image_source: 'img' } }), 1);
    expect(report.power).toEqual({ result: true });
    expect(report.deploy).toEqual({ result: true });
    expect(report.console).toEqual({
      result: false,
      reason: 'Driver ipmi does not support console (disabled or not implemented).',
    });
    expect(validateNode(node(), 1).deploy?.result).toBe(false);
  });
});

describe('power sync decisions', () => {
  it('records a first state, follows a change, or forces it back', () => {
    expect(decideSync(node({ power_state: null }), { power_state: 'power on' }, false)).toMatchObject({
      kind: 'update',
      node: { power_state: 'power on' },
    });
    expect(decideSync(node(), { power_state: 'power on' }, false)).toMatchObject({
      kind: 'update',
      node: { power_state: 'power on' },
    });
    expect(decideSync(node(), { power_state: 'power on' }, true)).toMatchObject({
      kind: 'force',
      target: 'power off',
    });
    expect(decideSync(node(), { power_state: 'power off' }, false).kind).toBe('none');
  });

  it('leaves locked, enrolling and maintenance nodes alone', () => {
    expect(decideSync(node({ reservation: 'a' }), { power_state: 'power on' }, false).kind).toBe('none');
    expect(decideSync(node({ provision_state: 'enroll' }), { power_state: 'power on' }, false).kind).toBe(
      'none',
    );
    expect(decideSync(node({ maintenance: true }), { power_state: 'power on' }, false).kind).toBe('none');
    expect(isSynced(node({ provision_state: 'wait call-back' }))).toBe(false);
    expect(isSynced(node({ maintenance: true, fault: POWER_FAILURE }))).toBe(true);
  });

  it('faults after the retry limit and recovers when the BMC answers', () => {
    const failing = { power_state: null, error: 'no answer', failures: SYNC_MAX_RETRIES };
    expect(decideSync(node(), failing, false).kind).toBe('none');
    const faulted = decideSync(node(), { ...failing, failures: SYNC_MAX_RETRIES + 1 }, false);
    expect(faulted).toMatchObject({
      kind: 'update',
      node: { maintenance: true, fault: POWER_FAILURE, power_state: null },
    });
    const stored = faulted.kind === 'update' ? faulted.node : node();
    expect(stored.maintenance_reason).toMatch(
      /^During sync_power_state, max retries exceeded.* Error: no answer$/,
    );
    expect(decideSync(stored, { power_state: 'power off' }, false)).toMatchObject({
      kind: 'update',
      node: { maintenance: false, fault: null, maintenance_reason: null, power_state: 'power off' },
    });
  });
});

describe('IPMI bridging (Ironic’s ipmi_bridging)', () => {
  it('validates single and dual bridging as Ironic does', () => {
    const base = { ipmi_address: '10.0.0.5' };
    expect(ipmiDriverInfoProblem({ ...base, ipmi_bridging: 'triple' })).toBe(
      "Invalid value for ipmi_bridging: triple, the valid value can be one of: ['single', 'dual', 'no']",
    );
    expect(ipmiDriverInfoProblem({ ...base, ipmi_bridging: 'single' })).toBe(
      "['ipmi_target_channel', 'ipmi_target_address'] not provided",
    );
    expect(
      ipmiDriverInfoProblem({
        ...base,
        ipmi_bridging: 'dual',
        ipmi_target_channel: 0,
        ipmi_target_address: '0x72',
      }),
    ).toBe("['ipmi_transit_channel', 'ipmi_transit_address'] not provided");
    expect(
      ipmiDriverInfoProblem({
        ...base,
        ipmi_bridging: 'single',
        ipmi_target_channel: 7,
        ipmi_target_address: 'x; id',
      }),
    ).toMatch(/Invalid ipmi_target_address/);
    expect(
      ipmiDriverInfoProblem({
        ...base,
        ipmi_bridging: 'single',
        ipmi_target_channel: 7,
        ipmi_target_address: '0x72',
      }),
    ).toBeUndefined();
  });

  it('passes ipmitool the bridging options (-m, -B, -T, -b, -t), never a bad value', () => {
    const target = { ipmi_address: '10.0.0.5', ipmi_cipher_suite: 3 };
    expect(connectionArgs({ ...target })).not.toContain('-b');
    const single = connectionArgs({
      ...target,
      ipmi_bridging: 'single',
      ipmi_local_address: '0x20',
      ipmi_target_channel: 7,
      ipmi_target_address: '0x72',
    });
    expect(single.join(' ')).toContain('-m 0x20 -b 7 -t 0x72');
    const dual = connectionArgs({
      ...target,
      ipmi_bridging: 'dual',
      ipmi_transit_channel: 0,
      ipmi_transit_address: '0x82',
      ipmi_target_channel: 7,
      ipmi_target_address: '0x72',
    });
    expect(dual.join(' ')).toContain('-B 0 -T 0x82 -b 7 -t 0x72');
    expect(() => connectionArgs({ ...target, ipmi_bridging: 'single', ipmi_target_channel: 7 })).toThrow(
      /ipmi_target_address not provided/,
    );
    expect(() =>
      connectionArgs({
        ...target,
        ipmi_bridging: 'single',
        ipmi_target_channel: '7 -P x',
        ipmi_target_address: 1,
      }),
    ).toThrow(/not a channel or address/);
  });
});
