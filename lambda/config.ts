/**
 * The control plane's configuration: every environment variable the Lambdas read, parsed
 * and validated in one place into one typed object. Nothing else in `lambda/` reads
 * `process.env` (test/unit/config.test.ts checks it).
 *
 * - `readConfig(env)` parses a whole environment at once; a malformed value (a number
 *   that is not one, a boolean that is neither) fails with an error naming the variable.
 *   The Lambda entry points (`lambda/entrypoints/`) call it once per container and hand
 *   the result to the composition root (`lambda/runtime.ts`).
 * - Resource names (tables, queues, bucket, key) are optional here: not every Lambda gets
 *   every one, and a missing one fails at its first use (`required`), with its variable's
 *   name, as before.
 * - `environmentConfig()` is the same configuration for code built without an entry point
 *   (tests, the local stack's helpers, the defaults of the components' constructors): it
 *   re-parses only when one of the variables changed, so a test may set a variable after
 *   the modules were imported (or between two requests) and be seen.
 */
import {
  auditTable,
  commandsDeadLetterQueue,
  commandsTable,
  connectionsTable,
  imagesBucket,
  imageVerifyQueue,
  inventoryTable,
  managementEndpointEnvVar,
  resourcePrefixEnvVar,
  secretsKey,
  webSocketUrlEnvVar,
} from '../infra/resources.ts';
import { RETENTION_ENV, retentionDays } from './domain/audit/audit.ts';
import {
  RATE_LIMIT_BURST_ENV,
  RATE_LIMIT_RPS_ENV,
  type RateLimit,
  rateLimitFromEnv,
} from './domain/auth/rate-limit.ts';

export type Environment = Readonly<Record<string, string | undefined>>;

export const AUTH_STRATEGY_ENV = 'METALPLANE_AUTH_STRATEGY';
/** Set only by the local stack (loopback): the one place `noauth` may be honoured. */
export const LOCAL_STACK_ENV = 'METALPLANE_LOCAL_STACK';
export const PUBLIC_URL_ENV = 'METALPLANE_PUBLIC_URL';
export const FORCE_POWER_STATE_ENV = 'METALPLANE_FORCE_POWER_STATE_DURING_SYNC';
export const INLINE_VERIFY_ENV = 'METALPLANE_IMAGE_INLINE_VERIFY_BYTES';
export const S3_FORCE_PATH_STYLE_ENV = 'METALPLANE_S3_FORCE_PATH_STYLE';
export const DEPLOY_CALLBACK_TIMEOUT_ENV = 'METALPLANE_DEPLOY_CALLBACK_TIMEOUT';
export const IMAGE_WAIT_TIMEOUT_ENV = 'METALPLANE_IMAGE_WAIT_TIMEOUT';
export const RAMDISK_WAIT_TIMEOUT_ENV = 'METALPLANE_RAMDISK_WAIT_TIMEOUT';
export const AUTOMATED_CLEAN_ENV = 'METALPLANE_AUTOMATED_CLEAN';
export const CLEAN_ERASE_DEVICES_ENV = 'METALPLANE_CLEAN_ERASE_DEVICES';
/** Bounded storage (docs/storage.md): node history, after Ironic's `[conductor]node_history_*`. */
export const HISTORY_MAX_ENTRIES_ENV = 'METALPLANE_NODE_HISTORY_MAX_ENTRIES';
export const HISTORY_CLEANUP_INTERVAL_ENV = 'METALPLANE_NODE_HISTORY_CLEANUP_INTERVAL';
export const HISTORY_CLEANUP_BATCH_COUNT_ENV = 'METALPLANE_NODE_HISTORY_CLEANUP_BATCH_COUNT';
export const HISTORY_MINIMUM_DAYS_ENV = 'METALPLANE_NODE_HISTORY_MINIMUM_DAYS';
export const HISTORY_RETENTION_DAYS_ENV = 'METALPLANE_NODE_HISTORY_RETENTION_DAYS';
/** Days a command record is kept after it ends (DynamoDB TTL). */
export const COMMAND_RETENTION_DAYS_ENV = 'METALPLANE_COMMAND_RETENTION_DAYS';

