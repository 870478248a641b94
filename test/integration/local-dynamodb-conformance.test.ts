/**
 * The shim's Query index (local/moto_shim.py, docs/local-aws.md) answers every Query
 * exactly as moto as released does. The shim keeps each partition of the table and of
 * every secondary index sorted, updated on every write path, and answers a Query from
 * the partition's stretch instead of walking the table; this file replays one seeded,
 * randomized sequence of writes (PutItem, UpdateItem setting and removing index keys,
 * DeleteItem, BatchWriteItem, TransactWriteItems, failing ones included, UpdateTable
 * adding an index, a table deleted and created again) against the shim and against a
 * plain `moto_server` started here, and after each write compares Query answers page by
 * page (Items, Count, ScannedCount, LastEvaluatedKey): the table and every index, both
 * directions, each range condition, Limit with ExclusiveStartKey to the end, filters,
 * start keys made up as the audit log makes them, and pages cut at 1 MB.
 */
import {
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  type CreateTableCommandInput,
  DeleteItemCommand,
  DeleteTableCommand,
  type DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  UpdateTableCommand,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { between, type Random, seeded } from '../chaos/random.ts';
import { shimBesidePlainMoto } from '../support/aws.ts';

type Item = Record<string, AttributeValue>;

const suffix = Math.random().toString(36).slice(2, 8);
const INV = `conformance-inv-${suffix}`;
const FLAT = `conformance-flat-${suffix}`;
const BIG = `conformance-big-${suffix}`;

const SEED = 20_261_204;
const OPERATIONS = 240;
const MAX_PAGES = 400;

let shim: DynamoDBClient;
let reference: DynamoDBClient;
let stopPlain: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ shim, reference, stop: stopPlain } = await shimBesidePlainMoto());
  await both((db) => db.send(new CreateTableCommand(invTable())));
  await both((db) => db.send(new CreateTableCommand(flatTable())));
}, 90_000);

afterAll(() => stopPlain?.());

// --- the tables: Metalplane's shapes (pk/sk with GSIs) and the other kinds of index ------

const S = (name: string) => ({ AttributeName: name, AttributeType: 'S' as const });
const key = (hash: string, range?: string) => [
  { AttributeName: hash, KeyType: 'HASH' as const },
  ...(range ? [{ AttributeName: range, KeyType: 'RANGE' as const }] : []),
];
const all = { ProjectionType: 'ALL' as const };

function invTable(): CreateTableCommandInput {
  return {
    TableName: INV,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: key('pk', 'sk'),
    AttributeDefinitions: [
      ...[
        'pk',
        'sk',
        'kindPk',
        'listSk',
        'parentPk',
        'openPk',
        'openSk',
        'actorPk',
        'statePk',
        'numPk',
        'nameSk',
      ].map(S),
      { AttributeName: 'numSk', AttributeType: 'N' },
    ],
    GlobalSecondaryIndexes: [
      { IndexName: 'byKind', KeySchema: key('kindPk', 'listSk'), Projection: all },
      { IndexName: 'byParent', KeySchema: key('parentPk', 'listSk'), Projection: all },
      { IndexName: 'byOpen', KeySchema: key('openPk', 'openSk'), Projection: all },
      // The index's sort key is the table's (the audit log's byActor).
      { IndexName: 'byActor', KeySchema: key('actorPk', 'sk'), Projection: all },
      // No sort key: moto orders by the table's keys.
      { IndexName: 'byState', KeySchema: key('statePk'), Projection: all },
      { IndexName: 'byNum', KeySchema: key('numPk', 'numSk'), Projection: { ProjectionType: 'KEYS_ONLY' } },
    ],
    LocalSecondaryIndexes: [{ IndexName: 'byName', KeySchema: key('pk', 'nameSk'), Projection: all }],
  };
}

function flatTable(): CreateTableCommandInput {
  return {
    TableName: FLAT,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: key('id'),
    AttributeDefinitions: ['id', 'kindPk', 'listSk', 'statePk'].map(S),
    GlobalSecondaryIndexes: [
      { IndexName: 'byKind', KeySchema: key('kindPk', 'listSk'), Projection: all },
      { IndexName: 'byState', KeySchema: key('statePk'), Projection: all },
    ],
  };
}

