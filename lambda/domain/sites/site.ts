/**
 * A site: one datacenter with one agent, Ironic's `conductor_group`. Names follow
 * Ironic's conductor_group rules (letters, digits, `_ - .`), lower case, 1-64 characters
 * (the name is also part of the site's SQS queue name, which SQS limits).
 */
import { invalid } from '../errors.ts';

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
  },
  required: ['name'],
  additionalProperties: false,
} as const;

/** What a PATCH may change, and the shape the patched view must keep. */
export const SITE_PATCHABLE_FIELDS = ['description', 'location', 'default'] as const;

export const SITE_VIEW_SCHEMA = {
  type: 'object',
  properties: {
    description: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    location: { type: ['string', 'null'], maxLength: SITE_TEXT_MAX },
    default: { type: 'boolean' },
  },
  required: ['description', 'location', 'default'],
  additionalProperties: false,
} as const;
