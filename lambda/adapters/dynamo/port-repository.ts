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
import type { Filter, InventoryStore, WriteOp } from './inventory-store.ts';
import { byParent, nodeChildParent, VersionedRecords } from './versioned-repository.ts';

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
const PORT_ADDRESS_SCOPE = 'port-address';

export const portParent = (nodeUuid: string) => nodeChildParent(KIND, nodeUuid);
export const portMissing = (uuid: string) => notFound(`Port ${uuid} could not be found.`);

export class PortRepository {
  private readonly records: VersionedRecords<Port>;

  constructor(store: InventoryStore) {
    this.records = new VersionedRecords(store, {
      kind: KIND,
      id: (port) => port.uuid,
      indexes: () => ({ kindPk: KIND }),
      node: (port) => port.node_uuid,
      uniques: [
        {
          scope: PORT_ADDRESS_SCOPE,
          value: (port) => port.address,
          taken: (address) => conflict(`A port with MAC address ${address} already exists.`),
        },
      ],
      exists: (uuid) => conflict(`A port with UUID ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(
          `Port ${uuid} was changed by another request at the same time; retry with the current port.`,
        ),
      missing: portMissing,
    });
  }

  async get(uuid: string): Promise<VersionedPort | undefined> {
    return this.records.getAs(uuid, 'port');
  }

  async uuidForAddress(address: string): Promise<string | undefined> {
    return this.records.idFor(PORT_ADDRESS_SCOPE, address);
  }

  /**
   * Creates the port, claims its MAC and joins its node's ledger (the node must exist and
   * not be being deleted); `checks` are other references that must hold (its group).
   */
  async create(port: Port, checks: readonly WriteOp[] = []): Promise<void> {
    await this.records.create(port, checks);
  }

  /** Replaces `before` (read at `version`) with `after`, moving the MAC claim if it changed. */
  async update(before: Port, after: Port, version: number, checks: readonly WriteOp[] = []): Promise<void> {
    await this.records.update(before, after, version, checks);
  }

  async delete(port: Port, version: number): Promise<void> {
    await this.records.delete(port, version);
  }

  /** The ops of `create` (the port, its MAC claim, its node's ledger), for a caller's transaction. */
  createOps(port: Port): WriteOp[] {
    return this.records.createOps(port);
  }

  /** The ops of `update`, for a caller's transaction. */
  replaceOps(before: Port, after: Port, version: number): WriteOp[] {
    return this.records.replaceOps(before, after, version);
  }

  /** The ops of `delete` (the port, its MAC, its place in its node's ledger), for a caller's transaction. */
  deleteOps(port: Port, version: number): WriteOp[] {
    return this.records.deleteOps(port, version);
  }

  async list(query: PortListQuery): Promise<PortPage> {
    if (query.address !== undefined) return this.listByAddress(query);
    const after = await this.records.position(query.markerUuid);
    const byNode = query.nodeUuid !== undefined;
    const filters: Filter[] = query.portgroupUuid
      ? [{ path: ['doc', 'portgroup_uuid'], op: '=', value: query.portgroupUuid }]
      : [];
    if (query.portgroupUuid && !byNode) throw invalid('Listing the ports of a port group needs its node.');
    const page = await this.records.page({
      ...(byNode ? { partition: byParent(portParent(query.nodeUuid as string)) } : {}),
      after,
      descending: query.descending,
      limit: query.limit,
      filters,
    });
    return { ports: page.items, more: page.more };
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
}