/** Ironic's `[conductor]deploy_callback_timeout` (seconds). */
export const DEPLOY_CALLBACK_TIMEOUT_SECONDS = 1800;
/** How long a deploy waits for its image to be ready at the site (seconds). */
export const IMAGE_WAIT_TIMEOUT_SECONDS = 3600;
/** How long an inspection or a cleaning waits for the booted ramdisk's hello (seconds). */
export const RAMDISK_WAIT_TIMEOUT_SECONDS = 1800;
/** Ironic's `[conductor]node_history_max_entries` default. */
export const DEFAULT_HISTORY_MAX_ENTRIES = 300;
/** Ironic's `[conductor]node_history_cleanup_interval` default (seconds; 0 disables the pruning). */
export const DEFAULT_HISTORY_CLEANUP_INTERVAL_SECONDS = 86_400;
/** Ironic's `[conductor]node_history_cleanup_batch_count` default. */
export const DEFAULT_HISTORY_CLEANUP_BATCH_COUNT = 1000;
/** Ironic's `[conductor]node_history_minimum_days` default. */
export const DEFAULT_HISTORY_MINIMUM_DAYS = 0;
/** No Ironic equivalent (Ironic keeps events of idle nodes forever): a year, then TTL. */
export const DEFAULT_HISTORY_RETENTION_DAYS = 365;
/** Days a command record is kept after it ended (or after its deadline, if it never ends). */
export const DEFAULT_COMMAND_RETENTION_DAYS = 30;
/** Files up to this size are verified within the upload's completion request. */
export const DEFAULT_INLINE_VERIFY_BYTES = 64 * 1024 * 1024;

export interface ProvisionSettings {
  /** Seconds a deploy waits in `wait call-back` before it fails. */
  readonly callbackTimeoutSeconds: number;
  /** Seconds a deploy waits for its image to be ready at the node's site before it fails. */
  readonly imageWaitTimeoutSeconds: number;
  /** Seconds an inspection or a cleaning waits for the booted ramdisk to say hello. */
  readonly ramdiskWaitTimeoutSeconds: number;
  /** Ironic's `[conductor]automated_clean` (default true): what a node's null `automated_clean` means. */
  readonly automatedClean: boolean;
  /**
   * Whether automated cleaning also runs `erase_devices` (every disk overwritten) after
   * `erase_devices_metadata`: Ironic's `[deploy]erase_devices_priority`, default off here.
   */
  readonly eraseDevices: boolean;
}

export type AuthStrategy = 'credentials' | 'noauth';

/** How much node history is kept (docs/storage.md; Ironic's `[conductor]node_history_*`). */
export interface HistorySettings {
  /** Events kept per node; older ones are pruned by the tick (`node_history_max_entries`). */
  readonly maxEntries: number;
  /** Seconds between two prunings; 0: never prune (`node_history_cleanup_interval`). */
  readonly cleanupIntervalSeconds: number;
  /** Events one tick deletes at most (and feed entries it reads at most) (`node_history_cleanup_batch_count`). */
  readonly cleanupBatchCount: number;
  /** Events younger than this many days are never pruned (`node_history_minimum_days`). */
  readonly minimumDays: number;
  /** Days after which DynamoDB's TTL deletes an event whatever the count; 0: no TTL. */
  readonly retentionDays: number;
}

