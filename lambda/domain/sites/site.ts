/**
 * A site: one datacenter with one agent, Ironic's `conductor_group`. Names follow
 * Ironic's conductor_group rules (letters, digits, `_ - .`), lower case, 1-64 characters
 * (the name is also part of the site's SQS queue name, which SQS limits).
 */
import { DISCOVERY_DRIVERS, type DiscoveryDriver } from '../../../protocol/discovery.ts';
import { invalid } from '../errors.ts';

/**
 * Discovery (Ironic's inspector discovery / auto-enroll) at a site, off by default: an
 * unknown machine that network-boots the site's entry script gets the deploy ramdisk
 * (`deploy_kernel` / `deploy_ramdisk`, catalog image names or UUIDs as given) and is
 * enrolled as a new node with `driver`.
 */
export interface SiteDiscovery {
  readonly enabled: boolean;
  readonly deploy_kernel: string | null;
  readonly deploy_ramdisk: string | null;
  readonly driver: DiscoveryDriver;
}

export { DISCOVERY_DRIVERS, type DiscoveryDriver };

/** Discovery off: what a site without the setting shows. */
export const DISCOVERY_OFF: SiteDiscovery = {
  enabled: false,
  deploy_kernel: null,
  deploy_ramdisk: null,
  driver: 'ipmi',
};

const IMAGE_REF = { type: ['string', 'null'], minLength: 1, maxLength: 255 } as const;

/** The `discovery` field as given (POST, PATCH's result): missing fields take their defaults. */
export const SITE_DISCOVERY_SCHEMA = {
  type: 'object',
  properties: {
    enabled: { type: 'boolean' },
    deploy_kernel: IMAGE_REF,
    deploy_ramdisk: IMAGE_REF,
    driver: { enum: [...DISCOVERY_DRIVERS] },
  },
  additionalProperties: false,
} as const;

/**
 * The setting with its defaults; enabled needs both images (checked against the catalog
 * by the caller: they must exist, be active, have a kernel and a ramdisk, and go to the site).
 */
export function normalizeDiscovery(value: Partial<SiteDiscovery> | null | undefined): SiteDiscovery {
  const discovery: SiteDiscovery = {
    enabled: value?.enabled ?? false,
    deploy_kernel: value?.deploy_kernel ?? null,
    deploy_ramdisk: value?.deploy_ramdisk ?? null,
    driver: value?.driver ?? 'ipmi',
  };
  if (discovery.enabled) {
    const missing = (['deploy_kernel', 'deploy_ramdisk'] as const).filter((key) => discovery[key] === null);
    if (missing.length > 0) {
      throw invalid(
        `Discovery cannot be enabled without the deploy ramdisk: missing ${missing.map((key) => `discovery.${key}`).join(' and ')}.`,
      );
    }
  }
  return discovery;
}

/**
 * Automated cleaning at a site (Ironic's `[conductor]automated_clean` and the
 * `erase_devices` priority, per conductor group): null keeps the control plane's setting
 * (`METALPLANE_AUTOMATED_CLEAN`, `METALPLANE_CLEAN_ERASE_DEVICES`). A node's own
 * `automated_clean` (true/false) wins over both, as in Ironic.
 */
export interface SiteCleaning {
  readonly automated_clean: boolean | null;
  readonly erase_devices: boolean | null;
}

/** No site setting: the control plane's settings apply. */
export const CLEANING_DEFAULT: SiteCleaning = { automated_clean: null, erase_devices: null };

export const SITE_CLEANING_SCHEMA = {
  type: 'object',
  properties: {
    automated_clean: { type: ['boolean', 'null'] },
    erase_devices: { type: ['boolean', 'null'] },
  },
  additionalProperties: false,
} as const;

/** The setting with its defaults (missing fields: null, the control plane's setting). */
export const normalizeCleaning = (value: Partial<SiteCleaning> | null | undefined): SiteCleaning => ({
  automated_clean: value?.automated_clean ?? null,
  erase_devices: value?.erase_devices ?? null,
});

export interface Site {
  name: string;
  description: string | null;
  location: string | null;
  created_at: string;
  updated_at: string | null;
  /**
   * URL of the site's SQS FIFO command queue, recorded when the sites API creates it.
   * Sites made before (or by `metalplane-admin site create`) have none: the command
   * queue adapter then creates or finds the queue by its name.
   */
  queue_url?: string | null;
  /** Discovery (absent or null: off, `DISCOVERY_OFF`). */
  discovery?: SiteDiscovery | null;
  /** Automated cleaning (absent or null: `CLEANING_DEFAULT`). */
  cleaning?: SiteCleaning | null;
}

const SITE_NAME = /^[a-z0-9_.-]{1,64}$/;

export function validateSiteName(value: unknown): string {
  if (typeof value !== 'string' || !SITE_NAME.test(value)) {
    throw invalid(
      `Invalid site name ${JSON.stringify(value)}: use 1 to 64 lower-case letters, digits, '_', '-' or '.'.`,
    );
  }
  return value;
}

export const SITE_TEXT_MAX = 255;

/** `POST /v1/sites`. */
export const SITE_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 64 },
    description: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    location: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    default: { type: 'boolean' },
    discovery: SITE_DISCOVERY_SCHEMA,
    cleaning: SITE_CLEANING_SCHEMA,
  },
  required: ['name'],
  additionalProperties: false,
} as const;

/** What a PATCH may change, and the shape the patched view must keep. */
export const SITE_PATCHABLE_FIELDS = ['description', 'location', 'default', 'discovery', 'cleaning'] as const;

export const SITE_VIEW_SCHEMA = {
  type: 'object',
  properties: {
    description: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    location: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    default: { type: 'boolean' },
    discovery: SITE_DISCOVERY_SCHEMA,
    cleaning: SITE_CLEANING_SCHEMA,
  },
  required: ['description', 'location', 'default'],
  additionalProperties: false,
} as const;
