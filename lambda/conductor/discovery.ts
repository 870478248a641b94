/**
 * Discovery (Ironic's inspector discovery, `[discovery]enroll_node_driver`): a machine no
 * port knows network-booted its site's entry script, got the deploy ramdisk, and its
 * site's agent reports its inventory (`POST /v1/agent/discoveries`, protocol/discovery.ts).
 *
 * - `checkDiscoveryImages`: the site setting's `deploy_kernel` / `deploy_ramdisk`, image
 *   names or UUIDs of the catalog, must exist, be active, have a kernel (a ramdisk) file
 *   and go to the site (its `sites` null or naming it): else 400, nothing written.
 * - `agentSiteView`: what the site's agent reads (`GET /v1/agent/site`): the setting with
 *   the images resolved to UUIDs; enabled false when an image no longer qualifies.
 * - `discoverNode`: refused (409) when the site's discovery is off, 400 for an inventory
 *   the inspection's checks refuse; a known machine (a port holds one of the inventory's
 *   MACs, or the boot MAC, on any node) changes nothing; otherwise one transaction
 *   creates the node in `enroll` (the setting's driver, the site as `conductor_group`, no
 *   name, `properties` as in-band inspection sets them, `extra.discovered`,
 *   `inspection_finished_at`), its inventory record, a PXE-enabled port for the boot MAC
 *   (whose MAC claim makes a second report of the same machine lose: it is then known),
 *   and a history event.
 */

import type { AgentSiteView, DiscoveryAnswer, DiscoveryReport } from '../../protocol/discovery.ts';
import { historyCreateOp } from '../adapters/dynamo/history-repository.ts';
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import type { InventoryStore, WriteOp } from '../adapters/dynamo/inventory-store.ts';
import type { NodeInventoryRepository } from '../adapters/dynamo/node-inventory-repository.ts';
import { type NodeRepository, nodeChildren } from '../adapters/dynamo/node-repository.ts';
import type { PortRepository } from '../adapters/dynamo/port-repository.ts';
import { conflict, DomainError, invalid } from '../domain/errors.ts';
import { historyEvent } from '../domain/history/history.ts';
import { isUuidLike } from '../domain/identifiers.ts';
import { type Image, isSelectedFor } from '../domain/images/image.ts';
import { applyInspection } from '../domain/inspection/apply.ts';
import { checkInventory, normalizeEthernetMac } from '../domain/inspection/inventory.ts';
import type { JsonObject, Node } from '../domain/nodes/node.ts';
import { createNode } from '../domain/nodes/node.ts';
import type { Port } from '../domain/ports/port.ts';
import { DISCOVERY_OFF, type Site, type SiteDiscovery } from '../domain/sites/site.ts';

async function discoveryImage(
  images: ImageRepository,
  site: string,
  ref: string | null,
  field: 'deploy_kernel' | 'deploy_ramdisk',
): Promise<Image> {
  const where = `discovery.${field}`;
  if (ref === null || ref === '') throw invalid(`${where} must be an image name or UUID.`);
  const uuid = isUuidLike(ref) ? ref.toLowerCase() : await images.uuidForName(ref);
  const found = uuid ? await images.get(uuid) : undefined;
  if (!found) throw invalid(`Image ${ref} (${where}) could not be found.`);
  const image = found.image;
  if (image.state !== 'active') {
    throw invalid(`Image ${ref} (${where}) is ${image.state}, not active: it cannot be booted.`);
  }
  const role = field === 'deploy_kernel' ? 'kernel' : 'ramdisk';
  if (!image.files.some((file) => file.role === role)) {
    throw invalid(`Image ${image.name} (${where}) has no ${role}.`);
  }
  if (!isSelectedFor(image, site)) {
    throw invalid(
      `Image ${image.name} (${where}) does not go to site ${site}: add the site to the image's sites (or make them null).`,
    );
  }
  return image;
}

/** The setting's images, checked (400 `invalid` otherwise). */
export async function checkDiscoveryImages(
  images: ImageRepository,
  site: string,
  discovery: SiteDiscovery,
): Promise<{ kernel: Image; ramdisk: Image }> {
  const kernel = await discoveryImage(images, site, discovery.deploy_kernel, 'deploy_kernel');
  const ramdisk = await discoveryImage(images, site, discovery.deploy_ramdisk, 'deploy_ramdisk');
  return { kernel, ramdisk };
}

/** `GET /v1/agent/site`: the site's discovery, its images as UUIDs. */
export async function agentSiteView(
  images: ImageRepository,
  site: Site,
  warn?: (message: string, fields: Record<string, unknown>) => void,
): Promise<AgentSiteView> {
  const discovery = site.discovery ?? DISCOVERY_OFF;
  const off: AgentSiteView = {
    site: site.name,
    discovery: { enabled: false, deploy_kernel: null, deploy_ramdisk: null },
  };
  if (!discovery.enabled) return off;
  try {
    const { kernel, ramdisk } = await checkDiscoveryImages(images, site.name, discovery);
    return {
      site: site.name,
      discovery: { enabled: true, deploy_kernel: kernel.uuid, deploy_ramdisk: ramdisk.uuid },
    };
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    warn?.('site discovery is enabled but its images cannot be booted: off for the agent', {
      site: site.name,
      error: error.message,
    });
    return off;
  }
}

export interface DiscoveryStores {
  readonly store: InventoryStore;
  readonly nodes: NodeRepository;
  readonly ports: PortRepository;
  readonly inventories: NodeInventoryRepository;
}

