/**
 * The messages between the control plane and a site's agent (DESIGN.md, "Commands"):
 * TypeScript types and the JSON Schemas both ends validate with, versioned. The same
 * messages travel over the WebSocket and over the HTTPS long-polling fallback.
 *
 * Delivery: a command is a record plus a message on the site's SQS FIFO queue (group =
 * node). The control plane sends `wake` when one is queued; the agent answers `pull`;
 * the control plane receives from the queue for it (FIFO order per node; a node's next
 * command stays hidden until the previous one is deleted) and answers `commands`. The
 * agent sends `command_result` when a command ends, and `command_ack` when one is still
 * running a moment after it started (a quarter of a second: the control plane then marks
 * it running and keeps its message hidden until its deadline); a command that ends
 * sooner is acknowledged by its result alone. The result deletes the queue message. A
 * redelivered command (same id) is answered from the agent's journal, never run twice.
 *
 * This module imports nothing of `lambda/` or `agent/`; both import it.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { POWER_STATES } from './actions.ts';
import { errorsText, lazyValidator } from './lazy-validator.ts';
import { WIRE_VERSION } from './versions.ts';

/** `v` is the envelope's version; the protocol (feature level) is `hello.protocol_version` (versions.ts). */
export { PROTOCOL_VERSION, WIRE_VERSION } from './versions.ts';
/** API Gateway's WebSocket frame limit is 32 KiB and its message limit 128 KiB. */
export const MAX_MESSAGE_BYTES = 128 * 1024;

export type CommandStatus = 'succeeded' | 'failed';

export interface Command {
  readonly id: string;
  readonly node: string;
  /** An action of the catalog (`actions.ts`), or any name an admin sent (the agent refuses it). */
  readonly action: string;
  readonly args: Record<string, unknown>;
  /** ISO time after which the control plane no longer waits for a result. */
  readonly deadline: string;
  readonly attempt: number;
  /** Opaque handle the result must carry back (the SQS receipt). */
  readonly receipt: string;
}

export type AgentMessage =
  | {
      v: 1;
      type: 'hello';
      hostname: string;
      agent_version: string;
      drivers: string[];
      /** The agent's protocol (versions.ts); absent: protocol 1. */
      protocol_version?: number;
      /** The catalog actions and protocol features it has (protocol 2 on); absent: its protocol's baseline. */
      features?: string[];
    }
  | { v: 1; type: 'heartbeat'; sent_at: string }
  | { v: 1; type: 'pull'; max: number }
  | { v: 1; type: 'command_ack'; command_id: string; receipt: string }
  | {
      v: 1;
      type: 'command_result';
      command_id: string;
      receipt: string;
      status: CommandStatus;
      result?: Record<string, unknown>;
      error?: string;
      finished_at: string;
    }
  | {
      v: 1;
      type: 'power_report';
      /** Nodes whose BMC answered differently from the recorded state, or did not answer. */
      reports: Array<{
        node: string;
        power_state: string | null;
        error?: string;
        /** Consecutive failed reads of this BMC (the control plane faults the node past a limit). */
        failures?: number;
        observed_at: string;
      }>;
    }
  /**
   * A deployed system called the agent's callback URL (`/v1/callback/{node}?token=`):
   * relayed so the node leaves `wait call-back`. The token is the deploy's single-use one.
   */
  | { v: 1; type: 'deploy_callback'; node: string; token: string }
  /**
   * Asks for the images this agent's site should hold; answered with `images`. `accepts`:
   * the kinds beyond iso/kernel/ramdisk this agent can hold (`disk`: whole-disk images it
   * prepares for the deploy ramdisk); an agent that does not say so is never sent them.
   */
  | { v: 1; type: 'images_pull'; cursor?: string; accepts?: ImageExtraKind[] }
  /** Sync state of images at this agent's site (changes, and a full set now and then). */
  | { v: 1; type: 'image_report'; reports: ImageReport[] };

/** A file of an image as stored at a site: `<images dir>/<image uuid>/<role>`. */
export type ImageFileRole = 'iso' | 'kernel' | 'ramdisk' | 'disk';

/** Kinds an agent holds only when its `images_pull` says it `accepts` them. */
export type ImageExtraKind = 'disk';
export const IMAGE_EXTRA_KINDS: readonly ImageExtraKind[] = ['disk'];

/** The layout of a whole-disk image's file (`disk_format` in the catalog). */
export type DiskImageFormat = 'raw' | 'raw+gzip' | 'raw+zstd' | 'qcow2';
export const DISK_IMAGE_FORMATS: readonly DiskImageFormat[] = ['raw', 'raw+gzip', 'raw+zstd', 'qcow2'];

/**
 * What a site serves the deploy ramdisk for a whole-disk image: `path` relative to the
 * site's images directory (`<uuid>/disk` as downloaded, or `<uuid>/disk.raw.gz` prepared
 * from a qcow2 or zstd one), and the format, SHA-256 and size of those bytes.
 */
export interface ServedDiskImage {
  readonly path: string;
  readonly format: 'raw' | 'raw+gzip';
  readonly sha256: string;
  readonly size: number;
}

