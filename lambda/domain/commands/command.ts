/**
 * A command for a site's agent (DESIGN.md, "Commands"): the durable record the control
 * plane keeps of it, its legal transitions, and its wire form (`protocol/messages.ts`).
 * Pure: ids, times and storage come from callers.
 *
 *   queued ──pull──► delivered ──ack──► running ──result──► succeeded | failed
 *     │                 ▲  │              │
 *     │                 └──┴─redelivery───┘   (the agent died, or no result before the
 *     │                                        queue's visibility timeout: attempt + 1)
 *     └───────── deadline passed without a result (any open state) ─────► expired
 *
 * A finished command (succeeded, failed, expired) never changes again: a second result,
 * a late ack or a redelivery of it changes nothing.
 */
import type { Command } from '../../../protocol/messages.ts';
import { invalid } from '../errors.ts';

export type CommandState = 'queued' | 'delivered' | 'running' | 'succeeded' | 'failed' | 'expired';

export const COMMAND_STATES: readonly CommandState[] = [
  'queued',
  'delivered',
  'running',
  'succeeded',
  'failed',
  'expired',
];

export const OPEN_STATES: readonly CommandState[] = ['queued', 'delivered', 'running'];
export const FINISHED_STATES: readonly CommandState[] = ['succeeded', 'failed', 'expired'];

export interface CommandRecord {
  readonly id: string;
  /** The node's UUID: the SQS message group. */
  readonly node: string;
  /** The node's site (conductor_group), whose agent runs the command. */
  readonly site: string;
  readonly action: string;
  readonly args: Record<string, unknown>;
  readonly status: CommandState;
  /** How many times the queue handed it to an agent (SQS ApproximateReceiveCount). */
  readonly attempts: number;
  /** ISO time after which no result is awaited: the command expires. */
  readonly deadline: string;
  readonly created_at: string;
  readonly updated_at: string | null;
  readonly result: Record<string, unknown> | null;
  readonly error: string | null;
  /** When the agent finished it (its `finished_at`), or when it expired. */
  readonly finished_at: string | null;
  /** Who asked: a user name, or `conductor` for the state machine's own commands. */
  readonly requested_by: string | null;
}

/** Legal next states of each state (a state may repeat where a redelivery or a duplicate ack does). */
const TRANSITIONS: Readonly<Record<CommandState, readonly CommandState[]>> = {
  queued: ['delivered', 'running', 'succeeded', 'failed', 'expired'],
  delivered: ['delivered', 'running', 'succeeded', 'failed', 'expired'],
  running: ['delivered', 'running', 'succeeded', 'failed', 'expired'],
  succeeded: [],
  failed: [],
  expired: [],
};

export function canTransition(from: CommandState, to: CommandState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The states from which `to` may be reached (the condition of a conditional write). */
export function statesLeadingTo(to: CommandState): CommandState[] {
  return COMMAND_STATES.filter((from) => canTransition(from, to));
}

export function isFinished(status: CommandState): boolean {
  return FINISHED_STATES.includes(status);
}

/** Ten minutes unless asked otherwise; at least a second, at most a day. */
export const DEFAULT_DEADLINE_SECONDS = 600;
export const MIN_DEADLINE_SECONDS = 1;
export const MAX_DEADLINE_SECONDS = 24 * 3600;
/**
 * A command's arguments, serialized, at most 8 KiB when an admin sends them
 * (`POST /v1/nodes/{node}/commands`): ten of them (a `pull`'s maximum), with their
 * receipts, stay under API Gateway's 128 KiB WebSocket message limit.
 */
export const MAX_ARGS_BYTES = 8 * 1024;
/**
 * The conductor's own commands may be larger (a sealed config drive: 32 KiB of JSON is
 * about 44 KiB sealed); a pull answers as many as fit in one message and leaves the rest
 * for the next (`CommandQueue.receive`).
 */
export const MAX_TASK_ARGS_BYTES = 64 * 1024;

/** As `protocol/messages.ts` accepts them. */
const ACTION = /^[a-z][a-z0-9_.]{0,63}$/;

export interface NewCommand {
  readonly id: string;
  readonly node: string;
  readonly site: string;
  readonly action: string;
  readonly args?: Record<string, unknown>;
  readonly deadlineSeconds?: number;
  readonly requestedBy?: string | null;
  /** Default MAX_ARGS_BYTES. */
  readonly maxArgsBytes?: number;
}

export function validateAction(action: unknown): string {
  if (typeof action !== 'string' || !ACTION.test(action)) {
    throw invalid(
      `Invalid command action ${JSON.stringify(action)}: 1 to 64 lower-case letters, digits, '_' or '.', starting with a letter.`,
    );
  }
  return action;
}

export function validateArgs(args: unknown, maxBytes: number = MAX_ARGS_BYTES): Record<string, unknown> {
  if (args === undefined || args === null) return {};
  if (typeof args !== 'object' || Array.isArray(args)) throw invalid('Command args must be a JSON object.');
  const size = Buffer.byteLength(JSON.stringify(args));
  if (size > maxBytes) {
    throw invalid(`Command args are ${size} bytes serialized; at most ${maxBytes} are allowed.`);
  }
  return args as Record<string, unknown>;
}

export function validateDeadlineSeconds(value: unknown): number {
  if (value === undefined || value === null) return DEFAULT_DEADLINE_SECONDS;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < MIN_DEADLINE_SECONDS ||
    value > MAX_DEADLINE_SECONDS
  ) {
    throw invalid(
      `Invalid deadline_seconds ${JSON.stringify(value)}: an integer from ${MIN_DEADLINE_SECONDS} to ${MAX_DEADLINE_SECONDS}.`,
    );
  }
  return value;
}

