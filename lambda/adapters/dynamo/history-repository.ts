/**
 * Node history in the inventory table: one item per event (kind `node_history`, id the
 * event's uuid, so one event is one GetItem), children of their node through the
 * `byParent` index, whose sort key (`listSk = <created_at>#<n>#<uuid>`) lists a node's
 * events in the order they were recorded, Ironic's order, from any marker, both ways.
 *
 * The parent key carries the node's `created_at` as well as its uuid
 * (`node_history@node#<uuid>@<created_at>`): a node deleted and created again with the
 * same uuid starts with an empty history even if the old events were not yet removed.
 *
 * Events are NOT in the node's deletion transaction (`InventoryStore.cascadeDeleteOps`):
 * a node keeps up to `node_history_max_entries` of them, more than the 100 records one
 * DynamoDB transaction may touch. The node's deletion removes them afterwards with
 * `deleteForNode`, in batches.
 *
 * Bounded storage (docs/storage.md):
 *  - every event carries `expiresAt` (TTL): its `created_at` plus
 *    `METALPLANE_NODE_HISTORY_RETENTION_DAYS` (default 365; 0: none), so DynamoDB deletes
 *    old events, those of idle nodes and any a failed `deleteForNode` left behind;
 *  - every event is also in the `byKind` index (`kindPk = node_history`, creation order):
 *    the feed of recent events from which the conductor's tick (`cleanup`) learns which
 *    nodes recorded events since its last run, without a scan, and prunes only those to
 *    their newest `node_history_max_entries` (Ironic's `_manage_node_history`), at most
 *    `node_history_cleanup_batch_count` deletions per tick, once per
 *    `node_history_cleanup_interval`, never an event younger than
 *    `node_history_minimum_days`. A node that records nothing cannot grow, so it needs no
 *    look.
 */

import { DEFAULT_HISTORY_MAX_ENTRIES, environmentConfig, type HistorySettings } from '../../config.ts';
import { conflict, DomainError, notFound } from '../../domain/errors.ts';
import type { HistoryEvent } from '../../domain/history/history.ts';
import { ironicTimestamp } from '../../domain/time.ts';
import type { InventoryStore, ItemWrite, StoredItem, WriteOp } from './inventory-store.ts';

export const HISTORY_KIND = 'node_history';
/** Ironic's `[conductor]node_history_max_entries` default. */
export const MAX_EVENTS_PER_NODE = DEFAULT_HISTORY_MAX_ENTRIES;
/** DynamoDB's limit on one transaction, used as the batch size of bulk deletes. */
const DELETE_BATCH = 100;
const DAY_MS = 86_400_000;
/** The item holding the pruning's position in the feed and its next run. */
export const CLEANUP_KIND = 'node_history_cleanup';
const CLEANUP_ID = 'conductor';
/**
 * The feed is read up to this long before now: an event committed late (a slow
 * transaction) or not yet in the eventually consistent index is still ahead of the
 * position when it shows. (One missed anyway only delays its node's pruning to its next event.)
 */
export const FEED_GRACE_MS = 5 * 60_000;
/** Nodes one tick looks at, at most: each is one Query of up to max_entries + 1 events. */
export const CLEANUP_NODES_PER_TICK = 100;

/** The node as history keys it: its uuid and its creation time (its incarnation). */
export interface HistoryOwner {
  readonly uuid: string;
  readonly created_at: string;
}

/** What is stored: the event and the incarnation of the node it belongs to. */
interface StoredHistoryEvent extends HistoryEvent {
  readonly node_created_at: string;
}

export const historyParent = (node: HistoryOwner) => `${HISTORY_KIND}@node#${node.uuid}@${node.created_at}`;

/** Ironic's NodeHistoryNotFound (404). */
export const historyEventMissing = (ident: string) =>
  notFound(`Node history record ${ident} could not be found.`);

/**
 * The item of one event. `sequence` orders events recorded in the same instant (one
 * batch: a failure and the transition it causes) in the order they were given.
 */
