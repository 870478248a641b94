/**
 * Boot files for a node being provisioned, rendered as text: pure functions, no I/O
 * (`files.ts` writes them). Modelled on Ironic's templates (`ipxe_config.template`,
 * `pxe_config.template`, `pxe_grub_config.template`, `boot.ipxe`) and its layout
 * (`ironic/common/pxe_utils.py`):
 *
 * HTTP root (iPXE, every boot mode):
 *   boot.ipxe                       the generic entry script the site's DHCP hands to iPXE;
 *                                   chains `pxelinux.cfg/${mac:hexhyp}` for each NIC
 *   pxelinux.cfg/aa-bb-cc-dd-ee-ff  the node's iPXE script, one copy per PXE-enabled MAC
 *   <node uuid>/config              the same script, the node's canonical copy
 * TFTP root (firmware PXE without iPXE):
 *   bios: pxelinux.cfg/01-aa-bb-cc-dd-ee-ff   PXELINUX config (kernel/initrd over TFTP,
 *                                             ISO through memdisk `iso raw`)
 *   uefi: grub.cfg-01-aa-bb-cc-dd-ee-ff and aa:bb:cc:dd:ee:ff.conf   GRUB config (Ironic
 *                                             writes both names; ISO through loopback)
 *   <node uuid>/config              the node's PXELINUX or GRUB config, canonical copy
 *   <node uuid>/kernel, ramdisk, boot.iso     the images, staged by `files.ts`
 *
 * Safety: every value that reaches a script is validated here and rejected with a
 * `BootRenderError` when it cannot be made safe for all three interpreters at once:
 * iPXE (no quoting at all; `${...}` expands anywhere; `#`, `||`, `&&` are syntax),
 * PXELINUX (one line per directive) and GRUB (a shell-like language: `$`, `;`, quotes).
 * So: no control characters (newlines), no `$`, no quotes or backslashes in kernel
 * parameters, URLs normalized by WHATWG URL and limited to http(s), MACs normalized to
 * lower-case `aa:bb:cc:dd:ee:ff`, node and image identifiers must be UUIDs, TFTP paths
 * are plain relative segments. GRUB words are additionally single-quoted.
 *
 * The callback: the booted kernel gets `callback=URL` as the last parameter of its
 * command line (the lab initramfs and the deploy ramdisks read `callback=`). An ISO is
 * booted without a command line of ours (sanboot, memdisk, loopback), so it cannot be
 * told the URL: it must carry its own (see docs/boot-files.md).
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: iPXE's variables are written ${name}; these strings are iPXE script, not templates

import { BOOT_MODES, type BootMode } from '../../protocol/actions.ts';

/** The boot modes are the protocol's (`boot.prepare`'s `boot_mode`). */
export { BOOT_MODES, type BootMode };

/** The name of the kernel parameter that carries the callback URL. */
export const CALLBACK_PARAM = 'callback';

/** x86 Linux's COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL. */
export const MAX_KERNEL_CMDLINE = 2047;
export const MAX_URL_LENGTH = 1024;
/** More PXE-enabled ports than this on one node is a mistake, not a server. */
export const MAX_MACS = 64;

/** Kernel + ramdisk, fetched over HTTP by iPXE and over TFTP by PXELINUX and GRUB. */
export interface KernelBoot {
  readonly kind: 'kernel';
  readonly kernelUrl: string;
  readonly ramdiskUrl: string;
  /** Relative to the TFTP root, e.g. `<node uuid>/kernel`. */
  readonly kernelPath: string;
  readonly ramdiskPath: string;
  /** Ironic's `kernel_append_params`: space-separated kernel parameters. */
  readonly appendParams?: string;
}

/** An ISO: `sanboot` over HTTP (iPXE), memdisk (PXELINUX) or loopback (GRUB) over TFTP. */
export interface IsoBoot {
  readonly kind: 'iso';
  readonly isoUrl: string;
  /** Relative to the TFTP root, e.g. `<node uuid>/boot.iso`. */
  readonly isoPath: string;
}

