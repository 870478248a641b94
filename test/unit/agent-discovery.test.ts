/**
 * Discovery on the agent (agent/ramdisk/discovery.ts) with an in-memory HTTP tree and
 * control plane: the script and the entry script's fallback follow the setting and the
 * images' presence; the reusable token opens one session per boot MAC (bounded, repeated
 * hellos get theirs), each inspected, reported and powered off; the token never reaches
 * the log. And the protocol's discovery schemas (protocol/discovery.ts), the site
 * setting's defaults (lambda/domain/sites/site.ts) and its audit.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../agent/log.ts';
import {
  DISCOVERY_NODE_PREFIX,
  DISCOVERY_SCRIPT_PATH,
  Discovery,
  type DiscoveryOptions,
} from '../../agent/ramdisk/discovery.ts';
import { ramdiskRoute } from '../../agent/ramdisk/endpoint.ts';
import { RamdiskSessions } from '../../agent/ramdisk/sessions.ts';
import { isAudited, resourceOf } from '../../lambda/domain/audit/audit.ts';
import { normalizeDiscovery } from '../../lambda/domain/sites/site.ts';
import {
  type AgentSiteView,
  validateAgentSite,
  validateDiscoveryAnswer,
  validateDiscoveryReport,
  validateInventoryShape,
} from '../../protocol/discovery.ts';
import { entryFallbackUrlOf, fakeInventory, kernelParamsOf } from '../support/fake-ramdisk.ts';

const KERNEL = '11111111-2222-4333-8444-555555555555';
const RAMDISK = '66666666-7777-4888-8999-000000000000';
const ON: AgentSiteView = {
  site: 's1',
  discovery: { enabled: true, deploy_kernel: KERNEL, deploy_ramdisk: RAMDISK },
};
const OFF: AgentSiteView = {
  site: 's1',
  discovery: { enabled: false, deploy_kernel: null, deploy_ramdisk: null },
};
const HELLO = (mac: string | null) => ({ version: 'test', bootMac: mac });

function setup(over: Partial<DiscoveryOptions> = {}) {
  const files = new Map<string, string>();
  const lines: string[] = [];
  const reports: unknown[] = [];
  const present = new Set<string>([`${KERNEL}/kernel`, `${RAMDISK}/ramdisk`]);
  const pins = new Set<string>();
  let view: AgentSiteView = ON;
  const sessions = new RamdiskSessions({ heartbeatIntervalMs: 1000, sweepIntervalMs: 0 });
  const log = createLogger({ level: 'debug', write: (line) => lines.push(line) });
  const discovery = new Discovery({
    sessions,
    log,
    httpBaseUrl: 'http://10.0.0.1:8080/',
    served: true,
    writeHttp: async (path, content) => files.set(path, content),
    removeHttp: async (path) => files.delete(path),
    hasImage: (uuid, role) => present.has(`${uuid}/${role}`),
    pin: (uuid, holder) => pins.add(`${uuid}:${holder}`),
    unpin: (uuid, holder) => pins.delete(`${uuid}:${holder}`),
    getJson: async () => view,
    postJson: async (_path, body) => {
      reports.push(body);
      return { status: 201, body: { outcome: 'created', uuid: KERNEL } };
    },
    refreshIntervalMs: 60_000,
    checkIntervalMs: 60_000,
    ...over,
  });
  return {
    discovery,
    sessions,
    files,
    lines,
    reports,
    present,
    pins,
    setView: (next: AgentSiteView) => {
      view = next;
    },
  };
}

/** Plays the ramdisk on the session: answers each step it is given with `answer`. */
async function playRamdisk(
  sessions: RamdiskSessions,
  session: string,
  answer: (name: string) => Record<string, unknown>,
) {
  const ran: string[] = [];
  for (let i = 0; i < 200 && !ran.includes('poweroff'); i++) {
    const steps = sessions.heartbeat(session) ?? [];
    for (const step of steps) {
      ran.push(step.name);
      sessions.result(session, step.id, { status: 'succeeded', result: answer(step.name) });
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  return ran;
}

describe('discovery boot files', () => {
  it('writes the discovery script and the fallback when on and the images are here', async () => {
    const { discovery, files, pins, lines } = setup();
    await discovery.refresh('test');
    expect(discovery.active).toBe(true);
    const script = files.get(DISCOVERY_SCRIPT_PATH) as string;
    expect(script).toContain(`kernel http://10.0.0.1:8080/images/${KERNEL}/kernel initrd=ramdisk `);
    expect(script).toContain(`initrd --name ramdisk http://10.0.0.1:8080/images/${RAMDISK}/ramdisk`);
    const params = kernelParamsOf(script) as Map<string, string>;
    expect(params.get('mp.url')).toBe('http://10.0.0.1:8080/ramdisk/v1');
    expect(params.get('mp.discovery')).toBe('1');
    expect(params.get('mp.token')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(entryFallbackUrlOf(files.get('boot.ipxe') as string)).toBe(
      `http://10.0.0.1:8080/${DISCOVERY_SCRIPT_PATH}`,
    );
    expect(discovery.fallbackUrl()).toBe(`http://10.0.0.1:8080/${DISCOVERY_SCRIPT_PATH}`);
    expect(pins).toEqual(new Set([`${KERNEL}:discovery`, `${RAMDISK}:discovery`]));
    expect(lines.join('')).not.toContain(params.get('mp.token') as string);
    await discovery.stop();
  });

  it('waits for the images, and drops everything when turned off', async () => {
    const { discovery, files, present, setView, pins } = setup();
    present.clear();
    await discovery.refresh('test');
    expect(discovery.active).toBe(false);
    expect(files.has(DISCOVERY_SCRIPT_PATH)).toBe(false);
    expect(files.has('boot.ipxe')).toBe(false);
    present.add(`${KERNEL}/kernel`).add(`${RAMDISK}/ramdisk`);
    await discovery.refresh('test');
    expect(discovery.active).toBe(true);
    const token = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token') as string;
    setView(OFF);
    await discovery.refresh('test');
    expect(discovery.active).toBe(false);
    expect(discovery.fallbackUrl()).toBeUndefined();
    expect(files.has(DISCOVERY_SCRIPT_PATH)).toBe(false);
    expect(entryFallbackUrlOf(files.get('boot.ipxe') as string)).toBeUndefined();
    expect(pins.size).toBe(0);
    expect(discovery.hello(token, HELLO('52:54:00:00:00:01'))).toBeUndefined();
    // On again: a new token.
    setView(ON);
    await discovery.refresh('test');
    const again = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token');
    expect(again).not.toBe(token);
    await discovery.stop();
  });

  it('removes what a previous run left (its token no longer accepted)', async () => {
    const { discovery, files, setView } = setup();
    files.set(DISCOVERY_SCRIPT_PATH, 'old');
    files.set('boot.ipxe', 'old with a fallback');
    setView(OFF);
    await discovery.refresh('test');
    expect(files.has(DISCOVERY_SCRIPT_PATH)).toBe(false);
    expect(entryFallbackUrlOf(files.get('boot.ipxe') as string)).toBeUndefined();
    expect(files.get('boot.ipxe')).toContain('#!ipxe');
    await discovery.stop();
  });

  it('stays off without the HTTP boot server, and ignores a malformed setting', async () => {
    const unserved = setup({ served: false });
    await unserved.discovery.refresh('test');
    expect(unserved.discovery.active).toBe(false);
    const malformed = setup({ getJson: async () => ({ site: 's1', discovery: { enabled: 'yes' } }) });
    await malformed.discovery.refresh('test');
    expect(malformed.discovery.active).toBe(false);
    expect(malformed.lines.join('')).toContain('site setting refused');
  });
});

describe('discovery sessions', () => {
  it('inspects, reports and powers off; the token is reusable; a repeated hello gets its session', async () => {
    const { discovery, sessions, files, reports, lines } = setup();
    await discovery.refresh('test');
    const token = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token') as string;
    expect(discovery.hello('x'.repeat(43), HELLO('52:54:00:00:00:01'))).toBeUndefined();
    expect(discovery.hello(token, HELLO(null))).toBeUndefined();
    const opened = discovery.hello(token, HELLO('52:54:00:AA:00:01'));
    expect(opened?.node).toBe(`${DISCOVERY_NODE_PREFIX}52:54:00:aa:00:01`);
    expect(discovery.hello(token, HELLO('52:54:00:aa:00:01'))).toEqual(opened);
    expect(discovery.sessionCount).toBe(1);
    const ran = await playRamdisk(sessions, opened?.session as string, (name) =>
      name === 'inspect' ? { inventory: fakeInventory('52:54:00:aa:00:01') } : {},
    );
    expect(ran).toEqual(['inspect', 'poweroff']);
    expect(reports).toEqual([
      { boot_mac: '52:54:00:aa:00:01', inventory: fakeInventory('52:54:00:aa:00:01') },
    ]);
    expect(discovery.sessionCount).toBe(0);
    // Another machine with the same token.
    const other = discovery.hello(token, HELLO('52:54:00:aa:00:02'));
    expect(other?.session).not.toBe(opened?.session);
    await playRamdisk(sessions, other?.session as string, (name) =>
      name === 'inspect' ? { inventory: fakeInventory('52:54:00:aa:00:02') } : {},
    );
    expect(reports).toHaveLength(2);
    expect(lines.join('')).not.toContain(token);
    await discovery.stop();
  });

  it('does not report an inventory of the wrong shape, and still powers off', async () => {
    const { discovery, sessions, files, reports, lines } = setup();
    await discovery.refresh('test');
    const token = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token') as string;
    const opened = discovery.hello(token, HELLO('52:54:00:aa:00:03'));
    const ran = await playRamdisk(sessions, opened?.session as string, (name) =>
      name === 'inspect' ? { inventory: { cpu: {} } } : {},
    );
    expect(ran).toEqual(['inspect', 'poweroff']);
    expect(reports).toEqual([]);
    expect(lines.join('')).toContain('inventory refused, not reported');
    await discovery.stop();
  });

  it('holds at most maxSessions at once', async () => {
    const { discovery, files, sessions } = setup({ maxSessions: 2 });
    await discovery.refresh('test');
    const token = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token') as string;
    expect(discovery.hello(token, HELLO('52:54:00:aa:01:01'))).toBeDefined();
    expect(discovery.hello(token, HELLO('52:54:00:aa:01:02'))).toBeDefined();
    expect(discovery.hello(token, HELLO('52:54:00:aa:01:03'))).toBeUndefined();
    sessions.close();
    await discovery.stop();
  });

  it('opens through the ramdisk endpoint: a hello with the discovery token is 200, off is 401', async () => {
    const { discovery, sessions, files, setView } = setup();
    await discovery.refresh('test');
    const token = kernelParamsOf(files.get(DISCOVERY_SCRIPT_PATH) as string)?.get('mp.token') as string;
    const route = ramdiskRoute({ sessions, log: createLogger({ write: () => {} }), discovery });
    const hello = async () => {
      const { createServer } = await import('node:http');
      const server = createServer((req, res) => void route(req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      try {
        const res = await fetch(`http://127.0.0.1:${port}/ramdisk/v1`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ v: 1, type: 'hello', token, version: 't', boot_mac: '52:54:00:aa:02:01' }),
        });
        return res.status;
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    };
    expect(await hello()).toBe(200);
    setView(OFF);
    await discovery.refresh('test');
    expect(await hello()).toBe(401);
    sessions.close();
    await discovery.stop();
  });
});

describe('protocol and control plane pieces', () => {
  it('checks the site view, the report and the answer', () => {
    expect(validateAgentSite(ON)).toBe(true);
    expect(validateAgentSite({ site: 's1', discovery: { enabled: true } })).toBe(false);
    expect(validateInventoryShape(fakeInventory())).toBe(true);
    expect(validateInventoryShape({ ...fakeInventory(), interfaces: [] })).toBe(false);
    expect(validateDiscoveryReport({ boot_mac: '52:54:00:00:00:01', inventory: fakeInventory() })).toBe(true);
    expect(validateDiscoveryReport({ boot_mac: '52-54-00-00-00-01', inventory: fakeInventory() })).toBe(
      false,
    );
    expect(validateDiscoveryReport({ boot_mac: '52:54:00:00:00:01' })).toBe(false);
    expect(validateDiscoveryAnswer({ outcome: 'known', uuid: KERNEL })).toBe(true);
    expect(validateDiscoveryAnswer({ outcome: 'maybe', uuid: KERNEL })).toBe(false);
  });

  it('gives the site setting its defaults and refuses enabled without images', () => {
    expect(normalizeDiscovery(undefined)).toEqual({
      enabled: false,
      deploy_kernel: null,
      deploy_ramdisk: null,
      driver: 'ipmi',
    });
    expect(normalizeDiscovery({ enabled: true, deploy_kernel: 'k', deploy_ramdisk: 'r' }).driver).toBe(
      'ipmi',
    );
    expect(() => normalizeDiscovery({ enabled: true, deploy_kernel: 'k' })).toThrow(
      /missing discovery.deploy_ramdisk/,
    );
  });

  it('audits a node created by discovery, not the no-op of a known machine', () => {
    expect(isAudited('POST', '/v1/agent/discoveries', 201)).toBe(true);
    expect(isAudited('POST', '/v1/agent/discoveries', 200)).toBe(false);
    expect(isAudited('POST', '/v1/agent/discoveries', 409)).toBe(false);
    expect(resourceOf('/v1/agent/discoveries', {}, { outcome: 'created', uuid: KERNEL })).toEqual({
      type: 'node',
      id: KERNEL,
      name: null,
    });
  });
});
