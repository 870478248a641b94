/**
 * The shim's cheap DynamoDB write path (local/moto_shim.py, "DynamoDB writes: no
 * re-parsing, no needless copies"; docs/local-aws.md) answers every write exactly as moto
 * as released does. The shim caches each UpdateExpression's parsed tree by its string,
 * each condition's lexed tokens by its string and its parse within a request, takes a
 * plain JSON body as the request's parameters, copies the update tree for validation with
 * its own copier, hands UpdateItem's handler a JSON snapshot of the old item instead of a
 * deep copy, skips the stream-record copy of a table without a stream, and builds nested
 * item JSON in one pass. This file replays one seeded,
 * randomized sequence of writes against the shim and against a plain `moto_server` started
 * here — UpdateItem (SET/REMOVE/ADD/DELETE, list_append, if_not_exists, arithmetic, nested
 * paths and list indexes, every ReturnValues), conditional PutItem and DeleteItem,
 * TransactWriteItems (cancelled ones included), GetItem with projections — reusing the
 * same few expression strings with different values (the cache's case) and mixing in
 * invalid expressions and mistyped values (binaries and 'null' among them: bodies the shim
 * leaves to moto's request parser), and compares every answer and every error (name,
 * message, the old item or cancellation reasons it carries), then the tables.
 */
import {
  type AttributeValue,
  CreateTableCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { between, type Random, seeded } from '../chaos/random.ts';
import { shimBesidePlainMoto } from '../support/aws.ts';

type Item = Record<string, AttributeValue>;

const suffix = Math.random().toString(36).slice(2, 8);
const NODES = `writes-nodes-${suffix}`;
const FLAT = `writes-flat-${suffix}`;

const SEED = 20_261_205;
const OPERATIONS = 500;
const KEYS = 10;

let shim: DynamoDBClient;
let reference: DynamoDBClient;
let stopPlain: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ shim, reference, stop: stopPlain } = await shimBesidePlainMoto());
  for (const db of [shim, reference]) {
    await db.send(
      new CreateTableCommand({
        TableName: NODES,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
      }),
    );
    await db.send(
      new CreateTableCommand({
        TableName: FLAT,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      }),
    );
  }
}, 90_000);

afterAll(() => stopPlain?.());

// --- what is sent: a few expression strings, reused with ever different values ----------

/** Update expressions: Metalplane's shapes and the rest of the grammar; some invalid. */
const UPDATES = [
  'SET #ps = :ps, #v = #v + :one, #props.#p.#cpu = :n REMOVE #gone',
  'SET #ps = :ps, #v = #v + :one',
  'SET tags = list_append(if_not_exists(tags, :empty), :tag)',
  'SET tags = list_append(:tag, if_not_exists(tags, :empty))',
  'ADD #c :n, labels :ss',
  'DELETE labels :ss',
  'REMOVE props.p1.flags[0], attr5',
  'SET #a = if_not_exists(#a, :s), info.#b = :m',
  'SET props.p2 = :m, #c = #c - :n',
  'SET tags[1] = :s, props.p0.flags[5] = :s',
  'SET info = :m REMOVE tags[0], tags[2]',
  '  SET   #ps=:ps ,  attr1 = :s  ',
  'SET a = :s REMOVE a', // overlapping paths
  'SET', // syntax error
  'SET a = :missing', // an undefined value
  'SET pk = :s', // a key attribute
  'REMOVE tags[x]', // syntax error
  'ADD #c :n, #c :n', // two actions on one path
  'DELETE labels', // syntax error
  'SET a = :s SET b = :s', // two SET clauses
];

/** Condition expressions (for updates, puts, deletes and transactions); some invalid. */
const CONDITIONS = [
  undefined,
  'attribute_exists(pk)',
  'attribute_not_exists(pk)',
  '#v < :max',
  'attribute_not_exists(pk) OR #v >= :zero',
  'contains(tags, :s)',
  'size(#ps) > :n',
  'begins_with(#ps, :ps)',
  '#ps IN (:ps, :s) AND attribute_type(#c, :type)',
  'attribute_exists(pk) AND #v', // invalid
];

const PROJECTIONS = [undefined, 'pk, #ps, props.p0', '#v, tags[0], info', 'nothing_here'];

const NAMES: Record<string, string> = {
  '#ps': 'provision_state',
  '#v': 'version',
  '#props': 'props',
  '#p': 'p0',
  '#cpu': 'cpu',
  '#gone': 'attr3',
  '#a': 'attr7',
  '#b': 'note',
  '#c': 'counter',
};

