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
