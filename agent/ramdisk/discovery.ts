/**
 * Discovery on the site agent (protocol/discovery.ts): when the site's discovery is on
 * (`GET /v1/agent/site`) and its deploy kernel and ramdisk are synced here, the agent
 * writes `discovery.ipxe` in its HTTP tree and makes it the fallback of `boot.ipxe`, so
 * that a machine whose MACs have no script of their own boots the ramdisk with
 * `mp.url=<agent>/ramdisk/v1 mp.token=<discovery token> mp.discovery=1`.
 *
 * - The discovery token: 256 random bits, per agent (a new one each time discovery is
 *   turned on), reusable by any number of machines (unlike a node's one-time token). It
 *   is in `discovery.ipxe` only: never logged (the logger masks it), never sent to the
 *   control plane. With discovery off it is forgotten: a hello with it is refused (401).
 * - A hello with it opens a discovery session keyed by the boot MAC (the hello's
 *   `boot_mac`, required): a session of the ordinary `RamdiskSessions` for the pseudo-node
 *   `discovery:<mac>`, so heartbeats, steps, results and loss work as for a node. At most
 *   `maxSessions` (16) at once; a hello repeated while the MAC's session is live gets it
 *   again.
 * - The agent then runs `inspect` on it at once, checks the inventory's shape
 *   (`validateInventoryShape`), reports it (`POST /v1/agent/discoveries {boot_mac,
 *   inventory}`), and gives the ramdisk `poweroff` whatever the outcome: the machine is a
 *   node now (or a known one, or refused), and the operator takes it from there.
 *
 * The setting is read at start, when the channel comes up, on an images `wake` (the
 * sites API sends one when the setting changes) and every `refreshIntervalMs`; whether
 * the images are here is checked every `checkIntervalMs` (in memory).
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: iPXE's variables are written ${name}; these strings are iPXE script

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  AGENT_DISCOVERIES_PATH,
  AGENT_SITE_PATH,
  type AgentSiteView,
  DISCOVERY_KERNEL_PARAM,
  MAX_DISCOVERY_SESSIONS,
  schemaError,
  validateAgentSite,
  validateDiscoveryAnswer,
  validateInventoryShape,
} from '../../protocol/discovery.ts';
import { RAMDISK_KERNEL_PARAMS } from '../../protocol/ramdisk.ts';
import {
  ENTRY_SCRIPT_PATH,
  normalizeMac,
  renderEntryScript,
  renderIpxeKernelScript,
  safeUrl,
} from '../boot/render.ts';
import { errorMessage, type Logger } from '../log.ts';
import { RAMDISK_PATH } from './actions.ts';
import type { RamdiskSessions } from './sessions.ts';

/** The discovery boot script, in the HTTP root. */
export const DISCOVERY_SCRIPT_PATH = 'discovery.ipxe';
/** The pseudo-node of a discovery session: `discovery:<boot mac>`. */
export const DISCOVERY_NODE_PREFIX = 'discovery:';
const DEFAULT_INSPECT_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_CHECK_INTERVAL_MS = 2000;

/** What the agent serves when discovery is active. */
interface Active {
  readonly kernel: string;
  readonly ramdisk: string;
}

