/**
 * One scripted scenario run twice against the same API: with `metalplane` and with the
 * real `baremetal` CLI (python-ironicclient from the project's venv, as test/compat does).
 * Their `-f json` outputs must be the same once UUIDs, names and timestamps are
 * normalized; so must their exit codes and error messages.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';

const root = new URL('../..', import.meta.url).pathname;
const BAREMETAL = join(root, '.venv', 'bin', 'baremetal');
const exec = promisify(execFile);

let api: TestApi;
beforeAll(async () => {
  if (!existsSync(BAREMETAL)) throw new Error(`${BAREMETAL} is missing: run 'npm run setup:venv'`);
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}
type Tool = (...args: string[]) => Promise<Run>;

const auth = () => [
  '--os-auth-type',
  'http_basic',
  '--os-endpoint',
  api.url,
  '--os-username',
  api.admin.username,
  '--os-password',
  api.admin.password,
];

const baremetal: Tool = async (...args) => {
  try {
    const { stdout, stderr } = await exec(BAREMETAL, [...auth(), ...args], {
      timeout: 60_000,
      env: { ...process.env, OS_CLOUD: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
};

const metalplane: Tool = async (...args) => {
  const run = await runCli([...auth(), ...args], { HOME: root });
  return { ...run, code: run.code ?? -1 };
};

const TIMESTAMPS = new Set(['created_at', 'updated_at', 'provision_updated_at']);

/** UUIDs → their role, the run's prefix → P, timestamps → T (when set). */
function normalize(value: unknown, names: Map<string, string>): unknown {
  if (typeof value === 'string') {
    let text = value;
    for (const [from, to] of names) text = text.replaceAll(from, to);
    return text;
  }
  if (Array.isArray(value)) return value.map((item) => normalize(item, names));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        TIMESTAMPS.has(key) && item !== null ? 'T' : normalize(item, names),
      ]),
    );
  }
  return value;
}

/** The scenario; returns each step's normalized JSON (or exit code and message). */
async function scenario(tool: Tool, prefix: string): Promise<Record<string, unknown>> {
  const steps: Record<string, unknown> = {};
  const names = new Map<string, string>();
  const json = async (step: string, ...args: string[]) => {
    const result = await tool(...args, '-f', 'json');
    expect(result.code, `${step}: ${result.stderr}`).toBe(0);
    return JSON.parse(result.stdout);
  };
  const quiet = async (step: string, ...args: string[]) => {
    const result = await tool(...args);
    expect(result.code, `${step}: ${result.stderr}`).toBe(0);
  };
  const node = `${prefix}-n1`;
  const created = await json(
    'node create',
    'node',
    'create',
    '--driver',
    'fake-hardware',
    '--name',
    node,
    '--property',
    'cpus=4',
    '--extra',
    'rack=12',
    '--driver-info',
    'ipmi_address=10.0.0.1',
  );
  names.set(created.uuid, 'NODE');
  names.set(prefix, 'P');
  steps['node create'] = created;
  steps['node show'] = await json('node show', 'node', 'show', node);
  steps['node show --fields'] = await json(
    'node show --fields',
    'node',
    'show',
    node,
    '--fields',
    'name',
    'extra',
  );
  await quiet(
    'node set',
    'node',
    'set',
    node,
    '--property',
    'memory_mb=2048',
    '--driver-info',
    'ipmi_password=s3cret',
    '--extra',
    'rack=13',
    '--instance-info',
    'image_source=http://example.com/i.img',
  );
  steps['node set → show'] = await json('node show', 'node', 'show', node);
  await quiet('node unset', 'node', 'unset', node, '--extra', 'rack', '--property', 'cpus');
  steps['node unset → show'] = await json('node show', 'node', 'show', node);
  await quiet('maintenance set', 'node', 'maintenance', 'set', node, '--reason', 'PSU swap');
  const mine = (rows: Array<{ uuid: string }>) => rows.filter((row) => row.uuid === created.uuid);
  steps['node list'] = mine(await json('node list', 'node', 'list'));
  steps['node list --long'] = mine(await json('node list --long', 'node', 'list', '--long'));
  steps['node list --maintenance'] = mine(await json('node list', 'node', 'list', '--maintenance'));
  await quiet('maintenance unset', 'node', 'maintenance', 'unset', node);
  const mac = prefix === 'qq-mp' ? '52:54:00:00:00:01' : '52:54:00:00:00:02';
  const port = await json(
    'port create',
    'port',
    'create',
    mac,
    '--node',
    created.uuid,
    '--extra',
    'switch=sw1',
  );
  names.set(port.uuid, 'PORT');
  names.set(mac, 'MAC');
  steps['port create'] = port;
  steps['port show'] = await json('port show', 'port', 'show', port.uuid);
  steps['port list'] = mine(await json('port list', 'port', 'list', '--node', created.uuid));
  steps['port list --long'] = mine(
    await json('port list --long', 'port', 'list', '--long', '--node', created.uuid),
  );
  await quiet('node add trait', 'node', 'add', 'trait', node, 'CUSTOM_GPU', 'CUSTOM_FAST');
  await quiet('node remove trait', 'node', 'remove', 'trait', node, 'CUSTOM_FAST');
  steps['node trait list'] = await json('node trait list', 'node', 'trait', 'list', node);
  steps['driver list'] = await json('driver list', 'driver', 'list');
  steps['driver show'] = await json('driver show', 'driver', 'show', 'fake-hardware');
  const missing = await tool('node', 'show', `${prefix}-missing`);
  steps['node show (missing)'] = {
    code: missing.code,
    message: missing.stderr
      .trim()
      .split('\n')
      .at(-1)
      ?.replace(/ \(Request-ID: [^)]*\)$/, ''),
  };
  await quiet('port delete', 'port', 'delete', port.uuid);
  await quiet('node delete', 'node', 'delete', node);
  steps['node list (after delete)'] = mine(await json('node list', 'node', 'list'));
  return normalize(steps, names) as Record<string, unknown>;
}

describe('metalplane and baremetal give the same -f json', () => {
  it('node create/show/set/unset/list, port create/show/list, driver, errors', async () => {
    const ours = await scenario(metalplane, 'qq-mp');
    const theirs = await scenario(baremetal, 'qq-bm');
    for (const step of Object.keys(theirs)) {
      expect({ step, output: ours[step] }).toStrictEqual({ step, output: theirs[step] });
    }
    expect(Object.keys(ours)).toStrictEqual(Object.keys(theirs));
  }, 240_000);
});
