/**
 * Ironic's API microversions: `X-OpenStack-Ironic-API-Version` negotiation.
 *
 * A missing header means the minimum, `latest` the maximum; anything else must be
 * `MAJOR.MINOR` within the supported range, or the request is refused with 406 exactly
 * as Ironic's `_check_version` does.
 */
import { NotAcceptable } from './errors.ts';

export interface ApiVersion {
  readonly major: number;
  readonly minor: number;
}

export const VERSION_HEADER = 'X-OpenStack-Ironic-API-Version';
export const MIN_VERSION_HEADER = 'X-OpenStack-Ironic-API-Minimum-Version';
export const MAX_VERSION_HEADER = 'X-OpenStack-Ironic-API-Maximum-Version';

export const MIN_VERSION: ApiVersion = { major: 1, minor: 1 };
/** Ironic 21.4's maximum, the one the reference corpus was recorded from. */
export const MAX_VERSION: ApiVersion = { major: 1, minor: 82 };

export function formatVersion(version: ApiVersion): string {
  return `${version.major}.${version.minor}`;
}

export function rangeHeaders(): Record<string, string> {
  return {
    [MIN_VERSION_HEADER]: formatVersion(MIN_VERSION),
    [MAX_VERSION_HEADER]: formatVersion(MAX_VERSION),
  };
}

/** True when the negotiated version is at least `major.minor` (Ironic's `allow_*` gates). */
export function atLeast(version: ApiVersion, minor: number, major = 1): boolean {
  return version.major > major || (version.major === major && version.minor >= minor);
}

/** Negotiates the version a request is served at; throws NotAcceptable as Ironic does. */
export function negotiateVersion(header: string | undefined): ApiVersion {
  if (header === undefined || header.trim() === '') return MIN_VERSION;
  const value = header.trim();
  if (value.toLowerCase() === 'latest') return MAX_VERSION;
  const match = /^(\d+)\.(\d+)$/.exec(value);
  if (!match) throw new NotAcceptable(`Invalid value for ${VERSION_HEADER} header`);
  const requested = { major: Number(match[1]), minor: Number(match[2]) };
  const range = `The supported version range is: [${formatVersion(MIN_VERSION)}, ${formatVersion(MAX_VERSION)}].`;
  if (requested.major !== MIN_VERSION.major) {
    throw new NotAcceptable(
      `Mutually exclusive versions requested. Version ${formatVersion(requested)} requested but not supported by this service. ${range}`,
      rangeHeaders(),
    );
  }
  if (compare(requested, MIN_VERSION) < 0 || compare(requested, MAX_VERSION) > 0) {
    throw new NotAcceptable(
      `Version ${formatVersion(requested)} was requested but the minor version is not supported by this service. ${range}`,
      rangeHeaders(),
    );
  }
  return requested;
}

function compare(a: ApiVersion, b: ApiVersion): number {
  return a.major - b.major || a.minor - b.minor;
}
