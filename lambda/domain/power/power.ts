/**
 * Power and management as the API sees them (Ironic's `NodeStatesController.power`,
 * `BootDeviceController` and the conductor's synchronous checks): which targets exist,
 * what a request must carry at which microversion, what each hardware type supports,
 * what the node shows while an action is in flight, and the messages Ironic writes.
 * Pure: the conductor (`lambda/conductor/`) stores and dispatches.
 */
import {
  BOOT_DEVICES,
  BOOT_MODES,
  type BootDevice,
  type BootMode,
  INDICATOR_STATES,
  type IndicatorComponent,
  type IndicatorState,
  indicatorProblem,
  isPowerTarget,
  POWER_OFF,
  POWER_ON,
  POWER_TARGETS,
  type PowerTarget,
  REBOOT,
  SOFT_POWER_OFF,
  SOFT_REBOOT,
} from '../../../protocol/actions.ts';
import { conflict, invalid, notAcceptable, notFound } from '../errors.ts';
import { hardwareTypes } from '../hardware/registry.ts';
import { validateDriverInfo } from '../hardware/validate.ts';
import type { Node } from '../nodes/node.ts';

// The power targets and boot devices are the agent protocol's (`protocol/actions.ts`).
export {
  BOOT_DEVICES,
  type BootDevice,
  POWER_OFF,
  POWER_ON,
  POWER_TARGETS,
  type PowerTarget,
  REBOOT,
  SOFT_POWER_OFF,
  SOFT_REBOOT,
};

/** Soft power actions and `timeout` arrived in 1.27 (`allow_soft_power_off`). */
export const SOFT_POWER_MINOR = 27;

/** Ironic's `[conductor]soft_power_off_timeout` and `[conductor]power_state_change_timeout`. */
export const SOFT_POWER_OFF_TIMEOUT_SECONDS = 600;
export const POWER_STATE_CHANGE_TIMEOUT_SECONDS = 60;

export interface PowerRequest {
  readonly target: PowerTarget;
  /** Seconds the agent waits for the BMC to reach the target (Ironic's `timeout`). */
  readonly timeout: number | undefined;
}

/** Provision states in which Ironic refuses power changes (the node is being cleaned). */
const NO_POWER_CHANGE_STATES = new Set(['clean wait', 'cleaning']);

const requested = (action: string, node: string, state: string | null) =>
  invalid(
    `The requested action "${action}" can not be performed on node "${node}" while it is in state "${state ?? 'None'}".`,
  );

/**
 * `PUT /v1/nodes/{node}/states/power`, checked in Ironic's order: version gates (406),
 * timeout, target, provision state (400), the lock (409), then the driver's own
 * validation and supported states (400).
 */
export function checkPowerRequest(
  node: Node,
  ident: string,
  body: { target?: unknown; timeout?: unknown },
  minor: number,
): PowerRequest {
  const target = body.target;
  const timeout = integerArg('timeout', body.timeout);
  if (
    (target === SOFT_REBOOT || target === SOFT_POWER_OFF || (typeof timeout === 'number' && timeout !== 0)) &&
    minor < SOFT_POWER_MINOR
  ) {
    throw notAcceptable('Request not acceptable.');
  }
  if (typeof timeout === 'number' && timeout < 1) throw invalid('timeout has to be positive integer');
  if (typeof target !== 'string' || !isPowerTarget(target)) {
    throw requested(String(target), ident, node.power_state);
  }
  if (NO_POWER_CHANGE_STATES.has(node.provision_state)) throw requested(target, ident, node.provision_state);
  checkInterfaceCall(node, 'power');
  return { target: target as PowerTarget, timeout: typeof timeout === 'number' ? timeout : undefined };
}

/** Ironic's NodeLocked (409). */
export function checkNotLocked(node: Node): void {
  if (node.reservation) {
    throw conflict(
      `Node ${node.uuid} is locked by host ${node.reservation}, please retry after the current operation is completed.`,
    );
  }
}

/** A call through one of the node's interfaces: the node free (409), the interface configured (400). */
function checkInterfaceCall(node: Node, iface: 'power' | 'management'): void {
  checkNotLocked(node);
  const problem = validateDriverInfo(node, iface);
  if (problem) throw invalid(problem);
}

/** The state a power action leads to (`target_power_state` while it runs). */
export function targetPowerState(target: PowerTarget): typeof POWER_ON | typeof POWER_OFF {
  return target === POWER_ON || target === REBOOT || target === SOFT_REBOOT ? POWER_ON : POWER_OFF;
}

/** How long the agent may wait for the BMC: the request's timeout or Ironic's defaults. */
export function powerTimeoutSeconds(request: PowerRequest): number {
  if (request.timeout !== undefined) return request.timeout;
  return request.target === SOFT_POWER_OFF || request.target === SOFT_REBOOT
    ? SOFT_POWER_OFF_TIMEOUT_SECONDS
    : POWER_STATE_CHANGE_TIMEOUT_SECONDS;
}

/** Ironic's `last_error` for a failed power action (conductor/utils.py). */
export function powerFailureMessage(target: string, error: string): string {
  return `Failed to change power state to '${targetPowerState(target as PowerTarget)}' by '${target}': ${error}`;
}

/** Boot devices the node's management interface supports (Ironic's `get_supported_boot_devices`). */
export function supportedBootDevices(node: Node): readonly BootDevice[] {
  const iface = node.management_interface;
  if (!iface) return [];
  return hardwareTypes.implementation('management', iface, node.driver)?.bootDevices ?? [];
}

