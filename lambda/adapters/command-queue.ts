/**
 * The command channel's durable half (DESIGN.md, "Commands"): a command is a record in
 * the Commands table plus a message on its site's SQS FIFO queue (group = node,
 * deduplication id = command id).
 *
 * - `enqueue` writes the record, sends the message, then pushes `wake` to the site's
 *   open connections: when it returns, the command is durable (accepted means durable),
 *   and a connected agent has been told to pull.
 * - `receive` (an agent's `pull`, or its long poll) takes up to `max` messages from the
 *   site's queue and marks their records `delivered` with the attempt number SQS counts.
 *   SQS FIFO keeps a node's later commands hidden while an earlier one is in flight (not
 *   yet deleted); one receive may return several of one node's commands, in order. A
 *   message whose command has already finished is deleted, not delivered; one whose
 *   deadline has passed is expired and deleted.
 * - `acknowledge` marks a command running; `complete` stores its result and deletes its
 *   message. Both are idempotent: a finished command never changes again.
 * - `expire` fails an overdue command.
 *
 * Every command that finishes here (a result, expiry, dead letter, secrets that do not
 * open) is reported once to the `CommandCompletions` port (the conductor, which writes
 * its node); the queue writes commands and queue messages, never nodes.
 */
import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import { commandsDeadLetterQueue, queueName, siteCommandQueue } from '../../infra/resources.ts';
import { type Command, type CommandStatus, MAX_MESSAGE_BYTES } from '../../protocol/messages.ts';
import {
  holdsSealed,
  holdsSecrets,
  openSecrets,
  SealedSecretError,
  type SecretSealer,
  sealSecrets,
} from '../domain/auth/sealing.ts';
import {
  type CommandRecord,
  createCommand,
  expiryMessage,
  isFinished,
  isOverdue,
  NOT_QUEUED,
  wireCommand,
} from '../domain/commands/command.ts';
import type { CommandCompletions } from '../domain/commands/completions.ts';
import { DomainError } from '../domain/errors.ts';
import { metrics } from '../observability/metrics.ts';
import { clientSqs, type Sender } from './aws-sdk.ts';
import type { ConnectionNotifier } from './connection-notifier.ts';
import type { CommandRepository } from './dynamo/command-repository.ts';
import type { ConnectionRepository } from './dynamo/connection-repository.ts';
import type { WriteOp } from './dynamo/inventory-store.ts';
import type { SiteRepository } from './dynamo/site-repository.ts';
import { createSiteCommandQueue } from './resource-factory.ts';

/** What the channel logs through (Powertools' Logger, or anything alike in tests). */
export interface ChannelLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface CommandQueueOptions {
  readonly sqs: Sender<SQSClient>;
  /** Prefix of physical names (`METALPLANE_RESOURCE_PREFIX`), read at first use. */
  readonly prefix: () => string;
  /** The commands' dead-letter queue (`METALPLANE_COMMANDS_DLQ`; default: derived from the prefix). */
  readonly deadLetterQueueName?: () => string | undefined;
  readonly sites: SiteRepository;
  readonly commands: CommandRepository;
  readonly connections: ConnectionRepository;
  readonly notifier: ConnectionNotifier;
  readonly logger: ChannelLogger;
  readonly newId: () => string;
  readonly now?: () => Date;
  /**
   * Whether a site without a recorded queue URL (made before the sites API, or by
   * `metalplane-admin site create`) gets its queue created on first use (the api
   * Lambda), or only looked up by name (the agents and conductor Lambdas, which may not
   * create queues).
   */
  readonly createMissingQueues?: boolean;
  /**
   * How long a received command stays hidden before SQS hands it out again (a
   * redelivery). Undefined: the queue's own (`siteCommandQueue`, 60 s). Tests shorten it.
   */
  readonly visibilityTimeoutSeconds?: number;
  /**
   * Told once when a command finishes (a stored result, expiry, dead letter): the
   * conductor, which writes what it means for the command's node. A command is settled
   * only once this resolved; otherwise the tick tells it again.
   */
  readonly completions: CommandCompletions;
  /**
   * Seals the secrets of a command's arguments in its record, and opens them only as the
   * command is handed to its site's agent (`domain/auth/sealing.ts`). Without one,
   * arguments are stored as given (some tests).
   */
  readonly sealer?: SecretSealer;
}

