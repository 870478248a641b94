/**
 * The ipmitool interfaces' `driver_info`: the properties they read and Ironic's checks of
 * them (ipmitool's `_parse_driver_info`). No BMC is contacted: like Ironic, validation
 * only says whether the node's configuration is complete and well formed.
 */
import { isPresent, pyList } from '../interfaces.ts';

/** `GET /v1/drivers/ipmi/properties`, Ironic's texts. */
export const IPMI_PROPERTIES: Readonly<Record<string, string>> = {
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
  ipmi_disable_boot_timeout:
    'By default ironic will send a raw IPMI command to disable the 60 second timeout for booting. Setting this option to False will NOT send that command on this node. The [ipmi]disable_boot_timeout will be used if this option is not set. Optional.',
  ipmi_cipher_suite:
    'The number of a cipher suite to use. Only 3 (AES-128 with SHA1) or 17 (AES-128 with SHA256) should ever be used; 17 is preferred. The default value depends on the ipmitool version, some recent versions have switched from 3 to 17.',
};

const PRIV_LEVELS = ['ADMINISTRATOR', 'CALLBACK', 'OPERATOR', 'USER'];
const PROTOCOL_VERSIONS = ['1.5', '2.0'];
const BRIDGING = ['dual', 'no', 'single'];
const HOST = /^[A-Za-z0-9.:_%-]{1,253}$/;
/** A bridging channel or IPMB address, as ipmitool's -b/-t/-B/-T/-m take them. */
const BRIDGE_VALUE = /^(0x[0-9a-fA-F]{1,2}|\d{1,3})$/;

function portProblem(info: Readonly<Record<string, unknown>>, field: string): string | undefined {
  const value = info[field];
  if (value === undefined || value === null) return undefined;
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return `${String(value)} is not a valid ${field}. Expected integer in range 1-65535.`;
  }
  return undefined;
}

/** Ironic's ipmitool `_parse_driver_info` checks; the message of the first problem. */
export function ipmiDriverInfoProblem(driverInfo: Readonly<Record<string, unknown>>): string | undefined {
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
