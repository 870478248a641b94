/**
 * The agent actions a command can name, declared once for both ends: `ACTIONS` maps each
 * action's wire name (`command.action`) to its family, whether it talks to the BMC, the
 * TypeScript types of its `args` and result, and, where the check needs nothing of the
 * hardware, its argument validator. The agent's actions are typed against it
 * (`agent/actions/`, `agent/boot/actions.ts`), and the conductor builds its commands from
 * it (`lambda/conductor/power.ts`, `lambda/conductor/provision.ts`), so a name or an
 * argument one side does not know fails the type check;
 * `test/unit/action-catalog.test.ts` compares the agent's registry with it.
 *
 * Also here, as the lists both ends check values against: Ironic's power states, power
 * targets (`power.set {target}`) and boot devices (`management.set_boot_device`).
 *
 * Admins may still queue any action by name (`POST /v1/nodes/{node}/commands`, debugging):
 * `Command.action` stays a string on the wire and the agent answers an unknown one with
 * a failed command.
 *
 * This module imports nothing of `lambda/` or `agent/`; both import it.
 */

import {
  RAMDISK_STEPS,
  type RamdiskStepArgs,
  type RamdiskStepName,
  type RamdiskStepResults,
  type RootDeviceHints,
} from './ramdisk.ts';

// --- values ------------------------------------------------------------------------

export const POWER_ON = 'power on';
export const POWER_OFF = 'power off';
export const REBOOT = 'rebooting';
export const SOFT_POWER_OFF = 'soft power off';
export const SOFT_REBOOT = 'soft rebooting';

/** The states a BMC reports (`power.get`, `power.set`'s result, `power_report`). */
export const POWER_STATES = [POWER_ON, POWER_OFF] as const;
export type PowerState = (typeof POWER_STATES)[number];

/** Ironic's ALLOWED_TARGET_POWER_STATES: what `power.set {target}` accepts. */
export const POWER_TARGETS = [POWER_ON, POWER_OFF, REBOOT, SOFT_POWER_OFF, SOFT_REBOOT] as const;
export type PowerTarget = (typeof POWER_TARGETS)[number];

/** Ironic's boot devices (`management.set_boot_device {boot_device}`). */
export const BOOT_DEVICES = ['pxe', 'disk', 'cdrom', 'bios', 'safe'] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

/**
 * The boot devices each management interface supports (Ironic's
 * `get_supported_boot_devices`): the API checks requests against it, the agent's drivers
 * accept exactly these. Ironic's fake management supports PXE only.
 */
export const SUPPORTED_BOOT_DEVICES = {
  fake: ['pxe'],
  ipmitool: BOOT_DEVICES,
  // Ironic's redfish management: PXE, DISK, CDROM, BIOS (Redfish has no "safe" mode).
  redfish: ['pxe', 'disk', 'cdrom', 'bios'],
} as const satisfies Readonly<Record<string, readonly BootDevice[]>>;

export const BOOT_MODES = ['bios', 'uefi'] as const;
export type BootMode = (typeof BOOT_MODES)[number];

/** Ironic's indicator states (`ironic.common.indicator_states`) and components (`components`). */
export const INDICATOR_STATES = ['off', 'on', 'blinking', 'unknown'] as const;
export type IndicatorState = (typeof INDICATOR_STATES)[number];
export const INDICATOR_COMPONENTS = ['chassis', 'system', 'disk', 'power', 'nic'] as const;
export type IndicatorComponent = (typeof INDICATOR_COMPONENTS)[number];
/** One indicator as `get_supported_indicators` describes it. */
export interface IndicatorInfo {
  readonly readonly: boolean;
  readonly states: readonly IndicatorState[];
}
/** Components → indicator ids → their description. */
export type SupportedIndicators = Partial<Record<IndicatorComponent, Record<string, IndicatorInfo>>>;

export const isPowerState = (value: unknown): value is PowerState =>
  POWER_STATES.includes(value as PowerState);
export const isPowerTarget = (value: unknown): value is PowerTarget =>
  POWER_TARGETS.includes(value as PowerTarget);
export const isBootDevice = (value: unknown): value is BootDevice =>
  BOOT_DEVICES.includes(value as BootDevice);

/** `sleep {ms}`: the longest sleep an agent accepts. */
export const MAX_SLEEP_MS = 60_000;
/** `power.set {timeout}`: the longest wait for the BMC (seconds). */
export const MAX_POWER_TIMEOUT_SECONDS = 3600;