// --- value pools: few enough that keys collide, sort keys tie and partitions fill -------

const PKS = ['p0', 'p1', 'p2', 'p3'];
const SKS = ['a', 'a#1', 'a#10', 'a#2', 'ab', 'b', 'b#1', 'b#2', 'c', 'c#1', 'd', 'node'];
const LIST = ['l0', 'l1', 'l1', 'l2', 'x#1', 'x#2', 'x#20', 'y', 'ya', 'z'];
const KINDS = ['node', 'port', 'chassis'];
const PARENTS = ['n1', 'n2'];
const OPEN = ['shard0', 'shard1'];
const ACTORS = ['alice', 'bob'];
const STATES = ['available', 'active', 'error'];
const NUMS = ['-3', '-0.5', '0', '1', '1.5', '2', '10', '10.0', '100', '7'];
const IDS = ['i0', 'i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7', 'i8', 'i9'];
const TAGS = ['red', 'green', 'blue'];

/** The attributes an update may set or remove, and the values each takes. */
const INV_ATTRS: Record<string, () => AttributeValue> = {};
const FLAT_ATTRS: Record<string, () => AttributeValue> = {};

function pick<T>(random: Random, values: readonly T[]): T {
  return values[between(random, 0, values.length)] as T;
}

function chance(random: Random, p: number): boolean {
  return random() < p;
}

function attributePools(random: Random): void {
  const s = (pool: readonly string[]) => () => ({ S: pick(random, pool) });
  Object.assign(INV_ATTRS, {
    kindPk: s(KINDS),
    listSk: s(LIST),
    parentPk: s(PARENTS),
    openPk: s(OPEN),
    openSk: s(LIST),
    actorPk: s(ACTORS),
    statePk: s(STATES),
    numPk: s(PARENTS),
    numSk: () => ({ N: pick(random, NUMS) }),
    nameSk: s(SKS),
    tag: s(TAGS),
  });
  Object.assign(FLAT_ATTRS, { kindPk: s(KINDS), listSk: s(LIST), statePk: s(STATES), tag: s(TAGS) });
}

function invKey(random: Random): Item {
  return { pk: { S: pick(random, PKS) }, sk: { S: pick(random, SKS) } };
}

function flatKey(random: Random): Item {
  return { id: { S: pick(random, IDS) } };
}

function randomItem(random: Random, table: string): Item {
  const attrs = table === INV ? INV_ATTRS : FLAT_ATTRS;
  const item: Item = {
    ...(table === INV ? invKey(random) : flatKey(random)),
    v: { N: String(between(random, 0, 100)) },
    pad: { S: 'x'.repeat(between(random, 0, 300)) },
  };
  for (const [name, value] of Object.entries(attrs)) if (chance(random, 0.6)) item[name] = value();
  return item;
}

/** SET some attributes, REMOVE others (an item leaves a sparse index), ADD to a counter. */
function randomUpdate(random: Random, table: string) {
  const attrs = table === INV ? INV_ATTRS : FLAT_ATTRS;
  const names: Record<string, string> = {};
  const values: Record<string, AttributeValue> = {};
  const sets: string[] = [];
  const removes: string[] = [];
  for (const [name, value] of Object.entries(attrs)) {
    const roll = random();
    if (roll < 0.3) {
      names[`#${name}`] = name;
      values[`:${name}`] = value();
      sets.push(`#${name} = :${name}`);
    } else if (roll < 0.45) {
      names[`#${name}`] = name;
      removes.push(`#${name}`);
    }
  }
  values[':one'] = { N: '1' };
  let expression = `ADD v :one`;
  if (sets.length > 0) expression = `SET ${sets.join(', ')} ${expression}`;
  if (removes.length > 0) expression += ` REMOVE ${removes.join(', ')}`;
  const condition = randomCondition(random, values);
  return {
    Key: table === INV ? invKey(random) : flatKey(random),
    UpdateExpression: expression,
    ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
    ExpressionAttributeValues: values,
    ...(condition ? { ConditionExpression: condition } : {}),
  };
}