export interface MetalplaneConfig {
  /** Physical table names (`infra/resources.ts` env vars); missing ones fail at first use. */
  readonly tables: {
    readonly inventory: string | undefined;
    readonly commands: string | undefined;
    readonly connections: string | undefined;
    readonly audit: string | undefined;
  };
  /** Prefix of physical names (a site's command queue is derived from it). */
  readonly resourcePrefix: string | undefined;
  readonly queues: {
    /** The commands' dead-letter queue (default: derived from the prefix). */
    readonly commandsDeadLetter: string | undefined;
    readonly imageVerify: string | undefined;
  };
  readonly imagesBucket: string | undefined;
  /** The KMS key (ARN or alias) sealing secrets at rest. */
  readonly secretsKey: string | undefined;
  /** The agents' WebSocket API: `@connections` callback URL, and where agents dial. */
  readonly webSocket: {
    readonly managementEndpoint: string | undefined;
    readonly url: string | undefined;
  };
  /** The base URL of links, when behind a custom domain (no trailing slash). */
  readonly publicUrl: string | undefined;
  /** The local stack on loopback (`noauth` allowed, verification in-process). */
  readonly localStack: boolean;
  readonly auth: {
    readonly strategy: AuthStrategy;
    /** Per-principal limit in one container; null for none. */
    readonly rateLimit: RateLimit | null;
  };
  readonly audit: { readonly retentionDays: number };
  readonly history: HistorySettings;
  /** Days a command record is kept after it ends (TTL). */
  readonly commands: { readonly retentionDays: number };
  readonly provisioning: ProvisionSettings;
  /** Ironic's `force_power_state_during_sync`. */
  readonly forcePowerStateDuringSync: boolean;
  readonly images: {
    /** Files up to this many bytes are verified inline; larger ones off the request. */
    readonly inlineVerifyBytes: number;
    readonly s3ForcePathStyle: boolean;
  };
}

/** The configuration, as the composition root takes it: read once, or live (`environmentConfig`). */
export type ConfigSource = () => MetalplaneConfig;

/** A variable that is missing or malformed: its name, and what is wrong with it. */
export class ConfigError extends Error {
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable} ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

function text(env: Environment, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

function boolean(env: Environment, name: string, fallback: boolean): boolean {
  const value = text(env, name);
  if (value === undefined) return fallback;
  if (TRUE.test(value)) return true;
  if (FALSE.test(value)) return false;
  throw new ConfigError(
    name,
    `must be a boolean (true/false, 1/0, yes/no, on/off), not ${JSON.stringify(value)}`,
  );
}

function positiveSeconds(env: Environment, name: string, fallback: number): number {
  const value = text(env, name);
  if (value === undefined) return fallback;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new ConfigError(name, `must be a positive number of seconds, not ${JSON.stringify(value)}`);
  }
  return seconds;
}

function nonNegativeInteger(env: Environment, name: string, fallback: number): number {
  const value = text(env, name);
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new ConfigError(name, `must be a whole number ≥ 0, not ${JSON.stringify(value)}`);
  }
  return number;
}

function positiveInteger(env: Environment, name: string, fallback: number): number {
  const value = text(env, name);
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1) {
    throw new ConfigError(name, `must be a whole number ≥ 1, not ${JSON.stringify(value)}`);
  }
  return number;
}