export interface ImageFile {
  readonly role: ImageFileRole;
  readonly size: number;
  /** Lower-case hex SHA-256 of the whole file. */
  readonly sha256: string;
  /** Short-lived presigned GET URL (S3); re-requested with `images_pull` when expired. */
  readonly url: string;
  readonly url_expires_at: string;
}

/** An image a site should hold (active, and selected for the site). */
export interface ImageAssignment {
  readonly uuid: string;
  readonly name: string;
  /** A whole-disk image (one file, role `disk`): how its bytes are laid out. */
  readonly disk_format?: DiskImageFormat;
  readonly files: readonly ImageFile[];
}

export type ImageSyncState = 'pending' | 'syncing' | 'ready' | 'error';

export interface ImageReport {
  readonly image: string;
  readonly state: ImageSyncState;
  readonly bytes_done: number;
  readonly bytes_total: number;
  readonly error?: string;
  readonly observed_at: string;
  /** A whole-disk image `ready` at the site: the file prepared for the deploy ramdisk. */
  readonly served?: ServedDiskImage;
}

export type ServerMessage =
  /** Work is waiting: `commands` (the default) → pull; `images` → images_pull. */
  | { v: 1; type: 'wake'; topic?: 'commands' | 'images' }
  /** One page of the site's images; `cursor` set when more follow (ask again with it). */
  | { v: 1; type: 'images'; images: ImageAssignment[]; cursor?: string }
  | { v: 1; type: 'commands'; commands: Command[] }
  /**
   * The answer to `command_result`: the control plane holds that command's result (stored
   * now, or already). Until it comes the agent keeps the result and sends it again: a
   * frame lost on the way is never a result lost.
   */
  | { v: 1; type: 'result_ack'; command_id: string }
  /**
   * The answer to the `hello` of an agent that has the `welcome` feature (protocol 2 on):
   * the control plane's protocol, the oldest it serves, and this build's features the
   * agent lacks (an agent behind should be upgraded).
   */
  | {
      v: 1;
      type: 'welcome';
      protocol_version: number;
      oldest_supported_protocol: number;
      missing_features: string[];
    }
  | { v: 1; type: 'error'; message: string };

const id = { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' };
const uuid = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' };
const byteCount = { type: 'integer', minimum: 0, maximum: 2 ** 50 };
const time = { type: 'string', maxLength: 40, pattern: '^\\d{4}-\\d{2}-\\d{2}T' };
const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const SERVED_SCHEMA = {
  type: 'object',
  properties: {
    path: {
      type: 'string',
      maxLength: 128,
      pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[a-z0-9][a-z0-9._+-]{0,63}$',
    },
    format: { enum: ['raw', 'raw+gzip'] },
    sha256,
    size: byteCount,
  },
  required: ['path', 'format', 'sha256', 'size'],
  additionalProperties: false,
};
const FEATURE = { type: 'string', pattern: '^[a-z][a-z0-9_.]{0,63}$' };
const envelope = (type: string, properties: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  properties: { v: { const: WIRE_VERSION }, type: { const: type }, ...properties },
  required: ['v', 'type', ...required],
  additionalProperties: false,
});

const COMMAND_SCHEMA = {
  type: 'object',
  properties: {
    id,
    node: id,
    action: { type: 'string', pattern: '^[a-z][a-z0-9_.]{0,63}$' },
    args: { type: 'object' },
    deadline: time,
    attempt: { type: 'integer', minimum: 1, maximum: 1000 },
    receipt: { type: 'string', minLength: 1, maxLength: 2048 },
  },
  required: ['id', 'node', 'action', 'args', 'deadline', 'attempt', 'receipt'],
  additionalProperties: false,
};

