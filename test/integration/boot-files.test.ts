/**
 * boot.prepare / boot.clean on real directories: the files land where Ironic's layout
 * puts them, with the rendered content; clean takes exactly them; nothing is ever
 * written or removed outside the roots; no temporary file stays visible.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type BootActionsOptions, bootActions } from '../../agent/boot/actions.ts';
import { BootPathError, BootTree, TEMP_FILE_PATTERN } from '../../agent/boot/files.ts';
import { renderEntryScript } from '../../agent/boot/render.ts';
import { type Action, ActionFailure } from '../../agent/drivers/types.ts';
import { silentLogger } from '../../agent/log.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const NODE_B = '2ce26c0b-03f2-4d2e-ae87-c02d7f33c124';
const KIMG = '0d7c1f3a-2b4e-4f60-8a9b-c1d2e3f40516';
const ISOIMG = '9e8d7c6b-5a49-4838-a727-161514131211';
const MAC1 = '52:54:00:00:00:01';
const MAC2 = '52:54:00:00:00:02';
const BASE = 'http://10.0.0.1:8080';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0).reverse()) f();
});

interface Site {
  dir: string;
  tftp: string;
  http: string;
  hosts: string;
  images: string;
  manifests: string;
  actions: Action[];
  prepare(args: Record<string, unknown>): Promise<Record<string, unknown>>;
  clean(nodeUuid: string): Promise<Record<string, unknown>>;
}

function site(over: Partial<BootActionsOptions> = {}, imagesParent?: string): Site {
  const dir = mkdtempSync(join(tmpdir(), 'boot-files-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const images = imagesParent ?? join(dir, 'images');
  for (const [uuid, role, content] of [
    [KIMG, 'kernel', 'KERNEL'],
    [KIMG, 'ramdisk', 'RAMDISK'],
    [ISOIMG, 'iso', 'ISO9660'],
  ] as const) {
    mkdirSync(join(images, uuid), { recursive: true });
    writeFileSync(join(images, uuid, role), content);
  }
  const s = {
    dir,
    tftp: join(dir, 'tftp'),
    http: join(dir, 'http'),
    hosts: join(dir, 'hosts'),
    images,
    manifests: join(dir, 'state', 'boot-manifests'),
  };
  const actions = bootActions({
    tftpRoot: s.tftp,
    httpRoot: s.http,
    httpBaseUrl: `${BASE}/`,
    tftpBaseUrl: 'tftp://10.0.0.1',
    dhcpHostsDir: s.hosts,
    imagesDir: s.images,
    manifestDir: s.manifests,
    ...over,
  });
  const call = async (name: string, args: Record<string, unknown>) => {
    const action = actions.find((a) => a.name === name)!;
    const problem = action.validate?.(args);
    if (problem) throw new ActionFailure(problem);
    return action.run({
      command: { id: 'c', node: NODE, action: name, args, deadline: '', attempt: 1, receipt: 'r' },
      args,
      signal: new AbortController().signal,
      log: silentLogger,
    });
  };
  return {
    ...s,
    actions,
    prepare: (args) => call('boot.prepare', args),
    clean: (nodeUuid) => call('boot.clean', { node_uuid: nodeUuid }),
  };
}

const kernelArgs = (over: Record<string, unknown> = {}) => ({
  node_uuid: NODE,
  macs: [MAC1, MAC2.toUpperCase()],
  boot_mode: 'bios',
  kernel: KIMG,
  ramdisk: KIMG,
  kernel_append_params: 'console=ttyS0 quiet',
  callback_url: `${BASE}/v1/callback?token=t0k`,
  ...over,
});

/** Every file and symlink under `dir`, relative, sorted. */
function listing(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

function tempFiles(dir: string): string[] {
  return listing(dir).filter((p) => TEMP_FILE_PATTERN.test(p.split('/').at(-1)!));
}

describe('boot.prepare and boot.clean', () => {
  it('writes the BIOS layout with the rendered content, then clean removes exactly those files', async () => {
    const s = site();
    mkdirSync(join(s.tftp, 'pxelinux.cfg'), { recursive: true });
    writeFileSync(join(s.tftp, 'pxelinux.cfg', 'default'), 'site default\n'); // the site's own
    writeFileSync(join(s.tftp, 'pxelinux.0'), 'bootloader');

    const result = await s.prepare(kernelArgs());
    expect(listing(s.tftp)).toEqual([
      `${NODE}/config`,
      `${NODE}/kernel`,
      `${NODE}/ramdisk`,
      'pxelinux.0',
      'pxelinux.cfg/01-52-54-00-00-00-01',
      'pxelinux.cfg/01-52-54-00-00-00-02',
      'pxelinux.cfg/default',
    ]);
    expect(listing(s.http)).toEqual([
      `${NODE}/config`,
      'boot.ipxe',
      'pxelinux.cfg/52-54-00-00-00-01',
      'pxelinux.cfg/52-54-00-00-00-02',
    ]);
    expect(listing(s.hosts)).toEqual(['ironic-52:54:00:00:00:01.conf', 'ironic-52:54:00:00:00:02.conf']);

    const ipxe = readFileSync(join(s.http, 'pxelinux.cfg/52-54-00-00-00-02'), 'utf8');
    expect(ipxe).toContain(
      `kernel ${BASE}/images/${KIMG}/kernel initrd=ramdisk console=ttyS0 quiet callback=${BASE}/v1/callback?token=t0k || goto retry`,
    );
    expect(ipxe).toContain(`initrd --name ramdisk ${BASE}/images/${KIMG}/ramdisk || goto retry`);
    expect(readFileSync(join(s.http, `${NODE}/config`), 'utf8')).toBe(ipxe);
    const pxe = readFileSync(join(s.tftp, 'pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8');
    expect(pxe).toContain(`kernel ${NODE}/kernel\n`);
    expect(pxe).toContain(
      `append initrd=${NODE}/ramdisk console=ttyS0 quiet callback=${BASE}/v1/callback?token=t0k\n`,
    );
    expect(readFileSync(join(s.hosts, 'ironic-52:54:00:00:00:01.conf'), 'utf8')).toBe(
      `52:54:00:00:00:01,set:${NODE},set:ironic\n`,
    );
    expect(readFileSync(join(s.http, 'boot.ipxe'), 'utf8')).toBe(renderEntryScript());
    // Staged images are hard links of the stored image files (same inode, no copy).
    expect(statSync(join(s.tftp, NODE, 'kernel')).ino).toBe(statSync(join(s.images, KIMG, 'kernel')).ino);
    expect(readFileSync(join(s.tftp, NODE, 'ramdisk'), 'utf8')).toBe('RAMDISK');
    expect((statSync(join(s.tftp, 'pxelinux.cfg/01-52-54-00-00-00-01')).mode & 0o777).toString(8)).toBe(
      '644',
    );

    expect(result).toMatchObject({
      node_uuid: NODE,
      boot_mode: 'bios',
      boot: 'kernel',
      macs: [MAC1, MAC2],
      kernel_cmdline: `console=ttyS0 quiet callback=${BASE}/v1/callback?token=t0k`,
      entry_script_url: `${BASE}/boot.ipxe`,
      ipxe_script_urls: [`${BASE}/pxelinux.cfg/52-54-00-00-00-01`, `${BASE}/pxelinux.cfg/52-54-00-00-00-02`],
      removed: [],
      warnings: [],
    });
    expect(result.files).toContainEqual({
      root: 'tftp',
      path: 'pxelinux.cfg/01-52-54-00-00-00-01',
      url: 'tftp://10.0.0.1/pxelinux.cfg/01-52-54-00-00-00-01',
    });
    expect(result.files).toContainEqual({ root: 'dhcp', path: 'ironic-52:54:00:00:00:01.conf' });
    expect(tempFiles(s.dir)).toEqual([]);

    const cleaned = await s.clean(NODE);
    // 5 in the TFTP root (2 configs per MAC, the node's config, kernel, ramdisk), 3 in the HTTP root, 2 DHCP entries.
    expect((cleaned.removed as unknown[]).length).toBe(10);
    expect(cleaned.kept).toEqual([]);
    // The site's own files and the site-wide entry script stay; the node's directories go.
    expect(listing(s.tftp)).toEqual(['pxelinux.0', 'pxelinux.cfg/default']);
    expect(listing(s.http)).toEqual(['boot.ipxe']);
    expect(listing(s.hosts)).toEqual([]);
    expect(existsSync(join(s.tftp, NODE))).toBe(false);
    expect(listing(s.manifests)).toEqual([]);
    // The stored images are untouched.
    expect(readFileSync(join(s.images, KIMG, 'kernel'), 'utf8')).toBe('KERNEL');
    // Cleaning again, or a node that never had anything, is fine.
    expect(await s.clean(NODE)).toEqual({ node_uuid: NODE, removed: [], kept: [] });
    expect(await s.clean(NODE_B)).toEqual({ node_uuid: NODE_B, removed: [], kept: [] });
  });

  it('is idempotent: preparing twice leaves the same files, not even rewritten', async () => {
    const s = site();
    await s.prepare(kernelArgs());
    const before = [...listing(s.tftp), ...listing(s.http), ...listing(s.hosts)];
    const mtime = statSync(join(s.http, 'pxelinux.cfg/52-54-00-00-00-01')).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = await s.prepare(kernelArgs());
    expect([...listing(s.tftp), ...listing(s.http), ...listing(s.hosts)]).toEqual(before);
    expect(statSync(join(s.http, 'pxelinux.cfg/52-54-00-00-00-01')).mtimeMs).toBe(mtime);
    expect(again.removed).toEqual([]);
  });

  it('a new prepare replaces the previous one: UEFI GRUB files instead of PXELINUX, a dropped MAC removed', async () => {
    const s = site();
    await s.prepare(kernelArgs());
    const result = await s.prepare(kernelArgs({ boot_mode: 'uefi', macs: [MAC1] }));
    expect(listing(s.tftp)).toEqual([
      `${NODE}/config`,
      `${NODE}/kernel`,
      `${NODE}/ramdisk`,
      '52:54:00:00:00:01.conf',
      'grub.cfg-01-52-54-00-00-00-01',
    ]);
    expect(listing(s.http)).toEqual([`${NODE}/config`, 'boot.ipxe', 'pxelinux.cfg/52-54-00-00-00-01']);
    expect(listing(s.hosts)).toEqual(['ironic-52:54:00:00:00:01.conf']);
    expect(readFileSync(join(s.tftp, 'grub.cfg-01-52-54-00-00-00-01'), 'utf8')).toContain(
      `    linux /${NODE}/kernel console=ttyS0 quiet 'callback=${BASE}/v1/callback?token=t0k'`,
    );
    expect(result.removed).toEqual(
      expect.arrayContaining([
        { root: 'tftp', path: 'pxelinux.cfg/01-52-54-00-00-00-01' },
        { root: 'http', path: 'pxelinux.cfg/52-54-00-00-00-02' },
        { root: 'dhcp', path: 'ironic-52:54:00:00:00:02.conf' },
      ]),
    );
    await s.clean(NODE);
    expect(listing(s.tftp)).toEqual([]);
  });

  it('an ISO: sanboot for iPXE, memdisk for PXELINUX, the ISO staged into the TFTP root', async () => {
    const s = site();
    const result = await s.prepare({
      node_uuid: NODE,
      macs: [MAC1],
      boot_mode: 'bios',
      iso: ISOIMG,
      callback_url: `${BASE}/cb`,
    });
    expect(readFileSync(join(s.http, 'pxelinux.cfg/52-54-00-00-00-01'), 'utf8')).toContain(
      `sanboot --no-describe ${BASE}/images/${ISOIMG}/iso || goto retry`,
    );
    expect(readFileSync(join(s.tftp, 'pxelinux.cfg/01-52-54-00-00-00-01'), 'utf8')).toContain(
      `kernel memdisk\ninitrd ${NODE}/boot.iso\nappend iso raw\n`,
    );
    expect(readFileSync(join(s.tftp, NODE, 'boot.iso'), 'utf8')).toBe('ISO9660');
    expect(result.kernel_cmdline).toBeNull();
    expect(result.warnings).toEqual([expect.stringContaining('callback_url not passed')]);
  });

  it('copies an image that lives on another filesystem (no hard link possible)', async () => {
    if (statSync('/dev/shm', { throwIfNoEntry: false }) === undefined) return;
    const shm = mkdtempSync('/dev/shm/boot-images-');
    cleanups.push(() => rmSync(shm, { recursive: true, force: true }));
    const s = site({}, shm);
    if (statSync(shm).dev === statSync(s.dir).dev) return; // same filesystem here: nothing to check
    await s.prepare(kernelArgs());
    const staged = statSync(join(s.tftp, NODE, 'kernel'));
    expect(staged.ino).not.toBe(statSync(join(shm, KIMG, 'kernel')).ino);
    expect(readFileSync(join(s.tftp, NODE, 'kernel'), 'utf8')).toBe('KERNEL');
    // In place now: a second prepare does not copy again.
    await s.prepare(kernelArgs());
    expect(statSync(join(s.tftp, NODE, 'kernel')).ino).toBe(staged.ino);
    expect(tempFiles(s.dir)).toEqual([]);
  });

  it('fails clearly when an image file is not at this site, writing nothing', async () => {
    const s = site();
    rmSync(join(s.images, KIMG, 'ramdisk'));
    await expect(s.prepare(kernelArgs())).rejects.toThrow(
      new RegExp(`image ${KIMG}: its ramdisk file is not present at this site`),
    );
    await expect(s.prepare(kernelArgs({ kernel: NODE_B, ramdisk: NODE_B }))).rejects.toThrow(/not present/);
    expect(listing(s.tftp)).toEqual([]);
    expect(listing(s.http)).toEqual([]);
  });

  it('validates args with clear messages', () => {
    const s = site();
    const prepare = s.actions.find((a) => a.name === 'boot.prepare')!;
    const clean = s.actions.find((a) => a.name === 'boot.clean')!;
    expect(prepare.validate!(kernelArgs())).toBeUndefined();
    expect(prepare.validate!(kernelArgs({ driver: 'fake-hardware' }))).toBeUndefined();
    expect(prepare.validate!(kernelArgs({ kernel_params: 'x' }))).toBe(
      'boot.prepare: unknown argument "kernel_params"',
    );
    expect(prepare.validate!(kernelArgs({ boot_mode: 'legacy' }))).toMatch(
      /boot_mode must be equal to one of/,
    );
    expect(prepare.validate!(kernelArgs({ iso: ISOIMG }))).toBe(
      'boot.prepare: give either iso or kernel + ramdisk, not both',
    );
    expect(prepare.validate!(kernelArgs({ ramdisk: undefined }))).toMatch(/give iso, or kernel and ramdisk/);
    expect(prepare.validate!(kernelArgs({ macs: [] }))).toMatch(/macs must NOT have fewer than 1 items/);
    expect(prepare.validate!(kernelArgs({ macs: ['nope'] }))).toMatch(/MAC address "nope" is not a MAC/);
    expect(prepare.validate!(kernelArgs({ kernel_append_params: 'quiet\nshell' }))).toMatch(
      /control or non-ASCII/,
    );
    expect(prepare.validate!(kernelArgs({ callback_url: 'http://h/$x?a=$y' }))).toMatch(
      /callback URL contains "\$"/,
    );
    expect(clean.validate!({ node_uuid: NODE })).toBeUndefined();
    expect(clean.validate!({})).toMatch(/must have required property 'node_uuid'/);
  });

  it('refuses traversal through the node uuid, a MAC or an image reference', async () => {
    const s = site();
    writeFileSync(join(s.dir, 'secret'), 'x');
    for (const bad of [
      kernelArgs({ node_uuid: '../../secret' }),
      kernelArgs({ node_uuid: `${NODE}/../../x` }),
      kernelArgs({ macs: ['../../../secret'] }),
      kernelArgs({ macs: ['52:54:00:00:00:01/../../x'] }),
      kernelArgs({ kernel: '../secret', ramdisk: KIMG }),
      kernelArgs({ kernel: `${KIMG}/../../secret`, ramdisk: KIMG }),
    ]) {
      await expect(s.prepare(bad)).rejects.toThrow(ActionFailure);
    }
    await expect(s.clean('../../secret')).rejects.toThrow(/node_uuid must be a UUID/);
    expect(listing(s.tftp)).toEqual([]);
    expect(readFileSync(join(s.dir, 'secret'), 'utf8')).toBe('x');
  });

  it('refuses a symlinked directory that leads out of a root, and a symlinked image leading out', async () => {
    const s = site();
    const outside = join(s.dir, 'outside');
    mkdirSync(outside);
    mkdirSync(s.tftp, { recursive: true });
    symlinkSync(outside, join(s.tftp, 'pxelinux.cfg'));
    await expect(s.prepare(kernelArgs())).rejects.toThrow(
      /pxelinux.cfg is a symlink leading outside the tftp root/,
    );
    expect(listing(outside)).toEqual([]);
    rmSync(join(s.tftp, 'pxelinux.cfg'));
    // A symlink that stays inside the root is fine.
    mkdirSync(join(s.tftp, 'configs'));
    symlinkSync('configs', join(s.tftp, 'pxelinux.cfg'));
    await s.prepare(kernelArgs());
    expect(listing(join(s.tftp, 'configs'))).toEqual(['01-52-54-00-00-00-01', '01-52-54-00-00-00-02']);
    await s.clean(NODE);
    expect(listing(join(s.tftp, 'configs'))).toEqual([]);

    writeFileSync(join(s.dir, 'secret'), 'secret');
    rmSync(join(s.images, KIMG, 'kernel'));
    symlinkSync(join(s.dir, 'secret'), join(s.images, KIMG, 'kernel'));
    await expect(s.prepare(kernelArgs())).rejects.toThrow(/leads outside the images directory/);
    expect(existsSync(join(s.tftp, NODE, 'kernel'))).toBe(false);
  });

  it('never removes a file outside the roots, even when the manifest was tampered with', async () => {
    const s = site();
    await s.prepare(kernelArgs());
    const victim = join(s.dir, 'victim');
    writeFileSync(victim, 'keep me');
    const manifestPath = join(s.manifests, `${NODE}.json`);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    manifest.files.push(
      { root: 'tftp', path: '../victim', sha256: null },
      { root: 'http', path: '/etc/passwd', sha256: null },
    );
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const cleaned = await s.clean(NODE);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
    expect(cleaned.kept).toEqual(
      expect.arrayContaining([expect.objectContaining({ root: 'tftp', path: '../victim' })]),
    );
    expect(listing(s.tftp)).toEqual([]);
  });

  it('a MAC that moved to another node keeps that node’s files when the first node is cleaned', async () => {
    const s = site();
    await s.prepare(kernelArgs());
    await s.prepare(kernelArgs({ node_uuid: NODE_B, macs: [MAC2] }));
    const cleaned = await s.clean(NODE);
    expect(cleaned.kept).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ root: 'tftp', path: 'pxelinux.cfg/01-52-54-00-00-00-02' }),
        expect.objectContaining({ root: 'dhcp', path: 'ironic-52:54:00:00:00:02.conf' }),
      ]),
    );
    expect(readFileSync(join(s.tftp, 'pxelinux.cfg/01-52-54-00-00-00-02'), 'utf8')).toContain(NODE_B);
    expect(readFileSync(join(s.hosts, 'ironic-52:54:00:00:00:02.conf'), 'utf8')).toContain(NODE_B);
    expect(existsSync(join(s.tftp, 'pxelinux.cfg/01-52-54-00-00-00-01'))).toBe(false);
    await s.clean(NODE_B);
    expect(listing(s.tftp)).toEqual([]);
    expect(listing(s.hosts)).toEqual([]);
  });
});

