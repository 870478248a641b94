/**
 * The AWS adapters' contract, run on every emulator engine the run has: moto always, and
 * (test/support/engines.ts, the suite's global setup) also ElasticMQ (SQS) and dynalite (DynamoDB), which
 * share no code with moto (docs/local-aws-engines.md). A behaviour the adapters rely on
 * that holds on one engine only is an emulator's bug or a gap in our assumptions: this is
 * where it shows.
 *
 * - DynamoDB: CommandRepository's conditional transitions, the sparse byOpen index and
 *   byNode paging; InventoryStore's conditional writes, transactions and index queries.
 * - SQS FIFO through CommandQueue: order per group, a group held while in flight,
 *   deduplication, visibility (redelivery with a higher attempt), DeleteMessage with the
 *   latest receipt, and the redrive to the dead-letter queue after 10 receives.
 *
 * dynalite has no TransactWriteItems and no UpdateTimeToLive: on it the transaction case
 * is replaced by one asserting the refusal (so a dynalite that learns transactions shows
 * up), and its tables are made with `createTableInput` (what bootstrap sends).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { CreateTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import {
  ChangeMessageVisibilityCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  commandsDeadLetterQueue,
  commandsTable,
  connectionsTable,
  inventoryTable,
  queueName,
  tableName,
} from '../../infra/resources.ts';
import { type ChannelLogger, CommandQueue } from '../../lambda/adapters/command-queue.ts';
import { ConnectionNotifier } from '../../lambda/adapters/connection-notifier.ts';
import { CommandRepository, OPEN_SHARDS } from '../../lambda/adapters/dynamo/command-repository.ts';
import { ConnectionRepository } from '../../lambda/adapters/dynamo/connection-repository.ts';
import { InventoryStore, type ItemWrite } from '../../lambda/adapters/dynamo/inventory-store.ts';
import { SiteRepository } from '../../lambda/adapters/dynamo/site-repository.ts';
import { type CommandRecord, createCommand } from '../../lambda/domain/commands/command.ts';
import { DomainError } from '../../lambda/domain/errors.ts';
import { bootstrapResources, createTableInput } from '../../local/bootstrap.ts';
import { emulatorEnvironment } from '../../local/moto.ts';

interface DynamoEngine {
  readonly name: string;
  readonly endpoint: string;
  /** TransactWriteItems (InventoryStore's multi-item writes). */
  readonly transactions: boolean;
}

const motoEndpoint = inject('awsEndpoint');
const engines = inject('engines');
for (const [service, reason] of Object.entries(engines?.missing ?? {}))
  console.warn(`engines-adapters: no second ${service} engine: ${reason}`);

const dynamoEngines: DynamoEngine[] = [
  { name: 'moto', endpoint: motoEndpoint, transactions: true },
  ...(engines?.dynamodb
    ? [
        {
          name: `${engines.dynamodb.name} ${engines.dynamodb.version}`,
          endpoint: engines.dynamodb.endpoint,
          transactions: false,
        },
      ]
    : []),
];
const sqsEngines = [
  { name: 'moto', endpoint: motoEndpoint },
  ...(engines?.sqs
    ? [{ name: `${engines.sqs.name} ${engines.sqs.version}`, endpoint: engines.sqs.endpoint }]
    : []),
];

const silent: ChannelLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const unique = () => randomBytes(4).toString('hex');

/** Tables on one engine, made as bootstrap makes them (without TTL: dynalite lacks it). */
async function tablesOn(endpoint: string, prefix: string): Promise<DynamoDBDocumentClient> {
  const client = new DynamoDBClient({ ...clientBase, endpoint });
  await Promise.all(
    [inventoryTable, commandsTable].map(async (table) => {
      const name = tableName(prefix, table);
      await client.send(new CreateTableCommand(createTableInput(name, table)));
      await waitUntilTableExists({ client, maxWaitTime: 30, minDelay: 1 }, { TableName: name });
    }),
  );
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

const clientBase = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
};

