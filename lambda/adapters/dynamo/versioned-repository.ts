/**
 * One kind's records in the inventory table, versioned: what the repositories of
 * chassis, ports, port groups, volume records, deploy templates, allocations, images,
 * sites, users and agents share. A `RecordSpec` says how a document becomes an item (its
 * id, index attributes, unique values, the node ledger it joins) and which error each
 * failed condition raises; `VersionedRecords` builds the item, reads it back with its
 * version, and writes it conditionally: create (the id must be free, the unique values
 * claimed), replace (at the version read, unique values moved), delete (at the version
 * read, unique values released), and lists the kind by creation order or name from a
 * marker.
 *
 * Composed, not inherited: a repository holds one `VersionedRecords` per kind it stores
 * (volume records two, agents three, users two), keeps its own public shape (a port's
 * `get` answers `{ port, version }`, a site's the bare site) and adds what is its own
 * (a chassis' node check, an allocation's node lookup, the agent's enrollment
 * transaction), with the ops below as building blocks of its transactions.
 *
 * The ops keep one order, which decides the error of a transaction whose conditions fail
 * at once (the first op's): the record, its unique claims, its node ledger, then the
 * caller's `extra` ops; a replace puts the caller's ops before the node move and the
 * unique moves, as the repositories always did.
 */
import type { DomainError } from '../../domain/errors.ts';
import type {
  Filter,
  IndexAttributes,
  InventoryStore,
  ItemWrite,
  StoredItem,
  WriteOp,
} from './inventory-store.ts';
import { joinNode, leaveNode } from './node-repository.ts';

/** A document and the version it was read at (the version a write names). */
export interface Versioned<T> {
  readonly doc: T;
  readonly version: number;
}

export interface Page<T> {
  readonly items: T[];
  readonly more: boolean;
}

/** A unique value a record holds, claimed in the same transaction as the record. */
export interface UniqueValue<T> {
  readonly scope: string;
  /** The value, or undefined when the record holds none (an unnamed port group). */
  readonly value: (doc: T) => string | undefined;
  readonly taken: (value: string, doc: T) => DomainError;
}

export interface RecordSpec<T> {
  readonly kind: string;
  readonly id: (doc: T) => string;
  /** The index attributes (kindPk, nameSk, ...); a node's child gets its `parentPk` from `node`. */
  readonly indexes: (doc: T) => IndexAttributes;
  /** Epoch seconds after which DynamoDB may delete the item. */
  readonly expiresAt?: (doc: T) => number | undefined;
  readonly uniques?: readonly UniqueValue<T>[];
  /** For a node's child: its node, whose ledger it joins, and under which it is listed. */
  readonly node?: (doc: T) => string;
  /** Creating an id that exists. */
  readonly exists: (id: string) => DomainError;
  /** A write at a version that is no longer the stored one. */
  readonly changed: (id: string) => DomainError;
  /** A listing's marker that does not exist. */
  readonly missing: (id: string) => DomainError;
}

/** The index partition a page is read from. */
export interface Partition {
  readonly index: string;
  readonly attribute: string;
  readonly value: string;
}

export interface PageQuery {
  readonly limit: number;
  /** Start after this sort value (a marker's position). */
  readonly after?: string | undefined;
  readonly descending?: boolean;
  /** Creation order (listSk, the default) or by name (nameSk). */
  readonly order?: 'created' | 'name';
  /** By default the whole kind (byKind, or byName for the name order). */
  readonly partition?: Partition;
  readonly filters?: readonly Filter[];
}

export interface ListQuery extends Omit<PageQuery, 'after'> {
  /** Start after this record; unknown, the spec's `missing` error. */
  readonly markerUuid?: string | undefined;
  /** Only the children of this node (a spec with `node`). */
  readonly nodeUuid?: string | undefined;
}

/** The parent key of a node's children of one kind, which the node's deletion cascades. */
export const nodeChildParent = (kind: string, nodeUuid: string) => `${kind}@node#${nodeUuid}`;

export const byParent = (value: string): Partition => ({ index: 'byParent', attribute: 'parentPk', value });

/** `{ doc, version }` under the repository's own name for the document (`{ port, version }`). */
export type Named<K extends string, T> = { readonly [P in K]: T } & { readonly version: number };