function url(env: Environment, name: string): string | undefined {
  const value = text(env, name);
  if (value === undefined) return undefined;
  try {
    new URL(value);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, not ${JSON.stringify(value)}`);
  }
  return value;
}

function authStrategy(env: Environment): AuthStrategy {
  const value = text(env, AUTH_STRATEGY_ENV);
  if (value === undefined || value === 'credentials') return 'credentials';
  if (value === 'noauth') return 'noauth';
  throw new ConfigError(
    AUTH_STRATEGY_ENV,
    `must be credentials, noauth or unset, not ${JSON.stringify(value)}`,
  );
}

/** Runs a parser whose errors start with their variable's name (domain helpers), as a ConfigError. */
function named<T>(names: readonly [string, ...string[]], read: () => T): T {
  try {
    return read();
  } catch (error) {
    const message = (error as Error).message;
    const name = names.find((candidate) => message.startsWith(`${candidate} `));
    throw name ? new ConfigError(name, message.slice(name.length + 1)) : new ConfigError(names[0], message);
  }
}

/** The provision flows' timeouts (`METALPLANE_DEPLOY_CALLBACK_TIMEOUT`, `METALPLANE_IMAGE_WAIT_TIMEOUT`). */
export function readProvisionSettings(env: Environment): ProvisionSettings {
  return {
    callbackTimeoutSeconds: positiveSeconds(
      env,
      DEPLOY_CALLBACK_TIMEOUT_ENV,
      DEPLOY_CALLBACK_TIMEOUT_SECONDS,
    ),
    imageWaitTimeoutSeconds: positiveSeconds(env, IMAGE_WAIT_TIMEOUT_ENV, IMAGE_WAIT_TIMEOUT_SECONDS),
    ramdiskWaitTimeoutSeconds: positiveSeconds(env, RAMDISK_WAIT_TIMEOUT_ENV, RAMDISK_WAIT_TIMEOUT_SECONDS),
    automatedClean: boolean(env, AUTOMATED_CLEAN_ENV, true),
    eraseDevices: boolean(env, CLEAN_ERASE_DEVICES_ENV, false),
  };
}

/** The node history's limits (docs/storage.md); inconsistent ones fail naming the variable. */
export function readHistorySettings(env: Environment): HistorySettings {
  const settings: HistorySettings = {
    maxEntries: nonNegativeInteger(env, HISTORY_MAX_ENTRIES_ENV, DEFAULT_HISTORY_MAX_ENTRIES),
    cleanupIntervalSeconds: nonNegativeInteger(
      env,
      HISTORY_CLEANUP_INTERVAL_ENV,
      DEFAULT_HISTORY_CLEANUP_INTERVAL_SECONDS,
    ),
    cleanupBatchCount: positiveInteger(
      env,
      HISTORY_CLEANUP_BATCH_COUNT_ENV,
      DEFAULT_HISTORY_CLEANUP_BATCH_COUNT,
    ),
    minimumDays: nonNegativeInteger(env, HISTORY_MINIMUM_DAYS_ENV, DEFAULT_HISTORY_MINIMUM_DAYS),
    retentionDays: nonNegativeInteger(env, HISTORY_RETENTION_DAYS_ENV, DEFAULT_HISTORY_RETENTION_DAYS),
  };
  if (settings.retentionDays > 0 && settings.minimumDays > settings.retentionDays) {
    throw new ConfigError(
      HISTORY_MINIMUM_DAYS_ENV,
      `(${settings.minimumDays}) must not exceed ${HISTORY_RETENTION_DAYS_ENV} (${settings.retentionDays}): the TTL would delete events the minimum keeps`,
    );
  }
  return settings;
}

/** Parses and validates the whole configuration; throws a `ConfigError` naming the variable. */
export function readConfig(env: Environment = process.env): MetalplaneConfig {
  const localStack = boolean(env, LOCAL_STACK_ENV, false);
  // (`noauth` outside the local stack is refused where the authenticator is built, so that
  // a configuration without it still serves the other Lambdas.)
  const strategy = authStrategy(env);
  const rateLimit = named([RATE_LIMIT_RPS_ENV, RATE_LIMIT_BURST_ENV], () =>
    rateLimitFromEnv({ ...env, [LOCAL_STACK_ENV]: String(localStack) }),
  );
  const publicUrl = url(env, PUBLIC_URL_ENV);
  return {
    tables: {
      inventory: text(env, inventoryTable.envVar),
      commands: text(env, commandsTable.envVar),
      connections: text(env, connectionsTable.envVar),
      audit: text(env, auditTable.envVar),
    },
    resourcePrefix: text(env, resourcePrefixEnvVar),
    queues: {
      commandsDeadLetter: text(env, commandsDeadLetterQueue.envVar as string),
      imageVerify: text(env, imageVerifyQueue.envVar as string),
    },
    imagesBucket: text(env, imagesBucket.envVar),
    secretsKey: text(env, secretsKey.envVar),
    webSocket: {
      managementEndpoint: url(env, managementEndpointEnvVar),
      url: url(env, webSocketUrlEnvVar),
    },
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    localStack,
    auth: { strategy, rateLimit },
    audit: { retentionDays: named([RETENTION_ENV], () => retentionDays(env[RETENTION_ENV])) },
    history: readHistorySettings(env),
    commands: {
      retentionDays: positiveInteger(env, COMMAND_RETENTION_DAYS_ENV, DEFAULT_COMMAND_RETENTION_DAYS),
    },
    provisioning: readProvisionSettings(env),
    forcePowerStateDuringSync: boolean(env, FORCE_POWER_STATE_ENV, false),
    images: {
      inlineVerifyBytes: nonNegativeInteger(env, INLINE_VERIFY_ENV, DEFAULT_INLINE_VERIFY_BYTES),
      s3ForcePathStyle: boolean(env, S3_FORCE_PATH_STYLE_ENV, false),
    },
  };
}

/** A value the configuration must hold by now (a resource name), or an error naming its variable. */
export function required(
  value: string | undefined,
  variable: string,
  what = 'the name comes from the environment',
): string {
  if (!value) throw new ConfigError(variable, `is not set: ${what}`);
  return value;
}

const TABLES_BY_ENV: Readonly<Record<string, keyof MetalplaneConfig['tables']>> = {
  [inventoryTable.envVar]: 'inventory',
  [commandsTable.envVar]: 'commands',
  [connectionsTable.envVar]: 'connections',
  [auditTable.envVar]: 'audit',
};

/** The physical name of a table, by the variable its definition names (`infra/resources.ts`). */
export function tableName(config: MetalplaneConfig, envVar: string): string {
  const key = TABLES_BY_ENV[envVar];
  return required(key ? config.tables[key] : undefined, envVar, 'the table name comes from the environment');
}

/** Every variable `readConfig` reads: a change to any of them re-parses `environmentConfig`. */
const VARIABLES: readonly string[] = [
  inventoryTable.envVar,
  commandsTable.envVar,
  connectionsTable.envVar,
  auditTable.envVar,
  resourcePrefixEnvVar,
  commandsDeadLetterQueue.envVar as string,
  imageVerifyQueue.envVar as string,
  imagesBucket.envVar,
  secretsKey.envVar,
  managementEndpointEnvVar,
  webSocketUrlEnvVar,
  PUBLIC_URL_ENV,
  LOCAL_STACK_ENV,
  AUTH_STRATEGY_ENV,
  RATE_LIMIT_RPS_ENV,
  RATE_LIMIT_BURST_ENV,
  RETENTION_ENV,
  HISTORY_MAX_ENTRIES_ENV,
  HISTORY_CLEANUP_INTERVAL_ENV,
  HISTORY_CLEANUP_BATCH_COUNT_ENV,
  HISTORY_MINIMUM_DAYS_ENV,
  HISTORY_RETENTION_DAYS_ENV,
  COMMAND_RETENTION_DAYS_ENV,
  DEPLOY_CALLBACK_TIMEOUT_ENV,
  IMAGE_WAIT_TIMEOUT_ENV,
  RAMDISK_WAIT_TIMEOUT_ENV,
  AUTOMATED_CLEAN_ENV,
  CLEAN_ERASE_DEVICES_ENV,
  FORCE_POWER_STATE_ENV,
  INLINE_VERIFY_ENV,
  S3_FORCE_PATH_STYLE_ENV,
];

let cached: { readonly key: string; readonly config: MetalplaneConfig } | undefined;

/**
 * The configuration of this process's environment now: parsed again only when one of its
 * variables changed (on Lambda, never). For what is built without an entry point.
 */
export function environmentConfig(): MetalplaneConfig {
  const values: Record<string, string | undefined> = {};
  for (const name of VARIABLES) values[name] = process.env[name];
  const key = JSON.stringify(VARIABLES.map((name) => values[name] ?? null));
  if (cached?.key !== key) cached = { key, config: readConfig(values) };
  return cached.config;
}
