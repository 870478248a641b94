/**
 * Port groups in the inventory table: one item per group under its node
 * (`parentPk = portgroup@node#<node uuid>`, cascaded with the node), the name and the
 * MAC address (each optional) claimed fleet-wide in the same transaction and listed in
 * `uniques` so a cascade releases them. A port joining a group rewrites the group at
 * the version read (`touch`), so a concurrent delete of the group cannot strand it.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { Portgroup } from '../../domain/ports/portgroup.ts';
import type { InventoryStore, WriteOp } from './inventory-store.ts';
import { nodeChildParent, VersionedRecords } from './versioned-repository.ts';

export interface VersionedPortgroup {
  readonly portgroup: Portgroup;
  readonly version: number;
}

export interface PortgroupListQuery {
  readonly limit: number;
  readonly markerUuid?: string;
  readonly descending: boolean;
  readonly nodeUuid?: string;
  /** Only the group with this (normalized) MAC address. */
  readonly address?: string;
}

export interface PortgroupPage {
  readonly portgroups: Portgroup[];
  readonly more: boolean;
}

const KIND = 'portgroup';
const PORTGROUP_NAME_SCOPE = 'portgroup-name';
const PORTGROUP_ADDRESS_SCOPE = 'portgroup-address';

export const portgroupParent = (nodeUuid: string) => nodeChildParent(KIND, nodeUuid);
export const portgroupMissing = (ident: string) => notFound(`Portgroup ${ident} could not be found.`);

export class PortgroupRepository {
  private readonly records: VersionedRecords<Portgroup>;

  constructor(store: InventoryStore) {
    this.records = new VersionedRecords(store, {
      kind: KIND,
      id: (portgroup) => portgroup.uuid,
      indexes: () => ({ kindPk: KIND }),
      node: (portgroup) => portgroup.node_uuid,
      uniques: [
        {
          scope: PORTGROUP_NAME_SCOPE,
          value: (portgroup) => portgroup.name || undefined,
          taken: (name) => conflict(`A portgroup with name ${name} already exists.`),
        },
        {
          scope: PORTGROUP_ADDRESS_SCOPE,
          value: (portgroup) => portgroup.address || undefined,
          taken: (address) => conflict(`A portgroup with MAC address ${address} already exists.`),
        },
      ],
      exists: (uuid) => conflict(`A portgroup with UUID ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(`Portgroup ${uuid} was changed by another request at the same time; retry.`),
      missing: portgroupMissing,
    });
  }

  async get(uuid: string): Promise<VersionedPortgroup | undefined> {
    return this.records.getAs(uuid, 'portgroup');
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.records.idFor(PORTGROUP_NAME_SCOPE, name);
  }

  async uuidForAddress(address: string): Promise<string | undefined> {
    return this.records.idFor(PORTGROUP_ADDRESS_SCOPE, address);
  }

  async create(portgroup: Portgroup, checks: readonly WriteOp[] = []): Promise<void> {
    await this.records.create(portgroup, checks);
  }

  async update(
    before: Portgroup,
    after: Portgroup,
    version: number,
    checks: readonly WriteOp[] = [],
  ): Promise<void> {
    await this.records.update(before, after, version, checks);
  }

  async delete(portgroup: Portgroup, version: number): Promise<void> {
    await this.records.delete(portgroup, version);
  }

  /** Rewrites the group unchanged at `version`: a port joins it, so it must not vanish meanwhile. */
  touch(portgroup: Portgroup, version: number): WriteOp {
    return this.records.replaceOp(portgroup, version);
  }

  async list(query: PortgroupListQuery): Promise<PortgroupPage> {
    if (query.address !== undefined) {
      const uuid = await this.uuidForAddress(query.address);
      const found = uuid ? await this.get(uuid) : undefined;
      const matches =
        found !== undefined && (query.nodeUuid === undefined || found.portgroup.node_uuid === query.nodeUuid);
      return { portgroups: matches ? [found.portgroup] : [], more: false };
    }
    const page = await this.records.list(query);
    return { portgroups: page.items, more: page.more };
  }
}