export interface EnqueueInput {
  /** The command's id when the caller needs it first (the conductor records it on the node). */
  readonly id?: string;
  readonly node: string;
  readonly site: string;
  readonly action: string;
  readonly args?: Record<string, unknown>;
  readonly deadlineSeconds?: number;
  readonly requestedBy?: string | null;
  /** The conductor's commands may be larger than an admin's (`MAX_TASK_ARGS_BYTES`). */
  readonly maxArgsBytes?: number;
}

export interface CommandResultInput {
  readonly command_id: string;
  readonly receipt: string;
  readonly status: CommandStatus;
  readonly result?: Record<string, unknown>;
  readonly error?: string;
  readonly finished_at: string;
}

/** The agent named a command that is not its site's (or does not exist): refused, never acted on. */
export class ChannelRefusal extends Error {
  override readonly name = 'ChannelRefusal';
}

const WAKE = JSON.stringify({ v: 1, type: 'wake' });
/** Room kept in an agent's message for what wraps the commands (`{"v":1,"type":"commands","commands":[]}`). */
const REPLY_ENVELOPE_BYTES = 1024;

/** A finished command the conductor failed to act on is retried by the tick after this. */
const RECHECK_SECONDS = 120;
/** The cache key of the dead-letter queue's URL (site names never contain a slash). */
const DLQ_KEY = '/dead-letter';
/** SQS's longest visibility timeout (12 h): a message cannot stay hidden longer. */
const MAX_VISIBILITY_SECONDS = 12 * 60 * 60;
/** SQS's bounds for one ReceiveMessage. */
export const MAX_RECEIVE = 10;
export const MAX_WAIT_SECONDS = 20;

export class CommandQueue {
  private readonly options: CommandQueueOptions;
  private readonly urls = new Map<string, string>();

  constructor(options: CommandQueueOptions) {
    this.options = options;
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private get log(): ChannelLogger {
    return this.options.logger;
  }

  /**
   * The site's queue URL: recorded on the site, else created (idempotent) or looked up
   * by name (`createMissingQueues`); undefined when the site has no queue (yet).
   */
  async findQueueUrl(site: string): Promise<string | undefined> {
    const cached = this.urls.get(site);
    if (cached) return cached;
    const record = await this.options.sites.get(site);
    if (!record) throw new DomainError('not-found', `Site ${site} could not be found.`);
    let url = record.queue_url ?? undefined;
    if (!url && this.options.createMissingQueues) {
      url = await createSiteCommandQueue(this.options.sqs, this.options.prefix(), site);
    } else if (!url) {
      try {
        url = (
          await this.options.sqs.send(
            new (
              await clientSqs()
            ).GetQueueUrlCommand({ QueueName: queueName(this.options.prefix(), siteCommandQueue(site)) }),
          )
        ).QueueUrl;
      } catch (error) {
        if (!isMissingQueue(error)) throw error;
      }
    }
    if (url) this.urls.set(site, url);
    return url;
  }

  async queueUrl(site: string): Promise<string> {
    const url = await this.findQueueUrl(site);
    if (!url) throw new Error(`Site ${site} has no command queue yet.`);
    return url;
  }

  /** Creates (or finds) the site's queue and answers its URL: the sites API records it. */
  async createQueue(site: string): Promise<string> {
    const url = await createSiteCommandQueue(this.options.sqs, this.options.prefix(), site);
    this.urls.set(site, url);
    return url;
  }

  /** Deletes the site's queue (when the site is deleted); a missing queue is fine. */
  async deleteQueue(site: string, knownUrl?: string | null): Promise<void> {
    this.urls.delete(site);
    let url = knownUrl ?? undefined;
    try {
      url ??= (
        await this.options.sqs.send(
          new (
            await clientSqs()
          ).GetQueueUrlCommand({ QueueName: queueName(this.options.prefix(), siteCommandQueue(site)) }),
        )
      ).QueueUrl;
      if (url) await this.options.sqs.send(new (await clientSqs()).DeleteQueueCommand({ QueueUrl: url }));
    } catch (error) {
      if (!isMissingQueue(error)) throw error;
    }
  }

  /** Writes the record, queues the message, wakes the site's agent. Durable when it returns. */
  async enqueue(input: EnqueueInput): Promise<CommandRecord> {
    const command = await this.record(input);
    await this.dispatch(command);
    return command;
  }

  /**
   * Writes the command's record (open, in the tick's index until its deadline), its
   * secrets sealed. Not queued yet: `dispatch` does it, or `abandon` ends it unqueued.
   * A caller that writes something naming the command (a node's lock) writes the record
   * with it instead (`prepare`).
   */
  async record(input: EnqueueInput): Promise<CommandRecord> {
    const command = await this.#build(input);
    await this.options.commands.create(command);
    return command;
  }

  /**
   * The command's record and the write that stores it, for the caller's own transaction
   * (the node's lock that names the command): both are written or neither, so there is
   * never a lock naming no record, nor a record of a lock that was refused. Not queued
   * yet: `dispatch` does it once the transaction is written.
   */
  async prepare(input: EnqueueInput): Promise<{ command: CommandRecord; write: WriteOp }> {
    const command = await this.#build(input);
    const duplicate = new DomainError('conflict', `Command ${command.id} is already recorded.`);
    return { command, write: this.options.commands.createOp(command, duplicate) };
  }

  /** The record of a new command, its secrets sealed; its site must have a queue. */
  async #build(input: EnqueueInput): Promise<CommandRecord> {
    const id = input.id ?? this.options.newId();
    const sealer = this.options.sealer;
    const args =
      sealer && input.args && holdsSecrets(input.args)
        ? await sealSecrets(input.args, sealer, { node: input.node })
        : input.args;
    const command = createCommand({ ...input, id, ...(args ? { args } : {}) }, this.now());
    await this.queueUrl(command.site);
    return command;
  }

