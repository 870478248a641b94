/**
 * The provision flows' commands for `redfish-virtual-media` nodes (`stepCommand`): the
 * ramdisk and the deploy boot insert an ISO (a catalog ISO, or one the agent builds from
 * the kernel and ramdisk), the ramdisk boots once from the virtual CD; and the catalog's
 * check of `management.insert_vmedia`'s args (`protocol/actions.ts`).
 */
import { describe, expect, it } from 'vitest';
import {
  type DeployBoot,
  type FlowState,
  stepCommand,
  VIRTUAL_MEDIA_BOOT,
} from '../../lambda/conductor/flows/steps.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import { ACTIONS } from '../../protocol/actions.ts';

const NODE = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';
const KERNEL = '5b0c8a3e-8f0e-4c52-9d0a-6a1f1d2a3b4c';
const RAMDISK = '6c1d9b4f-9a1f-4d63-8e1b-7b2a2e3b4c5d';
const ISO = '7d2eac50-ab20-4e74-9f2c-8c3b3f4c5d6e';
const CALLBACK_TOKEN = 'c'.repeat(43);
const REDFISH_INFO = {
  redfish_address: 'https://10.0.0.9',
  redfish_username: 'admin',
  redfish_password: 'secret',
  redfish_system_id: '/redfish/v1/Systems/1',
};

function node(over: Partial<Node> = {}): Node {
  return {
    uuid: NODE,
    driver: 'redfish',
    driver_info: REDFISH_INFO,
    power_interface: 'redfish',
    management_interface: 'redfish',
    boot_interface: VIRTUAL_MEDIA_BOOT,
    deploy_interface: 'direct',
    provision_state: 'manageable',
    power_state: 'power off',
    target_power_state: null,
    reservation: null,
    instance_info: {},
    properties: {},
    ...over,
  } as unknown as Node;
}

const IPXE_NODE = node({
  driver: 'ipmi',
  driver_info: { ipmi_address: '10.0.0.5', ipmi_username: 'admin', ipmi_password: 'secret' },
  power_interface: 'ipmitool',
  management_interface: 'ipmitool',
  boot_interface: 'ipxe',
});

const KERNEL_BOOT: DeployBoot = {
  macs: ['52:54:00:12:34:56'],
  boot_mode: 'uefi',
  kernel: KERNEL,
  ramdisk: RAMDISK,
  kernel_append_params: 'console=ttyS0,115200',
};
const ISO_BOOT: DeployBoot = { macs: ['52:54:00:12:34:56'], boot_mode: 'bios', iso: ISO };

function flow(over: Partial<FlowState> = {}): FlowState {
  return {
    flow: 'deploy',
    steps: ['prepare_ramdisk', 'prepare_boot', 'boot_device_ramdisk'],
    index: 0,
    finish: ['done'],
    user: null,
    boot: KERNEL_BOOT,
    ...over,
  };
}

const insertVmedia = ACTIONS['management.insert_vmedia'];

