/**
 * The hardware inventory an in-band inspection reports (ironic-python-agent's shape, what
 * Metalplane's ramdisk sends as the result of its `inspect` step, and what Ironic serves
 * at `GET /v1/nodes/{node}/inventory`), checked before the control plane stores or uses
 * it: its own schema (not the ramdisk protocol's: this is what the control plane keeps),
 * limits on its size, clear errors naming the offending field, MAC addresses normalized.
 *
 * Fields beyond the ones checked (IPA's `bmc_address`, `system_vendor` details ...) are
 * kept as reported: Ironic stores the inventory as it came, and its hooks read what they
 * know. The 512 KiB cap bounds what they may hold.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Inventory } from '../../../protocol/ramdisk.ts';
import { DomainError, invalid } from '../errors.ts';

/** The most disks, and the most network interfaces, one inventory may list. */
export const MAX_INVENTORY_DEVICES = 1000;
/** The most bytes an inventory may take serialized as JSON (UTF-8). */
export const MAX_INVENTORY_BYTES = 512 * 1024;

/**
 * The inventory as the control plane keeps it: the reported one, its MACs normalized
 * (lower case, colon-separated). Other fields are those of `Inventory`, possibly more.
 */
export type CheckedInventory = Inventory & { readonly [extra: string]: unknown };

const TEXT = { type: ['string', 'null'], maxLength: 1024 } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;

export const INVENTORY_SCHEMA = {
  type: 'object',
  properties: {
    cpu: {
      type: 'object',
      properties: {
        model_name: TEXT,
        frequency: { type: ['string', 'number', 'null'], maxLength: 64 },
        count: { type: 'integer', minimum: 0, maximum: 1_000_000 },
        architecture: { type: 'string', minLength: 1, maxLength: 64 },
        flags: { type: 'array', items: { type: 'string', maxLength: 128 }, maxItems: 4096 },
        socket_count: { type: ['integer', 'null'], minimum: 0 },
      },
      required: ['count', 'architecture'],
    },
    memory: {
      type: 'object',
      properties: { total: COUNT, physical_mb: COUNT },
      required: ['physical_mb'],
    },
    disks: {
      type: 'array',
      maxItems: MAX_INVENTORY_DEVICES,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 256 },
          model: TEXT,
          size: COUNT,
          rotational: { type: 'boolean' },
          wwn: TEXT,
          serial: TEXT,
          vendor: TEXT,
          by_path: TEXT,
          hctl: TEXT,
        },
        required: ['name', 'size'],
      },
    },
    interfaces: {
      type: 'array',
      maxItems: MAX_INVENTORY_DEVICES,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 64 },
          mac_address: { type: ['string', 'null'], maxLength: 64 },
          ipv4_address: { type: ['string', 'null'], maxLength: 64 },
          ipv6_address: { type: ['string', 'null'], maxLength: 128 },
          has_carrier: { type: 'boolean' },
          driver: TEXT,
          speed_mbps: { type: ['integer', 'null'], minimum: 0 },
          pxe_enabled: { type: 'boolean' },
          client_id: TEXT,
        },
        required: ['name'],
      },
    },
    system_vendor: { type: 'object' },
    boot: {
      type: 'object',
      properties: {
        current_boot_mode: { enum: ['bios', 'uefi'] },
        pxe_interface: { type: ['string', 'null'], maxLength: 64 },
      },
    },
    hostname: { type: ['string', 'null'], maxLength: 255 },
  },
  required: ['cpu', 'memory', 'disks', 'interfaces'],
} as const;

// Compiled at the first inventory, not at import: compiling (and Ajv's 2020-12 meta-schema
// with it) cost most of the api Lambda's cold start, which most requests never need.
let validateInventory: ValidateFunction | undefined;
const compiledInventorySchema = (): ValidateFunction =>
  (validateInventory ??= new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true }).compile(
    INVENTORY_SCHEMA,
  ));

/** `/interfaces/3/mac_address` → `interfaces[3].mac_address`. */
function fieldOf(pointer: string): string {
  let field = '';
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    field += /^\d+$/.test(key) ? `[${key}]` : field === '' ? key : `.${key}`;
  }
  return field;
}