describe('crash safety', () => {
  it('sweeps temporary files a crashed process left, and leaves none of its own on failure', async () => {
    const s = site();
    mkdirSync(join(s.tftp, 'pxelinux.cfg'), { recursive: true });
    // A dead process's temporary file (pid beyond Linux's pid_max) and a live process's (pid 1).
    const dead = '.01-52-54-00-00-00-01.99999999.0a1b2c3d.mp-tmp';
    const live = '.01-52-54-00-00-00-09.1.0a1b2c3d.mp-tmp';
    writeFileSync(join(s.tftp, 'pxelinux.cfg', dead), 'half');
    writeFileSync(join(s.tftp, 'pxelinux.cfg', live), 'in progress');
    // A directory where the last file goes makes its rename fail, after the others were written.
    mkdirSync(join(s.hosts, 'ironic-52:54:00:00:00:02.conf'), { recursive: true });
    await expect(s.prepare(kernelArgs())).rejects.toThrow();
    expect(tempFiles(s.hosts)).toEqual([]);
    expect(tempFiles(s.http)).toEqual([]);
    expect(existsSync(join(s.tftp, 'pxelinux.cfg', dead))).toBe(false);
    expect(existsSync(join(s.tftp, 'pxelinux.cfg', live))).toBe(true);
    // The intent manifest covers what the cut-short prepare may have written: clean takes it.
    const manifest = JSON.parse(readFileSync(join(s.manifests, `${NODE}.json`), 'utf8'));
    expect(manifest.state).toBe('preparing');
    const cleaned = await s.clean(NODE);
    expect(cleaned.kept).toEqual([
      { root: 'dhcp', path: 'ironic-52:54:00:00:00:02.conf', reason: 'is not a regular file' },
    ]);
    expect(listing(s.tftp)).toEqual([`pxelinux.cfg/${live}`]);
    expect(listing(s.http)).toEqual(['boot.ipxe']);
    expect(listing(s.hosts)).toEqual([]);
  });

  it('a prepare cut short after a previous one still lets clean remove the files of both', async () => {
    const s = site();
    await s.prepare(kernelArgs());
    const tree = new BootTree({
      tftpRoot: s.tftp,
      httpRoot: s.http,
      dhcpHostsDir: s.hosts,
      manifestDir: s.manifests,
    });
    const aborted = new AbortController();
    aborted.abort();
    await expect(
      tree.prepareNode(NODE, [{ root: 'http', path: 'other/file', content: 'x' }], [], aborted.signal),
    ).rejects.toThrow();
    const manifest = JSON.parse(readFileSync(join(s.manifests, `${NODE}.json`), 'utf8'));
    expect(manifest.files.map((f: { path: string }) => f.path)).toContain('other/file');
    expect(manifest.files.map((f: { path: string }) => f.path)).toContain(
      'pxelinux.cfg/01-52-54-00-00-00-01',
    );
    await s.clean(NODE);
    expect(listing(s.tftp)).toEqual([]);
    expect(listing(s.http)).toEqual(['boot.ipxe']);
  });

  it('BootTree refuses paths that are not plain relative paths inside the root', async () => {
    const s = site();
    const tree = new BootTree({ tftpRoot: s.tftp, httpRoot: s.http, manifestDir: s.manifests });
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', '.hidden', 'a/.b', 'a\nb', '']) {
      await expect(tree.writeFile('tftp', bad, 'x'), JSON.stringify(bad)).rejects.toThrow(BootPathError);
    }
    expect(existsSync(join(s.dir, 'x'))).toBe(false);
  });
});
