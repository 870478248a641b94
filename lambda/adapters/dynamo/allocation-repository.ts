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
import type { Filter, InventoryStore, WriteOp } from './inventory-store.ts';
import { byParent, named, nodeChildParent, type Page, VersionedRecords } from './versioned-repository.ts';

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

export const allocationNodeParent = (nodeUuid: string) => nodeChildParent(ALLOCATION_KIND, nodeUuid);

export class AllocationRepository {
  private readonly records: VersionedRecords<Allocation>;

  constructor(store: InventoryStore) {
    this.records = new VersionedRecords(store, {
      kind: ALLOCATION_KIND,
      id: (allocation) => allocation.uuid,
      indexes: (allocation) => ({
        kindPk: ALLOCATION_KIND,
        nameSk: `${allocation.name ?? ''}#${allocation.uuid}`,
        // Not the node's ledger: only the index its deletion cascades through.
        parentPk: allocation.node_uuid ? allocationNodeParent(allocation.node_uuid) : undefined,
      }),
      uniques: [
        {
          scope: NAME_SCOPE,
          value: (allocation) => allocation.name || undefined,
          taken: (name) => conflict(`An allocation with name ${name} already exists.`),
        },
      ],
      exists: (uuid) => conflict(`An allocation with UUID ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(
          `Allocation ${uuid} was changed by another request at the same time; retry with the current allocation.`,
        ),
      missing: (uuid) => notFound(`Allocation ${uuid} could not be found.`),
    });
  }

  async get(uuid: string): Promise<VersionedAllocation | undefined> {
    return this.records.getAs(uuid, 'allocation');
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.records.idFor(NAME_SCOPE, name);
  }

  /** The allocation holding a node, if any. */
  async forNode(nodeUuid: string): Promise<VersionedAllocation | undefined> {
    const page = await this.records.pageItems({
      partition: byParent(allocationNodeParent(nodeUuid)),
      limit: 1,
    });
    return named(page.items[0], 'allocation');
  }

  /** Creates the allocation (version 1) and claims its name. */
  async create(allocation: Allocation): Promise<void> {
    await this.records.create(allocation);
  }

  /** Ops replacing `before` (read at `version`) with `after`, moving the name claim. */
  replaceOps(before: Allocation, after: Allocation, version: number): WriteOp[] {
    return this.records.replaceOps(before, after, version);
  }

  /** Ops deleting the allocation (read at `version`) and releasing its name. */
  deleteOps(allocation: Allocation, version: number): WriteOp[] {
    return this.records.deleteOps(allocation, version);
  }

  async update(before: Allocation, after: Allocation, version: number): Promise<void> {
    await this.records.update(before, after, version);
  }

  async delete(allocation: Allocation, version: number): Promise<void> {
    await this.records.delete(allocation, version);
  }

  async list(query: AllocationListQuery): Promise<Page<Allocation>> {
    const { sortKey, equals, ...rest } = query;
    const filters: Filter[] = Object.entries(equals).map(([field, value]) => ({
      path: ['doc', field],
      op: '=',
      value,
    }));
    return this.records.list({ ...rest, order: sortKey === 'name' ? 'name' : 'created', filters });
  }
}
