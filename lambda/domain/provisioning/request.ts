/**
 * `PUT /v1/nodes/{node}/states/provision`: the body and the checks, in the order and with
 * the status codes and messages of Ironic 21.4 at microversions 1.1–1.82
 * (`NodeStatesController.provision` and `_do_provision_action` in
 * ironic/api/controllers/v1/node.py, the `check_allow_*` helpers of
 * ironic/api/controllers/v1/utils.py, and the checks the conductor makes before Ironic
 * answers 202: the node lock, maintenance, protection, retirement). Pure: the route
 * resolves the node and authorizes; the conductor consumes the `ProvisionRequest`.
 *
 * Where Ironic quotes a jsonschema error it writes Python's whole `str(ValidationError)`
 * (with the schema pretty-printed); Metalplane writes its first line, the part that
 * names the problem.
 */
import { conflict, DomainError, forbidden, invalid, notAcceptable } from '../errors.ts';
import type { Json, JsonObject } from '../nodes/node.ts';
import { pythonRepr } from '../python-repr.ts';
import { validator } from '../schema.ts';
import { advance, canTransition, eventForVerb, type ProvisionPosition } from './machine.ts';
import type { ProvisionEvent, ProvisionState, ProvisionVerb, StableState } from './states.ts';
import { VERB_MIN_MINOR } from './states.ts';

/** The arguments `provision()` takes, in its signature's order (args.validate checks them so). */
const PROVISION_ARGUMENTS = [
  'target',
  'configdrive',
  'clean_steps',
  'deploy_steps',
  'rescue_password',
  'disable_ramdisk',
] as const;

/** A config drive to build (1.56+; vendor_data 1.59+). */
export interface ConfigDriveContent {
  readonly meta_data?: JsonObject;
  readonly network_data?: JsonObject;
  readonly user_data?: JsonObject | Json[] | string | null;
  readonly vendor_data?: JsonObject;
}

/** A gzipped, base64-encoded ISO 9660 image, a URL to one, or its content to build. */
export type ConfigDrive = string | ConfigDriveContent;

export interface CleanStep {
  readonly interface: StepInterface;
  readonly step: string;
  readonly args?: JsonObject;
}

export interface DeployStep {
  readonly interface: StepInterface;
  readonly step: string;
  readonly args: JsonObject;
  /** An integer, or its decimal string (Ironic accepts both). */
  readonly priority: number | string;
}

/** conductor/steps.py CLEANING_INTERFACE_PRIORITY (= DEPLOYING_INTERFACE_PRIORITY), in its order. */
export const STEP_INTERFACES = ['power', 'management', 'deploy', 'bios', 'raid'] as const;
export type StepInterface = (typeof STEP_INTERFACES)[number];

/** The body once its shape is checked: each argument of `provision()` that was given. */
export interface ProvisionBody {
  /** Null when the client sent `"target": null` (Ironic then refuses the action "None"). */
  readonly target: string | null;
  /** Type-checked only (a string or an object); its content is checked with the target. */
  readonly configdrive?: string | Record<string, unknown> | null;
  readonly clean_steps?: unknown[] | null;
  readonly deploy_steps?: unknown[] | null;
  readonly rescue_password?: string | null;
  readonly disable_ramdisk?: boolean | null;
}

/** What of the node the checks read. */
export interface ProvisionNode {
  readonly uuid: string;
  readonly provision_state: string;
  readonly target_provision_state: string | null;
  readonly maintenance: boolean;
  readonly protected: boolean;
  readonly retired: boolean;
  readonly reservation: string | null;
}

export interface ProvisionContext {
  /** The request's microversion minor (1.minor). */
  readonly minor: number;
}

interface RequestBase {
  /** The `target` as the client sent it (`active` and `deploy` are one action). */
  readonly verb: ProvisionVerb;
  readonly event: ProvisionEvent;
  readonly from: ProvisionState;
  /** The node's provision_state and target_provision_state once the action starts. */
  readonly next: ProvisionPosition;
}

