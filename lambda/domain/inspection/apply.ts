/**
 * What a node's in-band inspection changes, computed from its inventory as Ironic's
 * `agent` inspect interface does with its hooks (`ironic/drivers/modules/inspector/hooks/`):
 *
 * - `validate-interfaces`: the interfaces with a valid MAC, `pxe_enabled` when their MAC
 *   is `boot.pxe_interface`; of those, the ones `[inspector]add_ports` selects (never
 *   `lo` nor a loopback address); none valid, or none selected, fails the inspection;
 * - `ports`: a port for each selected interface the node has no port for (unless
 *   `add_ports` is `disabled`); then the node's ports not expected by `keep_ports`
 *   deleted, and the others' `pxe_enabled` made to match the inventory;
 * - `architecture` (`cpu_arch`), `memory` (`memory_mb` = `memory.physical_mb`), `cpus`
 *   (`cpus`, unless 0), `root-device` (`local_gb`: the root disk's size in whole GiB,
 *   less 1 for partitioning, 0 for a diskless node), `boot-mode` (`capabilities`'
 *   `boot_mode`). Ironic's `default_hooks` run only `architecture` and the port hooks;
 *   the others are its optional ones (and what ironic-inspector's `scheduler` hook did
 *   by default): Metalplane runs them all, as a scheduler (Nova) needs these properties.
 *
 * The root disk is the one matching the node's `root_device` hints, or, without hints,
 * the one ironic-python-agent would choose (the smallest of at least 4 GiB): Ironic reads
 * that choice from the ramdisk's `root_disk`, which Metalplane's inventory does not carry.
 *
 * Pure: the caller stores the properties, creates and deletes the ports (a port whose MAC
 * another node holds is skipped, as Ironic skips `MACAlreadyExists`).
 */
import type { Inventory } from '../../../protocol/ramdisk.ts';
import { invalid } from '../errors.ts';
import { type CheckedInventory, normalizeEthernetMac, normalizePxeInterface } from './inventory.ts';

/** `[inspector]add_ports`: which interfaces get a port. */
export const ADD_PORTS = ['all', 'active', 'pxe', 'disabled'] as const;
export type AddPorts = (typeof ADD_PORTS)[number];
/** `[inspector]keep_ports`: which of the node's existing ports survive. */
export const KEEP_PORTS = ['all', 'present', 'added'] as const;
export type KeepPorts = (typeof KEEP_PORTS)[number];

export interface ExistingPort {
  readonly uuid: string;
  readonly address: string;
  readonly pxe_enabled: boolean;
}

export interface InspectionOptions {
  /** Default `pxe`: the port of the NIC the ramdisk booted from (all, without a known one). */
  readonly addPorts?: AddPorts;
  /** Default `all`: no port is deleted. */
  readonly keepPorts?: KeepPorts;
  /** `[inspector]update_pxe_enabled`, default true. */
  readonly updatePxeEnabled?: boolean;
  /** `[inspector]disk_partitioning_spacing`, default true: `local_gb` is one GiB less. */
  readonly diskPartitioningSpacing?: boolean;
  /** The node's ports now. */
  readonly ports?: readonly ExistingPort[];
}

export interface InspectedNode {
  readonly uuid: string;
  readonly properties: Readonly<Record<string, unknown>>;
}

export interface InspectedInterface {
  readonly name: string;
  readonly mac_address: string;
  readonly ipv4_address: string | null;
  readonly ipv6_address: string | null;
  readonly pxe_enabled: boolean;
  readonly client_id: string | null;
}

export interface PortChanges {
  /** Ports to create: one per selected interface whose MAC the node has no port for. */
  readonly create: ReadonlyArray<{
    readonly address: string;
    readonly pxe_enabled: boolean;
    readonly extra: Readonly<Record<string, string>>;
  }>;
  /** Ports to delete (`keep_ports`). */
  readonly delete: readonly ExistingPort[];
  /** Ports whose `pxe_enabled` changes. */
  readonly update: ReadonlyArray<{
    readonly uuid: string;
    readonly address: string;
    readonly pxe_enabled: boolean;
  }>;
}

