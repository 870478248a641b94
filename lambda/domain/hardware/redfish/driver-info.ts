/**
 * The redfish interfaces' `driver_info`: the properties they read and Ironic's checks of
 * them (`ironic/drivers/modules/redfish/utils.py`, `parse_driver_info`). No BMC is
 * contacted here: validation says whether the configuration is complete and well formed.
 *
 * One difference from Ironic, because the BMC is reached from the site agent and not from
 * the control plane: a `redfish_verify_ca` path names a file or directory on the agent's
 * machine, so it cannot be checked here. An absolute path is accepted and the agent
 * checks it at the call (its error becomes the command's `last_error`); any other
 * string must be one of oslo's strict booleans, as in Ironic.
 */
import { isPresent, pyList } from '../interfaces.ts';

/** `GET /v1/drivers/redfish/properties`, Ironic's texts (`REQUIRED_PROPERTIES` + `OPTIONAL_PROPERTIES`). */
export const REDFISH_PROPERTIES: Readonly<Record<string, string>> = {
  redfish_address:
    'The URL address to the Redfish controller. It must include the authority portion of the URL. If the scheme is missing, https is assumed. For example: https://mgmt.vendor.com. If a path is added, it will be used as the API endpoint root_prefix. Required',
  redfish_system_id:
    'The canonical path to the ComputerSystem resource that the driver will interact with. It should include the root service, version and the unique resource path to a ComputerSystem within the same authority as the redfish_address property. For example: /redfish/v1/Systems/1. This property is only required if target BMC manages more than one ComputerSystem. Otherwise ironic will pick the only available ComputerSystem automatically.',
  redfish_username:
    "User account with admin/server-profile access privilege. Although this property is not mandatory it's highly recommended to set a username. Optional",
  redfish_password:
    "User account password. Although this property is not mandatory, it's highly recommended to set a password. Optional",
  redfish_verify_ca:
    "Either a Boolean value, a path to a CA_BUNDLE file or directory with certificates of trusted CAs. If set to True the driver will verify the host certificates; if False the driver will ignore verifying the SSL certificate. If it's a path the driver will use the specified certificate or one of the certificates in the directory. Defaults to True. Optional",
  redfish_auth_type:
    'Redfish HTTP client authentication method. Can be "basic", "session" or "auto". If not set, the default value is taken from Ironic configuration as ``[redfish]auth_type`` option.',
};

export const REDFISH_AUTH_TYPES = ['basic', 'session', 'auto'] as const;

/** oslo.utils `bool_from_string(strict=True)`'s accepted strings. */
const BOOL_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes', '0', 'f', 'false', 'off', 'n', 'no'];

/** The address as Ironic normalizes it: `https://` when no scheme; undefined when invalid. */
export function redfishAddress(value: string): URL | undefined {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value) ? value : `https://${value}`;
  try {
    const url = new URL(withScheme);
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '') return undefined;
    if (url.username || url.password || url.search || url.hash) return undefined;
    return url;
  } catch {
    return undefined;
  }
}

const TEXT = (value: unknown) => typeof value === 'string' && !/[\0\n\r]/.test(value);

/** Ironic's `parse_driver_info` checks; the message of the first problem. */
export function redfishDriverInfoProblem(
  uuid: string,
  driverInfo: Readonly<Record<string, unknown>>,
): string | undefined {
  if (!isPresent(driverInfo.redfish_address)) {
    return `Missing the following Redfish properties in node ${uuid} driver_info: ${pyList(['redfish_address'])}`;
  }
  const address = driverInfo.redfish_address;
  if (typeof address !== 'string' || address.length > 2048 || !redfishAddress(address)) {
    return `Invalid Redfish address ${String(address)} set in driver_info/redfish_address on node ${uuid}`;
  }
  const systemId = driverInfo.redfish_system_id;
  if (systemId !== undefined && systemId !== null && (!TEXT(systemId) || !String(systemId).startsWith('/'))) {
    return `Invalid value "${String(systemId)}" set in driver_info/redfish_system_id on node ${uuid}. The value should be a path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1`;
  }
  const verifyCa = driverInfo.redfish_verify_ca;
  const verifyOk =
    verifyCa === undefined ||
    typeof verifyCa === 'boolean' ||
    (typeof verifyCa === 'string' &&
      (BOOL_STRINGS.includes(verifyCa.toLowerCase()) || (verifyCa.startsWith('/') && TEXT(verifyCa))));
  if (!verifyOk) {
    return `Invalid value type set in driver_info/redfish_verify_ca on node ${uuid}. The value should be a Boolean or the path to a file/directory, not "${String(verifyCa)}"`;
  }
  const authType = driverInfo.redfish_auth_type ?? 'auto';
  if (!REDFISH_AUTH_TYPES.includes(authType as (typeof REDFISH_AUTH_TYPES)[number])) {
    return `Invalid value "${String(authType)}" set in driver_info/redfish_auth_type on node ${uuid}. The value should be one of "basic", "session" or "auto".`;
  }
  for (const field of ['redfish_username', 'redfish_password']) {
    const value = driverInfo[field];
    if (value !== undefined && value !== null && !TEXT(value)) {
      return `Invalid ${field}: it must be a string without NUL or newline characters.`;
    }
  }
  return undefined;
}
