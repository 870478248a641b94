/**
 * The shim's DynamoDB read path (local/moto_shim.py, "DynamoDB reads: each stored item's
 * JSON made once" and "DynamoDB requests: straight to moto's handler"; docs/performance.md)
 * answers exactly as moto as released does, byte for byte. The shim keeps each stored
 * item's JSON and size on the item, drops them on every write path that changes an item
 * in place, answers a Query without copying its items when nothing would change them,
 * and sends DynamoDB calls past Flask straight to moto's handler. This file replays one
 * seeded, randomized sequence of writes (PutItem, UpdateItem on nested paths, index keys,
 * sets and lists, conditional writes that fail, DeleteItem, BatchWriteItem, transactions
 * cancelled after an Update already changed an item, PartiQL updates) against the shim and
 * against a plain `moto_server` started here, and after each write reads the same small
 * pool of items again — GetItem (ProjectionExpression, AttributesToGet, ConsistentRead,
 * ReturnConsumedCapacity), BatchGetItem, Query (every index projection, Limit and start
 * keys, filters, Select COUNT) and Scan — and sends bad requests (a missing table, wrong
 * keys, bad projections, unused or empty ExpressionAttributeNames, ConsistentRead on a
 * GSI). Every answer is compared as raw HTTP: status, the error type header, and the body
 * byte for byte.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type MotoServer, startMoto } from '../../local/moto.ts';
import { between, type Random, seeded } from '../chaos/random.ts';

type Value = Record<string, unknown>;
type Item = Record<string, Value>;

const suffix = Math.random().toString(36).slice(2, 8);
const NODES = `reads-nodes-${suffix}`;
const FLAT = `reads-flat-${suffix}`;
const MISSING = `reads-missing-${suffix}`;

const SEED = 20_261_206;
const OPERATIONS = 200;

let plain: MotoServer | undefined;
let shimEndpoint: string;

interface Answer {
  readonly status: number;
  readonly errorType: string | null;
  readonly body: string;
}

async function call(endpoint: string, operation: string, body: unknown): Promise<Answer> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.0',
      'X-Amz-Target': `DynamoDB_20120810.${operation}`,
      'X-Amz-Date': '20260101T000000Z',
      Authorization:
        'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    errorType: response.headers.get('x-amzn-errortype'),
    body: await response.text(),
  };
}

const counts: Record<string, number> = {};

/**
 * Sends one request to both servers at once (two processes, each with its own store: neither
 * answer depends on the other); their answers must be the same bytes. Each server still
 * gets the requests one at a time, in the sequence's order.
 */
async function same(operation: string, body: unknown, what: string): Promise<Answer> {
  const [reference, answer] = await Promise.all([
    call((plain as MotoServer).endpoint, operation, body),
    call(shimEndpoint, operation, body),
  ]);
  expect(answer, `${what}: ${operation} ${JSON.stringify(body).slice(0, 600)}`).toEqual(reference);
  const outcome = `${operation} ${reference.status === 200 ? 'ok' : 'error'}`;
  counts[outcome] = (counts[outcome] ?? 0) + 1;
  return reference;
}

const keySchema = (hash: string, range?: string) => [
  { AttributeName: hash, KeyType: 'HASH' },
  ...(range ? [{ AttributeName: range, KeyType: 'RANGE' }] : []),
];
const S = (name: string) => ({ AttributeName: name, AttributeType: 'S' });

beforeAll(async () => {
  shimEndpoint = inject('awsEndpoint');
  plain = await startMoto({ plain: true, readyTimeoutMs: 60_000 });
  for (const endpoint of [shimEndpoint, plain.endpoint]) {
    const nodes = await call(endpoint, 'CreateTable', {
      TableName: NODES,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: keySchema('pk', 'sk'),
      AttributeDefinitions: ['pk', 'sk', 'kindPk', 'listSk', 'statePk', 'ownerPk', 'nameSk'].map(S),
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byKind',
          KeySchema: keySchema('kindPk', 'listSk'),
          Projection: { ProjectionType: 'ALL' },
        },
        {
          IndexName: 'byState',
          KeySchema: keySchema('statePk'),
          Projection: { ProjectionType: 'KEYS_ONLY' },
        },
        {
          IndexName: 'byOwner',
          KeySchema: keySchema('ownerPk', 'listSk'),
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['version', 'data'] },
        },
      ],
      LocalSecondaryIndexes: [
        { IndexName: 'byName', KeySchema: keySchema('pk', 'nameSk'), Projection: { ProjectionType: 'ALL' } },
      ],
    });
    expect(nodes.status, nodes.body).toBe(200);
    const flat = await call(endpoint, 'CreateTable', {
      TableName: FLAT,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: keySchema('id'),
      AttributeDefinitions: [S('id')],
    });
    expect(flat.status, flat.body).toBe(200);
  }
}, 90_000);