/** A condition that sometimes fails: the write (or the whole transaction) is refused. */
function randomCondition(random: Random, values: Record<string, AttributeValue>): string | undefined {
  const roll = random();
  if (roll < 0.6) return undefined;
  if (roll < 0.75) return 'attribute_exists(v)';
  if (roll < 0.85) return 'attribute_not_exists(v)';
  values[':limit'] = { N: String(between(random, 0, 100)) };
  return 'attribute_not_exists(v) OR v < :limit';
}

// --- running each request on both servers ----------------------------------------------

type Outcome = { ok: true; value: unknown } | { ok: false; error: string };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return { ok: false, error: (error as Error).name };
  }
}

/** Runs one request on both servers; both must succeed, or fail with the same error. */
async function both(send: (db: DynamoDBClient) => Promise<unknown>, what = 'request'): Promise<boolean> {
  const [ours, theirs] = await Promise.all([outcome(() => send(shim)), outcome(() => send(reference))]);
  expect(ours.ok ? 'ok' : ours.error, what).toBe(theirs.ok ? 'ok' : theirs.error);
  return ours.ok;
}

/** A Query paged to the end on both servers, every page compared; the number of pages. */
async function sameQuery(input: QueryCommandInput, context: string): Promise<number> {
  let start = input.ExclusiveStartKey;
  for (let page = 0; page < MAX_PAGES; page++) {
    const paged: QueryCommandInput = { ...input, ...(start ? { ExclusiveStartKey: start } : {}) };
    const [ours, theirs] = await Promise.all([
      outcome(() => shim.send(new QueryCommand(paged))),
      outcome(() => reference.send(new QueryCommand(paged))),
    ]);
    const what = `${context}: page ${page} of ${JSON.stringify(paged)}`;
    if (!ours.ok || !theirs.ok) {
      expect(ours.ok ? 'ok' : ours.error, what).toBe(theirs.ok ? 'ok' : theirs.error);
      return page + 1;
    }
    const answer = (value: unknown) => {
      const { Items, Count, ScannedCount, LastEvaluatedKey } = value as Record<string, unknown>;
      return { Items, Count, ScannedCount, LastEvaluatedKey };
    };
    const mine = answer(ours.value);
    expect(mine, what).toEqual(answer(theirs.value));
    start = mine.LastEvaluatedKey as Item | undefined;
    if (!start) return page + 1;
  }
  throw new Error(`${context}: more than ${MAX_PAGES} pages`);
}

// --- query shapes -----------------------------------------------------------------------

interface View {
  readonly table: string;
  readonly index?: string;
  readonly hash: string;
  readonly hashes: readonly string[];
  readonly range?: string;
  readonly ranges?: readonly AttributeValue[];
  /** The table's key attributes, for made-up start keys. */
  readonly tableKey: readonly string[];
}

const strings = (values: readonly string[]) => values.map((value) => ({ S: value }));
const INV_KEY = ['pk', 'sk'];
const views: View[] = [
  { table: INV, hash: 'pk', hashes: PKS, range: 'sk', ranges: strings(SKS), tableKey: INV_KEY },
  {
    table: INV,
    index: 'byKind',
    hash: 'kindPk',
    hashes: KINDS,
    range: 'listSk',
    ranges: strings(LIST),
    tableKey: INV_KEY,
  },
  {
    table: INV,
    index: 'byParent',
    hash: 'parentPk',
    hashes: PARENTS,
    range: 'listSk',
    ranges: strings(LIST),
    tableKey: INV_KEY,
  },
  {
    table: INV,
    index: 'byOpen',
    hash: 'openPk',
    hashes: OPEN,
    range: 'openSk',
    ranges: strings(LIST),
    tableKey: INV_KEY,
  },
  {
    table: INV,
    index: 'byActor',
    hash: 'actorPk',
    hashes: ACTORS,
    range: 'sk',
    ranges: strings(SKS),
    tableKey: INV_KEY,
  },
  { table: INV, index: 'byState', hash: 'statePk', hashes: STATES, tableKey: INV_KEY },
  {
    table: INV,
    index: 'byNum',
    hash: 'numPk',
    hashes: PARENTS,
    range: 'numSk',
    ranges: NUMS.map((value) => ({ N: value })),
    tableKey: INV_KEY,
  },
  {
    table: INV,
    index: 'byName',
    hash: 'pk',
    hashes: PKS,
    range: 'nameSk',
    ranges: strings(SKS),
    tableKey: INV_KEY,
  },
  { table: FLAT, hash: 'id', hashes: IDS, tableKey: ['id'] },
  {
    table: FLAT,
    index: 'byKind',
    hash: 'kindPk',
    hashes: KINDS,
    range: 'listSk',
    ranges: strings(LIST),
    tableKey: ['id'],
  },
  { table: FLAT, index: 'byState', hash: 'statePk', hashes: STATES, tableKey: ['id'] },
];
/** Added by UpdateTable halfway through the run. */
const byTag: View = {
  table: INV,
  index: 'byTag',
  hash: 'tag',
  hashes: TAGS,
  range: 'sk',
  ranges: strings(SKS),
  tableKey: INV_KEY,
};

