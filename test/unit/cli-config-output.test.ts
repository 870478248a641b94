/** The metalplane CLI's configuration (precedence, clouds.yaml search, microversion) and cliff-like output. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../cli/metalplane.ts';
import {
  CLIENT_MAX_VERSION,
  cloudsYamlCandidates,
  faultOf,
  negotiateVersion,
  resolveConfig,
  secureYamlCandidates,
  UsageError,
} from '../../cli/os-config.ts';
import { ColumnError, formatList, formatOne, labelOf, renderTable, selectColumns } from '../../cli/output.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'metalplane-cli-unit-'));
  await writeFile(
    join(dir, 'clouds.yaml'),
    [
      'clouds:',
      '  lab:',
      '    auth_type: http_basic',
      '    auth: {username: alice, password: from-yaml}',
      '    baremetal_endpoint_override: http://yaml.example:6385/',
      '    baremetal_api_version: "1.60"',
      '  tok:',
      '    auth_type: token',
      '    auth: {token: mpt_yaml, endpoint: http://tok.example}',
      '',
    ].join('\n'),
  );
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('resolveConfig', () => {
  const env = () => ({ OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml') });

  it('takes a cloud from clouds.yaml', async () => {
    expect(await resolveConfig({ osCloud: 'lab' }, env())).toMatchObject({
      endpoint: 'http://yaml.example:6385',
      authType: 'http_basic',
      username: 'alice',
      password: 'from-yaml',
      apiVersion: '1.60',
      cloud: 'lab',
    });
    expect(await resolveConfig({}, { ...env(), OS_CLOUD: 'tok' })).toMatchObject({
      endpoint: 'http://tok.example',
      authType: 'token',
      token: 'mpt_yaml',
    });
  });

  it('merges the cloud of secure.yaml (passwords kept apart) over clouds.yaml', async () => {
    const secure = join(dir, 'secure.yaml');
    await writeFile(secure, ['clouds:', '  lab:', '    auth: {password: from-secure}', ''].join('\n'));
    expect(
      await resolveConfig({ osCloud: 'lab' }, { ...env(), OS_CLIENT_SECURE_FILE: secure }),
    ).toMatchObject({
      username: 'alice',
      password: 'from-secure',
      endpoint: 'http://yaml.example:6385',
    });
    expect(secureYamlCandidates({}, '/w', '/h')).toStrictEqual([
      '/w/secure.yaml',
      '/h/.config/openstack/secure.yaml',
      '/etc/openstack/secure.yaml',
    ]);
  });

  it('reads the TLS settings: option, environment, clouds.yaml', async () => {
    expect(await resolveConfig({ osCacert: '/ca.pem', insecure: true }, {})).toMatchObject({
      cacert: '/ca.pem',
      insecure: true,
    });
    expect(await resolveConfig({}, { OS_CACERT: '/env.pem', OS_INSECURE: 'False' })).toStrictEqual(
      expect.not.objectContaining({ insecure: true }),
    );
    expect((await resolveConfig({}, { OS_CACERT: '/env.pem' })).cacert).toBe('/env.pem');
  });

  it('option > environment > clouds.yaml', async () => {
    const fromEnv = await resolveConfig(
      { osCloud: 'lab' },
      { ...env(), OS_PASSWORD: 'from-env', OS_ENDPOINT: 'http://env.example' },
    );
    expect(fromEnv).toMatchObject({
      password: 'from-env',
      endpoint: 'http://env.example',
      username: 'alice',
    });
    const fromOption = await resolveConfig(
      {
        osCloud: 'lab',
        osPassword: 'from-option',
        osEndpoint: 'http://opt.example',
        osBaremetalApiVersion: 'latest',
      },
      { ...env(), OS_PASSWORD: 'from-env' },
    );
    expect(fromOption).toMatchObject({ password: 'from-option', endpoint: 'http://opt.example' });
    expect(fromOption.apiVersion).toBeUndefined();
  });

  it('infers the auth type; refuses what cannot work', async () => {
    expect((await resolveConfig({}, {})).authType).toBe('none');
    expect((await resolveConfig({}, {})).endpoint).toBe('http://127.0.0.1:6385');
    expect((await resolveConfig({ osUsername: 'u', osPassword: 'p' }, {})).authType).toBe('http_basic');
    expect((await resolveConfig({}, { OS_TOKEN: 't' })).authType).toBe('token');
    await expect(resolveConfig({ osUsername: 'u' }, {})).rejects.toThrow(UsageError);
    await expect(resolveConfig({ osAuthType: 'token' }, {})).rejects.toThrow(/needs --os-token/);
    await expect(resolveConfig({ osAuthType: 'v3password' }, {})).rejects.toThrow(UsageError);
    await expect(resolveConfig({ osBaremetalApiVersion: '2' }, {})).rejects.toThrow(UsageError);
    await expect(resolveConfig({ osCloud: 'nope' }, env())).rejects.toThrow(
      /cloud nope is not in .*\(it has: lab, tok\)/,
    );
  });

  it('looks for clouds.yaml as openstacksdk does', () => {
    expect(cloudsYamlCandidates({ OS_CLIENT_CONFIG_FILE: 'x.yaml' }, '/w', '/h')).toStrictEqual([
      '/w/x.yaml',
      '/w/clouds.yaml',
      '/h/.config/openstack/clouds.yaml',
      '/etc/openstack/clouds.yaml',
    ]);
    expect(cloudsYamlCandidates({}, '/w', '/h')[0]).toBe('/w/clouds.yaml');
  });
});

describe('negotiateVersion', () => {
  it('min(client max, server max), or the requested version when the server has it', () => {
    expect(negotiateVersion({ min: '1.1', max: '1.82' })).toBe(CLIENT_MAX_VERSION);
    expect(negotiateVersion({ min: '1.1', max: '1.60' })).toBe('1.60');
    expect(negotiateVersion({ min: '1.1', max: '1.99' })).toBe(CLIENT_MAX_VERSION);
    expect(negotiateVersion({ min: '1.1', max: '1.82' }, '1.31')).toBe('1.31');
    expect(() => negotiateVersion({ min: '1.1', max: '1.82' }, '1.90')).toThrow(/not supported/);
    expect(negotiateVersion(undefined)).toBe(CLIENT_MAX_VERSION);
  });

  it("reads Ironic's error document", () => {
    const body = {
      error_message: JSON.stringify({ faultstring: 'Node x could not be found.', faultcode: 'Client' }),
    };
    expect(faultOf(body)).toBe('Node x could not be found.');
    expect(faultOf({ error_message: 'plain' })).toBe('plain');
    expect(faultOf(undefined)).toBe('');
  });
});

describe('output', () => {
  const rows = [
    { uuid: 'u1', name: 'a', maintenance: false, power_state: null, extra: { k: 1 } },
    { uuid: 'u2', name: 'longer-name', maintenance: true, power_state: 'power on', extra: {} },
  ];

  it('labels as python-ironicclient', () => {
    expect(labelOf('provision_state')).toBe('Provisioning State');
    expect(labelOf('instance_uuid')).toBe('Instance UUID');
    expect(labelOf('power_state')).toBe('Power State');
  });

  it('an aligned table', () => {
    expect(
      renderTable(
        ['A', 'Bee'],
        [
          ['x', 'yy'],
          ['long', null],
        ],
      ),
    ).toBe(
      [
        '+------+------+',
        '| A    | Bee  |',
        '+------+------+',
        '| x    | yy   |',
        '| long | None |',
        '+------+------+',
      ].join('\n'),
    );
  });

  it('list formats', async () => {
    const fields = ['uuid', 'name', 'maintenance', 'power_state', 'extra'];
    expect(JSON.parse((await formatList(fields, rows, { format: 'json' })) as string)).toStrictEqual(rows);
    expect(await formatList(fields, rows, { format: 'json', column: ['Name'], noindent: true })).toBe(
      '[{"name":"a"},{"name":"longer-name"}]',
    );
    expect(await formatList(fields, rows, { format: 'value', column: ['uuid', 'maintenance'] })).toBe(
      'u1 False\nu2 True',
    );
    expect(await formatList(fields, rows, { format: 'csv', column: ['name', 'power_state'] })).toBe(
      '"name","power_state"\n"a",""\n"longer-name","power on"',
    );
    expect(await formatList(fields, rows, { format: 'yaml', column: ['name'] })).toBe(
      '- name: a\n- name: longer-name',
    );
    const table = (await formatList(fields, rows, {})) as string;
    expect(table.split('\n')[1]).toBe('| UUID | Name        | Maintenance | Power State | Extra   |');
    expect(table).toContain('| u1   | a           | False       | None        | {"k":1} |');
    expect(await formatList(fields, [], {})).toBeUndefined();
    expect(await formatList(fields, [], { format: 'json' })).toBe('[]');
  });

  it('show formats', async () => {
    const record = { uuid: 'u1', name: 'a', traits: ['X', 'Y'] };
    expect(await formatOne(record, { format: 'json', noindent: true })).toBe(
      '{"uuid":"u1","name":"a","traits":["X","Y"]}',
    );
    expect(await formatOne(record, { column: ['name', 'traits'] })).toBe(
      [
        '+--------+-------+',
        '| Field  | Value |',
        '+--------+-------+',
        '| name   | a     |',
        '| traits | X, Y  |',
        '+--------+-------+',
      ].join('\n'),
    );
    expect(await formatOne(record, { format: 'value', column: ['name'] })).toBe('a');
  });

  it('-c: a field name or a label, unknown refused', () => {
    expect(selectColumns(['uuid', 'provision_state'], ['Provisioning State', 'UUID'])).toStrictEqual([
      'provision_state',
      'uuid',
    ]);
    expect(() => selectColumns(['uuid'], ['nope'])).toThrow(ColumnError);
  });

  it('exit codes: 2 for usage errors, 1 otherwise', () => {
    expect(exitCodeOf(new UsageError('x'))).toBe(2);
    expect(exitCodeOf(new ColumnError('x'))).toBe(2);
    expect(exitCodeOf(new Error('x'))).toBe(1);
  });
});