afterAll(async () => {
  await plain?.stop();
});

// --- items: node-like, nested; a few keys, so that every item is read again and again ----

const PKS = ['node#1', 'node#2', 'node#3', 'node#4'];
const SKS = ['item', 'port#1', 'port#2', 'trait#a', 'trait#b'];
const IDS = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5'];
const KINDS = ['node', 'port'];
const STATES = ['enroll', 'manageable', 'available', 'active'];
const OWNERS = ['alice', 'bob'];

const pick = <T>(random: Random, values: readonly T[]): T => values[between(random, 0, values.length)] as T;
const chance = (random: Random, p: number) => random() < p;

function nodeKey(random: Random): Item {
  return { pk: { S: pick(random, PKS) }, sk: { S: pick(random, SKS) } };
}

function flatKey(random: Random): Item {
  return { id: { S: pick(random, IDS) } };
}

function data(random: Random): Value {
  return {
    M: {
      uuid: { S: `u-${between(random, 0, 1000)}` },
      provision_state: { S: pick(random, STATES) },
      power_state: chance(random, 0.5) ? { NULL: true } : { S: 'power on' },
      maintenance: { BOOL: chance(random, 0.3) },
      props: {
        M: { cpus: { N: String(between(random, 1, 64)) }, memory_mb: { N: '16384' }, arch: { S: 'x86_64' } },
      },
      extra: { M: chance(random, 0.5) ? {} : { note: { S: 'ünïcødé ✓ "quoted" \\ back' } } },
      traits: { L: [{ S: 'CUSTOM_A' }, { N: '1.50' }, { L: [{ BOOL: false }] }] },
    },
  };
}

function randomItem(random: Random, table: string): Item {
  const item: Item = {
    ...(table === NODES ? nodeKey(random) : flatKey(random)),
    version: { N: String(between(random, 0, 20)) },
    data: data(random),
    pad: { S: 'x'.repeat(between(random, 0, 400)) },
  };
  if (table === NODES) {
    if (chance(random, 0.8)) item.kindPk = { S: pick(random, KINDS) };
    if (chance(random, 0.8))
      item.listSk = { S: `2026-12-0${between(random, 1, 9)}#${between(random, 0, 9)}` };
    if (chance(random, 0.6)) item.statePk = { S: pick(random, STATES) };
    if (chance(random, 0.6)) item.ownerPk = { S: pick(random, OWNERS) };
    if (chance(random, 0.6)) item.nameSk = { S: `name-${between(random, 0, 5)}` };
  }
  if (chance(random, 0.4)) item.tags = { SS: ['a', 'b', pick(random, ['c', 'd'])] };
  if (chance(random, 0.2)) item.nums = { NS: ['1', '2.5', String(between(random, 3, 9))] };
  // Binary values: moto's own serializer writes these answers (not the cached JSON).
  if (chance(random, 0.1)) item.blob = { B: 'AAECAwQ=' };
  if (chance(random, 0.05)) item.blobs = { BS: ['AAE=', 'AAI='] };
  return item;
}

// --- writes --------------------------------------------------------------------------------

const UPDATES: Array<[string, (random: Random) => Record<string, Value>]> = [
  [
    'SET #v = #v + :one, #d.#p.#c = :n',
    (r) => ({ ':one': { N: '1' }, ':n': { N: String(between(r, 1, 99)) } }),
  ],
  ['SET #d.provision_state = :s, statePk = :s', (r) => ({ ':s': { S: pick(r, STATES) } })],
  [
    'SET kindPk = :k, listSk = :l',
    (r) => ({ ':k': { S: pick(r, KINDS) }, ':l': { S: `2026-12-0${between(r, 1, 9)}` } }),
  ],
  ['REMOVE ownerPk, #d.extra.note', () => ({})],
  ['SET #d.traits = list_append(#d.traits, :t)', () => ({ ':t': { L: [{ S: 'CUSTOM_Z' }] } })],
  ['ADD tags :tags', (r) => ({ ':tags': { SS: [pick(r, ['x', 'y', 'z'])] } })],
  ['SET pad = :p REMOVE blob', (r) => ({ ':p': { S: 'y'.repeat(between(r, 0, 200)) } })],
  ['SET #d.props = :m', () => ({ ':m': { M: { cpus: { N: '2' } } } })],
];
const UPDATE_NAMES: Record<string, Record<string, string>> = {
  '#v': { '#v': 'version' },
  '#d': { '#d': 'data' },
  '#p': { '#p': 'props' },
  '#c': { '#c': 'cpus' },
};

