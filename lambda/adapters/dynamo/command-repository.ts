/**
 * Command records in the Commands table (`infra/resources.ts`).
 *
 * Item: `pk = command#<id>`, `sk = command`, the record's fields as attributes, and
 *  - `nodePk = node#<uuid>`, `nodeSk = <created_at>#<id>`: a node's commands (byNode);
 *  - `openPk = open#<shard>`, `openSk = <deadline>#<id>` while the command needs the
 *    tick's attention: while it is open (queued, delivered, running), and once finished
 *    until the conductor has acted on it (`openSk` then = a recheck time; `settle`
 *    removes both): the sparse byOpen index the periodic tick reads, a few shards wide
 *    so no single partition takes every write. A conductor that failed between the
 *    command's result and its node's update is retried by the tick, never forgotten;
 *  - `receipt`: the SQS receipt handle of its latest delivery (internal);
 *  - `expiresAt`: TTL (docs/storage.md): `METALPLANE_COMMAND_RETENTION_DAYS` (default 30)
 *    after the command ends (set by the transition to a finished state), and until then
 *    the same number of days after its deadline, so a record that never ends goes too.
 *
 * Every transition is one conditional UpdateItem on `status` (the legal predecessors of
 * the new state, `domain/commands/command.ts`), so concurrent results, acks, redeliveries
 * and the expiry tick never overwrite a finished command.
 */

import { createHash } from 'node:crypto';
import { environmentConfig } from '../../config.ts';
import {
  type CommandRecord,
  type CommandState,
  FINISHED_STATES,
  statesLeadingTo,
} from '../../domain/commands/command.ts';
import type { DomainError } from '../../domain/errors.ts';
import { libDynamoDB } from '../aws-sdk.ts';
import { type TableName, TableRepository } from './client.ts';
import type { ForeignPut, WriteOp } from './inventory-store.ts';

/** Partitions of the byOpen index. */
export const OPEN_SHARDS = 4;
const DAY_SECONDS = 86_400;

/** The TTL (epoch seconds) of a record: `days` after `at` (its deadline, or its end). */
export function commandExpiresAt(at: string, days: number): number {
  return Math.floor(Date.parse(at) / 1000) + days * DAY_SECONDS;
}

const key = (id: string) => ({ pk: `command#${id}`, sk: 'command' });

export function openShard(id: string): number {
  return createHash('sha256').update(id).digest()[0]! % OPEN_SHARDS;
}

const RECORD_FIELDS = [
  'id',
  'node',
  'site',
  'action',
  'args',
  'status',
  'attempts',
  'deadline',
  'created_at',
  'updated_at',
  'result',
  'error',
  'finished_at',
  'requested_by',
] as const;

/** A stored command: the record plus the receipt of its latest delivery. */
export interface StoredCommand {
  readonly command: CommandRecord;
  readonly receipt: string | null;
  /** Still in byOpen: open, or finished and not yet settled by the conductor. */
  readonly unsettled: boolean;
}

function fromItem(item: Record<string, unknown>): StoredCommand {
  const record = Object.fromEntries(RECORD_FIELDS.map((field) => [field, item[field] ?? null]));
  return {
    command: { ...record, args: (item.args as Record<string, unknown>) ?? {} } as unknown as CommandRecord,
    receipt: (item.receipt as string | undefined) ?? null,
    unsettled: item.openPk !== undefined,
  };
}

export interface TransitionChanges {
  readonly attempts?: number;
  readonly receipt?: string;
  readonly result?: Record<string, unknown> | null;
  readonly error?: string | null;
  readonly finished_at?: string;
}

export class CommandRepository extends TableRepository {
  readonly #retentionDays: () => number;

  constructor(
    db: ConstructorParameters<typeof TableRepository>[0],
    table: TableName,
    /** Days a record is kept after it ends (default: the configuration's, `METALPLANE_COMMAND_RETENTION_DAYS`). */
    retentionDays: number | (() => number) = () => environmentConfig().commands.retentionDays,
  ) {
    super(db, table);
    this.#retentionDays = typeof retentionDays === 'number' ? () => retentionDays : retentionDays;
  }

  async create(command: CommandRecord): Promise<void> {
    await this.db.send(new (await libDynamoDB()).PutCommand({ ...this.createPut(command) }));
  }

  /**
   * The record's creation as a write of another repository's transaction (the node's
   * lock that names the command): both are written, or neither.
   */
  createOp(command: CommandRecord, onConflict: DomainError): WriteOp {
    return { type: 'foreign', put: this.createPut(command), onConflict };
  }

  private createPut(command: CommandRecord): ForeignPut {
    return {
      TableName: this.table,
      Item: {
        ...key(command.id),
        ...command,
        nodePk: `node#${command.node}`,
        nodeSk: `${command.created_at}#${command.id}`,
        openPk: `open#${openShard(command.id)}`,
        openSk: `${command.deadline}#${command.id}`,
        expiresAt: commandExpiresAt(command.deadline, this.#retentionDays()),
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    };
  }

  async get(id: string): Promise<StoredCommand | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({ TableName: this.table, Key: key(id), ConsistentRead: true }),
    );
    return Item ? fromItem(Item) : undefined;
  }

