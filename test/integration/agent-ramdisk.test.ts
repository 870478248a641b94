/**
 * The Metalplane ramdisk's boot, end to end on the agent's side: `boot.prepare
 * {metalplane_ramdisk: true}` through the agent's executor and registry writes boot files
 * whose kernel line carries `mp.url`/`mp.token`; a fake ramdisk (a small client of
 * protocol/ramdisk.ts over HTTP) reads them as it would read /proc/cmdline, says hello,
 * heartbeats and runs the steps `ramdisk.run_step` queues; `ramdisk.wait` waits for its
 * hello. The token never reaches a command result or the journal.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bootActions } from '../../agent/boot/actions.ts';
import { CallbackTokens, withCallbackUrls } from '../../agent/boot/callback.ts';
import { HttpBootServer } from '../../agent/boot/http-server.ts';
import { ipxeScriptPath } from '../../agent/boot/render.ts';
import { parseConfig } from '../../agent/config.ts';
import { createRegistry, defaultDriverContext } from '../../agent/drivers/registry.ts';
import { Executor } from '../../agent/executor.ts';
import { silentLogger } from '../../agent/log.ts';
import { startAgent } from '../../agent/main.ts';
import { ramdiskActions, withRamdiskBoot } from '../../agent/ramdisk/actions.ts';
import { ramdiskRoute } from '../../agent/ramdisk/endpoint.ts';
import { RamdiskSessions } from '../../agent/ramdisk/sessions.ts';
import { Journal, type Report, writeCredential } from '../../agent/state.ts';
import { testConfig } from '../../agent/testing/agent-process.ts';
import type { Command } from '../../protocol/messages.ts';
import type { Inventory } from '../../protocol/ramdisk.ts';
import { fakeInventory, kernelParamsOf, FakeRamdisk as SharedFakeRamdisk } from '../support/fake-ramdisk.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const OTHER = '2ce26c0b-03f2-4d2e-ae87-c02d7f33c124';
const IMAGE = '0d7c1f3a-2b4e-4f60-8a9b-c1d2e3f40516';
const MAC = '52:54:00:00:00:01';

const INVENTORY: Inventory = fakeInventory(MAC);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function until<T>(probe: () => T | undefined, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The agent as main.ts wires it, around a real HTTP boot server and executor. */
async function site() {
  const dir = mkdtempSync(join(tmpdir(), 'agent-ramdisk-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const images = join(dir, 'images');
  for (const role of ['kernel', 'ramdisk']) {
    mkdirSync(join(images, IMAGE), { recursive: true });
    writeFileSync(join(images, IMAGE, role), role.toUpperCase());
  }
  const sessions = new RamdiskSessions({ heartbeatIntervalMs: 1000, log: silentLogger });
  cleanups.push(() => sessions.close());
  const http = await HttpBootServer.start({
    root: join(dir, 'http'),
    port: 0,
    extraRoutes: ramdiskRoute({ sessions, log: silentLogger }),
  });
  cleanups.push(() => http.close());
  const httpBaseUrl = `http://127.0.0.1:${http.port}`;
  const boot = withCallbackUrls(
    withRamdiskBoot(
      bootActions({
        tftpRoot: join(dir, 'tftp'),
        httpRoot: join(dir, 'http'),
        httpBaseUrl,
        imagesDir: images,
        manifestDir: join(dir, 'state', 'boot-manifests'),
      }),
      sessions,
      { httpBaseUrl },
    ),
    httpBaseUrl,
    new CallbackTokens(),
  );
  const registry = createRegistry(['fake-hardware'], defaultDriverContext({ bootActions: boot }));
  for (const action of ramdiskActions(sessions)) registry.registerAction(action);
  const stateDir = join(dir, 'state');
  const { journal } = await Journal.open(stateDir, { retentionMs: 86_400_000 });
  cleanups.push(() => journal.close());
  const reports: Report[] = [];
  const executor = new Executor({
    limit: 4,
    journal,
    registry,
    log: silentLogger,
    onResult: (r) => void reports.push(r),
  });
  cleanups.push(() => executor.stop(100));

  let seq = 0;
  /** Submits a command; resolves with its result report. */
  const run = async (node: string, action: string, args: Record<string, unknown>, deadlineMs = 20_000) => {
    const id = `cmd-${++seq}`;
    const command: Command = {
      id,
      node,
      action,
      args,
      deadline: new Date(Date.now() + deadlineMs).toISOString(),
      attempt: 1,
      receipt: `r-${id}`,
    };
    executor.submit(command);
    return until(
      () =>
        reports.find(
          (r): r is Extract<Report, { type: 'command_result' }> =>
            r.type === 'command_result' && r.command_id === id,
        ),
      `the result of ${action}`,
    );
  };
  return { dir, stateDir, httpBaseUrl, sessions, run };
}

/** What a ramdisk reads from /proc/cmdline: here the kernel line of the iPXE script it was booted by. */
async function kernelParams(httpBaseUrl: string): Promise<Map<string, string>> {
  const script = await (await fetch(`${httpBaseUrl}/${ipxeScriptPath(MAC)}`)).text();
  const params = kernelParamsOf(script);
  if (!params) throw new Error(`no kernel line in\n${script}`);
  return params;
}

/** The shared fake ramdisk, stopped after each test. */
class FakeRamdisk extends SharedFakeRamdisk {
  override async hello(token: string): Promise<number> {
    const status = await super.hello(token);
    cleanups.push(() => this.stop());
    return status;
  }
}

const prepareArgs = (over: Record<string, unknown> = {}) => ({
  driver: 'fake-hardware',
  node_uuid: NODE,
  macs: [MAC],
  boot_mode: 'bios',
  kernel: IMAGE,
  ramdisk: IMAGE,
  kernel_append_params: 'console=ttyS0',
  metalplane_ramdisk: true,
  ...over,
});

describe('the Metalplane ramdisk through the agent', () => {
  it('boots: boot files carry mp.url/mp.token, hello, ramdisk.wait, ramdisk.run_step inspect', async () => {
    const s = await site();
    const prepared = await s.run(NODE, 'boot.prepare', prepareArgs());
    expect(prepared.status, prepared.error).toBe('succeeded');
    const params = await kernelParams(s.httpBaseUrl);
    expect(params.get('console')).toBe('ttyS0');
    expect(params.get('mp.url')).toBe(`${s.httpBaseUrl}/ramdisk/v1`);
    const token = params.get('mp.token') as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The result (stored by the control plane) and the journal never hold the token.
    expect(prepared.result?.kernel_cmdline).toBe(
      `console=ttyS0 mp.url=${s.httpBaseUrl}/ramdisk/v1 mp.token=[redacted]`,
    );
    const journal = readFileSync(join(s.stateDir, 'journal.jsonl'), 'utf8');
    expect(journal).toContain('mp.token=[redacted]');
    expect(journal).not.toContain(token);

    const waiting = s.run(NODE, 'ramdisk.wait', { node_uuid: NODE });
    const ramdisk = new FakeRamdisk(params.get('mp.url') as string, (step) =>
      step.name === 'inspect'
        ? { status: 'succeeded', result: { inventory: INVENTORY } }
        : { status: 'failed', error: 'unexpected' },
    );
    expect(await ramdisk.hello(token)).toBe(200);
    expect((await waiting).result).toEqual({ node_uuid: NODE, version: 'fake-1', boot_mac: MAC });
    // A repeated hello (its answer lost) gets the same session, not a second one.
    expect(await new FakeRamdisk(ramdisk.url, ramdisk.run).hello(token)).toBe(200);

    const inspected = await s.run(NODE, 'ramdisk.run_step', {
      node_uuid: NODE,
      step: 'inspect',
      step_args: {},
    });
    expect(inspected.status, inspected.error).toBe('succeeded');
    expect(inspected.result).toEqual({ inventory: INVENTORY });
    expect(ramdisk.ran).toEqual([{ id: inspected.command_id, name: 'inspect', args: {} }]);
  });

  it('fails clearly: no session, bad step args, a step the ramdisk failed, the deadline', async () => {
    const s = await site();
    const none = await s.run(OTHER, 'ramdisk.run_step', { node_uuid: OTHER, step: 'inspect', step_args: {} });
    expect(none).toMatchObject({
      status: 'failed',
      error: `no ramdisk session for node ${OTHER}: has it booted?`,
    });
    const notPrepared = await s.run(OTHER, 'ramdisk.wait', { node_uuid: OTHER });
    expect(notPrepared.error).toMatch(/no ramdisk boot prepared for node/);
    const badArgs = await s.run(NODE, 'ramdisk.run_step', {
      node_uuid: NODE,
      step: 'write_image',
      step_args: { url: 'ftp://x', sha256: 'nope', format: 'raw' },
    });
    expect(badArgs.error).toMatch(/^ramdisk\.run_step: args\.step_args for write_image: /);
    const badStep = await s.run(NODE, 'ramdisk.run_step', {
      node_uuid: NODE,
      step: 'format_c',
      step_args: {},
    });
    expect(badStep.error).toMatch(/args\.step must be one of inspect/);

    expect((await s.run(NODE, 'boot.prepare', prepareArgs())).status).toBe('succeeded');
    const ramdisk = new FakeRamdisk(`${s.httpBaseUrl}/ramdisk/v1`, () => ({
      status: 'failed',
      error: 'no disks found',
    }));
    expect(await ramdisk.hello((await kernelParams(s.httpBaseUrl)).get('mp.token') as string)).toBe(200);
    const failed = await s.run(NODE, 'ramdisk.run_step', {
      node_uuid: NODE,
      step: 'erase_devices_metadata',
      step_args: {},
    });
    expect(failed).toMatchObject({
      status: 'failed',
      error: `ramdisk step erase_devices_metadata failed on node ${NODE}: no disks found`,
    });

    ramdisk.stop(); // silent from now on: the step is never given, the deadline ends it
    const timedOut = await s.run(
      NODE,
      'ramdisk.run_step',
      { node_uuid: NODE, step: 'inspect', step_args: {} },
      300,
    );
    expect(timedOut.error).toMatch(/^timed out/);
  });

  it('boot.prepare refuses what a ramdisk boot cannot do, and a refused boot mints nothing', async () => {
    const s = await site();
    const iso = await s.run(
      NODE,
      'boot.prepare',
      prepareArgs({ kernel: undefined, ramdisk: undefined, iso: IMAGE }),
    );
    expect(iso.error).toMatch(/metalplane_ramdisk boots a kernel \+ ramdisk, not an iso/);
    const own = await s.run(NODE, 'boot.prepare', prepareArgs({ kernel_append_params: 'mp.token=mine' }));
    expect(own.error).toMatch(/must not set mp\.url= or mp\.token=/);
    const flag = await s.run(NODE, 'boot.prepare', prepareArgs({ metalplane_ramdisk: 'yes' }));
    expect(flag.error).toMatch(/metalplane_ramdisk must be true or false/);
    const missing = await s.run(NODE, 'boot.prepare', prepareArgs({ kernel: OTHER }));
    expect(missing.error).toMatch(/not present at this site/);
    expect(s.sessions.expecting(NODE)).toBe(false);
    // Without the flag: no ramdisk parameters, as before.
    const plain = await s.run(NODE, 'boot.prepare', prepareArgs({ metalplane_ramdisk: false }));
    expect(plain.result?.kernel_cmdline).toBe('console=ttyS0');
    expect(s.sessions.expecting(NODE)).toBe(false);
  });
});

describe('the agent daemon (main.ts)', () => {
  it('mounts /ramdisk/v1 next to the deploy callback on its HTTP boot server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-ramdisk-daemon-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    // No control plane: the channel keeps retrying in the background, the boot server serves.
    const config = parseConfig(
      testConfig({ url: 'http://127.0.0.1:9', extra: 'ramdisk:\n  heartbeat_interval: 2s' }).replace(
        /http:\n {2}root: \.\/http\n {2}address: 127\.0\.0\.1\n {2}port: 0/,
        `http:\n  root: ./http\n  address: 127.0.0.1\n  port: ${port}`,
      ),
      join(dir, 'config.yaml'),
    );
    expect(config.http.port).toBe(port);
    await writeCredential(config.stateDir, 'not-a-real-credential');
    const agent = await startAgent(
      { ...config, images: { ...config.images, enabled: false } },
      { log: silentLogger },
    );
    cleanups.push(() => agent.stop());
    const base = `http://127.0.0.1:${port}`;
    const heartbeat = await fetch(`${base}/ramdisk/v1`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ v: 1, type: 'heartbeat', session: 'unknown' }),
    });
    expect(heartbeat.status).toBe(401);
    expect(await heartbeat.json()).toEqual({ v: 1, type: 'error', error: 'unknown session' });
    // The deploy callback is still routed (a callback without its token is 400).
    expect((await fetch(`${base}/v1/callback/${NODE}`)).status).toBe(400);
    expect((await fetch(`${base}/ramdisk/v1`)).status).toBe(405);
  });
});