export interface DiscoveryOptions {
  readonly sessions: RamdiskSessions;
  readonly log: Logger;
  /** The URL nodes reach the agent's HTTP root at. */
  readonly httpBaseUrl: string;
  /** The images' URL as nodes see it (default `<httpBaseUrl>/images`). */
  readonly imagesBaseUrl?: string;
  /** Whether the HTTP boot server (which serves /ramdisk/v1) is on. */
  readonly served: boolean;
  /** Writes (atomically) a file of the HTTP root. */
  readonly writeHttp: (path: string, content: string) => Promise<unknown>;
  /** Removes a file of the HTTP root: whether there was one. */
  readonly removeHttp: (path: string) => Promise<boolean>;
  /** Whether an image file is synced at the site. */
  readonly hasImage: (uuid: string, role: 'kernel' | 'ramdisk') => boolean;
  readonly pin?: (uuid: string, holder: string) => void;
  readonly unpin?: (uuid: string, holder: string) => void;
  /** The control plane's agent routes (the channel's `getJson` / `postJson`). */
  readonly getJson: (path: string) => Promise<unknown>;
  readonly postJson: (path: string, body: unknown) => Promise<{ status: number; body: unknown }>;
  readonly refreshIntervalMs: number;
  readonly checkIntervalMs?: number;
  readonly maxSessions?: number;
  /** How long `inspect` may take (default 30 min). */
  readonly inspectTimeoutMs?: number;
  /** A one-time token's life for the session's own (internal) token. */
  readonly tokenTtlMs?: number;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

export class Discovery {
  readonly #o: DiscoveryOptions;
  readonly #log: Logger;
  readonly #max: number;
  readonly #httpBaseUrl: string;
  readonly #imagesBaseUrl: string;
  /** The setting as last read (undefined before the first read). */
  #setting: AgentSiteView['discovery'] | undefined;
  #active: Active | undefined;
  #token: string | undefined;
  /** boot MAC → its live discovery session id. */
  readonly #macs = new Map<string, string>();
  #refreshTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #applying: Promise<void> = Promise.resolve();
  #reconciled = false;
  #stopped = false;
  readonly #running = new Set<Promise<void>>();
  readonly #unsubscribe: () => void;

