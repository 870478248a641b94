/**
 * The protocol between the Metalplane ramdisk (`ramdisk/`, a Go program that runs as the
 * init of a small initramfs on the machine being provisioned) and its site's agent, over
 * HTTP on the agent's boot HTTP server. The ramdisk talks only to the site agent, never
 * to the cloud; the agent relays what the control plane needs over its own channel.
 *
 * The ramdisk always initiates (it needs no open port, and a NAT between it and the agent
 * is harmless). Every request is one JSON POST to the `mp.url` kernel parameter's URL
 * (the agent's `/ramdisk/v1`), its `type` saying what it is, answered with JSON:
 *
 *   hello      {v, type, token, version, boot_mac}      → {v, type: hello, session, heartbeat_interval_s}
 *              `token` is the one-time token of the `mp.token` kernel parameter: the agent
 *              minted it for one node's boot and opens one session with it (a hello
 *              repeated within 3 heartbeat intervals, its answer lost, gets the same
 *              session). The session id that comes back authenticates everything after.
 *   heartbeat  {v, type, session}                       → {v, type: heartbeat, steps: Step[]}
 *              every `heartbeat_interval_s`; the answer carries the steps to run next
 *              (usually none or one). The step in flight is given again on every
 *              heartbeat until its result comes (an answer may be lost): the ramdisk runs
 *              each step id once. A ramdisk that misses heartbeats is declared lost by
 *              the agent after 3 intervals.
 *   result     {v, type, session, step, status, result?, error?}   → {v, type: ok}
 *              once per step; sent again until acknowledged (the agent keeps the first).
 *   log        {v, type, session, lines: LogLine[]}     → {v, type: ok}
 *              progress and diagnostics (erase progress, write rate), forwarded to the
 *              control plane's logs, never holding secrets.
 *
 * Errors are HTTP statuses with `{v, type: error, error}`: 400 bad message (or not JSON),
 * 401 unknown or used token or session, 409 a result for a step the session was not
 * given, 413 too large, 429 too many requests from one address (`Retry-After`).
 *
 * Shared test vectors (`protocol/ramdisk-vectors.json`) are validated by these schemas
 * (`test/unit/ramdisk-protocol.test.ts`) and decoded by the Go side's tests, so both
 * ends agree on every field. Bump `RAMDISK_PROTOCOL_VERSION` for an incompatible change.
 *
 * This module imports nothing of `lambda/`, `agent/` or `ramdisk/`.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { lazyValidator } from './lazy-validator.ts';

export const RAMDISK_PROTOCOL_VERSION = 1;
/** A request or answer larger than this is refused (413): an inventory of a large server fits. */
export const MAX_RAMDISK_MESSAGE_BYTES = 1024 * 1024;
/** The kernel parameters the boot files give the ramdisk. */
export const RAMDISK_KERNEL_PARAMS = { url: 'mp.url', token: 'mp.token' } as const;

/** The steps a ramdisk runs, with Ironic's names where Ironic has one. */
export const RAMDISK_STEPS = [
  'inspect',
  'erase_devices_metadata',
  'erase_devices',
  'write_image',
  'write_configdrive',
  'set_rescue_password',
  'reboot',
  'poweroff',
] as const;
export type RamdiskStepName = (typeof RAMDISK_STEPS)[number];

/** Ironic's root device hints (`properties.root_device`); a disk must match every given one. */
export interface RootDeviceHints {
  readonly size?: number | string;
  readonly model?: string;
  readonly serial?: string;
  readonly wwn?: string;
  readonly name?: string;
  readonly rotational?: boolean;
  readonly vendor?: string;
}

export interface WriteImageArgs {
  /** Where the site agent serves the image (its HTTP tree). */
  readonly url: string;
  /** SHA-256 of the bytes served (the compressed file when compressed). */
  readonly sha256: string;
  /** The bytes served: a raw disk image, or one compressed with gzip. */
  readonly format: 'raw' | 'raw+gzip';
  readonly root_device?: RootDeviceHints;
}

export interface WriteConfigdriveArgs {
  /** An ISO 9660 (or vfat) image labelled config-2, served by the site agent, gzipped. */
  readonly url: string;
  readonly sha256: string;
  readonly root_device?: RootDeviceHints;
}

export interface EraseArgs {
  /** Disks not to touch (their names, e.g. the one holding a rescue system): rarely used. */
  readonly skip?: readonly string[];
}

