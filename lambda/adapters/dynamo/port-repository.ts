/**
 * Ports in the inventory table: one item per port under its node
 * (`parentPk = port@node#<node uuid>`, so deleting the node cascades to its ports), the
 * MAC address claimed fleet-wide in the same transaction as the port (and released with
 * it, by a cascade too: the item lists it in `uniques`), every write conditional on the
 * version that was read. Listings use indexes only: all ports (byKind), a node's ports
 * (byParent), a port group's ports (its node's ports, filtered), a MAC (its claim).
 */
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import type { Port } from '../../domain/ports/port.ts';
import type { Filter, InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';
import { joinNode, leaveNode } from './node-repository.ts';

export interface VersionedPort {
  readonly port: Port;
  readonly version: number;
}

export interface PortListQuery {
  readonly limit: number;
  readonly markerUuid?: string;
  readonly descending: boolean;
  /** Only this node's ports. */
  readonly nodeUuid?: string;
  /** Only this port group's ports; give its node as `nodeUuid` too (the index it reads). */
  readonly portgroupUuid?: string;
  /** Only the port with this (normalized) MAC address. */
  readonly address?: string;
}

export interface PortPage {
  readonly ports: Port[];
  readonly more: boolean;
}

const KIND = 'port';
export const PORT_ADDRESS_SCOPE = 'port-address';

export const portParent = (nodeUuid: string) => `${KIND}@node#${nodeUuid}`;

function sortKey(port: Port): string {
  return `${port.created_at}#${port.uuid}`;
}

export function portWrite(port: Port): ItemWrite<Port> {
  return {
    kind: KIND,
    id: port.uuid,
    doc: port,
    listSk: sortKey(port),
    indexes: { kindPk: KIND, parentPk: portParent(port.node_uuid) },
    uniques: [{ scope: PORT_ADDRESS_SCOPE, value: port.address }],
  };
}

export const macTaken = (address: string) => conflict(`A port with MAC address ${address} already exists.`);
const concurrentChange = (uuid: string) =>
  conflict(`Port ${uuid} was changed by another request at the same time; retry with the current port.`);
export const portMissing = (uuid: string) => notFound(`Port ${uuid} could not be found.`);

export class PortRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(uuid: string): Promise<VersionedPort | undefined> {
    const item = await this.store.get<Port>(KIND, uuid);
    return item && { port: item.doc, version: item.version };
  }

  async uuidForAddress(address: string): Promise<string | undefined> {
    return this.store.lookupUnique(PORT_ADDRESS_SCOPE, address);
  }

  /**
   * Creates the port, claims its MAC and joins its node's ledger (the node must exist and
   * not be being deleted); `checks` are other references that must hold (its group).
   */
  async create(port: Port, checks: readonly WriteOp[] = []): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: portWrite(port),
        onConflict: conflict(`A port with UUID ${port.uuid} already exists.`),
      },
      this.claimAddress(port),
      joinNode(port.node_uuid, KIND, port.uuid),
      ...checks,
    ]);
  }

  /** Replaces `before` (read at `version`) with `after`, moving the MAC claim if it changed. */
  async update(before: Port, after: Port, version: number, checks: readonly WriteOp[] = []): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: portWrite(after),
        expectedVersion: version,
        onConflict: concurrentChange(after.uuid),
      },
      ...checks,
    ];
    if (before.node_uuid !== after.node_uuid) {
      ops.push(joinNode(after.node_uuid, KIND, after.uuid), leaveNode(before.node_uuid, KIND, before.uuid));
    }
    if (before.address !== after.address) {
      ops.push(this.claimAddress(after), {
        type: 'release',
        scope: PORT_ADDRESS_SCOPE,
        value: before.address,
        ownerId: before.uuid,
      });
    }
    await this.store.write(ops);
  }

  async delete(port: Port, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'delete',
        kind: KIND,
        id: port.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(port.uuid),
      },
      { type: 'release', scope: PORT_ADDRESS_SCOPE, value: port.address, ownerId: port.uuid },
      leaveNode(port.node_uuid, KIND, port.uuid),
    ]);
  }

  async list(query: PortListQuery): Promise<PortPage> {
    if (query.address !== undefined) return this.listByAddress(query);
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.get(query.markerUuid);
      if (!marker) throw portMissing(query.markerUuid);
      after = sortKey(marker.port);
    }
    const byNode = query.nodeUuid !== undefined;
    const filters: Filter[] = query.portgroupUuid
      ? [{ path: ['doc', 'portgroup_uuid'], op: '=', value: query.portgroupUuid }]
      : [];
    if (query.portgroupUuid && !byNode) throw invalid('Listing the ports of a port group needs its node.');
    const page = await this.store.query<Port>({
      index: byNode ? 'byParent' : 'byKind',
      partitionAttribute: byNode ? 'parentPk' : 'kindPk',
      partitionValue: byNode ? portParent(query.nodeUuid as string) : KIND,
      sortAttribute: 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
      filters,
    });
    return { ports: page.items.map((item) => item.doc), more: page.more };
  }

  /** Whether any port of the node is a member of the port group. */
  async anyInPortgroup(nodeUuid: string, portgroupUuid: string): Promise<boolean> {
    const page = await this.list({ limit: 1, descending: false, nodeUuid, portgroupUuid });
    return page.ports.length > 0;
  }

  private async listByAddress(query: PortListQuery): Promise<PortPage> {
    const uuid = await this.uuidForAddress(query.address as string);
    const found = uuid ? await this.get(uuid) : undefined;
    const port = found?.port;
    const matches =
      port !== undefined &&
      (query.nodeUuid === undefined || port.node_uuid === query.nodeUuid) &&
      (query.portgroupUuid === undefined || port.portgroup_uuid === query.portgroupUuid);
    return { ports: matches ? [port] : [], more: false };
  }

  private claimAddress(port: Port): WriteOp {
    return {
      type: 'claim',
      scope: PORT_ADDRESS_SCOPE,
      value: port.address,
      ownerId: port.uuid,
      onConflict: macTaken(port.address),
    };
  }
}
