/**
 * The inspect flow (Ironic's `inspection.py`):
 *
 * - out of band (`fake` and the other inspect interfaces that need no ramdisk):
 *     inspecting: read power and boot device → manageable
 * - in band (`agent`: Ironic's AgentInspect, with Metalplane's ramdisk):
 *     inspecting: [wait for the deploy ramdisk image at the site], boot files for the
 *     ramdisk (`boot.prepare {metalplane_ramdisk}`, `driver_info.deploy_kernel` +
 *     `deploy_ramdisk`), boot device PXE, reboot, wait for the ramdisk's hello, its
 *     `inspect` step, power off, remove the boot files → manageable
 *
 * The `inspect` step's inventory is checked (`checkInventory`) and applied
 * (`applyInspection`): the node's properties, its inventory record, and its ports
 * (created for the selected interfaces, skipping a MAC another node holds, as Ironic
 * skips MACAlreadyExists), all in the same transaction as the node. What that needs
 * beyond the node (its ports, the MACs' owners, the stored inventory's version) is read
 * before the node's conditional write (`prepare`).
 *
 * It stamps `inspection_started_at` when it starts and `inspection_finished_at` at its end.
 */
import type { WriteOp } from '../../adapters/dynamo/inventory-store.ts';
import { MAX_TRANSACTION_ITEMS } from '../../adapters/dynamo/inventory-store.ts';
import type { NodeInventoryRepository } from '../../adapters/dynamo/node-inventory-repository.ts';
import { nodeChildren, nodeDeleting } from '../../adapters/dynamo/node-repository.ts';
import type { PortRepository } from '../../adapters/dynamo/port-repository.ts';
import type { CommandRecord } from '../../domain/commands/command.ts';
import { invalid } from '../../domain/errors.ts';
import { applyInspection, type ExistingPort } from '../../domain/inspection/apply.ts';
import { checkInventory } from '../../domain/inspection/inventory.ts';
import type { JsonObject, Node } from '../../domain/nodes/node.ts';
import type { Port } from '../../domain/ports/port.ts';
import { ironicTimestamp } from '../../domain/time.ts';
import { type DeployInputs, inspectsInBand, RAMDISK_BOOT, RAMDISK_END, ramdiskFlow } from './boot-inputs.ts';
import type { Changed, FlowHooks, Plan } from './runner.ts';
import type { ProvisionSettings } from './settings.ts';
import type { FlowState } from './steps.ts';

/** Where an in-band inspection stores what it found. */
export interface InspectionStores {
  readonly ports: PortRepository;
  readonly inventories: NodeInventoryRepository;
  /** Warnings of the inspection (skipped MACs ...), as Ironic logs them. */
  readonly warn?: (message: string, extra: Record<string, unknown>) => void;
}

export function planInspect(
  node: Node,
  base: Pick<FlowState, 'index' | 'user'>,
  inputs: DeployInputs | undefined,
  settings: ProvisionSettings,
  now: Date,
): Plan {
  const onStart = (at: string) => ({ inspection_started_at: at, inspection_finished_at: null });
  if (!inspectsInBand(node)) {
    return {
      flow: { ...base, flow: 'inspect', steps: ['read_power', 'read_boot_device'], finish: ['done'] },
      onStart,
    };
  }
  if (!inputs) throw invalid(`Node ${node.uuid} has no deploy ramdisk to boot.`);
  return {
    flow: {
      ...base,
      flow: 'inspect',
      steps: [...RAMDISK_BOOT, 'ramdisk_inspect', ...RAMDISK_END],
      finish: ['done'],
      ...ramdiskFlow(node, inputs, settings, now),
    },
    onStart,
  };
}

/** What `prepare` read for the `inspect` step's result. */
interface PreparedInspection {
  readonly properties: Record<string, unknown>;
  readonly ops: WriteOp[];
}

/** Every port of the node, with the version each was read at. */
async function portsOf(ports: PortRepository, nodeUuid: string): Promise<Port[]> {
  const found: Port[] = [];
  let marker: string | undefined;
  for (let page = 0; page < 50; page++) {
    const listed = await ports.list({
      limit: 200,
      descending: false,
      nodeUuid,
      ...(marker ? { markerUuid: marker } : {}),
    });
    found.push(...listed.ports);
    if (!listed.more || listed.ports.length === 0) break;
    marker = listed.ports.at(-1)?.uuid;
  }
  return found;
}

const sameLedger = (op: WriteOp, nodeUuid: string) => {
  const ledger = nodeChildren(nodeUuid);
  return (
    (op.type === 'join' || op.type === 'leave') &&
    op.ledger.kind === ledger.kind &&
    op.ledger.id === ledger.id &&
    op.ledger.name === ledger.name
  );
};

/**
 * The children's ops merged for a transaction that also writes their node: one join of
 * the node's ledger for all (no separate check of the node, written at its version in the
 * same transaction), one leave; a transaction cannot touch one item twice.
 */