/** Ironic's `plugin_data` of these hooks, stored beside the inventory. */
export interface InspectionPluginData {
  readonly all_interfaces: Readonly<Record<string, InspectedInterface>>;
  readonly valid_interfaces: Readonly<Record<string, InspectedInterface>>;
  readonly macs: readonly string[];
  readonly root_disk?: Inventory['disks'][number];
  readonly local_gb: number;
  readonly [extra: string]: unknown;
}

export interface InspectionOutcome {
  /** The node's properties after inspection (all of them, the others unchanged). */
  readonly properties: Record<string, unknown>;
  /** The property names whose values changed. */
  readonly changed: readonly string[];
  readonly ports: PortChanges;
  readonly pluginData: InspectionPluginData;
  /** What Ironic would log as a warning (skipped interfaces, no root disk ...). */
  readonly warnings: readonly string[];
}

const GiB = 1024 ** 3;
/** ironic-python-agent's smallest root disk (`guess_root_disk`'s `min_size_required`). */
const MIN_ROOT_DISK_BYTES = 4 * GiB;

/** Ironic's `InvalidNodeInventory` text. */
const invalidInventory = (node: string, reason: string) =>
  invalid(`Inventory for node ${node} is invalid: ${reason}`);

function isLoopback(ip: string): boolean {
  const bare = ip.split('%')[0]?.toLowerCase() ?? '';
  return /^127\./.test(bare) || bare === '::1' || bare === '0:0:0:0:0:0:0:1';
}

/** `get_interfaces`: the interfaces with a name and a valid MAC, keyed by name. */
function allInterfaces(
  node: string,
  inventory: CheckedInventory,
  pxeMac: string | undefined,
  warnings: string[],
): Record<string, InspectedInterface> {
  const result: Record<string, InspectedInterface> = {};
  for (const raw of inventory.interfaces as ReadonlyArray<Record<string, unknown>>) {
    const name = raw.name as string;
    const reported = typeof raw.mac_address === 'string' ? raw.mac_address : '';
    if (reported === '') continue;
    const mac = normalizeEthernetMac(reported);
    if (!mac) {
      warnings.push(`MAC address of interface ${name} of node ${node} is not valid, skipping`);
      continue;
    }
    const ipv6 = typeof raw.ipv6_address === 'string' ? (raw.ipv6_address.split('%')[0] as string) : null;
    result[name] = {
      name,
      mac_address: mac,
      ipv4_address: typeof raw.ipv4_address === 'string' && raw.ipv4_address !== '' ? raw.ipv4_address : null,
      ipv6_address: ipv6 === '' ? null : ipv6,
      // Ironic's rule, whatever the ramdisk said of the interface.
      pxe_enabled: mac === pxeMac,
      client_id: typeof raw.client_id === 'string' && raw.client_id !== '' ? raw.client_id : null,
    };
  }
  return result;
}

/** `validate_interfaces`: those `add_ports` selects. */
function validInterfaces(
  node: string,
  interfaces: Record<string, InspectedInterface>,
  addPorts: AddPorts,
  pxeMac: string | undefined,
  warnings: string[],
): Record<string, InspectedInterface> {
  if (Object.keys(interfaces).length === 0) throw invalidInventory(node, 'no valid network interfaces');
  if (!pxeMac && addPorts === 'pxe') {
    warnings.push(`No boot interface provided in the inventory for node ${node}: every interface is valid`);
  }
  const result: Record<string, InspectedInterface> = {};
  for (const [name, iface] of Object.entries(interfaces)) {
    const ip = iface.ipv4_address ?? iface.ipv6_address;
    if (name === 'lo' || (ip && isLoopback(ip))) continue;
    if (addPorts === 'pxe' && pxeMac && !iface.pxe_enabled) continue;
    if (addPorts === 'active' && !ip) continue;
    result[name] = iface;
  }
  if (Object.keys(result).length === 0) {
    throw invalidInventory(
      node,
      `no network interfaces match the configuration (add_ports set to "${addPorts}")`,
    );
  }
  return result;
}