function namesFor(expression: string): Record<string, string> {
  const names: Record<string, string> = {};
  for (const [placeholder, entry] of Object.entries(UPDATE_NAMES))
    if (expression.includes(placeholder)) Object.assign(names, entry);
  return names;
}

function randomUpdate(random: Random, table: string) {
  const [expression, values] = pick(random, UPDATES);
  const names = namesFor(expression);
  const key = table === NODES ? nodeKey(random) : flatKey(random);
  const attributeValues = values(random);
  let condition: string | undefined;
  if (chance(random, 0.3)) {
    condition = chance(random, 0.5) ? 'attribute_exists(version)' : '#v < :max';
    if (condition.includes('#v')) {
      names['#v'] = 'version';
      attributeValues[':max'] = { N: String(between(random, 0, 15)) };
    }
  }
  return {
    TableName: table,
    Key: key,
    UpdateExpression: expression,
    ...(Object.keys(names).length ? { ExpressionAttributeNames: names } : {}),
    ...(Object.keys(attributeValues).length ? { ExpressionAttributeValues: attributeValues } : {}),
    ...(condition ? { ConditionExpression: condition } : {}),
    ReturnValues: pick(random, ['NONE', 'ALL_NEW', 'ALL_OLD', 'UPDATED_NEW']),
  };
}

async function randomWrite(random: Random, step: number): Promise<void> {
  const table = chance(random, 0.8) ? NODES : FLAT;
  const what = `step ${step}`;
  const roll = random();
  if (roll < 0.25) {
    const item = randomItem(random, table);
    const conditional = chance(random, 0.25);
    await same(
      'PutItem',
      {
        TableName: table,
        Item: item,
        ...(conditional ? { ConditionExpression: 'attribute_not_exists(version)' } : {}),
        ReturnValues: chance(random, 0.5) ? 'ALL_OLD' : 'NONE',
      },
      what,
    );
  } else if (roll < 0.6) {
    await same('UpdateItem', randomUpdate(random, table), what);
  } else if (roll < 0.68) {
    await same(
      'DeleteItem',
      { TableName: table, Key: table === NODES ? nodeKey(random) : flatKey(random), ReturnValues: 'ALL_OLD' },
      what,
    );
  } else if (roll < 0.78) {
    const requests: unknown[] = [];
    const seen = new Set<string>();
    for (let i = between(random, 1, 6); i > 0; i--) {
      const item = randomItem(random, table);
      const key = table === NODES ? { pk: item.pk, sk: item.sk } : { id: item.id };
      if (seen.has(JSON.stringify(key))) continue;
      seen.add(JSON.stringify(key));
      requests.push(chance(random, 0.75) ? { PutRequest: { Item: item } } : { DeleteRequest: { Key: key } });
    }
    await same('BatchWriteItem', { RequestItems: { [table]: requests } }, what);
  } else if (roll < 0.95) {
    // An Update first (it changes the stored item in place), then what may cancel it all.
    const update = randomUpdate(random, NODES);
    const { ReturnValues: _, ...updateOp } = update;
    const other = randomItem(random, FLAT);
    const items: unknown[] = [{ Update: updateOp }, { Put: { TableName: FLAT, Item: other } }];
    const checked = nodeKey(random);
    if (JSON.stringify(checked) !== JSON.stringify(update.Key))
      items.push({
        ConditionCheck: {
          TableName: NODES,
          Key: checked,
          ConditionExpression: chance(random, 0.5)
            ? 'attribute_exists(version)'
            : 'attribute_not_exists(version)',
        },
      });
    await same('TransactWriteItems', { TransactItems: items }, what);
  } else {
    const key = nodeKey(random);
    await same(
      'ExecuteStatement',
      {
        Statement: `UPDATE "${NODES}" SET pad = 'partiql-${step}' WHERE pk = '${key.pk?.S}' AND sk = '${key.sk?.S}'`,
      },
      what,
    );
  }
}

