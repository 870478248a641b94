/**
 * The audit trail in the Audit table (`infra/resources.ts`): one item per record.
 *
 *  - `pk = audit`, `sk = <id>`: every record; the id is a UUIDv7, so `sk` sorts by time
 *    and a newest-first page is one Query (ScanIndexForward false), bounded by `since` /
 *    `until` through the ids of their milliseconds (`auditIdBounds`).
 *  - `actorPk = <actor name>` (index byActor), `resourcePk = <type>#<uuid or id>` (index
 *    byResource) and `resourceNamePk = <type>#<name>` (index byResourceName, sparse),
 *    each sorted by the same `sk`: the filters, without a scan.
 *  - `expiresAt` (TTL, epoch seconds): the retention (`METALPLANE_AUDIT_RETENTION_DAYS`).
 *    DynamoDB deletes expired items within days, not at once: reads skip them.
 *
 * One partition holds every record: DynamoDB serves ~1,000 writes a second to it, far
 * beyond the rate of API changes a control plane sees.
 */
import { type AuditRecord, auditIdBounds, expiresAt } from '../../domain/audit/audit.ts';
import { libDynamoDB } from '../aws-sdk.ts';
import { TableRepository } from './client.ts';

const PARTITION = 'audit';
/** Queries one page may take before it answers what it found (a filter may skip much). */
const MAX_QUERIES = 10;

export interface AuditFilter {
  readonly actor?: string;
  readonly resourceType?: string;
  /** A UUID (canonical) or a name/id; with or without `resourceType`. */
  readonly resource?: string;
  readonly resourceIsUuid?: boolean;
  readonly since?: Date;
  readonly until?: Date;
}

export interface AuditPage {
  readonly records: AuditRecord[];
  /** The marker of the next page, when there may be one. */
  readonly next?: string;
}

const STORED_FIELDS = [
  'id',
  'created_at',
  'actor',
  'source_ip',
  'user_agent',
  'request_id',
  'gateway_request_id',
  'method',
  'route',
  'path',
  'status',
  'resource_type',
  'resource',
  'resource_name',
  'change',
] as const;

function fromItem(item: Record<string, unknown>): AuditRecord {
  const record: Record<string, unknown> = {};
  for (const field of STORED_FIELDS) record[field] = item[field] ?? null;
  record.change = item.change ?? {};
  return record as unknown as AuditRecord;
}

/** Writes records (the middleware's recorder) and reads them (`GET /v1/audit`). */
export class AuditRepository extends TableRepository {
  readonly #retentionDays: () => number;

  constructor(
    db: ConstructorParameters<typeof TableRepository>[0],
    table: ConstructorParameters<typeof TableRepository>[1],
    retentionDays: number | (() => number),
  ) {
    super(db, table);
    this.#retentionDays = typeof retentionDays === 'number' ? () => retentionDays : retentionDays;
  }

