/**
 * The agent's virtual media source (`agent/boot/virtual-media.ts`): catalog ISOs served
 * from the images tree and pinned while inserted, ISOs built from a kernel and a ramdisk
 * (real xorriso/ISOLINUX/systemd-boot) under `<http root>/vmedia/` with the kernel command
 * line `boot.prepare` would write, and what an eject releases. Temporary images and HTTP
 * trees; fake pins, ramdisk tokens and callback tokens record what they are asked.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ImagePins } from '../../agent/boot/pins.ts';
import {
  type DeployCallbacks,
  type RamdiskTokens,
  type VirtualMediaOptions,
  virtualMediaSource,
} from '../../agent/boot/virtual-media.ts';
import { ActionFailure, type VirtualMediaSource } from '../../agent/drivers/types.ts';
import type { InsertVmediaArgs } from '../../protocol/actions.ts';

const NODE = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';
const OTHER_NODE = '0b7e3c1a-5d2f-4e6a-9c8b-1f2e3d4c5b6a';
const KERNEL = '5b0c8a3e-8f0e-4c52-9d0a-6a1f1d2a3b4c';
const RAMDISK = '6c1d9b4f-9a1f-4d63-8e1b-7b2a2e3b4c5d';
const ISO = '7d2eac50-ab20-4e74-9f2c-8c3b3f4c5d6e';
const OTHER_ISO = '8e3fbd61-bc31-4f85-a03d-9d4c405d6e7f';
const MISSING = '9f40ce72-cd42-4096-b14e-ae5d516e7f80';
const BASE = 'http://10.0.0.1:8080';
const RAMDISK_URL = 'http://10.0.0.1:8080/ramdisk/v1';
const CALLBACK_BASE = 'http://10.0.0.1:8080';
const CALLBACK_TOKEN = 'cb_token-0123456789abcdef';

const root = mkdtempSync(join(tmpdir(), 'virtual-media-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KERNEL_BYTES = randomBytes(2000);
const RAMDISK_BYTES = randomBytes(4000);

let n = 0;
let imagesDir: string;
let httpRoot: string;
let scratch: string;
let vmediaDir: string;

/** Pins as the image manager keeps them: holders by image; every call recorded. */
class FakePins implements ImagePins {
  readonly calls: string[] = [];
  readonly held = new Map<string, Set<string>>();
  pin(uuid: string, holder: string): void {
    this.calls.push(`pin ${uuid} ${holder}`);
    const holders = this.held.get(uuid) ?? new Set<string>();
    holders.add(holder);
    this.held.set(uuid, holders);
  }
  unpin(uuid: string, holder: string): void {
    this.calls.push(`unpin ${uuid} ${holder}`);
    const holders = this.held.get(uuid);
    holders?.delete(holder);
    if (holders?.size === 0) this.held.delete(uuid);
  }
  /** What is pinned now, as `uuid holder` lines. */
  live(): string[] {
    return [...this.held].flatMap(([uuid, holders]) => [...holders].map((h) => `${uuid} ${h}`)).sort();
  }
}

class FakeRamdisk implements RamdiskTokens {
  readonly url = RAMDISK_URL;
  readonly minted: Array<[string, string]> = [];
  readonly revoked: Array<[string, string]> = [];
  readonly forgotten: string[] = [];
  mint(node: string): string {
    const token = randomBytes(32).toString('base64url');
    this.minted.push([node, token]);
    return token;
  }
  revoke(node: string, token: string): void {
    this.revoked.push([node, token]);
  }
  forget(node: string): void {
    this.forgotten.push(node);
  }
}

class FakeCallbacks implements DeployCallbacks {
  readonly httpBaseUrl = CALLBACK_BASE;
  readonly set_: Array<[string, string]> = [];
  readonly forgotten: string[] = [];
  async set(node: string, token: string): Promise<void> {
    this.set_.push([node, token]);
  }
  async forget(node: string): Promise<void> {
    this.forgotten.push(node);
  }
}

let pins: FakePins;
let ramdiskTokens: FakeRamdisk;
let callbacks: FakeCallbacks;