export interface RamdiskStepArgs {
  readonly inspect: Record<string, never>;
  readonly erase_devices_metadata: EraseArgs;
  readonly erase_devices: EraseArgs;
  readonly write_image: WriteImageArgs;
  readonly write_configdrive: WriteConfigdriveArgs;
  readonly set_rescue_password: { readonly hashed_password: string };
  readonly reboot: Record<string, never>;
  readonly poweroff: Record<string, never>;
}

export interface RamdiskStep<N extends RamdiskStepName = RamdiskStepName> {
  /** Unique within the session (the agent's command id for it). */
  readonly id: string;
  readonly name: N;
  readonly args: RamdiskStepArgs[N];
}

/** The hardware inventory, in ironic-python-agent's shape (what Ironic serves at `/inventory`). */
export interface Inventory {
  readonly cpu: {
    readonly model_name: string | null;
    readonly frequency: string | null;
    readonly count: number;
    readonly architecture: string;
    readonly flags: readonly string[];
    readonly socket_count: number | null;
  };
  readonly memory: { readonly total: number; readonly physical_mb: number };
  readonly disks: ReadonlyArray<{
    readonly name: string;
    readonly model: string | null;
    readonly size: number;
    readonly rotational: boolean;
    readonly wwn: string | null;
    readonly serial: string | null;
    readonly vendor: string | null;
    readonly by_path: string | null;
  }>;
  readonly interfaces: ReadonlyArray<{
    readonly name: string;
    readonly mac_address: string;
    readonly ipv4_address: string | null;
    readonly has_carrier: boolean;
    readonly driver: string | null;
    readonly speed_mbps: number | null;
    readonly pxe_enabled?: boolean;
  }>;
  readonly system_vendor: {
    readonly product_name: string | null;
    readonly serial_number: string | null;
    readonly manufacturer: string | null;
  };
  readonly boot: { readonly current_boot_mode: 'bios' | 'uefi'; readonly pxe_interface: string | null };
  readonly hostname: string | null;
}

export interface EraseResult {
  readonly disks: ReadonlyArray<{ readonly name: string; readonly method: 'metadata' | 'discard' | 'zero' }>;
}

export interface WriteImageResult {
  readonly disk: string;
  readonly bytes_written: number;
  readonly seconds: number;
}

export interface RamdiskStepResults {
  readonly inspect: { readonly inventory: Inventory };
  readonly erase_devices_metadata: EraseResult;
  readonly erase_devices: EraseResult;
  readonly write_image: WriteImageResult;
  readonly write_configdrive: { readonly disk: string; readonly partition: string };
  readonly set_rescue_password: Record<string, never>;
  readonly reboot: Record<string, never>;
  readonly poweroff: Record<string, never>;
}

export interface LogLine {
  readonly at: string;
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly message: string;
  readonly step?: string;
  /** Fraction done of the step, 0..1, when it knows. */
  readonly progress?: number;
}

export type RamdiskRequest =
  | { v: 1; type: 'hello'; token: string; version: string; boot_mac: string | null }
  | { v: 1; type: 'heartbeat'; session: string }
  | {
      v: 1;
      type: 'result';
      session: string;
      step: string;
      status: 'succeeded' | 'failed';
      result?: Record<string, unknown>;
      error?: string;
    }
  | { v: 1; type: 'log'; session: string; lines: LogLine[] };

export type RamdiskAnswer =
  | { v: 1; type: 'hello'; session: string; heartbeat_interval_s: number }
  | { v: 1; type: 'heartbeat'; steps: RamdiskStep[] }
  | { v: 1; type: 'ok' }
  | { v: 1; type: 'error'; error: string };

const MAC = '^([0-9a-f]{2}:){5}[0-9a-f]{2}$';
const ID = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' } as const;
const SHA256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const HTTP_URL = { type: 'string', maxLength: 2048, pattern: '^https?://[^\\s]+$' } as const;

const HINTS = {
  type: 'object',
  properties: {
    size: { type: ['integer', 'string'] },
    model: { type: 'string' },
    serial: { type: 'string' },
    wwn: { type: 'string' },
    name: { type: 'string' },
    rotational: { type: 'boolean' },
    vendor: { type: 'string' },
  },
  additionalProperties: false,
} as const;

const EMPTY = { type: 'object', maxProperties: 0 } as const;

