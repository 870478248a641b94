/**
 * Reading every item of a query or scan, a page at a time, bounded (10,000 pages of
 * DynamoDB's 1 MB), and rewriting items only if unchanged: for the maintenance passes of `metalplane-admin dbsync`, never for a
 * request path.
 */
import type { QueryCommandInput, ScanCommandInput, UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { libDynamoDB } from '../aws-sdk.ts';
import type { DocumentClient } from './client.ts';

const MAX_PAGES = 10_000;

type Item = Record<string, unknown>;

/** Every item `input` (a Query, or a Scan when it names no key condition) reads. */
export async function* allItems(
  db: DocumentClient,
  input: QueryCommandInput | ScanCommandInput,
): AsyncGenerator<Item> {
  let start: Item | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const paged = { ...input, ...(start ? { ExclusiveStartKey: start } : {}) };
    const { Items = [], LastEvaluatedKey } = await db.send(
      'KeyConditionExpression' in input && input.KeyConditionExpression
        ? new (await libDynamoDB()).QueryCommand(paged as QueryCommandInput)
        : new (await libDynamoDB()).ScanCommand(paged as ScanCommandInput),
    );
    yield* Items;
    if (!LastEvaluatedKey) return;
    start = LastEvaluatedKey;
  }
}

/** Every node item of the inventory table (the byKind index, no scan). */
export function nodeItems(db: DocumentClient, table: string): AsyncGenerator<Item> {
  return allItems(db, {
    TableName: table,
    IndexName: 'byKind',
    KeyConditionExpression: 'kindPk = :node',
    ExpressionAttributeValues: { ':node': 'node' },
  });
}

/** Sends a conditional update; answers false when its condition no longer held (written meanwhile). */
export async function updateIfStill(db: DocumentClient, input: UpdateCommandInput): Promise<boolean> {
  try {
    await db.send(new (await libDynamoDB()).UpdateCommand(input));
    return true;
  } catch (error) {
    if ((error as Error).name === 'ConditionalCheckFailedException') return false;
    throw error;
  }
}