const OPERATORS = ['=', '<', '<=', '>', '>=', 'BETWEEN', 'begins_with'] as const;
const LIMITS = [1, 2, 3, 5, 8];

function randomQuery(random: Random, view: View, hashValue?: string): QueryCommandInput {
  const names: Record<string, string> = { '#h': view.hash };
  const values: Record<string, AttributeValue> = { ':h': { S: hashValue ?? pick(random, view.hashes) } };
  let condition = '#h = :h';
  if (view.range && view.ranges && chance(random, 0.6)) {
    const isNumber = 'N' in (view.ranges[0] ?? {});
    const operator = pick(random, isNumber ? OPERATORS.slice(0, -1) : OPERATORS);
    names['#r'] = view.range;
    const value = () => {
      const stored = pick(random, view.ranges ?? []);
      // Now and then a value between the stored ones, or a prefix of one.
      if (!isNumber && chance(random, 0.3))
        return { S: `${stored.S?.slice(0, between(random, 0, 3))}` || 'a' };
      return stored;
    };
    values[':r1'] = value();
    if (operator === 'BETWEEN') {
      values[':r2'] = value();
      condition += ' AND #r BETWEEN :r1 AND :r2';
    } else if (operator === 'begins_with') condition += ' AND begins_with(#r, :r1)';
    else condition += ` AND #r ${operator} :r1`;
  }
  const input: QueryCommandInput = {
    TableName: view.table,
    ...(view.index ? { IndexName: view.index } : {}),
    KeyConditionExpression: condition,
    ScanIndexForward: chance(random, 0.5),
    ...(chance(random, 0.7) ? { Limit: pick(random, LIMITS) } : {}),
  };
  const filter = random();
  if (filter < 0.15) {
    values[':f'] = { N: String(between(random, 0, 100)) };
    input.FilterExpression = 'v < :f';
  } else if (filter < 0.3) {
    names['#parent'] = 'parentPk';
    input.FilterExpression = 'attribute_exists(#parent)';
  }
  if (chance(random, 0.15)) {
    // A start key made up (as the audit log makes its markers), not one a page answered.
    const start: Item = { [view.hash]: values[':h'] as AttributeValue };
    if (view.range && view.ranges) start[view.range] = pick(random, view.ranges);
    for (const name of view.tableKey)
      start[name] ??=
        name === 'id' ? { S: pick(random, IDS) } : { S: pick(random, name === 'pk' ? PKS : SKS) };
    input.ExclusiveStartKey = start;
  }
  input.ExpressionAttributeNames = names;
  input.ExpressionAttributeValues = values;
  return input;
}

/** Every partition of every view, both directions, paged and whole. */
async function sweep(context: string, withTag: boolean): Promise<void> {
  for (const view of withTag ? [...views, byTag] : views) {
    for (const hashValue of view.hashes) {
      const whole: QueryCommandInput = {
        TableName: view.table,
        ...(view.index ? { IndexName: view.index } : {}),
        KeyConditionExpression: '#h = :h',
        ExpressionAttributeNames: { '#h': view.hash },
        ExpressionAttributeValues: { ':h': { S: hashValue } },
      };
      const what = `${context} ${view.index ?? view.table} ${hashValue}`;
      await sameQuery({ ...whole, ScanIndexForward: true, Limit: 4 }, what);
      await sameQuery({ ...whole, ScanIndexForward: false }, what);
    }
  }
}

