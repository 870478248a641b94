/**
 * The local AWS keeps the guarantees of AWS that Metalplane relies on (docs/local-aws.md).
 * moto as released breaks each of these; `local/moto_shim.py` restores them. Every case
 * here failed against plain moto 5.2 before the shim's fix.
 *
 * DynamoDB: every single-item request is atomic and isolated (a read never sees half an
 * update; of two conditional writes whose conditions exclude each other, one fails), and
 * a transaction is all-or-nothing for readers.
 * SQS FIFO: deduplication for five minutes after a send even once the message is
 * deleted; ReceiveRequestAttemptId answers a retried receive with the same messages and
 * receipts; a stale receipt handle is refused and leaves the message; concurrent
 * receives never hand out one message twice, nor a group's next message while one is in
 * flight.
 */
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { emulatorEnvironment } from '../../local/moto.ts';

let db: DynamoDBClient;
let sqs: SQSClient;
const suffix = Math.random().toString(36).slice(2, 8);
const table = `local-aws-${suffix}`;

beforeAll(async () => {
  Object.assign(process.env, emulatorEnvironment(inject('awsEndpoint')));
  // Enough sockets that the concurrent requests below really are concurrent.
  db = new DynamoDBClient({ maxAttempts: 1 });
  sqs = new SQSClient({ maxAttempts: 1 });
  await db.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
});

const ROUNDS = 30;
/**
 * Many attributes set between the ones the checks compare: moto applies an update one
 * action at a time, so this widens the window a concurrent request could see into.
 */
const PADDING = 60;
const padding = {
  names: Object.fromEntries(Array.from({ length: PADDING }, (_, i) => [`#p${i}`, `p${i}`])),
  sets: Array.from({ length: PADDING }, (_, i) => `#p${i} = :n`).join(', '),
};

describe('DynamoDB: atomic, isolated requests', () => {
  it('a read never sees half of one UpdateItem (both attributes written together)', async () => {
    const pk = { S: 'torn' };
    await db.send(new PutItemCommand({ TableName: table, Item: { pk, a: { N: '0' }, b: { N: '0' } } }));
    const torn: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let round = 1; round <= ROUNDS; round++) {
        await db.send(
          new UpdateItemCommand({
            TableName: table,
            Key: { pk },
            UpdateExpression: `SET a = :n, ${padding.sets}, b = :n`,
            ExpressionAttributeNames: padding.names,
            ExpressionAttributeValues: { ':n': { N: String(round) } },
          }),
        );
      }
    })().finally(() => {
      writing = false;
    });
    // Readers read as fast as they can for as long as the writer writes.
    const reader = async () => {
      while (writing) {
        const { Item } = await db.send(
          new GetItemCommand({ TableName: table, Key: { pk }, ConsistentRead: true }),
        );
        if (Item?.a?.N !== Item?.b?.N) torn.push(`a=${Item?.a?.N} b=${Item?.b?.N}`);
      }
    };
    await Promise.all([writer, reader(), reader(), reader()]);
    expect(torn).toStrictEqual([]);
  });

  it('of two conditional writes that exclude each other, exactly one succeeds', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const pk = { S: `race-${round}` };
      await db.send(new PutItemCommand({ TableName: table, Item: { pk, status: { S: 'running' } } }));
      // Both may only leave `running`: as a command's result and its expiry.
      const attempt = (to: string) =>
        db
          .send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk },
              // The status last: the window between the condition and the status is wide.
              UpdateExpression: `SET who = :to, ${padding.sets}, #s = :to`,
              ConditionExpression: '#s = :running',
              ExpressionAttributeNames: { '#s': 'status', ...padding.names },
              ExpressionAttributeValues: { ':to': { S: to }, ':running': { S: 'running' }, ':n': { N: '1' } },
            }),
          )
          .then(
            () => to,
            (error: Error) => {
              if (error instanceof ConditionalCheckFailedException) return undefined;
              throw error;
            },
          );
      const outcomes = await Promise.all([attempt('succeeded'), attempt('expired')]);
      const winners = outcomes.filter((outcome) => outcome !== undefined);
      expect(winners).toHaveLength(1);
      const { Item } = await db.send(
        new GetItemCommand({ TableName: table, Key: { pk }, ConsistentRead: true }),
      );
      // The item is the winner's, whole.
      expect(Item?.status?.S).toBe(winners[0]);
      expect(Item?.who?.S).toBe(winners[0]);
    }
  });

  it('a reader never sees half of a transaction', async () => {
    const keys = [{ S: 'tx-a' }, { S: 'tx-b' }];
    for (const pk of keys) {
      await db.send(new PutItemCommand({ TableName: table, Item: { pk, v: { N: '0' } } }));
    }
    const torn: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let round = 1; round <= ROUNDS; round++) {
        await db.send(
          new TransactWriteItemsCommand({
            // b first: a transaction torn in moto's order leaves b new and a old.
            TransactItems: [...keys].reverse().map((pk) => ({
              Update: {
                TableName: table,
                Key: { pk },
                UpdateExpression: `SET ${padding.sets}, v = :n`,
                ExpressionAttributeNames: padding.names,
                ExpressionAttributeValues: { ':n': { N: String(round) } },
              },
            })),
          }),
        );
      }
    })().finally(() => {
      writing = false;
    });
    // Two single reads are not one snapshot in DynamoDB either: read b, then a. Once b
    // shows a transaction's value, a shows it too (or a later one), or a was torn.
    const reader = async () => {
      while (writing) {
        const b = await db.send(
          new GetItemCommand({ TableName: table, Key: { pk: keys[1]! }, ConsistentRead: true }),
        );
        const a = await db.send(
          new GetItemCommand({ TableName: table, Key: { pk: keys[0]! }, ConsistentRead: true }),
        );
        const [va, vb] = [Number(a.Item?.v?.N), Number(b.Item?.v?.N)];
        if (va < vb) torn.push(`a=${va} b=${vb}`);
      }
    };
    await Promise.all([writer, reader(), reader(), reader()]);
    expect(torn).toStrictEqual([]);
  });
});

