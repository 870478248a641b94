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
import {
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { DomainError } from '../../domain/errors.ts';
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
  | { readonly type: 'exists'; readonly kind: string; readonly id: string; readonly onConflict: DomainError };

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
const uniqueKey = (scope: string, value: string) => ({ pk: `unique#${scope}#${value}`, sk: 'unique' });

export class InventoryStore extends TableRepository {
  async get<T>(kind: string, id: string): Promise<StoredItem<T> | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.table, Key: itemKey(kind, id), ConsistentRead: true }),
    );
    return Item ? toStored<T>(Item) : undefined;
  }

  /** The id that owns a unique value, if any. */
  async lookupUnique(scope: string, value: string): Promise<string | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.table, Key: uniqueKey(scope, value), ConsistentRead: true }),
    );
    return Item?.ownerId as string | undefined;
  }

  /** Applies the ops atomically: all or nothing; a failed condition raises its op's error. */
  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return;
    if (ops.length > MAX_TRANSACTION_ITEMS) {
      throw new DomainError(
        'too-large',
        `One change may touch at most ${MAX_TRANSACTION_ITEMS} records; this one needs ${ops.length}.`,
      );
    }
    const items = ops.map((op) => this.transactItem(op));
    const [single] = items;
    if (items.length === 1 && single && !single.ConditionCheck)
      return this.writeOne(single, ops[0] as WriteOp);
    try {
      await this.db.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (error) {
      throw contentError(error) ?? transactionError(error, ops);
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
        new QueryCommand({
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
        const result = await this.db.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: 'byParent',
            KeyConditionExpression: 'parentPk = :parent',
            ExpressionAttributeValues: { ':parent': parentPk },
            ExclusiveStartKey: startKey,
          }),
        );
        for (const raw of result.Items ?? []) {
          const child = toStored<unknown>(raw);
          ops.push({
            type: 'delete',
            kind: child.kind,
            id: child.id,
            onConflict: new DomainError(
              'conflict',
              `${child.kind} ${child.id} changed during the deletion; retry.`,
            ),
          });
          for (const unique of (raw.uniques as Array<{ scope: string; value: string }> | undefined) ?? []) {
            ops.push({ type: 'release', scope: unique.scope, value: unique.value, ownerId: child.id });
          }
        }
        startKey = result.LastEvaluatedKey;
      } while (startKey && ops.length <= MAX_TRANSACTION_ITEMS);
    }
    return ops;
  }

  private async writeOne(item: TransactItem, op: WriteOp): Promise<void> {
    try {
      if (item.Put) await this.db.send(new PutCommand(item.Put));
      else if (item.Delete) await this.db.send(new DeleteCommand(item.Delete));
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException' && 'onConflict' in op)
        throw op.onConflict;
      throw contentError(error) ?? error;
    }
  }

  private transactItem(op: WriteOp): TransactItem {
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
    }
  }
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
function transactionError(error: unknown, ops: readonly WriteOp[]): unknown {
  const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons;
  if ((error as Error).name !== 'TransactionCanceledException' || !reasons) return error;
  const failed = reasons.findIndex((reason) => reason.Code === 'ConditionalCheckFailed');
  const op = ops[failed];
  if (op && 'onConflict' in op) return op.onConflict;
  if (reasons.some((reason) => reason.Code === 'TransactionConflict')) {
    return new DomainError('conflict', 'The resource was changed concurrently; retry the request.');
  }
  return error;
}