export const AGENT_MESSAGE_SCHEMA = {
  oneOf: [
    envelope(
      'hello',
      {
        hostname: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,253}$' },
        agent_version: { type: 'string', maxLength: 64 },
        drivers: { type: 'array', items: { type: 'string', maxLength: 64 }, maxItems: 16 },
        protocol_version: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        features: { type: 'array', items: FEATURE, maxItems: 256 },
      },
      ['hostname', 'agent_version', 'drivers'],
    ),
    envelope('heartbeat', { sent_at: time }, ['sent_at']),
    envelope('pull', { max: { type: 'integer', minimum: 1, maximum: 10 } }, ['max']),
    envelope('command_ack', { command_id: id, receipt: COMMAND_SCHEMA.properties.receipt }, [
      'command_id',
      'receipt',
    ]),
    envelope(
      'command_result',
      {
        command_id: id,
        receipt: COMMAND_SCHEMA.properties.receipt,
        status: { enum: ['succeeded', 'failed'] },
        result: { type: 'object' },
        error: { type: 'string', maxLength: 4096 },
        finished_at: time,
      },
      ['command_id', 'receipt', 'status', 'finished_at'],
    ),
    envelope(
      'power_report',
      {
        reports: {
          type: 'array',
          maxItems: 500,
          items: {
            type: 'object',
            properties: {
              node: id,
              power_state: { enum: [...POWER_STATES, null] },
              error: { type: 'string', maxLength: 1024 },
              failures: { type: 'integer', minimum: 0, maximum: 1_000_000 },
              observed_at: time,
            },
            required: ['node', 'power_state', 'observed_at'],
            additionalProperties: false,
          },
        },
      },
      ['reports'],
    ),
    envelope(
      'deploy_callback',
      { node: uuid, token: { type: 'string', pattern: '^[A-Za-z0-9_-]{16,128}$' } },
      ['node', 'token'],
    ),
    envelope(
      'images_pull',
      {
        cursor: { type: 'string', minLength: 1, maxLength: 512 },
        accepts: { type: 'array', items: { enum: [...IMAGE_EXTRA_KINDS] }, maxItems: 8, uniqueItems: true },
      },
      [],
    ),
    envelope(
      'image_report',
      {
        reports: {
          type: 'array',
          maxItems: 500,
          items: {
            type: 'object',
            properties: {
              image: uuid,
              state: { enum: ['pending', 'syncing', 'ready', 'error'] },
              bytes_done: byteCount,
              bytes_total: byteCount,
              error: { type: 'string', maxLength: 1024 },
              observed_at: time,
              served: SERVED_SCHEMA,
            },
            required: ['image', 'state', 'bytes_done', 'bytes_total', 'observed_at'],
            additionalProperties: false,
          },
        },
      },
      ['reports'],
    ),
  ],
};

const IMAGE_ASSIGNMENT_SCHEMA = {
  type: 'object',
  properties: {
    uuid,
    name: { type: 'string', minLength: 1, maxLength: 255 },
    disk_format: { enum: [...DISK_IMAGE_FORMATS] },
    files: {
      type: 'array',
      minItems: 1,
      maxItems: 2,
      items: {
        type: 'object',
        properties: {
          role: { enum: ['iso', 'kernel', 'ramdisk', 'disk'] },
          size: byteCount,
          sha256,
          url: { type: 'string', pattern: '^https?://', maxLength: 4096 },
          url_expires_at: time,
        },
        required: ['role', 'size', 'sha256', 'url', 'url_expires_at'],
        additionalProperties: false,
      },
    },
  },
  required: ['uuid', 'name', 'files'],
  additionalProperties: false,
};

export const SERVER_MESSAGE_SCHEMA = {
  oneOf: [
    envelope('wake', { topic: { enum: ['commands', 'images'] } }, []),
    // At most 20 images per message keeps it under API Gateway's 128 KiB with long URLs.
    envelope(
      'images',
      {
        images: { type: 'array', items: IMAGE_ASSIGNMENT_SCHEMA, maxItems: 20 },
        cursor: { type: 'string', minLength: 1, maxLength: 512 },
      },
      ['images'],
    ),
    envelope('commands', { commands: { type: 'array', items: COMMAND_SCHEMA, maxItems: 10 } }, ['commands']),
    envelope('result_ack', { command_id: id }, ['command_id']),
    envelope(
      'welcome',
      {
        protocol_version: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        oldest_supported_protocol: { type: 'integer', minimum: 1, maximum: 1_000_000 },
        missing_features: { type: 'array', items: FEATURE, maxItems: 256 },
      },
      ['protocol_version', 'oldest_supported_protocol', 'missing_features'],
    ),
    envelope('error', { message: { type: 'string', maxLength: 4096 } }, ['message']),
  ],
};

// Compiled at the first message, not at import (issue 18: the api Lambda's cold start);
// precompiled in the agent bundle (lazy-validator.ts).
const validateAgentMessage = lazyValidator<AgentMessage>(
  'protocol.agent-message',
  { strict: true, allowUnionTypes: true },
  AGENT_MESSAGE_SCHEMA,
);
const validateServerMessage = lazyValidator<ServerMessage>(
  'protocol.server-message',
  { strict: true, allowUnionTypes: true },
  SERVER_MESSAGE_SCHEMA,
);

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function parse(text: string | Buffer, validator: ValidateFunction): unknown {
  const raw = typeof text === 'string' ? text : text.toString('utf8');
  if (Buffer.byteLength(raw) > MAX_MESSAGE_BYTES)
    throw new ProtocolError(`message larger than ${MAX_MESSAGE_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new ProtocolError('message is not JSON');
  }
  if (!validator(value)) {
    const kind = (value as { type?: unknown } | null)?.type;
    throw new ProtocolError(
      `invalid ${typeof kind === 'string' ? kind.slice(0, 32) : 'message'}: ${errorsText(validator.errors?.slice(0, 1))}`,
    );
  }
  return value;
}

/** An agent's message, validated; throws ProtocolError for anything else. */
export function parseAgentMessage(text: string | Buffer): AgentMessage {
  return parse(text, validateAgentMessage) as AgentMessage;
}

/** A control-plane message, validated; throws ProtocolError for anything else. */
export function parseServerMessage(text: string | Buffer): ServerMessage {
  return parse(text, validateServerMessage) as ServerMessage;
}