function source(over: Partial<VirtualMediaOptions> = {}): VirtualMediaSource {
  return virtualMediaSource({
    imagesDir,
    baseUrl: `${BASE}/`,
    pins: () => pins,
    httpRoot,
    ramdisk: ramdiskTokens,
    callbacks,
    ...over,
  });
}

function image(uuid: string, role: 'kernel' | 'ramdisk' | 'iso', bytes: Buffer): void {
  mkdirSync(join(imagesDir, uuid), { recursive: true });
  writeFileSync(join(imagesDir, uuid, role), bytes);
}

beforeEach(() => {
  const dir = join(root, `case-${n++}`);
  imagesDir = join(dir, 'images');
  httpRoot = join(dir, 'http');
  scratch = join(dir, 'scratch');
  vmediaDir = join(httpRoot, 'vmedia');
  for (const d of [imagesDir, httpRoot, scratch]) mkdirSync(d, { recursive: true });
  image(KERNEL, 'kernel', KERNEL_BYTES);
  image(RAMDISK, 'ramdisk', RAMDISK_BYTES);
  image(ISO, 'iso', randomBytes(1000));
  image(OTHER_ISO, 'iso', randomBytes(1000));
  pins = new FakePins();
  ramdiskTokens = new FakeRamdisk();
  callbacks = new FakeCallbacks();
});
afterEach(() => rmSync(join(imagesDir, '..'), { recursive: true, force: true }));

const kernelArgs = (over: Partial<InsertVmediaArgs> = {}): InsertVmediaArgs => ({
  node_uuid: NODE,
  kernel: KERNEL,
  ramdisk: RAMDISK,
  ...over,
});

/** The files under `<http root>/vmedia/` (none when it does not exist). */
function vmediaFiles(): string[] {
  return existsSync(vmediaDir) ? readdirSync(vmediaDir).sort() : [];
}

/** The built ISO's file name from its URL (checked to be under `<base>/vmedia/`). */
function builtName(url: string, node = NODE): string {
  const match = new RegExp(`^${BASE}/vmedia/(${node}-[0-9a-f]{32}\\.iso)$`).exec(url);
  expect(match, url).not.toBeNull();
  return match![1]!;
}

function extract(iso: string, path: string): string {
  const to = join(scratch, `extracted-${randomBytes(4).toString('hex')}`);
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', path, to], { stdio: 'pipe' });
  return to;
}

/** The kernel command line of a built BIOS ISO (its ISOLINUX append line, without initrd=). */
function biosCmdline(iso: string): string[] {
  const config = readFileSync(extract(iso, '/isolinux/isolinux.cfg'), 'utf8');
  const append = config
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line.startsWith('append '));
  expect(append).toBeDefined();
  const tokens = append!.split(' ').slice(1);
  expect(tokens[0]).toBe('initrd=/boot/initrd');
  return tokens.slice(1);
}

/** The kernel command line of a built UEFI ISO (its systemd-boot entry's options). */
function uefiCmdline(iso: string): string[] {
  const entry = execFileSync(
    'mtype',
    ['-i', extract(iso, '/efiboot.img'), '::/loader/entries/metalplane.conf'],
    {
      env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
      encoding: 'utf8',
    },
  );
  const options = entry.split('\n').find((line) => line.startsWith('options '));
  return options ? options.split(' ').slice(1) : [];
}