/** Whether `.../boot_device/supported` is the BMC's answer (through the agent) for this node. */
export function bootDevicesFromBmc(node: Node): boolean {
  const iface = node.management_interface;
  return (
    !!iface && hardwareTypes.implementation('management', iface, node.driver)?.bootDevicesFromBmc === true
  );
}

export interface BootDeviceRequest {
  readonly boot_device: BootDevice;
  readonly persistent: boolean;
}

/** `PUT /v1/nodes/{node}/management/boot_device`: the device must be one the driver supports. */
export function checkBootDeviceRequest(
  node: Node,
  body: { boot_device?: unknown; persistent?: unknown },
): BootDeviceRequest {
  const device = body.boot_device;
  if (typeof device !== 'string' || !supportedBootDevices(node).includes(device as BootDevice)) {
    throw invalid(`Invalid boot device ${String(device)} specified.`);
  }
  const persistent = booleanArg('persistent', body.persistent ?? false);
  checkManagementCall(node);
  return { boot_device: device as BootDevice, persistent };
}

/** `states/boot_mode` and `states/secure_boot` arrived in 1.76 (MINOR_76_NODE_CHANGE_BOOT_MODE). */
export const BOOT_MODE_MINOR = 76;

/** Ironic's UNSTABLE_STATES: a node moving on its own refuses firmware changes (409). */
const UNSTABLE_STATES: ReadonlySet<string> = new Set([
  'deploying',
  'wait call-back',
  'cleaning',
  'clean wait',
  'verifying',
  'deleting',
  'inspecting',
  'inspect wait',
  'adopting',
  'rescuing',
  'rescue wait',
  'unrescuing',
]);

function checkFirmwareChange(minor: number): void {
  if (minor < BOOT_MODE_MINOR) {
    throw notFound(`This endpoint is supported starting with the API version 1.${BOOT_MODE_MINOR}`);
  }
}

function checkStable(node: Node): void {
  if (UNSTABLE_STATES.has(node.provision_state)) {
    throw conflict(
      `Node is in ${node.provision_state} state. Since node is transitioning, the boot mode will not be set as this may interfere with ongoing changes and result in erroneous modification. Try again later.`,
    );
  }
  checkManagementCall(node);
}

/** `PUT .../states/boot_mode {target}` (Ironic's `NodeStatesController.boot_mode`). */
export function checkBootModeRequest(node: Node, body: { target?: unknown }, minor: number): BootMode {
  checkFirmwareChange(minor);
  const target = body.target;
  if (typeof target !== 'string' || !BOOT_MODES.includes(target as BootMode)) {
    throw invalid(
      `Invalid boot mode ${String(target ?? 'None')} requested for node. Allowed boot modes are: ${BOOT_MODES.join(', ')}`,
    );
  }
  checkStable(node);
  return target as BootMode;
}

/** `PUT .../states/secure_boot {target}` (Ironic's `NodeStatesController.secure_boot`). */
export function checkSecureBootRequest(node: Node, body: { target?: unknown }, minor: number): boolean {
  checkFirmwareChange(minor);
  if (body.target === undefined || body.target === null) {
    throw invalid(
      'Invalid secure_boot None requested for node. Allowed secure_boot states are: True, False) ',
    );
  }
  const target = booleanArg('target', body.target);
  checkStable(node);
  return target;
}

/**
 * An indicator's id in the API, `<name>@<component>` (Ironic's IndicatorAtComponent):
 * the component one of Ironic's, the name what the driver listed.
 */
export function parseIndicatorId(unique: string): { component: IndicatorComponent; indicator: string } {
  const at = unique.indexOf('@');
  if (at < 0) throw invalid(`Malformed indicator name "${unique}"`);
  const indicator = unique.slice(0, at);
  const component = unique.slice(at + 1);
  const problem = indicatorProblem({ component, indicator });
  if (problem) throw invalid(problem);
  return { component: component as IndicatorComponent, indicator };
}

/** A state an indicator may be set to (`unknown` is only ever read). */
export function checkIndicatorState(value: unknown): IndicatorState {
  if (
    typeof value !== 'string' ||
    !INDICATOR_STATES.includes(value as IndicatorState) ||
    value === 'unknown'
  ) {
    throw invalid(`Invalid indicator state ${String(value)} specified.`);
  }
  return value as IndicatorState;
}

/**
 * A management call (indicators, the BMC's boot devices, inject_nmi, a boot device or
 * firmware change): the node free (409) and its management interface configured (400).
 */
export function checkManagementCall(node: Node): void {
  checkInterfaceCall(node, 'management');
}

/** Ironic's `args.integer`: an integer, or a string/number Python's int() takes. */
function integerArg(name: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'string' && /^\s*[-+]?\d+\s*$/.test(value)) return Number.parseInt(value, 10);
  throw invalid(`Expected an integer for ${name}: ${String(value)}`);
}

const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** Ironic's `args.boolean` (oslo's strict bool_from_string). */
function booleanArg(name: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (TRUE_STRINGS.includes(text)) return true;
  if (FALSE_STRINGS.includes(text)) return false;
  const acceptable = [...FALSE_STRINGS, ...TRUE_STRINGS]
    .sort()
    .map((v) => `'${v}'`)
    .join(', ');
  throw invalid(
    `Invalid ${name}: Unrecognized value '${String(value)}', acceptable values are: ${acceptable}`,
  );
}