/** An indicator's component and id, as Ironic's IndicatorAtComponent checks them. */
export function indicatorProblem(args: { component?: unknown; indicator?: unknown }): string | undefined {
  if (!INDICATOR_COMPONENTS.includes(args.component as IndicatorComponent)) {
    return `Invalid component ${String(args.component)} specified.`;
  }
  if (typeof args.indicator !== 'string' || !/^[A-Za-z0-9._:-]{1,128}$/.test(args.indicator)) {
    return `Invalid indicator ${String(args.indicator)} specified.`;
  }
  return undefined;
}

// --- args and results ----------------------------------------------------------------

type Empty = Record<string, never>;

/** Every action may name the hardware type whose interfaces run it (the registry's routing). */
interface Routed {
  driver?: string;
}

/** A BMC-facing action: the hardware type and the BMC's address and credentials. */
export interface BmcArgs extends Routed {
  driver_info?: Record<string, unknown>;
}

export interface SleepArgs extends Routed {
  ms: number;
}
export interface FailArgs extends Routed {
  message?: string;
}
export interface PowerSetArgs extends BmcArgs {
  target: PowerTarget;
  /** Seconds to wait for the BMC to report the target; default 60. */
  timeout?: number;
}
/** `management.get_indicator_state` / `set_indicator_state`: one indicator of one component. */
export interface IndicatorArgs extends BmcArgs {
  component: IndicatorComponent;
  indicator: string;
}
export interface SetIndicatorArgs extends IndicatorArgs {
  state: IndicatorState;
}
/**
 * `management.insert_vmedia`: the agent serves an ISO from its HTTP tree and has the BMC
 * insert it as virtual CD (`redfish-virtual-media` boot); `management.eject_vmedia` takes
 * it out (and removes an ISO the agent built). The ISO is either the catalog ISO `iso`
 * (an image UUID synced to the site) or one the agent builds from `kernel` + `ramdisk`
 * (image UUIDs) for `boot_mode`, with `kernel_append_params` — and, as `boot.prepare`
 * does, the callback URL of `callback_token` or the Metalplane ramdisk's parameters
 * (`metalplane_ramdisk`) on its kernel command line.
 */
export interface InsertVmediaArgs extends BmcArgs {
  node_uuid: string;
  iso?: string;
  kernel?: string;
  ramdisk?: string;
  boot_mode?: BootMode;
  kernel_append_params?: string;
  callback_token?: string;
  metalplane_ramdisk?: boolean;
}
export interface EjectVmediaArgs extends BmcArgs {
  node_uuid: string;
}
/** `management.set_boot_mode`: Ironic's `node_change_boot_mode` (read first; set when different). */
export interface SetBootModeArgs extends BmcArgs {
  boot_mode: BootMode;
}
/** `management.set_secure_boot`: Ironic's `node_change_secure_boot`. */
export interface SetSecureBootArgs extends BmcArgs {
  enabled: boolean;
}
export interface SetBootDeviceArgs extends BmcArgs {
  boot_device: BootDevice;
  persistent?: boolean;
}
export interface BootPrepareArgs extends Routed {
  node_uuid: string;
  macs: readonly string[];
  boot_mode: BootMode;
  /** Image UUIDs: kernel + ramdisk, or iso. */
  kernel?: string;
  ramdisk?: string;
  iso?: string;
  kernel_append_params?: string;
  /** What the control plane sends: the deploy's single-use token (the agent makes it a URL). */
  callback_token?: string;
  /** What the boot files get (the agent's own translation of `callback_token`). */
  callback_url?: string;
  /**
   * Boot the Metalplane ramdisk (`ramdisk/`): the agent mints a one-time token for this
   * boot and appends `mp.url=<its /ramdisk/v1> mp.token=<token>` to the kernel command
   * line (kernel + ramdisk boots only). Not `ramdisk`: that names the ramdisk image.
   */
  metalplane_ramdisk?: boolean;
}
export interface BootCleanArgs extends Routed {
  node_uuid: string;
}

/** `ramdisk.run_step`: one step run by the node's Metalplane ramdisk (protocol/ramdisk.ts). */
export interface RamdiskRunStepArgs<N extends RamdiskStepName = RamdiskStepName> extends Routed {
  node_uuid: string;
  step: N;
  step_args: RamdiskStepArgs[N];
}
/** `ramdisk.wait`: waits until the node's Metalplane ramdisk has said hello. */
export interface RamdiskWaitArgs extends Routed {
  node_uuid: string;
}
/**
 * `ramdisk.write_image`: the node's ramdisk writes a whole-disk image (a Metalplane image
 * of kind `disk` the site holds) onto its root device. The agent serves the site's
 * prepared file (raw or raw+gzip) to this node's session alone and gives the ramdisk its
 * URL and SHA-256 (`write_image` in protocol/ramdisk.ts).
 */