// --- the writes -------------------------------------------------------------------------

/** One random write on both servers: its kind, and whether it succeeded (on both). */
async function randomWrite(random: Random, step: number): Promise<[string, boolean]> {
  const table = chance(random, 0.75) ? INV : FLAT;
  const roll = random();
  if (roll < 0.3) {
    const item = randomItem(random, table);
    const values: Record<string, AttributeValue> = {};
    const condition = randomCondition(random, values);
    const ok = await both(
      (db) =>
        db.send(
          new PutItemCommand({
            TableName: table,
            Item: item,
            ...(condition ? { ConditionExpression: condition, ExpressionAttributeValues: values } : {}),
          }),
        ),
      `step ${step} put`,
    );
    return ['put', ok];
  }
  if (roll < 0.6) {
    const update = randomUpdate(random, table);
    const ok = await both(
      (db) => db.send(new UpdateItemCommand({ TableName: table, ...update })),
      `step ${step} update`,
    );
    return ['update', ok];
  }
  if (roll < 0.72) {
    const conditional = chance(random, 0.5);
    const target = table === INV ? invKey(random) : flatKey(random);
    const ok = await both(
      (db) =>
        db.send(
          new DeleteItemCommand({
            TableName: table,
            Key: target,
            ...(conditional ? { ConditionExpression: 'attribute_exists(kindPk)' } : {}),
          }),
        ),
      `step ${step} delete`,
    );
    return ['delete', ok];
  }
  if (roll < 0.85) {
    const requests: WriteRequest[] = [];
    const seen = new Set<string>();
    for (let i = between(random, 1, 9); i > 0; i--) {
      const item = randomItem(random, table);
      const id = JSON.stringify(table === INV ? [item.pk, item.sk] : [item.id]);
      if (seen.has(id)) continue;
      seen.add(id);
      if (chance(random, 0.7)) requests.push({ PutRequest: { Item: item } });
      else
        requests.push({
          DeleteRequest: { Key: table === INV ? { pk: item.pk, sk: item.sk } : { id: item.id } } as {
            Key: Item;
          },
        });
    }
    const ok = await both(
      (db) => db.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } })),
      `step ${step} batch`,
    );
    return ['batch', ok];
  }
  const items: TransactWriteItem[] = [];
  const seen = new Set<string>();
  for (let i = between(random, 1, 5); i > 0; i--) {
    const where = chance(random, 0.75) ? INV : FLAT;
    const kind = random();
    let entry: TransactWriteItem;
    let target: Item;
    if (kind < 0.35) {
      const item = randomItem(random, where);
      target =
        where === INV
          ? { pk: item.pk as AttributeValue, sk: item.sk as AttributeValue }
          : { id: item.id as AttributeValue };
      entry = { Put: { TableName: where, Item: item } };
    } else if (kind < 0.75) {
      const update = randomUpdate(random, where);
      target = update.Key;
      entry = { Update: { TableName: where, ...update } };
    } else if (kind < 0.9) {
      target = where === INV ? invKey(random) : flatKey(random);
      entry = { Delete: { TableName: where, Key: target } };
    } else {
      target = where === INV ? invKey(random) : flatKey(random);
      entry = {
        ConditionCheck: { TableName: where, Key: target, ConditionExpression: 'attribute_exists(v)' },
      };
    }
    const id = `${where} ${JSON.stringify(target)}`;
    if (seen.has(id)) continue;
    seen.add(id);
    items.push(entry);
  }
  const ok = await both(
    (db) => db.send(new TransactWriteItemsCommand({ TransactItems: items })),
    `step ${step} transaction`,
  );
  return ['transaction', ok];
}

