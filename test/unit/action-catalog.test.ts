/**
 * The action catalog (`protocol/actions.ts`) against both ends: the agent registers
 * exactly the catalog's actions, each in the interface its family names, and every
 * command the conductor builds names a catalog action with args the agent's own
 * validation accepts (resolved through the registry as a running agent resolves it).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootActions } from '../../agent/boot/actions.ts';
import { CallbackTokens, withCallbackUrls } from '../../agent/boot/callback.ts';
import { BUILTIN_ACTIONS } from '../../agent/drivers/builtin.ts';
import {
  type ActionRegistry,
  BUILT_IN_HARDWARE,
  createDriver,
  DRIVER_NAMES,
  defaultDriverContext,
  defaultRegistry,
} from '../../agent/drivers/registry.ts';
import type { Action, DriverContext } from '../../agent/drivers/types.ts';
import { ramdiskActions, withRamdiskBoot } from '../../agent/ramdisk/actions.ts';
import { RamdiskSessions } from '../../agent/ramdisk/sessions.ts';
import type { VersionedNode } from '../../lambda/adapters/dynamo/node-repository.ts';
import type { Conductor, TaskSpec, TaskStep } from '../../lambda/conductor/conductor.ts';
import {
  startBootDeviceChange,
  startBootDeviceRead,
  startPowerChange,
} from '../../lambda/conductor/power.ts';
import { type FlowState, STEP_NAMES, stepCommand } from '../../lambda/conductor/provision.ts';
import type { CommandRecord } from '../../lambda/domain/commands/command.ts';
import type { Node } from '../../lambda/domain/nodes/node.ts';
import * as domainPower from '../../lambda/domain/power/power.ts';
import {
  ACTION_NAMES,
  ACTIONS,
  BOOT_DEVICES,
  isActionName,
  POWER_STATES,
  POWER_TARGETS,
  SUPPORTED_BOOT_DEVICES,
} from '../../protocol/actions.ts';

const UUID = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';
const IMAGE = '5b0c8a3e-8f0e-4c52-9d0a-6a1f1d2a3b4c';
const dir = mkdtempSync(join(tmpdir(), 'action-catalog-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sessions = new RamdiskSessions({ sweepIntervalMs: 0 });
/** The common actions `agent/main.ts` adds to the registry (the ramdisk's). */
const RAMDISK_ACTIONS = ramdiskActions(sessions);

/** The agent as `agent/main.ts` builds it: every driver, the boot actions taking a callback token. */
function agentEnvironment(): DriverContext {
  const httpBaseUrl = 'http://127.0.0.1:8088';
  const boot = withRamdiskBoot(
    bootActions({ httpBaseUrl, imagesDir: dir, tftpRoot: dir, httpRoot: dir }),
    sessions,
    { httpBaseUrl },
  );
  return {
    ...defaultDriverContext(),
    bootActions: withCallbackUrls(boot, httpBaseUrl, new CallbackTokens()),
  };
}

/** The registry of a running agent (`agent/main.ts`): the drivers', the common and the ramdisk actions. */
function agentRegistry(): ActionRegistry {
  const registry = defaultRegistry(DRIVER_NAMES, agentEnvironment());
  for (const action of RAMDISK_ACTIONS) registry.registerAction(action);
  return registry;
}

function node(over: Partial<Node>): Node {
  return {
    uuid: UUID,
    driver: 'ipmi',
    driver_info: { ipmi_address: '10.0.0.5', ipmi_username: 'admin', ipmi_password: 'secret' },
    power_interface: 'ipmitool',
    management_interface: 'ipmitool',
    boot_interface: 'ipxe',
    deploy_interface: 'ramdisk',
    provision_state: 'manageable',
    power_state: 'power off',
    target_power_state: null,
    reservation: null,
    instance_info: {},
    properties: {},
    ...over,
  } as unknown as Node;
}

const NODES = [
  node({}),
  node({
    driver: 'fake-hardware',
    driver_info: {},
    power_interface: 'fake',
    management_interface: 'fake',
    boot_interface: 'fake',
    deploy_interface: 'fake',
  }),
];

/** A command as the agent would receive it: a catalog action its registry runs with these args. */
function expectAgentAccepts(registry: ActionRegistry, step: Pick<TaskStep, 'action' | 'commandArgs'>) {
  expect(isActionName(step.action), step.action).toBe(true);
  if (!isActionName(step.action)) return;
  expect(ACTIONS[step.action].validate?.(step.commandArgs), step.action).toBeUndefined();
  const resolved = registry.resolve({ action: step.action, args: step.commandArgs });
  expect('action' in resolved ? resolved.action.name : resolved.error).toBe(step.action);
  if ('action' in resolved) expect(resolved.action.validate?.(step.commandArgs), step.action).toBeUndefined();
  // BMC credentials go to the BMC-facing actions only.
  expect('driver_info' in step.commandArgs, step.action).toBe(ACTIONS[step.action].bmc);
}