function portChanges(
  all: Record<string, InspectedInterface>,
  valid: Record<string, InspectedInterface>,
  macs: readonly string[],
  options: InspectionOptions,
): PortChanges {
  const existing = options.ports ?? [];
  const held = new Set(existing.map((port) => port.address.toLowerCase()));
  const create: Array<PortChanges['create'][number]> = [];
  if ((options.addPorts ?? 'pxe') !== 'disabled') {
    for (const iface of Object.values(valid)) {
      if (held.has(iface.mac_address)) continue;
      held.add(iface.mac_address);
      create.push({
        address: iface.mac_address,
        pxe_enabled: iface.pxe_enabled,
        extra: iface.client_id ? { 'client-id': iface.client_id } : {},
      });
    }
  }
  const keep = options.keepPorts ?? 'all';
  const expected =
    keep === 'present'
      ? new Set(Object.values(all).map((iface) => iface.mac_address))
      : keep === 'added'
        ? new Set(macs)
        : undefined;
  const pxeMacs = new Set(
    Object.values(all)
      .filter((iface) => iface.pxe_enabled)
      .map((iface) => iface.mac_address),
  );
  const removed: ExistingPort[] = [];
  const update: Array<PortChanges['update'][number]> = [];
  for (const port of existing) {
    const address = port.address.toLowerCase();
    // Ironic deletes only when some MAC is expected (`if expected_macs and ...`).
    if (expected && expected.size > 0 && !expected.has(address)) {
      removed.push(port);
      continue;
    }
    if (options.updatePxeEnabled ?? true) {
      const pxe = pxeMacs.has(address);
      if (pxe !== port.pxe_enabled) update.push({ uuid: port.uuid, address: port.address, pxe_enabled: pxe });
    }
  }
  return { create, delete: removed, update };
}

type Disk = Inventory['disks'][number] & { readonly [extra: string]: unknown };

const SIZE_OPERATORS = ['<=', '>=', '!=', '==', '<', '>'] as const;

/** Whether `disk` satisfies one hint, Ironic's root device hint grammar (common operators). */
function matchesHint(disk: Disk, hint: string, expression: unknown): boolean {
  if (hint === 'rotational') {
    const wanted =
      typeof expression === 'string' ? /^(1|t|true|on|y|yes)$/i.test(expression) : Boolean(expression);
    return typeof disk.rotational === 'boolean' && disk.rotational === wanted;
  }
  const text = String(expression).trim().toLowerCase();
  if (hint === 'size') {
    const gib = disk.size / GiB;
    const operator = SIZE_OPERATORS.find((op) => text.startsWith(op));
    const wanted = Number(operator ? text.slice(operator.length).trim() : text);
    if (!Number.isFinite(wanted)) return false;
    switch (operator) {
      case '<=':
        return gib <= wanted;
      case '>=':
        return gib >= wanted;
      case '!=':
        return gib !== wanted;
      case '<':
        return gib < wanted;
      case '>':
        return gib > wanted;
      default:
        return gib === wanted;
    }
  }
  const value = disk[hint];
  if (typeof value !== 'string' || value.trim() === '') return false;
  const actual = value.trim().toLowerCase();
  if (text.startsWith('<in>')) return actual.includes(text.slice(4).trim());
  if (text.startsWith('<or>')) {
    return text
      .split('<or>')
      .map((alternative) => alternative.trim())
      .filter((alternative) => alternative !== '')
      .includes(actual);
  }
  if (text.startsWith('s!=')) return actual !== text.slice(3).trim();
  if (text.startsWith('s==')) return actual === text.slice(3).trim();
  return actual === text;
}

const VALID_HINTS = [
  'size',
  'model',
  'wwn',
  'serial',
  'vendor',
  'wwn_with_extension',
  'wwn_vendor_extension',
  'name',
  'rotational',
  'hctl',
  'by_path',
];

