/**
 * Discovery (Ironic's inspector "discovery", auto-enroll): an unknown machine that
 * network-boots a site's default entry script gets the Metalplane ramdisk, which the site
 * agent inspects and reports; the control plane enrolls it as a new node in `enroll`.
 * What the agent and the control plane exchange for it, over HTTPS with the agent's
 * credential, its own site only:
 *
 *   GET  /v1/agent/site           → AgentSiteView: the site's discovery setting, the
 *                                   deploy kernel and ramdisk resolved to image UUIDs
 *                                   (`enabled` false when off, or when an image is gone).
 *   POST /v1/agent/discoveries    DiscoveryReport {boot_mac, inventory}
 *                                 → 201 DiscoveryAnswer {outcome: created, uuid}
 *                                 → 200 DiscoveryAnswer {outcome: known, uuid}  (a port
 *                                   already holds one of the inventory's MACs: nothing done)
 *                                 → 400 invalid inventory, 409 discovery off for the site.
 *
 * The ramdisk side is the ramdisk protocol (`ramdisk.ts`) unchanged: the discovery boot's
 * kernel line carries `mp.url`, `mp.token` (the agent's reusable discovery token) and
 * `mp.discovery=1`.
 *
 * This module imports nothing of `lambda/`, `agent/` or `ramdisk/`.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { lazyValidator } from './lazy-validator.ts';
import type { Inventory } from './ramdisk.ts';

export const AGENT_SITE_PATH = '/v1/agent/site';
export const AGENT_DISCOVERIES_PATH = '/v1/agent/discoveries';
/** The kernel parameter that tells the ramdisk it boots for discovery (no node yet). */
export const DISCOVERY_KERNEL_PARAM = 'mp.discovery';
/** Discovery sessions one agent holds at most at once. */
export const MAX_DISCOVERY_SESSIONS = 16;
/** The hardware types a discovered node may be enrolled with (Ironic's `[discovery]enroll_node_driver`). */
export const DISCOVERY_DRIVERS = ['ipmi', 'fake-hardware'] as const;
export type DiscoveryDriver = (typeof DISCOVERY_DRIVERS)[number];

export interface AgentSiteView {
  readonly site: string;
  readonly discovery: {
    readonly enabled: boolean;
    /** Image UUIDs (null when discovery is off). */
    readonly deploy_kernel: string | null;
    readonly deploy_ramdisk: string | null;
  };
}

export interface DiscoveryReport {
  /** The MAC the ramdisk booted from (its hello's `boot_mac`). */
  readonly boot_mac: string;
  readonly inventory: Inventory;
}

export interface DiscoveryAnswer {
  readonly outcome: 'created' | 'known';
  /** The node created, or the node that holds a port of one of the inventory's MACs. */
  readonly uuid: string;
}

const MAC = '^([0-9a-f]{2}:){5}[0-9a-f]{2}$';
const UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const UUID_OR_NULL = { anyOf: [{ type: 'string', pattern: UUID }, { type: 'null' }] } as const;

export const AGENT_SITE_SCHEMA = {
  type: 'object',
  properties: {
    site: { type: 'string', minLength: 1, maxLength: 64 },
    discovery: {
      type: 'object',
      properties: {
        enabled: { type: 'boolean' },
        deploy_kernel: UUID_OR_NULL,
        deploy_ramdisk: UUID_OR_NULL,
      },
      required: ['enabled', 'deploy_kernel', 'deploy_ramdisk'],
    },
  },
  required: ['site', 'discovery'],
} as const;

/**
 * The inventory's shape as the agent checks it before reporting it (ironic-python-agent's
 * fields that the control plane reads); the control plane checks it in full again.
 */
export const INVENTORY_SHAPE_SCHEMA = {
  type: 'object',
  properties: {
    cpu: {
      type: 'object',
      properties: {
        count: { type: 'integer', minimum: 0 },
        architecture: { type: 'string', minLength: 1, maxLength: 64 },
      },
      required: ['count', 'architecture'],
    },
    memory: {
      type: 'object',
      properties: { physical_mb: { type: 'integer', minimum: 0 } },
      required: ['physical_mb'],
    },
    disks: {
      type: 'array',
      maxItems: 1000,
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, size: { type: 'integer', minimum: 0 } },
        required: ['name', 'size'],
      },
    },
    interfaces: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1 },
          mac_address: { type: 'string', maxLength: 64 },
        },
        required: ['name', 'mac_address'],
      },
    },
    boot: {
      type: 'object',
      properties: {
        current_boot_mode: { enum: ['bios', 'uefi'] },
        pxe_interface: { type: ['string', 'null'] },
      },
    },
  },
  required: ['cpu', 'memory', 'disks', 'interfaces'],
} as const;

export const DISCOVERY_REPORT_SCHEMA = {
  type: 'object',
  properties: {
    boot_mac: { type: 'string', pattern: MAC },
    inventory: INVENTORY_SHAPE_SCHEMA,
  },
  required: ['boot_mac', 'inventory'],
  additionalProperties: false,
} as const;

export const DISCOVERY_ANSWER_SCHEMA = {
  type: 'object',
  properties: {
    outcome: { enum: ['created', 'known'] },
    uuid: { type: 'string', pattern: UUID },
  },
  required: ['outcome', 'uuid'],
} as const;

// Compiled at the first validation (not at import: issue 18); precompiled in the agent bundle.
export const validateAgentSite: ValidateFunction<AgentSiteView> = lazyValidator<AgentSiteView>(
  'discovery.agent-site',
  { strict: false },
  AGENT_SITE_SCHEMA,
);
export const validateInventoryShape: ValidateFunction<Inventory> = lazyValidator<Inventory>(
  'discovery.inventory-shape',
  { strict: false },
  INVENTORY_SHAPE_SCHEMA,
);
export const validateDiscoveryReport: ValidateFunction<DiscoveryReport> = lazyValidator<DiscoveryReport>(
  'discovery.report',
  { strict: false },
  DISCOVERY_REPORT_SCHEMA,
);
export const validateDiscoveryAnswer: ValidateFunction<DiscoveryAnswer> = lazyValidator<DiscoveryAnswer>(
  'discovery.answer',
  { strict: false },
  DISCOVERY_ANSWER_SCHEMA,
);

/** The first schema error of `validate`, as `path message` (for error texts). */
export function schemaError(validate: ValidateFunction): string {
  const e = validate.errors?.[0];
  return e ? `${e.instancePath || '/'} ${e.message ?? ''}`.trimEnd() : 'invalid';
}
