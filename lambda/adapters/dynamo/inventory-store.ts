/**
 * The inventory table as a small set of operations every repository composes:
 * conditional writes (each item carries a `version`; a write names the version it read),
 * uniqueness claims (one item per unique value, claimed in the same transaction as the
 * resource), and index queries with position-based pagination. No scans.
 *
 * Item layout: `pk = <kind>#<id>`, `sk = 'item'`, the resource document in `doc`, and
 * the index attributes of `infra/resources.ts` (kindPk, listSk, statePk, ...). A unique
 * value is `pk = unique#<scope>#<value>`, `sk = 'unique'`, with the owning id.
 */
import type { TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { DomainError } from '../../domain/errors.ts';
import { libDynamoDB } from '../aws-sdk.ts';
import { TableRepository } from './client.ts';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export interface StoredItem<T> {
  readonly kind: string;
  readonly id: string;
  readonly version: number;
  readonly doc: T;
  /** `<created_at>#<id>`: the creation-order sort key every listing index shares. */
  readonly listSk: string;
}

/** Index attributes of an item (partition attributes of the GSIs, and `nameSk`). */
export type IndexAttributes = Readonly<Record<string, string | undefined>>;

export interface ItemWrite<T> {
  readonly kind: string;
  readonly id: string;
  readonly doc: T;
  readonly listSk: string;
  readonly indexes: IndexAttributes;
  /** Epoch seconds after which DynamoDB may delete the item (TTL). */
  readonly expiresAt?: number;
  /** Unique values this item holds, so that a cascade can release them with it. */
  readonly uniques?: ReadonlyArray<{ readonly scope: string; readonly value: string }>;
}

/** One step of a write; each carries the error to raise when its condition fails. */
export type WriteOp =
  | { readonly type: 'create'; readonly item: ItemWrite<unknown>; readonly onConflict: DomainError }
  | {
      readonly type: 'replace';
      readonly item: ItemWrite<unknown>;
      readonly expectedVersion: number;
      readonly onConflict: DomainError;
    }
  | {
      readonly type: 'delete';
      readonly kind: string;
      readonly id: string;
      readonly expectedVersion?: number;
      readonly onConflict: DomainError;
    }
  | {
      readonly type: 'claim';
      readonly scope: string;
      readonly value: string;
      readonly ownerId: string;
      /** Take the value over from this owner (one transaction cannot release and claim one item). */
      readonly previousOwnerId?: string;
      readonly onConflict: DomainError;
    }
  | { readonly type: 'release'; readonly scope: string; readonly value: string; readonly ownerId: string }
  | { readonly type: 'exists'; readonly kind: string; readonly id: string; readonly onConflict: DomainError }
  | {
      /** Checks, without writing it, that `ownerId` holds the unique value (a claim of `claim`). */
      readonly type: 'owns';
      readonly scope: string;
      readonly value: string;
      readonly ownerId: string;
      readonly onConflict: DomainError;
    }
  | {
      /**
       * Records a child in its parent's ledger: the parent item must exist (`onMissing`)
       * and its ledger must not be closed for deletion (`onClosed`). With `member`, the
       * ledger's member set gains it; without, its count goes up by one.
       */
      readonly type: 'join';
      readonly ledger: LedgerRef;
      readonly member?: string;
      /** Several members at once (one transaction cannot update the ledger twice). */
      readonly members?: readonly string[];
      /**
       * The parent is written in the same transaction (conditionally, at its version): no
       * separate check of its existence (one transaction cannot touch an item twice).
       */
      readonly parentWritten?: boolean;
      readonly onMissing: DomainError;
      readonly onClosed: DomainError;
    }
  | {
      /** Removes children (`members`) or one from the count; removing a non-member is a no-op. */
      readonly type: 'leave';
      readonly ledger: LedgerRef;
      readonly members?: readonly string[];
    }
  | {
      /** Closes the ledger (no child joins any more) if the parent is still at `expectedVersion`. */
      readonly type: 'close';
      readonly ledger: LedgerRef;
      readonly expectedVersion: number;
      readonly onConflict: DomainError;
    }
  | {
      /** Deletes the ledger, only if it records no child (or never existed). */
      readonly type: 'drop';
      readonly ledger: LedgerRef;
      readonly onConflict: DomainError;
    }
  | {
      /**
       * Creates a record in another table of the control plane, in the same transaction
       * (a command's record beside the node's lock that names it: `CommandQueue.prepare`).
       * Its repository builds the Put, conditional on no record having its key.
       */
      readonly type: 'foreign';
      readonly put: ForeignPut;
      readonly onConflict: DomainError;
    }
  | {
      /**
       * Puts an item's side item (`attributes`), or deletes it (no `attributes`),
       * unconditionally: see `SideRef`.
       */
      readonly type: 'side';
      readonly side: SideRef;
      readonly attributes?: Readonly<Record<string, unknown>>;
    };

/** A Put into another table, as its own repository builds it (always conditional). */
export interface ForeignPut {
  readonly TableName: string;
  readonly Item: Readonly<Record<string, unknown>>;
  readonly ConditionExpression: string;
}

/**
 * An item's side item: beside the item (`pk` of the item, `sk` = `name`), with no index
 * attribute, so that a write of it costs its own size only, never an index's copy (an
 * agent's heartbeat: docs/decisions.md). Read with the item (`getWithSides`, one Query of
 * the item's partition) or in bulk (`sides`); written alone (`updateSide`) or in the
 * item's transactions (the `side` op).
 */
export interface SideRef {
  readonly kind: string;
  readonly id: string;
  readonly name: string;
}

/**
 * A parent's ledger of its children: one item beside the parent's (`pk` of the parent,
 * `sk` = `name`), read and written only through the base table, so it is strongly
 * consistent where the byParent index is not. A child's creation joins it in the same
 * transaction; the parent's deletion requires it empty, so a child committed just
 * before the deletion (and not yet in the index) is never left without its parent.
 */
export interface LedgerRef {
  readonly kind: string;
  readonly id: string;
  readonly name: string;
}

export interface Filter {
  /** Path inside the item, e.g. ['doc', 'maintenance']. */
  readonly path: readonly string[];
  readonly op: '=' | '<>' | 'exists' | 'not-exists';
  readonly value?: unknown;
}

export interface IndexQuery {
  readonly index: string;
  readonly partitionAttribute: string;
  readonly partitionValue: string;
  readonly sortAttribute: 'listSk' | 'nameSk';
  /** Start strictly after (or before, descending) this sort value: the marker's position. */
  readonly after?: string;
  readonly descending?: boolean;
  readonly limit: number;
  readonly filters?: readonly Filter[];
}

export interface QueryPage<T> {
  readonly items: StoredItem<T>[];
  /** True when more matching items may follow the last one returned. */
  readonly more: boolean;
}

/** DynamoDB's limit for one transaction. */
export const MAX_TRANSACTION_ITEMS = 100;
/** Pages one listing may read while filtering before it returns what it has. */
const MAX_QUERY_PAGES = 25;

export const itemKey = (kind: string, id: string) => ({ pk: `${kind}#${id}`, sk: 'item' });
const ledgerKey = (ledger: LedgerRef) => ({ pk: `${ledger.kind}#${ledger.id}`, sk: ledger.name });
const sideKey = (side: SideRef) => ({ pk: `${side.kind}#${side.id}`, sk: side.name });
/** BatchGetItem's bound of keys per request. */
const MAX_BATCH_GET = 100;

/** A child as the byParent index shows it: what deleting it needs. */
export interface ChildRef {
  readonly kind: string;
  readonly id: string;
  readonly uniques: ReadonlyArray<{ readonly scope: string; readonly value: string }>;
}

/** Children deleted per transaction: each with up to two unique values, plus the ledger. */
const CHILDREN_PER_BATCH = 25;
/** A ledger member names its child: `<kind>#<id>`. */
export const ledgerMember = (kind: string, id: string) => `${kind}#${id}`;
const uniqueKey = (scope: string, value: string) => ({ pk: `unique#${scope}#${value}`, sk: 'unique' });

export class InventoryStore extends TableRepository {
  async get<T>(kind: string, id: string): Promise<StoredItem<T> | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: itemKey(kind, id),
        ConsistentRead: true,
      }),
    );
    return Item ? toStored<T>(Item) : undefined;
  }

  /**
   * The item and its side items (`sk` → attributes): one strongly consistent Query of the
   * item's partition, as one GetItem would cost while they fit in 4 KB.
   */
  async getWithSides<T>(
    kind: string,
    id: string,
  ): Promise<{ item: StoredItem<T> | undefined; sides: Map<string, Record<string, unknown>> }> {
    const key = itemKey(kind, id);
    const sides = new Map<string, Record<string, unknown>>();
    let item: StoredItem<T> | undefined;
    let startKey: Record<string, unknown> | undefined;
    do {
      const result: { Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> } =
        await this.db.send(
          new (await libDynamoDB()).QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk',
            ExpressionAttributeValues: { ':pk': key.pk },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        );
      for (const raw of result.Items ?? []) {
        if (raw.sk === key.sk) item = toStored<T>(raw);
        else sides.set(raw.sk as string, raw);
      }
      startKey = result.LastEvaluatedKey;
    } while (startKey);
    return { item, sides };
  }

  /**
   * Several items, strongly consistent, in one BatchGetItem (up to 100): what `get` answers
   * for each, in the order asked. For reads a request needs together (a user and the
   * failed logins of its name): one round trip instead of one per item.
   */
  async getMany<T>(
    keys: ReadonlyArray<{ readonly kind: string; readonly id: string }>,
  ): Promise<Array<StoredItem<T> | undefined>> {
    if (keys.length > MAX_BATCH_GET) throw new Error(`getMany reads at most ${MAX_BATCH_GET} items`);
    const found = await this.batchGet(
      keys.map(({ kind, id }) => itemKey(kind, id)),
      true,
    );
    return keys.map(({ kind, id }) => {
      const raw = found.get(itemKey(kind, id).pk);
      return raw ? toStored<T>(raw) : undefined;
    });
  }

  /**
   * The side items `name` of the items `ids` of one kind, by id (eventually consistent:
   * BatchGetItem, 100 keys a request); an id without one is absent.
   */
  async sides(
    kind: string,
    ids: readonly string[],
    name: string,
  ): Promise<Map<string, Record<string, unknown>>> {
    const found = new Map<string, Record<string, unknown>>();
    const prefix = `${kind}#`;
    const unique = [...new Set(ids)];
    for (let start = 0; start < unique.length; start += MAX_BATCH_GET) {
      const keys = unique.slice(start, start + MAX_BATCH_GET).map((id) => sideKey({ kind, id, name }));
      for (const [pk, raw] of await this.batchGet(keys, false)) found.set(pk.slice(prefix.length), raw);
    }
    return found;
  }

  /** One BatchGetItem of up to 100 keys of distinct partitions, by `pk`; unprocessed keys asked again. */
  private async batchGet(
    keys: Record<string, unknown>[],
    consistent: boolean,
  ): Promise<Map<string, Record<string, unknown>>> {
    const found = new Map<string, Record<string, unknown>>();
    let pending = keys;
    // Keys DynamoDB leaves unprocessed (throttling) are asked again, after a backoff.
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt >= 8) throw new Error(`${pending.length} items left unread after ${attempt} tries`);
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
      const { BatchGetCommand } = await libDynamoDB();
      const answer = await this.db.send(
        new BatchGetCommand({
          RequestItems: { [this.table]: { Keys: pending, ...(consistent ? { ConsistentRead: true } : {}) } },
        }),
      );
      for (const raw of answer.Responses?.[this.table] ?? []) found.set(raw.pk as string, raw);
      pending = (answer.UnprocessedKeys?.[this.table]?.Keys ?? []) as Record<string, unknown>[];
    }
    return found;
  }

  /**
   * Updates a side item (`update`: an UpdateExpression) if `condition` holds: false when
   * it did not (the side item missing, say), the item unchanged.
   */
  async updateSide(
    side: SideRef,
    update: string,
    condition: string,
    values: Readonly<Record<string, unknown>>,
  ): Promise<boolean> {
    try {
      await this.db.send(
        new (await libDynamoDB()).UpdateCommand({
          TableName: this.table,
          Key: sideKey(side),
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }

  /** The id that owns a unique value, if any. */
  async lookupUnique(scope: string, value: string): Promise<string | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: uniqueKey(scope, value),
        ConsistentRead: true,
      }),
    );
    return Item?.ownerId as string | undefined;
  }

  /** Applies the ops atomically: all or nothing; a failed condition raises its op's error. */
  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return;
    const steps = ops.flatMap((op) => this.transactItems(op));
    if (steps.length > MAX_TRANSACTION_ITEMS) {
      throw new DomainError(
        'too-large',
        `One change may touch at most ${MAX_TRANSACTION_ITEMS} records; this one needs ${steps.length}.`,
      );
    }
    const [single] = steps;
    if (steps.length === 1 && single && !single.item.ConditionCheck) return this.writeOne(single);
    try {
      await this.db.send(
        new (await libDynamoDB()).TransactWriteCommand({ TransactItems: steps.map((step) => step.item) }),
      );
    } catch (error) {
      throw contentError(error) ?? transactionError(error, steps);
    }
  }

  /** The members a ledger records (strongly consistent), `<kind>#<id>` each. */
  async ledgerMembers(ledger: LedgerRef): Promise<string[]> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: ledgerKey(ledger),
        ConsistentRead: true,
      }),
    );
    const members = Item?.members as Set<string> | string[] | undefined;
    return members ? [...members] : [];
  }

  /**
   * One page of the children under `parentPk` (the byParent index: eventually
   * consistent, so a child just written may be missing and one just deleted may show).
   */
  async childPage(
    parentPk: string,
    startKey?: Record<string, unknown>,
  ): Promise<{ children: ChildRef[]; next?: Record<string, unknown> }> {
    const result = await this.db.send(
      new (await libDynamoDB()).QueryCommand({
        TableName: this.table,
        IndexName: 'byParent',
        KeyConditionExpression: 'parentPk = :parent',
        ExpressionAttributeValues: { ':parent': parentPk },
        Limit: CHILDREN_PER_BATCH,
        ExclusiveStartKey: startKey,
      }),
    );
    return {
      children: (result.Items ?? []).map(childRef),
      ...(result.LastEvaluatedKey ? { next: result.LastEvaluatedKey } : {}),
    };
  }

  /**
   * Deletes every child the index shows under `parentPks`, a transaction per page (so
   * any number of children), each releasing its unique values and leaving `ledger`.
   * A child that vanished meanwhile is skipped. Answers how many it deleted.
   */
  async deleteChildren(parentPks: readonly string[], ledger?: LedgerRef): Promise<number> {
    const done = new Set<string>();
    for (const parentPk of parentPks) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.childPage(parentPk, startKey);
        // The index may still show what this loop deleted a moment ago.
        const batch = page.children.filter((child) => !done.has(ledgerMember(child.kind, child.id)));
        if (batch.length > 0) {
          try {
            await this.write(childDeletion(batch, ledger));
          } catch (error) {
            if (!(error instanceof DomainError) || error.kind !== 'conflict') throw error;
            // One of them changed or went meanwhile: one at a time, from the table.
            for (const child of batch) await this.deleteChild(child.kind, child.id, ledger);
          }
          for (const child of batch) done.add(ledgerMember(child.kind, child.id));
        }
        startKey = page.next;
      } while (startKey);
    }
    return done.size;
  }

  /** Deletes one child read from the table (strongly consistent); none there: it only leaves `ledger`. */
  async deleteChild(kind: string, id: string, ledger?: LedgerRef): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const { Item } = await this.db.send(
        new (await libDynamoDB()).GetCommand({
          TableName: this.table,
          Key: itemKey(kind, id),
          ConsistentRead: true,
        }),
      );
      try {
        if (!Item) {
          if (ledger) await this.write([{ type: 'leave', ledger, members: [ledgerMember(kind, id)] }]);
          return;
        }
        await this.write(childDeletion([childRef(Item)], ledger, Item.version as number));
        return;
      } catch (error) {
        if (attempt >= 5 || !(error instanceof DomainError) || error.kind !== 'conflict') throw error;
      }
    }
  }

  async query<T>(query: IndexQuery): Promise<QueryPage<T>> {
    const names: Record<string, string> = { '#pk': query.partitionAttribute };
    const values: Record<string, unknown> = { ':pk': query.partitionValue };
    let keyCondition = '#pk = :pk';
    if (query.after !== undefined) {
      names['#sk'] = query.sortAttribute;
      keyCondition += query.descending ? ' AND #sk < :after' : ' AND #sk > :after';
      values[':after'] = query.after;
    }
    const filter = buildFilter(query.filters ?? [], names, values);
    const wanted = query.limit + 1;
    const items: StoredItem<T>[] = [];
    let startKey: Record<string, unknown> | undefined;
    for (let page = 0; page < MAX_QUERY_PAGES; page++) {
      const result = await this.db.send(
        new (await libDynamoDB()).QueryCommand({
          TableName: this.table,
          IndexName: query.index,
          KeyConditionExpression: keyCondition,
          ...(filter ? { FilterExpression: filter } : {}),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ScanIndexForward: !query.descending,
          // Filtering reads past non-matching items: read in larger pages then.
          Limit: filter ? Math.max(wanted, 200) : wanted - items.length,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const raw of result.Items ?? []) items.push(toStored<T>(raw));
      startKey = result.LastEvaluatedKey;
      if (items.length >= wanted || !startKey) break;
    }
    const more = items.length >= wanted || startKey !== undefined;
    return { items: items.slice(0, query.limit), more };
  }

  /**
   * Ops deleting every child under the given parents (`parentPk` values, by convention
   * `<childKind>@<parentKind>#<parentId>`) and releasing the unique values they hold.
   */
  async cascadeDeleteOps(parentPks: readonly string[]): Promise<WriteOp[]> {
    const ops: WriteOp[] = [];
    for (const parentPk of parentPks) {
      let startKey: Record<string, unknown> | undefined;
      do {
        const page = await this.childPage(parentPk, startKey);
        ops.push(...childDeletion(page.children));
        startKey = page.next;
      } while (startKey && ops.length <= MAX_TRANSACTION_ITEMS);
    }
    return ops;
  }

  private async writeOne({ item, onConflict }: Step): Promise<void> {
    try {
      if (item.Put) await this.db.send(new (await libDynamoDB()).PutCommand(item.Put));
      else if (item.Delete) await this.db.send(new (await libDynamoDB()).DeleteCommand(item.Delete));
      else if (item.Update) await this.db.send(new (await libDynamoDB()).UpdateCommand(item.Update));
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException' && onConflict) throw onConflict;
      throw contentError(error) ?? error;
    }
  }

  /** The transaction items of one op, each with the error its failed condition means. */
  private transactItems(op: WriteOp): Step[] {
    const TableName = this.table;
    switch (op.type) {
      case 'join': {
        const members = op.members ?? (op.member ? [op.member] : undefined);
        const parentCheck: Step[] = op.parentWritten
          ? []
          : [
              {
                item: {
                  ConditionCheck: {
                    TableName,
                    Key: itemKey(op.ledger.kind, op.ledger.id),
                    ConditionExpression: 'attribute_exists(pk)',
                  },
                },
                onConflict: op.onMissing,
              },
            ];
        return [
          ...parentCheck,
          {
            item: {
              Update: {
                TableName,
                Key: ledgerKey(op.ledger),
                UpdateExpression: members ? 'ADD members :member' : 'ADD #count :one',
                ConditionExpression: 'attribute_not_exists(closing)',
                ...(members
                  ? { ExpressionAttributeValues: { ':member': new Set(members) } }
                  : {
                      ExpressionAttributeNames: { '#count': 'count' },
                      ExpressionAttributeValues: { ':one': 1 },
                    }),
              },
            },
            onConflict: op.onClosed,
          },
        ];
      }
      case 'leave':
        return [
          {
            item: {
              Update: {
                TableName,
                Key: ledgerKey(op.ledger),
                ...(op.members
                  ? {
                      UpdateExpression: 'DELETE members :members',
                      ExpressionAttributeValues: { ':members': new Set(op.members) },
                    }
                  : {
                      UpdateExpression: 'ADD #count :minus',
                      ExpressionAttributeNames: { '#count': 'count' },
                      ExpressionAttributeValues: { ':minus': -1 },
                    }),
              },
            },
          },
        ];
      case 'close':
        return [
          {
            item: {
              ConditionCheck: {
                TableName,
                Key: itemKey(op.ledger.kind, op.ledger.id),
                ConditionExpression: '#version = :expected',
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':expected': op.expectedVersion },
              },
            },
            onConflict: op.onConflict,
          },
          {
            item: {
              Update: {
                TableName,
                Key: ledgerKey(op.ledger),
                UpdateExpression: 'SET closing = :closing',
                ExpressionAttributeValues: { ':closing': true },
              },
            },
          },
        ];
      case 'drop':
        return [
          {
            item: {
              Delete: {
                TableName,
                Key: ledgerKey(op.ledger),
                // An empty set is no attribute in DynamoDB; size() covers emulators that keep one.
                ConditionExpression:
                  '(attribute_not_exists(members) OR size(members) = :zero) AND (attribute_not_exists(#count) OR #count = :zero)',
                ExpressionAttributeNames: { '#count': 'count' },
                ExpressionAttributeValues: { ':zero': 0 },
              },
            },
            onConflict: op.onConflict,
          },
        ];
      default:
        return [
          { item: this.transactItem(op), ...('onConflict' in op ? { onConflict: op.onConflict } : {}) },
        ];
    }
  }

  private transactItem(op: Exclude<WriteOp, { type: 'join' | 'leave' | 'close' | 'drop' }>): TransactItem {
    const TableName = this.table;
    switch (op.type) {
      case 'create':
        return {
          Put: { TableName, Item: toItem(op.item, 1), ConditionExpression: 'attribute_not_exists(pk)' },
        };
      case 'replace':
        return {
          Put: {
            TableName,
            Item: toItem(op.item, op.expectedVersion + 1),
            ConditionExpression: '#version = :expected',
            ExpressionAttributeNames: { '#version': 'version' },
            ExpressionAttributeValues: { ':expected': op.expectedVersion },
          },
        };
      case 'delete':
        return {
          Delete: {
            TableName,
            Key: itemKey(op.kind, op.id),
            ...(op.expectedVersion === undefined
              ? { ConditionExpression: 'attribute_exists(pk)' }
              : {
                  ConditionExpression: '#version = :expected',
                  ExpressionAttributeNames: { '#version': 'version' },
                  ExpressionAttributeValues: { ':expected': op.expectedVersion },
                }),
          },
        };
      case 'claim':
        return {
          Put: {
            TableName,
            Item: { ...uniqueKey(op.scope, op.value), ownerId: op.ownerId, scope: op.scope },
            // Claiming a value one already owns is a no-op, so a replace can re-claim.
            ConditionExpression: `attribute_not_exists(pk) OR ownerId = :owner${op.previousOwnerId ? ' OR ownerId = :previous' : ''}`,
            ExpressionAttributeValues: {
              ':owner': op.ownerId,
              ...(op.previousOwnerId ? { ':previous': op.previousOwnerId } : {}),
            },
          },
        };
      case 'release':
        return {
          Delete: {
            TableName,
            Key: uniqueKey(op.scope, op.value),
            ConditionExpression: 'attribute_not_exists(pk) OR ownerId = :owner',
            ExpressionAttributeValues: { ':owner': op.ownerId },
          },
        };
      case 'exists':
        return {
          ConditionCheck: {
            TableName,
            Key: itemKey(op.kind, op.id),
            ConditionExpression: 'attribute_exists(pk)',
          },
        };
      case 'owns':
        return {
          ConditionCheck: {
            TableName,
            Key: uniqueKey(op.scope, op.value),
            ConditionExpression: 'ownerId = :owner',
            ExpressionAttributeValues: { ':owner': op.ownerId },
          },
        };
      case 'foreign':
        return { Put: { ...op.put, Item: { ...op.put.Item } } };
      case 'side':
        return op.attributes
          ? { Put: { TableName, Item: { ...op.attributes, ...sideKey(op.side) } } }
          : { Delete: { TableName, Key: sideKey(op.side) } };
    }
  }
}

