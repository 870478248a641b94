/**
 * `cli/metalplane.ts` spawned against the test API (HTTP Basic) for every command group:
 * JSON and table outputs, exit codes (0, 1 with the API's message, 2 for usage errors),
 * clouds.yaml / environment / token configuration, and `--debug` without secrets.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { metalplaneCli, osEnv } from '../support/cli.ts';

let api: TestApi;
let dir: string;

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  dir = await mkdtemp(join(tmpdir(), 'metalplane-cli-commands-'));
});
afterAll(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The CLI with only the environment given (HOME in the temporary directory: no stray clouds.yaml). */
const bare = metalplaneCli(
  () => ({ HOME: dir }),
  () => dir,
);
const run = bare.run;

/** As the admin, through OS_* variables. */
const admin = metalplaneCli(
  () => ({ HOME: dir, ...osEnv(api) }),
  () => dir,
);
const cli = (...args: string[]) => admin.run(args);
const json = admin.json;

describe('metalplane node', () => {
  let uuid: string;

  it('create, show and list: JSON keyed by field names, tables headed by labels', async () => {
    const created = await json(
      'node',
      'create',
      '--driver',
      'fake-hardware',
      '--name',
      'c1',
      '--property',
      'cpus=8',
      '--resource-class',
      'gpu',
    );
    uuid = created.uuid;
    expect(created).toMatchObject({
      name: 'c1',
      driver: 'fake-hardware',
      provision_state: 'enroll',
      properties: { cpus: 8 },
      conductor_group: api.site,
    });
    expect(created).not.toHaveProperty('links');
    expect(created).not.toHaveProperty('ports');

    const shown = await json('node', 'show', 'c1');
    expect(shown.uuid).toBe(uuid);

    const listed = await json('node', 'list');
    expect(listed).toContainEqual({
      uuid,
      name: 'c1',
      instance_uuid: null,
      power_state: null,
      provision_state: 'enroll',
      maintenance: false,
    });

    const table = await cli('node', 'list');
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\+-+\+/);
    expect(lines[1]).toMatch(
      /^\| UUID +\| Name +\| Instance UUID \| Power State \| Provisioning State \| Maintenance \|$/,
    );
    expect(table.stdout).toMatch(
      new RegExp(`\\| ${uuid} \\| c1 +\\| None +\\| None +\\| enroll +\\| False +\\|`),
    );
    // every line of a table is as wide as the others
    expect(new Set(lines.map((line) => line.length)).size).toBe(1);

    const fieldTable = await cli('node', 'show', 'c1', '-c', 'name', '-c', 'Provisioning State');
    expect(fieldTable.stdout).toMatch(/\| Field +\| Value +\|/);
    expect(fieldTable.stdout).toMatch(/\| name +\| c1 +\|/);
    expect(fieldTable.stdout).toMatch(/\| provision_state \| enroll +\|/);
  });

  it('list filters, -c, value/csv/yaml formats and --noindent', async () => {
    expect((await json('node', 'list', '--resource-class', 'gpu')).map((n: any) => n.name)).toStrictEqual([
      'c1',
    ]);
    expect(await json('node', 'list', '--resource-class', 'none-such')).toStrictEqual([]);
    expect(await json('node', 'list', '--provision-state', 'available')).toStrictEqual([]);
    expect((await json('node', 'list', '--driver', 'fake-hardware', '--no-maintenance')).length).toBe(1);
    const value = await cli('node', 'list', '-c', 'Name', '-c', 'provision_state', '-f', 'value');
    expect(value.stdout).toBe('c1 enroll\n');
    const csv = await cli('node', 'list', '-c', 'uuid', '-c', 'maintenance', '-f', 'csv');
    expect(csv.stdout).toBe(`"uuid","maintenance"\n"${uuid}","False"\n`);
    const yaml = await cli('node', 'show', 'c1', '-c', 'name', '-c', 'properties', '-f', 'yaml');
    expect(yaml.stdout).toBe('name: c1\nproperties:\n  cpus: 8\n');
    const compact = await cli('node', 'show', 'c1', '-c', 'name', '-f', 'json', '--noindent');
    expect(compact.stdout).toBe('{"name":"c1"}\n');
    const long = await json('node', 'list', '--long');
    expect(long[0]).toMatchObject({ uuid, driver: 'fake-hardware', resource_class: 'gpu' });
    expect((await json('node', 'list', '--limit', '1', '--sort', 'name:desc')).length).toBe(1);
  });

  it('set and unset properties, driver info, instance info and extra (JSON patch)', async () => {
    const set = await cli(
      'node',
      'set',
      'c1',
      '--name',
      'c2',
      '--property',
      'memory_mb=1024',
      '--driver-info',
      'ipmi_password=s3cret',
      '--instance-info',
      'image_source=http://example.com/a.img',
      '--extra',
      'rack=12',
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('');
    const shown = await json('node', 'show', 'c2');
    expect(shown).toMatchObject({
      name: 'c2',
      properties: { cpus: 8, memory_mb: 1024 },
      driver_info: { ipmi_password: '******' },
      instance_info: { image_source: 'http://example.com/a.img' },
      extra: { rack: 12 },
    });
    const unset = await cli(
      'node',
      'unset',
      'c2',
      '--extra',
      'rack',
      '--property',
      'cpus',
      '--instance-info',
      'image_source',
    );
    expect(unset.code, unset.stderr).toBe(0);
    const after = await json('node', 'show', 'c2');
    expect(after.extra).toStrictEqual({});
    expect(after.properties).toStrictEqual({ memory_mb: 1024 });
    expect(after.instance_info).toStrictEqual({});
  });

  it('maintenance, traits, validate, history', async () => {
    expect((await cli('node', 'maintenance', 'set', 'c2', '--reason', 'PSU swap')).code).toBe(0);
    expect(await json('node', 'show', 'c2', '-c', 'maintenance', '-c', 'maintenance_reason')).toStrictEqual({
      maintenance: true,
      maintenance_reason: 'PSU swap',
    });
    expect((await json('node', 'list', '--maintenance')).map((n: any) => n.name)).toStrictEqual(['c2']);
    expect((await cli('node', 'maintenance', 'unset', 'c2')).code).toBe(0);
    expect((await json('node', 'show', 'c2')).maintenance).toBe(false);

    expect((await cli('node', 'trait', 'add', 'c2', 'CUSTOM_GPU', 'CUSTOM_FAST')).code).toBe(0);
    expect((await json('node', 'trait', 'list', 'c2')).map((row: any) => row.traits).sort()).toStrictEqual([
      'CUSTOM_FAST',
      'CUSTOM_GPU',
    ]);
    expect((await cli('node', 'trait', 'remove', 'c2', 'CUSTOM_FAST')).code).toBe(0);
    expect(await json('node', 'trait', 'list', 'c2')).toStrictEqual([{ traits: 'CUSTOM_GPU' }]);

    const validation = await json('node', 'validate', 'c2');
    expect(validation).toContainEqual({ Interface: 'power', Result: true, Reason: '' });

    const history = await json('node', 'history', 'list', 'c2');
    expect(Array.isArray(history)).toBe(true);
  });

  it('provision verbs send the target; a refused transition exits 1 with the API message', async () => {
    // enroll → provide is not a transition: the API's own words come back on stderr.
    const refused = await cli('node', 'provide', 'c2', '--wait', '5');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\(HTTP 400\)/);
    expect(refused.stdout).toBe('');
  });

  it('errors: 404 exits 1 with the API message; usage errors exit 2', async () => {
    const missing = await cli('node', 'show', 'no-such-node');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^Node no-such-node could not be found\. \(HTTP 404\)/);
    expect(missing.stdout).toBe('');

    expect((await cli('node', 'frobnicate')).code).toBe(2);
    expect((await cli('node', 'show')).code).toBe(2);
    expect((await cli('node', 'list', '-f', 'xml')).code).toBe(2);
    expect((await cli('node', 'list', '--limit', 'many')).code).toBe(2);
    const column = await cli('node', 'list', '-c', 'nope');
    expect(column.code).toBe(2);
    expect(column.stderr).toContain('No such column: nope');
    const nothing = await cli('node', 'set', 'c2');
    expect(nothing.code).toBe(2);
    const help = await cli('node', 'list', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--provision-state');
  });

  it('port create, list, show, delete', async () => {
    const port = await json('port', 'create', '52:54:00:CC:DD:01', '--node', uuid, '--extra', 'switch=sw1');
    expect(port).toMatchObject({ address: '52:54:00:cc:dd:01', node_uuid: uuid, extra: { switch: 'sw1' } });
    expect(await json('port', 'list', '--node', uuid)).toStrictEqual([
      { uuid: port.uuid, address: '52:54:00:cc:dd:01' },
    ]);
    expect((await cli('port', 'list')).stdout).toMatch(/\| UUID +\| Address +\|/);
    expect((await json('port', 'show', port.uuid)).address).toBe('52:54:00:cc:dd:01');
    expect((await json('port', 'show', '52:54:00:cc:dd:01', '--address')).uuid).toBe(port.uuid);
    const deleted = await cli('port', 'delete', port.uuid);
    expect(deleted.stdout.trim()).toBe(`Deleted port ${port.uuid}`);
    expect((await cli('port', 'show', port.uuid)).code).toBe(1);
  });

  it('node delete (several; one missing → exit 1, the others deleted)', async () => {
    await json('node', 'create', '--driver', 'fake-hardware', '--name', 'c3');
    const result = await cli('node', 'delete', 'c2', 'no-such-node', 'c3');
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('Deleted node c2\nDeleted node c3\n');
    expect(result.stderr).toContain('no-such-node could not be found');
    expect(await json('node', 'list')).toStrictEqual([]);
  });
});

