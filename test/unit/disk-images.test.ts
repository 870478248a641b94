/**
 * Whole-disk images (kind `disk`): the registration rules (kind / role / disk_format
 * combinations, each refusal a clear `invalid`, i.e. a 400), the protocol's optional
 * fields (images_pull `accepts`, an assignment's `disk_format`, a report's `served`), the
 * agent's checks of an assignment, and what the site serves for each format.
 */
import { describe, expect, it } from 'vitest';
import { checkAssignment } from '../../agent/images/manager.ts';
import { isRole } from '../../agent/images/paths.ts';
import { needsPreparation, PREPARED_FILE, servedName } from '../../agent/images/prepare.ts';
import { DomainError } from '../../lambda/domain/errors.ts';
import {
  DISK_FORMATS,
  IMAGE_CREATE_SCHEMA,
  type ImageCreateBody,
  newImage,
  validateDiskFormat,
} from '../../lambda/domain/images/image.ts';
import { validator } from '../../lambda/domain/schema.ts';
import {
  type ImageAssignment,
  ProtocolError,
  parseAgentMessage,
  parseServerMessage,
} from '../../protocol/messages.ts';

const sha = 'a'.repeat(64);
const uuid = '0b7c1e9e-4a7f-4f55-9d3c-3a1f6f0e2b11';
const now = '2026-01-01T00:00:00.000000+00:00';
const validate = validator<ImageCreateBody>('image', IMAGE_CREATE_SCHEMA);

/** Schema then domain rules, as POST /v1/images applies them; the error if refused. */
function register(body: Record<string, unknown>) {
  try {
    return { image: newImage(validate(body), uuid, now) };
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return { error };
  }
}
const diskFile = { role: 'disk', size: 4096, sha256: sha };

describe('registration of a whole-disk image', () => {
  it.each(DISK_FORMATS)('kind disk, one disk file, disk_format %s: accepted and kept', (format) => {
    const { image, error } = register({ name: 'img', kind: 'disk', disk_format: format, files: [diskFile] });
    expect(error).toBeUndefined();
    expect(image).toMatchObject({ kind: 'disk', disk_format: format, state: 'uploading' });
    expect(image!.files).toMatchObject([{ role: 'disk', key: `images/${uuid}/disk`, state: 'pending' }]);
  });

  it.each([
    [
      'no disk_format',
      { kind: 'disk', files: [diskFile] },
      /An image of kind disk needs a disk_format: one of raw, raw\+gzip, raw\+zstd, qcow2/,
    ],
    [
      'an unknown disk_format',
      { kind: 'disk', disk_format: 'vmdk', files: [diskFile] },
      /Schema error for image: .*'vmdk'.*raw\+zstd/,
    ],
    ['a disk_format of the wrong case', { kind: 'disk', disk_format: 'QCOW2', files: [diskFile] }, /'QCOW2'/],
    [
      'a disk_format that is not a string',
      { kind: 'disk', disk_format: 2, files: [diskFile] },
      /Schema error for image/,
    ],
    [
      'a disk_format on an iso',
      { kind: 'iso', disk_format: 'raw', files: [{ ...diskFile, role: 'iso' }] },
      /disk_format is for whole-disk images \(kind disk\) only; an image of kind iso has none/,
    ],
    [
      'a disk_format on a kernel+ramdisk',
      {
        kind: 'kernel+ramdisk',
        disk_format: 'qcow2',
        files: [
          { ...diskFile, role: 'kernel' },
          { ...diskFile, role: 'ramdisk' },
        ],
      },
      /kind kernel\+ramdisk has none/,
    ],
    [
      'kind disk with an iso file',
      { kind: 'disk', disk_format: 'raw', files: [{ ...diskFile, role: 'iso' }] },
      /An image of kind disk has exactly the files disk; got iso/,
    ],
    [
      'kind disk with two files',
      { kind: 'disk', disk_format: 'raw', files: [diskFile, { ...diskFile, role: 'kernel' }] },
      /kind disk has exactly the files disk; got disk, kernel/,
    ],
    [
      'kind iso with a disk file',
      { kind: 'iso', files: [diskFile] },
      /kind iso has exactly the files iso; got disk/,
    ],
    [
      'kind ramdisk with a disk file',
      { kind: 'ramdisk', files: [diskFile] },
      /kind ramdisk has exactly the files ramdisk; got disk/,
    ],
    [
      'an unknown role',
      { kind: 'disk', disk_format: 'raw', files: [{ ...diskFile, role: 'root' }] },
      /Schema error for image/,
    ],
    [
      'a bad checksum',
      { kind: 'disk', disk_format: 'raw', files: [{ ...diskFile, sha256: 'A'.repeat(64) }] },
      /Schema error for image/,
    ],
  ])('refuses %s with a clear 400', (_what, body, message) => {
    const { image, error } = register({ name: 'img', ...body });
    expect(image).toBeUndefined();
    expect(error?.kind).toBe('invalid');
    expect(error?.message).toMatch(message);
  });

  it('keeps every other kind as it was: no disk_format', () => {
    const { image } = register({
      name: 'k',
      kind: 'kernel+ramdisk',
      files: [
        { ...diskFile, role: 'ramdisk' },
        { ...diskFile, role: 'kernel' },
      ],
    });
    expect(image!.files.map((f) => f.role)).toStrictEqual(['kernel', 'ramdisk']);
    expect('disk_format' in image!).toBe(false);
    expect(validateDiskFormat('iso', undefined)).toBeUndefined();
  });
});

