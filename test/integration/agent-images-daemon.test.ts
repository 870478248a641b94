/**
 * Image sync in the real agent process (`node agent/cli.ts run`): images from moto S3
 * (presigned, through a counting proxy), the list from the fake control plane. Restarts:
 * good files are not downloaded again, a corrupted one is replaced, and a download
 * killed at about half way resumes with Range.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { AgentProcess, testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import { ImageBucket } from '../support/s3-images.ts';

const MiB = 1024 * 1024;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const s3 = await ImageBucket.create(inject('awsEndpoint'));
  cleanups.push(() => s3.close());
  const cp = await new FakeControlPlane().start();
  cleanups.push(() => cp.close());
  const agent = new AgentProcess();
  cleanups.push(() => agent.cleanup());
  agent.writeConfig(
    testConfig({
      url: cp.url,
      websocketUrl: cp.websocketUrl,
      extra: ['images:', '  dir: ./images', '  bandwidth_limit: 4MiB/s'].join('\n'),
    }),
  );
  await agent.writeCredential(cp.credential);
  return { s3, cp, agent, dir: join(agent.dir, 'images') };
}

describe('image sync in the agent process', () => {
  it('syncs, does not download again after a restart, and replaces a file corrupted while it was down', async () => {
    const { s3, cp, agent, dir } = await setup();
    const iso = await s3.put('d.iso', randomBytes(2 * MiB + 7));
    const kernel = await s3.put('d.kernel', randomBytes(100_000), 'kernel');
    const ramdisk = await s3.put('d.initrd', randomBytes(300_000), 'ramdisk');
    const ids = [crypto.randomUUID(), crypto.randomUUID()] as const;
    cp.images = async () => [
      await s3.assignment([iso], { uuid: ids[0] }),
      await s3.assignment([kernel, ramdisk], { uuid: ids[1] }),
    ];

    await agent.start();
    await waitFor(
      () => ids.every((id) => cp.imageReports(id).some((r) => r.state === 'ready')),
      'both images ready',
      20_000,
    );
    expect(readFileSync(join(dir, ids[0], 'iso')).equals(iso.data)).toBe(true);
    expect(readFileSync(join(dir, ids[1], 'ramdisk')).equals(ramdisk.data)).toBe(true);
    const metrics = await (await fetch(`${await agent.statusUrl()}/metrics`)).text();
    expect(metrics).toContain(`metalplane_agent_image_bytes_downloaded_total ${2 * MiB + 7 + 400_000}`);
    expect(metrics).toContain('metalplane_agent_images{state="ready"} 2');
    expect(agent.raw).not.toMatch(/X-Amz-Signature/);
    expect((await agent.kill('SIGTERM')).code).toBe(0);

    // Restart with good files: checked by size + mtime, reported ready, nothing fetched.
    const getsBefore = s3.proxy.requests.length;
    const reportsBefore = cp.imageReports().length;
    await agent.start();
    await waitFor(
      () =>
        ids.every((id) =>
          cp
            .imageReports()
            .slice(reportsBefore)
            .some((r) => r.image === id && r.state === 'ready'),
        ),
      'ready again',
      20_000,
    );
    expect(s3.proxy.requests.length).toBe(getsBefore);
    expect(agent.lines('images on disk checked')[0]).toMatchObject({ files: 3, rehashed: 0, corrupt: 0 });
    expect((await agent.kill('SIGTERM')).code).toBe(0);

    // A byte flipped while the agent was down: found at start (full re-hash), replaced.
    const path = join(dir, ids[1], 'ramdisk');
    const bytes = readFileSync(path);
    bytes[4242] = (bytes[4242]! + 1) % 256;
    writeFileSync(path, bytes);
    await agent.start();
    await waitFor(() => s3.proxy.gets('d.initrd').length === 2, 'ramdisk fetched again', 20_000);
    await waitFor(
      () => existsSync(path) && readFileSync(path).equals(ramdisk.data),
      'ramdisk replaced',
      20_000,
    );
    expect(agent.lines('images on disk checked')[0]).toMatchObject({ files: 3, rehashed: 1, corrupt: 1 });
    expect(agent.lines('corrupt image file removed (it will be downloaded again)')[0]).toMatchObject({
      image: ids[1],
      role: 'ramdisk',
    });
    expect(s3.proxy.gets('d.iso').length).toBe(1);
  });

  it('a download killed at about half way resumes with Range after the restart', async () => {
    const size = 8 * MiB;
    const { s3, cp, agent, dir: root } = await setup();
    const iso = await s3.put('k.iso', randomBytes(size));
    const id = crypto.randomUUID();
    cp.images = async () => [await s3.assignment([iso], { uuid: id })];
    const dir = join(root, id);
    await agent.start();
    const partialSize = () => {
      try {
        return readFileSync(join(dir, '.iso.partial')).length;
      } catch {
        return 0;
      }
    };
    await waitFor(() => partialSize() >= size / 2, 'half of the file on disk', 20_000);
    await agent.kill('SIGKILL');
    const kept = partialSize();
    expect(kept).toBeLessThan(size);

    await agent.start();
    await waitFor(() => cp.imageReports(id).some((r) => r.state === 'ready'), 'ready', 30_000);
    expect(readFileSync(join(dir, 'iso')).equals(iso.data)).toBe(true);
    const gets = s3.proxy.gets('k.iso');
    expect(gets.length).toBe(2);
    expect(gets[1]!.range).toBe(`bytes=${kept}-`);
    // The second request carried exactly what was missing (the proxy's own count of the
    // first one includes what sat in socket buffers when the agent was killed).
    expect(kept).toBeGreaterThanOrEqual(size / 2);
    expect(gets[1]!.bytes).toBe(size - kept);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });
});