export function withNodeWrite(nodeUuid: string, ops: readonly WriteOp[]): WriteOp[] {
  const joins: string[] = [];
  const leaves: string[] = [];
  const rest: WriteOp[] = [];
  for (const op of ops) {
    if (!sameLedger(op, nodeUuid)) rest.push(op);
    else if (op.type === 'join' && op.member) joins.push(op.member);
    else if (op.type === 'leave') leaves.push(...(op.members ?? []));
  }
  if (joins.length > 0 && leaves.length > 0)
    throw new Error('one transaction cannot both add and remove children of a node');
  const ledger = nodeChildren(nodeUuid);
  if (joins.length > 0) {
    rest.push({
      type: 'join',
      ledger,
      members: joins,
      parentWritten: true,
      onMissing: invalid(`Node ${nodeUuid} could not be found.`),
      onClosed: nodeDeleting(nodeUuid),
    });
  }
  if (leaves.length > 0) rest.push({ type: 'leave', ledger, members: leaves });
  return rest;
}

/** Room left in the node's transaction for its history events and bookkeeping. */
const NODE_TRANSACTION_ROOM = 10;

/** Reads what applying an inventory needs and builds its writes (the node's own change aside). */
async function prepareInspection(
  stores: InspectionStores,
  node: Node,
  command: CommandRecord,
  now: Date,
  newId: () => string,
): Promise<PreparedInspection> {
  const inventory = checkInventory((command.result as JsonObject | null)?.inventory);
  const current = await portsOf(stores.ports, node.uuid);
  const existing: ExistingPort[] = current.map((port) => ({
    uuid: port.uuid,
    address: port.address,
    pxe_enabled: port.pxe_enabled,
  }));
  const outcome = applyInspection(node, inventory, { ports: existing });
  const at = ironicTimestamp(now);
  const ops: WriteOp[] = [];
  const log = (message: string) => stores.warn?.(message, { node: node.uuid });
  for (const warning of outcome.warnings) log(warning);
  for (const wanted of outcome.ports.create) {
    const owner = await stores.ports.uuidForAddress(wanted.address);
    if (owner) {
      // Ironic skips MACAlreadyExists with a warning.
      log(`Port with MAC address ${wanted.address} already exists, skipping it for node ${node.uuid}`);
      continue;
    }
    const port: Port = {
      uuid: newId(),
      created_at: at,
      updated_at: null,
      address: wanted.address,
      extra: { ...wanted.extra },
      internal_info: {},
      is_smartnic: false,
      local_link_connection: {},
      physical_network: null,
      pxe_enabled: wanted.pxe_enabled,
      node_uuid: node.uuid,
      portgroup_uuid: null,
    };
    ops.push(...stores.ports.createOps(port));
  }
  for (const change of outcome.ports.update) {
    const found = await stores.ports.get(change.uuid);
    if (!found) continue;
    ops.push(
      ...stores.ports.replaceOps(
        found.port,
        { ...found.port, pxe_enabled: change.pxe_enabled, updated_at: at },
        found.version,
      ),
    );
  }
  for (const gone of outcome.ports.delete) {
    const found = await stores.ports.get(gone.uuid);
    if (found) ops.push(...stores.ports.deleteOps(found.port, found.version));
  }
  ops.push(
    ...(await stores.inventories.putOps(
      node.uuid,
      {
        inventory: inventory as unknown as Record<string, unknown>,
        plugin_data: outcome.pluginData as unknown as Record<string, unknown>,
      },
      at,
    )),
  );
  const merged = withNodeWrite(node.uuid, ops);
  if (merged.length + NODE_TRANSACTION_ROOM > MAX_TRANSACTION_ITEMS) {
    throw invalid(
      `applying the inventory of node ${node.uuid} would write ${merged.length} records with the node; at most ${MAX_TRANSACTION_ITEMS - NODE_TRANSACTION_ROOM} fit in one transaction.`,
    );
  }
  return { properties: outcome.properties, ops: merged };
}

/** The inspect flow's hooks; `now` is the conductor's clock (the records' timestamps). */
export function inspectHooks(
  stores: InspectionStores | undefined,
  now: () => Date,
  newId: () => string,
): FlowHooks {
  return {
    failure: (step) => `Failed to inspect hardware: ${step} failed`,
    finished: (node, _flow, at) => ({ node: { ...node, inspection_finished_at: at }, ops: [] }),
    prepareFor: ['ramdisk.run_step'],
    async prepare(node, _flow, step, command) {
      if (step !== 'ramdisk_inspect') return undefined;
      if (!stores) throw new Error('this control plane cannot store inspection data');
      return prepareInspection(stores, node, command, now(), newId);
    },
    stepSucceeded(node, _flow, step, _command, prepared): Changed | string | undefined {
      if (step !== 'ramdisk_inspect') return undefined;
      if (prepared instanceof Error) return prepared.message;
      if (!prepared) return 'the inventory could not be applied';
      const { properties, ops } = prepared as PreparedInspection;
      return { node: { ...node, properties: properties as JsonObject }, ops };
    },
  };
}