export function named<K extends string, T>(found: Versioned<T> | undefined, key: K): Named<K, T> | undefined {
  return found && ({ [key]: found.doc, version: found.version } as Named<K, T>);
}

/** Every item of one index partition, `pageSize` at a time, at most `maxPages` pages. */
export async function collect<T>(
  store: InventoryStore,
  partition: Partition,
  pageSize: number,
  maxPages = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const docs: T[] = [];
  let after: string | undefined;
  for (let read = 0; read < maxPages; read++) {
    const page = await store.query<T>({
      index: partition.index,
      partitionAttribute: partition.attribute,
      partitionValue: partition.value,
      sortAttribute: 'listSk',
      after,
      limit: pageSize,
    });
    docs.push(...page.items.map((item) => item.doc));
    const last = page.items.at(-1);
    if (!page.more || !last) break;
    after = last.listSk;
  }
  return docs;
}

export class VersionedRecords<T extends { readonly created_at: string }> {
  readonly store: InventoryStore;
  readonly spec: RecordSpec<T>;

  constructor(store: InventoryStore, spec: RecordSpec<T>) {
    this.store = store;
    this.spec = spec;
  }

  /** The parent key of the children of `nodeUuid` of this kind. */
  parentOf(nodeUuid: string): string {
    return nodeChildParent(this.spec.kind, nodeUuid);
  }

  /** The item of `doc`, listed in creation order by `<created_at>#<id>`. */
  item(doc: T): ItemWrite<T> {
    const id = this.spec.id(doc);
    const node = this.spec.node;
    const uniques = this.held(doc).map(({ unique, value }) => ({ scope: unique.scope, value }));
    const expiresAt = this.spec.expiresAt?.(doc);
    return {
      kind: this.spec.kind,
      id,
      doc,
      listSk: `${doc.created_at}#${id}`,
      indexes: { ...this.spec.indexes(doc), ...(node ? { parentPk: this.parentOf(node(doc)) } : {}) },
      ...(uniques.length > 0 ? { uniques } : {}),
      ...(expiresAt ? { expiresAt } : {}),
    };
  }

  async get(id: string): Promise<Versioned<T> | undefined> {
    const item = await this.store.get<T>(this.spec.kind, id);
    return item && { doc: item.doc, version: item.version };
  }

  /** `get` under the repository's name for the document. */
  async getAs<K extends string>(id: string, key: K): Promise<Named<K, T> | undefined> {
    return named(await this.get(id), key);
  }

  /** The id that holds `value` in the unique `scope` (a name, an address), if any. */
  async idFor(scope: string, value: string): Promise<string | undefined> {
    return this.store.lookupUnique(scope, value);
  }

  createOp(doc: T, onConflict: DomainError = this.spec.exists(this.spec.id(doc))): WriteOp {
    return { type: 'create', item: this.item(doc), onConflict };
  }

  replaceOp(
    doc: T,
    version: number,
    onConflict: DomainError = this.spec.changed(this.spec.id(doc)),
  ): WriteOp {
    return { type: 'replace', item: this.item(doc), expectedVersion: version, onConflict };
  }

  /** Deletes by id, at `version` (or whatever it is, when undefined: then it must exist). */
  deleteOp(
    id: string,
    version: number | undefined,
    onConflict: DomainError = this.spec.changed(id),
  ): WriteOp {
    return {
      type: 'delete',
      kind: this.spec.kind,
      id,
      ...(version !== undefined ? { expectedVersion: version } : {}),
      onConflict,
    };
  }

  /** The record, its unique claims, its node's ledger, then `extra`. */
  createOps(doc: T, extra: readonly WriteOp[] = []): WriteOp[] {
    const id = this.spec.id(doc);
    const node = this.spec.node;
    return [
      this.createOp(doc),
      ...this.held(doc).map(({ unique, value }) => this.claim(unique, value, doc)),
      ...(node ? [joinNode(node(doc), this.spec.kind, id)] : []),
      ...extra,
    ];
  }

