/**
 * The boot interface's agent actions: `boot.prepare` renders and writes a node's boot
 * files (iPXE, PXELINUX or GRUB, staged images, DHCP host entries) and `boot.clean`
 * removes them. Built by `bootActions(options)`; the drivers put the returned actions in
 * their `boot` interface. Layout, formats and safety rules: docs/boot-files.md.
 */
import { realpath, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { BOOT_MODES } from '../../protocol/actions.ts';
import { errorsText, lazyValidator } from '../../protocol/lazy-validator.ts';
import { type Action, ActionFailure, type CatalogAction } from '../drivers/types.ts';
import { dhcpHostFiles } from './dhcp-hosts.ts';
import { BootPathError, BootTree, type PlannedFile, type StagedImage, type TreeRoot } from './files.ts';
import {
  type BootMode,
  BootRenderError,
  checkDescription,
  ENTRY_SCRIPT_PATH,
  ipxeScriptPath,
  type NodeBootDescription,
  normalizeUuid,
  renderEntryScript,
  renderNodeBootFiles,
  safeUrl,
} from './render.ts';

export const DEFAULT_TFTP_ROOT = '/var/lib/tftpboot';
export const DEFAULT_HTTP_ROOT = '/var/www/html/pxe';

export interface BootActionsOptions {
  /** The TFTP tree (PXELINUX / GRUB configs, staged kernels and ISOs). Default /var/lib/tftpboot. */
  readonly tftpRoot?: string;
  /** The HTTP tree (boot.ipxe, iPXE scripts). Default /var/www/html/pxe. */
  readonly httpRoot?: string;
  /**
   * The URL at which nodes reach the HTTP root, e.g. `http://10.0.0.1:8080` (a file
   * `<httpRoot>/x` is `<httpBaseUrl>/x`). Required: it goes into the iPXE scripts.
   */
  readonly httpBaseUrl: string;
  /** `tftp://10.0.0.1[:port]`: only used to report the URLs of the TFTP files written. */
  readonly tftpBaseUrl?: string;
  /** dnsmasq's `dhcp-hostsdir`: when set, one host entry per MAC is written there. */
  readonly dhcpHostsDir?: string;
  /** Where the images are stored: `<imagesDir>/<image uuid>/<iso|kernel|ramdisk>`. */
  readonly imagesDir: string;
  /** The URL of the images tree as nodes see it. Default `<httpBaseUrl>/images`. */
  readonly imagesBaseUrl?: string;
  /**
   * Where the per-node manifests go (what was written, for removal after a restart).
   * Default `<tftpRoot>/.metalplane-manifests` (hidden: the agent's servers never serve
   * it); better the agent's state directory, e.g. `<state_dir>/boot-manifests`.
   */
  readonly manifestDir?: string;
  /**
   * Chained by boot.ipxe when no NIC has a script (e.g. an inspection ramdisk's script); a
   * function is asked each time boot.ipxe is written (discovery turns it on and off).
   */
  readonly entryFallbackUrl?: string | (() => string | undefined);
}

const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
const imageRef = { type: 'string', pattern: UUID_PATTERN };

/** JSON Schema of `boot.prepare`'s args (the shapes; the values are checked by render.ts). */
export const PREPARE_ARGS_SCHEMA = {
  type: 'object',
  properties: {
    driver: { type: 'string' },
    node_uuid: { type: 'string', pattern: UUID_PATTERN },
    macs: { type: 'array', minItems: 1, maxItems: 64, items: { type: 'string', maxLength: 32 } },
    boot_mode: { enum: BOOT_MODES },
    kernel: imageRef,
    ramdisk: imageRef,
    iso: imageRef,
    kernel_append_params: { type: 'string', maxLength: 2048 },
    callback_url: { type: 'string', maxLength: 1024 },
  },
  required: ['node_uuid', 'macs', 'boot_mode'],
  additionalProperties: false,
} as const;

export const CLEAN_ARGS_SCHEMA = {
  type: 'object',
  properties: { driver: { type: 'string' }, node_uuid: { type: 'string', pattern: UUID_PATTERN } },
  required: ['node_uuid'],
  additionalProperties: false,
} as const;

const validatePrepareShape = lazyValidator('boot.prepare-args', { strict: true }, PREPARE_ARGS_SCHEMA);
const validateCleanShape = lazyValidator('boot.clean-args', { strict: true }, CLEAN_ARGS_SCHEMA);

interface PrepareArgs {
  nodeUuid: string;
  macs: string[];
  bootMode: BootMode;
  images: { kind: 'kernel'; kernel: string; ramdisk: string } | { kind: 'iso'; iso: string };
  kernelAppendParams?: string;
  callbackUrl?: string;
}

function shapeError(action: string, errors: typeof validatePrepareShape.errors): string {
  const e = errors?.[0];
  if (!e) return `${action}: invalid args`;
  if (e.keyword === 'additionalProperties') {
    return `${action}: unknown argument ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  }
  if (e.keyword === 'pattern' && /node_uuid|kernel|ramdisk|iso/.test(e.instancePath)) {
    return `${action}: args${e.instancePath.replace(/\//g, '.')} must be a UUID`;
  }
  return `${action}: ${errorsText([e], { dataVar: 'args' }).replace(/\//g, '.')}`;
}

/** Checks `boot.prepare`'s args; returns them typed, or an error message. */
export function parsePrepareArgs(args: Record<string, unknown>): PrepareArgs | string {
  if (!validatePrepareShape(args)) return shapeError('boot.prepare', validatePrepareShape.errors);
  const a = args as {
    node_uuid: string;
    macs: string[];
    boot_mode: BootMode;
    kernel?: string;
    ramdisk?: string;
    iso?: string;
    kernel_append_params?: string;
    callback_url?: string;
  };
  let images: PrepareArgs['images'];
  if (a.iso !== undefined) {
    if (a.kernel !== undefined || a.ramdisk !== undefined) {
      return 'boot.prepare: give either iso or kernel + ramdisk, not both';
    }
    images = { kind: 'iso', iso: a.iso.toLowerCase() };
  } else if (a.kernel !== undefined && a.ramdisk !== undefined) {
    images = { kind: 'kernel', kernel: a.kernel.toLowerCase(), ramdisk: a.ramdisk.toLowerCase() };
  } else {
    return 'boot.prepare: give iso, or kernel and ramdisk (image UUIDs)';
  }
  const parsed: PrepareArgs = {
    nodeUuid: a.node_uuid.toLowerCase(),
    macs: a.macs,
    bootMode: a.boot_mode,
    images,
    kernelAppendParams: a.kernel_append_params,
    callbackUrl: a.callback_url,
  };
  try {
    // Every value that reaches a script, checked now so that a bad command fails before running.
    checkDescription(describeNode(parsed, 'http://validation.invalid/images'));
  } catch (error) {
    if (error instanceof BootRenderError) return `boot.prepare: ${error.message}`;
    throw error;
  }
  return parsed;
}

function describeNode(a: PrepareArgs, imagesBaseUrl: string): NodeBootDescription {
  const url = (uuid: string, role: string) => `${imagesBaseUrl}/${uuid}/${role}`;
  return {
    nodeUuid: a.nodeUuid,
    macs: a.macs,
    bootMode: a.bootMode,
    callbackUrl: a.callbackUrl,
    boot:
      a.images.kind === 'kernel'
        ? {
            kind: 'kernel',
            kernelUrl: url(a.images.kernel, 'kernel'),
            ramdiskUrl: url(a.images.ramdisk, 'ramdisk'),
            kernelPath: `${a.nodeUuid}/kernel`,
            ramdiskPath: `${a.nodeUuid}/ramdisk`,
            appendParams: a.kernelAppendParams,
          }
        : { kind: 'iso', isoUrl: url(a.images.iso, 'iso'), isoPath: `${a.nodeUuid}/boot.iso` },
  };
}

const trimSlash = (url: string) => url.replace(/\/+$/, '');

/**
 * The local file of an image: `<imagesDir>/<uuid>/<role>`, a non-empty regular file whose
 * real path stays inside the images directory; an ActionFailure otherwise.
 */
export async function imageFile(
  imagesDir: string,
  uuid: string,
  role: 'kernel' | 'ramdisk' | 'iso',
): Promise<string> {
  const id = normalizeUuid(uuid, 'image uuid');
  const path = join(resolve(imagesDir), id, role);
  const missing = () =>
    new ActionFailure(
      `image ${id}: its ${role} file is not present at this site (${path}); wait until it is synced`,
    );
  let real: string;
  let realDir: string;
  try {
    realDir = await realpath(resolve(imagesDir));
    real = await realpath(path);
  } catch {
    throw missing();
  }
  if (!real.startsWith(realDir.endsWith(sep) ? realDir : realDir + sep)) {
    throw new ActionFailure(`image ${id}: ${path} leads outside the images directory`);
  }
  const info = await stat(real);
  if (!info.isFile() || info.size === 0) throw missing();
  return real;
}

/** The agent actions of the boot interface: `boot.prepare` and `boot.clean`. */
export function bootActions(options: BootActionsOptions): Action[] {
  const tftpRoot = options.tftpRoot ?? DEFAULT_TFTP_ROOT;
  const httpRoot = options.httpRoot ?? DEFAULT_HTTP_ROOT;
  const httpBaseUrl = trimSlash(safeUrl(options.httpBaseUrl, 'httpBaseUrl'));
  const imagesBaseUrl = trimSlash(safeUrl(options.imagesBaseUrl ?? `${httpBaseUrl}/images`, 'imagesBaseUrl'));
  const tftpBaseUrl = options.tftpBaseUrl === undefined ? undefined : trimSlash(options.tftpBaseUrl);
  if (tftpBaseUrl !== undefined && !/^tftp:\/\/[A-Za-z0-9.[\]:-]+$/.test(tftpBaseUrl)) {
    throw new Error(`tftpBaseUrl ${JSON.stringify(options.tftpBaseUrl)} must be tftp://host[:port]`);
  }
  const fallback = options.entryFallbackUrl;
  const entryScript = () =>
    renderEntryScript({ fallbackUrl: typeof fallback === 'function' ? fallback() : fallback });
  // A bad static fallback fails here, at start, as before.
  if (typeof fallback === 'string') entryScript();
  const tree = new BootTree({
    tftpRoot,
    httpRoot,
    dhcpHostsDir: options.dhcpHostsDir,
    manifestDir: options.manifestDir ?? join(tftpRoot, '.metalplane-manifests'),
  });
  const urlOf = (root: TreeRoot, path: string): string | undefined =>
    root === 'http'
      ? `${httpBaseUrl}/${path}`
      : root === 'tftp' && tftpBaseUrl
        ? `${tftpBaseUrl}/${path}`
        : undefined;

  const prepare: CatalogAction<'boot.prepare'> = {
    name: 'boot.prepare',
    description:
      'writes a node’s boot files (iPXE script, PXELINUX or GRUB config, staged images, DHCP host entries): ' +
      'args node_uuid, macs, boot_mode, kernel + ramdisk or iso (image UUIDs), kernel_append_params?, callback_url?',
    validate(args) {
      const parsed = parsePrepareArgs(args);
      return typeof parsed === 'string' ? parsed : undefined;
    },
    async run({ args, signal, log }) {
      const a = parsePrepareArgs(args);
      if (typeof a === 'string') throw new ActionFailure(a);
      const rendered = renderNodeBootFiles(describeNode(a, imagesBaseUrl));
      const images: StagedImage[] = [];
      if (a.images.kind === 'kernel') {
        images.push(
          {
            root: 'tftp',
            path: `${a.nodeUuid}/kernel`,
            source: await imageFile(options.imagesDir, a.images.kernel, 'kernel'),
          },
          {
            root: 'tftp',
            path: `${a.nodeUuid}/ramdisk`,
            source: await imageFile(options.imagesDir, a.images.ramdisk, 'ramdisk'),
          },
        );
      } else {
        images.push({
          root: 'tftp',
          path: `${a.nodeUuid}/boot.iso`,
          source: await imageFile(options.imagesDir, a.images.iso, 'iso'),
        });
      }
      const files: PlannedFile[] = [...rendered.files];
      if (options.dhcpHostsDir) files.push(...dhcpHostFiles(rendered.macs, a.nodeUuid));
      signal.throwIfAborted();
      try {
        // Site-wide, not part of the node: never removed by boot.clean.
        await tree.writeFile('http', ENTRY_SCRIPT_PATH, entryScript());
        const outcome = await tree.prepareNode(a.nodeUuid, files, images, signal);
        for (const k of outcome.kept) log.warn('boot.prepare: a stale boot file was left in place', { ...k });
        return {
          node_uuid: a.nodeUuid,
          boot_mode: a.bootMode,
          boot: a.images.kind,
          macs: rendered.macs,
          kernel_cmdline: rendered.kernelCmdline,
          entry_script_url: `${httpBaseUrl}/${ENTRY_SCRIPT_PATH}`,
          ipxe_script_urls: rendered.macs.map((mac) => `${httpBaseUrl}/${ipxeScriptPath(mac)}`),
          files: outcome.files.map((f) => ({
            root: f.root,
            path: f.path,
            ...(urlOf(f.root, f.path) ? { url: urlOf(f.root, f.path) } : {}),
          })),
          removed: outcome.removed,
          kept: outcome.kept,
          warnings: rendered.warnings,
        };
      } catch (error) {
        if (error instanceof BootPathError || error instanceof BootRenderError) {
          throw new ActionFailure(`boot.prepare: ${error.message}`);
        }
        throw error;
      }
    },
  };

  const clean: CatalogAction<'boot.clean'> = {
    name: 'boot.clean',
    description: 'removes the boot files and DHCP host entries boot.prepare wrote for a node: args node_uuid',
    validate(args) {
      return validateCleanShape(args) ? undefined : shapeError('boot.clean', validateCleanShape.errors);
    },
    async run({ args }) {
      if (!validateCleanShape(args))
        throw new ActionFailure(shapeError('boot.clean', validateCleanShape.errors));
      const nodeUuid = (args.node_uuid as string).toLowerCase();
      try {
        const outcome = await tree.cleanNode(nodeUuid);
        return { node_uuid: nodeUuid, removed: outcome.removed, kept: outcome.kept };
      } catch (error) {
        throw new ActionFailure(`boot.clean: ${(error as Error).message}`);
      }
    },
  };

  return [prepare, clean];
}
