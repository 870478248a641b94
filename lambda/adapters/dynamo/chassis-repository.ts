/**
 * Chassis in the inventory table: one item per chassis (kind `chassis`, the kind the
 * node repository's `exists` check names), listed in creation order by `byKind`. The
 * nodes of a chassis are the node items indexed under `node@chassis#<uuid>`.
 */
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import type { Chassis } from '../../domain/inventory/chassis.ts';
import type { InventoryStore, ItemWrite } from './inventory-store.ts';

export const CHASSIS_KIND = 'chassis';

export interface VersionedChassis {
  readonly chassis: Chassis;
  readonly version: number;
}

export interface Page<T> {
  readonly items: T[];
  readonly more: boolean;
}

export interface CreationOrderQuery {
  readonly limit: number;
  readonly markerUuid?: string | undefined;
  readonly descending: boolean;
}

/** The parent key the node repository indexes a chassis' nodes under. */
export const chassisNodesParent = (uuid: string) => `node@chassis#${uuid}`;

const concurrentChange = (uuid: string) =>
  conflict(
    `Chassis ${uuid} was changed by another request at the same time; retry with the current chassis.`,
  );

function chassisWrite(chassis: Chassis): ItemWrite<Chassis> {
  return {
    kind: CHASSIS_KIND,
    id: chassis.uuid,
    doc: chassis,
    listSk: `${chassis.created_at}#${chassis.uuid}`,
    indexes: { kindPk: CHASSIS_KIND },
  };
}

export class ChassisRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(uuid: string): Promise<VersionedChassis | undefined> {
    const item = await this.store.get<Chassis>(CHASSIS_KIND, uuid);
    return item && { chassis: item.doc, version: item.version };
  }

  async create(chassis: Chassis): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: chassisWrite(chassis),
        onConflict: conflict(`A chassis with UUID ${chassis.uuid} already exists.`),
      },
    ]);
  }

  async update(chassis: Chassis, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'replace',
        item: chassisWrite(chassis),
        expectedVersion: version,
        onConflict: concurrentChange(chassis.uuid),
      },
    ]);
  }

  /** True when at least one node belongs to the chassis. */
  async hasNodes(uuid: string): Promise<boolean> {
    const page = await this.store.query({
      index: 'byParent',
      partitionAttribute: 'parentPk',
      partitionValue: chassisNodesParent(uuid),
      sortAttribute: 'listSk',
      limit: 1,
    });
    return page.items.length > 0;
  }

  /** Deletes an empty chassis (Ironic's ChassisNotEmpty, 400, when it holds nodes). */
  async delete(chassis: Chassis, version: number): Promise<void> {
    if (await this.hasNodes(chassis.uuid)) {
      throw invalid(`Cannot complete the requested action because chassis ${chassis.uuid} contains nodes.`);
    }
    await this.store.write([
      {
        type: 'delete',
        kind: CHASSIS_KIND,
        id: chassis.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(chassis.uuid),
      },
    ]);
  }

  async list(query: CreationOrderQuery): Promise<Page<Chassis>> {
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.store.get<Chassis>(CHASSIS_KIND, query.markerUuid);
      if (!marker) throw notFound(`Chassis ${query.markerUuid} could not be found.`);
      after = marker.listSk;
    }
    const page = await this.store.query<Chassis>({
      index: 'byKind',
      partitionAttribute: 'kindPk',
      partitionValue: CHASSIS_KIND,
      sortAttribute: 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
    });
    return { items: page.items.map((item) => item.doc), more: page.more };
  }
}