describe('metalplane driver, conductor', () => {
  it('driver list and show', async () => {
    const drivers = await json('driver', 'list');
    expect(drivers.map((driver: any) => driver.name).sort()).toStrictEqual([
      'fake-hardware',
      'ipmi',
      'redfish',
    ]);
    expect(drivers[0]).toHaveProperty('hosts');
    expect((await cli('driver', 'list')).stdout).toMatch(/\| Name +\| Supported driver\(s\) \|/);
    const shown = await json('driver', 'show', 'fake-hardware');
    expect(shown.name).toBe('fake-hardware');
    expect(typeof shown.enabled_power_interfaces).toBe('string');
  });

  it('conductor list (no agent: empty)', async () => {
    expect(await json('conductor', 'list')).toStrictEqual([]);
    const table = await cli('conductor', 'list');
    expect(table).toMatchObject({ code: 0, stdout: '' });
  });
});

describe('metalplane site, agent, webhook, audit', () => {
  it('site create, list, show, agent-token, delete', async () => {
    const created = await json('site', 'create', 'fra1', '--description', 'Frankfurt', '--location', 'DE');
    expect(created).toMatchObject({ name: 'fra1', description: 'Frankfurt', location: 'DE', default: false });
    const sites = await json('site', 'list');
    expect(sites).toContainEqual({ name: 'fra1', description: 'Frankfurt', location: 'DE', default: false });
    expect(sites).toContainEqual(expect.objectContaining({ name: api.site, default: true }));
    expect((await json('site', 'show', 'fra1')).location).toBe('DE');
    const token = await json('site', 'agent-token', 'fra1');
    expect(token.token).toMatch(/^mpe_/);
    expect(token.site).toBe('fra1');
    expect((await cli('site', 'create', 'fra1')).code).toBe(1);
    expect((await cli('site', 'delete', 'fra1')).stdout.trim()).toBe('Deleted site fra1');
    const gone = await cli('site', 'show', 'fra1');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/Site fra1 could not be found\. \(HTTP 404\)/);
  });

  it('agent list (none), revoke of an unknown agent', async () => {
    expect(await json('agent', 'list')).toStrictEqual([]);
    expect((await cli('agent', 'show', 'ghost')).code).toBe(1);
  });

  it('webhook create (secret shown once), list, delete', async () => {
    const created = await json(
      'webhook',
      'create',
      'http://127.0.0.1:9/hook',
      '--event-type',
      'node.provision_state.changed',
    );
    expect(created.secret).toMatch(/^whsec_/);
    const listed = await json('webhook', 'list');
    expect(listed).toStrictEqual([
      {
        id: created.id,
        url: 'http://127.0.0.1:9/hook',
        event_types: ['node.provision_state.changed'],
        enabled: true,
        description: null,
      },
    ]);
    expect((await cli('webhook', 'delete', created.id)).code).toBe(0);
    expect(await json('webhook', 'list')).toStrictEqual([]);
  });

  it('audit list answers (JSON list) and refuses a bad filter with the API message', async () => {
    expect(Array.isArray(await json('audit', 'list', '--limit', '5'))).toBe(true);
    const bad = await cli('audit', 'list', '--resource-type', 'bogus');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Invalid value for resource_type: bogus.*\(HTTP 400\)/);
  });
});