/** One transaction item and the error its failed condition raises. */
interface Step {
  readonly item: TransactItem;
  readonly onConflict?: DomainError;
}

function childRef(raw: Record<string, unknown>): ChildRef {
  return {
    kind: raw.kind as string,
    id: raw.id as string,
    uniques: (raw.uniques as ChildRef['uniques'] | undefined) ?? [],
  };
}

/** Deletes children (at `version` for a single one read from the table), their unique values, their ledger entries. */
function childDeletion(children: readonly ChildRef[], ledger?: LedgerRef, version?: number): WriteOp[] {
  const ops: WriteOp[] = [];
  for (const child of children) {
    ops.push({
      type: 'delete',
      kind: child.kind,
      id: child.id,
      ...(version !== undefined ? { expectedVersion: version } : {}),
      onConflict: new DomainError(
        'conflict',
        `${child.kind} ${child.id} changed during the deletion; retry.`,
      ),
    });
    for (const unique of child.uniques) {
      ops.push({ type: 'release', scope: unique.scope, value: unique.value, ownerId: child.id });
    }
  }
  if (ledger) {
    ops.push({ type: 'leave', ledger, members: children.map((child) => ledgerMember(child.kind, child.id)) });
  }
  return ops;
}

function toItem(write: ItemWrite<unknown>, version: number): Record<string, unknown> {
  const indexes = Object.fromEntries(
    Object.entries(write.indexes).filter(([, value]) => value !== undefined && value !== ''),
  );
  return {
    ...itemKey(write.kind, write.id),
    ...indexes,
    kind: write.kind,
    id: write.id,
    version,
    doc: write.doc,
    listSk: write.listSk,
    ...(write.expiresAt ? { expiresAt: write.expiresAt } : {}),
    ...(write.uniques?.length ? { uniques: write.uniques } : {}),
  };
}