  /** `before` (read at `version`) replaced by `after`, then `extra`, the node move, the unique moves. */
  replaceOps(before: T, after: T, version: number, extra: readonly WriteOp[] = []): WriteOp[] {
    const ops: WriteOp[] = [this.replaceOp(after, version), ...extra];
    const node = this.spec.node;
    if (node && node(before) !== node(after)) {
      ops.push(
        joinNode(node(after), this.spec.kind, this.spec.id(after)),
        leaveNode(node(before), this.spec.kind, this.spec.id(before)),
      );
    }
    for (const unique of this.spec.uniques ?? []) {
      const [was, is] = [unique.value(before), unique.value(after)];
      if (was === is) continue;
      if (is !== undefined) ops.push(this.claim(unique, is, after));
      if (was !== undefined) ops.push(this.release(unique.scope, was, before));
    }
    return ops;
  }

  /** The record (read at `version`), its unique values, its place in its node's ledger, then `extra`. */
  deleteOps(doc: T, version: number, extra: readonly WriteOp[] = []): WriteOp[] {
    const id = this.spec.id(doc);
    const node = this.spec.node;
    return [
      this.deleteOp(id, version),
      ...this.held(doc).map(({ unique, value }) => this.release(unique.scope, value, doc)),
      ...(node ? [leaveNode(node(doc), this.spec.kind, id)] : []),
      ...extra,
    ];
  }

  async create(doc: T, extra: readonly WriteOp[] = []): Promise<void> {
    await this.store.write(this.createOps(doc, extra));
  }

  async update(before: T, after: T, version: number, extra: readonly WriteOp[] = []): Promise<void> {
    await this.store.write(this.replaceOps(before, after, version, extra));
  }

  async delete(doc: T, version: number, extra: readonly WriteOp[] = []): Promise<void> {
    await this.store.write(this.deleteOps(doc, version, extra));
  }

  /** Where a listing starts after `markerUuid`: its sort value in `order`. */
  async position(
    markerUuid: string | undefined,
    order: PageQuery['order'] = 'created',
  ): Promise<string | undefined> {
    if (!markerUuid) return undefined;
    const marker = await this.store.get<T>(this.spec.kind, markerUuid);
    if (!marker) throw this.spec.missing(markerUuid);
    return order === 'name' ? this.item(marker.doc).indexes.nameSk : marker.listSk;
  }

  /** A page from a marker: of the kind, of one node's children (`nodeUuid`), or of `partition`. */
  async list(query: ListQuery): Promise<Page<T>> {
    const { markerUuid, nodeUuid, ...rest } = query;
    const after = await this.position(markerUuid, query.order);
    const partition = nodeUuid !== undefined ? byParent(this.parentOf(nodeUuid)) : query.partition;
    return this.page({ ...rest, after, ...(partition ? { partition } : {}) });
  }

  async page(query: PageQuery): Promise<Page<T>> {
    const page = await this.pageItems(query);
    return { items: page.items.map((item) => item.doc), more: page.more };
  }

  async pageItems(query: PageQuery): Promise<{ items: StoredItem<T>[]; more: boolean }> {
    const byName = query.order === 'name';
    const partition = query.partition ?? {
      index: byName ? 'byName' : 'byKind',
      attribute: 'kindPk',
      value: this.spec.kind,
    };
    return this.store.query<T>({
      index: partition.index,
      partitionAttribute: partition.attribute,
      partitionValue: partition.value,
      sortAttribute: byName ? 'nameSk' : 'listSk',
      after: query.after,
      descending: query.descending,
      limit: query.limit,
      filters: query.filters,
    });
  }

  /** The unique values `doc` holds, in the spec's order. */
  private held(doc: T): Array<{ unique: UniqueValue<T>; value: string }> {
    return (this.spec.uniques ?? []).flatMap((unique) => {
      const value = unique.value(doc);
      return value === undefined ? [] : [{ unique, value }];
    });
  }

  private claim(unique: UniqueValue<T>, value: string, owner: T): WriteOp {
    const onConflict = unique.taken(value, owner);
    return { type: 'claim', scope: unique.scope, value, ownerId: this.spec.id(owner), onConflict };
  }

  private release(scope: string, value: string, owner: T): WriteOp {
    return { type: 'release', scope, value, ownerId: this.spec.id(owner) };
  }
}