const pick = <T>(random: Random, values: readonly T[]): T => values[between(random, 0, values.length)] as T;

/** A value for placeholder `name`, usually of the type the expressions expect. */
function value(random: Random, name: string): AttributeValue {
  const number = () => ({ N: String(between(random, -3, 40)) });
  // 'null' and binaries: bodies the shim leaves to moto's own request parser.
  const text = () => ({ S: pick(random, ['available', 'active', 'deploying', 'x', '', 'null']) });
  const binary = () => ({ B: Uint8Array.of(between(random, 0, 255), 7) });
  if (random() < 0.06) return pick(random, [number(), text(), binary(), { BOOL: true }, { NULL: true }]); // mistyped
  switch (name) {
    case ':one':
      return { N: '1' };
    case ':n':
    case ':max':
    case ':zero':
      return number();
    case ':s':
    case ':ps':
      return text();
    case ':ss':
      return { SS: [...new Set(['a', 'b', 'c', 'd'].filter(() => random() < 0.5)), 'e'] };
    case ':tag':
      return { L: [{ S: `tag-${between(random, 0, 9)}` }, { N: String(between(random, 0, 9)) }] };
    case ':empty':
      return { L: [] };
    case ':m':
      return { M: { deep: { M: { n: number(), s: text() } }, list: { L: [number()] } } };
    case ':type':
      return { S: pick(random, ['N', 'S', 'SS']) };
    default:
      return text();
  }
}

/** Names and values for the placeholders the expressions use (DynamoDB refuses unused ones). */
function placeholders(random: Random, ...expressions: (string | undefined)[]) {
  const text = expressions.filter(Boolean).join(' ');
  const names = Object.fromEntries(
    [...new Set(text.match(/#\w+/g) ?? [])]
      .filter((name) => name in NAMES)
      .map((name) => [name, NAMES[name]]),
  );
  const values = Object.fromEntries(
    [...new Set(text.match(/:\w+/g) ?? [])]
      .filter((name) => name !== ':missing')
      .map((name) => [name, value(random, name)]),
  );
  return {
    ...(Object.keys(names).length ? { ExpressionAttributeNames: names as Record<string, string> } : {}),
    ...(Object.keys(values).length ? { ExpressionAttributeValues: values as Item } : {}),
  };
}

/** A node-sized item (~2 KB): a few dozen attributes, nested maps and lists. */
function node(random: Random, pk: string, sk?: string): Item {
  const item: Item = { pk: { S: pk }, ...(sk ? { sk: { S: sk } } : {}) };
  for (let i = 0; i < 24; i++)
    item[`attr${i}`] = { S: `value-${i}-${between(random, 0, 1000)}-${'x'.repeat(20)}` };
  item.props = {
    M: Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [
        `p${i}`,
        {
          M: {
            cpu: { N: String(between(random, 1, 64)) },
            name: { S: `prop-${i}` },
            flags: { L: [{ S: 'a' }, { BOOL: random() < 0.5 }, { N: '3' }] },
          },
        },
      ]),
    ),
  };
  if (random() < 0.8) item.version = { N: String(between(random, 0, 5)) };
  item.provision_state = { S: pick(random, ['available', 'active', 'deploying']) };
  if (random() < 0.5) item.tags = { L: [{ S: 'one' }, { S: 'two' }, { S: 'three' }] };
  if (random() < 0.5) item.labels = { SS: ['a', 'b'] };
  if (random() < 0.5) item.counter = { N: String(between(random, 0, 10)) };
  return item;
}

function keyOf(random: Random, table = pick(random, [NODES, NODES, FLAT])): { table: string; key: Item } {
  const pk = { S: `n${between(random, 0, KEYS)}` };
  return {
    table,
    key: table === NODES ? { pk, sk: { S: pick(random, ['meta', 'meta', 'other']) } } : { pk },
  };
}

// --- comparing answers -----------------------------------------------------------------

type Outcome = { ok: true; value: unknown } | { ok: false; error: Record<string, unknown> };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    const { $metadata: _, ...answer } = (await run()) as Record<string, unknown>;
    return { ok: true, value: answer };
  } catch (error) {
    const { name, message, Item, CancellationReasons } = error as Record<string, unknown>;
    return { ok: false, error: { name, message, Item, CancellationReasons } };
  }
}

const tally = { ok: 0, failed: 0 };

/** Runs one request on both servers: the same answer, or the same error. */
async function same(send: (db: DynamoDBClient) => Promise<unknown>, what: unknown): Promise<void> {
  const [ours, theirs] = await Promise.all([outcome(() => send(shim)), outcome(() => send(reference))]);
  expect(ours, JSON.stringify(what)).toEqual(theirs);
  tally[theirs.ok ? 'ok' : 'failed']++;
}