  async put(record: AuditRecord): Promise<void> {
    const item: Record<string, unknown> = {
      pk: PARTITION,
      sk: record.id,
      ...record,
      expiresAt: expiresAt(record.created_at, this.#retentionDays()),
    };
    if (record.actor.name) item.actorPk = record.actor.name;
    if (record.resource_type && record.resource)
      item.resourcePk = `${record.resource_type}#${record.resource}`;
    if (record.resource_type && record.resource_name)
      item.resourceNamePk = `${record.resource_type}#${record.resource_name}`;
    await this.db.send(
      new (await libDynamoDB()).PutCommand({
        TableName: this.table,
        Item: item,
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  async get(id: string, now = new Date()): Promise<AuditRecord | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: { pk: PARTITION, sk: id },
        ConsistentRead: true,
      }),
    );
    if (!Item || (typeof Item.expiresAt === 'number' && Item.expiresAt <= now.getTime() / 1000))
      return undefined;
    return fromItem(Item);
  }

  /** The `expiresAt` stored with a record (for tests of the retention). */
  async expiryOf(id: string): Promise<number | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: { pk: PARTITION, sk: id },
        ConsistentRead: true,
      }),
    );
    return Item?.expiresAt as number | undefined;
  }

  /** Newest first, at most `limit`, after `marker` (the id of the previous page's last record). */
  async list(filter: AuditFilter, limit: number, marker?: string, now = new Date()): Promise<AuditPage> {
    const query = this.queryFor(filter);
    const values: Record<string, unknown> = { ':key': query.key, ':now': Math.floor(now.getTime() / 1000) };
    let condition = `${query.keyAttribute} = :key`;
    const lowest = filter.since ? auditIdBounds(filter.since).lowest : undefined;
    const highest = filter.until ? auditIdBounds(filter.until).highest : undefined;
    if (lowest && highest) {
      condition += ' AND sk BETWEEN :lowest AND :highest';
      Object.assign(values, { ':lowest': lowest, ':highest': highest });
    } else if (lowest) {
      condition += ' AND sk >= :lowest';
      values[':lowest'] = lowest;
    } else if (highest) {
      condition += ' AND sk <= :highest';
      values[':highest'] = highest;
    }
    const filters = ['(attribute_not_exists(expiresAt) OR expiresAt > :now)', ...query.filters];
    Object.assign(values, query.values);
    const records: AuditRecord[] = [];
    let startKey: Record<string, unknown> | undefined = marker
      ? { pk: PARTITION, sk: marker, ...(query.index ? { [query.keyAttribute]: query.key } : {}) }
      : undefined;
    for (let queries = 0; queries < MAX_QUERIES; queries++) {
      const { Items, LastEvaluatedKey } = await this.db.send(
        new (await libDynamoDB()).QueryCommand({
          TableName: this.table,
          ...(query.index ? { IndexName: query.index } : { ConsistentRead: true }),
          KeyConditionExpression: condition,
          FilterExpression: filters.join(' AND '),
          ExpressionAttributeValues: values,
          ...(Object.keys(query.names).length > 0 ? { ExpressionAttributeNames: query.names } : {}),
          ScanIndexForward: false,
          Limit: limit - records.length,
          ...(startKey ? { ExclusiveStartKey: startKey } : {}),
        }),
      );
      records.push(...(Items ?? []).map(fromItem));
      startKey = LastEvaluatedKey;
      if (!startKey) return { records };
      if (records.length >= limit) return { records, next: records.at(-1)?.id as string };
    }
    // A filter skipped many items: answer what was found, and where to go on from.
    return { records, next: startKey?.sk as string };
  }

  /**
   * The index and key a filter queries, and what it filters on after: a resource goes
   * through byResource (a UUID) or byResourceName (a name or another id) when its type is
   * given, else through the whole trail filtered; an actor through byActor.
   */
  private queryFor(filter: AuditFilter): QueryPlan {
    const filters: string[] = [];
    const values: Record<string, unknown> = {};
    const names: Record<string, string> = {};
    const { actor, resource, resourceType } = filter;
    if (resource !== undefined && resourceType !== undefined) {
      if (actor !== undefined) {
        filters.push('#actorPk = :actor');
        names['#actorPk'] = 'actorPk';
        values[':actor'] = actor;
      }
      const key = `${resourceType}#${resource}`;
      return filter.resourceIsUuid
        ? { index: 'byResource', keyAttribute: 'resourcePk', key, filters, values, names }
        : { index: 'byResourceName', keyAttribute: 'resourceNamePk', key, filters, values, names };
    }
    if (resource !== undefined) {
      filters.push(filter.resourceIsUuid ? '#resource = :resource' : '#resourceName = :resource');
      if (filter.resourceIsUuid) names['#resource'] = 'resource';
      else names['#resourceName'] = 'resource_name';
      values[':resource'] = resource;
    }
    if (resourceType !== undefined) {
      filters.push('#resourceType = :type');
      names['#resourceType'] = 'resource_type';
      values[':type'] = resourceType;
    }
    if (actor !== undefined)
      return { index: 'byActor', keyAttribute: 'actorPk', key: actor, filters, values, names };
    return { keyAttribute: 'pk', key: PARTITION, filters, values, names };
  }
}

interface QueryPlan {
  readonly index?: string;
  readonly keyAttribute: string;
  readonly key: string;
  readonly filters: string[];
  readonly values: Record<string, unknown>;
  readonly names: Record<string, string>;
}
