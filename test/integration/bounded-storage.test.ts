/**
 * Bounded storage (docs/storage.md) on moto: node history pruned by the conductor's tick
 * beyond `node_history_max_entries` (oldest go, newest N stay, bounded per tick, at its
 * interval, never younger than `node_history_minimum_days`), and the TTL (`expiresAt`)
 * of history events and command records. Moto never deletes by TTL: the tests check the
 * values DynamoDB would act on.
 */
import { randomUUID } from 'node:crypto';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { commandsTable, inventoryTable, tableName } from '../../infra/resources.ts';
import { documentClient } from '../../lambda/adapters/dynamo/client.ts';
import { CommandRepository } from '../../lambda/adapters/dynamo/command-repository.ts';
import {
  FEED_GRACE_MS,
  HISTORY_KIND,
  type HistoryOwner,
  HistoryRepository,
} from '../../lambda/adapters/dynamo/history-repository.ts';
import { ImageRepository } from '../../lambda/adapters/dynamo/image-repository.ts';
import { InventoryStore } from '../../lambda/adapters/dynamo/inventory-store.ts';
import { NodeRepository } from '../../lambda/adapters/dynamo/node-repository.ts';
import type { Provisioner } from '../../lambda/conductor/provision.ts';
import { type TickRuntime, tick } from '../../lambda/conductor/tick.ts';
import type { HistorySettings } from '../../lambda/config.ts';
import { createCommand } from '../../lambda/domain/commands/command.ts';
import { type HistoryEvent, historyEvent } from '../../lambda/domain/history/history.ts';
import { ironicTimestamp } from '../../lambda/domain/time.ts';
import { isolatedResources } from '../support/aws.ts';

const DAY = 86_400_000;
const db = documentClient();
let prefix: string;
let store: InventoryStore;
let history: HistoryRepository;
const saved = new Map<string, string | undefined>();

beforeAll(async () => {
  ({ prefix } = await isolatedResources());
  store = new InventoryStore(db, tableName(prefix, inventoryTable));
  history = new HistoryRepository(store);
});

/** Sets a variable for one test (restored after it). */
function setEnv(name: string, value: string): void {
  if (!saved.has(name)) saved.set(name, process.env[name]);
  process.env[name] = value;
}

afterEach(() => {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  saved.clear();
});

/**
 * The tests' clock: it only moves forward, by more than a cleanup interval between tests,
 * so that each test's events are ahead of the pruning's position in the feed.
 */
let clock = Date.now() - 400 * DAY;
function nextEpoch(): number {
  clock += 20 * DAY;
  return clock;
}

const owner = (): HistoryOwner => ({
  uuid: randomUUID(),
  created_at: ironicTimestamp(new Date(clock - DAY)),
});

/** `count` events of a node, one millisecond apart from `start` (epoch ms), oldest first. */
async function record(node: HistoryOwner, count: number, start: number): Promise<HistoryEvent[]> {
  const events = Array.from({ length: count }, (_, i) =>
    historyEvent({
      uuid: randomUUID(),
      now: ironicTimestamp(new Date(start + i)),
      nodeUuid: node.uuid,
      event: `event ${i}`,
      eventType: 'deploying',
    }),
  );
  for (let i = 0; i < events.length; i += 100) await history.record(node, events.slice(i, i + 100));
  return events;
}

async function listAll(node: HistoryOwner): Promise<string[]> {
  return (await history.list(node, { limit: 10_000 })).events.map((event) => event.uuid);
}

async function rawEvent(uuid: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await db.send(
    new GetCommand({
      TableName: tableName(prefix, inventoryTable),
      Key: { pk: `${HISTORY_KIND}#${uuid}`, sk: 'item' },
      ConsistentRead: true,
    }),
  );
  return Item;
}

const settings = (changes: Partial<HistorySettings> = {}): HistorySettings => ({
  maxEntries: 300,
  cleanupIntervalSeconds: 86_400,
  cleanupBatchCount: 1000,
  minimumDays: 0,
  retentionDays: 365,
  ...changes,
});