describe('local DynamoDB: the Query index answers as moto does', () => {
  it(`${OPERATIONS} seeded random writes, each followed by random queries; sweeps every view`, async () => {
    const random = seeded(SEED);
    attributePools(random);
    const done: Record<string, number> = {};
    let pages = 0;
    let withTag = false;
    for (let step = 0; step < OPERATIONS; step++) {
      const [kind, ok] = await randomWrite(random, step);
      const outcome = `${kind} ${ok ? 'done' : 'refused'}`;
      done[outcome] = (done[outcome] ?? 0) + 1;
      if (step === OPERATIONS / 2) {
        // A new index over the items already there; then the flat table starts over.
        await both((db) =>
          db.send(
            new UpdateTableCommand({
              TableName: INV,
              AttributeDefinitions: [S('tag'), S('sk')],
              GlobalSecondaryIndexUpdates: [
                { Create: { IndexName: 'byTag', KeySchema: key('tag', 'sk'), Projection: all } },
              ],
            }),
          ),
        );
        withTag = true;
        await both((db) => db.send(new DeleteTableCommand({ TableName: FLAT })));
        await both((db) => db.send(new CreateTableCommand(flatTable())));
      }
      const candidates = withTag ? [...views, byTag] : views;
      for (let i = 0; i < 2; i++) {
        const view = pick(random, candidates);
        pages += await sameQuery(randomQuery(random, view), `step ${step}`);
      }
      if (step % 60 === 59) await sweep(`sweep after step ${step}`, withTag);
    }
    // Every kind of write ran, refused conditional writes and cancelled transactions too,
    // and the queries did page.
    for (const kind of ['put', 'update', 'delete', 'batch', 'transaction'])
      expect(done[`${kind} done`], JSON.stringify(done)).toBeGreaterThan(5);
    for (const kind of ['put', 'update', 'delete', 'transaction'])
      expect(done[`${kind} refused`], JSON.stringify(done)).toBeGreaterThan(0);
    expect(pages).toBeGreaterThan(OPERATIONS * 2);
  }, 600_000);

  it('pages cut at 1 MB, in both directions, with and without a range condition', async () => {
    await both((db) =>
      db.send(
        new CreateTableCommand({
          TableName: BIG,
          BillingMode: 'PAY_PER_REQUEST',
          KeySchema: key('pk', 'sk'),
          AttributeDefinitions: ['pk', 'sk', 'g'].map(S),
          GlobalSecondaryIndexes: [{ IndexName: 'byG', KeySchema: key('g', 'sk'), Projection: all }],
        }),
      ),
    );
    // Eight items of 95 kB under "a", then a 300 kB one: moto ends a page where the next
    // item, matching or not, would take it over 1 MB.
    const items: Item[] = [];
    for (let i = 0; i < 8; i++)
      items.push({ pk: { S: 'big' }, sk: { S: `a${i}` }, g: { S: 'g' }, pad: { S: 'x'.repeat(95_000) } });
    items.push({ pk: { S: 'big' }, sk: { S: 'b0' }, g: { S: 'g' }, pad: { S: 'y'.repeat(300_000) } });
    for (let i = 0; i < 6; i++)
      items.push({ pk: { S: 'big' }, sk: { S: `c${i}` }, g: { S: 'g' }, pad: { S: 'z'.repeat(180_000) } });
    for (const item of items) await both((db) => db.send(new PutItemCommand({ TableName: BIG, Item: item })));
    const conditions: Array<[string, Record<string, AttributeValue>]> = [
      ['', {}],
      [' AND begins_with(sk, :p)', { ':p': { S: 'a' } }],
      [' AND sk < :p', { ':p': { S: 'b' } }],
      [' AND sk > :p', { ':p': { S: 'a7' } }],
      [' AND sk BETWEEN :p AND :q', { ':p': { S: 'a3' }, ':q': { S: 'c2' } }],
    ];
    for (const index of [undefined, 'byG']) {
      for (const [range, values] of conditions) {
        for (const forward of [true, false]) {
          for (const limit of [undefined, 3, 9]) {
            await sameQuery(
              {
                TableName: BIG,
                ...(index ? { IndexName: index } : {}),
                KeyConditionExpression: `${index ? 'g' : 'pk'} = :h${range}`,
                ExpressionAttributeValues: { ':h': { S: index ? 'g' : 'big' }, ...values },
                ScanIndexForward: forward,
                ...(limit ? { Limit: limit } : {}),
              },
              `1 MB ${index ?? 'table'}${range}`,
            );
          }
        }
      }
    }
  }, 300_000);
});