/** What the conductor is asked to do: one variant per action, with its own inputs. */
export type ProvisionRequest =
  | (RequestBase & {
      readonly action: 'deploy' | 'rebuild';
      /** Null when none was given (or an empty one, which Ironic ignores). */
      readonly configdrive: ConfigDrive | null;
      readonly deploySteps: readonly DeployStep[] | null;
    })
  | (RequestBase & {
      readonly action: 'clean';
      readonly cleanSteps: readonly CleanStep[];
      readonly disableRamdisk: boolean;
    })
  | (RequestBase & { readonly action: 'rescue'; readonly rescuePassword: string })
  | (RequestBase & {
      readonly action: 'undeploy' | 'manage' | 'provide' | 'inspect' | 'abort' | 'adopt' | 'unrescue';
    });

export type ProvisionAction = ProvisionRequest['action'];

// --- the body -------------------------------------------------------------------------

/** Python's `str()` of a JSON value, as `%s` writes it into a message. */
function pythonStr(value: unknown): string {
  return typeof value === 'string' ? value : pythonRepr(value);
}

const PYTHON_TYPE_NAMES = {
  none: "<class 'NoneType'>",
  dict: "<class 'dict'>",
  str: "<class 'str'>",
  list: "<class 'list'>",
} as const;

function expectTypes(
  name: string,
  value: unknown,
  types: ReadonlyArray<keyof typeof PYTHON_TYPE_NAMES>,
): void {
  const matches = types.some((type) => {
    if (type === 'none') return value === null;
    if (type === 'str') return typeof value === 'string';
    if (type === 'list') return Array.isArray(value);
    return value !== null && typeof value === 'object' && !Array.isArray(value);
  });
  if (!matches) {
    const names = types.map((type) => PYTHON_TYPE_NAMES[type]).join(', ');
    throw invalid(`Expected types ${names} for ${name}: ${pythonStr(value)}`);
  }
}

function expectString(name: string, value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== 'string') throw invalid(`Expected string for ${name}: ${pythonStr(value)}`);
  return value;
}

const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** oslo's `bool_from_string(value, strict=True)` behind `args.boolean`. */
function expectBoolean(name: string, value: unknown): boolean | null {
  if (value === null) return null;
  if (typeof value === 'boolean') return value;
  const text = pythonStr(value);
  const lowered = text.trim().toLowerCase();
  if (TRUE_STRINGS.includes(lowered)) return true;
  if (FALSE_STRINGS.includes(lowered)) return false;
  const acceptable = [...TRUE_STRINGS, ...FALSE_STRINGS]
    .sort()
    .map((word) => `'${word}'`)
    .join(', ');
  throw invalid(`Invalid ${name}: Unrecognized value '${text}', acceptable values are: ${acceptable}`);
}

/**
 * The body text as Ironic reads it: pecan passes the keys of a JSON object as arguments,
 * and anything else (no body, malformed JSON, an array) as no arguments at all, which
 * then fails on the missing `target`.
 */
export function parseProvisionBody(text: string | undefined): ProvisionBody {
  let parsed: unknown;
  try {
    parsed = text === undefined || text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    parsed = {};
  }
  return validateProvisionBody(parsed);
}

/** Ironic's `args.validate` on `provision()`: unknown arguments, the mandatory target, types. */
export function validateProvisionBody(value: unknown): ProvisionBody {
  const body: Record<string, unknown> =
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  const unexpected = Object.keys(body).filter(
    (key) => !(PROVISION_ARGUMENTS as readonly string[]).includes(key),
  );
  if (unexpected.length > 0) throw invalid(`Unexpected arguments: ${unexpected.join(', ')}`);
  if (!Object.hasOwn(body, 'target')) throw invalid('Missing mandatory parameter: target');
  const result: { -readonly [K in keyof ProvisionBody]: ProvisionBody[K] } = {
    target: expectString('target', body.target),
  };
  if (body.configdrive !== undefined) {
    expectTypes('configdrive', body.configdrive, ['none', 'dict', 'str']);
    result.configdrive = body.configdrive as string | Record<string, unknown> | null;
  }
  if (body.clean_steps !== undefined) {
    expectTypes('clean_steps', body.clean_steps, ['none', 'list']);
    result.clean_steps = body.clean_steps as unknown[] | null;
  }
  if (body.deploy_steps !== undefined) {
    expectTypes('deploy_steps', body.deploy_steps, ['none', 'list']);
    result.deploy_steps = body.deploy_steps as unknown[] | null;
  }
  if (body.rescue_password !== undefined) {
    result.rescue_password = expectString('rescue_password', body.rescue_password);
  }
  if (body.disable_ramdisk !== undefined) {
    result.disable_ramdisk = expectBoolean('disable_ramdisk', body.disable_ramdisk);
  }
  return result;
}