/** `root-device`: the disk the hints choose (or IPA's choice without hints), if any. */
function rootDisk(node: InspectedNode, disks: readonly Disk[], warnings: string[]): Disk | undefined {
  const hints = node.properties.root_device;
  if (hints && typeof hints === 'object' && Object.keys(hints).length > 0) {
    const entries = Object.entries(hints as Record<string, unknown>);
    const unknown = entries.map(([name]) => name).filter((name) => !VALID_HINTS.includes(name));
    if (unknown.length > 0) {
      throw invalid(
        `No disks could be found using root device hints for node ${node.uuid} because they failed to validate. Error: The hints "${unknown.join(', ')}" are invalid. Valid hints are: "${VALID_HINTS.join(', ')}"`,
      );
    }
    const found = disks.find((disk) =>
      entries.every(([hint, expression]) => matchesHint(disk, hint, expression)),
    );
    if (!found) throw invalid(`No disks satisfied root device hints for node ${node.uuid}`);
    return found;
  }
  const candidates = [...disks]
    .sort((a, b) => a.size - b.size)
    .filter((disk) => disk.size >= MIN_ROOT_DISK_BYTES);
  if (candidates.length === 0)
    warnings.push(`No root device found for node ${node.uuid}. Assuming node is diskless.`);
  return candidates[0];
}

/** Ironic's `get_updated_capabilities`: `key:value,...` with `boot_mode` set. */
function withBootMode(node: string, current: unknown, bootMode: string): unknown {
  if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
    return { ...(current as Record<string, unknown>), boot_mode: bootMode };
  }
  const entries = new Map<string, string>();
  if (typeof current === 'string' && current !== '') {
    for (const pair of current.split(',')) {
      const at = pair.indexOf(':');
      if (at < 0) {
        throw invalid(`Invalid capabilities string '${current}' in the properties of node ${node}.`);
      }
      entries.set(pair.slice(0, at), pair.slice(at + 1));
    }
  }
  entries.set('boot_mode', bootMode);
  return [...entries].map(([key, value]) => `${key}:${value}`).join(',');
}

/**
 * The node's properties and port changes after inspecting `inventory` (checked by
 * `checkInventory` first), with Ironic's `[inspector]` options (`options`, defaults as
 * Ironic's). Throws Ironic's `InvalidNodeInventory` (400) when no interface qualifies,
 * or the hints' failure when the root device hints match no disk.
 */
export function applyInspection(
  node: InspectedNode,
  inventory: CheckedInventory,
  options: InspectionOptions = {},
): InspectionOutcome {
  const addPorts = options.addPorts ?? 'pxe';
  const warnings: string[] = [];
  const reportedPxe = inventory.boot?.pxe_interface;
  const pxeMac =
    typeof reportedPxe === 'string' && reportedPxe !== '' ? normalizePxeInterface(reportedPxe) : undefined;

  const all = allInterfaces(node.uuid, inventory, pxeMac, warnings);
  const valid = validInterfaces(node.uuid, all, addPorts, pxeMac, warnings);
  const macs = Object.values(valid).map((iface) => iface.mac_address);
  const ports = portChanges(all, valid, macs, options);

  const properties: Record<string, unknown> = { ...node.properties };
  properties.cpu_arch = inventory.cpu.architecture;
  properties.memory_mb = inventory.memory.physical_mb;
  const cpus = Math.trunc(inventory.cpu.count);
  if (cpus > 0) properties.cpus = cpus;
  else warnings.push(`No CPU count available for node ${node.uuid}.`);

  const root = rootDisk(node, inventory.disks as readonly Disk[], warnings);
  let localGb = 0;
  if (root) {
    localGb = Math.floor(root.size / GiB);
    if (localGb === 0) {
      warnings.push(`The requested root disk ${root.name} of node ${node.uuid} is smaller than 1 GiB.`);
    } else if (options.diskPartitioningSpacing ?? true) {
      localGb -= 1;
    }
  }
  properties.local_gb = localGb;

  const bootMode = inventory.boot?.current_boot_mode;
  if (bootMode) properties.capabilities = withBootMode(node.uuid, node.properties.capabilities, bootMode);
  else warnings.push(`No boot mode information available for node ${node.uuid}`);

  const changed = Object.keys(properties).filter(
    (key) => JSON.stringify(properties[key]) !== JSON.stringify(node.properties[key]),
  );
  return {
    properties,
    changed,
    ports,
    pluginData: {
      all_interfaces: all,
      valid_interfaces: valid,
      macs,
      ...(root ? { root_disk: root } : {}),
      local_gb: localGb,
    },
    warnings,
  };
}