  constructor(options: DiscoveryOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'discovery' });
    this.#max = options.maxSessions ?? MAX_DISCOVERY_SESSIONS;
    this.#httpBaseUrl = options.httpBaseUrl.replace(/\/+$/, '');
    this.#imagesBaseUrl = (options.imagesBaseUrl ?? `${this.#httpBaseUrl}/images`).replace(/\/+$/, '');
    this.#unsubscribe = options.sessions.onSessionEnd((node) => {
      if (!node.startsWith(DISCOVERY_NODE_PREFIX)) return;
      this.#macs.delete(node.slice(DISCOVERY_NODE_PREFIX.length));
    });
  }

  /** The fallback of `boot.ipxe` while discovery is active. */
  fallbackUrl(): string | undefined {
    return this.#active ? `${this.#httpBaseUrl}/${DISCOVERY_SCRIPT_PATH}` : undefined;
  }

  /** Whether discovery is active (the script written, the token accepted). */
  get active(): boolean {
    return this.#active !== undefined;
  }

  /** Discovery sessions live now. */
  get sessionCount(): number {
    return this.#macs.size;
  }

  start(): void {
    void this.refresh('start');
    this.#refreshTimer = setInterval(() => void this.refresh('periodic'), this.#o.refreshIntervalMs);
    this.#refreshTimer.unref();
    this.#checkTimer = setInterval(
      () => void this.#apply(),
      this.#o.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
    );
    this.#checkTimer.unref();
  }

  /** Stops the timers and waits for the discoveries in progress (their sessions end with the agent's). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#refreshTimer);
    clearInterval(this.#checkTimer);
    this.#unsubscribe();
    await this.#applying;
    await Promise.allSettled([...this.#running]);
  }

  /** Reads the site's setting from the control plane and applies it; never throws. */
  async refresh(reason: string): Promise<void> {
    if (this.#stopped) return;
    try {
      const body = await this.#o.getJson(AGENT_SITE_PATH);
      if (!validateAgentSite(body)) {
        this.#log.warn('site setting refused: unexpected answer', { error: schemaError(validateAgentSite) });
        return;
      }
      const before = JSON.stringify(this.#setting);
      this.#setting = body.discovery;
      if (JSON.stringify(this.#setting) !== before) {
        this.#log.info('site discovery setting', { reason, ...body.discovery });
      }
    } catch (error) {
      this.#log.debug('site setting not read', { reason, error: errorMessage(error) });
      return;
    }
    await this.#apply();
  }

  /** Re-evaluates what to serve (one at a time). */
  #apply(): Promise<void> {
    this.#applying = this.#applying
      .then(() => this.#applyNow())
      .catch((error: unknown) => {
        this.#log.error('discovery boot files not written', { error: errorMessage(error) });
      });
    return this.#applying;
  }

  async #applyNow(): Promise<void> {
    if (this.#stopped) return;
    const s = this.#setting;
    // Nothing to go by before the first read of the setting.
    if (s === undefined) return;
    let wanted: Active | undefined;
    if (s.enabled && s.deploy_kernel && s.deploy_ramdisk && this.#o.served) {
      if (this.#o.hasImage(s.deploy_kernel, 'kernel') && this.#o.hasImage(s.deploy_ramdisk, 'ramdisk')) {
        wanted = { kernel: s.deploy_kernel, ramdisk: s.deploy_ramdisk };
      }
    }
    const current = this.#active;
    // The first time, whatever a previous run left in the tree is made right too.
    const first = !this.#reconciled;
    this.#reconciled = true;
    if (!first && wanted?.kernel === current?.kernel && wanted?.ramdisk === current?.ramdisk) return;
    if (wanted) {
      this.#o.pin?.(wanted.kernel, 'discovery');
      this.#o.pin?.(wanted.ramdisk, 'discovery');
      if (!this.#token) {
        this.#token = randomBytes(32).toString('base64url');
        this.#log.addSecret(this.#token);
      }
      await this.#o.writeHttp(DISCOVERY_SCRIPT_PATH, this.#script(wanted, this.#token));
      this.#active = wanted;
      await this.#o.writeHttp(ENTRY_SCRIPT_PATH, renderEntryScript({ fallbackUrl: this.fallbackUrl() }));
      this.#log.info('discovery on: unknown machines boot the deploy ramdisk', {
        kernel: wanted.kernel,
        ramdisk: wanted.ramdisk,
        script: DISCOVERY_SCRIPT_PATH,
      });
    } else {
      this.#active = undefined;
      this.#token = undefined;
      if (current) {
        // The entry script first: no machine chains a script that is going away.
        await this.#o.writeHttp(ENTRY_SCRIPT_PATH, renderEntryScript({}));
        await this.#o.removeHttp(DISCOVERY_SCRIPT_PATH);
      } else if (await this.#o.removeHttp(DISCOVERY_SCRIPT_PATH)) {
        // Left by a previous run (its token no longer accepted): no fallback to it.
        await this.#o.writeHttp(ENTRY_SCRIPT_PATH, renderEntryScript({}));
      }
      const why = !s.enabled
        ? 'off for the site'
        : !this.#o.served
          ? 'the HTTP boot server is off (http.enabled)'
          : 'waiting for the deploy kernel and ramdisk to be synced here';
      if (current || s.enabled) {
        this.#log.info('discovery off: unknown machines go on to their next boot device', { reason: why });
      }
    }
    if (current) {
      for (const image of [current.kernel, current.ramdisk]) {
        if (image !== wanted?.kernel && image !== wanted?.ramdisk) this.#o.unpin?.(image, 'discovery');
      }
    }
  }

  #script(active: Active, token: string): string {
    const kernel = safeUrl(`${this.#imagesBaseUrl}/${active.kernel}/kernel`, 'kernel URL');
    const ramdisk = safeUrl(`${this.#imagesBaseUrl}/${active.ramdisk}/ramdisk`, 'ramdisk URL');
    const endpoint = safeUrl(`${this.#httpBaseUrl}${RAMDISK_PATH}`, 'ramdisk URL');
    return renderIpxeKernelScript({
      header: '# metalplane: discovery boot (a machine no node knows), written by the agent; do not edit',
      echo: 'Booting the Metalplane ramdisk for discovery from ${mac}',
      kernelUrl: kernel,
      cmdline: [
        `${RAMDISK_KERNEL_PARAMS.url}=${endpoint}`,
        `${RAMDISK_KERNEL_PARAMS.token}=${token}`,
        `${DISCOVERY_KERNEL_PARAM}=1`,
        'BOOTIF=${mac}',
      ],
      ramdiskUrl: ramdisk,
    });
  }

  /**
   * A hello with the discovery token: opens (or, repeated, finds) the boot MAC's session
   * and starts its discovery; undefined when the token is not the discovery token, or the
   * hello is refused (no boot MAC, too many sessions).
   */
  hello(
    token: string,
    info: { readonly version: string; readonly bootMac: string | null },
    from?: string,
  ): { session: string; node: string } | undefined {
    const current = this.#token;
    if (!current || !this.#active || !timingSafeEqual(digest(token), digest(current))) return undefined;
    if (!info.bootMac) {
      this.#log.warn('discovery hello refused: no boot MAC (BOOTIF)', { from });
      return undefined;
    }
    const mac = normalizeMac(info.bootMac);
    const node = `${DISCOVERY_NODE_PREFIX}${mac}`;
    const existing = this.#macs.get(mac);
    if (existing !== undefined && this.#o.sessions.describe(node)?.state === 'live') {
      return { session: existing, node };
    }
    if (this.#macs.size >= this.#max) {
      this.#log.warn('discovery hello refused: too many discoveries in progress', {
        boot_mac: mac,
        max: this.#max,
        from,
      });
      return undefined;
    }
    let opened: { session: string; node: string } | undefined;
    try {
      // The session's own one-time token, used at once: the session is an ordinary one.
      const inner = this.#o.sessions.mint(node, this.#o.tokenTtlMs ?? 60_000);
      opened = this.#o.sessions.hello(inner, info);
    } catch (error) {
      this.#log.warn('discovery hello refused', { boot_mac: mac, error: errorMessage(error) });
      return undefined;
    }
    if (!opened) return undefined;
    this.#macs.set(mac, opened.session);
    this.#log.info('discovery session opened', { boot_mac: mac, version: info.version, from });
    const run = this.#discover(node, mac).finally(() => this.#running.delete(run));
    this.#running.add(run);
    return opened;
  }

  /** inspect → check → report → poweroff. Never throws. */
  async #discover(node: string, mac: string): Promise<void> {
    const sessions = this.#o.sessions;
    const id = (name: string) => `discovery-${name}-${randomBytes(6).toString('base64url')}`;
    try {
      const outcome = await sessions.runStep(
        node,
        { id: id('inspect'), name: 'inspect', args: {} },
        AbortSignal.timeout(this.#o.inspectTimeoutMs ?? DEFAULT_INSPECT_TIMEOUT_MS),
      );
      if (outcome.status === 'failed') {
        this.#log.warn('discovery: inspect failed on the ramdisk', { boot_mac: mac, error: outcome.error });
      } else {
        const inventory = outcome.result.inventory;
        if (!validateInventoryShape(inventory)) {
          this.#log.warn('discovery: inventory refused, not reported', {
            boot_mac: mac,
            error: schemaError(validateInventoryShape),
          });
        } else {
          const answer = await this.#o.postJson(AGENT_DISCOVERIES_PATH, { boot_mac: mac, inventory });
          if (validateDiscoveryAnswer(answer.body)) {
            this.#log.info(
              answer.body.outcome === 'created'
                ? 'discovery: machine enrolled as a new node'
                : 'discovery: a known machine, nothing enrolled',
              { boot_mac: mac, node: answer.body.uuid, outcome: answer.body.outcome },
            );
          } else {
            this.#log.warn('discovery: unexpected answer of the control plane', { boot_mac: mac });
          }
        }
      }
    } catch (error) {
      this.#log.warn('discovery failed', { boot_mac: mac, error: errorMessage(error) });
    }
    try {
      const off = await sessions.runStep(
        node,
        { id: id('poweroff'), name: 'poweroff', args: {} },
        AbortSignal.timeout(sessions.heartbeatIntervalMs * 3 + 60_000),
      );
      if (off.status === 'failed')
        this.#log.warn('discovery: poweroff failed', { boot_mac: mac, error: off.error });
    } catch (error) {
      this.#log.info('discovery: poweroff not confirmed', { boot_mac: mac, error: errorMessage(error) });
    }
  }
}