function command(node: string, site: string, deadlineSeconds: number, now = new Date()): CommandRecord {
  return createCommand({ id: randomUUID(), node, site, action: 'noop', deadlineSeconds }, now);
}

describe.each(dynamoEngines)('DynamoDB adapters on $name', (engine) => {
  const prefix = `e-${unique()}`;
  let db: DynamoDBDocumentClient;
  let commands: CommandRepository;
  let store: InventoryStore;

  beforeAll(async () => {
    db = await tablesOn(engine.endpoint, prefix);
    commands = new CommandRepository(db, tableName(prefix, commandsTable));
    store = new InventoryStore(db, tableName(prefix, inventoryTable));
  });
  afterAll(() => db?.destroy());

  describe('CommandRepository', () => {
    it('creates once: a second create of the same id fails its condition', async () => {
      const record = command('n-create', 's1', 60);
      await commands.create(record);
      await expect(commands.create(record)).rejects.toMatchObject({
        name: 'ConditionalCheckFailedException',
      });
      expect((await commands.get(record.id))?.command).toMatchObject({ id: record.id, status: 'queued' });
    });

    it('transitions only from a legal state, only for its own site, answering the new record', async () => {
      const record = command('n-move', 's1', 60);
      await commands.create(record);
      const at = new Date().toISOString();
      expect(
        await commands.transition(record.id, 'delivered', at, { attempts: 1, receipt: 'r1' }, 'other'),
      ).toBeUndefined();
      const delivered = await commands.transitionStored(
        record.id,
        'delivered',
        at,
        { attempts: 1, receipt: 'r1' },
        's1',
      );
      expect(delivered).toMatchObject({
        command: { status: 'delivered', attempts: 1, updated_at: at },
        receipt: 'r1',
      });
      expect(await commands.transition(record.id, 'running', at, {}, 's1')).toMatchObject({
        status: 'running',
      });
      const done = await commands.transition(record.id, 'succeeded', at, {
        result: { ok: true },
        finished_at: at,
      });
      expect(done).toMatchObject({ status: 'succeeded', result: { ok: true } });
      // Finished never changes again: every later transition fails its condition.
      expect(await commands.transition(record.id, 'failed', at, { error: 'late' })).toBeUndefined();
      expect(await commands.transition(record.id, 'expired', at)).toBeUndefined();
      expect(await commands.transition(randomUUID(), 'delivered', at)).toBeUndefined();
      expect((await commands.get(record.id))?.command).toMatchObject({ status: 'succeeded', error: null });
    });

    it('byOpen: the overdue open commands of every shard, not the settled, until settle removes them', async () => {
      const node = `n-open-${unique()}`;
      const past = new Date(Date.now() - 3600_000);
      // Enough commands that every shard has some (the shard is a hash of the id).
      const overdue = Array.from({ length: 4 * OPEN_SHARDS }, () => command(node, 's1', 1, past));
      const current = command(node, 's1', 3600);
      for (const record of [...overdue, current]) await commands.create(record);
      const now = new Date().toISOString();
      const mine = async () =>
        (await commands.overdue(now, 100))
          .filter(({ command }) => command.node === node)
          .map(({ command }) => command.id);
      expect((await mine()).sort()).toStrictEqual(overdue.map((record) => record.id).sort());

      const [settled, rechecked, open] = overdue as [CommandRecord, CommandRecord, CommandRecord];
      // Finished without a recheck time: out of the sparse index at once.
      await commands.transition(settled.id, 'expired', now, { error: 'late', finished_at: now });
      // Finished with a recheck time (the conductor has not acted yet): still there, later.
      const later = new Date(Date.now() + 60_000).toISOString();
      await commands.transitionStored(
        rechecked.id,
        'failed',
        now,
        { error: 'x', finished_at: now },
        undefined,
        later,
      );
      // settle leaves an open command in the index (the tick must still find it).
      await commands.settle(open.id);
      const after = await mine();
      expect(after).not.toContain(settled.id);
      expect(after).not.toContain(rechecked.id);
      expect(after).toContain(open.id);
      expect(
        (await commands.overdue(new Date(Date.now() + 120_000).toISOString(), 100)).map((c) => c.command.id),
      ).toContain(rechecked.id);
      await commands.settle(rechecked.id);
      expect(
        (await commands.overdue(new Date(Date.now() + 120_000).toISOString(), 100)).map((c) => c.command.id),
      ).not.toContain(rechecked.id);
    });

    it('byNode: a node’s commands newest first, a page at a time', async () => {
      const node = `n-list-${unique()}`;
      const base = Date.now();
      const records = Array.from({ length: 5 }, (_, i) => command(node, 's1', 60, new Date(base + i * 1000)));
      for (const record of records) await commands.create(record);
      const first = await commands.ofNode(node, 3);
      expect(first.commands.map((c) => c.id)).toStrictEqual(
        records
          .slice(2)
          .reverse()
          .map((r) => r.id),
      );
      expect(first.more).toBe(true);
      const last = first.commands.at(-1) as CommandRecord;
      const second = await commands.ofNode(node, 3, `${last.created_at}#${last.id}`);
      expect(second.commands.map((c) => c.id)).toStrictEqual(
        records
          .slice(0, 2)
          .reverse()
          .map((r) => r.id),
      );
    });
  });

  describe('InventoryStore', () => {
    const kind = 'thing';
    // Each test lists its own partition of the byKind index.
    const write = (id: string, doc: Record<string, unknown>, n = 0, partition = 'w'): ItemWrite<unknown> => ({
      kind,
      id,
      doc,
      listSk: `2024-01-01T00:00:${String(n).padStart(2, '0')}#${id}`,
      indexes: { kindPk: `${kind}-${partition}`, nameSk: String(doc.name ?? id) },
    });
    const conflict = new DomainError('conflict', 'conflict');

    it('a single create and a versioned replace are conditional writes', async () => {
      const id = unique();
      await store.write([{ type: 'create', item: write(id, { name: 'a' }), onConflict: conflict }]);
      await expect(
        store.write([{ type: 'create', item: write(id, { name: 'b' }), onConflict: conflict }]),
      ).rejects.toBe(conflict);
      await store.write([
        { type: 'replace', item: write(id, { name: 'c' }), expectedVersion: 1, onConflict: conflict },
      ]);
      await expect(
        store.write([
          { type: 'replace', item: write(id, { name: 'd' }), expectedVersion: 1, onConflict: conflict },
        ]),
      ).rejects.toBe(conflict);
      expect(await store.get(kind, id)).toMatchObject({ version: 2, doc: { name: 'c' } });
      await expect(
        store.write([{ type: 'delete', kind, id, expectedVersion: 1, onConflict: conflict }]),
      ).rejects.toBe(conflict);
      await store.write([{ type: 'delete', kind, id, expectedVersion: 2, onConflict: conflict }]);
      expect(await store.get(kind, id)).toBeUndefined();
    });

    it('getMany reads several items in one request, in the order asked, the missing as undefined', async () => {
      const [a, b] = [unique(), unique()];
      await store.write([{ type: 'create', item: write(a, { name: 'a' }), onConflict: conflict }]);
      await store.write([{ type: 'create', item: write(b, { name: 'b' }), onConflict: conflict }]);
      await store.write([
        { type: 'replace', item: write(b, { name: 'b2' }), expectedVersion: 1, onConflict: conflict },
      ]);
      const found = await store.getMany([
        { kind, id: b },
        { kind, id: unique() },
        { kind, id: a },
      ]);
      expect(found).toEqual([await store.get(kind, b), undefined, await store.get(kind, a)]);
      expect(found.map((item) => item?.version)).toEqual([2, undefined, 1]);
      expect(await store.getMany([])).toEqual([]);
    });

    // An engine without transactions (dynalite) gets the second case instead: nothing skipped.
    if (engine.transactions) {
      it('a transaction is all or nothing: a taken name leaves no item behind', async () => {
        const [a, b] = [unique(), unique()];
        const taken = new DomainError('conflict', 'name taken');
        const claim = (owner: string) =>
          ({
            type: 'claim',
            scope: 'thing-name',
            value: `n-${a}`,
            ownerId: owner,
            onConflict: taken,
          }) as const;
        await store.write([{ type: 'create', item: write(a, { name: a }), onConflict: conflict }, claim(a)]);
        await expect(
          store.write([{ type: 'create', item: write(b, { name: b }), onConflict: conflict }, claim(b)]),
        ).rejects.toBe(taken);
        expect(await store.get(kind, b)).toBeUndefined();
        expect(await store.lookupUnique('thing-name', `n-${a}`)).toBe(a);
        // Claiming again a value one owns is a no-op; an existence check guards the write.
        await store.write([claim(a), { type: 'exists', kind, id: a, onConflict: conflict }]);
        await expect(
          store.write([claim(a), { type: 'exists', kind, id: unique(), onConflict: taken }]),
        ).rejects.toBe(taken);
      });

      it("a command's record joins a transaction: written with it, or not at all", async () => {
        const [a, b] = [unique(), unique()];
        const duplicate = new DomainError('conflict', 'command recorded twice');
        const first = command(`n-${a}`, 's1', 60);
        await store.write([
          { type: 'create', item: write(a, { name: a }), onConflict: conflict },
          commands.createOp(first, duplicate),
        ]);
        expect((await commands.get(first.id))?.command).toEqual(first);
        // The node's write refused: the record is not written either.
        const second = command(`n-${a}`, 's1', 60);
        await expect(
          store.write([
            { type: 'replace', item: write(a, { name: a }), expectedVersion: 9, onConflict: conflict },
            commands.createOp(second, duplicate),
          ]),
        ).rejects.toBe(conflict);
        expect(await commands.get(second.id)).toBeUndefined();
        // The record's id taken: its own error, and the other write is not applied.
        await expect(
          store.write([
            { type: 'create', item: write(b, { name: b }), onConflict: conflict },
            commands.createOp(first, duplicate),
          ]),
        ).rejects.toBe(duplicate);
        expect(await store.get(kind, b)).toBeUndefined();
        // In the tick's index as `create` puts it.
        const overdue = await commands.overdue(new Date(Date.now() + 3_600_000).toISOString(), 1000);
        expect(overdue.map(({ command }) => command.id)).toContain(first.id);
      });
    } else {
      it('an engine without transactions refuses a multi-record write, and nothing is written', async () => {
        const a = unique();
        const refused = await store
          .write([
            { type: 'create', item: write(a, { name: a }), onConflict: conflict },
            { type: 'claim', scope: 'thing-name', value: `n-${a}`, ownerId: a, onConflict: conflict },
          ])
          .then(
            () => undefined,
            (error: Error) => error,
          );
        expect(refused?.name).toMatch(/UnknownOperation/);
        expect(await store.get(kind, a)).toBeUndefined();
      });
    }

    it('index queries page in sort order, both ways, with filters on nested and null attributes', async () => {
      const ids = Array.from({ length: 7 }, (_, i) => `q${i}-${unique()}`);
      for (const [i, id] of ids.entries()) {
        const doc = { name: id, maintenance: i % 2 === 0, owner: i % 3 === 0 ? null : 'p1' };
        await store.write([{ type: 'create', item: write(id, doc, i, 'q'), onConflict: conflict }]);
      }
      const base = {
        index: 'byKind',
        partitionAttribute: 'kindPk',
        partitionValue: `${kind}-q`,
        sortAttribute: 'listSk',
      } as const;
      const q = ids.map((id, i) => write(id, {}, i).listSk);
      const page1 = await store.query({ ...base, limit: 3 });
      expect(page1.items.map((item) => item.id)).toStrictEqual(ids.slice(0, 3));
      expect(page1.more).toBe(true);
      const page3 = await store.query({ ...base, limit: 3, after: q[5] });
      expect(page3).toMatchObject({ items: [{ id: ids[6] }], more: false });
      const down = await store.query({ ...base, limit: 2, after: q[3], descending: true });
      expect(down.items.map((item) => item.id)).toStrictEqual([ids[2], ids[1]]);
      const inMaintenance = await store.query({
        ...base,
        limit: 10,
        filters: [{ path: ['doc', 'maintenance'], op: '=', value: true }],
      });
      expect(inMaintenance.items.map((item) => item.id)).toStrictEqual([ids[0], ids[2], ids[4], ids[6]]);
      const unowned = await store.query({
        ...base,
        limit: 10,
        filters: [{ path: ['doc', 'owner'], op: '=', value: null }],
      });
      expect(unowned.items.map((item) => item.id)).toStrictEqual([ids[0], ids[3], ids[6]]);
      const owned = await store.query({
        ...base,
        limit: 10,
        filters: [{ path: ['doc', 'owner'], op: '<>', value: null }],
      });
      expect(owned.items).toHaveLength(4);
    });
  });
});