// --- reads -----------------------------------------------------------------------------------

const PROJECTIONS: Array<[string, Record<string, string> | undefined]> = [
  ['pk, version, #d.props.cpus', { '#d': 'data' }],
  ['#d.traits[0], tags, blob', { '#d': 'data' }],
  ['nothing_here', undefined],
  ['#d.#p', { '#d': 'data', '#p': 'props' }],
  ['pk, data..x', undefined], // invalid
  ['#unused_name, pk', { '#unused_name': 'x' }], // an undefined placeholder
];

function projection(random: Random): Record<string, unknown> {
  if (chance(random, 0.6)) return {};
  const [expression, names] = pick(random, PROJECTIONS);
  return { ProjectionExpression: expression, ...(names ? { ExpressionAttributeNames: names } : {}) };
}

function capacity(random: Random): Record<string, unknown> {
  const roll = random();
  if (roll < 0.8) return {};
  return { ReturnConsumedCapacity: roll < 0.88 ? 'TOTAL' : roll < 0.96 ? 'INDEXES' : 'EVERYTHING' };
}

async function randomGet(random: Random, what: string): Promise<void> {
  const table = chance(random, 0.8) ? NODES : FLAT;
  await same(
    'GetItem',
    {
      TableName: table,
      Key: table === NODES ? nodeKey(random) : flatKey(random),
      ...(chance(random, 0.5) ? { ConsistentRead: chance(random, 0.5) } : {}),
      ...projection(random),
      ...capacity(random),
    },
    what,
  );
}

async function randomBatchGet(random: Random, what: string): Promise<void> {
  const nodes = new Map<string, Item>();
  for (let i = between(random, 1, 6); i > 0; i--) {
    const key = nodeKey(random);
    nodes.set(JSON.stringify(key), key);
  }
  const flat = new Map<string, Item>();
  for (let i = between(random, 0, 3); i > 0; i--) {
    const key = flatKey(random);
    flat.set(JSON.stringify(key), key);
  }
  await same(
    'BatchGetItem',
    {
      RequestItems: {
        [NODES]: { Keys: [...nodes.values()], ...projection(random) },
        ...(flat.size ? { [FLAT]: { Keys: [...flat.values()], ConsistentRead: true } } : {}),
      },
    },
    what,
  );
}

async function randomQuery(random: Random, what: string): Promise<void> {
  const view = pick(random, ['table', 'byKind', 'byState', 'byOwner', 'byName']);
  const body: Record<string, unknown> = { TableName: NODES };
  if (view === 'table' || view === 'byName') {
    body.KeyConditionExpression = 'pk = :h';
    body.ExpressionAttributeValues = { ':h': { S: pick(random, PKS) } };
  } else {
    const attribute = { byKind: 'kindPk', byState: 'statePk', byOwner: 'ownerPk' }[view] as string;
    const value = { byKind: KINDS, byState: STATES, byOwner: OWNERS }[view] as string[];
    body.KeyConditionExpression = `${attribute} = :h`;
    body.ExpressionAttributeValues = { ':h': { S: pick(random, value) } };
  }
  if (view !== 'table') body.IndexName = view;
  if (chance(random, 0.5)) body.ScanIndexForward = chance(random, 0.5);
  if (chance(random, 0.5)) body.Limit = between(random, 1, 6);
  if (chance(random, 0.15)) {
    body.FilterExpression = 'version > :min';
    (body.ExpressionAttributeValues as Record<string, Value>)[':min'] = { N: '5' };
  }
  if (chance(random, 0.1)) body.Select = 'COUNT';
  if (chance(random, 0.1)) body.ConsistentRead = true; // refused on a GSI
  if (chance(random, 0.15)) {
    body.ProjectionExpression = 'pk, sk, version';
    if (body.Select === 'COUNT') delete body.Select;
  }
  Object.assign(body, capacity(random));
  // Every page to the end (at most a few): the start keys go back in as they came.
  for (let page = 0; page < 8; page++) {
    const answer = await same('Query', body, `${what} page ${page}`);
    if (answer.status !== 200) return;
    const last = (JSON.parse(answer.body) as { LastEvaluatedKey?: unknown }).LastEvaluatedKey;
    if (!last) return;
    body.ExclusiveStartKey = last;
  }
}

