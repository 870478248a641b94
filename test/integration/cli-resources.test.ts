/**
 * `cli/metalplane.ts` spawned against the test API (HTTP Basic) for the groups beyond
 * nodes and ports: port group, chassis, allocation, deploy template (python-ironicclient's
 * columns and JSON), user and token (Metalplane's own). JSON and table outputs, exit codes
 * (0 done, 1 the API's message on stderr, 2 usage errors), create/set/unset/delete.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { metalplaneCli, osEnv } from '../support/cli.ts';

let api: TestApi;
let dir: string;

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  dir = await mkdtemp(join(tmpdir(), 'metalplane-cli-resources-'));
});
afterAll(async () => {
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const admin = metalplaneCli(
  () => ({ HOME: dir, ...osEnv(api) }),
  () => dir,
);
const cli = (...args: string[]) => admin.run(args);
const { ok, json } = admin;

/** The header line of a table (its second line). */
const headerOf = (table: string) => table.split('\n')[1];

/** A failed command: its exit code, nothing on stdout, the API's message on stderr. */
async function fails(code: 1 | 2, args: string[], message?: RegExp): Promise<void> {
  const result = await cli(...args);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
  expect(result.stdout).toBe('');
  if (message) expect(result.stderr).toMatch(message);
}

describe('metalplane port group', () => {
  let node: string;
  let uuid: string;

  it('create shows the detailed fields; list, --long and show as baremetal', async () => {
    node = (await json('node', 'create', '--driver', 'fake-hardware', '--name', 'pg-node')).uuid;
    const created = await json(
      ...['port', 'group', 'create', '--node', node, '--address', '52:54:00:AA:BB:01', '--name', 'bond0'],
      ...['--mode', 'active-backup', '--extra', 'rack=7', '--property', 'miimon=100'],
    );
    uuid = created.uuid;
    expect(Object.keys(created)).toStrictEqual([
      'uuid',
      'address',
      'created_at',
      'extra',
      'standalone_ports_supported',
      'node_uuid',
      'name',
      'updated_at',
      'internal_info',
      'mode',
      'properties',
      'physical_network',
      'category',
    ]);
    expect(created).toMatchObject({
      address: '52:54:00:aa:bb:01',
      node_uuid: node,
      name: 'bond0',
      mode: 'active-backup',
      extra: { rack: 7 },
      properties: { miimon: 100 },
      standalone_ports_supported: true,
    });

    expect(await json('port', 'group', 'list')).toStrictEqual([
      { uuid, address: '52:54:00:aa:bb:01', name: 'bond0' },
    ]);
    expect(headerOf(await ok('port', 'group', 'list'))).toMatch(/^\| UUID +\| Address +\| Name +\|$/);
    const long = await json('port', 'group', 'list', '--long', '--node', 'pg-node');
    expect(long[0]).toMatchObject({ uuid, mode: 'active-backup', node_uuid: node });
    expect(await ok('port', 'group', 'list', '--long')).toContain('Standalone Ports Supported');
    expect(await json('port', 'group', 'list', '--fields', 'name', 'mode')).toStrictEqual([
      { name: 'bond0', mode: 'active-backup' },
    ]);

    const shown = await json('port', 'group', 'show', 'bond0');
    expect(Object.keys(shown)).toStrictEqual(Object.keys(shown).sort());
    expect(shown).not.toHaveProperty('links');
    expect(shown).not.toHaveProperty('ports');
    expect((await json('port', 'group', 'show', '52:54:00:aa:bb:01', '--address')).uuid).toBe(uuid);
    const table = await ok('port', 'group', 'show', uuid, '-c', 'name', '-c', 'mode');
    expect(table).toMatch(/\| name +\| bond0 +\|/);
  });

  it('set and unset (JSON patch); nothing to set is a usage error', async () => {
    const set = await cli(
      ...['port', 'group', 'set', 'bond0', '--name', 'bond1', '--extra', 'row=3'],
      '--unsupport-standalone-ports',
    );
    expect(set, set.stderr).toMatchObject({ code: 0, stdout: '' });
    expect(
      await json('port', 'group', 'show', 'bond1', '-c', 'extra', '-c', 'standalone_ports_supported'),
    ).toStrictEqual({ extra: { rack: 7, row: 3 }, standalone_ports_supported: false });
    await ok('port', 'group', 'unset', 'bond1', '--extra', 'rack', '--property', 'miimon');
    const after = await json('port', 'group', 'show', 'bond1');
    expect(after.extra).toStrictEqual({ row: 3 });
    expect(after.properties).toStrictEqual({});
    await fails(2, ['port', 'group', 'set', 'bond1'], /nothing to set/);
    await fails(2, [
      'port',
      'group',
      'set',
      'bond1',
      '--support-standalone-ports',
      '--unsupport-standalone-ports',
    ]);
    await fails(2, ['port', 'group', 'create', '--address', '52:54:00:aa:bb:02']);
  });

  it('a missing port group is a 404 (exit 1, the API message); delete', async () => {
    await fails(
      1,
      ['port', 'group', 'show', 'no-such-group'],
      /^Portgroup no-such-group could not be found\. \(HTTP 404\)/,
    );
    const deleted = await cli('port', 'group', 'delete', 'bond1', 'no-such-group');
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toBe('Deleted port group bond1\n');
    expect(deleted.stderr).toContain('Failed to delete port group no-such-group');
    expect(deleted.stderr).toContain('1 of 2 port groups failed to delete.');
    expect(await json('port', 'group', 'list')).toStrictEqual([]);
  });
});

