/**
 * Image sync pieces without the network: the protocol's validation of `images`
 * (path-ish UUIDs, bad digests, roles), the manager's own check, path confinement, URL
 * masking, the bandwidth setting, and the token bucket's rate.
 */
import { describe, expect, it } from 'vitest';
import { parseBandwidth, validateConfig } from '../../agent/config.ts';
import { checkAssignment } from '../../agent/images/manager.ts';
import { imageDir, imageFile, maskUrl } from '../../agent/images/paths.ts';
import { TokenBucket } from '../../agent/images/throttle.ts';
import { type ImageAssignment, ProtocolError, parseServerMessage } from '../../protocol/messages.ts';

const uuid = '0b7c7d7e-1f2a-4b3c-8d9e-0123456789ab';
const file = {
  role: 'iso',
  size: 10,
  sha256: 'a'.repeat(64),
  url: 'https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abc',
  url_expires_at: '2030-01-01T00:00:00Z',
};
const images = (image: Record<string, unknown>) =>
  JSON.stringify({ v: 1, type: 'images', images: [{ uuid, name: 'n', files: [file], ...image }] });

describe('images message validation', () => {
  it('accepts a well-formed page', () => {
    const msg = parseServerMessage(images({}));
    expect(msg.type).toBe('images');
  });

  it.each([
    ['a path-ish uuid', { uuid: '../../etc' }],
    ['an upper-case uuid', { uuid: uuid.toUpperCase() }],
    ['a bad sha256', { files: [{ ...file, sha256: 'xyz' }] }],
    ['an upper-case sha256', { files: [{ ...file, sha256: 'A'.repeat(64) }] }],
    ['a path-ish role', { files: [{ ...file, role: '../iso' }] }],
    ['a non-http url', { files: [{ ...file, url: 'file:///etc/shadow' }] }],
    ['a negative size', { files: [{ ...file, size: -1 }] }],
    ['no files', { files: [] }],
    ['an unknown field', { path: '/etc' }],
  ])('refuses %s', (_what, image) => {
    expect(() => parseServerMessage(images(image))).toThrow(ProtocolError);
  });

  it('the manager refuses what the schema lets through but makes no sense', () => {
    const a = (files: unknown[]): ImageAssignment =>
      ({ uuid, name: 'n', files }) as unknown as ImageAssignment;
    expect(checkAssignment(a([file]))).toBeUndefined();
    expect(checkAssignment(a([file, file]))).toMatch(/twice/);
    expect(checkAssignment(a([file, { ...file, role: 'kernel' }]))).toMatch(/iso/);
    expect(
      checkAssignment(
        a([
          { ...file, role: 'kernel' },
          { ...file, role: 'ramdisk' },
        ]),
      ),
    ).toBeUndefined();
  });
});

describe('paths', () => {
  it('only a UUID and a known role become path components', () => {
    expect(imageFile('/srv/images', uuid, 'kernel')).toBe(`/srv/images/${uuid}/kernel`);
    expect(() => imageDir('/srv/images', '../etc')).toThrow(/not an image UUID/);
    expect(() => imageDir('/srv/images', `${uuid}/..`)).toThrow(/not an image UUID/);
    expect(() => imageFile('/srv/images', uuid, '../../passwd')).toThrow(/not an image file role/);
  });

  it('masks the signature of a presigned URL', () => {
    const masked = maskUrl(
      'https://b.s3.eu-central-1.amazonaws.com/images/x.iso?X-Amz-Credential=AKIA%2F&X-Amz-Signature=deadbeef',
    );
    expect(masked).toBe('https://b.s3.eu-central-1.amazonaws.com/images/x.iso?[redacted]');
  });
});

describe('images config', () => {
  it('parses bandwidth limits', () => {
    expect(parseBandwidth(0)).toBe(0);
    expect(parseBandwidth('off')).toBe(0);
    expect(parseBandwidth('100MiB/s')).toBe(100 * 1024 * 1024);
    expect(parseBandwidth('50 MB/s')).toBe(50_000_000);
    expect(parseBandwidth('1Gbit/s')).toBe(125_000_000);
    expect(parseBandwidth(1_000_000)).toBe(1_000_000);
    expect(parseBandwidth('fast')).toBeUndefined();
    expect(parseBandwidth('-1MB/s')).toBeUndefined();
  });

  it('defaults to <http.root>/images, and reports bad fields as FILE:FIELD', () => {
    const config = validateConfig({ http: { root: '/srv/pxe' } }, 'c.yaml', '/etc');
    expect(config.images).toEqual({
      enabled: true,
      dir: '/srv/pxe/images',
      concurrency: 2,
      bandwidthLimit: 0,
      refreshIntervalMs: 300_000,
      gcGraceMs: 3_600_000,
      verifyIntervalMs: 7 * 86_400_000,
    });
    expect(
      validateConfig({ images: { dir: 'img', bandwidth_limit: '10MiB/s' } }, 'c.yaml', '/etc').images,
    ).toMatchObject({ dir: '/etc/img', bandwidthLimit: 10 * 1024 * 1024 });
    expect(() =>
      validateConfig(
        { images: { concurrency: 0, bandwidth_limit: 'fast', gc_grace: 'soon', colour: 'red' } },
        'c.yaml',
        '/etc',
      ),
    ).toThrow(
      expect.objectContaining({
        problems: expect.arrayContaining([
          expect.stringMatching(/^c\.yaml:images\.colour: unknown field/),
          expect.stringMatching(/^c\.yaml:images\.concurrency: must be an integer from 1 to 16/),
          expect.stringMatching(/^c\.yaml:images\.bandwidth_limit: must be 0/),
          expect.stringMatching(/^c\.yaml:images\.gc_grace: must be a duration/),
        ]),
      }),
    );
  });
});

describe('token bucket', () => {
  it('holds a stream to its rate', async () => {
    const bucket = new TokenBucket(1_000_000, 100_000);
    const started = performance.now();
    for (let i = 0; i < 40; i++) await bucket.take(10_000); // 400 kB: 100 kB burst + 300 ms
    // The rate is a floor on the time taken, which no load can break; how close to the floor
    // the bucket keeps is a figure for a benchmark, not a property a busy machine can hold.
    expect(performance.now() - started).toBeGreaterThan(250);
  });

  it('a waiter gives up when its signal aborts', async () => {
    const bucket = new TokenBucket(100_000, 65_536);
    await bucket.take(65_536);
    await expect(bucket.take(65_536, AbortSignal.timeout(50))).rejects.toThrow();
  });
});
