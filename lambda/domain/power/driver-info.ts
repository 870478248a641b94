/**
 * Checks of a node's `driver_info` per interface, as Ironic's drivers make them in
 * `validate()` (ipmitool's `_parse_driver_info`), and the `GET /v1/nodes/{node}/validate`
 * report built from them. No BMC is contacted: like Ironic, validation only says
 * whether the node's configuration is complete and well formed.
 */
import type { Node } from '../nodes/node.ts';

const PRIV_LEVELS = ['ADMINISTRATOR', 'CALLBACK', 'OPERATOR', 'USER'];
const PROTOCOL_VERSIONS = ['1.5', '2.0'];
const BRIDGING = ['dual', 'no', 'single'];
const HOST = /^[A-Za-z0-9.:_%-]{1,253}$/;
/** A bridging channel or IPMB address, as ipmitool's -b/-t/-B/-T/-m take them. */
const BRIDGE_VALUE = /^(0x[0-9a-fA-F]{1,2}|\d{1,3})$/;

/** Python's repr of a list of strings, as Ironic prints them in messages. */
const pyList = (items: readonly string[]) => `[${items.map((i) => `'${i}'`).join(', ')}]`;

function isPresent(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '' && value !== false && value !== 0;
}

function portProblem(info: Record<string, unknown>, field: string): string | undefined {
  const value = info[field];
  if (value === undefined || value === null) return undefined;
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `${String(value)} is not a valid ${field}. Expected integer in range 1-65535.`;
  }
  return undefined;
}

/** Ironic's ipmitool `_parse_driver_info` checks; the message of the first problem. */
export function ipmiDriverInfoProblem(driverInfo: Record<string, unknown>): string | undefined {
  const missing = ['ipmi_address'].filter((key) => !isPresent(driverInfo[key]));
  if (missing.length > 0)
    return `Missing the following IPMI credentials in node's driver_info: ${pyList(missing)}.`;
  const address = driverInfo.ipmi_address;
  if (typeof address !== 'string' || !HOST.test(address)) {
    return `Invalid ipmi_address ${String(address)}: expected a host name or IP address.`;
  }
  const protocol = String(driverInfo.ipmi_protocol_version ?? '2.0');
  if (!PROTOCOL_VERSIONS.includes(protocol)) {
    return `Invalid IPMI protocol version value ${protocol}, the valid value can be one of ${PROTOCOL_VERSIONS.join(', ')}`;
  }
  const port = portProblem(driverInfo, 'ipmi_port');
  if (port) return port;
  const bridging = String(driverInfo.ipmi_bridging ?? 'no');
  if (!BRIDGING.includes(bridging)) {
    return `Invalid value for ipmi_bridging: ${bridging}, the valid value can be one of: ${pyList(['single', 'dual', 'no'])}`;
  }
  if (bridging !== 'no') {
    const needed = ['ipmi_target_channel', 'ipmi_target_address'];
    if (bridging === 'dual') needed.push('ipmi_transit_channel', 'ipmi_transit_address');
    const missing = needed.filter((key) => driverInfo[key] === undefined || driverInfo[key] === null);
    if (missing.length > 0) return `${pyList(missing)} not provided`;
    for (const key of [...needed, 'ipmi_local_address']) {
      const value = driverInfo[key];
      if (value !== undefined && value !== null && !BRIDGE_VALUE.test(String(value))) {
        return `Invalid ${key}: ${String(value)}. It must be a number, decimal or 0x-hexadecimal (0-255).`;
      }
    }
  }
  const priv = String(driverInfo.ipmi_priv_level ?? 'ADMINISTRATOR');
  if (!PRIV_LEVELS.includes(priv)) {
    return `Invalid privilege level value:${priv}, the valid value can be one of ${PRIV_LEVELS.join(', ')}`;
  }
  const suite = driverInfo.ipmi_cipher_suite;
  if (suite !== undefined && suite !== null) {
    const n = typeof suite === 'string' && /^\d+$/.test(suite) ? Number(suite) : suite;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 17) {
      return `Invalid value for ipmi_cipher_suite: ${String(suite)}. It must be an integer from 0 to 17.`;
    }
  }
  for (const field of ['ipmi_username', 'ipmi_password']) {
    const value = driverInfo[field];
    if (value !== undefined && value !== null && (typeof value !== 'string' || /[\0\n]/.test(value))) {
      return `Invalid ${field}: it must be a string without NUL or newline characters.`;
    }
  }
  return undefined;
}

/** The problem (Ironic's message) with the node's configuration for one interface, if any. */
export function validateDriverInfo(node: Node, iface: 'power' | 'management'): string | undefined {
  const name = iface === 'power' ? node.power_interface : node.management_interface;
  if (name === 'ipmitool') return ipmiDriverInfoProblem(node.driver_info as Record<string, unknown>);
  return undefined;
}

/** Interfaces in the order Ironic reports them (core, then standard). */
const REPORTED_INTERFACES = [
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
] as const;

export interface InterfaceValidation {
  readonly result: boolean;
  readonly reason?: string;
}

/** Ironic's `UnsupportedDriverExtension` text for a `no-*` interface. */
const unsupported = (node: Node, iface: string) =>
  `Driver ${node.driver} does not support ${iface} (disabled or not implemented).`;

function interfaceName(node: Node, iface: string): string | null {
  return (node as unknown as Record<string, string | null>)[`${iface}_interface`] ?? null;
}

function pxeProblem(node: Node, portCount: number): string | undefined {
  if (portCount === 0) return `Node ${node.uuid} does not have any port associated with it.`;
  return undefined;
}

function deployProblem(node: Node): string | undefined {
  const info = node.instance_info as Record<string, unknown>;
  if (isPresent(info.image_source) || isPresent(info.boot_iso)) return undefined;
  const missing = ['kernel', 'ramdisk'].filter((key) => !isPresent(info[key]));
  if (missing.length === 0) return undefined;
  return `Missing the following parameters in node's instance_info: ${pyList(['image_source'])} (or ${pyList(missing)}, or 'boot_iso').`;
}

/**
 * `GET /v1/nodes/{node}/validate`. `ports` is the number of the node's ports, which the
 * PXE/iPXE boot interfaces need to key boot files by MAC.
 */
export function validateNode(node: Node, ports: number): Record<string, InterfaceValidation> {
  const report: Record<string, InterfaceValidation> = {};
  for (const iface of REPORTED_INTERFACES) {
    const name = interfaceName(node, iface);
    let problem: string | undefined;
    if (name === null || name.startsWith('no-')) problem = unsupported(node, iface);
    else if (iface === 'power' || iface === 'management') problem = validateDriverInfo(node, iface);
    else if (iface === 'boot' && (name === 'ipxe' || name === 'pxe')) problem = pxeProblem(node, ports);
    else if (iface === 'deploy' && name === 'ramdisk') problem = deployProblem(node);
    report[iface] = problem ? { result: false, reason: problem } : { result: true };
  }
  return report;
}