export interface RamdiskWriteImageArgs extends Routed {
  node_uuid: string;
  /** The Metalplane image (kind `disk`): its UUID. */
  image_uuid: string;
  /** Ironic's root device hints (`properties.root_device`). */
  root_device?: RootDeviceHints;
}
/**
 * `ramdisk.write_configdrive`: the node's ramdisk appends a config drive partition to its
 * root device. `configdrive` is Ironic's: a gzipped, base64-encoded ISO 9660 (or vfat)
 * image, or the JSON form `{meta_data, user_data, network_data, vendor_data}` from which
 * the agent builds the ISO (label `config-2`, `openstack/latest/...`), as Ironic's
 * conductor does. Holds secrets (user data): masked wherever it is shown or logged.
 */
export interface RamdiskWriteConfigdriveArgs extends Routed {
  node_uuid: string;
  configdrive: string | Record<string, unknown>;
  root_device?: RootDeviceHints;
}

// Results are type aliases (not interfaces) so that they are JSON objects to TypeScript.
export type PowerResult = { power_state: PowerState };
export type BootDeviceResult = { boot_device: BootDevice | null; persistent: boolean | null };
export type BootModeResult = { boot_mode: BootMode };
export type SecureBootResult = { secure_boot: boolean };
type BootFile = { root: string; path: string };
type KeptBootFile = BootFile & { reason: string };
export type BootPrepareResult = {
  node_uuid: string;
  boot_mode: BootMode;
  boot: 'kernel' | 'iso';
  macs: readonly string[];
  kernel_cmdline: string | null;
  entry_script_url: string;
  ipxe_script_urls: readonly string[];
  files: readonly (BootFile & { url?: string })[];
  removed: readonly BootFile[];
  kept: readonly KeptBootFile[];
  warnings: readonly string[];
};
/** What `ramdisk.run_step` returns: the step's result as the ramdisk reported it. */
export type RamdiskRunStepResult = RamdiskStepResults[RamdiskStepName];
export type RamdiskWaitResult = {
  node_uuid: string;
  /** The ramdisk's version (its hello). */
  version: string;
  boot_mac: string | null;
};
export type RamdiskWriteImageResult = RamdiskStepResults['write_image'];
export type RamdiskWriteConfigdriveResult = RamdiskStepResults['write_configdrive'];
export type BootCleanResult = {
  node_uuid: string;
  removed: readonly BootFile[];
  kept: readonly KeptBootFile[];
};

// --- the catalog -----------------------------------------------------------------------

/** `common`: every agent has it, whatever its drivers; otherwise the driver interface that provides it. */
export type ActionFamily = 'common' | 'power' | 'management' | 'boot';

/** A problem with `args` that needs no hardware to see, or undefined. */
export type ArgsValidator = (args: Record<string, unknown>) => string | undefined;

export interface ActionSpec<Args = unknown, Result = unknown> {
  readonly family: ActionFamily;
  /** Whether the command carries the BMC's `driver_info` (only power and management do). */
  readonly bmc: boolean;
  readonly validate?: ArgsValidator;
  /** Types only (never set): `args` and the result of a successful command. */
  readonly types?: { readonly args: Args; readonly result: Result };
}

type Declared<Args, Result> = Omit<ActionSpec<Args, Result>, 'types'>;

