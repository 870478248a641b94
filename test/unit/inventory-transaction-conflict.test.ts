/**
 * DynamoDB cancels a transaction that meets another write to one of its items in flight
 * (`TransactionConflict`); the local AWS never does (it runs requests one at a time), so
 * the mapping Metalplane relies on is pinned here with a stub client: a conflict is a
 * retryable `conflict` (409 for the API, a re-read and retry in the conductor's writes),
 * never a 500 and never mistaken for a failed condition.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { InventoryStore, type WriteOp } from '../../lambda/adapters/dynamo/inventory-store.ts';
import { DomainError } from '../../lambda/domain/errors.ts';

function cancelled(codes: string[]): Error {
  return Object.assign(
    new Error(
      `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes.join(', ')}]`,
    ),
    {
      name: 'TransactionCanceledException',
      CancellationReasons: codes.map((Code) => ({ Code })),
    },
  );
}

function storeFailingWith(error: Error): { store: InventoryStore; sent: string[] } {
  const sent: string[] = [];
  const db = {
    send: async (command: { constructor: { name: string } }) => {
      sent.push(command.constructor.name);
      throw error;
    },
  } as unknown as DynamoDBDocumentClient;
  return { store: new InventoryStore(db, () => 'inventory'), sent };
}

const create = (id: string): WriteOp => ({
  type: 'create',
  item: { kind: 'thing', id, doc: { id }, listSk: `2026-12-03T00:00:00Z#${id}`, indexes: {} },
  onConflict: new DomainError('conflict', `thing ${id} exists`),
});

describe('a transaction DynamoDB cancels for a concurrent write', () => {
  it('is a retryable conflict, not a server error', async () => {
    const { store, sent } = storeFailingWith(cancelled(['None', 'TransactionConflict']));
    const error = await store.write([create('a'), create('b')]).catch((e: unknown) => e);
    expect(sent).toStrictEqual(['TransactWriteCommand']);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ kind: 'conflict', message: expect.stringMatching(/changed concurrently/) });
  });

  it('a failed condition names the op whose condition failed, even beside a conflict', async () => {
    const { store } = storeFailingWith(cancelled(['TransactionConflict', 'ConditionalCheckFailed']));
    const error = await store.write([create('a'), create('b')]).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: 'conflict', message: 'thing b exists' });
  });
});