describe('configuration', () => {
  const cloudsYaml = (password: string) =>
    [
      'clouds:',
      '  metalplane-local:',
      '    auth_type: http_basic',
      '    auth:',
      `      username: ${api.admin.username}`,
      `      password: ${password}`,
      `    baremetal_endpoint_override: ${api.url}`,
      '',
    ].join('\n');

  it('OS_CLOUD with ./clouds.yaml; OS_CLIENT_CONFIG_FILE; ~/.config/openstack/clouds.yaml', async () => {
    const here = join(dir, 'cwd');
    await mkdir(here, { recursive: true });
    await writeFile(join(here, 'clouds.yaml'), cloudsYaml(api.admin.password));
    const fromCwd = await run(
      ['driver', 'list', '-f', 'value', '-c', 'name'],
      { OS_CLOUD: 'metalplane-local' },
      here,
    );
    expect(fromCwd.code, fromCwd.stderr).toBe(0);
    expect(fromCwd.stdout).toContain('fake-hardware');

    const file = join(dir, 'elsewhere.yaml');
    await writeFile(file, cloudsYaml(api.admin.password));
    const fromFile = await run(['--os-cloud', 'metalplane-local', 'driver', 'list', '-f', 'json'], {
      OS_CLIENT_CONFIG_FILE: file,
    });
    expect(fromFile.code, fromFile.stderr).toBe(0);

    await mkdir(join(dir, '.config', 'openstack'), { recursive: true });
    await writeFile(join(dir, '.config', 'openstack', 'clouds.yaml'), cloudsYaml(api.admin.password));
    const fromHome = await run(['driver', 'list'], { OS_CLOUD: 'metalplane-local' });
    expect(fromHome.code, fromHome.stderr).toBe(0);

    const unknown = await run(['driver', 'list'], { OS_CLOUD: 'nope' });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('cloud nope is not in');
  });

  it('precedence: option > environment > clouds.yaml', async () => {
    const file = join(dir, 'wrong-password.yaml');
    await writeFile(file, cloudsYaml('wrong-password'));
    const env = { OS_CLIENT_CONFIG_FILE: file, OS_CLOUD: 'metalplane-local' };
    const denied = await run(['node', 'list'], env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/\(HTTP 401\)/);
    expect(denied.stderr).not.toContain('wrong-password');
    const byEnv = await run(['node', 'list'], { ...env, OS_PASSWORD: api.admin.password });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const byOption = await run(['--os-password', api.admin.password, 'node', 'list'], {
      ...env,
      OS_PASSWORD: 'also-wrong',
    });
    expect(byOption.code, byOption.stderr).toBe(0);
    const noneAuth = await run(['--os-auth-type', 'none', 'node', 'list'], env);
    expect(noneAuth.code).toBe(1);
    expect(noneAuth.stderr).toMatch(/\(HTTP 401\)/);
  });

  it('the reported bug: OS_CLOUD=metalplane-local metalplane image upload uses the cloud credentials', async () => {
    const file = join(dir, 'clouds-image.yaml');
    await writeFile(file, cloudsYaml(api.admin.password));
    const iso = join(dir, 'small.iso');
    await writeFile(iso, randomBytes(40_000));
    const result = await run(['image', 'upload', 'cloud-iso', '--iso', iso, '--no-progress'], {
      OS_CLIENT_CONFIG_FILE: file,
      OS_CLOUD: 'metalplane-local',
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^image cloud-iso \([0-9a-f-]{36}\): active$/m);
  }, 60_000);

  it('token authentication (--os-token, OS_TOKEN)', async () => {
    const minted = await api.call('POST', `/v1/users/${api.admin.username}/tokens`, { body: {} });
    expect(minted.status).toBe(201);
    const token = minted.body.token as string;
    const byOption = await run(['--os-endpoint', api.url, '--os-token', token, 'node', 'list', '-f', 'json']);
    expect(byOption.code, byOption.stderr).toBe(0);
    const byEnv = await run(['node', 'list'], {
      OS_ENDPOINT: api.url,
      OS_TOKEN: token,
      OS_AUTH_TYPE: 'token',
    });
    expect(byEnv.code, byEnv.stderr).toBe(0);
    const bad = await run(['node', 'list'], { OS_ENDPOINT: api.url, OS_TOKEN: 'mpt_bogus' });
    expect(bad.code).toBe(1);
    const missing = await run(['--os-auth-type', 'token', 'node', 'list'], { OS_ENDPOINT: api.url });
    expect(missing.code).toBe(2);
  });

  it('microversion: negotiated from GET /, or asked for; --debug shows requests, never secrets', async () => {
    const debug = await cli('--debug', 'node', 'list');
    expect(debug.code, debug.stderr).toBe(0);
    expect(debug.stderr).toMatch(/REQ: GET http:\/\/127\.0\.0\.1:\d+\/\n/);
    expect(debug.stderr).toMatch(/RESP: GET http:\/\/127\.0\.0\.1:\d+\/v1\/nodes 200/);
    expect(debug.stderr).toContain('negotiated API version 1.82');
    expect(debug.stderr).not.toContain(api.admin.password);
    expect(debug.stderr).not.toContain(
      Buffer.from(`${api.admin.username}:${api.admin.password}`).toString('base64'),
    );

    const older = await cli('--debug', '--os-baremetal-api-version', '1.50', 'node', 'list');
    expect(older.code, older.stderr).toBe(0);
    expect(older.stderr).toContain('X-OpenStack-Ironic-API-Version: 1.50');
    const unsupported = await cli('--os-baremetal-api-version', '1.99', 'node', 'list');
    expect(unsupported.code).toBe(1);
    expect(unsupported.stderr).toContain('not supported by the server');

    const unreachable = await run(['node', 'list'], { OS_ENDPOINT: 'http://127.0.0.1:9' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('Unable to establish connection');
  });
});
