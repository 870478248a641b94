/**
 * Virtual media from this agent's HTTP tree (`redfish-virtual-media` boot). The base is
 * the agent's HTTP server as the management network reaches it (`boot.virtual_media_url`,
 * else the nodes' `http_url`). Two kinds of ISO:
 *
 * - a catalog ISO synced to the site, already served at `<base>/images/<uuid>/iso`; while
 *   inserted it is pinned for the node (as `boot.prepare` pins its images), so the image
 *   sync's garbage collection never removes an ISO a BMC still reads;
 * - an ISO the agent builds from a kernel and a ramdisk (`boot-iso.ts`), with the kernel
 *   command line `boot.prepare` would have written: `kernel_append_params`, the deploy's
 *   callback URL (`callback_token`) or the Metalplane ramdisk's `mp.url`/`mp.token`
 *   (`metalplane_ramdisk`, a token minted for this boot). It is written to
 *   `<http root>/vmedia/<node>-<random>.iso`: the random part keeps the URL (and the token
 *   inside the ISO) unguessable, as the token in an iPXE script is behind its MAC. It
 *   stays until the node's next insert or its eject — across agent restarts too, since an
 *   instance booted from it (ramdisk deploy) reads it again at each reboot.
 *
 * Eject (or a failed insert) releases what the node held: the pin, the built ISO, an
 * unused ramdisk token, the callback token.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BOOT_MODES, type BootMode, type InsertVmediaArgs } from '../../protocol/actions.ts';
import { RAMDISK_KERNEL_PARAMS } from '../../protocol/ramdisk.ts';
import { ActionFailure, type VirtualMediaSource } from '../drivers/types.ts';
import { imageFile } from './actions.ts';
import { BootIsoError, type BootIsoOptions, buildBootIso } from './boot-iso.ts';
import { callbackUrl } from './callback.ts';
import type { ImagePins } from './pins.ts';
import {
  BootRenderError,
  CALLBACK_PARAM,
  kernelParamTokens,
  MAX_KERNEL_CMDLINE,
  normalizeUuid,
} from './render.ts';

/** The one-time tokens of the Metalplane ramdisk (`ramdisk/sessions.ts`). */
export interface RamdiskTokens {
  mint(node: string): string;
  revoke(node: string, token: string): void;
  forget(node: string): void;
  /** The ramdisk's endpoint (`<http base>/ramdisk/v1`). */
  readonly url: string;
}

/** The deploy callback's tokens (`callback.ts`). */
export interface DeployCallbacks {
  readonly httpBaseUrl: string;
  set(node: string, token: string): Promise<void>;
  forget(node: string): Promise<void>;
}

export interface VirtualMediaOptions {
  readonly imagesDir: string;
  /** The base URL BMCs reach this agent's HTTP server at. */
  readonly baseUrl: string;
  readonly pins: () => ImagePins | undefined;
  /** The HTTP boot root: built ISOs go to its `vmedia/` (none: only catalog ISOs). */
  readonly httpRoot?: string;
  readonly ramdisk?: RamdiskTokens;
  readonly callbacks?: DeployCallbacks;
  readonly iso?: BootIsoOptions;
}

const BUILT_DIR = 'vmedia';
const CALLBACK_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

