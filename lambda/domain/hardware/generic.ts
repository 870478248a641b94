/**
 * Interface implementations several hardware types enable (Ironic's `drivers/generic.py`
 * and `fake_hardware.py`): the `no-*` ones (the kind is not supported), `noop` network
 * and storage, iPXE/PXE boot, the ramdisk deploy, and the simulated `fake` ones.
 */
import { SUPPORTED_BOOT_DEVICES } from '../../../protocol/actions.ts';
import {
  type InterfaceImpl,
  type InterfaceName,
  type InterfaceSpec,
  isPresent,
  type NodeConfig,
  pyList,
} from './interfaces.ts';

/** Ironic's `UnsupportedDriverExtension` text for a `no-*` interface. */
export const unsupported = (node: NodeConfig, kind: InterfaceName): string =>
  `Driver ${node.driver} does not support ${kind} (disabled or not implemented).`;

/** A `no-<kind>` implementation: enabled, but validation says the kind is unsupported. */
function none(kind: InterfaceName): InterfaceImpl {
  return { kind, name: `no-${kind}`, validate: (node) => unsupported(node, kind) };
}

export const noBios = none('bios');
export const noConsole = none('console');
export const noInspect = none('inspect');
export const noRaid = none('raid');
export const noRescue = none('rescue');
export const noVendor = none('vendor');

export const noopNetwork: InterfaceImpl = { kind: 'network', name: 'noop' };
export const noopStorage: InterfaceImpl = { kind: 'storage', name: 'noop' };

/**
 * The PXE/iPXE boot interfaces' `driver_info` keys, Ironic's texts (`pxe_base`'s
 * COMMON_PROPERTIES: the deploy and rescue ramdisks they boot, kernel parameters, boot
 * device persistence). Metalplane reads all but `force_persistent_boot_device` (its
 * deploys set the boot device once, Ironic's 'Default').
 */
const BOOT_PROPERTIES = {
  deploy_kernel: 'UUID (from Glance) of the deployment kernel. Required.',
  deploy_ramdisk: 'UUID (from Glance) of the ramdisk with agent that is used at deploy time. Required.',
  rescue_kernel: 'UUID (from Glance) of the rescue kernel. This value is required for rescue mode.',
  rescue_ramdisk:
    'UUID (from Glance) of the rescue ramdisk with agent that is used at node rescue time. This value is required for rescue mode.',
  kernel_append_params:
    'Additional kernel parameters to pass down to instance kernel. These parameters can be consumed by the kernel or by the applications by reading /proc/cmdline. Mind severe cmdline size limit. When used with virtual media, only applies to ISO images that Ironic builds, but not to pre-built ISOs provided via e.g. deploy_iso. Overrides the [pxe]/kernel_append_params configuration option, use %default% to insert its value.',
  force_persistent_boot_device:
    "Controls the persistency of boot order changes. 'Always' will make all changes persistent, 'Default' will make all but the final one upon instance deployment non-persistent, and 'Never' will make no persistent changes at all. The old values 'True' and 'False' are still supported but deprecated in favor of the new ones.Defaults to 'Default'. Optional.",
};

/** The agent renders boot files keyed by the node's MACs: the node needs a port. */
function portsProblem(node: NodeConfig, ports: number | undefined): string | undefined {
  if (ports === 0) return `Node ${node.uuid} does not have any port associated with it.`;
  return undefined;
}

export const ipxeBoot: InterfaceImpl = {
  kind: 'boot',
  name: 'ipxe',
  properties: BOOT_PROPERTIES,
  validate: (node, ctx) => portsProblem(node, ctx.ports),
};

export const pxeBoot: InterfaceImpl = {
  kind: 'boot',
  name: 'pxe',
  properties: BOOT_PROPERTIES,
  validate: (node, ctx) => portsProblem(node, ctx.ports),
};

/** The ramdisk deploy boots an ISO, or a kernel and ramdisk: `instance_info` names them. */
export function deployProblem(node: NodeConfig): string | undefined {
  const info = node.instance_info;
  if (isPresent(info.image_source) || isPresent(info.boot_iso)) return undefined;
  const missing = ['kernel', 'ramdisk'].filter((key) => !isPresent(info[key]));
  if (missing.length === 0) return undefined;
  return `Missing the following parameters in node's instance_info: ${pyList(['image_source'])} (or ${pyList(missing)}, or 'boot_iso').`;
}

export const ramdiskDeploy: InterfaceImpl = {
  kind: 'deploy',
  name: 'ramdisk',
  validate: (node) => deployProblem(node),
};

/**
 * The direct deploy's keys as Ironic's agent deploy lists them. Metalplane's ramdisk
 * talks to the site agent only (no TLS to verify, no proxy: the image comes from the
 * agent's HTTP tree, Ironic's `image_download_source` "local"); the keys are listed so
 * that clients see Ironic's property list, and documented as ignored (docs/api.md).
 */
