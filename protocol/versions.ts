/**
 * Protocol versions and features: what an agent of each protocol version can do, so that
 * the control plane serves agents one version behind (docs/upgrades.md).
 *
 * - `v` on every message (`WIRE_VERSION`) is the envelope's version: the shape every message
 *   is validated against. It stays 1 while changes are additive (a new optional field, a
 *   new message type the control plane sends only to agents that know it).
 * - `protocol_version` in `hello` (`PROTOCOL_VERSION`) is the feature level. A `hello`
 *   without it is protocol 1 (every agent released before protocol 2).
 * - A feature is a catalog action (`protocol/actions.ts`) or a protocol feature
 *   (`PROTOCOL_FEATURES`). An agent of protocol 2 or later announces its own in `hello`
 *   (`features`); one of protocol 1 is taken to have `PROTOCOL_1_FEATURES`, the features
 *   of the last agent released at protocol 1.
 *
 * The control plane accepts protocols `OLDEST_SUPPORTED_PROTOCOL`..`PROTOCOL_VERSION` and
 * refuses others with `protocolRefusal`'s reason.
 *
 * This module imports nothing of `lambda/` or `agent/`; both import it.
 */
import { ACTION_NAMES } from './actions.ts';

/** The envelope's `v` (unchanged by additive changes). */
export const WIRE_VERSION = 1;
/** The protocol (feature level) this build speaks. */
export const PROTOCOL_VERSION = 2;
/** The oldest protocol the control plane still serves: one behind. */
export const OLDEST_SUPPORTED_PROTOCOL = PROTOCOL_VERSION - 1;
/** What a `hello` without `protocol_version` speaks. */
export const LEGACY_PROTOCOL = 1;

/**
 * Protocol features beyond the action catalog, with the protocol that brought them:
 * - `welcome`: the control plane answers `hello` with a `welcome` message (its protocol,
 *   what the agent lacks); an agent that does not know it is never sent one.
 */
export const PROTOCOL_FEATURES = { welcome: 2 } as const satisfies Record<string, number>;
export type ProtocolFeature = keyof typeof PROTOCOL_FEATURES;

/**
 * The catalog as the last protocol-1 agent knew it (commit 398f5ab): frozen here, since
 * a protocol-1 agent does not say what it has.
 */
export const PROTOCOL_1_FEATURES: readonly string[] = [
  'noop',
  'sleep',
  'fail',
  'power.set',
  'power.get',
  'management.set_boot_device',
  'management.get_boot_device',
  'management.get_supported_boot_devices',
  'management.set_boot_mode',
  'management.set_secure_boot',
  'management.get_indicators',
  'management.get_indicator_state',
  'management.set_indicator_state',
  'management.insert_vmedia',
  'management.eject_vmedia',
  'management.inject_nmi',
  'boot.prepare',
  'boot.clean',
  'ramdisk.run_step',
  'ramdisk.wait',
  'ramdisk.write_image',
  'ramdisk.write_configdrive',
];

/** Every feature this build has: the catalog's actions and the protocol features, sorted. */
export const CURRENT_FEATURES: readonly string[] = [
  ...new Set([...ACTION_NAMES, ...Object.keys(PROTOCOL_FEATURES)]),
].sort();

/** The protocol a `hello` announces (absent: the legacy protocol 1). */
export function announcedProtocol(hello: { protocol_version?: number }): number {
  return hello.protocol_version ?? LEGACY_PROTOCOL;
}

export function isSupportedProtocol(protocol: number): boolean {
  return protocol >= OLDEST_SUPPORTED_PROTOCOL && protocol <= PROTOCOL_VERSION;
}

/** Why an agent of `protocol` is refused, or undefined when it is served. */
export function protocolRefusal(
  agent: { hostname: string; agent_version?: string | null },
  protocol: number,
): string | undefined {
  if (isSupportedProtocol(protocol)) return undefined;
  const who = `agent ${agent.hostname} (version ${agent.agent_version ?? 'unknown'}, protocol ${protocol})`;
  const served = `this control plane serves protocols ${OLDEST_SUPPORTED_PROTOCOL} to ${PROTOCOL_VERSION}`;
  return protocol < OLDEST_SUPPORTED_PROTOCOL
    ? `${who} is too old: ${served}; upgrade the agent`
    : `${who} is newer than the control plane: ${served}; upgrade the control plane or roll the agent back`;
}

/** The features an agent has: what it announced, else its protocol's baseline. */
export function agentFeatures(protocol: number, announced?: readonly string[] | null): readonly string[] {
  if (announced) return announced;
  return protocol <= LEGACY_PROTOCOL ? PROTOCOL_1_FEATURES : CURRENT_FEATURES;
}

/** This build's features the agent lacks, sorted. */
export function missingFeatures(protocol: number, announced?: readonly string[] | null): string[] {
  const has = new Set(agentFeatures(protocol, announced));
  return CURRENT_FEATURES.filter((feature) => !has.has(feature));
}

/** Whether an agent of `protocol` with `announced` features has `feature`. */
export function hasFeature(
  protocol: number,
  announced: readonly string[] | null | undefined,
  feature: string,
) {
  return agentFeatures(protocol, announced).includes(feature);
}

/** The command failure for an action the agent lacks. */
export function unsupportedActionError(
  agent: { hostname: string; agent_version?: string | null },
  protocol: number,
  action: string,
): string {
  return `agent ${agent.hostname} (version ${agent.agent_version ?? 'unknown'}, protocol ${protocol}) does not support action ${action}: upgrade the agent`;
}

/**
 * A refused `hello`'s protocol when the text is not a valid message at all (an agent newer
 * than the schema, another envelope `v`): the announced protocol if unsupported, else
 * undefined (then the message is refused as malformed).
 */
export function unsupportedHelloProtocol(raw: string | Buffer): number | undefined {
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, v, protocol_version } = value as Record<string, unknown>;
  if (type !== 'hello') return undefined;
  if (typeof protocol_version === 'number' && Number.isInteger(protocol_version)) {
    return isSupportedProtocol(protocol_version) ? undefined : protocol_version;
  }
  // Another envelope with no protocol_version: call it by its `v`.
  if (typeof v === 'number' && Number.isInteger(v) && v !== WIRE_VERSION && !isSupportedProtocol(v)) return v;
  return undefined;
}