  /** Queues the recorded command's message and wakes the site's agent. */
  async dispatch(command: CommandRecord): Promise<void> {
    const url = await this.queueUrl(command.site);
    try {
      await this.options.sqs.send(
        new (await clientSqs()).SendMessageCommand({
          QueueUrl: url,
          MessageBody: JSON.stringify({ v: 1, id: command.id, node: command.node, action: command.action }),
          MessageGroupId: command.node,
          MessageDeduplicationId: command.id,
        }),
      );
    } catch (error) {
      // Not queued: the record must not stay open as if it were. It stays in the tick's
      // index (unsettled) all the same: if the caller cannot undo what it did for this
      // command (a node's lock), the tick hands the failure to the conductor later.
      const at = this.now().toISOString();
      await this.options.commands
        .transitionStored(
          command.id,
          'failed',
          at,
          { error: `${NOT_QUEUED} ${(error as Error).message}`, finished_at: at },
          undefined,
          this.recheckAt(),
        )
        .catch(() => undefined);
      throw error;
    }
    metrics.commandQueued(command);
    await this.wake(command.site);
  }

  /**
   * Ends a recorded command that will not be queued (what it was for did not happen:
   * its node's lock was refused). Failed, and left to the tick's recheck all the same: a
   * write reported failed may have been applied (a timeout after DynamoDB took it), and
   * a lock naming this command must then still end.
   */
  async abandon(command: CommandRecord, reason: string): Promise<void> {
    const at = this.now().toISOString();
    await this.options.commands.transitionStored(
      command.id,
      'failed',
      at,
      { error: `${NOT_QUEUED} ${reason}`, finished_at: at },
      undefined,
      this.recheckAt(),
    );
  }

  /** Pushes `wake` to every open connection of the site; forgets the gone ones. Never throws. */
  async wake(site: string): Promise<number> {
    try {
      const connections = await this.options.connections.ofSite(site);
      const outcomes = await Promise.all(
        connections.map(async (connection) => {
          try {
            const outcome = await this.options.notifier.post(connection.connectionId, WAKE);
            if (outcome === 'gone') await this.options.connections.delete(connection);
            return outcome;
          } catch (error) {
            this.log.warn('wake not delivered', {
              site,
              connectionId: connection.connectionId,
              error: (error as Error).message,
            });
            return 'failed';
          }
        }),
      );
      return outcomes.filter((outcome) => outcome === 'sent').length;
    } catch (error) {
      // The command is durable; the agent finds it on its next pull.
      this.log.warn('wake failed', { site, error: (error as Error).message });
      return 0;
    }
  }

