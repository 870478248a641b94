/**
 * A site whose nodes boot the Metalplane ramdisk, for integration tests: the channel stack
 * (`startChannel`), the site, an enrolled in-process agent (`startAgent`, power sync off,
 * images refreshed every second) with its HTTP boot server on a free port, in a temp dir;
 * and the fake ramdisks (test/support/fake-ramdisk.ts) that boot from what it writes.
 *
 *   const site = await startRamdiskSite('direct', { hostname: 'direct-agent', tempPrefix: 'deploy-direct-' });
 *   const ramdisk = await site.bootRamdisk(mac, (step) => ramdisk.write(step));
 *   await site.close();
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { ipxeScriptPath } from '../../agent/boot/render.ts';
import { parseConfig } from '../../agent/config.ts';
import { silentLogger } from '../../agent/log.ts';
import { type RunningAgent, startAgent } from '../../agent/main.ts';
import { ensureStateDir, writeCredential } from '../../agent/state.ts';
import { testConfig } from '../../agent/testing/agent-process.ts';
import { freePort } from '../../local/moto.ts';
import type { CallResult } from './api.ts';
import { type ChannelStack, startChannel, waitFor } from './channel.ts';
import { FakeRamdisk, kernelParamsOf } from './fake-ramdisk.ts';

export interface RamdiskSiteOptions {
  /** The agent's hostname at enrollment. */
  readonly hostname: string;
  /** The prefix of the temp dir (the agent's config, state and boot files). */
  readonly tempPrefix: string;
}

export interface BootRamdiskOptions {
  /** A token the boot files must no longer hold (the ramdisk's previous boot). */
  readonly previous?: string | undefined;
  /** How long to wait for the boot files (ms). */
  readonly timeoutMs: number;
  /** The fake ramdisk's heartbeat (`FakeRamdisk`'s default when undefined). */
  readonly heartbeatMs?: number | undefined;
}

export interface RamdiskSite {
  readonly stack: ChannelStack;
  readonly agent: RunningAgent;
  /** The agent's credential. */
  readonly credential: string;
  /** The temp dir: the agent's config, state and boot files (`http/`). */
  readonly dir: string;
  /** The agent's HTTP boot server's port (on 127.0.0.1). */
  readonly httpPort: number;
  /** The fake ramdisks started (by `bootRamdisk` or the test) and not yet stopped. */
  readonly ramdisks: FakeRamdisk[];
  /** An API call at `version` (1.82 by default), with `body` when given. */
  api(method: string, path: string, body?: unknown, version?: string): Promise<CallResult>;
  /** The node as the API shows it (1.82). */
  node(uuid: string): Promise<any>;
  /**
   * The node's ramdisk boots: once the agent has written the iPXE script for `mac` with a
   * fresh `mp.token` (other than `previous`), the fake ramdisk says hello with it.
   */
  bootRamdisk(
    mac: string,
    run: FakeRamdisk['run'],
    options: BootRamdiskOptions,
  ): Promise<FakeRamdisk & { token: string; script: string }>;
  /** Stops the fake ramdisks; none may have gone wrong in the background. */
  stopRamdisks(): void;
  /** Stops the fake ramdisks left, the agent and the stack; removes the temp dir. */
  close(): Promise<void>;
}

/**
 * The agent's config (YAML) for the stack: power sync off, images refreshed every second,
 * the HTTP boot server on `httpPort` (127.0.0.1), and `boot` settings (indented lines) more.
 */
export function siteAgentConfig(stack: ChannelStack, httpPort: number, boot: readonly string[] = []): string {
  return testConfig({
    url: stack.api.url,
    websocketUrl: stack.gateway.url,
    extra: [
      'power_sync:',
      '  enabled: false',
      'images:',
      '  refresh_interval: 1s',
      'boot:',
      ...boot,
      `  http_url: http://127.0.0.1:${httpPort}`,
    ].join('\n'),
  }).replace(/^(http:\n.*\n.*\n {2}port:) 0$/m, `$1 ${httpPort}`);
}

/**
 * Registers a test file's hooks for its site (`site()`, once started): its fake ramdisks
 * stopped and checked after each test, the site closed after all.
 */
export function ramdiskSiteHooks(site: () => RamdiskSite | undefined): void {
  afterEach(() => {
    site()?.stopRamdisks();
  });
  afterAll(async () => {
    await site()?.close();
  });
}

export async function startRamdiskSite(site: string, options: RamdiskSiteOptions): Promise<RamdiskSite> {
  const stack = await startChannel({ syncWaitMs: 15_000 });
  let dir: string | undefined;
  try {
    expect((await stack.createSite(site)).status).toBe(201);
    const { credential } = await stack.enroll(site, options.hostname);
    dir = mkdtempSync(join(tmpdir(), options.tempPrefix));
    const httpPort = await freePort();
    const config = parseConfig(siteAgentConfig(stack, httpPort), join(dir, 'config.yaml'));
    await ensureStateDir(config.stateDir);
    await writeCredential(config.stateDir, credential);
    const agent = await startAgent(config, { log: silentLogger });
    return ramdiskSite(stack, agent, credential, dir, httpPort);
  } catch (error) {
    await stack.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function ramdiskSite(
  stack: ChannelStack,
  agent: RunningAgent,
  credential: string,
  dir: string,
  httpPort: number,
): RamdiskSite {
  const ramdisks: FakeRamdisk[] = [];
  const api: RamdiskSite['api'] = (method, path, body, version = '1.82') =>
    stack.api.call(method, path, body === undefined ? { version } : { body, version });
  return {
    stack,
    agent,
    credential,
    dir,
    httpPort,
    ramdisks,
    api,
    async node(uuid) {
      return (await api('GET', `/v1/nodes/${uuid}`)).body;
    },
    async bootRamdisk(mac, run, { previous, timeoutMs, heartbeatMs }) {
      const path = join(dir, 'http', ipxeScriptPath(mac));
      let script = '';
      const params = await waitFor(
        () => {
          if (!existsSync(path)) return undefined;
          script = readFileSync(path, 'utf8');
          const found = kernelParamsOf(script);
          const token = found?.get('mp.token');
          return token && token !== previous ? found : undefined;
        },
        `the ramdisk boot files of ${mac}`,
        timeoutMs,
      );
      const ramdisk = new FakeRamdisk(params.get('mp.url') as string, run, mac, heartbeatMs);
      ramdisks.push(ramdisk);
      expect(await ramdisk.hello(params.get('mp.token') as string)).toBe(200);
      return Object.assign(ramdisk, { token: params.get('mp.token') as string, script });
    },
    stopRamdisks() {
      for (const ramdisk of ramdisks.splice(0)) {
        ramdisk.stop();
        expect(ramdisk.errors).toEqual([]);
      }
    },
    async close() {
      for (const ramdisk of ramdisks.splice(0)) ramdisk.stop();
      await agent.stop();
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
