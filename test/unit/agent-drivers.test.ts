/**
 * Hardware types as modules (`agent/drivers/`): the built-in ones plus extra modules a
 * caller (a test) brings, resolved by a command's `args.driver`, each with its power
 * probe for the sync; unknown names and two modules of one name are refused, by the
 * registry and by `startAgent` before it touches its state directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config.ts';
import {
  BUILT_IN_HARDWARE,
  createRegistry,
  DRIVER_NAMES,
  defaultDriverContext,
} from '../../agent/drivers/registry.ts';
import type { Action, HardwareModule, LoadedDriver, PowerProbe } from '../../agent/drivers/types.ts';
import { silentLogger } from '../../agent/log.ts';
import { startAgent } from '../../agent/main.ts';
import { PowerSync, type SyncNode } from '../../agent/power/sync.ts';
import { ensureStateDir, writeCredential } from '../../agent/state.ts';
import { testConfig, waitFor } from '../../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';
import type { AgentMessage } from '../../protocol/messages.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** A test-only hardware type: one action (`test.ping`), a probe answering `power on`, a close counter. */
function testHardware(name = 'test-hw') {
  const seen = { created: 0, closed: 0, probed: [] as string[] };
  const ping: Action = {
    name: 'test.ping',
    description: 'answers {pong: driver}',
    run: async () => ({ pong: name }),
  };
  const powerProbe: PowerProbe = async (node) => {
    seen.probed.push(node.uuid);
    return 'power on';
  };
  const module: HardwareModule = {
    name,
    create: (): LoadedDriver => {
      seen.created++;
      return {
        name,
        interfaces: { power: { name: 'test', actions: [ping] } },
        powerProbe,
        close: () => {
          seen.closed++;
        },
      };
    },
  };
  return { module, seen, powerProbe };
}

const command = (action: string, args: Record<string, unknown>) => ({ action, args });

describe('the hardware registry', () => {
  it('knows the built-in hardware types by the names the config may list', () => {
    expect(DRIVER_NAMES).toEqual(BUILT_IN_HARDWARE.map((m) => m.name));
    expect([...DRIVER_NAMES].sort()).toEqual(['fake-hardware', 'ipmi', 'redfish']);
  });

  it('resolves an extra module by args.driver, and only through it', () => {
    const { module, seen } = testHardware();
    const registry = createRegistry(['test-hw', 'fake-hardware'], defaultDriverContext(), [module]);
    expect(seen.created).toBe(1);
    expect(registry.driverNames()).toEqual(['test-hw', 'fake-hardware']);
    const resolved = registry.resolve(command('test.ping', { driver: 'test-hw' }));
    expect('action' in resolved && resolved.action.name).toBe('test.ping');
    // Common actions stay reachable through the extra driver; its own action is not common.
    expect('action' in registry.resolve(command('noop', { driver: 'test-hw' }))).toBe(true);
    expect(registry.resolve(command('test.ping', {}))).toEqual({ error: 'unknown action test.ping' });
    expect(registry.resolve(command('test.ping', { driver: 'fake-hardware' }))).toEqual({
      error: 'unknown action test.ping for driver fake-hardware',
    });
  });

  it('adds the boot actions to an extra module as to the built-in ones', () => {
    const { module } = testHardware();
    const boot: Action = { name: 'boot.test', description: 'boot', run: async () => ({}) };
    const registry = createRegistry(['test-hw'], defaultDriverContext({ bootActions: [boot] }), [module]);
    const resolved = registry.resolve(command('boot.test', { driver: 'test-hw' }));
    expect('action' in resolved && resolved.action).toBe(boot);
  });

  it("hands the power sync each enabled driver's probe, and closes the drivers", async () => {
    const { module, seen, powerProbe } = testHardware();
    const registry = createRegistry(['test-hw', 'fake-hardware'], defaultDriverContext(), [module]);
    expect(registry.powerProbe('test-hw')).toBe(powerProbe);
    expect(registry.powerProbe('fake-hardware')).toBeTypeOf('function');
    expect(registry.powerProbe('ipmi')).toBeUndefined(); // built in, but not enabled

    const node = (uuid: string, driver: string): SyncNode => ({
      uuid,
      driver,
      driver_info: {},
      power_state: 'power off',
      target_power_state: null,
      reservation: null,
      fault: null,
      sync: true,
    });
    const sent: AgentMessage[] = [];
    const sync = new PowerSync({
      intervalMs: 60_000,
      concurrency: 2,
      probeTimeoutMs: 1000,
      listNodes: async () => [
        node('n-test', 'test-hw'),
        node('n-fake', 'fake-hardware'),
        node('n-ipmi', 'ipmi'),
      ],
      probeFor: (driver) => registry.powerProbe(driver),
      send: async (message) => {
        sent.push(message);
      },
      log: silentLogger,
    });
    const stats = await sync.sweep();
    expect(seen.probed).toEqual(['n-test']);
    expect(stats.probed).toBe(2); // test-hw and fake-hardware; ipmi is not driven here
    const reports = sent.flatMap((m) => (m.type === 'power_report' ? m.reports : []));
    expect(reports).toEqual([expect.objectContaining({ node: 'n-test', power_state: 'power on' })]);

    registry.close();
    expect(seen.closed).toBe(1);
  });

  it('refuses unknown names, naming them and the known ones', () => {
    const { module, seen } = testHardware();
    expect(() => createRegistry(['fake-hardware', 'idrac'], defaultDriverContext(), [module])).toThrow(
      'unknown driver "idrac" (known: fake-hardware, ipmi, redfish, test-hw)',
    );
    expect(() => createRegistry(['test-hw'])).toThrow(
      'unknown driver "test-hw" (known: fake-hardware, ipmi, redfish)',
    );
    expect(seen.created).toBe(0);
  });

  it('refuses two modules of one name, an extra shadowing a built-in included', () => {
    const a = testHardware('twin');
    const b = testHardware('twin');
    expect(() => createRegistry(['fake-hardware'], defaultDriverContext(), [a.module, b.module])).toThrow(
      'hardware type twin defined twice',
    );
    const shadow = testHardware('ipmi');
    expect(() => createRegistry(['ipmi'], defaultDriverContext(), [shadow.module])).toThrow(
      'hardware type ipmi defined twice',
    );
    expect(a.seen.created + b.seen.created + shadow.seen.created).toBe(0);
  });

  it('refuses a module whose driver is named otherwise', () => {
    const { module } = testHardware('inner');
    const liar: HardwareModule = { name: 'outer', create: module.create };
    expect(() => createRegistry(['outer'], defaultDriverContext(), [liar])).toThrow(
      'hardware type outer created a driver named inner',
    );
  });
});

