/**
 * The inspection data of nodes in the inventory table: one item per node (kind
 * `node_inventory`, id the node's UUID), a child of the node (`node_inventory@node#<uuid>`)
 * that joins the node's ledger, so the node's deletion deletes it. The item holds
 * `{"inventory": ..., "plugin_data": ...}` as gzip-compressed JSON in a binary attribute:
 * an inventory of a large server is hundreds of KB of JSON, compressed a tenth of that,
 * and DynamoDB's items stop at 400 KB. What is still too big compressed is refused.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { conflict, DomainError, notFound } from '../../domain/errors.ts';
import type { InventoryStore, WriteOp } from './inventory-store.ts';
import { VersionedRecords } from './versioned-repository.ts';

export const NODE_INVENTORY_KIND = 'node_inventory';
/** The most compressed bytes one record holds: DynamoDB's 400 KB, less room for the item's keys. */
export const MAX_COMPRESSED_INVENTORY_BYTES = 380 * 1024;

/** What Ironic's `GET /v1/nodes/{node}/inventory` answers. */
export interface InspectionData {
  readonly inventory: Record<string, unknown>;
  readonly plugin_data: Record<string, unknown>;
}

/** The stored document. */
interface InventoryRecord {
  readonly node_uuid: string;
  readonly created_at: string;
  readonly updated_at: string | null;
  /** `data` is the UTF-8 JSON of `InspectionData`, gzip-compressed. */
  readonly encoding: 'json+gzip';
  readonly data: Uint8Array;
  /** The JSON's size before compression. */
  readonly size: number;
}

export interface StoredInspectionData extends InspectionData {
  readonly created_at: string;
  readonly updated_at: string | null;
}

export const nodeInventoryMissing = (nodeUuid: string) =>
  notFound(`Node inventory record for node ${nodeUuid} could not be found.`);

export class NodeInventoryRepository {
  private readonly records: VersionedRecords<InventoryRecord>;
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
    this.records = new VersionedRecords(store, {
      kind: NODE_INVENTORY_KIND,
      id: (record) => record.node_uuid,
      indexes: () => ({}),
      node: (record) => record.node_uuid,
      exists: (uuid) => conflict(`Node ${uuid} already has an inventory.`),
      changed: (uuid) =>
        conflict(`The inventory of node ${uuid} was stored by another request at the same time; retry.`),
      missing: nodeInventoryMissing,
    });
  }

  /** The node's inspection data, or undefined when it has none. */
  async get(nodeUuid: string): Promise<StoredInspectionData | undefined> {
    const found = await this.records.get(nodeUuid);
    if (!found) return undefined;
    const record = found.doc;
    const data = JSON.parse(gunzipSync(record.data).toString('utf8')) as InspectionData;
    return {
      inventory: data.inventory,
      plugin_data: data.plugin_data,
      created_at: record.created_at,
      updated_at: record.updated_at,
    };
  }

  /**
   * Stores the node's inspection data, replacing what it had (the node must exist and not
   * be being deleted). Refused (413) when it is more than a record holds compressed.
   */
  async put(nodeUuid: string, data: InspectionData, now: string): Promise<void> {
    await this.store.write(await this.putOps(nodeUuid, data, now));
  }

  /**
   * The ops of `put` (read the current record, then create or replace it at its version),
   * for a caller's transaction; throws as `put` does when the data is too large.
   */
  async putOps(nodeUuid: string, data: InspectionData, now: string): Promise<WriteOp[]> {
    const json = JSON.stringify({ inventory: data.inventory, plugin_data: data.plugin_data });
    const raw = Buffer.from(json, 'utf8');
    const compressed = gzipSync(raw);
    if (compressed.length > MAX_COMPRESSED_INVENTORY_BYTES) {
      throw new DomainError(
        'too-large',
        `The inspection data of node ${nodeUuid} is ${compressed.length} bytes compressed (${raw.length} as JSON); at most ${MAX_COMPRESSED_INVENTORY_BYTES} can be stored.`,
      );
    }
    const found = await this.records.get(nodeUuid);
    const record: InventoryRecord = {
      node_uuid: nodeUuid,
      created_at: found?.doc.created_at ?? now,
      updated_at: found ? now : null,
      encoding: 'json+gzip',
      data: new Uint8Array(compressed),
      size: raw.length,
    };
    return found ? this.records.replaceOps(found.doc, record, found.version) : this.records.createOps(record);
  }

  /** Deletes the node's inspection data; none is no error. */
  async delete(nodeUuid: string): Promise<void> {
    const found = await this.records.get(nodeUuid);
    if (found) await this.records.delete(found.doc, found.version);
  }
}
