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
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

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

/** How long `withBuildLock` waits for another process's build before giving up. */
const BUILD_LOCK_WAIT_MS = 20 * 60_000;
const BUILD_LOCK_POLL_MS = 250;

/**
 * Runs `build` while holding `lockDir` (created with one atomic mkdir, holding the owner's
 * PID): on a cold cache, parallel test files that need the same build then make it once
 * and the others find it in the cache, instead of each compiling the Go program and
 * compressing the archive at once (three of them at once in CI: ≈ 100 CPU s of 2 cores).
 * A lock whose owner died is taken over. Not a lock file refreshed by a timer
 * (proper-lockfile): the builds are synchronous, and would starve the timer.
 */
export async function withBuildLock<T>(lockDir: string, build: () => Promise<T>): Promise<T> {
  const owner = join(lockDir, 'owner');
  const deadline = Date.now() + BUILD_LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(owner, String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (!ownerAlive(owner)) {
      // Dead (or never wrote its PID: it died between mkdir and write): take it over.
      rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`${lockDir}: another build held it for ${BUILD_LOCK_WAIT_MS / 60_000} min`);
    }
    await sleep(BUILD_LOCK_POLL_MS);
  }
  try {
    return await build();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function ownerAlive(owner: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(owner, 'utf8'));
  } catch {
    // Just created, PID not written yet: alive, unless it stays so (checked again next poll).
    return Date.now() - statMtime(dirname(owner)) < 10_000;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function statMtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}