export interface NodeBootDescription {
  readonly nodeUuid: string;
  /** PXE-enabled port MACs, any common notation; normalized and de-duplicated. */
  readonly macs: readonly string[];
  readonly bootMode: BootMode;
  readonly boot: KernelBoot | IsoBoot;
  /** Appended to the kernel command line as `callback=URL`; ignored (with a warning) for an ISO. */
  readonly callbackUrl?: string;
}

export type BootRoot = 'http' | 'tftp';

export interface RenderedFile {
  readonly root: BootRoot;
  /** Relative to the root, `/`-separated, no leading slash. */
  readonly path: string;
  readonly content: string;
}

export interface RenderedNode {
  readonly nodeUuid: string;
  /** Normalized MACs (`aa:bb:cc:dd:ee:ff`), in the order given, without duplicates. */
  readonly macs: readonly string[];
  readonly files: readonly RenderedFile[];
  /** The kernel parameters of a kernel boot (the loader adds its own `initrd=`); null for an ISO. */
  readonly kernelCmdline: string | null;
  /** Things the caller asked for that this boot cannot honour (reported, not fatal). */
  readonly warnings: readonly string[];
}

/** A value that cannot be put into a boot script safely; the message says which and why. */
export class BootRenderError extends Error {
  override readonly name = 'BootRenderError';
}

// ---------------------------------------------------------------------------------------
// Validation and normalization

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A node or image UUID, lower-cased; anything else (a name, a path) is refused. */
export function normalizeUuid(value: unknown, what = 'node uuid'): string {
  if (typeof value !== 'string') throw new BootRenderError(`${what} must be a string`);
  const lower = value.toLowerCase();
  if (!UUID.test(lower)) throw new BootRenderError(`${what} ${describe(value)} is not a UUID`);
  return lower;
}

/**
 * A MAC in any of the usual notations (`aa:bb:cc:dd:ee:ff`, `AA-BB-...`, `aabb.ccdd.eeff`,
 * `aabbccddeeff`) as lower-case colon-separated hex; anything else is refused.
 */
export function normalizeMac(value: unknown): string {
  if (typeof value !== 'string') throw new BootRenderError('MAC address must be a string');
  let hex: string | undefined;
  if (/^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}$/.test(value))
    hex = value.replace(/[:-]/g, '');
  else if (/^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/.test(value)) hex = value.replace(/\./g, '');
  else if (/^[0-9A-Fa-f]{12}$/.test(value)) hex = value;
  if (!hex)
    throw new BootRenderError(`MAC address ${describe(value)} is not a MAC (expected aa:bb:cc:dd:ee:ff)`);
  return hex.toLowerCase().match(/../g)!.join(':');
}

export function normalizeMacs(values: readonly unknown[]): string[] {
  if (!Array.isArray(values) || values.length === 0) {
    throw new BootRenderError('at least one PXE-enabled MAC address is needed');
  }
  if (values.length > MAX_MACS) throw new BootRenderError(`more than ${MAX_MACS} MAC addresses`);
  return [...new Set(values.map(normalizeMac))];
}

/** `aa-bb-cc-dd-ee-ff`: iPXE's `${mac:hexhyp}`, the name of the per-MAC iPXE script. */
export const macHexhyp = (mac: string): string => normalizeMac(mac).replace(/:/g, '-');
/** `pxelinux.cfg/01-aa-bb-...` (01 = Ethernet ARP type, as PXELINUX asks). */
export const pxelinuxConfigPath = (mac: string): string => `pxelinux.cfg/01-${macHexhyp(mac)}`;
/** `pxelinux.cfg/aa-bb-...` in the HTTP root: what `boot.ipxe` chains. */
export const ipxeScriptPath = (mac: string): string => `pxelinux.cfg/${macHexhyp(mac)}`;
/** Both names Ironic links for GRUB: `grub.cfg-01-aa-bb-...` and `aa:bb:...conf`. */
export const grubConfigPaths = (mac: string): string[] => [
  `grub.cfg-01-${macHexhyp(mac)}`,
  `${normalizeMac(mac)}.conf`,
];
export const nodeConfigPath = (nodeUuid: string): string => `${normalizeUuid(nodeUuid)}/config`;

