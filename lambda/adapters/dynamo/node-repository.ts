/**
 * Nodes in the inventory table: one item per node, unique names and instance UUIDs
 * claimed in the same transaction, the listing indexes kept on the item, and every
 * write conditional on the version that was read. Beside each node, the ledger of its
 * children (what its deletion must remove first); beside each site, its node count
 * (docs/decisions.md, "A parent's ledger").
 */
import { holdsSecrets, type SecretSealer, sealSecrets } from '../../domain/auth/sealing.ts';
import { ConcurrentChange, conflict, type DomainError, invalid, notFound } from '../../domain/errors.ts';
import { catalogReference } from '../../domain/images/image.ts';
import type { Node } from '../../domain/nodes/node.ts';
import { publishNodeChanges } from '../events.ts';
import type {
  Filter,
  IndexAttributes,
  InventoryStore,
  ItemWrite,
  LedgerRef,
  StoredItem,
  WriteOp,
} from './inventory-store.ts';

/** A change of a node with writes that go in the same transaction (history events ...). */
export interface NodeChange {
  readonly node: Node;
  readonly ops: readonly WriteOp[];
}

export interface VersionedNode {
  readonly node: Node;
  readonly version: number;
}

export interface NodeListQuery {
  readonly limit: number;
  readonly markerUuid?: string;
  readonly sortKey: 'created_at' | 'name';
  readonly descending: boolean;
  /** Exact-match filters on node fields (driver, provision_state, maintenance ...). */
  readonly equals: Readonly<Record<string, string | boolean | null>>;
  /** `associated=True/False`: instance_uuid set or not. */
  readonly associated?: boolean;
  /** A project-scoped caller sees nodes it owns or leases, nothing else. */
  readonly project?: string;
}

export interface NodePage {
  readonly nodes: Node[];
  readonly more: boolean;
}

const KIND = 'node';

/**
 * The ledger of a node's ports, portgroups and volume records (their `<kind>#<uuid>`),
 * joined in each child's creating transaction and closed when the node's deletion starts.
 */
export const nodeChildren = (uuid: string): LedgerRef => ({ kind: KIND, id: uuid, name: 'children' });
/** The count of a site's nodes (those created or moved since the ledger exists). */
export const siteNodes = (site: string): LedgerRef => ({ kind: 'site', id: site, name: 'nodes' });

/** Kinds recorded in a node's ledger; any other child (bios settings ...) is found by index only. */
export const LEDGER_CHILD_KINDS = [
  'port',
  'portgroup',
  'volume_connector',
  'volume_target',
  'node_inventory',
];
/** Rounds of one deletion (children, then the node) before a concurrent change makes it give up. */
const DELETE_ROUNDS = 5;

/** The op a child's creation (or move) adds: its node exists, is not being deleted, records it. */
export function joinNode(nodeUuid: string, kind: string, childUuid: string): WriteOp {
  return {
    type: 'join',
    ledger: nodeChildren(nodeUuid),
    member: `${kind}#${childUuid}`,
    onMissing: invalid(`Node ${nodeUuid} could not be found.`),
    onClosed: nodeDeleting(nodeUuid),
  };
}

/** The op a child's deletion (or move away) adds. */
export function leaveNode(nodeUuid: string, kind: string, childUuid: string): WriteOp {
  return { type: 'leave', ledger: nodeChildren(nodeUuid), members: [`${kind}#${childUuid}`] };
}

export const nodeDeleting = (uuid: string) =>
  conflict(`Node ${uuid} is being deleted: nothing can be added to it. Retry the DELETE to finish it.`);

/** Node fields with an index of their own, and the index's partition attribute. */
const INDEXED: ReadonlyArray<readonly [field: string, index: string, attribute: string]> = [
  ['provision_state', 'byState', 'statePk'],
  ['conductor_group', 'bySite', 'sitePk'],
  ['driver', 'byDriver', 'driverPk'],
  ['owner', 'byOwner', 'ownerPk'],
  ['lessee', 'byLessee', 'lesseePk'],
  ['resource_class', 'byResourceClass', 'classPk'],
];

export function listSortKey(node: Node): string {
  return `${node.created_at}#${node.uuid}`;
}

function nameSortKey(node: Node): string {
  return `${node.name ?? ''}#${node.uuid}`;
}

function indexAttributes(node: Node): IndexAttributes {
  const source = node as unknown as Record<string, unknown>;
  const attributes: Record<string, string | undefined> = { kindPk: KIND, nameSk: nameSortKey(node) };
  for (const [field, , attribute] of INDEXED) {
    const value = source[field];
    attributes[attribute] = typeof value === 'string' && value !== '' ? `${KIND}#${value}` : undefined;
  }
  if (node.chassis_uuid) attributes.parentPk = `node@chassis#${node.chassis_uuid}`;
  // The catalog image the node deploys (`byImage`): an image in use is not deleted.
  const image = catalogReference(node.instance_info?.image_source);
  if (image) attributes.imagePk = `${KIND}#${image}`;
  return attributes;
}