function explain(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required') {
    const parent = fieldOf(error.instancePath);
    return `${parent === '' ? '' : `${parent}.`}${String(params.missingProperty)} is required`;
  }
  const field = fieldOf(error.instancePath) || 'the inventory';
  if (error.keyword === 'maxItems') return `${field} lists more than ${String(params.limit)} entries`;
  return `${field} ${error.message ?? 'is invalid'}`;
}

/** An Ethernet MAC (`aa:bb:..`, `AA-BB-..`, `aabbcc..`) normalized, or undefined. */
export function normalizeEthernetMac(value: string): string | undefined {
  if (/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(value)) return value.toLowerCase().replaceAll('-', ':');
  if (/^[0-9a-f]{12}$/i.test(value)) return (value.toLowerCase().match(/../g) as string[]).join(':');
  return undefined;
}

/**
 * A hardware address longer than Ethernet's (InfiniBand's are 20 octets): kept in the
 * inventory, lower-cased, but never a port (Ironic's `validate_and_normalize_mac` skips it).
 */
const LONG_HARDWARE_ADDRESS = /^([0-9a-f]{2}:){6,19}[0-9a-f]{2}$/i;

/** pxelinux's `01-aa-bb-cc-dd-ee-ff` (what IPA may report as `boot.pxe_interface`) or a MAC. */
export function normalizePxeInterface(value: string): string | undefined {
  const pxelinux = /^01-((?:[0-9a-f]{2}-){5}[0-9a-f]{2})$/i.exec(value);
  return normalizeEthernetMac(pxelinux ? (pxelinux[1] as string) : value);
}

const refused = (reason: string) => invalid(`The inventory is invalid: ${reason}.`);

/**
 * The inventory an agent reported, checked and normalized: at most `MAX_INVENTORY_BYTES`
 * serialized (413 past it), the schema's types, at most `MAX_INVENTORY_DEVICES` disks and
 * interfaces, unique interface names, each `mac_address` empty, null, a MAC (normalized)
 * or a longer hardware address; `boot.pxe_interface` a MAC (normalized).
 */
export function checkInventory(value: unknown): CheckedInventory {
  let serialized: string | undefined;
  try {
    serialized = JSON.stringify(value);
  } catch {
    throw refused('it is not JSON');
  }
  if (serialized === undefined) throw refused('it is not JSON');
  const bytes = new TextEncoder().encode(serialized).length;
  if (bytes > MAX_INVENTORY_BYTES) {
    throw new DomainError(
      'too-large',
      `The inventory is ${bytes} bytes serialized; at most ${MAX_INVENTORY_BYTES} are accepted.`,
    );
  }
  const copy = JSON.parse(serialized) as Record<string, unknown>;
  const validate = compiledInventorySchema();
  if (!validate(copy)) {
    const [first] = validate.errors ?? [];
    throw refused(first ? explain(first) : 'it does not match the schema');
  }
  const inventory = copy as unknown as {
    interfaces: Array<Record<string, unknown>>;
    boot?: Record<string, unknown>;
  };
  const names = new Set<string>();
  inventory.interfaces.forEach((iface, index) => {
    const name = iface.name as string;
    if (names.has(name)) throw refused(`interfaces[${index}].name '${name}' is listed twice`);
    names.add(name);
    const mac = iface.mac_address;
    if (typeof mac !== 'string' || mac === '') return;
    const normalized = normalizeEthernetMac(mac);
    if (normalized) iface.mac_address = normalized;
    else if (LONG_HARDWARE_ADDRESS.test(mac)) iface.mac_address = mac.toLowerCase();
    else throw refused(`interfaces[${index}].mac_address '${mac}' is not a MAC address`);
  });
  const pxe = inventory.boot?.pxe_interface;
  if (typeof pxe === 'string' && pxe !== '' && inventory.boot) {
    const normalized = normalizePxeInterface(pxe);
    if (!normalized) throw refused(`boot.pxe_interface '${pxe}' is not a MAC address`);
    inventory.boot.pxe_interface = normalized;
  }
  return copy as unknown as CheckedInventory;
}
