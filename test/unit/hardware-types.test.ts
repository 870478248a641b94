/**
 * Hardware types composed of interface implementations: the built-in ones as they were,
 * and a type registered at run time usable by node create/patch/validate.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { fakeHardware } from '../../lambda/domain/hardware/fake-hardware/index.ts';
import {
  noBios,
  noConsole,
  noInspect,
  noopNetwork,
  noopStorage,
  noRaid,
  noRescue,
  noVendor,
  ramdiskDeploy,
} from '../../lambda/domain/hardware/generic.ts';
import {
  defineHardwareType,
  type InterfaceImpl,
  type InterfaceName,
  type InterfaceSpec,
} from '../../lambda/domain/hardware/interfaces.ts';
import { ipmi } from '../../lambda/domain/hardware/ipmi/index.ts';
import { HardwareTypeRegistry, hardwareType, hardwareTypes } from '../../lambda/domain/hardware/registry.ts';
import { validateDriverInfo, validateNode } from '../../lambda/domain/hardware/validate.ts';
import { createNode, type Node, type NodeCreateBody, patchNode } from '../../lambda/domain/nodes/node.ts';

const UUID = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';
const NOW = '2026-01-01T00:00:00.000000+00:00';

const impl = (kind: InterfaceName, name: string, extra: Partial<InterfaceImpl> = {}): InterfaceImpl => ({
  kind,
  name,
  ...extra,
});
const only = (one: InterfaceImpl): InterfaceSpec => ({ default: one, enabled: [one] });

const toyPower = impl('power', 'toy', {
  properties: { toy_address: 'where the toy listens. Required.' },
  validate: (node) =>
    node.driver_info.toy_address ? undefined : "Missing toy_address in node's driver_info.",
});
const toyBoot = impl('boot', 'toy');
const toyBootAlt = impl('boot', 'toy-alt');

const toy = defineHardwareType('toy', {
  bios: only(noBios),
  boot: { default: toyBoot, enabled: [toyBoot, toyBootAlt] },
  console: only(noConsole),
  deploy: only(ramdiskDeploy),
  inspect: only(noInspect),
  management: only(impl('management', 'toy')),
  network: only(noopNetwork),
  power: only(toyPower),
  raid: only(noRaid),
  rescue: only(noRescue),
  storage: only(noopStorage),
  vendor: only(noVendor),
});

describe('built-in hardware types', () => {
  it('are fake-hardware and ipmi', () => {
    expect(new HardwareTypeRegistry([fakeHardware, ipmi]).names()).toStrictEqual(['fake-hardware', 'ipmi']);
    expect(hardwareType('ipmi')).toBe(ipmi);
    expect(hardwareType('fake-hardware')).toBe(fakeHardware);
    expect(hardwareType('nope')).toBeUndefined();
  });

  it('keep their defaults and enabled lists, in order', () => {
    expect(fakeHardware.interfaces.boot).toStrictEqual({ default: 'fake', enabled: ['ipxe', 'fake', 'pxe'] });
    expect(fakeHardware.interfaces.deploy).toStrictEqual({
      default: 'fake',
      enabled: ['direct', 'fake', 'ramdisk'],
    });
    expect(fakeHardware.interfaces.console).toStrictEqual({
      default: 'fake',
      enabled: ['no-console', 'fake'],
    });
    expect(fakeHardware.interfaces.raid).toStrictEqual({ default: 'fake', enabled: ['fake', 'no-raid'] });
    expect(fakeHardware.interfaces.network).toStrictEqual({ default: 'noop', enabled: ['noop'] });
    expect(fakeHardware.properties).toStrictEqual({});
    expect(ipmi.interfaces.boot).toStrictEqual({ default: 'ipxe', enabled: ['ipxe', 'pxe'] });
    expect(ipmi.interfaces.power).toStrictEqual({ default: 'ipmitool', enabled: ['ipmitool'] });
    expect(ipmi.interfaces.management).toStrictEqual({ default: 'ipmitool', enabled: ['ipmitool'] });
    expect(ipmi.interfaces.deploy).toStrictEqual({ default: 'direct', enabled: ['direct', 'ramdisk'] });
    expect(ipmi.interfaces.rescue).toStrictEqual({ default: 'no-rescue', enabled: ['agent', 'no-rescue'] });
    expect(ipmi.interfaces.vendor).toStrictEqual({ default: 'ipmitool', enabled: ['no-vendor', 'ipmitool'] });
    expect(ipmi.interfaces.bios).toStrictEqual({ default: 'no-bios', enabled: ['no-bios'] });
  });

  it('derive their properties from the default implementations', () => {
    expect(Object.keys(ipmi.properties)).toStrictEqual([
      'ipmi_address',
      'ipmi_password',
      'ipmi_hex_kg_key',
      'ipmi_port',
      'ipmi_priv_level',
      'ipmi_username',
      'ipmi_bridging',
      'ipmi_transit_channel',
      'ipmi_transit_address',
      'ipmi_target_channel',
      'ipmi_target_address',
      'ipmi_local_address',
      'ipmi_protocol_version',
      'ipmi_force_boot_device',
      'ipmi_disable_boot_timeout',
      'ipmi_cipher_suite',
      'deploy_kernel',
      'deploy_ramdisk',
      'rescue_kernel',
      'rescue_ramdisk',
      'kernel_append_params',
      'force_persistent_boot_device',
      'agent_verify_ca',
      'deploy_forces_oob_reboot',
      'image_download_source',
      'image_http_proxy',
      'image_https_proxy',
      'image_no_proxy',
    ]);
    expect(ipmi.properties.ipmi_address).toBe('IP address or hostname of the node. Required.');
  });
});

describe('defineHardwareType', () => {
  it('refuses a default that is not enabled, or an implementation under another kind', () => {
    const specs = { ...toyInterfaces() };
    expect(() =>
      defineHardwareType('bad', { ...specs, boot: { default: toyBootAlt, enabled: [toyBoot] } }),
    ).toThrow(/default boot interface toy-alt is not enabled/);
    expect(() => defineHardwareType('bad', { ...specs, boot: only(toyPower) })).toThrow(
      /power interface toy enabled as boot/,
    );
    expect(() =>
      defineHardwareType('bad', { ...specs, boot: { default: toyBoot, enabled: [toyBoot, toyBoot] } }),
    ).toThrow(/twice/);
  });
});

function toyInterfaces(): Record<InterfaceName, InterfaceSpec> {
  const interfaces = {} as Record<InterfaceName, InterfaceSpec>;
  for (const kind of Object.keys(toy.interfaces) as InterfaceName[]) {
    const choice = toy.interfaces[kind];
    const enabled = choice.enabled.map((name) => toy.implementation(kind, name)!);
    interfaces[kind] = { default: toy.implementation(kind, choice.default)!, enabled };
  }
  return interfaces;
}

describe('a hardware type registered at run time', () => {
  beforeAll(() => hardwareTypes.register(toy));

  it('is listed; registering it again, or a built-in name, is refused', () => {
    expect(() => hardwareTypes.register(toy)).toThrow('Hardware type toy is already registered.');
    expect(() => hardwareTypes.register(defineHardwareType('ipmi', toyInterfaces()))).toThrow(
      'Hardware type ipmi is already registered.',
    );
    expect(hardwareType('toy')).toBe(toy);
    expect(hardwareTypes.names()).toStrictEqual(['fake-hardware', 'ipmi', 'redfish', 'toy']);
    expect(toy.properties).toStrictEqual({ toy_address: 'where the toy listens. Required.' });
  });

  it('is resolvable by node create, with its defaults', () => {
    const node = createNode({ driver: 'toy' }, { uuid: UUID, now: NOW, minor: 90, site: 'default' });
    expect(node.power_interface).toBe('toy');
    expect(node.boot_interface).toBe('toy');
    expect(node.deploy_interface).toBe('ramdisk');
    expect(node.vendor_interface).toBe('no-vendor');
    expect(() =>
      createNode({ driver: 'toy', boot_interface: 'ipxe' } as NodeCreateBody, {
        uuid: UUID,
        now: NOW,
        minor: 90,
        site: 'default',
      }),
    ).toThrow(/Valid interfaces are toy, toy-alt\./);
  });

  it('is resolvable by node patch: a driver change re-defaults interfaces', () => {
    const node = createNode({ driver: 'ipmi' }, { uuid: UUID, now: NOW, minor: 90, site: 'default' });
    const patched = patchNode(node, [{ op: 'replace', path: '/driver', value: 'toy' }], {
      minor: 90,
      now: NOW,
    });
    expect(patched.power_interface).toBe('toy');
    expect(patched.boot_interface).toBe('toy');
    expect(patched.management_interface).toBe('toy');
    const alt = patchNode(patched, [{ op: 'replace', path: '/boot_interface', value: 'toy-alt' }], {
      minor: 90,
      now: NOW,
    });
    expect(alt.boot_interface).toBe('toy-alt');
    const reset = patchNode(alt, [{ op: 'remove', path: '/boot_interface' }], { minor: 90, now: NOW });
    expect(reset.boot_interface).toBe('toy');
  });

  it('validates through its implementations', () => {
    const node: Node = createNode(
      { driver: 'toy', instance_info: { image_source: 'img' } },
      { uuid: UUID, now: NOW, minor: 90, site: 'default' },
    );
    const report = validateNode(node, 0);
    expect(Object.keys(report)).toStrictEqual([
      'boot',
      'deploy',
      'management',
      'network',
      'power',
      'bios',
      'console',
      'inspect',
      'raid',
      'rescue',
      'storage',
    ]);
    expect(report.power).toStrictEqual({
      result: false,
      reason: "Missing toy_address in node's driver_info.",
    });
    expect(report.boot).toStrictEqual({ result: true });
    expect(report.deploy).toStrictEqual({ result: true });
    expect(report.bios).toStrictEqual({
      result: false,
      reason: 'Driver toy does not support bios (disabled or not implemented).',
    });
    expect(validateDriverInfo(node, 'power')).toBe("Missing toy_address in node's driver_info.");
    node.driver_info = { toy_address: '10.0.0.9' };
    expect(validateNode(node, 0).power).toStrictEqual({ result: true });
    expect(validateDriverInfo(node, 'power')).toBeUndefined();
  });
});

describe('validation of the built-in types', () => {
  it('ipmi: ports, deploy and driver_info, in Ironic order', () => {
    const node = createNode({ driver: 'ipmi' }, { uuid: UUID, now: NOW, minor: 90, site: 'default' });
    const report = validateNode(node, 0);
    expect(report.boot).toStrictEqual({
      result: false,
      reason: `Node ${UUID} does not have any port associated with it.`,
    });
    expect(report.deploy?.reason).toBe(
      "Cannot validate PXE bootloader. Some parameters were missing in node's driver_info. Missing are: ['deploy_kernel', 'deploy_ramdisk']",
    );
    const withRamdisk = { ...node, driver_info: { deploy_kernel: 'k', deploy_ramdisk: 'r' } };
    expect(validateNode(withRamdisk, 1).deploy?.reason).toBe(
      "Missing the following parameters in node's instance_info: ['image_source']",
    );
    const ramdiskDeploy = { ...node, deploy_interface: 'ramdisk' };
    expect(validateNode(ramdiskDeploy, 1).deploy?.reason).toBe(
      "Missing the following parameters in node's instance_info: ['image_source'] (or ['kernel', 'ramdisk'], or 'boot_iso').",
    );
    expect(report.power?.reason).toBe(
      "Missing the following IPMI credentials in node's driver_info: ['ipmi_address'].",
    );
    expect(report.management).toStrictEqual(report.power);
    expect(report.network).toStrictEqual({ result: true });
    expect(validateNode(node, 1).boot).toStrictEqual({ result: true });
  });

  it('fake-hardware: all valid by default', () => {
    const node = createNode(
      { driver: 'fake-hardware' },
      { uuid: UUID, now: NOW, minor: 90, site: 'default' },
    );
    expect(Object.values(validateNode(node, 0)).every((entry) => entry.result)).toBe(true);
  });
});