export function historyEventWrite(
  node: HistoryOwner,
  event: HistoryEvent,
  sequence = 0,
  retentionDays = environmentConfig().history.retentionDays,
): ItemWrite<StoredHistoryEvent> {
  const expiresAt = historyExpiresAt(event.created_at, retentionDays);
  return {
    kind: HISTORY_KIND,
    id: event.uuid,
    doc: { ...event, node_created_at: node.created_at },
    listSk: `${event.created_at}#${String(sequence).padStart(4, '0')}#${event.uuid}`,
    // byParent: the node's history; byKind: the feed the tick's pruning reads.
    indexes: { parentPk: historyParent(node), kindPk: HISTORY_KIND },
    ...(expiresAt !== undefined ? { expiresAt } : {}),
  };
}

/** The TTL (epoch seconds) of an event created at `createdAt`; none when the retention is 0. */
export function historyExpiresAt(createdAt: string, retentionDays: number): number | undefined {
  if (retentionDays <= 0) return undefined;
  const created = Date.parse(createdAt);
  if (Number.isNaN(created)) return undefined;
  return Math.floor(created / 1000) + retentionDays * 86_400;
}

/** The create op of one event, to join a node update in one transaction (a transition and its record). */
export function historyCreateOp(
  node: HistoryOwner,
  event: HistoryEvent,
  sequence = 0,
  retentionDays = environmentConfig().history.retentionDays,
): WriteOp {
  return {
    type: 'create',
    item: historyEventWrite(node, event, sequence, retentionDays),
    onConflict: conflict(`Node history record ${event.uuid} already exists.`),
  };
}

function withoutOwner(stored: StoredHistoryEvent): HistoryEvent {
  const { node_created_at: _incarnation, ...event } = stored;
  return event;
}

export interface HistoryPage {
  readonly events: HistoryEvent[];
  /** True when more events follow the last one. */
  readonly more: boolean;
}

export interface HistoryListQuery {
  readonly limit: number;
  /** Start after this event (its uuid); it must exist (NodeHistoryNotFound otherwise). */
  readonly markerUuid?: string;
}

/** What one pruning of one node did. */
export interface PruneResult {
  readonly removed: number;
  /** False when it stopped at its `max` with events to delete still left. */
  readonly complete: boolean;
}

export interface PruneOptions {
  /** The newest events kept (`node_history_max_entries`). */
  readonly keep: number;
  /** Only events recorded before this Ironic timestamp may go (`node_history_minimum_days`). */
  readonly before?: string;
  /** Deletes at most this many (the tick's remaining batch). */
  readonly max?: number;
}

/** What one tick's pruning did (`HistoryRepository.cleanup`). */
export interface HistoryCleanupReport {
  /** False when it was not due (interval) or is disabled. */
  readonly ran: boolean;
  /** Nodes looked at. */
  readonly nodes: number;
  /** Events deleted. */
  readonly deleted: number;
  /** True when the feed was read up to now (the next run is an interval away). */
  readonly caughtUp: boolean;
}

/** The pruning's state: where it is in the feed, and when it runs next. */
interface CleanupState {
  /** The `listSk` of the last feed event whose node was pruned (null: from the start). */
  readonly position: string | null;
  readonly next_run_at: string | null;
  readonly last_run_at: string | null;
}