describe('stepCommand: virtual media nodes', () => {
  it('prepare_ramdisk inserts an ISO built from the kernel and ramdisk for the Metalplane ramdisk', () => {
    // The deploy's callback token is not the ramdisk's: it is not sent.
    const step = stepCommand(node(), flow({ callbackToken: CALLBACK_TOKEN }), 'prepare_ramdisk');
    expect(step?.action).toBe('management.insert_vmedia');
    expect(step?.commandArgs).toEqual({
      driver: 'redfish',
      driver_info: REDFISH_INFO,
      node_uuid: NODE,
      kernel: KERNEL,
      ramdisk: RAMDISK,
      boot_mode: 'uefi',
      kernel_append_params: 'console=ttyS0,115200',
      metalplane_ramdisk: true,
    });
    expect(step?.kind).toBe('provision');
    expect(insertVmedia.validate(step!.commandArgs)).toBeUndefined();
  });

  it('sends no kernel_append_params when the boot has none', () => {
    const { kernel_append_params: _, ...boot } = KERNEL_BOOT;
    const step = stepCommand(node(), flow({ boot }), 'prepare_ramdisk');
    expect(step?.commandArgs).not.toHaveProperty('kernel_append_params');
    expect(step?.commandArgs).toMatchObject({ kernel: KERNEL, ramdisk: RAMDISK, metalplane_ramdisk: true });
  });

  it('prepare_boot inserts a built ISO with the deploy callback when the flow has a token', () => {
    const withCallback = stepCommand(node(), flow({ callbackToken: CALLBACK_TOKEN }), 'prepare_boot');
    expect(withCallback?.action).toBe('management.insert_vmedia');
    expect(withCallback?.commandArgs).toEqual({
      driver: 'redfish',
      driver_info: REDFISH_INFO,
      node_uuid: NODE,
      kernel: KERNEL,
      ramdisk: RAMDISK,
      boot_mode: 'uefi',
      kernel_append_params: 'console=ttyS0,115200',
      callback_token: CALLBACK_TOKEN,
    });
    expect(insertVmedia.validate(withCallback!.commandArgs)).toBeUndefined();

    const without = stepCommand(node(), flow(), 'prepare_boot');
    expect(without?.commandArgs).not.toHaveProperty('callback_token');
    expect(without?.commandArgs).not.toHaveProperty('metalplane_ramdisk');
    expect(without?.commandArgs).not.toHaveProperty('macs');
    expect(insertVmedia.validate(without!.commandArgs)).toBeUndefined();
  });

  it('prepare_boot inserts the catalog ISO of an ISO boot, with nothing else', () => {
    const step = stepCommand(node(), flow({ boot: ISO_BOOT, callbackToken: CALLBACK_TOKEN }), 'prepare_boot');
    expect(step?.action).toBe('management.insert_vmedia');
    expect(step?.commandArgs).toEqual({
      driver: 'redfish',
      driver_info: REDFISH_INFO,
      node_uuid: NODE,
      iso: ISO,
    });
    expect(insertVmedia.validate(step!.commandArgs)).toBeUndefined();
  });

  it('inserts nothing when the boot has neither an ISO nor a kernel and a ramdisk', () => {
    expect(stepCommand(node(), flow({ boot: undefined }), 'prepare_boot')).toBeUndefined();
    expect(stepCommand(node(), flow({ boot: undefined }), 'prepare_ramdisk')).toBeUndefined();
    const kernelOnly: DeployBoot = { macs: [], boot_mode: 'bios', kernel: KERNEL };
    expect(stepCommand(node(), flow({ boot: kernelOnly }), 'prepare_boot')).toBeUndefined();
  });

  it('clean_boot ejects the virtual CD', () => {
    const step = stepCommand(node(), flow(), 'clean_boot');
    expect(step?.action).toBe('management.eject_vmedia');
    expect(step?.commandArgs).toEqual({ driver: 'redfish', driver_info: REDFISH_INFO, node_uuid: NODE });
  });

  it('boot_device_ramdisk boots once from the virtual CD', () => {
    const step = stepCommand(node(), flow(), 'boot_device_ramdisk');
    expect(step?.action).toBe('management.set_boot_device');
    expect(step?.commandArgs).toEqual({
      driver: 'redfish',
      driver_info: REDFISH_INFO,
      boot_device: 'cdrom',
      persistent: false,
    });
    expect(ACTIONS['management.set_boot_device'].validate(step!.commandArgs)).toBeUndefined();
  });

  it('boot_device_ramdisk does nothing when the management interface cannot boot from a CD', () => {
    // The fake management interface knows only pxe.
    const fake = node({ driver: 'fake-hardware', management_interface: 'fake', driver_info: {} });
    expect(stepCommand(fake, flow(), 'boot_device_ramdisk')).toBeUndefined();
    expect(
      stepCommand(node({ management_interface: undefined }), flow(), 'boot_device_ramdisk'),
    ).toBeUndefined();
  });
});

describe('stepCommand: network-booted nodes are unchanged', () => {
  it('boot_device_ramdisk boots once from the network', () => {
    const step = stepCommand(IPXE_NODE, flow(), 'boot_device_ramdisk');
    expect(step?.action).toBe('management.set_boot_device');
    expect(step?.commandArgs).toMatchObject({ driver: 'ipmi', boot_device: 'pxe', persistent: false });
    const fake = node({
      driver: 'fake-hardware',
      management_interface: 'fake',
      boot_interface: 'fake',
      driver_info: {},
    });
    expect(stepCommand(fake, flow(), 'boot_device_ramdisk')?.commandArgs).toMatchObject({
      boot_device: 'pxe',
      persistent: false,
    });
  });

  it('prepare_ramdisk and prepare_boot write boot files', () => {
    const ramdisk = stepCommand(IPXE_NODE, flow({ callbackToken: CALLBACK_TOKEN }), 'prepare_ramdisk');
    expect(ramdisk?.action).toBe('boot.prepare');
    expect(ramdisk?.commandArgs).toEqual({
      driver: 'ipmi',
      node_uuid: NODE,
      ...KERNEL_BOOT,
      metalplane_ramdisk: true,
    });
    const deploy = stepCommand(IPXE_NODE, flow({ callbackToken: CALLBACK_TOKEN }), 'prepare_boot');
    expect(deploy?.action).toBe('boot.prepare');
    expect(deploy?.commandArgs).toEqual({
      driver: 'ipmi',
      node_uuid: NODE,
      ...KERNEL_BOOT,
      callback_token: CALLBACK_TOKEN,
    });
    expect(stepCommand(IPXE_NODE, flow(), 'clean_boot')?.action).toBe('boot.clean');
  });
});

