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
 * a node keeps up to `MAX_EVENTS_PER_NODE` of them, more than the 100 records one
 * DynamoDB transaction may touch. The node's deletion removes them afterwards with
 * `deleteForNode`, in batches; `prune` keeps each node's history to Ironic's default
 * size (`[conductor]node_history_max_entries` = 300), run from the periodic tick as
 * Ironic's `_manage_node_history` does.
 */

import { conflict, notFound } from '../../domain/errors.ts';
import type { HistoryEvent } from '../../domain/history/history.ts';
import type { InventoryStore, ItemWrite, StoredItem, WriteOp } from './inventory-store.ts';

export const HISTORY_KIND = 'node_history';
/** Ironic's `[conductor]node_history_max_entries` default. */
export const MAX_EVENTS_PER_NODE = 300;
/** DynamoDB's limit on one transaction, used as the batch size of bulk deletes. */
const DELETE_BATCH = 100;

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
): ItemWrite<StoredHistoryEvent> {
  return {
    kind: HISTORY_KIND,
    id: event.uuid,
    doc: { ...event, node_created_at: node.created_at },
    listSk: `${event.created_at}#${String(sequence).padStart(4, '0')}#${event.uuid}`,
    indexes: { parentPk: historyParent(node) },
  };
}

/** The create op of one event, to join a node update in one transaction (a transition and its record). */
export function historyCreateOp(node: HistoryOwner, event: HistoryEvent, sequence = 0): WriteOp {
  return {
    type: 'create',
    item: historyEventWrite(node, event, sequence),
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

export class HistoryRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  /** Records events of one node, in the order given, in one transaction (at most 100). */
  async record(node: HistoryOwner, events: readonly HistoryEvent[]): Promise<void> {
    await this.store.write(events.map((event, sequence) => historyCreateOp(node, event, sequence)));
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
    // Find the oldest event to keep (newest first), then delete what sorts before it.
    const newest = await this.store.query<StoredHistoryEvent>({
      ...this.byNode(node),
      descending: true,
      limit: keep,
    });
    const oldestKept = newest.items.at(-1);
    if (!newest.more || !oldestKept) return 0;
    return this.deleteFrom(node, { descending: true, after: oldestKept.listSk });
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
      await this.store.write(page.items.map(deleteOp));
      removed += page.items.length;
      if (!page.more) return removed;
      after = last.listSk;
    }
  }
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