describe('the action catalog', () => {
  it('is what the agent registers: every action, and nothing else', () => {
    const registry = agentRegistry();
    expect([...registry.actionNames()].sort()).toEqual([...ACTION_NAMES].sort());
  });

  it("puts each action in the agent's interface its family names", () => {
    const env = agentEnvironment();
    const where = new Map<string, Set<string>>();
    const note = (action: Action, family: string) =>
      where.set(action.name, (where.get(action.name) ?? new Set()).add(family));
    for (const action of [...BUILTIN_ACTIONS, ...RAMDISK_ACTIONS]) note(action, 'common');
    for (const hardware of BUILT_IN_HARDWARE) {
      for (const [kind, iface] of Object.entries(createDriver(hardware, env).interfaces)) {
        for (const action of iface?.actions ?? []) note(action, kind);
      }
    }
    for (const name of ACTION_NAMES)
      expect([...(where.get(name) ?? [])], name).toEqual([ACTIONS[name].family]);
  });

  it('declares the BMC-facing actions as the power and management ones', () => {
    for (const name of ACTION_NAMES) {
      const { family, bmc } = ACTIONS[name];
      expect(bmc, name).toBe(family === 'power' || family === 'management');
    }
  });

  it('holds the value lists both ends use', () => {
    for (const state of POWER_STATES) expect(POWER_TARGETS).toContain(state);
    for (const devices of Object.values(SUPPORTED_BOOT_DEVICES)) {
      for (const device of devices) expect(BOOT_DEVICES).toContain(device);
    }
    // The domain's lists are the protocol's, not copies.
    expect(domainPower.POWER_TARGETS).toBe(POWER_TARGETS);
    expect(domainPower.BOOT_DEVICES).toBe(BOOT_DEVICES);
    expect(domainPower.supportedBootDevices(node({}))).toBe(SUPPORTED_BOOT_DEVICES.ipmitool);
  });

  it("validates args as the agent always has (the agent's messages)", () => {
    expect(ACTIONS.sleep.validate({ ms: 60_001 })).toBe('sleep: args.ms must be an integer from 0 to 60000');
    expect(ACTIONS['power.set'].validate({ target: 'up' })).toBe(
      'args.target must be one of power on, power off, rebooting, soft power off, soft rebooting',
    );
    expect(ACTIONS['power.set'].validate({ target: 'power on', timeout: 0 })).toBe(
      'args.timeout must be an integer from 1 to 3600 (seconds)',
    );
    expect(ACTIONS['management.set_boot_device'].validate({ boot_device: 'floppy' })).toBe(
      'Invalid boot device floppy specified.',
    );
  });
});

describe('the conductor sends catalog actions only', () => {
  const registry = agentRegistry();

  it('power and boot device tasks', async () => {
    const tasks: TaskSpec[] = [];
    const conductor = {
      startTask: async (found: VersionedNode, task: TaskSpec) => {
        tasks.push(task);
        return { node: found.node, command: {} as CommandRecord };
      },
    } as unknown as Conductor;
    for (const n of NODES) {
      const found = { node: n, version: 1 } as VersionedNode;
      for (const target of POWER_TARGETS) {
        await startPowerChange(conductor, found, { target, timeout: undefined }, null);
        await startPowerChange(conductor, found, { target, timeout: 30 }, null);
      }
      for (const device of domainPower.supportedBootDevices(n)) {
        await startBootDeviceChange(conductor, found, { boot_device: device, persistent: true }, null);
      }
      await startBootDeviceRead(conductor, found, null);
    }
    expect(new Set(tasks.map((t) => t.action))).toEqual(
      new Set(['power.set', 'management.set_boot_device', 'management.get_boot_device']),
    );
    for (const task of tasks) expectAgentAccepts(registry, task);
  });

  it('every step of the provision flows', () => {
    const flow: FlowState = {
      flow: 'deploy',
      steps: STEP_NAMES,
      index: 0,
      finish: ['done'],
      user: null,
      boot: { macs: ['52:54:00:12:34:56'], boot_mode: 'uefi', kernel: IMAGE, ramdisk: IMAGE },
      callbackToken: 'a'.repeat(32),
    };
    const sent = new Set<string>();
    for (const n of NODES) {
      for (const name of STEP_NAMES) {
        const step = stepCommand(n, flow, name);
        if (!step) continue;
        sent.add(step.action);
        expectAgentAccepts(registry, step);
      }
    }
    expect([...sent].sort()).toEqual([
      'boot.clean',
      'boot.prepare',
      'management.get_boot_device',
      'management.set_boot_device',
      'power.get',
      'power.set',
      'ramdisk.run_step',
      'ramdisk.wait',
    ]);
  });

  it('names no action outside the catalog in its sources', () => {
    const files = (root: string): string[] =>
      readdirSync(root, { withFileTypes: true, recursive: true })
        .filter((e) => e.isFile() && e.name.endsWith('.ts'))
        .map((e) => join(e.parentPath, e.name));
    const families = [...new Set(ACTION_NAMES.map((name) => name.split('.')[0]))].filter((f) =>
      ACTION_NAMES.some((name) => name.startsWith(`${f}.`)),
    );
    const literal = new RegExp(`['"\`]((?:${families.join('|')})\\.[a-z_]+)['"\`]`, 'g');
    // Dotted names that look like an action of a family but are not one: the inventory's
    // `boot.pxe_interface` field (Ironic's inventory, lambda/domain/inspection/).
    const notActions = new Set(['boot.pxe_interface']);
    const unknown: string[] = [];
    for (const file of files(join(import.meta.dirname, '../../lambda'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(literal)) {
        const name = match[1] as string;
        if (!isActionName(name) && !notActions.has(name)) unknown.push(`${file}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
  });
});