async function fifoQueue(name: string, visibilityTimeout = 30): Promise<string> {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${name}-${suffix}.fifo`,
      Attributes: { FifoQueue: 'true', VisibilityTimeout: String(visibilityTimeout) },
    }),
  );
  return QueueUrl as string;
}

function send(url: string, group: string, id: string) {
  return sqs.send(
    new SendMessageCommand({
      QueueUrl: url,
      MessageBody: id,
      MessageGroupId: group,
      MessageDeduplicationId: id,
    }),
  );
}

async function receive(
  url: string,
  extra: Partial<ConstructorParameters<typeof ReceiveMessageCommand>[0]> = {},
) {
  const { Messages = [] } = await sqs.send(
    new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, ...extra }),
  );
  return Messages;
}

describe('SQS FIFO: documented semantics', () => {
  it('deduplicates for five minutes after the send, even once the first message is deleted', async () => {
    const url = await fifoQueue('dedup');
    await send(url, 'g', 'command-1');
    const [first] = await receive(url);
    expect(first?.Body).toBe('command-1');
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: first?.ReceiptHandle }));
    // The same deduplication id again (a retried send): accepted, never delivered.
    await send(url, 'g', 'command-1');
    await send(url, 'g', 'command-2');
    expect((await receive(url)).map((m) => m.Body)).toStrictEqual(['command-2']);
  });

  it('a receive retried with its ReceiveRequestAttemptId answers the same messages and receipts', async () => {
    const url = await fifoQueue('attempt');
    await send(url, 'g1', 'a1');
    await send(url, 'g2', 'b1');
    const first = await receive(url, { ReceiveRequestAttemptId: 'attempt-1' });
    expect(first.map((m) => m.Body).sort()).toStrictEqual(['a1', 'b1']);
    // The answer was lost; the retry with the same id gets the same delivery.
    const retried = await receive(url, { ReceiveRequestAttemptId: 'attempt-1' });
    expect(retried.map((m) => [m.Body, m.ReceiptHandle]).sort()).toStrictEqual(
      first.map((m) => [m.Body, m.ReceiptHandle]).sort(),
    );
    // A new attempt finds both groups in flight: nothing.
    expect(await receive(url, { ReceiveRequestAttemptId: 'attempt-2' })).toStrictEqual([]);
  });

  it('refuses a stale receipt handle and keeps the message; the latest one deletes it', async () => {
    const url = await fifoQueue('stale');
    await send(url, 'g', 'm1');
    const [first] = await receive(url, { VisibilityTimeout: 1 });
    // Wait (a long poll, not a sleep) until the visibility timeout gives it out again.
    let again: Message | undefined;
    for (let poll = 0; poll < 10 && !again; poll++) {
      [again] = await receive(url, { WaitTimeSeconds: 2, VisibilityTimeout: 30 });
    }
    expect(again?.Body).toBe('m1');
    expect(again?.ReceiptHandle).not.toBe(first?.ReceiptHandle);
    await expect(
      sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: first?.ReceiptHandle })),
    ).rejects.toThrow(/receipt handle has expired/);
    // Still there: the latest receipt deletes it, and the group's next message flows.
    await send(url, 'g', 'm2');
    expect(await receive(url)).toStrictEqual([]);
    await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: again?.ReceiptHandle }));
    expect((await receive(url)).map((m) => m.Body)).toStrictEqual(['m2']);
  });

  it('concurrent receives never give out one message twice, nor a busy group’s next one', async () => {
    const url = await fifoQueue('concurrent');
    const groups = 20;
    const perGroup = 10;
    for (let i = 0; i < perGroup; i++) {
      for (let g = 0; g < groups; g++) await send(url, `g${g}`, `g${g}-m${i}`);
    }
    const seen: string[] = [];
    // Receive concurrently from 10 consumers; delete nothing: each group may give out
    // exactly its first message until that one is deleted.
    const batches = await Promise.all(Array.from({ length: 10 }, () => receive(url)));
    for (const batch of batches) for (const message of batch) seen.push(message.Body as string);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.every((body) => body.endsWith('-m0'))).toBe(true);
    expect(seen.length).toBeLessThanOrEqual(groups);
  });
});