export function virtualMediaSource(options: VirtualMediaOptions): VirtualMediaSource {
  const base = options.baseUrl.replace(/\/+$/, '');
  const builtDir = options.httpRoot ? join(options.httpRoot, BUILT_DIR) : undefined;
  const held = new Map<string, string>();
  const holder = (node: string) => `vmedia:${node}`;
  const unpin = (node: string) => {
    const image = held.get(node);
    if (image === undefined) return;
    options.pins()?.unpin(image, holder(node));
    held.delete(node);
  };
  // Builds an agent stopped mid-way left behind (hidden: never served), swept before the first build.
  const swept = builtDir ? sweepBuilding(builtDir) : Promise.resolve();
  /** Removes the node's built ISOs (all of them: one left by an earlier agent run too). */
  const removeBuilt = async (node: string, keep?: string) => {
    if (!builtDir) return;
    let names: string[];
    try {
      names = await readdir(builtDir);
    } catch {
      return;
    }
    const mine = names.filter(
      (name) => name.startsWith(`${node}-`) && name.endsWith('.iso') && name !== keep,
    );
    await Promise.all(mine.map((name) => rm(join(builtDir, name), { force: true })));
  };

  async function catalogIso(image: string, node: string): Promise<string> {
    // Present, a regular file inside the images tree (an ActionFailure otherwise).
    await imageFile(options.imagesDir, image, 'iso');
    const id = image.toLowerCase();
    unpin(node);
    // What a built ISO of the node carried is no longer booted.
    await removeBuilt(node);
    options.ramdisk?.forget(node);
    await options.callbacks?.forget(node);
    options.pins()?.pin(id, holder(node));
    held.set(node, id);
    return `${base}/images/${encodeURIComponent(id)}/iso`;
  }

  async function builtIso(args: InsertVmediaArgs, node: string, signal?: AbortSignal): Promise<string> {
    if (!builtDir)
      throw new ActionFailure(
        'management.insert_vmedia: this agent has no HTTP boot tree to serve a built ISO from',
      );
    const cmdline = checkedCmdline(args);
    if (args.metalplane_ramdisk === true && !options.ramdisk)
      throw new ActionFailure(
        'management.insert_vmedia: metalplane_ramdisk needs the agent’s HTTP boot server (http.enabled)',
      );
    const kernelId = normalizeUuid(args.kernel, 'kernel image uuid');
    const ramdiskId = normalizeUuid(args.ramdisk, 'ramdisk image uuid');
    const building = `${holder(node)}:building`;
    // Held while they are read, so the image sync's collection cannot take them mid-way.
    options.pins()?.pin(kernelId, building);
    options.pins()?.pin(ramdiskId, building);
    let token: string | undefined;
    try {
      const [kernel, ramdisk] = await Promise.all([
        imageFile(options.imagesDir, kernelId, 'kernel'),
        imageFile(options.imagesDir, ramdiskId, 'ramdisk'),
      ]);
      if (args.metalplane_ramdisk === true && options.ramdisk) {
        token = options.ramdisk.mint(node);
        cmdline.push(
          `${RAMDISK_KERNEL_PARAMS.url}=${options.ramdisk.url}`,
          `${RAMDISK_KERNEL_PARAMS.token}=${token}`,
        );
      }
      if (args.callback_token !== undefined) {
        if (!options.callbacks)
          throw new ActionFailure(
            'management.insert_vmedia: this agent takes no deploy callbacks (callback_token)',
          );
        cmdline.push(
          `${CALLBACK_PARAM}=${callbackUrl(options.callbacks.httpBaseUrl, node, args.callback_token)}`,
        );
      }
      if (cmdline.join(' ').length > MAX_KERNEL_CMDLINE)
        throw new ActionFailure(
          `management.insert_vmedia: kernel command line longer than ${MAX_KERNEL_CMDLINE} characters`,
        );
      await swept;
      await mkdir(builtDir, { recursive: true, mode: 0o755 });
      const name = `${node}-${randomBytes(16).toString('hex')}.iso`;
      const bootMode: BootMode = args.boot_mode ?? 'bios';
      await buildBootIso({ kernel, ramdisk, cmdline, bootMode }, join(builtDir, name), {
        ...options.iso,
        ...(signal ? { signal } : {}),
      });
      unpin(node);
      await removeBuilt(node, name);
      if (args.callback_token !== undefined) await options.callbacks?.set(node, args.callback_token);
      return `${base}/${BUILT_DIR}/${name}`;
    } catch (error) {
      if (token !== undefined) options.ramdisk?.revoke(node, token);
      if (error instanceof BootIsoError)
        throw new ActionFailure(`management.insert_vmedia: ${error.message}`);
      throw error;
    } finally {
      options.pins()?.unpin(kernelId, building);
      options.pins()?.unpin(ramdiskId, building);
    }
  }

  return {
    validate(args) {
      if (args.iso !== undefined) return undefined;
      try {
        checkedCmdline(args as Partial<InsertVmediaArgs>);
      } catch (error) {
        if (error instanceof ActionFailure) return error.message;
        throw error;
      }
      if (args.callback_token !== undefined && !CALLBACK_TOKEN.test(String(args.callback_token)))
        return 'management.insert_vmedia: callback_token is not a valid token';
      return undefined;
    },
    async url(args, signal) {
      const node = normalizeUuid(args.node_uuid, 'node uuid');
      return typeof args.iso === 'string' ? catalogIso(args.iso, node) : builtIso(args, node, signal);
    },
    async release(node) {
      const key = node.toLowerCase();
      unpin(key);
      await removeBuilt(key);
      options.ramdisk?.forget(key);
      await options.callbacks?.forget(key);
    },
  };
}

async function sweepBuilding(dir: string): Promise<void> {
  try {
    const stale = (await readdir(dir)).filter((name) => name.startsWith('.building-'));
    await Promise.all(stale.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  } catch {
    // no directory yet: nothing to sweep
  }
}

/** The kernel parameters asked for, checked as `boot.prepare` checks them (ActionFailure otherwise). */
function checkedCmdline(args: Partial<InsertVmediaArgs>): string[] {
  if (args.boot_mode !== undefined && !BOOT_MODES.includes(args.boot_mode))
    throw new ActionFailure(`management.insert_vmedia: boot_mode must be one of ${BOOT_MODES.join(', ')}`);
  let tokens: string[];
  try {
    tokens = kernelParamTokens(args.kernel_append_params);
  } catch (error) {
    if (error instanceof BootRenderError)
      throw new ActionFailure(`management.insert_vmedia: ${error.message}`);
    throw error;
  }
  const reserved = tokens.find(
    (token) =>
      token.startsWith(`${RAMDISK_KERNEL_PARAMS.url}=`) ||
      token.startsWith(`${RAMDISK_KERNEL_PARAMS.token}=`),
  );
  if (reserved !== undefined)
    throw new ActionFailure(
      `management.insert_vmedia: kernel_append_params must not set ${RAMDISK_KERNEL_PARAMS.url}= or ${RAMDISK_KERNEL_PARAMS.token}= (metalplane_ramdisk sets them)`,
    );
  return tokens;
}