/** A tick with nothing but history to do (the command queue and the flows have no work). */
function runtime(now: number, history?: TickRuntime['history']): TickRuntime {
  const provisioner = {
    timeoutCallbacks: async () => 0,
    resumeImageWaits: async () => 0,
    now: () => new Date(now),
  } as unknown as Provisioner;
  const warnings: string[] = [];
  return {
    queue: { expireOverdue: async () => 0, failDeadLettered: async () => 0 },
    provisioning: { provisioner, nodes: new NodeRepository(store), images: new ImageRepository(store) },
    logger: {
      info: () => undefined,
      warn: (message, extra) => {
        warnings.push(`${message}: ${JSON.stringify(extra)}`);
        throw new Error(`unexpected warning: ${warnings.at(-1)}`);
      },
    },
    now: () => new Date(now),
    ...(history ? { history } : {}),
  };
}

const withSettings = (value: HistorySettings): TickRuntime['history'] => ({
  repository: history,
  settings: () => value,
});

describe('node history TTL', () => {
  it('every event carries expiresAt = created_at + the retention, and joins the feed', async () => {
    const node = owner();
    const start = nextEpoch();
    const [byDefault] = await record(node, 1, start);
    const item = await rawEvent(byDefault?.uuid as string);
    expect(item?.expiresAt).toBe(Math.floor(start / 1000) + 365 * 86_400);
    expect(item?.kindPk).toBe(HISTORY_KIND);

    setEnv('METALPLANE_NODE_HISTORY_RETENTION_DAYS', '7');
    const [week] = await record(node, 1, start + 10);
    expect((await rawEvent(week?.uuid as string))?.expiresAt).toBe(
      Math.floor((start + 10) / 1000) + 7 * 86_400,
    );

    setEnv('METALPLANE_NODE_HISTORY_RETENTION_DAYS', '0');
    const [forever] = await record(node, 1, start + 20);
    expect((await rawEvent(forever?.uuid as string))?.expiresAt).toBeUndefined();
  });
});

