/**
 * Publishing a finished build into a content-keyed cache (`.cache/ramdisk/<key>`,
 * `.cache/disk-image/<key>`), safe when several processes build the same key at once:
 * test files run in parallel workers and, on a cold cache, several of them build the same
 * ramdisk or disk image together.
 *
 * The build is staged in a sibling directory and renamed into place (atomic). If the key
 * is already there, the entry that stands is kept — built from the same inputs — and the
 * staged copy dropped, so no reader ever sees an entry deleted under it. Only an entry the
 * caller finds unusable (`usable` false: a file missing or cut short) is replaced.
 */
import { renameSync, rmSync } from 'node:fs';

/** Answers true if `staging` became `dir`, false if an entry published by another build stands. */
export function publishCacheEntry(staging: string, dir: string, usable: () => boolean): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      renameSync(staging, dir);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      if (usable()) {
        rmSync(staging, { recursive: true, force: true });
        return false;
      }
      // Unusable: move it aside first (one rename) so the next attempt's rename can land.
      const aside = `${dir}.stale-${process.pid}-${attempt}`;
      try {
        renameSync(dir, aside);
      } catch {
        // Another build moved it first; the next attempt sees what it published.
      }
      rmSync(aside, { recursive: true, force: true });
    }
  }
  throw new Error(`could not publish ${staging} as ${dir}: the entry kept changing under it`);
}