describe.each(sqsEngines)('CommandQueue over SQS FIFO on $name (DynamoDB on moto)', (engine) => {
  const prefix = `e-${unique()}`;
  const site = 'fifo';
  let sqs: SQSClient;
  let db: DynamoDBDocumentClient;
  let queue: CommandQueue;
  let queueUrl: string;
  let commands: CommandRepository;
  const saved = { ...process.env };

  beforeAll(async () => {
    // bootstrap reads the endpoints from the environment: SQS to the engine, the rest to moto.
    Object.assign(process.env, emulatorEnvironment(motoEndpoint), { AWS_ENDPOINT_URL_SQS: engine.endpoint });
    await bootstrapResources(prefix);
    sqs = new SQSClient({ ...clientBase, endpoint: engine.endpoint });
    db = DynamoDBDocumentClient.from(new DynamoDBClient({ ...clientBase, endpoint: motoEndpoint }), {
      marshallOptions: { removeUndefinedValues: true },
    });
    const inventory = new InventoryStore(db, tableName(prefix, inventoryTable));
    const sites = new SiteRepository(inventory);
    commands = new CommandRepository(db, tableName(prefix, commandsTable));
    queue = new CommandQueue({
      sqs,
      prefix: () => prefix,
      sites,
      commands,
      connections: new ConnectionRepository(db, tableName(prefix, connectionsTable)),
      notifier: new ConnectionNotifier(() => undefined),
      logger: silent,
      newId: randomUUID,
      createMissingQueues: true,
      // No node records here: the conductor's part is not under test.
      completions: { finished: async () => undefined },
    });
    queueUrl = await queue.createQueue(site);
    await sites.create({
      name: site,
      description: null,
      location: null,
      created_at: new Date().toISOString(),
      updated_at: null,
      queue_url: queueUrl,
    });
  });
  afterAll(() => {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
    sqs?.destroy();
    db?.destroy();
  });

  async function inQueue(url = queueUrl): Promise<number> {
    const { Attributes = {} } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return (
      Number(Attributes.ApproximateNumberOfMessages) +
      Number(Attributes.ApproximateNumberOfMessagesNotVisible)
    );
  }

  /** Makes every in-flight message of these commands visible again: a redelivery, no waiting. */
  async function lapse(receipts: readonly string[]): Promise<void> {
    for (const receipt of receipts)
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: receipt,
          VisibilityTimeout: 0,
        }),
      );
  }

  async function finish(id: string, receipt: string): Promise<void> {
    await queue.complete(site, {
      command_id: id,
      receipt,
      status: 'succeeded',
      finished_at: new Date().toISOString(),
    });
  }

  it('the site queue is FIFO, with the definition’s visibility and its redrive to the dead-letter queue', async () => {
    const { Attributes = {} } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }),
    );
    expect(Attributes).toMatchObject({ FifoQueue: 'true', VisibilityTimeout: '60' });
    const redrive = JSON.parse(Attributes.RedrivePolicy ?? '{}');
    expect(Number(redrive.maxReceiveCount)).toBe(10);
    expect(redrive.deadLetterTargetArn).toMatch(
      new RegExp(`:${queueName(prefix, commandsDeadLetterQueue).replace('.', '\\.')}$`),
    );
  });

  it('orders per node, holds a node while its command is in flight, and deletes on the result', async () => {
    const a = `a-${unique()}`;
    const b = `b-${unique()}`;
    // Only node a queued: SQS FIFO orders within a group, not across groups (ElasticMQ
    // hands groups out in another order than moto), so node b comes once a1 is in flight.
    const a1 = await queue.enqueue({ node: a, site, action: 'one' });
    const a2 = await queue.enqueue({ node: a, site, action: 'two' });
    const first = await queue.receive(site, { max: 1 });
    expect(first.map((c) => c.id)).toStrictEqual([a1.id]);
    const b1 = await queue.enqueue({ node: b, site, action: 'one' });
    // a1 in flight: a2 is held back; b1 is not.
    const second = await queue.receive(site, { max: 10 });
    expect(second.map((c) => c.id)).toStrictEqual([b1.id]);
    expect(await queue.receive(site, { max: 10 })).toStrictEqual([]);
    await finish(a1.id, (first[0] as { receipt: string }).receipt);
    const third = await queue.receive(site, { max: 10 });
    expect(third.map((c) => c.id)).toStrictEqual([a2.id]);
    for (const delivered of [...second, ...third]) await finish(delivered.id, delivered.receipt);
    expect(await inQueue()).toBe(0);
  });

  it('deduplicates by command id', async () => {
    const node = `d-${unique()}`;
    const queued = await queue.enqueue({ node, site, action: 'once' });
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({ v: 1, id: queued.id, node, action: 'once' }),
        MessageGroupId: node,
        MessageDeduplicationId: queued.id,
      }),
    );
    expect(await inQueue()).toBe(1);
    const [delivered] = await queue.receive(site, { max: 10 });
    expect(delivered?.id).toBe(queued.id);
    await finish(queued.id, delivered?.receipt as string);
    expect(await inQueue()).toBe(0);
  });

  it('redelivers after the visibility lapses with a higher attempt; a result with the stale receipt still deletes it', async () => {
    const node = `v-${unique()}`;
    const queued = await queue.enqueue({ node, site, action: 'again' });
    const [once] = await queue.receive(site, { max: 10 });
    expect(once).toMatchObject({ id: queued.id, attempt: 1 });
    await lapse([once?.receipt as string]);
    const [twice] = await queue.receive(site, { max: 10 });
    expect(twice).toMatchObject({ id: queued.id, attempt: 2 });
    expect(twice?.receipt).not.toBe(once?.receipt);
    // The agent answers the first delivery: the queue deletes with the latest receipt it handed out.
    await finish(queued.id, once?.receipt as string);
    expect(await inQueue()).toBe(0);
    expect((await commands.get(queued.id))?.command.status).toBe('succeeded');
  });

  it('the 11th receive finds the message in the dead-letter queue, where the tick fails its command', async () => {
    const node = `dl-${unique()}`;
    const queued = await queue.enqueue({ node, site, action: 'poison' });
    for (let receive = 1; receive <= 10; receive++) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl,
          MaxNumberOfMessages: 1,
          MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        }),
      );
      expect(Messages[0]?.Attributes?.ApproximateReceiveCount, `receive ${receive}`).toBe(String(receive));
      await lapse([Messages[0]?.ReceiptHandle as string]);
    }
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 1 }),
    );
    expect(Messages).toStrictEqual([]);
    const { QueueUrl: dlq } = await sqs.send(
      new GetQueueUrlCommand({ QueueName: queueName(prefix, commandsDeadLetterQueue) }),
    );
    expect(await inQueue(dlq)).toBe(1);
    expect(await queue.failDeadLettered()).toBe(1);
    expect((await commands.get(queued.id))?.command).toMatchObject({ status: 'failed' });
    expect(await inQueue(dlq)).toBe(0);
  });
});