function toStored<T>(raw: Record<string, unknown>): StoredItem<T> {
  return {
    kind: raw.kind as string,
    id: raw.id as string,
    version: raw.version as number,
    doc: raw.doc as T,
    listSk: raw.listSk as string,
  };
}

function buildFilter(
  filters: readonly Filter[],
  names: Record<string, string>,
  values: Record<string, unknown>,
): string | undefined {
  const clauses = filters.map((filter, i) => {
    const path = filter.path
      .map((segment, j) => {
        const alias = `#f${i}_${j}`;
        names[alias] = segment;
        return alias;
      })
      .join('.');
    if (filter.op === 'exists') return `attribute_exists(${path})`;
    if (filter.op === 'not-exists') return `attribute_not_exists(${path})`;
    if (filter.value === null) {
      // NULL compares by type in DynamoDB; a missing attribute counts as null too.
      values[':nullType'] = 'NULL';
      const isNull = `(attribute_type(${path}, :nullType) OR attribute_not_exists(${path}))`;
      return filter.op === '=' ? isNull : `NOT ${isNull}`;
    }
    values[`:f${i}`] = filter.value;
    return `${path} ${filter.op} :f${i}`;
  });
  return clauses.length > 0 ? clauses.join(' AND ') : undefined;
}

/**
 * DynamoDB's own limits on what a record holds (400 KB, 32 levels of nesting) are the
 * client's to respect: they become a clear 413/400, not a 500.
 */