const AGENT_DEPLOY_PROPERTIES = {
  agent_verify_ca:
    "Either a Boolean value, a path to a CA_BUNDLE file or directory with certificates of trusted CAs. If set to True ironic will verify the agent's certificate; if False the driver will ignore verifying the SSL certificate. If it's a path the driver will use the specified certificate or one of the certificates in the directory. Defaults to True. Optional",
  deploy_forces_oob_reboot:
    'Whether Ironic should force a reboot of the Node via the out-of-band channel after deployment is complete. Provides compatibility with older deploy ramdisks. Defaults to False. Optional.',
  image_download_source:
    'Specifies whether direct deploy interface should try to use the image source directly or if ironic should cache the image on the conductor and serve it from ironic\'s own HTTP server. Accepted values are "swift", "http" and "local". Optional.',
  image_http_proxy: 'URL of a proxy server for HTTP connections. Optional.',
  image_https_proxy: 'URL of a proxy server for HTTPS connections. Optional.',
  image_no_proxy:
    'A comma-separated list of host names, IP addresses and domain names (with optional :port) that will be excluded from proxying. To denote a domain name, use a dot to prefix the domain name. This value will be ignored if ``image_http_proxy`` and ``image_https_proxy`` are not specified. Optional.',
};

/** Ironic's PXE `_parse_driver_info`: the images of the ramdisk the node boots to be worked on. */
export function ramdiskImagesProblem(node: NodeConfig, mode: 'deploy' | 'rescue'): string | undefined {
  const keys = mode === 'rescue' ? ['rescue_kernel', 'rescue_ramdisk'] : ['deploy_kernel', 'deploy_ramdisk'];
  // Metalplane's rescue boots the same ramdisk: the deploy images stand in for missing rescue ones.
  const fallback = mode === 'rescue' ? ['deploy_kernel', 'deploy_ramdisk'] : [];
  const missing = keys.filter((key, i) => {
    const alt = fallback[i];
    return !isPresent(node.driver_info[key]) && !(alt !== undefined && isPresent(node.driver_info[alt]));
  });
  if (missing.length === 0) return undefined;
  return `Cannot validate PXE bootloader. Some parameters were missing in node's driver_info. Missing are: ${pyList(missing)}`;
}

/**
 * The direct deploy (Ironic's `AgentDeploy`, its default): the node boots Metalplane's
 * ramdisk (`driver_info.deploy_kernel`/`deploy_ramdisk`), which writes the whole-disk
 * image of `instance_info.image_source` and the config drive to the root device; the
 * node then boots from its disk. The same ramdisk cleans it (`flows/clean.ts`).
 */
export const directDeploy: InterfaceImpl = {
  kind: 'deploy',
  name: 'direct',
  properties: AGENT_DEPLOY_PROPERTIES,
  validate(node) {
    const images = ramdiskImagesProblem(node, 'deploy');
    if (images) return images;
    if (isPresent(node.instance_info.image_source)) return undefined;
    return `Missing the following parameters in node's instance_info: ${pyList(['image_source'])}`;
  },
};

/**
 * Rescue with Metalplane's ramdisk (Ironic's `agent` rescue interface): the node boots
 * it (`rescue_kernel`/`rescue_ramdisk`, else the deploy ones) and the ramdisk sets the
 * `rescue` user's password; unrescue boots the instance from its disk again.
 */
export const agentRescue: InterfaceImpl = {
  kind: 'rescue',
  name: 'agent',
  validate: (node) => ramdiskImagesProblem(node, 'rescue'),
};

/**
 * In-band inspection (Ironic's `agent` inspect interface): the node boots Metalplane's
 * ramdisk, which reports its inventory; the control plane sets the node's properties
 * and ports from it (`domain/inspection/`). It boots the node as its boot interface
 * does, which validates itself: nothing more to check here (Ironic's `AgentInspect`
 * checks only its own configuration and that it manages the boot).
 */
export const agentInspect: InterfaceImpl = { kind: 'inspect', name: 'agent' };

/** A simulated implementation (fake-hardware's): always valid. */
const simulated = (kind: InterfaceName): InterfaceImpl => ({ kind, name: 'fake' });

export const fake = {
  bios: simulated('bios'),
  boot: simulated('boot'),
  console: simulated('console'),
  deploy: simulated('deploy'),
  inspect: simulated('inspect'),
  // Ironic's fake management supports PXE only.
  management: { ...simulated('management'), bootDevices: SUPPORTED_BOOT_DEVICES.fake },
  power: simulated('power'),
  raid: simulated('raid'),
  rescue: simulated('rescue'),
  vendor: simulated('vendor'),
} as const;

/** A kind with a single implementation, its default. */
export const only = (impl: InterfaceImpl): InterfaceSpec => ({ default: impl, enabled: [impl] });

/**
 * What a type driven by Metalplane's agent starts from: iPXE (or PXE) boot files, the
 * direct deploy (or the ramdisk one), `noop` network and storage, the agent rescue (not
 * the default, as in Ironic), and no bios, console, inspect, raid or vendor interface. A type spreads it and declares its own power and management (and
 * whatever else it implements): `defineHardwareType('x', { ...AGENT_BASELINE, power, management })`.
 */
export const AGENT_BASELINE = {
  bios: only(noBios),
  boot: { default: ipxeBoot, enabled: [ipxeBoot, pxeBoot] },
  console: only(noConsole),
  // Ironic's default deploy interface is the first enabled: `direct`.
  deploy: { default: directDeploy, enabled: [directDeploy, ramdiskDeploy] },
  inspect: only(noInspect),
  network: only(noopNetwork),
  raid: only(noRaid),
  rescue: { default: noRescue, enabled: [agentRescue, noRescue] },
  storage: only(noopStorage),
  vendor: only(noVendor),
} as const satisfies Partial<Record<InterfaceName, InterfaceSpec>>;
