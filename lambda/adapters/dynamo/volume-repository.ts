/**
 * Volume connectors and targets in the inventory table: one item each (kinds
 * `volume_connector` and `volume_target`), children of their node
 * (`volume_connector@node#<uuid>`, `volume_target@node#<uuid>`, which the node's
 * deletion cascades), each holding its unique value — a connector's type and
 * connector_id, a target's boot index on its node — claimed in the same transaction
 * and listed on the item so that the cascade releases it.
 */
import { conflict, type DomainError, notFound } from '../../domain/errors.ts';
import type { VolumeConnector, VolumeTarget } from '../../domain/inventory/volume.ts';
import type { Page } from './chassis-repository.ts';
import type { InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';
import { joinNode, leaveNode } from './node-repository.ts';

export const CONNECTOR_KIND = 'volume_connector';
export const TARGET_KIND = 'volume_target';
const CONNECTOR_SCOPE = 'volume-connector';
const BOOT_INDEX_SCOPE = 'volume-target-boot-index';

export interface Versioned<T> {
  readonly doc: T;
  readonly version: number;
}

export interface VolumeListQuery {
  readonly limit: number;
  readonly markerUuid?: string | undefined;
  readonly descending: boolean;
  /** Only the records of this node. */
  readonly nodeUuid?: string | undefined;
}

/** How one kind maps to items: its unique value and the error when it is taken. */
interface VolumeKind<T extends { uuid: string; created_at: string; node_uuid: string }> {
  readonly kind: string;
  readonly scope: string;
  readonly unique: (doc: T) => string;
  readonly taken: (doc: T) => DomainError;
  readonly exists: (uuid: string) => DomainError;
  readonly missing: (uuid: string) => DomainError;
  readonly label: string;
}

const CONNECTORS: VolumeKind<VolumeConnector> = {
  kind: CONNECTOR_KIND,
  scope: CONNECTOR_SCOPE,
  unique: (connector) => `${connector.type}:${connector.connector_id}`,
  taken: (connector) =>
    conflict(
      `A volume connector with type ${connector.type} and connector ID ${connector.connector_id} already exists.`,
    ),
  exists: (uuid) => conflict(`A volume connector with UUID ${uuid} already exists.`),
  missing: (uuid) => notFound(`Volume connector ${uuid} could not be found.`),
  label: 'Volume connector',
};

const TARGETS: VolumeKind<VolumeTarget> = {
  kind: TARGET_KIND,
  scope: BOOT_INDEX_SCOPE,
  unique: (target) => `${target.node_uuid}#${target.boot_index}`,
  taken: (target) =>
    conflict(`A volume target with boot index '${target.boot_index}' for the same node already exists.`),
  exists: (uuid) => conflict(`A volume target with UUID ${uuid} already exists.`),
  missing: (uuid) => notFound(`Volume target ${uuid} could not be found.`),
  label: 'Volume target',
};

/** One kind's records: create/replace/delete with the unique claim, listing by kind or node. */
class VolumeRecords<T extends { uuid: string; created_at: string; node_uuid: string }> {
  private readonly store: InventoryStore;
  private readonly spec: VolumeKind<T>;

  constructor(store: InventoryStore, spec: VolumeKind<T>) {
    this.store = store;
    this.spec = spec;
  }

  parentOf(nodeUuid: string): string {
    return `${this.spec.kind}@node#${nodeUuid}`;
  }

  private write(doc: T): ItemWrite<T> {
    return {
      kind: this.spec.kind,
      id: doc.uuid,
      doc,
      listSk: `${doc.created_at}#${doc.uuid}`,
      indexes: { kindPk: this.spec.kind, parentPk: this.parentOf(doc.node_uuid) },
      uniques: [{ scope: this.spec.scope, value: this.spec.unique(doc) }],
    };
  }

  private claim(doc: T): WriteOp {
    return {
      type: 'claim',
      scope: this.spec.scope,
      value: this.spec.unique(doc),
      ownerId: doc.uuid,
      onConflict: this.spec.taken(doc),
    };
  }

  private changed(uuid: string): DomainError {
    return conflict(
      `${this.spec.label} ${uuid} was changed by another request at the same time; retry with the current one.`,
    );
  }

  async get(uuid: string): Promise<Versioned<T> | undefined> {
    const item = await this.store.get<T>(this.spec.kind, uuid);
    return item && { doc: item.doc, version: item.version };
  }

  /** Creates the record and joins its node's ledger (the node must exist, not being deleted). */
  async create(doc: T, checks: readonly WriteOp[] = []): Promise<void> {
    await this.store.write([
      { type: 'create', item: this.write(doc), onConflict: this.spec.exists(doc.uuid) },
      this.claim(doc),
      joinNode(doc.node_uuid, this.spec.kind, doc.uuid),
      ...checks,
    ]);
  }

  async update(before: T, after: T, version: number, checks: readonly WriteOp[] = []): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: this.write(after),
        expectedVersion: version,
        onConflict: this.changed(after.uuid),
      },
      ...checks,
    ];
    if (before.node_uuid !== after.node_uuid) {
      ops.push(
        joinNode(after.node_uuid, this.spec.kind, after.uuid),
        leaveNode(before.node_uuid, this.spec.kind, before.uuid),
      );
    }
    const [was, is] = [this.spec.unique(before), this.spec.unique(after)];
    if (was !== is) {
      ops.push(this.claim(after), {
        type: 'release',
        scope: this.spec.scope,
        value: was,
        ownerId: before.uuid,
      });
    }
    await this.store.write(ops);
  }

  async delete(doc: T, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'delete',
        kind: this.spec.kind,
        id: doc.uuid,
        expectedVersion: version,
        onConflict: this.changed(doc.uuid),
      },
      { type: 'release', scope: this.spec.scope, value: this.spec.unique(doc), ownerId: doc.uuid },
      leaveNode(doc.node_uuid, this.spec.kind, doc.uuid),
    ]);
  }

  async list(query: VolumeListQuery): Promise<Page<T>> {
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.store.get<T>(this.spec.kind, query.markerUuid);
      if (!marker) throw this.spec.missing(query.markerUuid);
      after = marker.listSk;
    }
    const [index, partitionAttribute, partitionValue] = query.nodeUuid
      ? ['byParent', 'parentPk', this.parentOf(query.nodeUuid)]
      : ['byKind', 'kindPk', this.spec.kind];
    const page = await this.store.query<T>({
      index,
      partitionAttribute,
      partitionValue,
      sortAttribute: 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
    });
    return { items: page.items.map((item) => item.doc), more: page.more };
  }
}

export class VolumeRepository {
  readonly connectors: VolumeRecords<VolumeConnector>;
  readonly targets: VolumeRecords<VolumeTarget>;

  constructor(store: InventoryStore) {
    this.connectors = new VolumeRecords(store, CONNECTORS);
    this.targets = new VolumeRecords(store, TARGETS);
  }
}