  /** Up to `max` commands of the site for its agent, marked delivered, in queue order. */
  async receive(site: string, options: { max: number; waitSeconds?: number }): Promise<Command[]> {
    const url = await this.findQueueUrl(site);
    // No queue yet (a site made before the sites API, nothing ever queued): nothing to do.
    if (!url) return [];
    const visibility = this.options.visibilityTimeoutSeconds;
    const { Messages = [] } = await this.options.sqs.send(
      new (await clientSqs()).ReceiveMessageCommand({
        // The SDK retries a receive whose answer was lost with the same input: with one
        // attempt id SQS answers the same messages again, instead of leaving them in
        // flight (their nodes held back) until the visibility timeout.
        ReceiveRequestAttemptId: this.options.newId(),
        QueueUrl: url,
        MaxNumberOfMessages: Math.min(Math.max(Math.trunc(options.max), 1), MAX_RECEIVE),
        WaitTimeSeconds: Math.min(Math.max(Math.trunc(options.waitSeconds ?? 0), 0), MAX_WAIT_SECONDS),
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        ...(visibility !== undefined ? { VisibilityTimeout: visibility } : {}),
      }),
    );
    if (Messages.length === 0) return [];
    const now = this.now();
    // One conditional write per message marks it delivered, and proves at once that the
    // command exists, is this site's, and is still open.
    const delivered = await Promise.all(
      Messages.map(async (message) => {
        const receipt = message.ReceiptHandle as string;
        const id = commandIdOf(message);
        const attempt = Number(message.Attributes?.ApproximateReceiveCount ?? '1') || 1;
        const updated =
          id === undefined
            ? undefined
            : await this.options.commands.transition(
                id,
                'delivered',
                now.toISOString(),
                { attempts: attempt, receipt },
                site,
              );
        if (!updated) {
          // Finished already (a result whose delete was lost, an expiry), or no command of
          // this site at all: nothing to deliver, and the message goes.
          this.log.info('queue message not delivered: its command is finished or unknown', {
            site,
            commandId: id,
            messageId: message.MessageId,
          });
          await this.deleteMessage(url, receipt);
          return undefined;
        }
        if (isOverdue(updated, now)) {
          // The tick may have expired it between our read and now: the message still goes,
          // or it would hold its node's later commands back for a visibility timeout.
          if (!(await this.expire(updated, receipt))) await this.deleteMessage(url, receipt);
          return undefined;
        }
        metrics.commandDelivered(updated, attempt, now);
        return this.handOver(site, updated, attempt, receipt);
      }),
    );
    const commands = delivered.filter((command): command is Command => command !== undefined);
    return this.fitToMessage(site, url, commands);
  }

  /**
   * The commands one answer carries: an agent's channel message holds MAX_MESSAGE_BYTES
   * (API Gateway's 128 KiB). Those beyond go back to the queue at once (visibility 0:
   * delivered again at the next pull); one that alone could never fit fails with why.
   */
  private async fitToMessage(site: string, url: string, commands: Command[]): Promise<Command[]> {
    const budget = MAX_MESSAGE_BYTES - REPLY_ENVELOPE_BYTES;
    const kept: Command[] = [];
    let used = 0;
    for (const command of commands) {
      const size = Buffer.byteLength(JSON.stringify(command)) + 1;
      if (size > budget) {
        await this.complete(site, {
          command_id: command.id,
          receipt: command.receipt,
          status: 'failed',
          error: `The command is ${size} bytes, more than an agent's message carries (${budget}).`,
          finished_at: this.now().toISOString(),
        });
      } else if (used + size <= budget) {
        kept.push(command);
        used += size;
      } else {
        await this.options.sqs
          .send(
            new (await clientSqs()).ChangeMessageVisibilityCommand({
              QueueUrl: url,
              ReceiptHandle: command.receipt,
              VisibilityTimeout: 0,
            }),
          )
          .catch((error: unknown) =>
            // Not released: it comes back after the visibility timeout instead.
            this.log.warn('a command left out of a full answer was not released', {
              commandId: command.id,
              error: (error as Error).message,
            }),
          );
      }
    }
    return kept;
  }

  /**
   * The command as its agent gets it: secrets opened. One that does not open (its key
   * gone, its record altered) fails at once with the reason, rather than reach the BMC
   * with a wrong password or come back forever.
   */
  private async handOver(
    site: string,
    command: CommandRecord,
    attempt: number,
    receipt: string,
  ): Promise<Command | undefined> {
    const sealer = this.options.sealer;
    if (!sealer || !holdsSealed(command.args)) return wireCommand(command, attempt, receipt);
    try {
      const args = await openSecrets(command.args, sealer, { node: command.node });
      return wireCommand({ ...command, args }, attempt, receipt);
    } catch (error) {
      if (!(error instanceof SealedSecretError)) throw error;
      this.log.error('a command whose secrets do not open is failed', {
        site,
        commandId: command.id,
        reason: error.message,
      });
      await this.complete(site, {
        command_id: command.id,
        receipt,
        status: 'failed',
        error: `The command's secrets could not be decrypted: ${error.message}.`,
        finished_at: this.now().toISOString(),
      });
      return undefined;
    }
  }