describe('protocol: optional fields only', () => {
  const assignment = (extra: Partial<ImageAssignment> = {}): ImageAssignment => ({
    uuid,
    name: 'img',
    disk_format: 'qcow2',
    files: [{ role: 'disk', size: 10, sha256: sha, url: 'https://s3.example/x', url_expires_at: now }],
    ...extra,
  });

  it('images_pull may say what it accepts; older messages stay valid', () => {
    expect(parseAgentMessage(JSON.stringify({ v: 1, type: 'images_pull' }))).toStrictEqual({
      v: 1,
      type: 'images_pull',
    });
    expect(parseAgentMessage(JSON.stringify({ v: 1, type: 'images_pull', accepts: ['disk'] }))).toMatchObject(
      { accepts: ['disk'] },
    );
    expect(() => parseAgentMessage(JSON.stringify({ v: 1, type: 'images_pull', accepts: ['vmdk'] }))).toThrow(
      ProtocolError,
    );
  });

  it('an images page may carry a disk image with its disk_format', () => {
    const msg = parseServerMessage(JSON.stringify({ v: 1, type: 'images', images: [assignment()] }));
    expect(msg).toMatchObject({ images: [{ disk_format: 'qcow2', files: [{ role: 'disk' }] }] });
    expect(() =>
      parseServerMessage(
        JSON.stringify({ v: 1, type: 'images', images: [assignment({ disk_format: 'vmdk' as 'raw' })] }),
      ),
    ).toThrow(ProtocolError);
  });

  it("a report's served file is checked: inside the image's directory, raw or raw+gzip", () => {
    const report = (served: unknown) =>
      JSON.stringify({
        v: 1,
        type: 'image_report',
        reports: [{ image: uuid, state: 'ready', bytes_done: 1, bytes_total: 1, observed_at: now, served }],
      });
    const served = { path: `${uuid}/${PREPARED_FILE}`, format: 'raw+gzip', sha256: sha, size: 123 };
    expect(parseAgentMessage(report(served))).toMatchObject({ reports: [{ served }] });
    for (const bad of [
      { ...served, path: '../etc/passwd' },
      { ...served, path: `${uuid}/../../x` },
      { ...served, path: `${uuid}/.manifest.json` },
      { ...served, format: 'qcow2' },
      { ...served, sha256: 'x' },
      { ...served, size: -1 },
      { path: served.path, format: 'raw' },
    ]) {
      expect(() => parseAgentMessage(report(bad)), JSON.stringify(bad)).toThrow(ProtocolError);
    }
  });
});

describe('the agent', () => {
  const assignment = (extra: Partial<ImageAssignment>): ImageAssignment => ({
    uuid,
    name: 'img',
    files: [{ role: 'disk', size: 10, sha256: sha, url: 'https://s3.example/x', url_expires_at: now }],
    ...extra,
  });

  it('holds disk files, and refuses assignments that mix them up', () => {
    expect(isRole('disk')).toBe(true);
    expect(checkAssignment(assignment({ disk_format: 'raw' }))).toBeUndefined();
    expect(checkAssignment(assignment({}))).toBe('a disk image without a disk_format');
    const kernel = {
      role: 'kernel' as const,
      size: 1,
      sha256: sha,
      url: 'https://s3.example/k',
      url_expires_at: now,
    };
    expect(
      checkAssignment(assignment({ disk_format: 'raw', files: [assignment({}).files[0]!, kernel] })),
    ).toBe('a disk image has no other files');
    expect(checkAssignment(assignment({ disk_format: 'raw', files: [kernel] }))).toBe(
      'a disk_format without a disk file',
    );
  });

  it('serves raw and raw+gzip as downloaded, prepares qcow2 and raw+zstd into disk.raw.gz', () => {
    expect(DISK_FORMATS.map((f) => [f, needsPreparation(f), servedName(f)])).toStrictEqual([
      ['raw', false, 'disk'],
      ['raw+gzip', false, 'disk'],
      ['raw+zstd', true, 'disk.raw.gz'],
      ['qcow2', true, 'disk.raw.gz'],
    ]);
  });
});
