/**
 * Hardware types, composed of interfaces as Ironic's are. A node's `*_interface` fields
 * default to its hardware type's defaults; only enabled interfaces may be set.
 *
 * `fake-hardware` mirrors Ironic's (everything simulated, for development and tests).
 * `ipmi` is what Metalplane's agent implements: power and management through ipmitool,
 * iPXE (or PXE) boot files rendered by the agent, and the ramdisk deploy (boot an ISO or
 * kernel + ramdisk; no image is written to disk), which is Metalplane's deploy model.
 */
export const INTERFACE_NAMES = [
  'bios',
  'boot',
  'console',
  'deploy',
  'inspect',
  'management',
  'network',
  'power',
  'raid',
  'rescue',
  'storage',
  'vendor',
] as const;

export type InterfaceName = (typeof INTERFACE_NAMES)[number];

export interface InterfaceChoice {
  readonly default: string;
  readonly enabled: readonly string[];
}

export interface HardwareType {
  readonly name: string;
  readonly interfaces: Readonly<Record<InterfaceName, InterfaceChoice>>;
  /** `driver_info` keys and their descriptions (`GET /v1/drivers/{name}/properties`). */
  readonly properties: Readonly<Record<string, string>>;
}

const choice = (defaultName: string, ...enabled: string[]): InterfaceChoice => ({
  default: defaultName,
  enabled,
});

const IPMI_PROPERTIES: Record<string, string> = {
  ipmi_address: 'IP address or hostname of the node. Required.',
  ipmi_password: 'password. Optional.',
  ipmi_hex_kg_key: 'Kg key for IPMIv2 authentication. The key is expected in hexadecimal format. Optional.',
  ipmi_port: 'remote IPMI RMCP port. Optional.',
  ipmi_priv_level:
    'privilege level; default is ADMINISTRATOR. One of ADMINISTRATOR, CALLBACK, OPERATOR, USER. Optional.',
  ipmi_username: 'username; default is NULL user. Optional.',
  ipmi_bridging: 'bridging_type; default is "no". One of "single", "dual", "no". Optional.',
  ipmi_transit_channel:
    'transit channel for bridged request. Required only if ipmi_bridging is set to "dual".',
  ipmi_transit_address:
    'transit address for bridged request. Required only if ipmi_bridging is set to "dual".',
  ipmi_target_channel:
    'destination channel for bridged request. Required only if ipmi_bridging is set to "single" or "dual".',
  ipmi_target_address:
    'destination address for bridged request. Required only if ipmi_bridging is set to "single" or "dual".',
  ipmi_local_address:
    'local IPMB address for bridged requests. Used only if ipmi_bridging is set to "single" or "dual". Optional.',
  ipmi_protocol_version: 'the version of the IPMI protocol; default is "2.0". One of "1.5", "2.0". Optional.',
  ipmi_force_boot_device:
    'Whether Ironic should specify the boot device to the BMC each time the server is turned on, eg. because the BMC is not capable of remembering the selected boot device across power cycles; default value is False. Optional.',
  ipmi_cipher_suite:
    'The number of a cipher suite to use. Only 3 (AES-128 with SHA1) or 17 (AES-128 with SHA256) should ever be used; 17 is preferred. The default value depends on the ipmitool version, some recent versions have switched from 3 to 17.',
  kernel_append_params:
    'Additional kernel parameters to pass down to instance kernel. These parameters can be consumed by the kernel or by the applications by reading /proc/cmdline. Optional.',
};

export const HARDWARE_TYPES: Readonly<Record<string, HardwareType>> = {
  'fake-hardware': {
    name: 'fake-hardware',
    interfaces: {
      bios: choice('fake', 'fake', 'no-bios'),
      boot: choice('fake', 'ipxe', 'fake', 'pxe'),
      console: choice('fake', 'no-console', 'fake'),
      deploy: choice('fake', 'fake', 'ramdisk'),
      inspect: choice('fake', 'no-inspect', 'fake'),
      management: choice('fake', 'fake'),
      network: choice('noop', 'noop'),
      power: choice('fake', 'fake'),
      raid: choice('fake', 'fake', 'no-raid'),
      rescue: choice('fake', 'no-rescue', 'fake'),
      storage: choice('noop', 'noop'),
      vendor: choice('fake', 'no-vendor', 'fake'),
    },
    properties: {},
  },
  ipmi: {
    name: 'ipmi',
    interfaces: {
      bios: choice('no-bios', 'no-bios'),
      boot: choice('ipxe', 'ipxe', 'pxe'),
      console: choice('no-console', 'no-console'),
      deploy: choice('ramdisk', 'ramdisk'),
      inspect: choice('no-inspect', 'no-inspect'),
      management: choice('ipmitool', 'ipmitool'),
      network: choice('noop', 'noop'),
      power: choice('ipmitool', 'ipmitool'),
      raid: choice('no-raid', 'no-raid'),
      rescue: choice('no-rescue', 'no-rescue'),
      storage: choice('noop', 'noop'),
      vendor: choice('ipmitool', 'no-vendor', 'ipmitool'),
    },
    properties: IPMI_PROPERTIES,
  },
};

export function hardwareType(name: string): HardwareType | undefined {
  return Object.hasOwn(HARDWARE_TYPES, name) ? HARDWARE_TYPES[name] : undefined;
}