  private async ownCommand(site: string, id: string) {
    const found = await this.options.commands.get(id);
    if (!found || found.command.site !== site) {
      throw new ChannelRefusal(`Command ${id} is not a command of site ${site}.`);
    }
    return found;
  }

  /**
   * The agent started the command: running. One conditional write on the hot path; only
   * when it does not apply is the command read, to tell a finished command (left as it
   * is) from one that is not the agent's (refused).
   */
  async acknowledge(site: string, id: string): Promise<CommandRecord> {
    const updated = await this.options.commands.transitionStored(
      id,
      'running',
      this.now().toISOString(),
      {},
      site,
    );
    if (!updated) return (await this.ownCommand(site, id)).command;
    await this.holdWhileRunning(updated.command, updated.receipt);
    return updated.command;
  }

  /**
   * Keeps a running command's message hidden until its deadline (at most SQS's 12 h): a
   * command that runs longer than the queue's visibility timeout must not be handed out
   * again, nor climb to the dead-letter queue. Redelivery is not needed once the agent
   * runs it: its journal reports `interrupted` if it dies. A stale receipt (a newer
   * delivery, or the message gone) changes nothing here: the ack stands.
   */
  private async holdWhileRunning(command: CommandRecord, receipt: string | null): Promise<void> {
    if (!receipt) return;
    const remaining = Math.ceil((Date.parse(command.deadline) - this.now().getTime()) / 1000);
    if (!(remaining > 0)) return;
    try {
      await this.options.sqs.send(
        new (await clientSqs()).ChangeMessageVisibilityCommand({
          QueueUrl: await this.queueUrl(command.site),
          ReceiptHandle: receipt,
          VisibilityTimeout: Math.min(remaining, MAX_VISIBILITY_SECONDS),
        }),
      );
    } catch (error) {
      this.log.warn('visibility of a running command not extended', {
        commandId: command.id,
        site: command.site,
        error: (error as Error).message,
      });
    }
  }

  /**
   * The agent's result: stored once (a second result for a finished command changes
   * nothing), then the queue message is deleted with the latest receipt handed out.
   */
  async complete(
    site: string,
    input: CommandResultInput,
  ): Promise<{ command: CommandRecord; stored: boolean }> {
    const updated = await this.options.commands.transitionStored(
      input.command_id,
      input.status,
      this.now().toISOString(),
      { result: input.result ?? null, error: input.error ?? null, finished_at: input.finished_at },
      site,
      this.recheckAt(),
    );
    if (updated) metrics.commandFinished(updated.command);
    const current = updated ?? (await this.ownCommand(site, input.command_id));
    // The node first (what a client waits for), then the message (what only the queue needs).
    const reported = updated ? await this.finished(updated.command) : false;
    const url = await this.queueUrl(site);
    await Promise.all([
      this.deleteMessage(url, current.receipt ?? input.receipt),
      reported ? this.options.commands.settle(input.command_id) : undefined,
    ]);
    return { command: current.command, stored: updated !== undefined };
  }

  /**
   * Expires an open command (its error says why) and reports it; false if it had
   * finished. A message in flight is deleted with its latest receipt: it would otherwise
   * hold its node's later commands back until its visibility timeout.
   */
  async expire(command: CommandRecord, receipt?: string | null): Promise<boolean> {
    const at = this.now().toISOString();
    const message = expiryMessage(command);
    const expired = (
      await this.options.commands.transitionStored(
        command.id,
        'expired',
        at,
        { error: message, finished_at: at },
        undefined,
        this.recheckAt(),
      )
    )?.command;
    if (!expired) return false;
    metrics.commandFinished(expired);
    if (receipt) await this.deleteMessage(await this.queueUrl(command.site), receipt);
    await this.settleFinished(expired);
    this.log.warn('command expired', { commandId: command.id, node: command.node, site: command.site });
    return true;
  }

  /** Every open command past its deadline → expired (the conductor's periodic tick). */
  async expireOverdue(limit = 100): Promise<number> {
    const overdue = await this.options.commands.overdue(this.now().toISOString(), limit);
    const outcomes = await Promise.all(
      overdue.map(({ command, receipt }) =>
        (isFinished(command.status)
          ? // Finished, but the conductor never settled it (it failed then): again now.
            this.resettle(command.id).then(() => false)
          : this.expire(command, receipt)
        ).catch((error: Error) => {
          this.log.error('expiry failed', { commandId: command.id, error: error.message });
          return false;
        }),
      ),
    );
    return outcomes.filter(Boolean).length;
  }