/**
 * An http(s) URL as WHATWG URL serializes it (spaces and non-ASCII percent-encoded),
 * refused when it still holds something a script would interpret.
 */
export function safeUrl(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new BootRenderError(`${what} must be a string`);
  if (/[\0-\x20\x7f]/.test(value)) {
    throw new BootRenderError(`${what} contains whitespace or control characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new BootRenderError(`${what} ${describe(value)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BootRenderError(`${what} must be http or https, not ${url.protocol.replace(/:$/, '')}`);
  }
  if (url.hash) throw new BootRenderError(`${what} must not have a #fragment`);
  const href = url.href;
  if (href.length > MAX_URL_LENGTH) throw new BootRenderError(`${what} is longer than ${MAX_URL_LENGTH}`);
  // `$` would be expanded by iPXE and GRUB; quotes and backslashes are quoting syntax
  // somewhere; WHATWG URL leaves these unencoded in paths and queries.
  const bad = /[$"'\\`]/.exec(href);
  if (bad)
    throw new BootRenderError(`${what} contains ${describe(bad[0])}, which a boot script would interpret`);
  return href;
}

/** A path relative to the TFTP root: plain segments only (no `..`, no hidden names, no `/` prefix). */
export function safeTftpPath(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new BootRenderError(`${what} must be a string`);
  const segments = value.split('/');
  if (value.length > 255 || !segments.every((s) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s))) {
    throw new BootRenderError(`${what} ${describe(value)} is not a plain relative path`);
  }
  return value;
}

/**
 * Kernel parameters as tokens. Refused: control characters (a newline would start a new
 * script line), non-ASCII, `$` (iPXE and GRUB expand it), quotes and backslashes
 * (quoted differently, or not at all, by the three loaders), tokens that iPXE reads as
 * syntax (`#...` comments, `||`, `&&`, `|`), and parameters the loader owns
 * (`initrd=`, `callback=`: use the callback URL argument).
 */
export function kernelParamTokens(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'string') throw new BootRenderError('kernel_append_params must be a string');
  if (/[^\x20-\x7e]/.test(value)) {
    throw new BootRenderError(
      'kernel_append_params contains a control or non-ASCII character (e.g. a newline)',
    );
  }
  const bad = /[$"'\\`]/.exec(value);
  if (bad) {
    throw new BootRenderError(
      `kernel_append_params contains ${describe(bad[0])}: not allowed (iPXE, PXELINUX and GRUB read it differently)`,
    );
  }
  const tokens = value.split(' ').filter((t) => t !== '');
  for (const token of tokens) {
    if (token.startsWith('#'))
      throw new BootRenderError(`kernel_append_params: ${describe(token)} starts with #`);
    if (/^[|&]+$/.test(token))
      throw new BootRenderError(`kernel_append_params: ${describe(token)} is script syntax`);
    const key = token.split('=', 1)[0]!;
    if (token.includes('=') && (key === 'initrd' || key === CALLBACK_PARAM)) {
      throw new BootRenderError(
        `kernel_append_params must not set ${key}= (${key === 'initrd' ? 'the ramdisk is set by the boot config' : 'give callback_url instead'})`,
      );
    }
  }
  return tokens;
}

function describe(value: string): string {
  const shown = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return JSON.stringify(shown);
}

interface CheckedNode {
  nodeUuid: string;
  macs: string[];
  bootMode: BootMode;
  boot:
    | { kind: 'kernel'; kernelUrl: string; ramdiskUrl: string; kernelPath: string; ramdiskPath: string }
    | { kind: 'iso'; isoUrl: string; isoPath: string };
  /** Kernel command line tokens (parameters then callback), empty for an ISO. */
  cmdline: string[];
  warnings: string[];
}

/** Validates and normalizes a description once; every renderer goes through it. */
export function checkDescription(desc: NodeBootDescription): CheckedNode {
  const nodeUuid = normalizeUuid(desc.nodeUuid);
  const macs = normalizeMacs(desc.macs);
  if (!BOOT_MODES.includes(desc.bootMode)) {
    throw new BootRenderError(`boot mode must be bios or uefi, not ${describe(String(desc.bootMode))}`);
  }
  const warnings: string[] = [];
  const callback = desc.callbackUrl === undefined ? undefined : safeUrl(desc.callbackUrl, 'callback URL');
  const b = desc.boot;
  if (b?.kind === 'kernel') {
    const tokens = kernelParamTokens(b.appendParams);
    if (callback) tokens.push(`${CALLBACK_PARAM}=${callback}`);
    const cmdline = tokens.join(' ');
    // +`initrd=ramdisk ` that the iPXE script adds.
    if (cmdline.length + 16 > MAX_KERNEL_CMDLINE) {
      throw new BootRenderError(`kernel command line longer than ${MAX_KERNEL_CMDLINE - 16} characters`);
    }
    return {
      nodeUuid,
      macs,
      bootMode: desc.bootMode,
      boot: {
        kind: 'kernel',
        kernelUrl: safeUrl(b.kernelUrl, 'kernel URL'),
        ramdiskUrl: safeUrl(b.ramdiskUrl, 'ramdisk URL'),
        kernelPath: safeTftpPath(b.kernelPath, 'kernel path'),
        ramdiskPath: safeTftpPath(b.ramdiskPath, 'ramdisk path'),
      },
      cmdline: tokens,
      warnings,
    };
  }
  if (b?.kind === 'iso') {
    if (callback) {
      warnings.push('callback_url not passed: an ISO boots without a kernel command line of ours');
    }
    return {
      nodeUuid,
      macs,
      bootMode: desc.bootMode,
      boot: {
        kind: 'iso',
        isoUrl: safeUrl(b.isoUrl, 'ISO URL'),
        isoPath: safeTftpPath(b.isoPath, 'ISO path'),
      },
      cmdline: [],
      warnings,
    };
  }
  throw new BootRenderError('boot must be a kernel + ramdisk or an ISO');
}

// ---------------------------------------------------------------------------------------
// Renderers

const header = (comment: string, node: CheckedNode) =>
  `${comment} metalplane: boot config of node ${node.nodeUuid}, written by the agent; do not edit`;

/**
 * The node's iPXE script (HTTP): kernel + initrd, or `sanboot --no-describe` of the ISO,
 * retried with a growing pause as Ironic's template does, then power off.
 */
export function renderIpxeScript(desc: NodeBootDescription): string {
  return ipxeScript(checkDescription(desc));
}

function ipxeScript(node: CheckedNode): string {
  if (node.boot.kind === 'kernel') {
    return renderIpxeKernelScript({
      header: header('#', node),
      echo: `Booting node ${node.nodeUuid}`,
      kernelUrl: node.boot.kernelUrl,
      cmdline: node.cmdline,
      ramdiskUrl: node.boot.ramdiskUrl,
    });
  }
  return ipxeRetryScript(header('#', node), [
    `echo Booting node ${node.nodeUuid} from ISO`,
    `sanboot --no-describe ${node.boot.isoUrl} || goto retry`,
  ]);
}

/** What an iPXE script booting a kernel and its initrd says and boots (URLs and tokens checked). */
export interface IpxeKernelScript {
  /** The script's comment line, `#` included. */
  readonly header: string;
  /** What it echoes before booting (after `echo `). */
  readonly echo: string;
  readonly kernelUrl: string;
  readonly cmdline: readonly string[];
  readonly ramdiskUrl: string;
}

/**
 * An iPXE script booting a kernel with its initrd, retried with a growing pause as
 * Ironic's template does, then power off (the node scripts' and the discovery script's).
 */
export function renderIpxeKernelScript(script: IpxeKernelScript): string {
  // `--name ramdisk` + `initrd=ramdisk`: an EFI-stub kernel finds its initrd by name.
  return ipxeRetryScript(script.header, [
    `echo ${script.echo}`,
    `kernel ${script.kernelUrl} initrd=ramdisk${script.cmdline.map((t) => ` ${t}`).join('')} || goto retry`,
    `initrd --name ramdisk ${script.ramdiskUrl} || goto retry`,
    'boot || goto retry',
  ]);
}

/** An iPXE script: `boot` lines, retried with a growing pause, then power off. */
function ipxeRetryScript(headerLine: string, boot: readonly string[]): string {
  return [
    '#!ipxe',
    headerLine,
    '',
    'set attempts:int32 10',
    'set i:int32 0',
    '',
    ':boot',
    'imgfree',
    ...boot,
    '',
    ':retry',
    'iseq ${i} ${attempts} && goto fail ||',
    'inc i',
    'echo Boot failed, retrying in ${i} seconds.',
    'sleep ${i}',
    'goto boot',
    '',
    ':fail',
    'echo Failed to boot after ${attempts} attempts; powering off in 30 seconds.',
    'sleep 30',
    'poweroff',
    '',
  ].join('\n');
}

/** The node's PXELINUX config (BIOS, TFTP): kernel + initrd, or the ISO through memdisk. */
export function renderPxelinuxConfig(desc: NodeBootDescription): string {
  return pxelinuxConfig(checkDescription(desc));
}

function pxelinuxConfig(node: CheckedNode): string {
  const lines = [header('#', node), 'default boot', 'prompt 0', 'timeout 1', '', 'label boot'];
  if (node.boot.kind === 'kernel') {
    lines.push(
      `kernel ${node.boot.kernelPath}`,
      `append initrd=${node.boot.ramdiskPath}${node.cmdline.map((t) => ` ${t}`).join('')}`,
    );
  } else {
    // memdisk (from syslinux) loads the whole ISO into RAM and emulates a disk from it.
    lines.push('kernel memdisk', `initrd ${node.boot.isoPath}`, 'append iso raw');
  }
  lines.push('');
  return lines.join('\n');
}

/** A GRUB word, single-quoted when it holds anything but plain characters. */
function grubWord(word: string): string {
  return /^[A-Za-z0-9._\-/=:,+@%]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The node's GRUB config (UEFI, TFTP): linux + initrd, or the ISO through loopback. */
export function renderGrubConfig(desc: NodeBootDescription): string {
  return grubConfig(checkDescription(desc));
}

function grubConfig(node: CheckedNode): string {
  const lines = [
    header('#', node),
    'set default=boot',
    'set timeout=5',
    'set hidden_timeout_quiet=false',
    '',
  ];
  if (node.boot.kind === 'kernel') {
    lines.push(
      'menuentry "boot" {',
      `    linux ${[`/${node.boot.kernelPath}`, ...node.cmdline].map(grubWord).join(' ')}`,
      `    initrd ${grubWord(`/${node.boot.ramdiskPath}`)}`,
      '}',
    );
  } else {
    // The loopback.cfg convention (Debian, Ubuntu, Grml... ISOs): the ISO's own GRUB
    // config for being booted from a file; else its EFI loader, which suits fewer ISOs.
    const iso = grubWord(`/${node.boot.isoPath}`);
    lines.push(
      'menuentry "boot" {',
      `    set iso_path=${iso}`,
      '    export iso_path',
      `    loopback loop ${iso}`,
      '    set root=(loop)',
      '    if [ -f /boot/grub/loopback.cfg ]; then',
      '        configfile /boot/grub/loopback.cfg',
      '    else',
      '        chainloader /EFI/BOOT/BOOTX64.EFI',
      '    fi',
      '}',
    );
  }
  lines.push('');
  return lines.join('\n');
}

export interface EntryScriptOptions {
  /** Chained when no NIC has a script of its own (e.g. an inspection ramdisk's script). */
  readonly fallbackUrl?: string;
}

/**
 * `boot.ipxe`: the generic script the site's DHCP hands to iPXE clients. As Ironic's: it
 * tries `pxelinux.cfg/${mac:hexhyp}` (relative to its own URL) for each NIC in turn;
 * when none has one, it chains the fallback if any, else exits so that the firmware
 * goes on to the next boot device (a node that is not being provisioned boots its disk).
 */
export function renderEntryScript(options: EntryScriptOptions = {}): string {
  const fallback =
    options.fallbackUrl === undefined ? undefined : safeUrl(options.fallbackUrl, 'fallback URL');
  const lines = [
    '#!ipxe',
    '# metalplane: generic entry script, written by the agent; do not edit',
    '',
    '# Loop over the NICs and chain the script named by the first MAC that has one.',
    'set netid:int32 -1',
    ':loop',
    'inc netid || chain pxelinux.cfg/${mac:hexhyp} || goto old_rom',
    'isset ${net${netid}/mac} || goto loop_done',
    'echo Attempting to boot from MAC ${net${netid}/mac:hexhyp}',
    'chain pxelinux.cfg/${net${netid}/mac:hexhyp} || goto loop',
    '',
    '# The chained script returned: let the firmware try its next boot device.',
    'exit 0',
    '',
    ':loop_done',
    ...(fallback ? [`chain ${fallback} || goto no_config`, ''] : []),
    ':no_config',
    'echo No boot configuration for any NIC of this machine: trying the next boot device.',
    'exit 0',
    '',
    ':old_rom',
    ...(fallback ? [`chain ${fallback} || goto no_config_old_rom`, ''] : []),
    ':no_config_old_rom',
    'echo No boot configuration for NIC ${mac:hexhyp}: trying the next boot device.',
    'exit 0',
    '',
  ];
  return lines.join('\n');
}

export const ENTRY_SCRIPT_PATH = 'boot.ipxe';

/**
 * Every file of a node, by root: the iPXE script (HTTP) always, per MAC and canonical;
 * in BIOS mode the PXELINUX config, in UEFI mode the GRUB config (TFTP), per MAC and
 * canonical. The entry script is site-wide, not part of any node (`renderEntryScript`).
 */
export function renderNodeBootFiles(desc: NodeBootDescription): RenderedNode {
  const node = checkDescription(desc);
  const files: RenderedFile[] = [];
  const ipxe = ipxeScript(node);
  files.push({ root: 'http', path: nodeConfigPath(node.nodeUuid), content: ipxe });
  for (const mac of node.macs) files.push({ root: 'http', path: ipxeScriptPath(mac), content: ipxe });
  if (node.bootMode === 'bios') {
    const cfg = pxelinuxConfig(node);
    files.push({ root: 'tftp', path: nodeConfigPath(node.nodeUuid), content: cfg });
    for (const mac of node.macs) files.push({ root: 'tftp', path: pxelinuxConfigPath(mac), content: cfg });
  } else {
    const cfg = grubConfig(node);
    files.push({ root: 'tftp', path: nodeConfigPath(node.nodeUuid), content: cfg });
    for (const mac of node.macs) {
      for (const path of grubConfigPaths(mac)) files.push({ root: 'tftp', path, content: cfg });
    }
  }
  return {
    nodeUuid: node.nodeUuid,
    macs: node.macs,
    files,
    kernelCmdline: node.boot.kind === 'kernel' ? node.cmdline.join(' ') : null,
    warnings: node.warnings,
  };
}