  /**
   * Moves the command to `to` if its current state may lead there; answers the updated
   * command, or undefined when its state did not allow it (or it does not exist).
   */
  async transition(
    id: string,
    to: CommandState,
    at: string,
    changes: TransitionChanges = {},
    /** Only if the command is this site's (an agent acts on its own site's commands only). */
    site?: string,
  ): Promise<CommandRecord | undefined> {
    return (await this.transitionStored(id, to, at, changes, site))?.command;
  }

  /**
   * `transition`, answering the receipt of the latest delivery too. With `recheckAt`, a
   * finished command stays in byOpen until `settle` (the tick looks again at that time).
   */
  async transitionStored(
    id: string,
    to: CommandState,
    at: string,
    changes: TransitionChanges = {},
    site?: string,
    recheckAt?: string,
  ): Promise<StoredCommand | undefined> {
    const from = statesLeadingTo(to);
    if (from.length === 0) return undefined;
    const names: Record<string, string> = { '#status': 'status', '#updated_at': 'updated_at' };
    const values: Record<string, unknown> = { ':to': to, ':at': at };
    let siteCondition = '';
    if (site !== undefined) {
      names['#site'] = 'site';
      values[':site'] = site;
      siteCondition = ' AND #site = :site';
    }
    const sets = ['#status = :to', '#updated_at = :at'];
    for (const [field, value] of Object.entries(changes)) {
      if (value === undefined) continue;
      names[`#${field}`] = field;
      values[`:${field}`] = value;
      sets.push(`#${field} = :${field}`);
    }
    from.forEach((state, i) => {
      values[`:from${i}`] = state;
    });
    let removes = '';
    if (FINISHED_STATES.includes(to)) {
      // Ended: kept the retention from now on (no longer from its deadline).
      names['#expiresAt'] = 'expiresAt';
      values[':expiresAt'] = commandExpiresAt(at, this.#retentionDays());
      sets.push('#expiresAt = :expiresAt');
      if (recheckAt === undefined) removes = ' REMOVE openPk, openSk';
      else {
        names['#openSk'] = 'openSk';
        values[':recheck'] = `${recheckAt}#${id}`;
        sets.push('#openSk = :recheck');
      }
    }
    try {
      const { Attributes } = await this.db.send(
        new (await libDynamoDB()).UpdateCommand({
          TableName: this.table,
          Key: key(id),
          UpdateExpression: `SET ${sets.join(', ')}${removes}`,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${from.map((_, i) => `:from${i}`).join(', ')})${siteCondition}`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes ? fromItem(Attributes) : undefined;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return undefined;
      throw error;
    }
  }

  /** A node's commands, newest first, `limit` at a time before `before` (a `nodeSk`). */
  async ofNode(
    node: string,
    limit: number,
    before?: string,
  ): Promise<{ commands: CommandRecord[]; more: boolean }> {
    const { Items, LastEvaluatedKey } = await this.db.send(
      new (await libDynamoDB()).QueryCommand({
        TableName: this.table,
        IndexName: 'byNode',
        KeyConditionExpression: before ? 'nodePk = :node AND nodeSk < :before' : 'nodePk = :node',
        ExpressionAttributeValues: { ':node': `node#${node}`, ...(before ? { ':before': before } : {}) },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return {
      commands: (Items ?? []).map((item) => fromItem(item).command),
      more: LastEvaluatedKey !== undefined,
    };
  }

  /**
   * The conductor has acted on the finished command: the tick need not look at it again.
   * Only a finished command leaves byOpen: were an open one ever settled (a write racing
   * its result), the tick must still find it and expire it at its deadline, not lose it.
   */
  async settle(id: string): Promise<void> {
    const finished = Object.fromEntries(FINISHED_STATES.map((state, i) => [`:f${i}`, state]));
    try {
      await this.db.send(
        new (await libDynamoDB()).UpdateCommand({
          TableName: this.table,
          Key: key(id),
          UpdateExpression: 'REMOVE openPk, openSk',
          ConditionExpression: `attribute_exists(pk) AND #status IN (${Object.keys(finished).join(', ')})`,
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: finished,
        }),
      );
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
  }

  /**
   * Commands in byOpen whose time has come (ISO `now`), at most `limit` per shard: open
   * ones past their deadline, and finished ones the conductor has not settled.
   */
  async overdue(now: string, limit = 100): Promise<StoredCommand[]> {
    const { QueryCommand } = await libDynamoDB();
    const shards = await Promise.all(
      Array.from({ length: OPEN_SHARDS }, (_, shard) =>
        this.db.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: 'byOpen',
            KeyConditionExpression: 'openPk = :shard AND openSk < :now',
            ExpressionAttributeValues: { ':shard': `open#${shard}`, ':now': now },
            Limit: limit,
          }),
        ),
      ),
    );
    return shards.flatMap(({ Items }) => (Items ?? []).map(fromItem));
  }
}