describe('metalplane chassis', () => {
  it('create, list, show, set, unset, delete', async () => {
    const created = await json('chassis', 'create', '--description', 'rack 12', '--extra', 'row=3');
    expect(created).toMatchObject({ description: 'rack 12', extra: { row: 3 } });
    expect(created).not.toHaveProperty('links');
    expect(created).not.toHaveProperty('nodes');
    const { uuid } = created;

    expect(await json('chassis', 'list')).toStrictEqual([{ uuid, description: 'rack 12' }]);
    expect(headerOf(await ok('chassis', 'list'))).toMatch(/^\| UUID +\| Description +\|$/);
    expect(Object.keys((await json('chassis', 'list', '--long'))[0])).toStrictEqual([
      'uuid',
      'description',
      'created_at',
      'updated_at',
      'extra',
    ]);
    expect(await ok('chassis', 'list', '-f', 'value')).toBe(`${uuid} rack 12\n`);

    await ok('chassis', 'set', uuid, '--description', 'rack 13', '--extra', 'pdu=a');
    await ok('chassis', 'unset', uuid, '--extra', 'row');
    expect(await json('chassis', 'show', uuid, '-c', 'description', '-c', 'extra')).toStrictEqual({
      description: 'rack 13',
      extra: { pdu: 'a' },
    });
    await ok('chassis', 'unset', uuid, '--description');
    expect((await json('chassis', 'show', uuid)).description).toBeNull();
    await fails(2, ['chassis', 'unset', uuid], /nothing to unset/);

    expect((await ok('chassis', 'delete', uuid)).trim()).toBe(`Deleted chassis ${uuid}`);
    await fails(1, ['chassis', 'show', uuid], /could not be found\. \(HTTP 404\)/);
    const again = await cli('chassis', 'delete', uuid);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('1 of 1 chassis failed to delete.');
  });
});