async function randomScan(random: Random, what: string): Promise<void> {
  const body: Record<string, unknown> = { TableName: chance(random, 0.7) ? NODES : FLAT };
  if (body.TableName === NODES && chance(random, 0.3)) body.IndexName = pick(random, ['byKind', 'byState']);
  if (chance(random, 0.5)) body.Limit = between(random, 1, 8);
  if (chance(random, 0.2)) {
    body.FilterExpression = 'attribute_exists(tags)';
  }
  Object.assign(body, projection(random));
  await same('Scan', body, what);
}

/** Requests moto refuses: the shim must refuse them with the same status and body. */
async function badReads(random: Random, what: string): Promise<void> {
  const key = nodeKey(random);
  const bad: Array<[string, unknown]> = [
    ['GetItem', { TableName: MISSING, Key: key }],
    ['GetItem', { TableName: NODES, Key: { pk: key.pk } }], // no sort key
    ['GetItem', { TableName: NODES, Key: { ...key, extra: { S: 'x' } } }],
    ['GetItem', { TableName: NODES, Key: { pk: { N: '1' }, sk: key.sk } }], // wrong type
    ['GetItem', { TableName: NODES, Key: { pk: { S: '' }, sk: key.sk } }],
    ['GetItem', { TableName: NODES, Key: key, ExpressionAttributeNames: { '#a': 'a' } }], // without expression
    ['GetItem', { TableName: NODES, Key: key, ProjectionExpression: 'pk', ExpressionAttributeNames: {} }],
    ['GetItem', { TableName: NODES, Key: key, ProjectionExpression: 'pk', AttributesToGet: ['pk'] }],
    [
      'GetItem',
      { TableName: NODES, Key: key, ProjectionExpression: 'pk', ExpressionAttributeNames: { '#x': 'x' } },
    ],
    ['GetItem', { TableName: NODES, Key: key, AttributesToGet: ['version', 'data'] }],
    ['GetItem', { TableName: NODES, Key: key, ReturnConsumedCapacity: 'SOMETIMES' }],
    ['BatchGetItem', { RequestItems: { [MISSING]: { Keys: [key] } } }],
    [
      'Query',
      { TableName: MISSING, KeyConditionExpression: 'pk = :h', ExpressionAttributeValues: { ':h': key.pk } },
    ],
    [
      'Query',
      {
        TableName: NODES,
        IndexName: 'byKind',
        ConsistentRead: true,
        KeyConditionExpression: 'kindPk = :h',
        ExpressionAttributeValues: { ':h': { S: 'node' } },
      },
    ],
    [
      'Query',
      {
        TableName: NODES,
        IndexName: 'noSuchIndex',
        KeyConditionExpression: 'kindPk = :h',
        ExpressionAttributeValues: { ':h': { S: 'node' } },
      },
    ],
    [
      'Query',
      {
        TableName: NODES,
        KeyConditionExpression: 'pk = :h',
        ExpressionAttributeValues: { ':h': key.pk },
        ExpressionAttributeNames: { '#unused': 'x' },
      },
    ],
    ['Scan', { TableName: MISSING }],
    ['Scan', { TableName: NODES, IndexName: 'noSuchIndex' }],
  ];
  const [operation, body] = pick(random, bad);
  await same(operation, body, `${what} (bad request)`);
}

describe('local DynamoDB: reads answer as moto does, byte for byte', () => {
  it(`${OPERATIONS} seeded random writes, each followed by reads of the same few items`, async () => {
    const random = seeded(SEED);
    for (let step = 0; step < OPERATIONS; step++) {
      await randomWrite(random, step);
      const what = `after step ${step}`;
      // The same items read twice: the second answer comes from the cached JSON.
      for (let i = 0; i < 2; i++) {
        const again = seeded(SEED + step);
        await randomGet(again, what);
        await randomGet(again, what);
        await randomQuery(again, what);
      }
      await randomBatchGet(random, what);
      if (step % 3 === 0) await randomScan(random, what);
      if (step % 2 === 0) await badReads(random, what);
    }
    // Every kind of answer was seen, refusals included.
    for (const outcome of [
      'GetItem ok',
      'GetItem error',
      'Query ok',
      'Query error',
      'BatchGetItem ok',
      'Scan ok',
      'UpdateItem ok',
      'UpdateItem error',
      'TransactWriteItems ok',
      'TransactWriteItems error',
    ])
      expect(counts[outcome] ?? 0, JSON.stringify(counts)).toBeGreaterThan(2);
  }, 600_000);
});