// --- step and config drive schemas ----------------------------------------------------

/** node.py `_CLEAN_STEPS_SCHEMA`. */
export const CLEAN_STEPS_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    required: ['interface', 'step'],
    properties: {
      interface: { enum: [...STEP_INTERFACES] },
      step: { type: 'string', minLength: 1 },
      args: { type: 'object', properties: {} },
    },
    additionalProperties: false,
  },
} as const;

/** utils.py `DEPLOY_STEP_SCHEMA`, as the items of node.py `_DEPLOY_STEPS_SCHEMA`. */
export const DEPLOY_STEPS_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      args: { type: 'object' },
      interface: { type: 'string', enum: [...STEP_INTERFACES] },
      priority: {
        anyOf: [
          { type: 'integer', minimum: 0 },
          { type: 'string', minLength: 1, pattern: '^[0-9]+$' },
        ],
      },
      step: { type: 'string', minLength: 1 },
    },
    required: ['interface', 'step', 'args', 'priority'],
    additionalProperties: false,
  },
} as const;

const checkCleanSteps = validator<CleanStep[]>('clean_steps', CLEAN_STEPS_SCHEMA);
const checkDeploySteps = validator<DeployStep[]>('deploy_steps', DEPLOY_STEPS_SCHEMA);

/** `_check_steps`: "Invalid clean_steps: <jsonschema's message>". */
function validateSteps<T>(kind: 'clean' | 'deploy', check: (value: unknown) => T, steps: unknown): T {
  try {
    return check(steps);
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    const reason = error.message.replace(/^Schema error for \w+: /, '');
    throw invalid(`Invalid ${kind}_steps: ${reason}`);
  }
}

const CONFIG_DRIVE_KEYS = ['meta_data', 'network_data', 'user_data', 'vendor_data'];
// Newlines and spaces count: they are common in base64 values (utils.py _B64_ALPHABET).
const B64_ALPHABET = /^[A-Za-z0-9+/=\n\r\t ]*$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `_CONFIG_DRIVE_SCHEMA` (an object of the four keys, or a string), first line of its error. */
function configDriveSchemaError(configdrive: string | Record<string, unknown>): string | undefined {
  if (typeof configdrive === 'string') return undefined;
  const extra = Object.keys(configdrive).filter((key) => !CONFIG_DRIVE_KEYS.includes(key));
  if (extra.length > 0) {
    const listed = extra.map((key) => pythonRepr(key)).join(', ');
    return `Additional properties are not allowed (${listed} ${extra.length === 1 ? 'was' : 'were'} unexpected)`;
  }
  for (const key of ['meta_data', 'network_data', 'vendor_data'] as const) {
    const value = configdrive[key];
    if (value !== undefined && !isObject(value)) return `${pythonRepr(value)} is not of type 'object'`;
  }
  const userData = configdrive.user_data;
  if (
    userData !== undefined &&
    typeof userData !== 'string' &&
    userData !== null &&
    typeof userData !== 'object'
  ) {
    return `${pythonRepr(userData)} is not of type 'object', 'array', 'string', 'null'`;
  }
  return undefined;
}

/** utils.py `check_allow_configdrive`. */
function checkConfigDrive(
  target: string,
  configdrive: string | Record<string, unknown>,
  minor: number,
): void {
  const allowedTargets = minor >= 35 ? ['active', 'rebuild'] : ['active'];
  if (!allowedTargets.includes(target)) {
    throw invalid(
      `Adding a config drive is only supported when setting provision state to ${allowedTargets.join(', ')}`,
    );
  }
  const schemaError = configDriveSchemaError(configdrive);
  if (schemaError) throw invalid(`Invalid configdrive format: ${schemaError}`);
  if (typeof configdrive !== 'string') {
    if (minor < 56) {
      throw invalid(
        'Providing a JSON object for configdrive is only supported starting with API version 1.56',
      );
    }
    if ('vendor_data' in configdrive && minor < 59) {
      throw invalid('Providing vendor_data in configdrive is only supported starting with API version 1.59');
    }
    return;
  }
  // ':' is not a base64 symbol: anything with '://' is a URL.
  if (configdrive.includes('://')) return;
  if (!B64_ALPHABET.test(configdrive)) {
    throw invalid('Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string');
  }
}

/** Python's truthiness of a JSON value (Ironic writes `if not configdrive`, `if clean_steps`). */
function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

