/**
 * Images for tests, the way an operator makes them: registered through `/v1/images`,
 * each file uploaded with the presigned single PUT, completed, and waited for until the
 * control plane has verified it (`active`).
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { TestApi } from './api.ts';
import { waitFor } from './channel.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Uploads a kernel+ramdisk image; answers its UUID once active. */
export function uploadKernelRamdisk(
  api: TestApi,
  name: string,
  kernel: Buffer,
  ramdisk: Buffer,
): Promise<string> {
  return uploadImage(api, name, 'kernel+ramdisk', [
    ['kernel', kernel],
    ['ramdisk', ramdisk],
  ]);
}

/** Uploads an ISO image; answers its UUID once active. */
export function uploadIso(api: TestApi, name: string, iso: Buffer): Promise<string> {
  return uploadImage(api, name, 'iso', [['iso', iso]]);
}

async function uploadImage(
  api: TestApi,
  name: string,
  kind: string,
  files: ReadonlyArray<readonly [string, Buffer]>,
): Promise<string> {
  const created = await api.call('POST', '/v1/images', {
    body: {
      name,
      kind,
      files: files.map(([role, bytes]) => ({ role, size: bytes.length, sha256: sha256(bytes) })),
    },
  });
  expect(created.status).toBe(201);
  const uuid = created.body.uuid as string;
  for (const [role, bytes] of files) {
    const upload = await api.call('POST', `/v1/images/${uuid}/files/${role}/upload`, {
      body: { multipart: false },
    });
    expect(upload.status).toBe(201);
    const put = await fetch(upload.body.url, {
      method: 'PUT',
      body: bytes,
      headers: upload.body.headers ?? {},
      signal: AbortSignal.timeout(30_000),
    });
    expect(put.ok).toBe(true);
    const done = await api.call('POST', `/v1/images/${uuid}/files/${role}/complete`, { body: {} });
    expect([200, 202]).toContain(done.status);
  }
  await waitFor(
    async () => ((await api.call('GET', `/v1/images/${uuid}`)).body.state === 'active' ? true : undefined),
    'the image to be active',
    20_000,
  );
  return uuid;
}