export function nodeWrite(node: Node): ItemWrite<Node> {
  return { kind: KIND, id: node.uuid, doc: node, listSk: listSortKey(node), indexes: indexAttributes(node) };
}

const nameTaken = (name: string) => conflict(`A node with name ${name} already exists.`);
const instanceTaken = (uuid: string) => conflict(`Instance ${uuid} is already associated with a node.`);
const concurrentChange = (uuid: string) =>
  new ConcurrentChange(
    `Node ${uuid} was changed by another request at the same time; retry with the current node.`,
  );

/** Tries of a read-change-write of a node before a concurrent change is the caller's error. */
export const NODE_WRITE_ATTEMPTS = 5;

export class NodeRepository {
  private readonly store: InventoryStore;
  private readonly sealer: SecretSealer | undefined;

  /**
   * With a `sealer`, the secrets of `driver_info` and `instance_info` are sealed on every
   * write (`domain/auth/sealing.ts`); nodes are read back with them sealed. The
   * control plane's compositions always pass one; a bare repository (some tests) stores
   * what it is given.
   */
  constructor(store: InventoryStore, sealer?: SecretSealer) {
    this.store = store;
    this.sealer = sealer;
  }

  /** The node as it is stored: its secrets sealed. */
  private async sealed(node: Node): Promise<Node> {
    const sealer = this.sealer;
    if (!sealer) return node;
    const context = { node: node.uuid };
    const driverInfo = node.driver_info as Record<string, unknown> | null | undefined;
    const instanceInfo = node.instance_info as Record<string, unknown> | null | undefined;
    const seal = async (info: Record<string, unknown> | null | undefined) =>
      info && holdsSecrets(info) ? sealSecrets(info, sealer, context) : info;
    const [driver_info, instance_info] = await Promise.all([seal(driverInfo), seal(instanceInfo)]);
    if (driver_info === driverInfo && instance_info === instanceInfo) return node;
    return { ...node, driver_info, instance_info } as Node;
  }

  async get(uuid: string): Promise<VersionedNode | undefined> {
    const item = await this.store.get<Node>(KIND, uuid);
    return item && { node: item.doc, version: item.version };
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.store.lookupUnique('node-name', name);
  }

  /**
   * Creates the node in its site (which must exist: checked, and the site's node count
   * raised, in the same transaction); `checks` are other references that must exist (chassis).
   */
  async create(node: Node, checks: readonly WriteOp[] = []): Promise<void> {
    await this.store.write(await this.createOps(node, checks));
  }

  /** The ops of `create`, for a caller's transaction (a discovered node with its port and inventory). */
  async createOps(node: Node, checks: readonly WriteOp[] = []): Promise<WriteOp[]> {
    const counted: Node = { ...(await this.sealed(node)), counted_in_site: node.conductor_group };
    // The caller's checks before the site's: a stale default site (`defaultForNewNode`),
    // gone with its site, must read as stale, so that the caller looks again.
    return [
      { type: 'create', item: nodeWrite(counted), onConflict: conflict(`Node ${node.uuid} already exists.`) },
      ...this.claims(node),
      ...checks,
      joinSite(node.conductor_group),
    ];
  }