export class HistoryRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  /** Records events of one node, in the order given, in one transaction (at most 100). */
  async record(
    node: HistoryOwner,
    events: readonly HistoryEvent[],
    retentionDays = environmentConfig().history.retentionDays,
  ): Promise<void> {
    await this.store.write(
      events.map((event, sequence) => historyCreateOp(node, event, sequence, retentionDays)),
    );
  }

  /** One event of this node (of this incarnation of it), or undefined. */
  async get(node: HistoryOwner, eventUuid: string): Promise<HistoryEvent | undefined> {
    const found = await this.store.get<StoredHistoryEvent>(HISTORY_KIND, eventUuid);
    if (!found || !belongsTo(found, node)) return undefined;
    return withoutOwner(found.doc);
  }

  /** A page of the node's events, oldest first (Ironic's order: by id, ascending). */
  async list(node: HistoryOwner, query: HistoryListQuery): Promise<HistoryPage> {
    let after: string | undefined;
    if (query.markerUuid !== undefined) {
      const marker = await this.store.get<StoredHistoryEvent>(HISTORY_KIND, query.markerUuid);
      if (!marker) throw historyEventMissing(query.markerUuid);
      after = marker.listSk;
    }
    const page = await this.store.query<StoredHistoryEvent>({
      ...this.byNode(node),
      ...(after !== undefined ? { after } : {}),
      limit: query.limit,
    });
    return { events: page.items.map((item) => withoutOwner(item.doc)), more: page.more };
  }

  /**
   * Removes every event of the node, in batches (after the node's own deletion). Pages
   * move forward from the last key read, never re-read from the start: the index is
   * eventually consistent and may still show items just deleted.
   */
  async deleteForNode(node: HistoryOwner): Promise<number> {
    return this.deleteFrom(node, { descending: false });
  }

  /** Deletes the node's oldest events beyond the newest `keep`; answers how many went. */
  async prune(node: HistoryOwner, keep = MAX_EVENTS_PER_NODE): Promise<number> {
    return (await this.pruneNode(node, { keep })).removed;
  }

  /**
   * Deletes the node's events beyond its newest `keep` that were recorded before
   * `before`, oldest first, at most `max` of them. Reads the newest `keep + 1` events
   * (one Query) to find the oldest one kept; the index being eventually consistent, an
   * event it does not show yet only makes the pruning keep more, never fewer.
   */
  async pruneNode(node: HistoryOwner, options: PruneOptions): Promise<PruneResult> {
    const max = options.max ?? Number.POSITIVE_INFINITY;
    let bound = options.before;
    if (options.keep > 0) {
      const newest = await this.store.query<StoredHistoryEvent>({
        ...this.byNode(node),
        descending: true,
        limit: options.keep,
      });
      const oldestKept = newest.items.at(-1);
      if (!newest.more || !oldestKept) return { removed: 0, complete: true };
      if (bound === undefined || oldestKept.listSk < bound) bound = oldestKept.listSk;
    }
    let removed = 0;
    let after: string | undefined;
    for (;;) {
      if (removed >= max) return { removed, complete: false };
      const page = await this.store.query<StoredHistoryEvent>({
        ...this.byNode(node),
        ...(after !== undefined ? { after } : {}),
        limit: Math.min(DELETE_BATCH, max - removed),
      });
      const doomed = page.items.filter((item) => bound === undefined || item.listSk < bound);
      await this.deleteItems(doomed);
      removed += doomed.length;
      const last = page.items.at(-1);
      if (!last || doomed.length < page.items.length || !page.more) return { removed, complete: true };
      after = last.listSk;
    }
  }

  /**
   * The tick's pruning (Ironic's `_manage_node_history`), when due: reads the feed of
   * events recorded since its position (at most `cleanupBatchCount` of them, up to
   * `FEED_GRACE_MS` ago), prunes each node found there once (at most
   * `CLEANUP_NODES_PER_TICK` nodes and `cleanupBatchCount` deletions per tick), and keeps
   * its position. Caught up, it next runs an interval later; behind, at the next tick.
   */
  async cleanup(settings: HistorySettings, now: Date = new Date()): Promise<HistoryCleanupReport> {
    const idle = { ran: false, nodes: 0, deleted: 0, caughtUp: true };
    if (settings.cleanupIntervalSeconds <= 0) return idle;
    const stored = await this.store.get<CleanupState>(CLEANUP_KIND, CLEANUP_ID);
    const state = stored?.doc;
    const stamp = ironicTimestamp(now);
    if (state?.next_run_at && state.next_run_at > stamp) return idle;

    const horizon = ironicTimestamp(new Date(now.getTime() - FEED_GRACE_MS));
    const before =
      settings.minimumDays > 0
        ? ironicTimestamp(new Date(now.getTime() - settings.minimumDays * DAY_MS))
        : undefined;
    let position = state?.position ?? null;
    let budget = settings.cleanupBatchCount;
    let nodes = 0;
    let deleted = 0;
    let caughtUp = false;
    const feed = await this.store.query<StoredHistoryEvent>({
      index: 'byKind',
      partitionAttribute: 'kindPk',
      partitionValue: HISTORY_KIND,
      sortAttribute: 'listSk',
      ...(position !== null ? { after: position } : {}),
      limit: settings.cleanupBatchCount,
    });
    const pruned = new Set<string>();
    let stopped = false;
    for (const item of feed.items) {
      if (item.listSk > horizon) {
        caughtUp = true;
        break;
      }
      const owner = { uuid: item.doc.node_uuid, created_at: item.doc.node_created_at };
      const parent = historyParent(owner);
      if (!pruned.has(parent)) {
        if (nodes >= CLEANUP_NODES_PER_TICK || budget <= 0) {
          stopped = true;
          break;
        }
        const result = await this.pruneNode(owner, {
          keep: settings.maxEntries,
          ...(before !== undefined ? { before } : {}),
          max: budget,
        });
        nodes += 1;
        deleted += result.removed;
        budget -= result.removed;
        if (!result.complete) {
          stopped = true;
          break;
        }
        pruned.add(parent);
      }
      position = item.listSk;
    }
    if (!caughtUp && !stopped && !feed.more) caughtUp = true;

    const next = caughtUp ? new Date(now.getTime() + settings.cleanupIntervalSeconds * 1000) : now;
    const doc: CleanupState = { position, next_run_at: ironicTimestamp(next), last_run_at: stamp };
    const item: ItemWrite<CleanupState> = {
      kind: CLEANUP_KIND,
      id: CLEANUP_ID,
      doc,
      listSk: stamp,
      indexes: {},
    };
    const onConflict = conflict('Another tick is pruning the node history.');
    try {
      await this.store.write([
        stored
          ? { type: 'replace', item, expectedVersion: stored.version, onConflict }
          : { type: 'create', item, onConflict },
      ]);
    } catch (error) {
      // A concurrent tick moved it on: its position wins; deletions are idempotent.
      if (!isConflict(error)) throw error;
    }
    return { ran: true, nodes, deleted, caughtUp };
  }

  /**
   * Deletes events, one transaction for all (at most 100); when one of them went meanwhile
   * (its TTL, a concurrent pruning), one by one, skipping those already gone.
   */
  private async deleteItems(items: readonly StoredItem<unknown>[]): Promise<void> {
    if (items.length === 0) return;
    try {
      await this.store.write(items.map(deleteOp));
    } catch (error) {
      if (!isConflict(error)) throw error;
      for (const item of items) {
        try {
          await this.store.write([deleteOp(item)]);
        } catch (single) {
          if (!isConflict(single)) throw single;
        }
      }
    }
  }

  private byNode(node: HistoryOwner) {
    return {
      index: 'byParent',
      partitionAttribute: 'parentPk',
      partitionValue: historyParent(node),
      sortAttribute: 'listSk',
    } as const;
  }

  private async deleteFrom(
    node: HistoryOwner,
    start: { readonly descending: boolean; readonly after?: string },
  ): Promise<number> {
    let removed = 0;
    let after = start.after;
    for (;;) {
      const page = await this.store.query<StoredHistoryEvent>({
        ...this.byNode(node),
        descending: start.descending,
        ...(after !== undefined ? { after } : {}),
        limit: DELETE_BATCH,
      });
      const last = page.items.at(-1);
      if (!last) return removed;
      await this.deleteItems(page.items);
      removed += page.items.length;
      if (!page.more) return removed;
      after = last.listSk;
    }
  }
}

function isConflict(error: unknown): boolean {
  return error instanceof DomainError && error.kind === 'conflict';
}

function belongsTo(item: StoredItem<StoredHistoryEvent>, node: HistoryOwner): boolean {
  return item.doc.node_uuid === node.uuid && item.doc.node_created_at === node.created_at;
}

function deleteOp(item: StoredItem<unknown>): WriteOp {
  return {
    type: 'delete',
    kind: item.kind,
    id: item.id,
    onConflict: conflict(`Node history record ${item.id} changed during its deletion; retry.`),
  };
}
