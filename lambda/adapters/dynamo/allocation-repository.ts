/**
 * Allocations in the inventory table: one item per allocation (kind `allocation`), the
 * name unique (claimed in the same transaction), listed by `byKind` (creation order)
 * or `byName`. An allocation holding a node is indexed under `allocation@node#<uuid>`
 * (the cascade convention: a node deletion that includes `allocation` in its child
 * kinds removes it, as Ironic's does). The write ops are exposed so that reserving or
 * releasing a node and changing the allocation happen in one transaction.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { Allocation } from '../../domain/inventory/allocation.ts';
import type { Page } from './chassis-repository.ts';
import type { Filter, InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';

export const ALLOCATION_KIND = 'allocation';
const NAME_SCOPE = 'allocation-name';

export interface VersionedAllocation {
  readonly allocation: Allocation;
  readonly version: number;
}

export interface AllocationListQuery {
  readonly limit: number;
  readonly markerUuid?: string | undefined;
  readonly sortKey: 'created_at' | 'name';
  readonly descending: boolean;
  /** Exact matches on allocation fields (state, resource_class, owner, node_uuid). */
  readonly equals: Readonly<Record<string, string>>;
}

export const allocationNodeParent = (nodeUuid: string) => `${ALLOCATION_KIND}@node#${nodeUuid}`;

const nameSortKey = (allocation: Allocation) => `${allocation.name ?? ''}#${allocation.uuid}`;
const listSortKey = (allocation: Allocation) => `${allocation.created_at}#${allocation.uuid}`;

export const allocationNameTaken = (name: string) =>
  conflict(`An allocation with name ${name} already exists.`);
const concurrentChange = (uuid: string) =>
  conflict(
    `Allocation ${uuid} was changed by another request at the same time; retry with the current allocation.`,
  );

function allocationWrite(allocation: Allocation): ItemWrite<Allocation> {
  return {
    kind: ALLOCATION_KIND,
    id: allocation.uuid,
    doc: allocation,
    listSk: listSortKey(allocation),
    indexes: {
      kindPk: ALLOCATION_KIND,
      nameSk: nameSortKey(allocation),
      parentPk: allocation.node_uuid ? allocationNodeParent(allocation.node_uuid) : undefined,
    },
    uniques: allocation.name ? [{ scope: NAME_SCOPE, value: allocation.name }] : [],
  };
}

function claimName(allocation: Allocation): WriteOp {
  const name = allocation.name as string;
  return {
    type: 'claim',
    scope: NAME_SCOPE,
    value: name,
    ownerId: allocation.uuid,
    onConflict: allocationNameTaken(name),
  };
}

export class AllocationRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(uuid: string): Promise<VersionedAllocation | undefined> {
    const item = await this.store.get<Allocation>(ALLOCATION_KIND, uuid);
    return item && { allocation: item.doc, version: item.version };
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.store.lookupUnique(NAME_SCOPE, name);
  }

  /** The allocation holding a node, if any. */
  async forNode(nodeUuid: string): Promise<VersionedAllocation | undefined> {
    const page = await this.store.query<Allocation>({
      index: 'byParent',
      partitionAttribute: 'parentPk',
      partitionValue: allocationNodeParent(nodeUuid),
      sortAttribute: 'listSk',
      limit: 1,
    });
    const [item] = page.items;
    return item && { allocation: item.doc, version: item.version };
  }

  /** Creates the allocation (version 1) and claims its name. */
  async create(allocation: Allocation): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'create',
        item: allocationWrite(allocation),
        onConflict: conflict(`An allocation with UUID ${allocation.uuid} already exists.`),
      },
    ];
    if (allocation.name) ops.push(claimName(allocation));
    await this.store.write(ops);
  }

  /** Ops replacing `before` (read at `version`) with `after`, moving the name claim. */
  replaceOps(before: Allocation, after: Allocation, version: number): WriteOp[] {
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: allocationWrite(after),
        expectedVersion: version,
        onConflict: concurrentChange(after.uuid),
      },
    ];
    if (before.name !== after.name) {
      if (after.name) ops.push(claimName(after));
      if (before.name)
        ops.push({ type: 'release', scope: NAME_SCOPE, value: before.name, ownerId: before.uuid });
    }
    return ops;
  }

  /** Ops deleting the allocation (read at `version`) and releasing its name. */
  deleteOps(allocation: Allocation, version: number): WriteOp[] {
    const ops: WriteOp[] = [
      {
        type: 'delete',
        kind: ALLOCATION_KIND,
        id: allocation.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(allocation.uuid),
      },
    ];
    if (allocation.name) {
      ops.push({ type: 'release', scope: NAME_SCOPE, value: allocation.name, ownerId: allocation.uuid });
    }
    return ops;
  }

  async update(before: Allocation, after: Allocation, version: number): Promise<void> {
    await this.store.write(this.replaceOps(before, after, version));
  }

  async delete(allocation: Allocation, version: number): Promise<void> {
    await this.store.write(this.deleteOps(allocation, version));
  }

  async list(query: AllocationListQuery): Promise<Page<Allocation>> {
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.get(query.markerUuid);
      if (!marker) throw notFound(`Allocation ${query.markerUuid} could not be found.`);
      after = query.sortKey === 'name' ? nameSortKey(marker.allocation) : listSortKey(marker.allocation);
    }
    const byName = query.sortKey === 'name';
    const filters: Filter[] = Object.entries(query.equals).map(([field, value]) => ({
      path: ['doc', field],
      op: '=',
      value,
    }));
    const page = await this.store.query<Allocation>({
      index: byName ? 'byName' : 'byKind',
      partitionAttribute: 'kindPk',
      partitionValue: ALLOCATION_KIND,
      sortAttribute: byName ? 'nameSk' : 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
      filters,
    });
    return { items: page.items.map((item) => item.doc), more: page.more };
  }
}
