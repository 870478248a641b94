/**
 * The redfish interfaces' `driver_info`, parsed as Ironic's `parse_driver_info`
 * (`ironic/drivers/modules/redfish/utils.py`) with its messages, into what the client needs.
 * The control plane runs the same checks first (`lambda/domain/hardware/redfish/driver-info.ts`);
 * only the agent can check a `redfish_verify_ca` path, which names a file on its machine.
 */
import { statSync } from 'node:fs';

export const REDFISH_AUTH_TYPES = ['basic', 'session', 'auto'] as const;
export type RedfishAuthType = (typeof REDFISH_AUTH_TYPES)[number];

/** `true`: the system's trust store; `false`: no verification; `{ca}`: that bundle file or PEM directory. */
export type VerifyCa = boolean | { readonly ca: string };

/** One node's BMC as the client talks to it. */
export interface RedfishTarget {
  /** The node's UUID (for messages). */
  readonly node: string;
  /** `scheme://host[:port]`, the BMC's name in every message (never credentials). */
  readonly address: string;
  /** The service root's path, without a trailing slash (default `/redfish/v1`). */
  readonly rootPrefix: string;
  /** The ComputerSystem's path when given (URL-quoted as Ironic does); else the only member of Systems. */
  readonly systemId?: string;
  readonly username?: string;
  readonly password?: string;
  readonly verify: VerifyCa;
  readonly authType: RedfishAuthType;
}

/** What validation says when the node's UUID is not known (an action's `validate` sees only its args). */
export const UNKNOWN_NODE = '(unknown)';
const DEFAULT_ROOT = '/redfish/v1';

/** oslo.utils `bool_from_string(strict=True)`. */
const TRUE_STRINGS = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE_STRINGS = new Set(['0', 'f', 'false', 'off', 'n', 'no']);

const TEXT = (value: unknown): value is string => typeof value === 'string' && !/[\0\n\r]/.test(value);

/** Python's `repr` of a list of strings, as Ironic prints them. */
const pyList = (items: readonly string[]) => `[${items.map((i) => `'${i}'`).join(', ')}]`;

/** `urllib.parse.quote(value, safe='/')`: what Ironic does to `redfish_system_id`. */
export function quotePath(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~/-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Hides `user:password@` in an address echoed back in a message. */
export const hideUserinfo = (value: string) => value.replace(/\/\/[^/@]*@/, '//***@');

/** The address as Ironic normalizes it (`https://` when no scheme); undefined when unusable. */
export function redfishUrl(value: string): URL | undefined {
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value) ? value : `https://${value}`;
  try {
    const url = new URL(withScheme);
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '') return undefined;
    // Credentials belong in redfish_username/password (an address is printed in messages).
    if (url.username || url.password || url.search || url.hash) return undefined;
    return url;
  } catch {
    return undefined;
  }
}

function verifyCa(value: unknown): VerifyCa | undefined {
  if (value === undefined || value === null) return true;
  if (typeof value === 'boolean') return value;
  if (!TEXT(value)) return undefined;
  const lower = value.toLowerCase();
  if (TRUE_STRINGS.has(lower)) return true;
  if (FALSE_STRINGS.has(lower)) return false;
  // Ironic: a file (a CA bundle) or a directory (PEM files), read by whoever talks to the BMC.
  try {
    const stat = statSync(value);
    return stat.isFile() || stat.isDirectory() ? { ca: value } : undefined;
  } catch {
    return undefined;
  }
}

/** Ironic's checks; the first problem as Ironic words it, or the target. */
export function parseRedfishDriverInfo(
  info: Readonly<Record<string, unknown>>,
  node: string = UNKNOWN_NODE,
): { target: RedfishTarget } | { problem: string } {
  const address = info.redfish_address;
  if (address === undefined || address === null || address === '' || address === false || address === 0) {
    return {
      problem: `Missing the following Redfish properties in node ${node} driver_info: ${pyList(['redfish_address'])}`,
    };
  }
  const url = typeof address === 'string' && address.length <= 2048 ? redfishUrl(address) : undefined;
  if (!url) {
    return {
      problem: `Invalid Redfish address ${hideUserinfo(String(address))} set in driver_info/redfish_address on node ${node}`,
    };
  }
  const systemId = info.redfish_system_id;
  if (systemId !== undefined && systemId !== null && (!TEXT(systemId) || !systemId.startsWith('/'))) {
    return {
      problem: `Invalid value "${String(systemId)}" set in driver_info/redfish_system_id on node ${node}. The value should be a path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1`,
    };
  }
  const verify = verifyCa(info.redfish_verify_ca);
  if (verify === undefined) {
    return {
      problem: `Invalid value type set in driver_info/redfish_verify_ca on node ${node}. The value should be a Boolean or the path to a file/directory, not "${String(info.redfish_verify_ca)}"`,
    };
  }
  const authType = info.redfish_auth_type ?? 'auto';
  if (!REDFISH_AUTH_TYPES.includes(authType as RedfishAuthType)) {
    return {
      problem: `Invalid value "${String(authType)}" set in driver_info/redfish_auth_type on node ${node}. The value should be one of "basic", "session" or "auto".`,
    };
  }
  for (const field of ['redfish_username', 'redfish_password']) {
    const value = info[field];
    if (value !== undefined && value !== null && !TEXT(value)) {
      // Never the value: it may be the password.
      return { problem: `Invalid ${field}: it must be a string without NUL or newline characters.` };
    }
  }
  const path = url.pathname.replace(/\/+$/, '');
  return {
    target: {
      node,
      address: url.origin,
      rootPrefix: path === '' ? DEFAULT_ROOT : path,
      ...(typeof systemId === 'string' ? { systemId: quotePath(systemId) } : {}),
      ...(typeof info.redfish_username === 'string' ? { username: info.redfish_username } : {}),
      ...(typeof info.redfish_password === 'string' ? { password: info.redfish_password } : {}),
      verify,
      authType: authType as RedfishAuthType,
    },
  };
}

/** The first problem, or undefined (a `PowerControl`'s `validate`). */
export function redfishDriverInfoProblem(
  info: Readonly<Record<string, unknown>>,
  node: string = UNKNOWN_NODE,
): string | undefined {
  const parsed = parseRedfishDriverInfo(info, node);
  return 'problem' in parsed ? parsed.problem : undefined;
}
