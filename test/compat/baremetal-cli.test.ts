/**
 * The real `baremetal` CLI (python-ironicclient + python-openstackclient from PyPI, in
 * the project's venv) against the API, with `--os-auth-type http_basic`, as an operator
 * would use it. Each command is a real process; output is parsed from `-f json`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';

const run = promisify(execFile);
const BAREMETAL = join(import.meta.dirname, '..', '..', '.venv', 'bin', 'baremetal');

let api: TestApi;
beforeAll(async () => {
  if (!existsSync(BAREMETAL)) throw new Error(`${BAREMETAL} is missing: run 'npm run setup:venv'`);
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

async function baremetal(...args: string[]): Promise<string> {
  const { username, password } = api.admin;
  const { stdout } = await run(
    BAREMETAL,
    [
      '--os-auth-type',
      'http_basic',
      '--os-endpoint',
      api.url,
      '--os-username',
      username,
      '--os-password',
      password,
      ...args,
    ],
    { timeout: 60_000, env: { ...process.env, OS_CLOUD: '' } },
  );
  return stdout;
}

async function baremetalJson(...args: string[]): Promise<any> {
  return JSON.parse(await baremetal(...args, '-f', 'json'));
}

describe('baremetal CLI with http_basic', () => {
  let uuid: string;

  it('driver list shows every hardware type', async () => {
    const drivers = await baremetalJson('driver', 'list');
    expect(drivers.map((driver: { name: string }) => driver.name).sort()).toStrictEqual([
      'fake-hardware',
      'ipmi',
      'redfish',
    ]);
  });

  it('node create, list, list --long, show', async () => {
    const created = await baremetalJson('node', 'create', '--driver', 'fake-hardware', '--name', 'n1');
    uuid = created.uuid;
    expect(created).toMatchObject({
      name: 'n1',
      driver: 'fake-hardware',
      provision_state: 'enroll',
      conductor_group: api.site,
    });
    const listed = await baremetalJson('node', 'list');
    expect(listed).toContainEqual(expect.objectContaining({ uuid, name: 'n1', provision_state: 'enroll' }));
    const long = await baremetalJson('node', 'list', '--long');
    expect(long.find((node: { uuid: string }) => node.uuid === uuid)).toMatchObject({
      driver: 'fake-hardware',
      conductor_group: api.site,
    });
    const shown = await baremetalJson('node', 'show', 'n1');
    expect(shown.uuid).toBe(uuid);
  });

  it('node set --name/--driver-info/--property/--extra, then node unset', async () => {
    await baremetal(
      'node',
      'set',
      'n1',
      '--name',
      'n2',
      '--driver-info',
      'ipmi_password=s3cret',
      '--property',
      'cpus=4',
      '--extra',
      'rack=12',
    );
    const shown = await baremetalJson('node', 'show', 'n2');
    expect(shown.name).toBe('n2');
    expect(shown.driver_info.ipmi_password).toBe('******');
    expect(shown.properties.cpus).toBe(4);
    // the CLI parses values as JSON where it can, as with Ironic
    expect(shown.extra.rack).toBe(12);
    await baremetal('node', 'unset', 'n2', '--extra', 'rack', '--property', 'cpus');
    const unset = await baremetalJson('node', 'show', 'n2');
    expect(unset.extra).toStrictEqual({});
    expect(unset.properties).toStrictEqual({});
  });

  it('node maintenance set / unset', async () => {
    await baremetal('node', 'maintenance', 'set', 'n2', '--reason', 'PSU swap');
    expect(
      await baremetalJson('node', 'show', 'n2', '--fields', 'maintenance', 'maintenance_reason'),
    ).toStrictEqual({
      maintenance: true,
      maintenance_reason: 'PSU swap',
    });
    await baremetal('node', 'maintenance', 'unset', 'n2');
    expect((await baremetalJson('node', 'show', 'n2')).maintenance).toBe(false);
  });

  it('node add trait', async () => {
    await baremetal('node', 'add', 'trait', 'n2', 'CUSTOM_GPU');
    expect(
      (await baremetalJson('node', 'trait', 'list', 'n2')).map((row: { traits: string }) => row.traits),
    ).toStrictEqual(['CUSTOM_GPU']);
  });

  it('port create, list, delete', async () => {
    const port = await baremetalJson('port', 'create', '52:54:00:AA:BB:01', '--node', uuid);
    expect(port.address).toBe('52:54:00:aa:bb:01');
    expect(port.node_uuid).toBe(uuid);
    const ports = await baremetalJson('port', 'list');
    expect(ports).toContainEqual({ uuid: port.uuid, address: '52:54:00:aa:bb:01' });
    await baremetal('port', 'delete', port.uuid);
    expect(
      (await baremetalJson('port', 'list')).some((row: { uuid: string }) => row.uuid === port.uuid),
    ).toBe(false);
  });

  it('node delete', async () => {
    await baremetal('node', 'delete', 'n2');
    await expect(baremetal('node', 'show', 'n2')).rejects.toThrow(/could not be found/);
  });

  it('a wrong password is refused', async () => {
    await expect(
      run(
        BAREMETAL,
        [
          '--os-auth-type',
          'http_basic',
          '--os-endpoint',
          api.url,
          '--os-username',
          api.admin.username,
          '--os-password',
          'wrong',
          'node',
          'list',
        ],
        { timeout: 60_000 },
      ),
    ).rejects.toThrow();
  });
});