describe('metalplane allocation', () => {
  /** An available node of the resource class (the conductor that would make it so is not running). */
  async function availableNode(resourceClass: string): Promise<string> {
    const created = await json(
      'node',
      'create',
      '--driver',
      'fake-hardware',
      '--resource-class',
      resourceClass,
    );
    const stored = await api.deps.nodes.get(created.uuid);
    if (!stored) throw new Error('node not stored');
    const after = { ...stored.node, provision_state: 'available', power_state: 'power off' };
    await api.deps.nodes.update(stored.node, after, stored.version);
    return created.uuid;
  }

  it('create --wait ends active on a node; list, --long, show, set, unset, delete', async () => {
    const node = await availableNode('gold');
    const created = await json(
      'allocation',
      'create',
      '--resource-class',
      'gold',
      '--name',
      'a1',
      '--wait',
      '10',
    );
    expect(Object.keys(created)).toStrictEqual([
      'uuid',
      'name',
      'state',
      'owner',
      'node_uuid',
      'last_error',
      'resource_class',
      'traits',
      'candidate_nodes',
      'extra',
      'created_at',
      'updated_at',
    ]);
    expect(created).toMatchObject({ name: 'a1', state: 'active', node_uuid: node, resource_class: 'gold' });

    expect(await json('allocation', 'list')).toStrictEqual([
      { uuid: created.uuid, name: 'a1', resource_class: 'gold', state: 'active', node_uuid: node },
    ]);
    expect(headerOf(await ok('allocation', 'list'))).toMatch(
      /^\| UUID +\| Name +\| Resource Class +\| State +\| Node UUID +\|$/,
    );
    expect((await json('allocation', 'list', '--long'))[0]).toMatchObject({
      traits: [],
      candidate_nodes: [],
    });
    expect(await json('allocation', 'list', '--state', 'error')).toStrictEqual([]);

    await ok('allocation', 'set', 'a1', '--name', 'a2', '--extra', 'ticket=42');
    expect(await json('allocation', 'show', 'a2', '-c', 'name', '-c', 'extra')).toStrictEqual({
      name: 'a2',
      extra: { ticket: 42 },
    });
    await ok('allocation', 'unset', 'a2', '--extra', 'ticket');
    expect((await json('allocation', 'show', 'a2')).extra).toStrictEqual({});
    expect((await ok('allocation', 'delete', 'a2')).trim()).toBe('Deleted allocation a2');
    await fails(1, ['allocation', 'show', 'a2'], /^Allocation a2 could not be found\. \(HTTP 404\)/);
  });

  it('create --wait of an allocation that fails exits 1 with its error; usage errors exit 2', async () => {
    const failed = await cli(
      'allocation',
      'create',
      '--resource-class',
      'none-such',
      '--name',
      'a3',
      '--wait',
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^Allocation [0-9a-f-]{36} failed: /);
    expect((await json('allocation', 'show', 'a3')).state).toBe('error');
    await ok('allocation', 'delete', 'a3');
    await fails(2, ['allocation', 'create', '--name', 'a4'], /--resource-class is required/);
    await fails(2, ['allocation', 'create', '--resource-class', 'gold', '--wait', 'soon']);
    await fails(2, ['allocation', 'list', '--long', '--fields', 'uuid']);
  });
});

describe('metalplane deploy template', () => {
  const steps = [{ interface: 'raid', step: 'create_configuration', args: {}, priority: 10 }];

  it('create (steps as JSON), list, show, set (steps from a YAML file), unset, delete', async () => {
    const created = await json(
      ...['deploy', 'template', 'create', 'CUSTOM_RAID', '--steps', JSON.stringify(steps)],
      ...['--extra', 'team=storage'],
    );
    expect(Object.keys(created)).toStrictEqual([
      'uuid',
      'name',
      'steps',
      'extra',
      'created_at',
      'updated_at',
    ]);
    expect(created).toMatchObject({ name: 'CUSTOM_RAID', steps, extra: { team: 'storage' } });

    expect(await json('deploy', 'template', 'list')).toStrictEqual([
      { uuid: created.uuid, name: 'CUSTOM_RAID' },
    ]);
    expect(headerOf(await ok('deploy', 'template', 'list'))).toMatch(/^\| UUID +\| Name +\|$/);
    expect((await json('deploy', 'template', 'list', '--long'))[0]).toMatchObject({ steps });

    const file = join(dir, 'steps.yaml');
    await writeFile(file, '- interface: bios\n  step: apply_configuration\n  args: {}\n  priority: 20\n');
    await ok('deploy', 'template', 'set', 'CUSTOM_RAID', '--name', 'CUSTOM_BIOS', '--steps', file);
    await ok('deploy', 'template', 'unset', 'CUSTOM_BIOS', '--extra', 'team');
    const shown = await json('deploy', 'template', 'show', 'CUSTOM_BIOS');
    expect(Object.keys(shown)).toStrictEqual(Object.keys(shown).sort());
    expect(shown).toMatchObject({
      name: 'CUSTOM_BIOS',
      steps: [{ interface: 'bios', step: 'apply_configuration', args: {}, priority: 20 }],
      extra: {},
    });

    await fails(2, ['deploy', 'template', 'create', 'CUSTOM_X', '--steps', '[not json'], /--steps: not JSON/);
    await fails(2, ['deploy', 'template', 'create', 'CUSTOM_X']);
    await fails(
      1,
      ['deploy', 'template', 'create', 'not_a_trait', '--steps', JSON.stringify(steps)],
      /\(HTTP 400\)/,
    );
    expect((await ok('deploy', 'template', 'delete', 'CUSTOM_BIOS')).trim()).toBe(
      'Deleted deploy template CUSTOM_BIOS',
    );
    await fails(1, ['deploy', 'template', 'show', 'CUSTOM_BIOS'], /could not be found\. \(HTTP 404\)/);
  });
});