  /**
   * Replaces `before` (read at `version`) with `after`, moving unique claims as needed,
   * and the node from one site's count to the other's when its conductor_group changes
   * (the new site must exist).
   */
  async update(before: Node, after: Node, version: number, checks: readonly WriteOp[] = []): Promise<void> {
    const moved = after.conductor_group !== before.conductor_group;
    // Bookkeeping of the repository, whatever the caller's copy of the node says.
    const counted: Node = {
      ...(await this.sealed(after)),
      counted_in_site: moved ? after.conductor_group : (before.counted_in_site ?? null),
    };
    if (!counted.counted_in_site) delete counted.counted_in_site;
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: nodeWrite(counted),
        expectedVersion: version,
        onConflict: concurrentChange(after.uuid),
      },
      ...checks,
    ];
    if (moved) {
      ops.push(joinSite(after.conductor_group));
      if (before.counted_in_site) ops.push({ type: 'leave', ledger: siteNodes(before.counted_in_site) });
    }
    if (before.name !== after.name) {
      if (after.name) ops.push(this.claimName(after));
      if (before.name)
        ops.push({ type: 'release', scope: 'node-name', value: before.name, ownerId: before.uuid });
    }
    if (before.instance_uuid !== after.instance_uuid) {
      if (after.instance_uuid) ops.push(this.claimInstance(after));
      if (before.instance_uuid) {
        ops.push({
          type: 'release',
          scope: 'node-instance',
          value: before.instance_uuid,
          ownerId: before.uuid,
        });
      }
    }
    await this.store.write(ops);
    // Events: the provision and power state changes of this write (docs/events.md).
    await publishNodeChanges(before, after);
  }

  /**
   * Applies `change` with a conditional write, re-reading and retrying when a concurrent
   * write got there first; `change` answers undefined to leave the node as it is. For
   * the conductor's own bookkeeping (results, expiry, sync), which must not be lost to a
   * concurrent API write. Answers the node as written, or undefined (missing/unchanged).
   */
  async modify(
    uuid: string,
    change: (node: Node) => Node | NodeChange | undefined,
    attempts = NODE_WRITE_ATTEMPTS,
  ): Promise<Node | undefined> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.get(uuid);
      if (!found) return undefined;
      const changed = change(found.node);
      if (!changed) return undefined;
      const { node: updated, ops = [] } =
        'node' in changed && 'ops' in changed ? changed : { node: changed as Node };
      try {
        await this.update(found.node, updated, found.version, ops);
        return updated;
      } catch (error) {
        if (attempt >= attempts || (error as DomainError).kind !== 'conflict') throw error;
      }
    }
  }

  /**
   * Deletes the node and everything it owns, however many children it has:
   *
   * 1. its ledger is closed (conditional on the version `deletable` approved): from then
   *    on no port, portgroup or volume record can join it;
   * 2. its children are deleted a page at a time (`childParents`: the byParent index),
   *    then those the ledger still names (committed just before the close, and not yet in
   *    the eventually consistent index) straight from the table;
   * 3. the node goes last, with its ledger, only if the ledger is empty.
   *
   * Interrupted anywhere, the node is still there with its ledger closed, and the next
   * DELETE finishes the job. `deletable` throws when the node (re-read each round) may
   * not be deleted; a node gone already is done.
   */
  async deleteCascade(
    uuid: string,
    childParents: readonly string[],
    deletable: (node: Node) => void,
  ): Promise<void> {
    const ledger = nodeChildren(uuid);
    for (let round = 1; ; round++) {
      const found = await this.get(uuid);
      if (!found) return;
      deletable(found.node);
      try {
        await this.store.write([
          { type: 'close', ledger, expectedVersion: found.version, onConflict: concurrentChange(uuid) },
        ]);
        await this.store.deleteChildren(childParents, ledger);
        for (const member of await this.store.ledgerMembers(ledger)) {
          const [kind = '', id = ''] = member.split('#');
          await this.store.deleteChild(kind, id, ledger);
        }
        await this.store.write(this.deletion(found.node, found.version));
        return;
      } catch (error) {
        if (round >= DELETE_ROUNDS || (error as DomainError).kind !== 'conflict') throw error;
      }
    }
  }

  /** The node, its ledger (only if empty), its unique claims, and its place in its site's count. */
  private deletion(node: Node, version: number): WriteOp[] {
    const ops: WriteOp[] = [
      {
        type: 'delete',
        kind: KIND,
        id: node.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(node.uuid),
      },
      {
        type: 'drop',
        ledger: nodeChildren(node.uuid),
        onConflict: conflict(`Node ${node.uuid} gained children during its deletion; retry.`),
      },
    ];
    if (node.name) ops.push({ type: 'release', scope: 'node-name', value: node.name, ownerId: node.uuid });
    if (node.instance_uuid) {
      ops.push({ type: 'release', scope: 'node-instance', value: node.instance_uuid, ownerId: node.uuid });
    }
    if (node.counted_in_site) ops.push({ type: 'leave', ledger: siteNodes(node.counted_in_site) });
    return ops;
  }

  async uuidForInstance(instanceUuid: string): Promise<string | undefined> {
    return this.store.lookupUnique('node-instance', instanceUuid);
  }

  async list(query: NodeListQuery): Promise<NodePage> {
    const after = await this.markerPosition(query);
    if (query.project !== undefined) return this.listForProject(query, query.project, after);
    return this.listOne(query, after, undefined);
  }

  /** The sort value the page starts after; an unknown marker is a client error. */
  private async markerPosition(query: NodeListQuery): Promise<string | undefined> {
    if (!query.markerUuid) return undefined;
    const marker = await this.get(query.markerUuid);
    if (!marker) throw notFound(`Node ${query.markerUuid} could not be found.`);
    return query.sortKey === 'name' ? nameSortKey(marker.node) : listSortKey(marker.node);
  }

  private async listOne(
    query: NodeListQuery,
    after: string | undefined,
    scope: readonly [string, string] | undefined,
  ): Promise<NodePage> {
    if (query.equals.instance_uuid !== undefined) return this.listByInstance(query);
    const equals = { ...query.equals };
    let index = 'byKind';
    let partitionAttribute = 'kindPk';
    let partitionValue = KIND;
    if (scope) {
      [index, partitionAttribute] = scope[0] === 'owner' ? ['byOwner', 'ownerPk'] : ['byLessee', 'lesseePk'];
      partitionValue = `${KIND}#${scope[1]}`;
    } else if (query.sortKey !== 'name') {
      const indexed = INDEXED.find(([field]) => typeof equals[field] === 'string' && equals[field] !== '');
      if (indexed) {
        const [field, name, attribute] = indexed;
        [index, partitionAttribute, partitionValue] = [name, attribute, `${KIND}#${equals[field]}`];
        delete equals[field];
      } else if (typeof equals.chassis_uuid === 'string') {
        [index, partitionAttribute, partitionValue] = [
          'byParent',
          'parentPk',
          `node@chassis#${equals.chassis_uuid}`,
        ];
        delete equals.chassis_uuid;
      }
    }
    if (query.sortKey === 'name' && !scope) index = 'byName';
    const page = await this.store.query<Node>({
      index,
      partitionAttribute,
      partitionValue,
      sortAttribute: index === 'byName' ? 'nameSk' : 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
      filters: filtersFor(equals, query.associated),
    });
    return { nodes: page.items.map((item: StoredItem<Node>) => item.doc), more: page.more };
  }

  /** Owned or leased: two index queries merged in creation order. */
  private async listForProject(
    query: NodeListQuery,
    project: string,
    after: string | undefined,
  ): Promise<NodePage> {
    const [owned, leased] = await Promise.all([
      this.listOne(query, after, ['owner', project]),
      this.listOne(query, after, ['lessee', project]),
    ]);
    const byUuid = new Map<string, Node>();
    for (const node of [...owned.nodes, ...leased.nodes]) byUuid.set(node.uuid, node);
    const merged = [...byUuid.values()].sort((a, b) => {
      const order = listSortKey(a) < listSortKey(b) ? -1 : 1;
      return query.descending ? -order : order;
    });
    return {
      nodes: merged.slice(0, query.limit),
      more: owned.more || leased.more || merged.length > query.limit,
    };
  }

  private async listByInstance(query: NodeListQuery): Promise<NodePage> {
    const instance = query.equals.instance_uuid;
    const uuid = typeof instance === 'string' ? await this.uuidForInstance(instance) : undefined;
    const found = uuid ? await this.get(uuid) : undefined;
    const { instance_uuid: _ignored, ...rest } = query.equals;
    const matches =
      found &&
      Object.entries(rest).every(
        ([field, value]) => (found.node as unknown as Record<string, unknown>)[field] === value,
      ) &&
      (query.project === undefined ||
        found.node.owner === query.project ||
        found.node.lessee === query.project);
    return { nodes: matches ? [found.node] : [], more: false };
  }

  private claims(node: Node): WriteOp[] {
    const ops: WriteOp[] = [];
    if (node.name) ops.push(this.claimName(node));
    if (node.instance_uuid) ops.push(this.claimInstance(node));
    return ops;
  }

  private claimName(node: Node): WriteOp {
    return {
      type: 'claim',
      scope: 'node-name',
      value: node.name as string,
      ownerId: node.uuid,
      onConflict: nameTaken(node.name as string),
    };
  }

  private claimInstance(node: Node): WriteOp {
    const instance = node.instance_uuid as string;
    return {
      type: 'claim',
      scope: 'node-instance',
      value: instance,
      ownerId: node.uuid,
      onConflict: instanceTaken(instance),
    };
  }
}

function filtersFor(
  equals: Readonly<Record<string, string | boolean | null>>,
  associated: boolean | undefined,
): Filter[] {
  const filters: Filter[] = Object.entries(equals).map(([field, value]) => ({
    path: ['doc', field],
    op: '=',
    value,
  }));
  if (associated !== undefined)
    filters.push({ path: ['doc', 'instance_uuid'], op: associated ? '<>' : '=', value: null });
  return filters;
}

/** The site must exist; the node is counted in it (a site with nodes is not deleted). */
function joinSite(site: string): WriteOp {
  return {
    type: 'join',
    ledger: siteNodes(site),
    onMissing: siteMissing(site),
    // Sites are never closed: their deletion is one transaction on an empty count.
    onClosed: siteMissing(site),
  };
}

/** A reference that must exist for the write to happen (checked inside the transaction). */
export function mustExist(kind: string, id: string, error: DomainError): WriteOp {
  return { type: 'exists', kind, id, onConflict: error };
}

export const siteMissing = (site: string) =>
  invalid(`Site "${site}" does not exist: create it first, or give an existing site as conductor_group.`);