describe("management.insert_vmedia's args (the catalog's check)", () => {
  const check = (args: Record<string, unknown>) => insertVmedia.validate(args);
  const USAGE =
    'management.insert_vmedia: args node_uuid and either iso or kernel + ramdisk (image UUIDs) are required';

  it('accepts a catalog ISO, and a kernel + ramdisk with their options', () => {
    expect(check({ node_uuid: NODE, iso: ISO })).toBeUndefined();
    expect(check({ node_uuid: NODE, iso: ISO.toUpperCase() })).toBeUndefined();
    expect(check({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK })).toBeUndefined();
    expect(
      check({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        boot_mode: 'bios',
        kernel_append_params: 'quiet',
        metalplane_ramdisk: true,
      }),
    ).toBeUndefined();
    expect(
      check({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        boot_mode: 'uefi',
        callback_token: CALLBACK_TOKEN,
      }),
    ).toBeUndefined();
    expect(
      check({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        metalplane_ramdisk: false,
        callback_token: CALLBACK_TOKEN,
      }),
    ).toBeUndefined();
  });

  it('refuses an ISO together with a kernel or a ramdisk', () => {
    const both = 'management.insert_vmedia: give iso, or kernel + ramdisk, not both';
    expect(check({ node_uuid: NODE, iso: ISO, kernel: KERNEL })).toBe(both);
    expect(check({ node_uuid: NODE, iso: ISO, ramdisk: RAMDISK })).toBe(both);
    expect(check({ node_uuid: NODE, iso: ISO, kernel: KERNEL, ramdisk: RAMDISK })).toBe(both);
  });

  it('refuses a kernel without a ramdisk (and the reverse), and missing or malformed UUIDs', () => {
    expect(check({ node_uuid: NODE, kernel: KERNEL })).toBe(USAGE);
    expect(check({ node_uuid: NODE, ramdisk: RAMDISK })).toBe(USAGE);
    expect(check({ node_uuid: NODE })).toBe(USAGE);
    expect(check({ iso: ISO })).toBe(USAGE);
    expect(check({ node_uuid: 'node-1', iso: ISO })).toBe(USAGE);
    expect(check({ node_uuid: NODE, iso: 'not-a-uuid' })).toBe(USAGE);
    expect(check({ node_uuid: NODE, iso: 42 })).toBe(USAGE);
    expect(check({ node_uuid: NODE, kernel: KERNEL, ramdisk: '../../etc/passwd' })).toBe(USAGE);
  });

  it('refuses the Metalplane ramdisk with an ISO, and with a deploy callback', () => {
    expect(check({ node_uuid: NODE, iso: ISO, metalplane_ramdisk: true })).toBe(
      'management.insert_vmedia: metalplane_ramdisk boots a kernel + ramdisk, not an iso (no kernel command line)',
    );
    expect(
      check({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        metalplane_ramdisk: true,
        callback_token: CALLBACK_TOKEN,
      }),
    ).toBe(
      'management.insert_vmedia: a ramdisk boot has no deploy callback (give metalplane_ramdisk or callback_token)',
    );
  });

  it('refuses a bad boot_mode, non-string parameters and a non-boolean metalplane_ramdisk', () => {
    expect(check({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, boot_mode: 'legacy' })).toBe(
      'management.insert_vmedia: boot_mode must be one of bios, uefi',
    );
    expect(check({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, boot_mode: null })).toBe(
      'management.insert_vmedia: boot_mode must be one of bios, uefi',
    );
    expect(
      check({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, kernel_append_params: ['quiet'] }),
    ).toBe('management.insert_vmedia: kernel_append_params must be a string');
    expect(check({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, metalplane_ramdisk: 'yes' })).toBe(
      'management.insert_vmedia: metalplane_ramdisk must be true or false',
    );
  });
});
