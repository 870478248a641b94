/**
 * The inventory table's schema version and its migrations — the counterpart of
 * `ironic-dbsync`. DynamoDB has no schema for attributes, so a migration rewrites items
 * (backfills an index attribute, renames a field); tables and indexes themselves come
 * from `infra/resources.ts` through CloudFormation or the local bootstrap.
 *
 * The version lives in one item (`meta#schema`), and each migration is recorded there
 * with a conditional write on the version it started from: two `dbsync` runs at once
 * cannot both apply the same step.
 */

import { catalogReference } from '../../domain/images/image.ts';
import { libDynamoDB } from '../aws-sdk.ts';
import type { DocumentClient } from './client.ts';
import { nodeItems, updateIfStill } from './item-pages.ts';

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly up: (db: DocumentClient, table: string) => Promise<void>;
}

export interface SchemaState {
  readonly version: number;
  readonly applied: ReadonlyArray<{ version: number; description: string; applied_at: string }>;
}

/** Every migration, in order. Append only; never edit one that has shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description:
      'baseline: the inventory layout of infra/resources.ts (items, unique claims, listing indexes)',
    up: async () => undefined,
  },
  {
    version: 2,
    description:
      'backfill imagePk on nodes whose instance_info.image_source names a catalog image (the byImage index: an image in use is not deleted)',
    up: backfillImageReferences,
  },
];

/**
 * Nodes written before the byImage index get its attribute: each node item (read through
 * the byKind index, never a scan) whose `image_source` is a catalog reference, written
 * only if the node has not changed since it was read (its `version`): a node written
 * meanwhile has the attribute from its own write.
 */
async function backfillImageReferences(db: DocumentClient, table: string): Promise<void> {
  for await (const item of nodeItems(db, table)) {
    const doc = item.doc as { instance_info?: { image_source?: unknown } } | undefined;
    const image = catalogReference(doc?.instance_info?.image_source);
    if (!image || item.imagePk === `node#${image}`) continue;
    // A node written meanwhile has the attribute from its own write.
    await updateIfStill(db, {
      TableName: table,
      Key: { pk: item.pk, sk: item.sk },
      UpdateExpression: 'SET imagePk = :image',
      ConditionExpression: '#v = :v',
      ExpressionAttributeNames: { '#v': 'version' },
      ExpressionAttributeValues: { ':image': `node#${image}`, ':v': item.version },
    });
  }
}

export const LATEST_SCHEMA_VERSION = Math.max(...MIGRATIONS.map((migration) => migration.version));

const KEY = { pk: 'meta#schema', sk: 'item' };

export async function schemaState(db: DocumentClient, table: string): Promise<SchemaState> {
  const { Item } = await db.send(
    new (await libDynamoDB()).GetCommand({ TableName: table, Key: KEY, ConsistentRead: true }),
  );
  return {
    version: (Item?.version as number | undefined) ?? 0,
    applied: (Item?.applied as SchemaState['applied']) ?? [],
  };
}

/** Applies every pending migration in order; returns the versions it applied. */
export async function migrate(
  db: DocumentClient,
  table: string,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => string = () => new Date().toISOString(),
): Promise<number[]> {
  const applied: number[] = [];
  let state = await schemaState(db, table);
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (migration.version <= state.version) continue;
    await migration.up(db, table);
    const record = { version: migration.version, description: migration.description, applied_at: now() };
    try {
      await db.send(
        new (await libDynamoDB()).PutCommand({
          TableName: table,
          Item: { ...KEY, version: migration.version, applied: [...state.applied, record] },
          ConditionExpression: state.version === 0 ? 'attribute_not_exists(pk)' : '#v = :from',
          ...(state.version === 0
            ? {}
            : {
                ExpressionAttributeNames: { '#v': 'version' },
                ExpressionAttributeValues: { ':from': state.version },
              }),
        }),
      );
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') {
        throw new Error(
          `another dbsync moved the schema past version ${state.version} while this one ran; run it again`,
        );
      }
      throw error;
    }
    applied.push(migration.version);
    state = { version: migration.version, applied: [...state.applied, record] };
  }
  return applied;
}