function contentError(error: unknown): DomainError | undefined {
  const message = (error as Error).message ?? '';
  // The SDK refuses numbers JavaScript cannot hold exactly; DynamoDB those past 38 digits.
  if (/MAX_SAFE_INTEGER|MIN_SAFE_INTEGER|number underflow|number overflow|too many digits/i.test(message)) {
    return new DomainError(
      'invalid',
      'A number in the request is outside what can be stored exactly (at most 2^53 - 1, at least 1e-130 from zero).',
    );
  }
  if (/size of (hash|range)key has exceeded/i.test(message)) {
    return new DomainError('invalid', 'A unique value (a name, an address) is longer than can be stored.');
  }
  if (
    (error as Error).name !== 'ValidationException' &&
    (error as Error).name !== 'TransactionCanceledException'
  )
    return undefined;
  if (/item size|size has exceeded/i.test(message)) {
    return new DomainError(
      'too-large',
      'The resource is larger than the 400 KB one record may hold: store less in extra, properties or *_info.',
    );
  }
  if (/nesting levels/i.test(message)) {
    return new DomainError(
      'invalid',
      'The resource nests objects more than 32 levels deep, more than a record may hold.',
    );
  }
  return undefined;
}

/** Maps a cancelled transaction to the error of the first op whose condition failed. */
function transactionError(error: unknown, steps: readonly Step[]): unknown {
  const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons;
  if ((error as Error).name !== 'TransactionCanceledException' || !reasons) return error;
  const failed = reasons.findIndex((reason) => reason.Code === 'ConditionalCheckFailed');
  const step = steps[failed];
  if (step?.onConflict) return step.onConflict;
  if (reasons.some((reason) => reason.Code === 'TransactionConflict')) {
    return new DomainError('conflict', 'The resource was changed concurrently; retry the request.');
  }
  return error;
}