describe('node history pruning in the tick', () => {
  it('deletes the oldest events beyond max entries and keeps the newest N; other nodes untouched', async () => {
    const start = nextEpoch();
    const busy = owner();
    const quiet = owner();
    const events = await record(busy, 320, start);
    const few = await record(quiet, 12, start + 1000);
    const now = start + 3_600_000;

    const report = await tick(runtime(now, withSettings(settings())));
    expect(report.historyPruned).toBe(20);
    expect(await listAll(busy)).toStrictEqual(events.slice(20).map((e) => e.uuid));
    expect(await listAll(quiet)).toStrictEqual(few.map((e) => e.uuid));
    // Really gone from the table, not only from the index.
    expect(await rawEvent(events[0]?.uuid as string)).toBeUndefined();
    expect(await rawEvent(events[19]?.uuid as string)).toBeUndefined();
    expect(await rawEvent(events[20]?.uuid as string)).toBeDefined();

    // Not due again before the interval: new events beyond the limit wait for it.
    const more = await record(busy, 5, now + 1000);
    const soon = now + FEED_GRACE_MS + 60_000;
    expect((await tick(runtime(soon, withSettings(settings())))).historyPruned).toBe(0);
    expect(await listAll(busy)).toHaveLength(305);
    const later = now + 86_400_000 + 1000;
    expect((await tick(runtime(later, withSettings(settings())))).historyPruned).toBe(5);
    expect(await listAll(busy)).toStrictEqual([...events.slice(25), ...more].map((e) => e.uuid));
    // Caught up: the next run is an interval away, and there is nothing to do anyway.
    expect((await tick(runtime(later + 60_000, withSettings(settings())))).historyPruned).toBe(0);
  });

  it('deletes at most the batch count per tick, and the next ticks go on until done', async () => {
    const start = nextEpoch();
    const node = owner();
    const events = await record(node, 30, start);
    const limits = settings({ maxEntries: 10, cleanupBatchCount: 7 });
    const counts: number[] = [];
    let now = start + 3_600_000;
    for (let i = 0; i < 8; i++) {
      counts.push((await tick(runtime(now, withSettings(limits)))).historyPruned);
      now += 60_000;
    }
    expect(counts.slice(0, 3)).toStrictEqual([7, 7, 6]);
    expect(counts.slice(3).every((count) => count === 0)).toBe(true);
    expect(await listAll(node)).toStrictEqual(events.slice(20).map((e) => e.uuid));
  });

  it('never prunes events younger than the minimum days, even beyond max entries', async () => {
    const start = nextEpoch();
    const node = owner();
    const now = start + 5 * DAY;
    const old = await record(node, 10, start);
    const recent = await record(node, 10, now - 3_600_000);
    const limits = settings({ maxEntries: 5, minimumDays: 2 });
    expect((await tick(runtime(now, withSettings(limits)))).historyPruned).toBe(10);
    expect(old).toHaveLength(10);
    expect(await listAll(node)).toStrictEqual(recent.map((e) => e.uuid));
  });

  it('takes its limits from the environment (METALPLANE_NODE_HISTORY_*)', async () => {
    const start = nextEpoch();
    const node = owner();
    const events = await record(node, 8, start);
    setEnv('METALPLANE_NODE_HISTORY_CLEANUP_INTERVAL', '0');
    setEnv('METALPLANE_NODE_HISTORY_MAX_ENTRIES', '3');
    // Interval 0: the pruning is off (as Ironic's node_history_cleanup_interval = 0).
    expect((await tick(runtime(start + 3_600_000))).historyPruned).toBe(0);
    expect(await listAll(node)).toHaveLength(8);
    setEnv('METALPLANE_NODE_HISTORY_CLEANUP_INTERVAL', '3600');
    expect((await tick(runtime(start + 3_600_000))).historyPruned).toBe(5);
    expect(await listAll(node)).toStrictEqual(events.slice(5).map((e) => e.uuid));
  });

  it('a failing pruning is logged and does not fail the tick', async () => {
    const warnings: string[] = [];
    const broken = runtime(nextEpoch(), {
      repository: history,
      settings: () => {
        throw new Error('METALPLANE_NODE_HISTORY_MAX_ENTRIES must be a whole number ≥ 0, not "lots"');
      },
    });
    const report = await tick({
      ...broken,
      logger: { info: () => undefined, warn: (message, extra) => warnings.push(`${message} ${extra.error}`) },
    });
    expect(report.historyPruned).toBe(0);
    expect(warnings).toStrictEqual([
      'conductor tick: node history pruning failed METALPLANE_NODE_HISTORY_MAX_ENTRIES must be a whole number ≥ 0, not "lots"',
    ]);
  });
});

describe('command records TTL', () => {
  async function rawCommand(id: string): Promise<Record<string, unknown> | undefined> {
    const { Item } = await db.send(
      new GetCommand({
        TableName: tableName(prefix, commandsTable),
        Key: { pk: `command#${id}`, sk: 'command' },
        ConsistentRead: true,
      }),
    );
    return Item;
  }

  it('expire the retention after their deadline while open, after their end once finished', async () => {
    const commands = new CommandRepository(db, tableName(prefix, commandsTable));
    const created = new Date('2026-03-01T00:00:00.000Z');
    const command = createCommand(
      {
        id: randomUUID(),
        node: randomUUID(),
        site: 'fra1',
        action: 'power.status',
        args: {},
        deadlineSeconds: 600,
      },
      created,
    );
    await commands.create(command);
    const deadline = Date.parse(command.deadline) / 1000;
    expect((await rawCommand(command.id))?.expiresAt).toBe(deadline + 30 * 86_400);

    setEnv('METALPLANE_COMMAND_RETENTION_DAYS', '3');
    const finishedAt = '2026-03-01T00:01:00.000Z';
    expect(
      await commands.transition(command.id, 'failed', finishedAt, { error: 'x', finished_at: finishedAt }),
    ).toBeDefined();
    expect((await rawCommand(command.id))?.expiresAt).toBe(Date.parse(finishedAt) / 1000 + 3 * 86_400);

    const fixed = new CommandRepository(db, tableName(prefix, commandsTable), 10);
    const other = createCommand(
      { id: randomUUID(), node: randomUUID(), site: 'fra1', action: 'power.status', args: {} },
      created,
    );
    await fixed.create(other);
    expect((await rawCommand(other.id))?.expiresAt).toBe(Date.parse(other.deadline) / 1000 + 10 * 86_400);
  });
});