/** A rejection's error (the test fails if the promise resolves). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

describe('virtualMediaSource: validate', () => {
  const media = () => source();

  it('accepts a catalog ISO and a kernel + ramdisk with good parameters', () => {
    expect(media().validate({ node_uuid: NODE, iso: ISO })).toBeUndefined();
    expect(
      media().validate({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        boot_mode: 'uefi',
        kernel_append_params: 'console=ttyS0,115200 ip=dhcp nofb',
        callback_token: CALLBACK_TOKEN,
      }),
    ).toBeUndefined();
    expect(media().validate({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK })).toBeUndefined();
  });

  it('refuses kernel parameters with a newline, a quote, or that set the ramdisk or callback parameters', () => {
    const check = (params: string) =>
      media().validate({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, kernel_append_params: params });
    expect(check('console=ttyS0\nmp.url=http://evil')).toMatch(
      /^management\.insert_vmedia: kernel_append_params contains a control or non-ASCII character/,
    );
    expect(check('quiet mp.token=abc')).toBe(
      'management.insert_vmedia: kernel_append_params must not set mp.url= or mp.token= (metalplane_ramdisk sets them)',
    );
    expect(check('mp.url=http://evil/ramdisk/v1')).toMatch(/must not set mp\.url= or mp\.token=/);
    expect(check('callback=http://evil')).toMatch(
      /^management\.insert_vmedia: kernel_append_params must not set callback=/,
    );
    expect(check('initrd=/evil')).toMatch(/must not set initrd=/);
    expect(check('a="b c"')).toMatch(/kernel_append_params contains/);
  });

  it('refuses a bad boot_mode and a malformed callback_token', () => {
    expect(media().validate({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, boot_mode: 'legacy' })).toBe(
      'management.insert_vmedia: boot_mode must be one of bios, uefi',
    );
    expect(
      media().validate({ node_uuid: NODE, kernel: KERNEL, ramdisk: RAMDISK, callback_token: 'short' }),
    ).toBe('management.insert_vmedia: callback_token is not a valid token');
    expect(
      media().validate({
        node_uuid: NODE,
        kernel: KERNEL,
        ramdisk: RAMDISK,
        callback_token: `${'x'.repeat(20)}&a=b`,
      }),
    ).toBe('management.insert_vmedia: callback_token is not a valid token');
  });
});

describe('virtualMediaSource: catalog ISOs', () => {
  it('serves the ISO from the images tree and pins it for the node until release', async () => {
    const media = source();
    const url = await media.url({ node_uuid: NODE, iso: ISO.toUpperCase() });
    expect(url).toBe(`${BASE}/images/${ISO}/iso`);
    expect(pins.live()).toEqual([`${ISO} vmedia:${NODE}`]);
    // A catalog ISO carries no token: an earlier built ISO's are forgotten at the insert.
    expect(ramdiskTokens.forgotten).toEqual([NODE]);
    expect(callbacks.forgotten).toEqual([NODE]);
    await media.release(NODE);
    expect(pins.live()).toEqual([]);
    expect(ramdiskTokens.forgotten).toEqual([NODE, NODE]);
    expect(callbacks.forgotten).toEqual([NODE, NODE]);
  });

  it('moves the pin to the next ISO inserted for the node', async () => {
    const media = source();
    await media.url({ node_uuid: NODE, iso: ISO });
    await media.url({ node_uuid: NODE, iso: OTHER_ISO });
    expect(pins.live()).toEqual([`${OTHER_ISO} vmedia:${NODE}`]);
    await media.url({ node_uuid: OTHER_NODE, iso: OTHER_ISO });
    await media.release(NODE);
    expect(pins.live()).toEqual([`${OTHER_ISO} vmedia:${OTHER_NODE}`]);
  });

  it('refuses an ISO that is not at this site, pinning nothing', async () => {
    const error = await failure(source().url({ node_uuid: NODE, iso: MISSING }));
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toMatch(new RegExp(`^image ${MISSING}: its iso file is not present at this site`));
    expect(pins.calls).toEqual([]);
  });

  it('works without an image manager (pins answer undefined)', async () => {
    const media = source({ pins: () => undefined });
    expect(await media.url({ node_uuid: NODE, iso: ISO })).toBe(`${BASE}/images/${ISO}/iso`);
    await media.release(NODE);
  });
});

describe('virtualMediaSource: ISOs built from a kernel and a ramdisk', () => {
  it('boots the Metalplane ramdisk: mp.url and a freshly minted token on the kernel command line', async () => {
    const media = source();
    const url = await media.url(
      kernelArgs({ kernel_append_params: 'console=ttyS0  ip=dhcp', metalplane_ramdisk: true }),
    );
    const name = builtName(url);
    expect(vmediaFiles()).toEqual([name]);
    expect(ramdiskTokens.minted).toHaveLength(1);
    const [mintedFor, token] = ramdiskTokens.minted[0]!;
    expect(mintedFor).toBe(NODE);
    const iso = join(vmediaDir, name);
    expect(biosCmdline(iso)).toEqual([
      'console=ttyS0',
      'ip=dhcp',
      `mp.url=${RAMDISK_URL}`,
      `mp.token=${token}`,
    ]);
    expect(readFileSync(extract(iso, '/boot/vmlinuz'))).toEqual(KERNEL_BYTES);
    expect(readFileSync(extract(iso, '/boot/initrd'))).toEqual(RAMDISK_BYTES);
    expect(ramdiskTokens.revoked).toEqual([]);
    expect(callbacks.set_).toEqual([]);
    // The images were held while read, and only then.
    expect(pins.calls).toEqual(
      expect.arrayContaining([
        `pin ${KERNEL} vmedia:${NODE}:building`,
        `pin ${RAMDISK} vmedia:${NODE}:building`,
        `unpin ${KERNEL} vmedia:${NODE}:building`,
        `unpin ${RAMDISK} vmedia:${NODE}:building`,
      ]),
    );
    expect(pins.live()).toEqual([]);
  });

  it('builds a UEFI ISO with the deploy callback and records its token', async () => {
    const media = source();
    const url = await media.url(kernelArgs({ boot_mode: 'uefi', callback_token: CALLBACK_TOKEN }));
    const iso = join(vmediaDir, builtName(url));
    expect(uefiCmdline(iso)).toEqual([
      `callback=${CALLBACK_BASE}/v1/callback/${NODE}?token=${CALLBACK_TOKEN}`,
    ]);
    expect(callbacks.set_).toEqual([[NODE, CALLBACK_TOKEN]]);
    expect(ramdiskTokens.minted).toEqual([]);
  });

  it('builds a BIOS ISO with no parameters at all', async () => {
    const url = await source().url(kernelArgs({ kernel: KERNEL.toUpperCase() }));
    expect(biosCmdline(join(vmediaDir, builtName(url)))).toEqual([]);
  });

  it("gives each build a new unguessable name and removes the node's previous ISO", async () => {
    const media = source();
    const first = builtName(await media.url(kernelArgs({ metalplane_ramdisk: true })));
    const other = builtName(await media.url(kernelArgs({ node_uuid: OTHER_NODE })), OTHER_NODE);
    const second = builtName(await media.url(kernelArgs({ metalplane_ramdisk: true })));
    expect(second).not.toBe(first);
    expect(vmediaFiles()).toEqual([second, other].sort());
    // Each build minted its own token.
    expect(ramdiskTokens.minted.map(([, token]) => token)).toHaveLength(2);
    expect(new Set(ramdiskTokens.minted.map(([, token]) => token)).size).toBe(2);
  });

  it('release removes the built ISO, forgets the tokens and leaves other nodes alone', async () => {
    const media = source();
    const mine = builtName(await media.url(kernelArgs({ callback_token: CALLBACK_TOKEN })));
    const other = builtName(await media.url(kernelArgs({ node_uuid: OTHER_NODE })), OTHER_NODE);
    expect(vmediaFiles()).toEqual([mine, other].sort());
    await media.release(NODE.toUpperCase());
    expect(vmediaFiles()).toEqual([other]);
    expect(ramdiskTokens.forgotten).toEqual([NODE]);
    expect(callbacks.forgotten).toEqual([NODE]);
    expect(pins.live()).toEqual([]);
  });

  it("release removes a node's ISO left by an earlier agent run, and only that node's", async () => {
    mkdirSync(vmediaDir, { recursive: true });
    const leftover = `${NODE}-${randomBytes(16).toString('hex')}.iso`;
    const othersLeftover = `${OTHER_NODE}-${randomBytes(16).toString('hex')}.iso`;
    for (const name of [leftover, othersLeftover, 'unrelated.txt'])
      writeFileSync(join(vmediaDir, name), 'iso');
    // A new source: what the agent has after a restart (it remembers nothing).
    await source().release(NODE);
    expect(vmediaFiles()).toEqual([othersLeftover, 'unrelated.txt'].sort());
  });

  it("a new build also removes the node's ISO left by an earlier run", async () => {
    mkdirSync(vmediaDir, { recursive: true });
    const leftover = `${NODE}-${randomBytes(16).toString('hex')}.iso`;
    writeFileSync(join(vmediaDir, leftover), 'iso');
    const name = builtName(await source().url(kernelArgs()));
    expect(vmediaFiles()).toEqual([name]);
  });

  it('switching between a catalog ISO and a built one releases the other kind', async () => {
    const media = source();
    await media.url({ node_uuid: NODE, iso: ISO });
    const built = builtName(await media.url(kernelArgs()));
    // The catalog ISO's pin went with the built ISO's insert.
    expect(pins.live()).toEqual([]);
    expect(vmediaFiles()).toEqual([built]);
    await media.url({ node_uuid: NODE, iso: ISO });
    // The built ISO went with the catalog ISO's insert.
    expect(vmediaFiles()).toEqual([]);
    expect(pins.live()).toEqual([`${ISO} vmedia:${NODE}`]);
  });

  it('refuses a kernel that is not at this site: no token, no file, no pin left', async () => {
    const media = source();
    const error = await failure(media.url(kernelArgs({ kernel: MISSING, metalplane_ramdisk: true })));
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toMatch(
      new RegExp(`^image ${MISSING}: its kernel file is not present at this site`),
    );
    // Every token minted (none: the images are checked first) was revoked.
    expect(ramdiskTokens.revoked).toEqual(ramdiskTokens.minted);
    expect(vmediaFiles()).toEqual([]);
    expect(pins.live()).toEqual([]);
  });

  it('refuses a ramdisk that is not at this site', async () => {
    const error = await failure(source().url(kernelArgs({ ramdisk: MISSING })));
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toMatch(/its ramdisk file is not present at this site/);
    expect(vmediaFiles()).toEqual([]);
  });

  it('revokes the minted token when the build fails, leaving nothing in vmedia/', async () => {
    const media = source({ iso: { isolinuxBin: join(scratch, 'no-isolinux.bin') } });
    const error = await failure(media.url(kernelArgs({ metalplane_ramdisk: true })));
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toMatch(
      /^management\.insert_vmedia: building the boot ISO: ISOLINUX .* \(Debian package isolinux\)$/,
    );
    expect(ramdiskTokens.minted).toHaveLength(1);
    expect(ramdiskTokens.revoked).toEqual(ramdiskTokens.minted);
    expect(vmediaFiles()).toEqual([]);
    expect(pins.live()).toEqual([]);
    expect(callbacks.set_).toEqual([]);
  });

  it('revokes the minted token when the command line gets too long', async () => {
    // Within the limit alone; over it once mp.url and the token are added.
    const params = `quiet console=${'a'.repeat(1990)}`;
    expect(params.length).toBeLessThan(2047);
    const error = await failure(
      source().url(kernelArgs({ kernel_append_params: params, metalplane_ramdisk: true })),
    );
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toBe('management.insert_vmedia: kernel command line longer than 2047 characters');
    expect(ramdiskTokens.minted).toHaveLength(1);
    expect(ramdiskTokens.revoked).toEqual(ramdiskTokens.minted);
    expect(vmediaFiles()).toEqual([]);
  });

  it('refuses to build without an HTTP boot tree, and a ramdisk boot without ramdisk tokens', async () => {
    const noTree = source({ httpRoot: undefined });
    await expect(noTree.url(kernelArgs())).rejects.toThrow(
      'management.insert_vmedia: this agent has no HTTP boot tree to serve a built ISO from',
    );
    // A catalog ISO needs no tree of its own.
    expect(await noTree.url({ node_uuid: NODE, iso: ISO })).toBe(`${BASE}/images/${ISO}/iso`);
    await noTree.release(NODE);

    const noRamdisk = source({ ramdisk: undefined });
    const error = await failure(noRamdisk.url(kernelArgs({ metalplane_ramdisk: true })));
    expect(error).toBeInstanceOf(ActionFailure);
    expect(error.message).toMatch(/metalplane_ramdisk needs the agent’s HTTP boot server/);
    expect(vmediaFiles()).toEqual([]);
    expect(pins.calls).toEqual([`pin ${ISO} vmedia:${NODE}`, `unpin ${ISO} vmedia:${NODE}`]);
  });
});