/** Each step's arguments, as the agent sends them and the ramdisk checks them. */
export const RAMDISK_STEP_ARGS_SCHEMAS: Readonly<Record<RamdiskStepName, object>> = {
  inspect: EMPTY,
  erase_devices_metadata: {
    type: 'object',
    properties: { skip: { type: 'array', items: { type: 'string' }, maxItems: 64 } },
    additionalProperties: false,
  },
  erase_devices: {
    type: 'object',
    properties: { skip: { type: 'array', items: { type: 'string' }, maxItems: 64 } },
    additionalProperties: false,
  },
  write_image: {
    type: 'object',
    properties: {
      url: HTTP_URL,
      sha256: SHA256,
      format: { enum: ['raw', 'raw+gzip'] },
      root_device: HINTS,
    },
    required: ['url', 'sha256', 'format'],
    additionalProperties: false,
  },
  write_configdrive: {
    type: 'object',
    properties: { url: HTTP_URL, sha256: SHA256, root_device: HINTS },
    required: ['url', 'sha256'],
    additionalProperties: false,
  },
  set_rescue_password: {
    type: 'object',
    // One /etc/shadow field: printable ASCII without ':' or white space (no injected fields or lines).
    properties: { hashed_password: { type: 'string', minLength: 1, maxLength: 512, pattern: '^[!-9;-~]+$' } },
    required: ['hashed_password'],
    additionalProperties: false,
  },
  reboot: EMPTY,
  poweroff: EMPTY,
};

const STEP = {
  type: 'object',
  properties: { id: ID, name: { enum: RAMDISK_STEPS }, args: { type: 'object' } },
  required: ['id', 'name', 'args'],
  additionalProperties: false,
  allOf: RAMDISK_STEPS.map((name) => ({
    if: { properties: { name: { const: name } } },
    // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then
    then: { properties: { args: RAMDISK_STEP_ARGS_SCHEMAS[name] } },
  })),
} as const;

const LOG_LINE = {
  type: 'object',
  properties: {
    at: { type: 'string', maxLength: 64 },
    level: { enum: ['debug', 'info', 'warn', 'error'] },
    message: { type: 'string', maxLength: 4096 },
    step: ID,
    progress: { type: 'number', minimum: 0, maximum: 1 },
  },
  required: ['at', 'level', 'message'],
  additionalProperties: false,
} as const;

export const RAMDISK_REQUEST_SCHEMA = {
  oneOf: [
    {
      type: 'object',
      properties: {
        v: { const: 1 },
        type: { const: 'hello' },
        token: { type: 'string', minLength: 16, maxLength: 256, pattern: '^[A-Za-z0-9_-]+$' },
        version: { type: 'string', maxLength: 64 },
        boot_mac: { anyOf: [{ type: 'string', pattern: MAC }, { type: 'null' }] },
      },
      required: ['v', 'type', 'token', 'version', 'boot_mac'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: { v: { const: 1 }, type: { const: 'heartbeat' }, session: ID },
      required: ['v', 'type', 'session'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: {
        v: { const: 1 },
        type: { const: 'result' },
        session: ID,
        step: ID,
        status: { enum: ['succeeded', 'failed'] },
        result: { type: 'object' },
        error: { type: 'string', maxLength: 4096 },
      },
      required: ['v', 'type', 'session', 'step', 'status'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: {
        v: { const: 1 },
        type: { const: 'log' },
        session: ID,
        lines: { type: 'array', items: LOG_LINE, minItems: 1, maxItems: 500 },
      },
      required: ['v', 'type', 'session', 'lines'],
      additionalProperties: false,
    },
  ],
} as const;

export const RAMDISK_ANSWER_SCHEMA = {
  oneOf: [
    {
      type: 'object',
      properties: {
        v: { const: 1 },
        type: { const: 'hello' },
        session: ID,
        heartbeat_interval_s: { type: 'integer', minimum: 1, maximum: 300 },
      },
      required: ['v', 'type', 'session', 'heartbeat_interval_s'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: {
        v: { const: 1 },
        type: { const: 'heartbeat' },
        steps: { type: 'array', items: STEP, maxItems: 16 },
      },
      required: ['v', 'type', 'steps'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: { v: { const: 1 }, type: { const: 'ok' } },
      required: ['v', 'type'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: { v: { const: 1 }, type: { const: 'error' }, error: { type: 'string' } },
      required: ['v', 'type', 'error'],
      additionalProperties: false,
    },
  ],
} as const;

// Compiled at the first validation (not at import: issue 18); precompiled in the agent bundle.
export const validateRamdiskRequest: ValidateFunction<RamdiskRequest> = lazyValidator<RamdiskRequest>(
  'ramdisk.request',
  { strict: false },
  RAMDISK_REQUEST_SCHEMA,
);
export const validateRamdiskAnswer: ValidateFunction<RamdiskAnswer> = lazyValidator<RamdiskAnswer>(
  'ramdisk.answer',
  { strict: false },
  RAMDISK_ANSWER_SCHEMA,
);
