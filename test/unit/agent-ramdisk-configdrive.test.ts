/**
 * The config drive the agent hands the ramdisk (agent/ramdisk/configdrive.ts): Ironic's
 * JSON form built into an ISO with the real xorriso (read back with xorriso: the files,
 * their content, the volume id config-2, Rock Ridge and Joliet), the image form decoded
 * strictly, bad inputs refused with a clear message that shows nothing of the input, and
 * the private temporary directory (0700, files 0600) gone after `remove()` or a failure.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigdriveError,
  configdriveJsonProblem,
  MAX_CONFIGDRIVE_BYTES,
  type PreparedConfigdrive,
  prepareConfigdrive,
  pythonJson,
} from '../../agent/ramdisk/configdrive.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const SECRET = 'hunter2-user-data-secret';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'configdrive-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function prepare(input: unknown, tmp = workDir()): Promise<PreparedConfigdrive> {
  const drive = await prepareConfigdrive(input, NODE, { tmpDir: tmp });
  cleanups.push(() => drive.remove());
  return drive;
}

/** The ISO's files (path → content), its volume id and its raw bytes, read with xorriso. */
function readIso(gzipped: Buffer) {
  const dir = workDir();
  const iso = join(dir, 'cd.iso');
  const image = gunzipSync(gzipped);
  writeFileSync(iso, image);
  const run = (...args: string[]) =>
    execFileSync('xorriso', ['-indev', iso, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const paths = [...run('-find', '/', '-type', 'f').matchAll(/^'(.*)'$/gm)].map((m) => m[1] as string).sort();
  const out = join(dir, 'out');
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', '/', out], { stdio: 'ignore' });
  const files = new Map(paths.map((p) => [p, readFileSync(join(out, p), 'utf8')]));
  const volumeId = /^Volume Id\s*:\s*(.*)$/m.exec(run('-pvd_info'))?.[1]?.trim();
  return { files, volumeId, image };
}

describe('the JSON form', () => {
  it('is built into an ISO as Ironic builds it: layout, defaults, content, label, Rock Ridge + Joliet', async () => {
    const drive = await prepare({
      meta_data: { hostname: 'web-1', public_keys: { default: 'ssh-ed25519 AAAA' } },
      user_data: { users: [{ name: 'ops', passwd: SECRET }], note: 'é' },
      network_data: { links: [{ id: 'eth0', type: 'phy' }], networks: [], services: [] },
      vendor_data: { vendor: 'x' },
    });
    const served = readFileSync(drive.file);
    expect(drive.size).toBe(served.length);
    expect(drive.sha256).toBe(createHash('sha256').update(served).digest('hex'));
    const { files, volumeId, image } = readIso(served);
    expect(volumeId).toBe('config-2');
    const names = ['meta_data.json', 'network_data.json', 'user_data', 'vendor_data2.json'];
    expect([...files.keys()]).toEqual(
      ['2012-08-10', 'latest'].flatMap((v) => names.map((n) => `/openstack/${v}/${n}`)),
    );
    // Python's json.dumps, as Ironic writes them; meta_data.uuid defaults to the node's.
    expect(files.get('/openstack/latest/meta_data.json')).toBe(
      `{"hostname": "web-1", "public_keys": {"default": "ssh-ed25519 AAAA"}, "uuid": "${NODE}"}`,
    );
    expect(files.get('/openstack/latest/user_data')).toBe(
      `{"users": [{"name": "ops", "passwd": "${SECRET}"}], "note": "\\u00e9"}`,
    );
    expect(JSON.parse(files.get('/openstack/2012-08-10/network_data.json') as string)).toEqual({
      links: [{ id: 'eth0', type: 'phy' }],
      networks: [],
      services: [],
    });
    expect(files.get('/openstack/latest/vendor_data2.json')).toBe('{"vendor": "x"}');
    // Joliet: a supplementary volume descriptor (sector 17) with UCS-2 level 3; Rock Ridge: its ER entry.
    expect(image.subarray(17 * 2048, 17 * 2048 + 6).toString('latin1')).toBe('\x02CD001');
    expect(image.subarray(17 * 2048 + 88, 17 * 2048 + 91).toString('latin1')).toBe('%/E');
    expect(image.includes(Buffer.from('RRIP_1991A'))).toBe(true);
  });

  it('keeps a given uuid, writes a string user_data as it is, and leaves out what is empty', async () => {
    const script = '#!/bin/sh\necho héllo\n';
    const drive = await prepare({ meta_data: { uuid: 'mine' }, user_data: script, network_data: {} });
    const { files } = readIso(readFileSync(drive.file));
    expect([...files.keys()]).toEqual([
      '/openstack/2012-08-10/meta_data.json',
      '/openstack/2012-08-10/user_data',
      '/openstack/latest/meta_data.json',
      '/openstack/latest/user_data',
    ]);
    expect(files.get('/openstack/latest/meta_data.json')).toBe('{"uuid": "mine"}');
    expect(files.get('/openstack/latest/user_data')).toBe(script);
    const bare = readIso(readFileSync((await prepare({ user_data: null })).file));
    expect([...bare.files.keys()]).toEqual([
      '/openstack/2012-08-10/meta_data.json',
      '/openstack/latest/meta_data.json',
    ]);
    expect(bare.files.get('/openstack/latest/meta_data.json')).toBe(`{"uuid": "${NODE}"}`);
  });

  it("writes JSON as Python's json.dumps does", () => {
    expect(pythonJson({ a: [1, 'é\n\u007f😀"\\'], b: null, c: { d: true, e: 1.5 } })).toBe(
      '{"a": [1, "\\u00e9\\n\\u007f\\ud83d\\ude00\\"\\\\"], "b": null, "c": {"d": true, "e": 1.5}}',
    );
  });

  it('refuses unknown keys, wrong types and an oversized form, without echoing values', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ meta_data: {}, userdata: SECRET }, /unknown key "userdata" \(allowed: meta_data/],
      [{ meta_data: [SECRET] }, /meta_data must be an object/],
      [{ network_data: SECRET }, /network_data must be an object/],
      [{ vendor_data: null }, /vendor_data must be an object/],
      [{ user_data: 42 }, /user_data must be a string, an object or an array/],
      [{ user_data: true }, /user_data must be a string/],
      [{ user_data: 'x'.repeat(70_000) }, /the JSON form is \d+ bytes, more than 65536/],
      [[SECRET], /configdrive must be a string or an object/],
    ];
    for (const [input, message] of cases) {
      const problem = configdriveJsonProblem(input);
      expect(problem, JSON.stringify(input).slice(0, 80)).toMatch(message);
      expect(problem).not.toContain(SECRET);
    }
    expect(configdriveJsonProblem({ user_data: [1, 2] })).toBeUndefined();
  });
});