/** A new, queued command. */
export function createCommand(input: NewCommand, now: Date): CommandRecord {
  const deadlineSeconds = validateDeadlineSeconds(input.deadlineSeconds);
  return {
    id: input.id,
    node: input.node,
    site: input.site,
    action: validateAction(input.action),
    args: validateArgs(input.args, input.maxArgsBytes),
    status: 'queued',
    attempts: 0,
    deadline: new Date(now.getTime() + deadlineSeconds * 1000).toISOString(),
    created_at: now.toISOString(),
    updated_at: null,
    result: null,
    error: null,
    finished_at: null,
    requested_by: input.requestedBy ?? null,
  };
}

export function isOverdue(command: Pick<CommandRecord, 'deadline'>, now: Date): boolean {
  return Date.parse(command.deadline) <= now.getTime();
}

/** What an expired command leaves in its node's `last_error`. */
export function expiryMessage(command: Pick<CommandRecord, 'action' | 'id' | 'site' | 'deadline'>): string {
  return `Command ${command.action} ${command.id} expired: no result from the agent of site ${command.site} by ${command.deadline}.`;
}

/**
 * What a finished command that no task awaited (an admin's raw command) leaves in its
 * node's `last_error`: nothing when it succeeded. Our own failures (expiry, dead letter)
 * already say which command; an agent's words get that said around them.
 */
/** How the error of a command that never reached its queue starts. */
export const NOT_QUEUED = 'The command could not be queued:';

/** Whether the command failed before it was queued (no agent ever saw it). */
export const neverQueued = (command: Pick<CommandRecord, 'attempts' | 'error'>): boolean =>
  command.attempts === 0 && (command.error?.startsWith(NOT_QUEUED) ?? false);

export function unawaitedError(
  command: Pick<CommandRecord, 'action' | 'id' | 'site' | 'status' | 'error' | 'attempts'>,
): string | undefined {
  if (command.status === 'succeeded') return undefined;
  // Its requester was answered with the error when it happened: the node is not to blame.
  if (command.status === 'failed' && neverQueued(command)) return undefined;
  const ours = command.error?.startsWith(`Command ${command.action} ${command.id} `) ?? false;
  const message = command.status === 'failed' && !ours ? failureMessage(command) : command.error;
  return message || undefined;
}

/** A failed command's `last_error`: which action, and the agent's words. */
function failureMessage(command: Pick<CommandRecord, 'action' | 'id' | 'site' | 'error'>): string {
  const cause = command.error ? `: ${command.error}` : ' (the agent gave no error message)';
  return `Command ${command.action} ${command.id} failed on the agent of site ${command.site}${cause}`;
}

/** The command as the agent receives it. */
export function wireCommand(command: CommandRecord, attempt: number, receipt: string): Command {
  return {
    id: command.id,
    node: command.node,
    action: command.action,
    args: command.args,
    deadline: command.deadline,
    attempt: Math.min(Math.max(attempt, 1), 1000),
    receipt,
  };
}
