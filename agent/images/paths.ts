/**
 * Where an image's files live: `<images dir>/<image uuid>/<role>` (a whole-disk image's
 * prepared file: `disk.raw.gz`, next to `disk`, see prepare.ts). Only a validated
 * UUID and a role from a fixed set ever become path components, so no image (whatever
 * its name says) can reach outside the images directory.
 */
import { join } from 'node:path';
import type { ImageFileRole } from '../../protocol/messages.ts';

export const ROLES: readonly ImageFileRole[] = ['iso', 'kernel', 'ramdisk', 'disk'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** Per-image manifest of verified files (size, mtime, inode, digest). */
export const MANIFEST = '.manifest.json';

export function isImageUuid(value: string): boolean {
  return UUID.test(value);
}

export function isSha256(value: string): boolean {
  return SHA256.test(value);
}

export function isRole(value: string): value is ImageFileRole {
  return (ROLES as readonly string[]).includes(value);
}

/** `<root>/<uuid>`; throws for anything but a lower-case UUID. */
export function imageDir(root: string, uuid: string): string {
  if (!isImageUuid(uuid)) throw new Error(`not an image UUID: ${JSON.stringify(uuid.slice(0, 64))}`);
  return join(root, uuid);
}

/** `<root>/<uuid>/<role>`. */
export function imageFile(root: string, uuid: string, role: string): string {
  if (!isRole(role)) throw new Error(`not an image file role: ${JSON.stringify(role.slice(0, 32))}`);
  return join(imageDir(root, uuid), role);
}

/** The hidden download in progress next to the file: `<root>/<uuid>/.<role>.partial`. */
export function partialFile(root: string, uuid: string, role: string): string {
  return join(imageDir(root, uuid), `.${role}.partial`);
}

/** What the partial is a download of (size, digest, ETag): `.<role>.partial.json`. */
export function partialMeta(root: string, uuid: string, role: string): string {
  return `${partialFile(root, uuid, role)}.json`;
}

/** A presigned URL fit for a log line: scheme, host and path; the query (the signature) masked. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search ? '?[redacted]' : ''}`;
  } catch {
    return '[unparseable url]';
  }
}
