/**
 * Port groups in the inventory table: one item per group under its node
 * (`parentPk = portgroup@node#<node uuid>`, cascaded with the node), the name and the
 * MAC address (each optional) claimed fleet-wide in the same transaction and listed in
 * `uniques` so a cascade releases them. A port joining a group rewrites the group at
 * the version read (`touch`), so a concurrent delete of the group cannot strand it.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { Portgroup } from '../../domain/ports/portgroup.ts';
import type { InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';
import { joinNode, leaveNode } from './node-repository.ts';

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
export const PORTGROUP_NAME_SCOPE = 'portgroup-name';
export const PORTGROUP_ADDRESS_SCOPE = 'portgroup-address';

export const portgroupParent = (nodeUuid: string) => `${KIND}@node#${nodeUuid}`;

function sortKey(portgroup: Portgroup): string {
  return `${portgroup.created_at}#${portgroup.uuid}`;
}

function uniques(portgroup: Portgroup): Array<{ scope: string; value: string }> {
  const held: Array<{ scope: string; value: string }> = [];
  if (portgroup.name) held.push({ scope: PORTGROUP_NAME_SCOPE, value: portgroup.name });
  if (portgroup.address) held.push({ scope: PORTGROUP_ADDRESS_SCOPE, value: portgroup.address });
  return held;
}

export function portgroupWrite(portgroup: Portgroup): ItemWrite<Portgroup> {
  return {
    kind: KIND,
    id: portgroup.uuid,
    doc: portgroup,
    listSk: sortKey(portgroup),
    indexes: { kindPk: KIND, parentPk: portgroupParent(portgroup.node_uuid) },
    uniques: uniques(portgroup),
  };
}

const concurrentChange = (uuid: string) =>
  conflict(`Portgroup ${uuid} was changed by another request at the same time; retry.`);
export const portgroupMissing = (ident: string) => notFound(`Portgroup ${ident} could not be found.`);

export class PortgroupRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(uuid: string): Promise<VersionedPortgroup | undefined> {
    const item = await this.store.get<Portgroup>(KIND, uuid);
    return item && { portgroup: item.doc, version: item.version };
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.store.lookupUnique(PORTGROUP_NAME_SCOPE, name);
  }

  async uuidForAddress(address: string): Promise<string | undefined> {
    return this.store.lookupUnique(PORTGROUP_ADDRESS_SCOPE, address);
  }

  async create(portgroup: Portgroup, checks: readonly WriteOp[] = []): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: portgroupWrite(portgroup),
        onConflict: conflict(`A portgroup with UUID ${portgroup.uuid} already exists.`),
      },
      ...this.claims(portgroup),
      joinNode(portgroup.node_uuid, KIND, portgroup.uuid),
      ...checks,
    ]);
  }

  async update(
    before: Portgroup,
    after: Portgroup,
    version: number,
    checks: readonly WriteOp[] = [],
  ): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: portgroupWrite(after),
        expectedVersion: version,
        onConflict: concurrentChange(after.uuid),
      },
      ...checks,
    ];
    if (before.node_uuid !== after.node_uuid) {
      ops.push(joinNode(after.node_uuid, KIND, after.uuid), leaveNode(before.node_uuid, KIND, before.uuid));
    }
    if (before.name !== after.name) {
      if (after.name) ops.push(this.claimName(after));
      if (before.name)
        ops.push({ type: 'release', scope: PORTGROUP_NAME_SCOPE, value: before.name, ownerId: before.uuid });
    }
    if (before.address !== after.address) {
      if (after.address) ops.push(this.claimAddress(after));
      if (before.address) {
        ops.push({
          type: 'release',
          scope: PORTGROUP_ADDRESS_SCOPE,
          value: before.address,
          ownerId: before.uuid,
        });
      }
    }
    await this.store.write(ops);
  }

  async delete(portgroup: Portgroup, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'delete',
        kind: KIND,
        id: portgroup.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(portgroup.uuid),
      },
      ...uniques(portgroup).map(
        (unique): WriteOp => ({ type: 'release', ...unique, ownerId: portgroup.uuid }),
      ),
      leaveNode(portgroup.node_uuid, KIND, portgroup.uuid),
    ]);
  }

  /** Rewrites the group unchanged at `version`: a port joins it, so it must not vanish meanwhile. */
  touch(portgroup: Portgroup, version: number): WriteOp {
    return {
      type: 'replace',
      item: portgroupWrite(portgroup),
      expectedVersion: version,
      onConflict: concurrentChange(portgroup.uuid),
    };
  }

  async list(query: PortgroupListQuery): Promise<PortgroupPage> {
    if (query.address !== undefined) {
      const uuid = await this.uuidForAddress(query.address);
      const found = uuid ? await this.get(uuid) : undefined;
      const matches =
        found !== undefined && (query.nodeUuid === undefined || found.portgroup.node_uuid === query.nodeUuid);
      return { portgroups: matches ? [found.portgroup] : [], more: false };
    }
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.get(query.markerUuid);
      if (!marker) throw portgroupMissing(query.markerUuid);
      after = sortKey(marker.portgroup);
    }
    const byNode = query.nodeUuid !== undefined;
    const page = await this.store.query<Portgroup>({
      index: byNode ? 'byParent' : 'byKind',
      partitionAttribute: byNode ? 'parentPk' : 'kindPk',
      partitionValue: byNode ? portgroupParent(query.nodeUuid as string) : KIND,
      sortAttribute: 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
    });
    return { portgroups: page.items.map((item) => item.doc), more: page.more };
  }

  private claims(portgroup: Portgroup): WriteOp[] {
    const ops: WriteOp[] = [];
    if (portgroup.name) ops.push(this.claimName(portgroup));
    if (portgroup.address) ops.push(this.claimAddress(portgroup));
    return ops;
  }

  private claimName(portgroup: Portgroup): WriteOp {
    const name = portgroup.name as string;
    return {
      type: 'claim',
      scope: PORTGROUP_NAME_SCOPE,
      value: name,
      ownerId: portgroup.uuid,
      onConflict: conflict(`A portgroup with name ${name} already exists.`),
    };
  }

  private claimAddress(portgroup: Portgroup): WriteOp {
    const address = portgroup.address as string;
    return {
      type: 'claim',
      scope: PORTGROUP_ADDRESS_SCOPE,
      value: address,
      ownerId: portgroup.uuid,
      onConflict: conflict(`A portgroup with MAC address ${address} already exists.`),
    };
  }
}
