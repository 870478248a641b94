/**
 * Volume connectors and targets in the inventory table: one item each (kinds
 * `volume_connector` and `volume_target`), children of their node
 * (`volume_connector@node#<uuid>`, `volume_target@node#<uuid>`, which the node's
 * deletion cascades), each holding its unique value — a connector's type and
 * connector_id, a target's boot index on its node — claimed in the same transaction
 * and listed on the item so that the cascade releases it.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { VolumeConnector, VolumeTarget } from '../../domain/inventory/volume.ts';
import type { InventoryStore } from './inventory-store.ts';
import { VersionedRecords } from './versioned-repository.ts';

export type { Versioned } from './versioned-repository.ts';

export const CONNECTOR_KIND = 'volume_connector';
export const TARGET_KIND = 'volume_target';
const CONNECTOR_SCOPE = 'volume-connector';
const BOOT_INDEX_SCOPE = 'volume-target-boot-index';

const changed = (label: string, uuid: string) =>
  conflict(`${label} ${uuid} was changed by another request at the same time; retry with the current one.`);

/** Create/replace/delete with the unique claim and the node's ledger, listing by kind or node. */
export class VolumeRepository {
  readonly connectors: VersionedRecords<VolumeConnector>;
  readonly targets: VersionedRecords<VolumeTarget>;

  constructor(store: InventoryStore) {
    this.connectors = new VersionedRecords(store, {
      kind: CONNECTOR_KIND,
      id: (connector) => connector.uuid,
      indexes: () => ({ kindPk: CONNECTOR_KIND }),
      node: (connector) => connector.node_uuid,
      uniques: [
        {
          scope: CONNECTOR_SCOPE,
          value: (connector) => `${connector.type}:${connector.connector_id}`,
          taken: (_, connector) =>
            conflict(
              `A volume connector with type ${connector.type} and connector ID ${connector.connector_id} already exists.`,
            ),
        },
      ],
      exists: (uuid) => conflict(`A volume connector with UUID ${uuid} already exists.`),
      changed: (uuid) => changed('Volume connector', uuid),
      missing: (uuid) => notFound(`Volume connector ${uuid} could not be found.`),
    });
    this.targets = new VersionedRecords(store, {
      kind: TARGET_KIND,
      id: (target) => target.uuid,
      indexes: () => ({ kindPk: TARGET_KIND }),
      node: (target) => target.node_uuid,
      uniques: [
        {
          scope: BOOT_INDEX_SCOPE,
          value: (target) => `${target.node_uuid}#${target.boot_index}`,
          taken: (_, target) =>
            conflict(
              `A volume target with boot index '${target.boot_index}' for the same node already exists.`,
            ),
        },
      ],
      exists: (uuid) => conflict(`A volume target with UUID ${uuid} already exists.`),
      changed: (uuid) => changed('Volume target', uuid),
      missing: (uuid) => notFound(`Volume target ${uuid} could not be found.`),
    });
  }
}