describe('startAgent with extra hardware', () => {
  async function setup() {
    const dir = mkdtempSync(join(tmpdir(), 'agent-drivers-'));
    const cp = await new FakeControlPlane().start();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => cp.close());
    const config = parseConfig(
      testConfig({ url: cp.url, websocketUrl: cp.websocketUrl, extra: 'power_sync:\n  enabled: false' }),
      join(dir, 'config.yaml'),
    );
    await ensureStateDir(config.stateDir);
    await writeCredential(config.stateDir, cp.credential);
    return { cp, config };
  }

  it('runs a command for a test-only hardware type named in drivers', async () => {
    const { cp, config } = await setup();
    const { module, seen } = testHardware();
    const agent = await startAgent(
      { ...config, drivers: ['test-hw', 'fake-hardware'] },
      { log: silentLogger, hardware: [module] },
    );
    cleanups.push(() => agent.stop());
    const hello = await waitFor(() => cp.messages('hello')[0], 'hello');
    expect(hello.drivers).toEqual(['test-hw', 'fake-hardware']);
    cp.enqueue({
      id: 'ping-1',
      node: 'node-1',
      action: 'test.ping',
      args: { driver: 'test-hw' },
      deadline: new Date(Date.now() + 30_000).toISOString(),
    });
    const [result] = await waitFor(() => cp.results('ping-1').length === 1 && cp.results('ping-1'), 'result');
    expect(result).toMatchObject({ status: 'succeeded', result: { pong: 'test-hw' } });
    await agent.stop();
    expect(seen.closed).toBe(1);
  });

  it('refuses an unknown driver, or two modules of one name, before touching the state directory', async () => {
    const { config } = await setup();
    const { module } = testHardware();
    await expect(startAgent({ ...config, drivers: ['test-hw'] }, { log: silentLogger })).rejects.toThrow(
      `${config.file}:drivers: unknown driver "test-hw" (known: fake-hardware, ipmi, redfish)`,
    );
    await expect(
      startAgent(
        { ...config, drivers: ['fake-hardware'] },
        { log: silentLogger, hardware: [module, module] },
      ),
    ).rejects.toThrow('hardware type test-hw defined twice');
    // Nothing was left locked: a valid start still works.
    const agent = await startAgent(
      { ...config, drivers: ['test-hw'] },
      { log: silentLogger, hardware: [module] },
    );
    await agent.stop();
  });
});