describe('the image form', () => {
  it('takes base64 of a gzipped ISO (line-wrapped too) and serves the same image, gzipped', async () => {
    const built = gunzipSync(readFileSync((await prepare({ user_data: 'hi' })).file));
    const b64 = gzipSync(built).toString('base64');
    for (const text of [b64, b64.replace(/(.{76})/g, '$1\n')]) {
      const drive = await prepare(text);
      expect(gunzipSync(readFileSync(drive.file)).equals(built)).toBe(true);
    }
  });

  it('takes a vfat image', async () => {
    const fat = Buffer.alloc(4096);
    fat.write('FAT16   ', 54, 'latin1');
    fat[510] = 0x55;
    fat[511] = 0xaa;
    const drive = await prepare(gzipSync(fat).toString('base64'));
    expect(gunzipSync(readFileSync(drive.file)).equals(fat)).toBe(true);
  });

  it('refuses bad base64, what is not gzip, a corrupt gzip, a non-image, an oversized image, a URL', async () => {
    const iso = gunzipSync(readFileSync((await prepare({})).file));
    const gz = gzipSync(iso);
    const cases: Array<[string, RegExp]> = [
      ['not base64 at all!', /not valid base64/],
      ['QUJDRA', /not valid base64/], // length not a multiple of 4
      ['QU=JD', /not valid base64/],
      [Buffer.from(`${SECRET} plain text`).toString('base64'), /not gzip data/],
      [gz.subarray(0, gz.length - 100).toString('base64'), /not valid gzip data \(corrupt or truncated\)/],
      [gzipSync(Buffer.from(SECRET.repeat(2000))).toString('base64'), /neither ISO 9660 nor vfat/],
      [
        gzipSync(Buffer.alloc(MAX_CONFIGDRIVE_BYTES + 1)).toString('base64'),
        /image is larger than 67108864 bytes/,
      ],
      ['https://example.com/cd.iso.gz', /a URL is not supported/],
    ];
    const tmp = workDir();
    for (const [text, message] of cases) {
      const refused = await prepareConfigdrive(text, NODE, { tmpDir: tmp }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused, text.slice(0, 40)).toBeInstanceOf(ConfigdriveError);
      expect((refused as Error).message).toMatch(message);
      expect((refused as Error).message).not.toContain(SECRET);
    }
    // Nothing left behind by the refusals.
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe('the private directory', () => {
  it('is 0700 with a 0600 file, and gone after remove()', async () => {
    const tmp = workDir();
    const drive = await prepareConfigdrive({ user_data: SECRET }, NODE, { tmpDir: tmp });
    const dir = join(drive.file, '..');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(drive.file).mode & 0o777).toBe(0o600);
    expect(readdirSync(tmp)).toHaveLength(1);
    await drive.remove();
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('says so when xorriso is missing, and leaves nothing behind', async () => {
    const tmp = workDir();
    const refused = prepareConfigdrive({ user_data: SECRET }, NODE, {
      tmpDir: tmp,
      xorriso: '/nonexistent/xorriso',
    });
    await expect(refused).rejects.toThrow(/xorriso is not installed at this site \(Debian package xorriso\)/);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('stops xorriso at the time bound', async () => {
    const tmp = workDir();
    // A stand-in that never finishes: the bound must kill it and say so.
    const slow = join(workDir(), 'slow-xorriso');
    writeFileSync(slow, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const refused = prepareConfigdrive({}, NODE, { tmpDir: tmp, xorriso: slow, timeoutMs: 200 });
    await expect(refused).rejects.toThrow(/xorriso took longer than 200 ms and was stopped/);
    expect(readdirSync(tmp)).toEqual([]);
  });
});