// --- the node's side ------------------------------------------------------------------

/** exception.NodeLocked (409). */
export function nodeLocked(nodeUuid: string, host: string): DomainError {
  return conflict(
    `Node ${nodeUuid} is locked by host ${host}, please retry after the current operation is completed.`,
  );
}

/** exception.InvalidStateRequested (400). Ironic names the node by its UUID, however it was addressed. */
export function invalidStateRequested(action: string, nodeUuid: string, state: string): DomainError {
  return invalid(
    `The requested action "${action}" can not be performed on node "${nodeUuid}" while it is in state "${state}".`,
  );
}

/** exception.NodeInMaintenance (400). */
export function nodeInMaintenance(operation: string, nodeUuid: string): DomainError {
  return invalid(
    `The ${operation} operation can't be performed on node ${nodeUuid} because it's in maintenance mode.`,
  );
}

/** exception.NodeProtected (403). */
export function nodeProtected(nodeUuid: string): DomainError {
  return forbidden(`Node ${nodeUuid} is protected and cannot be undeployed, rebuilt or deleted`);
}

/** exception.NodeIsRetired (400). */
export function nodeIsRetired(operation: string, nodeUuid: string): DomainError {
  return invalid(`The ${operation} operation can't be performed on node ${nodeUuid} because it is retired.`);
}

const ACTION_OF_EVENT: Readonly<Record<string, ProvisionAction>> = {
  deploy: 'deploy',
  rebuild: 'rebuild',
  delete: 'undeploy',
  manage: 'manage',
  provide: 'provide',
  inspect: 'inspect',
  abort: 'abort',
  clean: 'clean',
  adopt: 'adopt',
  rescue: 'rescue',
  unrescue: 'unrescue',
};

/**
 * The checks the conductor makes before Ironic answers 202 (its RPC is synchronous up to
 * there): the lock first (`task_manager.acquire`), then per action
 * (`deployments.validate_node`, `do_node_tear_down`, `do_node_clean`,
 * `do_provisioning_action`, `do_node_rescue`, `do_node_unrescue`).
 */
function conductorChecks(node: ProvisionNode, action: ProvisionAction): void {
  if (node.reservation) throw nodeLocked(node.uuid, node.reservation);
  switch (action) {
    case 'deploy':
    case 'rebuild':
      if (node.maintenance) throw nodeInMaintenance('provisioning', node.uuid);
      if (action === 'rebuild' && node.protected) throw nodeProtected(node.uuid);
      return;
    case 'undeploy':
      if (node.protected) throw nodeProtected(node.uuid);
      return;
    case 'clean':
      if (node.maintenance) throw nodeInMaintenance('cleaning', node.uuid);
      return;
    case 'provide':
      // [conductor]allow_provisioning_in_maintenance is False by default.
      if (node.provision_state === 'manageable') {
        if (node.maintenance) throw nodeInMaintenance('providing', node.uuid);
        if (node.retired) throw nodeIsRetired('providing', node.uuid);
      }
      return;
    case 'rescue':
      if (node.maintenance) throw nodeInMaintenance('rescuing', node.uuid);
      return;
    case 'unrescue':
      if (node.maintenance) throw nodeInMaintenance('unrescuing', node.uuid);
      return;
    default:
      return;
  }
}

/**
 * Checks a provision request against the node and the microversion, in Ironic's order,
 * and answers what the conductor must do. Throws the DomainError Ironic's answer maps to.
 */