function action<Args, Result>(
  spec: Declared<Args, Result> & { validate: ArgsValidator },
): ActionSpec<Args, Result> & { validate: ArgsValidator };
function action<Args, Result>(spec: Declared<Args, Result>): ActionSpec<Args, Result>;
function action<Args, Result>(spec: Declared<Args, Result>): ActionSpec<Args, Result> {
  return spec;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const isUuid = (value: unknown) => typeof value === 'string' && UUID.test(value);
const isRamdiskStep = (value: unknown): value is RamdiskStepName =>
  RAMDISK_STEPS.includes(value as RamdiskStepName);

const isInteger = (value: unknown, min: number, max: number) =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;

/** What is wrong with `management.insert_vmedia`'s args (undefined: nothing). */
function insertVmediaProblem(args: Record<string, unknown>): string | undefined {
  const usage =
    'management.insert_vmedia: args node_uuid and either iso or kernel + ramdisk (image UUIDs) are required';
  if (!isUuid(args.node_uuid)) return usage;
  const { iso, kernel, ramdisk } = args;
  if (iso !== undefined) {
    if (!isUuid(iso)) return usage;
    if (kernel !== undefined || ramdisk !== undefined)
      return 'management.insert_vmedia: give iso, or kernel + ramdisk, not both';
    if (args.metalplane_ramdisk === true)
      return 'management.insert_vmedia: metalplane_ramdisk boots a kernel + ramdisk, not an iso (no kernel command line)';
    return undefined;
  }
  if (!isUuid(kernel) || !isUuid(ramdisk)) return usage;
  if (args.boot_mode !== undefined && !BOOT_MODES.includes(args.boot_mode as BootMode))
    return `management.insert_vmedia: boot_mode must be one of ${BOOT_MODES.join(', ')}`;
  if (args.kernel_append_params !== undefined && typeof args.kernel_append_params !== 'string')
    return 'management.insert_vmedia: kernel_append_params must be a string';
  if (args.metalplane_ramdisk !== undefined && typeof args.metalplane_ramdisk !== 'boolean')
    return 'management.insert_vmedia: metalplane_ramdisk must be true or false';
  if (args.metalplane_ramdisk === true && args.callback_token !== undefined)
    return 'management.insert_vmedia: a ramdisk boot has no deploy callback (give metalplane_ramdisk or callback_token)';
  return undefined;
}

export const ACTIONS = {
  noop: action<Routed, Empty>({ family: 'common', bmc: false }),
  sleep: action<SleepArgs, { slept_ms: number }>({
    family: 'common',
    bmc: false,
    validate: (args) =>
      isInteger(args.ms, 0, MAX_SLEEP_MS)
        ? undefined
        : `sleep: args.ms must be an integer from 0 to ${MAX_SLEEP_MS}`,
  }),
  fail: action<FailArgs, never>({
    family: 'common',
    bmc: false,
    validate: (args) =>
      args.message === undefined || typeof args.message === 'string'
        ? undefined
        : 'fail: args.message must be a string',
  }),
  'power.set': action<PowerSetArgs, PowerResult>({
    family: 'power',
    bmc: true,
    validate(args) {
      if (!isPowerTarget(args.target)) return `args.target must be one of ${POWER_TARGETS.join(', ')}`;
      if (args.timeout !== undefined && !isInteger(args.timeout, 1, MAX_POWER_TIMEOUT_SECONDS)) {
        return `args.timeout must be an integer from 1 to ${MAX_POWER_TIMEOUT_SECONDS} (seconds)`;
      }
      return undefined;
    },
  }),
  'power.get': action<BmcArgs, PowerResult>({ family: 'power', bmc: true }),
  'management.set_boot_device': action<SetBootDeviceArgs, Empty>({
    family: 'management',
    bmc: true,
    validate(args) {
      if (!isBootDevice(args.boot_device))
        return `Invalid boot device ${String(args.boot_device)} specified.`;
      if (args.persistent !== undefined && typeof args.persistent !== 'boolean') {
        return 'args.persistent must be true or false';
      }
      return undefined;
    },
  }),
  'management.get_boot_device': action<BmcArgs, BootDeviceResult>({ family: 'management', bmc: true }),
  // The boot devices the BMC takes (Ironic's get_supported_boot_devices, asked of the BMC).
  'management.get_supported_boot_devices': action<BmcArgs, { supported_boot_devices: BootDevice[] }>({
    family: 'management',
    bmc: true,
  }),
  'management.set_boot_mode': action<SetBootModeArgs, BootModeResult>({
    family: 'management',
    bmc: true,
    validate: (args) =>
      BOOT_MODES.includes(args.boot_mode as BootMode)
        ? undefined
        : `Invalid boot mode ${String(args.boot_mode)} requested for node. Allowed boot modes are: ${BOOT_MODES.join(', ')}`,
  }),
  'management.set_secure_boot': action<SetSecureBootArgs, SecureBootResult>({
    family: 'management',
    bmc: true,
    validate: (args) =>
      typeof args.enabled === 'boolean' ? undefined : 'args.enabled must be true or false',
  }),
  // Indicators (LEDs): Ironic's get_supported_indicators / get_ / set_indicator_state.
  'management.get_indicators': action<BmcArgs, { indicators: SupportedIndicators }>({
    family: 'management',
    bmc: true,
  }),
  'management.get_indicator_state': action<IndicatorArgs, { state: IndicatorState }>({
    family: 'management',
    bmc: true,
    validate: indicatorProblem,
  }),
  'management.set_indicator_state': action<SetIndicatorArgs, Empty>({
    family: 'management',
    bmc: true,
    validate: (args) =>
      indicatorProblem(args) ??
      (INDICATOR_STATES.includes(args.state as IndicatorState) && args.state !== 'unknown'
        ? undefined
        : `Invalid indicator state ${String(args.state)} specified.`),
  }),
  'management.insert_vmedia': action<InsertVmediaArgs, { url: string }>({
    family: 'management',
    bmc: true,
    validate: insertVmediaProblem,
  }),
  'management.eject_vmedia': action<EjectVmediaArgs, Empty>({ family: 'management', bmc: true }),
  // Ironic's `inject_nmi`: a diagnostic interrupt (the OS usually dumps its kernel and reboots).
  'management.inject_nmi': action<BmcArgs, Empty>({ family: 'management', bmc: true }),
  // The shapes and values of the boot actions' args are checked by the agent's renderer
  // (`agent/boot/actions.ts`), which needs its JSON Schema and the boot file rules.
  'boot.prepare': action<BootPrepareArgs, BootPrepareResult>({ family: 'boot', bmc: false }),
  'boot.clean': action<BootCleanArgs, BootCleanResult>({ family: 'boot', bmc: false }),
  // The Metalplane ramdisk's steps: the agent's own sessions with the node's ramdisk,
  // whatever the hardware type (common). Each step's args are checked by the agent
  // against RAMDISK_STEP_ARGS_SCHEMAS (`agent/ramdisk/actions.ts`).
  'ramdisk.run_step': action<RamdiskRunStepArgs, RamdiskRunStepResult>({
    family: 'common',
    bmc: false,
    validate(args) {
      if (!isUuid(args.node_uuid)) return 'ramdisk.run_step: args.node_uuid must be a UUID';
      if (!isRamdiskStep(args.step))
        return `ramdisk.run_step: args.step must be one of ${RAMDISK_STEPS.join(', ')}`;
      if (typeof args.step_args !== 'object' || args.step_args === null || Array.isArray(args.step_args))
        return 'ramdisk.run_step: args.step_args must be an object';
      return undefined;
    },
  }),
  'ramdisk.wait': action<RamdiskWaitArgs, RamdiskWaitResult>({
    family: 'common',
    bmc: false,
    validate: (args) => (isUuid(args.node_uuid) ? undefined : 'ramdisk.wait: args.node_uuid must be a UUID'),
  }),
  // The deploy's writes: the agent resolves what only it knows (where the site serves the
  // image, the config drive's ISO) and runs the ramdisk's step. Deeper checks (hints,
  // the config drive's content) are the agent's (`agent/ramdisk/`).
  'ramdisk.write_image': action<RamdiskWriteImageArgs, RamdiskWriteImageResult>({
    family: 'common',
    bmc: false,
    validate(args) {
      if (!isUuid(args.node_uuid)) return 'ramdisk.write_image: args.node_uuid must be a UUID';
      if (!isUuid(args.image_uuid)) return 'ramdisk.write_image: args.image_uuid must be a UUID';
      return rootDeviceShape('ramdisk.write_image', args.root_device);
    },
  }),
  'ramdisk.write_configdrive': action<RamdiskWriteConfigdriveArgs, RamdiskWriteConfigdriveResult>({
    family: 'common',
    bmc: false,
    validate(args) {
      if (!isUuid(args.node_uuid)) return 'ramdisk.write_configdrive: args.node_uuid must be a UUID';
      const drive = args.configdrive;
      const isObject = typeof drive === 'object' && drive !== null && !Array.isArray(drive);
      if (!(typeof drive === 'string' && drive.length > 0) && !isObject)
        return 'ramdisk.write_configdrive: args.configdrive must be a non-empty string (base64 of a gzipped image) or an object';
      return rootDeviceShape('ramdisk.write_configdrive', args.root_device);
    },
  }),
} as const;

function rootDeviceShape(action: string, hints: unknown): string | undefined {
  if (hints === undefined) return undefined;
  if (typeof hints !== 'object' || hints === null || Array.isArray(hints))
    return `${action}: args.root_device must be an object of root device hints`;
  return undefined;
}

export type ActionName = keyof typeof ACTIONS;
type TypesOf<N extends ActionName> = NonNullable<(typeof ACTIONS)[N]['types']>;
export type ActionArgs<N extends ActionName> = TypesOf<N>['args'];
export type ActionResult<N extends ActionName> = TypesOf<N>['result'];

export const ACTION_NAMES = Object.keys(ACTIONS) as ActionName[];

export function isActionName(name: string): name is ActionName {
  return Object.hasOwn(ACTIONS, name);
}

/** The catalog's entry for a command's action; undefined for an action it does not know. */
export function actionSpec(name: string): ActionSpec | undefined {
  return isActionName(name) ? ACTIONS[name] : undefined;
}