async function scanned(db: DynamoDBClient, table: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const page = await db.send(
      new ScanCommand({ TableName: table, ...(start ? { ExclusiveStartKey: start } : {}) }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  const id = (item: Item) => `${item.pk?.S}\u0000${item.sk?.S ?? ''}`;
  return items.sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
}

// --- the operations ------------------------------------------------------------------------

function updateInput(random: Random) {
  const { table, key } = keyOf(random);
  const expression = pick(random, UPDATES);
  const condition = random() < 0.5 ? pick(random, CONDITIONS) : undefined;
  return {
    TableName: table,
    Key: key,
    UpdateExpression: expression,
    ...(condition ? { ConditionExpression: condition } : {}),
    ...placeholders(random, expression, condition),
    ReturnValues: pick(random, ['NONE', 'ALL_NEW', 'ALL_OLD', 'UPDATED_NEW', 'UPDATED_OLD'] as const),
    ...(random() < 0.3 ? { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } : {}),
  };
}

function putInput(random: Random) {
  const { table, key } = keyOf(random);
  const condition = pick(random, CONDITIONS);
  return {
    TableName: table,
    Item: node(random, key.pk?.S as string, key.sk?.S),
    ...(condition ? { ConditionExpression: condition } : {}),
    ...placeholders(random, condition),
    ReturnValues: pick(random, ['NONE', 'ALL_OLD'] as const),
    ...(random() < 0.3 ? { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } : {}),
  };
}

function deleteInput(random: Random) {
  const { table, key } = keyOf(random);
  const condition = pick(random, CONDITIONS);
  return {
    TableName: table,
    Key: key,
    ...(condition ? { ConditionExpression: condition } : {}),
    ...placeholders(random, condition),
    ReturnValues: pick(random, ['NONE', 'ALL_OLD'] as const),
  };
}

function transactionInput(random: Random): TransactWriteItem[] {
  const items: TransactWriteItem[] = [];
  const used = new Set<string>();
  const count = between(random, 1, 4);
  for (let i = 0; i < count; i++) {
    let target = keyOf(random);
    // Usually distinct items; sometimes one item twice (DynamoDB refuses that).
    for (let tries = 0; used.has(JSON.stringify(target)) && tries < 5 && random() < 0.9; tries++)
      target = keyOf(random);
    used.add(JSON.stringify(target));
    const condition = random() < 0.6 ? pick(random, CONDITIONS.slice(0, -1)) : undefined;
    const conditional = { ...(condition ? { ConditionExpression: condition } : {}) };
    const kind = between(random, 0, 4);
    if (kind === 0) {
      const expression = pick(random, UPDATES.slice(0, 12));
      items.push({
        Update: {
          TableName: target.table,
          Key: target.key,
          UpdateExpression: expression,
          ...conditional,
          ...placeholders(random, expression, condition),
        },
      });
    } else if (kind === 1) {
      items.push({
        Put: {
          TableName: target.table,
          Item: node(random, target.key.pk?.S as string, target.key.sk?.S),
          ...conditional,
          ...placeholders(random, condition),
        },
      });
    } else if (kind === 2) {
      items.push({
        Delete: {
          TableName: target.table,
          Key: target.key,
          ...conditional,
          ...placeholders(random, condition),
        },
      });
    } else {
      const check = condition ?? 'attribute_exists(pk)';
      items.push({
        ConditionCheck: {
          TableName: target.table,
          Key: target.key,
          ConditionExpression: check,
          ...placeholders(random, check),
        },
      });
    }
  }
  return items;
}

describe('DynamoDB writes through the shim answer as plain moto does', () => {
  it('the same answers, errors and items for a seeded random sequence of writes', async () => {
    const random = seeded(SEED);
    for (let i = 0; i < KEYS; i++) {
      for (const [table, key] of [
        [NODES, { pk: { S: `n${i}` }, sk: { S: 'meta' } }],
        [FLAT, { pk: { S: `n${i}` } }],
      ] as const) {
        if (random() < 0.7) {
          const item = node(random, key.pk.S, 'sk' in key ? key.sk.S : undefined);
          await same((db) => db.send(new PutItemCommand({ TableName: table, Item: item })), item);
        }
      }
    }
    for (let step = 0; step < OPERATIONS; step++) {
      const roll = random();
      if (roll < 0.5) {
        const input = updateInput(random);
        await same((db) => db.send(new UpdateItemCommand(input)), { step, input });
      } else if (roll < 0.65) {
        const input = putInput(random);
        await same((db) => db.send(new PutItemCommand(input)), { step, input });
      } else if (roll < 0.72) {
        const input = deleteInput(random);
        await same((db) => db.send(new DeleteItemCommand(input)), { step, input });
      } else if (roll < 0.88) {
        const input = { TransactItems: transactionInput(random) };
        await same((db) => db.send(new TransactWriteItemsCommand(input)), { step, input });
      } else {
        const { table, key } = keyOf(random);
        const projection = pick(random, PROJECTIONS);
        const input = {
          TableName: table,
          Key: key,
          ConsistentRead: true,
          ...(projection ? { ProjectionExpression: projection } : {}),
          ...placeholders(random, projection),
        };
        await same((db) => db.send(new GetItemCommand(input)), { step, input });
      }
    }
    for (const table of [NODES, FLAT]) {
      const [ours, theirs] = await Promise.all([scanned(shim, table), scanned(reference, table)]);
      expect(ours, table).toEqual(theirs);
      expect(theirs.length, table).toBeGreaterThan(0);
    }
    // The sequence exercised both outcomes, and many of each.
    expect(tally.ok).toBeGreaterThan(OPERATIONS / 4);
    expect(tally.failed).toBeGreaterThan(OPERATIONS / 10);
  }, 240_000);

  it('the same binaries (B, BS, nested), written, conditioned on and read back', async () => {
    // Request bodies with binaries are the ones the shim leaves to moto's own parser,
    // which decodes their base64: taken as plain JSON they would be stored still encoded.
    const bytes = (...values: number[]) => Uint8Array.from(values);
    const item: Item = {
      pk: { S: 'bin' },
      bin: { B: bytes(0, 1, 2, 250) },
      bins: { BS: [bytes(1), bytes(2, 3)] },
      nested: { M: { inner: { B: bytes(9, 8, 7) }, list: { L: [{ B: bytes(5) }] } } },
    };
    await same((db) => db.send(new PutItemCommand({ TableName: FLAT, Item: item })), 'put');
    const update = {
      TableName: FLAT,
      Key: { pk: { S: 'bin' } },
      UpdateExpression: 'SET extra = :b ADD bins :more',
      ConditionExpression: 'bin = :old',
      ExpressionAttributeValues: {
        ':b': { B: bytes(42) },
        ':more': { BS: [bytes(4)] },
        ':old': { B: bytes(0, 1, 2, 250) },
      },
      ReturnValues: 'ALL_NEW' as const,
    };
    await same((db) => db.send(new UpdateItemCommand(update)), 'update');
    const get = { TableName: FLAT, Key: { pk: { S: 'bin' } }, ConsistentRead: true };
    await same((db) => db.send(new GetItemCommand(get)), 'get');
    const stored = await shim.send(new GetItemCommand(get));
    expect(stored.Item?.bin?.B).toEqual(bytes(0, 1, 2, 250));
    expect(stored.Item?.extra?.B).toEqual(bytes(42));
  });

  it('the same item size bound (405,000 bytes) for PutItem, UpdateItem and transactions', async () => {
    const big = (length: number): Item => ({
      pk: { S: 'big' },
      a: { S: 'x'.repeat(length) },
      nested: { M: { list: { L: [{ S: 'y'.repeat(100) }, { N: '12345' }] }, n: { N: '1.5' } } },
    });
    // Around the bound: the item's size is its attribute names and values (moto's count).
    for (const length of [404_700, 404_820, 404_830, 404_840, 404_900, 405_100]) {
      await same((db) => db.send(new PutItemCommand({ TableName: FLAT, Item: big(length) })), {
        put: length,
      });
      for (const extra of [10, 150, 400]) {
        const input = {
          TableName: FLAT,
          Key: { pk: { S: 'big' } },
          UpdateExpression: 'SET more = :v, nested.#m = :v',
          ExpressionAttributeNames: { '#m': 'more' },
          ExpressionAttributeValues: { ':v': { S: 'z'.repeat(extra) } },
          ReturnValues: 'UPDATED_NEW' as const,
        };
        await same((db) => db.send(new UpdateItemCommand(input)), { update: length, extra });
      }
      const put = { Put: { TableName: FLAT, Item: { ...big(length), pk: { S: 'big-tx' } } } };
      await same((db) => db.send(new TransactWriteItemsCommand({ TransactItems: [put] })), {
        transaction: length,
      });
    }
    const [ours, theirs] = await Promise.all([scanned(shim, FLAT), scanned(reference, FLAT)]);
    expect(ours).toEqual(theirs);
  }, 120_000);
});
