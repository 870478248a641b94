/** BIOS settings of a node through the api handler on moto (exchange 105). */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { biosSettingWrite } from '../../lambda/adapters/dynamo/bios-repository.ts';
import { conflict } from '../../lambda/domain/errors.ts';
import type { BiosSetting } from '../../lambda/domain/inventory/bios.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange } from '../support/reference.ts';

// The real router (buildRouter) with real HTTP Basic users: admin, reader, and members of
// projects p1 and p2 (`role`/`project` in a call pick the user).
let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

function setting(name: string, value: string): BiosSetting {
  return {
    name,
    value,
    created_at: '2026-01-01T00:00:00.000000+00:00',
    updated_at: null,
    attribute_type: 'Enumeration',
    allowable_values: ['Enabled', 'Disabled'],
    lower_bound: null,
    max_length: null,
    min_length: null,
    read_only: false,
    reset_required: true,
    unique: false,
    upper_bound: null,
  };
}

/** What the node's agent will do: write the settings it read. */
async function report(nodeUuid: string, settings: BiosSetting[]): Promise<void> {
  await api.deps.store.write(
    settings.map((s) => ({
      type: 'create' as const,
      item: biosSettingWrite(nodeUuid, s),
      onConflict: conflict(`BIOS setting ${s.name} already reported`),
    })),
  );
}

describe('BIOS settings', () => {
  let uuid: string;
  beforeAll(async () => {
    const created = await api.call('POST', '/v1/nodes', {
      body: { driver: 'fake-hardware', name: 'bios-node', owner: 'p1' },
    });
    uuid = created.body.uuid as string;
  });

  it('lists none before the agent reports, exactly as exchange 105', async () => {
    const list = await api.call('GET', `/v1/nodes/${uuid}/bios`);
    expect(list.status).toBe(exchange(105).response.status);
    expect(list.body).toStrictEqual(exchange(105).response.body);
  });

  it("an unknown setting is 404 with Ironic's message", async () => {
    const missing = await api.call('GET', `/v1/nodes/bios-node/bios/LogicalProc`);
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe(`Node ${uuid} doesn't have a BIOS setting 'LogicalProc'`);
    const bad = await api.call('GET', `/v1/nodes/${uuid}/bios/bad%20name`);
    expect(bad.status).toBe(400);
    expect(bad.fault?.faultstring).toBe('Expected name for setting_name: bad name');
  });

  it('lists reported settings by name, with name and value (registry fields with detail, 1.74+)', async () => {
    await report(uuid, [setting('VirtualizationTechnology', 'Enabled'), setting('LogicalProc', 'Disabled')]);
    const list = await api.call('GET', '/v1/nodes/bios-node/bios');
    expect(list.body.bios).toStrictEqual([
      {
        created_at: '2026-01-01T00:00:00.000000+00:00',
        updated_at: null,
        name: 'LogicalProc',
        value: 'Disabled',
        links: [
          { href: `${api.url}/v1/nodes/bios-node/bios/LogicalProc`, rel: 'self' },
          { href: `${api.url}/nodes/bios-node/bios/LogicalProc`, rel: 'bookmark' },
        ],
      },
      expect.objectContaining({ name: 'VirtualizationTechnology', value: 'Enabled' }),
    ]);
    const detail = await api.call('GET', `/v1/nodes/${uuid}/bios?detail=True`);
    expect(detail.body.bios[0]).toMatchObject({
      attribute_type: 'Enumeration',
      allowable_values: ['Enabled', 'Disabled'],
      reset_required: true,
    });
    const fields = await api.call('GET', `/v1/nodes/${uuid}/bios?fields=value`);
    expect(Object.keys(fields.body.bios[0])).toStrictEqual(['created_at', 'updated_at', 'value', 'links']);
    const old = await api.call('GET', `/v1/nodes/${uuid}/bios?detail=True`, { version: '1.73' });
    expect(old.status).toBe(400);
    expect(old.fault?.faultstring).toBe('Invalid query parameter ?detail=True received.');
    expect((await api.call('GET', `/v1/nodes/${uuid}/bios?detail=True&fields=name`)).status).toBe(400);
    expect((await api.call('GET', `/v1/nodes/${uuid}/bios?fields=bogus`)).status).toBe(400);
  });

  it('shows one setting keyed by its name; registry fields from 1.74', async () => {
    const shown = await api.call('GET', '/v1/nodes/bios-node/bios/LogicalProc');
    expect(Object.keys(shown.body)).toStrictEqual(['LogicalProc']);
    expect(shown.body.LogicalProc).toMatchObject({
      name: 'LogicalProc',
      value: 'Disabled',
      read_only: false,
    });
    expect(shown.body.LogicalProc.links[0].href).toBe(`${api.url}/v1/nodes/${uuid}/bios/LogicalProc`);
    const old = await api.call('GET', '/v1/nodes/bios-node/bios/LogicalProc', { version: '1.40' });
    expect(Object.keys(old.body.LogicalProc)).toStrictEqual([
      'created_at',
      'updated_at',
      'name',
      'value',
      'links',
    ]);
  });

  it('does not exist below 1.40; unknown node is 404; other projects do not see it', async () => {
    expect((await api.call('GET', `/v1/nodes/${uuid}/bios`, { version: '1.39' })).status).toBe(404);
    const missing = await api.call('GET', '/v1/nodes/ghost/bios');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Node ghost could not be found.');
    expect((await api.call('GET', `/v1/nodes/${uuid}/bios`, { role: 'member', project: 'p2' })).status).toBe(
      404,
    );
    expect((await api.call('GET', `/v1/nodes/${uuid}/bios`, { role: 'member', project: 'p1' })).status).toBe(
      200,
    );
  });

  it("a node's deletion removes its settings", async () => {
    expect((await api.call('DELETE', `/v1/nodes/${uuid}`)).status).toBe(204);
    expect(await api.deps.store.get('bios_setting', `${uuid}/LogicalProc`)).toBeUndefined();
  });
});