export function checkProvisionRequest(
  node: ProvisionNode,
  body: ProvisionBody,
  context: ProvisionContext,
): ProvisionRequest {
  const { minor } = context;
  const target = body.target;
  // `None` is what Python prints for a null target.
  const action = target ?? 'None';

  const minMinor = target === null ? undefined : VERB_MIN_MINOR[target as ProvisionVerb];
  if (minMinor !== undefined && minor < minMinor) throw notAcceptable('Request not acceptable.');

  if ((target === 'active' || target === 'rebuild') && node.maintenance) {
    throw nodeInMaintenance('provisioning', node.uuid);
  }

  const event = target === null ? undefined : (eventForVerb(target) ?? target);
  if (event === undefined || !canTransition(node.provision_state, event)) {
    // A node being worked on answers 409, not 400 (Ironic keeps its old status codes).
    if (node.reservation) throw nodeLocked(node.uuid, node.reservation);
    throw invalidStateRequested(action, node.uuid, node.provision_state);
  }
  const verb = target as string;

  if (truthy(body.configdrive))
    checkConfigDrive(verb, body.configdrive as string | Record<string, unknown>, minor);

  if (body.disable_ramdisk !== undefined && body.disable_ramdisk !== null) {
    if (minor < 70) throw notAcceptable('disable_ramdisk is not acceptable in this API version');
    if (verb !== 'clean') throw invalid('disable_ramdisk is supported only with manual cleaning');
  }

  if (truthy(body.clean_steps) && verb !== 'clean') {
    throw invalid('"clean_steps" is only valid when setting target provision state to clean');
  }

  if (truthy(body.deploy_steps)) {
    if (minor < 69) {
      throw notAcceptable('Request not acceptable. The minimal required API version should be 1.69');
    }
    if (verb !== 'active' && verb !== 'rebuild') {
      throw invalid('"deploy_steps" is only valid when setting target provision state to active or rebuild');
    }
  }

  if (body.rescue_password !== undefined && body.rescue_password !== null && verb !== 'rescue') {
    throw invalid('"rescue_password" is only valid when setting target provision state to rescue');
  }

  if (node.provision_state === 'inspect wait' && verb === 'abort' && minor < 41) {
    throw notAcceptable('Request not acceptable.');
  }

  // `_do_provision_action`: an event that is not an API verb (done, fail, wait, resume,
  // delete) passes the machine's check above but is not understood.
  const provisionAction = ACTION_OF_EVENT[event];
  if (!provisionAction || (event === 'delete' && verb === 'delete')) {
    throw invalid(`The requested action "${verb}" could not be understood.`);
  }

  const from = node.provision_state as ProvisionState;
  const position: ProvisionPosition = {
    provision_state: from,
    target_provision_state: node.target_provision_state as StableState | null,
  };
  const base = {
    verb: verb as ProvisionVerb,
    event: event as ProvisionEvent,
    from,
  };

  switch (provisionAction) {
    case 'deploy':
    case 'rebuild': {
      const deploySteps = truthy(body.deploy_steps)
        ? validateSteps('deploy', checkDeploySteps, body.deploy_steps)
        : null;
      conductorChecks(node, provisionAction);
      return {
        ...base,
        action: provisionAction,
        next: advance(position, base.event),
        // Checked above (checkConfigDrive): now the shape ConfigDrive describes.
        configdrive: truthy(body.configdrive) ? (body.configdrive as ConfigDrive) : null,
        deploySteps,
      };
    }
    case 'rescue': {
      const password = body.rescue_password;
      if (!password?.trim()) {
        throw invalid(
          'A non-empty "rescue_password" is required when setting target provision state to rescue',
        );
      }
      conductorChecks(node, 'rescue');
      return { ...base, action: 'rescue', next: advance(position, base.event), rescuePassword: password };
    }
    case 'clean': {
      if (!truthy(body.clean_steps)) {
        throw invalid('"clean_steps" is required when setting target provision state to clean');
      }
      const cleanSteps = validateSteps('clean', checkCleanSteps, body.clean_steps);
      conductorChecks(node, 'clean');
      // Manual cleaning returns to manageable (do_node_clean's target_state).
      return {
        ...base,
        action: 'clean',
        next: advance(position, base.event, { target: 'manageable' }),
        cleanSteps,
        disableRamdisk: body.disable_ramdisk ?? false,
      };
    }
    default: {
      conductorChecks(node, provisionAction);
      // Aborting a manual cleaning keeps its way back to manageable (`_do_abort`).
      const manualClean = from === 'clean wait' && node.target_provision_state === 'manageable';
      const options = manualClean ? { target: 'manageable' as const } : {};
      return { ...base, action: provisionAction, next: advance(position, base.event, options) };
    }
  }
}

/** Both steps at once: the body's shape, then the node's side. */
export function validateProvisionRequest(
  node: ProvisionNode,
  bodyText: string | undefined,
  context: ProvisionContext,
): ProvisionRequest {
  return checkProvisionRequest(node, parseProvisionBody(bodyText), context);
}

/** The 202's Location: Ironic builds it from the node identifier as the client wrote it. */
export function provisionLocation(baseUrl: string, nodeIdent: string): string {
  return `${baseUrl}/v1/nodes/${nodeIdent}/states`;
}
