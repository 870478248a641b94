/**
 * Chassis in the inventory table: one item per chassis (kind `chassis`, the kind the
 * node repository's `exists` check names), listed in creation order by `byKind`. The
 * nodes of a chassis are the node items indexed under `node@chassis#<uuid>`.
 */
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import type { Chassis } from '../../domain/inventory/chassis.ts';
import type { InventoryStore } from './inventory-store.ts';
import { byParent, type Page, VersionedRecords } from './versioned-repository.ts';

export const CHASSIS_KIND = 'chassis';

export interface VersionedChassis {
  readonly chassis: Chassis;
  readonly version: number;
}

export interface CreationOrderQuery {
  readonly limit: number;
  readonly markerUuid?: string | undefined;
  readonly descending: boolean;
}

/** The parent key the node repository indexes a chassis' nodes under. */
export const chassisNodesParent = (uuid: string) => `node@chassis#${uuid}`;

export class ChassisRepository {
  private readonly records: VersionedRecords<Chassis>;

  constructor(store: InventoryStore) {
    this.records = new VersionedRecords(store, {
      kind: CHASSIS_KIND,
      id: (chassis) => chassis.uuid,
      indexes: () => ({ kindPk: CHASSIS_KIND }),
      exists: (uuid) => conflict(`A chassis with UUID ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(
          `Chassis ${uuid} was changed by another request at the same time; retry with the current chassis.`,
        ),
      missing: (uuid) => notFound(`Chassis ${uuid} could not be found.`),
    });
  }

  async get(uuid: string): Promise<VersionedChassis | undefined> {
    return this.records.getAs(uuid, 'chassis');
  }

  async create(chassis: Chassis): Promise<void> {
    await this.records.create(chassis);
  }

  async update(chassis: Chassis, version: number): Promise<void> {
    await this.records.store.write([this.records.replaceOp(chassis, version)]);
  }

  /** True when at least one node belongs to the chassis. */
  async hasNodes(uuid: string): Promise<boolean> {
    const page = await this.records.page({ partition: byParent(chassisNodesParent(uuid)), limit: 1 });
    return page.items.length > 0;
  }

  /** Deletes an empty chassis (Ironic's ChassisNotEmpty, 400, when it holds nodes). */
  async delete(chassis: Chassis, version: number): Promise<void> {
    if (await this.hasNodes(chassis.uuid)) {
      throw invalid(`Cannot complete the requested action because chassis ${chassis.uuid} contains nodes.`);
    }
    await this.records.delete(chassis, version);
  }

  async list(query: CreationOrderQuery): Promise<Page<Chassis>> {
    return this.records.list(query);
  }
}
