/**
 * Parallel ranged downloads (agent/images/download.ts) from the run's moto S3 through
 * presigned URLs and the counting proxy (test/support/s3-images.ts): a multi-part file
 * lands byte for byte through the agent's ImageManager, a part cut half way is retried
 * without fetching the file again, and a wrong SHA-256 leaves nothing in the served tree.
 * Also guards local/moto_shim.py's ranged GET (only the range read, right bytes).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ChecksumError, downloadFile, PART_SIZE } from '../../agent/images/download.ts';
import { waitFor } from '../../agent/testing/agent-process.ts';
import { startImageRig } from '../support/image-rig.ts';
import { ImageBucket } from '../support/s3-images.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function bucket(): Promise<ImageBucket> {
  const s3 = await ImageBucket.create(inject('awsEndpoint'));
  cleanups.push(() => s3.close());
  return s3;
}

function root(): { root: string; uuid: string } {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-ranged-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const uuid = randomUUID();
  mkdirSync(join(dir, uuid));
  return { root: dir, uuid };
}

describe('ranged image download from S3 (moto)', () => {
  it('the manager fetches a multi-part file as parallel ranged GETs: right bytes and hash, ready', async () => {
    const s3 = await bucket();
    const size = 3 * PART_SIZE + 5;
    const iso = await s3.put('multi.iso', randomBytes(size));
    const a = await s3.assignment([iso]);
    const { cp, dir } = await startImageRig([a], cleanups);
    await waitFor(() => cp.imageReports(a.uuid).some((x) => x.state === 'ready'), 'image ready', 30_000);
    expect(readFileSync(join(dir, a.uuid, 'iso')).equals(iso.data)).toBe(true);
    const gets = s3.proxy.gets('multi.iso');
    expect(gets.map((g) => g.status)).toEqual([206, 206, 206, 206]);
    expect(gets.map((g) => g.range).sort()).toEqual(
      [0, 1, 2, 3].map((i) => `bytes=${i * PART_SIZE}-${Math.min(size, (i + 1) * PART_SIZE) - 1}`).sort(),
    );
    expect(s3.proxy.bytes('multi.iso')).toBe(size);
    expect(s3.proxy.maxInFlight).toBeGreaterThan(1);
    expect(readdirSync(join(dir, a.uuid)).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('a part cut half way is retried from where it stopped; the rest is not fetched again', async () => {
    const s3 = await bucket();
    const size = 4 * PART_SIZE;
    const iso = await s3.put('cut.iso', randomBytes(size));
    const { root: dir, uuid } = root();
    // The second response to come is cut after 3 MiB.
    s3.proxy.cuts.push(Number.POSITIVE_INFINITY, 3 * MiB);
    const result = await downloadFile(
      { root: dir, uuid, role: 'iso', size, sha256: iso.sha256, url: await s3.presign('cut.iso') },
      { retryDelayMs: 10 },
    );
    expect(readFileSync(join(dir, uuid, 'iso')).equals(iso.data)).toBe(true);
    const gets = s3.proxy.gets('cut.iso');
    expect(gets).toHaveLength(5);
    expect(gets.filter((g) => g.cut)).toHaveLength(1);
    // Only what was cut but not yet written (< one write batch) came twice.
    expect(s3.proxy.bytes('cut.iso') - size).toBeLessThan(2 * MiB);
    expect(result.transferred).toBe(s3.proxy.bytes('cut.iso'));
  });

  it('a wrong SHA-256 is rejected and leaves nothing in the served tree', async () => {
    const s3 = await bucket();
    const size = 2 * PART_SIZE + 1;
    await s3.put('bad.iso', randomBytes(size));
    const { root: dir, uuid } = root();
    const error = await downloadFile({
      root: dir,
      uuid,
      role: 'iso',
      size,
      sha256: 'cd'.repeat(32),
      url: await s3.presign('bad.iso'),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChecksumError);
    expect(readdirSync(join(dir, uuid))).toEqual([]);
  });
});