describe('metalplane user, token', () => {
  it('user create, list, show, set, delete', async () => {
    const created = await json(
      ...['user', 'create', 'ops1', '--role', 'member', '--project', 'p9'],
      ...['--password', 'correct horse battery'],
    );
    expect(created).toMatchObject({ name: 'ops1', role: 'member', project: 'p9' });
    expect(JSON.stringify(created)).not.toContain('password');
    expect(await json('user', 'list')).toContainEqual(
      expect.objectContaining({ name: 'ops1', role: 'member', project: 'p9' }),
    );
    expect(headerOf(await ok('user', 'list'))).toMatch(
      /^\| Name +\| Role +\| Project +\| Created At +\| Updated At +\|$/,
    );
    expect(await json('user', 'show', 'ops1', '-c', 'role', '-c', 'failed_logins')).toStrictEqual({
      role: 'member',
      failed_logins: 0,
    });

    await ok('user', 'set', 'ops1', '--role', 'reader');
    expect(await json('user', 'show', 'ops1', '-c', 'role', '-c', 'project')).toStrictEqual({
      role: 'reader',
      project: null,
    });
    await fails(2, ['user', 'set', 'ops1'], /nothing to set/);
    await fails(2, ['user', 'create', 'ops2', '--role', 'king', '--password', 'long enough']);
    await fails(2, ['user', 'create', 'ops2', '--role', 'admin'], /--password/);
    await fails(1, ['user', 'create', 'ops2', '--role', 'admin', '--password', 'short'], /\(HTTP 400\)/);
    expect((await ok('user', 'delete', 'ops1')).trim()).toBe('Deleted user ops1');
    await fails(1, ['user', 'show', 'ops1'], /^User ops1 could not be found\. \(HTTP 404\)/);
  });

  it('token create shows the secret once; list never does; the token works until deleted', async () => {
    const created = await json('token', 'create', '--description', 'ci');
    expect(created.token).toMatch(/^mpt_/);
    expect(created).toMatchObject({ user: api.admin.username, description: 'ci', revoked: false });

    const listed = await cli('token', 'list', '-f', 'json');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).not.toContain(created.token);
    expect(JSON.parse(listed.stdout)).toContainEqual({
      id: created.id,
      description: 'ci',
      created_at: created.created_at,
      expires_at: created.expires_at,
      revoked: false,
    });
    expect(headerOf(await ok('token', 'list'))).toMatch(
      /^\| ID +\| Description +\| Created At +\| Expires At +\| Revoked +\|$/,
    );

    const byToken = await admin.run(['node', 'list', '-f', 'json'], {
      OS_USERNAME: '',
      OS_PASSWORD: '',
      OS_TOKEN: created.token,
      OS_AUTH_TYPE: 'token',
    });
    expect(byToken.code, byToken.stderr).toBe(0);

    expect((await ok('token', 'delete', created.id)).trim()).toBe(`Deleted token ${created.id}`);
    const revoked = await admin.run(['node', 'list'], { OS_TOKEN: created.token, OS_AUTH_TYPE: 'token' });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/\(HTTP 401\)/);
    expect(
      (await json('token', 'list')).find((token: { id: string }) => token.id === created.id)?.revoked,
    ).toBe(true);
  });

  it("an admin manages another user's tokens; an unknown user is a 404", async () => {
    await ok('user', 'create', 'ops3', '--role', 'admin', '--password', 'another long one');
    const created = await json('token', 'create', '--user', 'ops3', '--expires-in', '3600');
    expect(created.user).toBe('ops3');
    expect(await json('token', 'list', '--user', 'ops3', '-c', 'id')).toStrictEqual([{ id: created.id }]);
    await ok('token', 'delete', '--user', 'ops3', created.id);
    await fails(1, ['token', 'list', '--user', 'ghost'], /^User ghost could not be found\. \(HTTP 404\)/);
    await fails(2, ['token', 'create', '--expires-in', 'never']);
    await ok('user', 'delete', 'ops3');
  });
});