export interface DiscoveryInput {
  readonly site: Site;
  /** The reporting agent's hostname (the history event's conductor). */
  readonly agent: string;
  readonly report: DiscoveryReport;
  /** Ironic's timestamp format. */
  readonly now: string;
  readonly newUuid: () => string;
  /** The microversion the node is created as (enroll needs 1.11 or later). */
  readonly minor: number;
  readonly log?: (message: string, fields: Record<string, unknown>) => void;
}

/** The node's ledger joins merged into one (a transaction touches the ledger item once). */
function mergeNodeJoins(nodeUuid: string, ops: readonly WriteOp[]): WriteOp[] {
  const ledger = nodeChildren(nodeUuid);
  const members: string[] = [];
  const rest: WriteOp[] = [];
  for (const op of ops) {
    if (
      op.type === 'join' &&
      op.ledger.kind === ledger.kind &&
      op.ledger.id === ledger.id &&
      op.ledger.name === ledger.name
    ) {
      members.push(...(op.members ?? (op.member ? [op.member] : [])));
    } else rest.push(op);
  }
  if (members.length > 0) {
    rest.push({
      type: 'join',
      ledger,
      members,
      // The node is created in the same transaction.
      parentWritten: true,
      onMissing: invalid(`Node ${nodeUuid} could not be found.`),
      onClosed: conflict(`Node ${nodeUuid} is being deleted.`),
    });
  }
  return rest;
}

/** The node that holds a port of one of `macs`, if any. */
async function knownOwner(ports: PortRepository, macs: Iterable<string>): Promise<string | undefined> {
  for (const mac of macs) {
    const portUuid = await ports.uuidForAddress(mac);
    if (!portUuid) continue;
    const found = await ports.get(portUuid);
    if (found) return found.port.node_uuid;
  }
  return undefined;
}

export async function discoverNode(stores: DiscoveryStores, input: DiscoveryInput): Promise<DiscoveryAnswer> {
  const { site, report, now } = input;
  const discovery = site.discovery ?? DISCOVERY_OFF;
  if (!discovery.enabled) {
    throw conflict(
      `Discovery is not enabled for site ${site.name}: the machine with MAC ${report.boot_mac} was not enrolled (PATCH /v1/sites/${site.name} /discovery/enabled).`,
    );
  }
  const bootMac = normalizeEthernetMac(report.boot_mac);
  if (!bootMac) throw invalid(`Invalid boot MAC address ${JSON.stringify(report.boot_mac)}.`);
  const inventory = checkInventory(report.inventory);
  const macs = new Set<string>([bootMac]);
  for (const iface of inventory.interfaces) {
    const mac = typeof iface.mac_address === 'string' ? normalizeEthernetMac(iface.mac_address) : undefined;
    if (mac) macs.add(mac);
  }
  const known = await knownOwner(stores.ports, macs);
  if (known) {
    input.log?.('discovered machine is already known: nothing done', {
      site: site.name,
      boot_mac: bootMac,
      node: known,
    });
    return { outcome: 'known', uuid: known };
  }

  const uuid = input.newUuid();
  const base = createNode(
    { driver: discovery.driver, extra: { discovered: true } },
    { uuid, now, minor: input.minor, site: site.name },
  );
  const outcome = applyInspection(base, inventory, { ports: [] });
  const driverInfo: JsonObject = {};
  // Ironic's discovery sets the BMC address the ramdisk found (`bmc_address`) on ipmi nodes.
  const bmc = (inventory as Record<string, unknown>).bmc_address;
  if (discovery.driver === 'ipmi' && typeof bmc === 'string' && bmc !== '' && bmc !== '0.0.0.0') {
    driverInfo.ipmi_address = bmc;
  }
  const node: Node = {
    ...base,
    properties: outcome.properties as JsonObject,
    driver_info: driverInfo,
    inspection_finished_at: now,
  };
  const port: Port = {
    uuid: input.newUuid(),
    created_at: now,
    updated_at: null,
    address: bootMac,
    extra: {},
    internal_info: {},
    is_smartnic: false,
    local_link_connection: {},
    physical_network: null,
    pxe_enabled: true,
    node_uuid: uuid,
    portgroup_uuid: null,
  };
  const event = historyEvent({
    uuid: input.newUuid(),
    now,
    nodeUuid: uuid,
    event: `Node discovered by agent ${input.agent} of site ${site.name}: boot MAC ${bootMac}, enrolled with driver ${discovery.driver}.`,
    eventType: 'introspection',
    conductor: input.agent,
  });
  const children: WriteOp[] = [
    ...stores.ports.createOps(port),
    ...(await stores.inventories.putOps(
      uuid,
      {
        inventory: inventory as unknown as Record<string, unknown>,
        plugin_data: outcome.pluginData as unknown as Record<string, unknown>,
      },
      now,
    )),
  ];
  const ops = [
    ...(await stores.nodes.createOps(node)),
    ...mergeNodeJoins(uuid, children),
    historyCreateOp(node, event),
  ];
  try {
    await stores.store.write(ops);
  } catch (error) {
    // Another report of the same machine won the MAC (the claim failed, or the two
    // transactions conflicted): it is known now. Anything else is the error it was.
    const owner = await knownOwner(stores.ports, [bootMac]).catch(() => undefined);
    if (!owner) throw error;
    input.log?.('discovered machine was enrolled by a concurrent report: nothing done', {
      site: site.name,
      boot_mac: bootMac,
      node: owner,
    });
    return { outcome: 'known', uuid: owner };
  }
  for (const warning of outcome.warnings) input.log?.(warning, { node: uuid });
  input.log?.('discovered machine enrolled', {
    site: site.name,
    boot_mac: bootMac,
    node: uuid,
    driver: discovery.driver,
  });
  return { outcome: 'created', uuid };
}