  /**
   * Settles a finished command the tick found in byOpen, if the table says it still needs
   * it: the index lags the table on DynamoDB, so an entry may be one settled a moment ago.
   */
  private async resettle(id: string): Promise<void> {
    const stored = await this.options.commands.get(id);
    if (!stored?.unsettled || !isFinished(stored.command.status)) return;
    await this.settleFinished(stored.command);
  }

  /**
   * Reports the finished command (`CommandCompletions`); true once that is done. A
   * failure there is logged, never lost silently, never undoes the result: the command
   * stays unsettled, and the tick reports it again at its recheck time.
   */
  private async finished(command: CommandRecord): Promise<boolean> {
    try {
      await this.options.completions.finished(command);
      return true;
    } catch (error) {
      this.log.error('conductor could not act on a finished command: the tick retries', {
        commandId: command.id,
        node: command.node,
        error: (error as Error).message,
      });
      return false;
    }
  }

  /**
   * Reports a command that finished on our side (expired, dead-lettered) or that the
   * tick found unsettled, and settles it once reported.
   */
  private async settleFinished(command: CommandRecord): Promise<void> {
    if (await this.finished(command)) await this.options.commands.settle(command.id);
  }

  /** When the tick looks again at a finished command the conductor has not settled. */
  private recheckAt(): string {
    return new Date(this.now().getTime() + RECHECK_SECONDS * 1000).toISOString();
  }

  /**
   * Commands whose message went to the dead-letter queue (received 10 times, never
   * finished: an agent that crashes on it, or keeps losing it) fail now with a clear
   * error, instead of waiting for their deadline, and are reported (their node's task
   * ends, or its `last_error` says why). The dead-letter message is deleted once its
   * command is finished (by this, or before).
   */
  async failDeadLettered(limit = 50): Promise<number> {
    const configured = this.options.deadLetterQueueName?.();
    const name = configured ?? queueName(this.options.prefix(), commandsDeadLetterQueue);
    let url = this.urls.get(DLQ_KEY);
    if (!url) {
      try {
        url = (await this.options.sqs.send(new (await clientSqs()).GetQueueUrlCommand({ QueueName: name })))
          .QueueUrl;
      } catch (error) {
        if (isMissingQueue(error)) return 0;
        throw error;
      }
      if (!url) return 0;
      this.urls.set(DLQ_KEY, url);
    }
    let failed = 0;
    for (let round = 0; round * MAX_RECEIVE < limit; round++) {
      const { Messages = [] } = await this.options.sqs.send(
        new (await clientSqs()).ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: MAX_RECEIVE,
          WaitTimeSeconds: 0,
        }),
      );
      if (Messages.length === 0) break;
      for (const message of Messages) {
        const id = commandIdOf(message);
        const found = id === undefined ? undefined : await this.options.commands.get(id);
        if (found && !isFinished(found.command.status)) {
          const at = this.now().toISOString();
          const error = `Command ${found.command.action} ${found.command.id} could not be delivered: the agent of site ${found.command.site} received it ${found.command.attempts} times without a result (dead-lettered).`;
          const done = (
            await this.options.commands.transitionStored(
              found.command.id,
              'failed',
              at,
              { error, finished_at: at },
              undefined,
              this.recheckAt(),
            )
          )?.command;
          if (done) {
            failed++;
            metrics.commandFinished(done);
            this.log.warn('dead-lettered command failed', {
              commandId: done.id,
              node: done.node,
              site: done.site,
            });
            await this.settleFinished(done);
          }
        }
        await this.deleteMessage(url, message.ReceiptHandle as string);
      }
    }
    return failed;
  }

  private async deleteMessage(url: string, receipt: string): Promise<void> {
    try {
      await this.options.sqs.send(
        new (await clientSqs()).DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: receipt }),
      );
    } catch (error) {
      // A stale or foreign receipt: the message was deleted already, or will be redelivered
      // and then deleted because its command has finished.
      this.log.warn('queue message not deleted', { error: (error as Error).message });
    }
  }
}

function commandIdOf(message: Message): string | undefined {
  try {
    const body = JSON.parse(message.Body ?? '') as { id?: unknown };
    return typeof body.id === 'string' ? body.id : undefined;
  } catch {
    return undefined;
  }
}

function isMissingQueue(error: unknown): boolean {
  const name = (error as Error).name ?? '';
  return name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue';
}
