/** Deploy templates through the api handler on moto, compared with Ironic's recorded answers (103-104). */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { exchange, rehost } from '../support/reference.ts';

// The real router (buildRouter) with real HTTP Basic users: admin, reader, and members of
// projects p1 and p2 (`role`/`project` in a call pick the user).
let api: TestApi;
beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
});
afterAll(() => api?.close());

const RECORDED_UUID = '5e4a80c7-cf24-41a7-9579-d4ef34d6072f';

function reference(n: number, uuid: string): any {
  return JSON.parse(
    JSON.stringify(rehost(exchange(n).response.body, api.url)).replaceAll(RECORDED_UUID, uuid),
  );
}

const times = (template: any) => ({ ...template, created_at: 'T', updated_at: template.updated_at && 'T' });

async function count(): Promise<number> {
  return (await api.call('GET', '/v1/deploy_templates')).body.deploy_templates.length;
}

const step = (overrides: Record<string, unknown> = {}) => ({
  interface: 'raid',
  step: 'create_configuration',
  args: {},
  priority: 10,
  ...overrides,
});

describe('deploy template create and list (exchanges 103-104)', () => {
  let uuid: string;

  it('creates as exchange 103, field for field', async () => {
    const created = await api.call('POST', '/v1/deploy_templates', { body: exchange(103).request.body });
    expect(created.status).toBe(201);
    uuid = created.body.uuid;
    expect(created.headers.get('location')).toBe(`${api.url}/v1/deploy_templates/${uuid}`);
    const recorded = reference(103, uuid);
    expect(Object.keys(created.body)).toStrictEqual(Object.keys(recorded));
    expect(times(created.body)).toStrictEqual(times(recorded));
  });

  it('lists as exchange 104; shows by UUID and by name', async () => {
    const list = await api.call('GET', '/v1/deploy_templates');
    expect(list.body).toStrictEqual(reference(104, uuid));
    const byName = await api.call('GET', '/v1/deploy_templates/CUSTOM_HYPERTHREADING_ON');
    expect(times(byName.body)).toStrictEqual(times(reference(103, uuid)));
    expect((await api.call('GET', `/v1/deploy_templates/${uuid}`)).body).toStrictEqual(byName.body);
    const detail = await api.call('GET', '/v1/deploy_templates?detail=True');
    expect(detail.body.deploy_templates[0]).toStrictEqual(byName.body);
    const some = await api.call('GET', '/v1/deploy_templates?fields=steps');
    expect(Object.keys(some.body.deploy_templates[0])).toStrictEqual(['links', 'steps']);
  });

  it('a taken name is 409 and writes nothing', async () => {
    const before = await count();
    const refused = await api.call('POST', '/v1/deploy_templates', { body: exchange(103).request.body });
    expect(refused.status).toBe(409);
    expect(refused.fault?.faultstring).toBe(
      'A deploy template with name CUSTOM_HYPERTHREADING_ON already exists.',
    );
    expect(await count()).toBe(before);
  });

  it('unknown template is 404 with Ironic message', async () => {
    const missing = await api.call('GET', '/v1/deploy_templates/CUSTOM_NOPE');
    expect(missing.status).toBe(404);
    expect(missing.fault?.faultstring).toBe('Deploy template CUSTOM_NOPE could not be found.');
  });
});

describe('validation', () => {
  it.each([
    [{ steps: [step()] }, "Schema error for template: 'name' is a required property"],
    [{ name: 'CUSTOM_X' }, "Schema error for template: 'steps' is a required property"],
    [{ name: 'CUSTOM_X', steps: [] }, 'Schema error for template: [] is too short'],
    [
      { name: 'not_a_trait', steps: [step()] },
      "Schema error for template: 'not_a_trait' is not valid under any of the given schemas",
    ],
    [
      { name: 'CUSTOM_X', steps: [step({ interface: 'network' })] },
      "Schema error for template: 'network' is not one of ['power', 'management', 'deploy', 'bios', 'raid']",
    ],
    [
      { name: 'CUSTOM_X', steps: [step({ priority: -1 })] },
      'Schema error for template: -1 is not valid under any of the given schemas',
    ],
    [{ name: 'CUSTOM_X', steps: [step({ step: '' })] }, "Schema error for template: '' is too short"],
    [
      { name: 'CUSTOM_X', steps: [{ interface: 'raid', step: 's', priority: 1 }] },
      "Schema error for template: 'args' is a required property",
    ],
    [
      { name: 'CUSTOM_X', steps: [step({ extra: 1 })] },
      "Schema error for template: Additional properties are not allowed ('extra' was unexpected)",
    ],
    [
      { name: 'CUSTOM_X', steps: [step(), step({ priority: 20 })] },
      'Deploy template invalid: Duplicate deploy steps. A deploy template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: raid, step: create_configuration.',
    ],
    [{ name: 'CUSTOM_X', steps: [step()], uuid: 'nope' }, 'Expected UUID for uuid: nope'],
    [
      { name: 'CUSTOM_X', steps: [step()], description: 'x' },
      "Schema error for template: Additional properties are not allowed ('description' was unexpected)",
    ],
  ])('body #%# is refused with 400 and nothing is written', async (body, message) => {
    const before = await count();
    const refused = await api.call('POST', '/v1/deploy_templates', { body });
    expect(refused.status).toBe(400);
    expect(refused.fault?.faultstring).toBe(message);
    expect(await count()).toBe(before);
  });

  it('accepts a priority as a string of digits (stored as a number) and masks secrets in args', async () => {
    const created = await api.call('POST', '/v1/deploy_templates', {
      body: {
        name: 'CUSTOM_SECRET',
        steps: [step({ priority: '30', args: { bmc_password: 'hunter2', size: 'MAX' } })],
        extra: { team: 'infra' },
      },
    });
    expect(created.status).toBe(201);
    expect(created.body.steps).toStrictEqual([
      {
        interface: 'raid',
        step: 'create_configuration',
        args: { bmc_password: '******', size: 'MAX' },
        priority: 30,
      },
    ]);
    const stored = await api.deps.store.get<any>('deploy_template', created.body.uuid);
    expect(stored?.doc.steps[0].args.bmc_password).toBe('hunter2');
  });

  it('deploy templates do not exist below 1.55: GET 404, POST 405', async () => {
    expect((await api.call('GET', '/v1/deploy_templates', { version: '1.54' })).status).toBe(404);
    const post = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_OLD', steps: [step()] },
      version: '1.54',
    });
    expect(post.status).toBe(405);
    expect((await api.call('GET', '/v1/deploy_templates/CUSTOM_OLD')).status).toBe(404);
  });

  it('readers read but do not write', async () => {
    expect((await api.call('GET', '/v1/deploy_templates', { role: 'reader' })).status).toBe(200);
    const refused = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_R', steps: [step()] },
      role: 'reader',
    });
    expect(refused.status).toBe(403);
  });
});

describe('patch and delete', () => {
  let uuid: string;
  beforeAll(async () => {
    uuid = (
      await api.call('POST', '/v1/deploy_templates', { body: { name: 'CUSTOM_PATCH_ME', steps: [step()] } })
    ).body.uuid;
  });

  it('renames, replaces steps and extra; the old name is free again', async () => {
    const patched = await api.call('PATCH', '/v1/deploy_templates/CUSTOM_PATCH_ME', {
      body: [
        { op: 'replace', path: '/name', value: 'CUSTOM_PATCHED' },
        { op: 'add', path: '/steps/-', value: step({ interface: 'bios', step: 'apply_configuration' }) },
        { op: 'add', path: '/extra/k', value: 'v' },
      ],
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'CUSTOM_PATCHED', extra: { k: 'v' } });
    expect(patched.body.steps.map((s: { interface: string }) => s.interface)).toStrictEqual(['raid', 'bios']);
    expect(patched.body.updated_at).not.toBeNull();
    expect((await api.call('GET', '/v1/deploy_templates/CUSTOM_PATCH_ME')).status).toBe(404);
    const reuse = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_PATCH_ME', steps: [step()] },
    });
    expect(reuse.status).toBe(201);
  });

  it.each([
    [
      [{ op: 'replace', path: '/uuid', value: 'x' }],
      400,
      'Cannot patch /uuid. Only the following can be updated: extra, name, steps',
    ],
    [
      [{ op: 'replace', path: '/name', value: 'lower' }],
      400,
      "Schema error for patch: 'lower' is not valid under any of the given schemas",
    ],
    [[{ op: 'replace', path: '/steps', value: [] }], 400, 'Schema error for patch: [] is too short'],
    [
      [{ op: 'add', path: '/steps/-', value: step() }],
      400,
      'Deploy template invalid: Duplicate deploy steps. A deploy template cannot have multiple deploy steps with the same interface and step. Duplicates: interface: raid, step: create_configuration.',
    ],
    [
      [{ op: 'replace', path: '/name', value: 'CUSTOM_HYPERTHREADING_ON' }],
      409,
      'A deploy template with name CUSTOM_HYPERTHREADING_ON already exists.',
    ],
  ])('patch #%# is refused and changes nothing', async (patch, status, message) => {
    const before = await api.deps.store.get('deploy_template', uuid);
    const refused = await api.call('PATCH', `/v1/deploy_templates/${uuid}`, { body: patch });
    expect(refused.status).toBe(status);
    expect(refused.fault?.faultstring).toBe(message);
    expect((await api.deps.store.get('deploy_template', uuid))?.version).toBe(before?.version);
  });

  it('deletes; the name can be taken again', async () => {
    expect((await api.call('DELETE', `/v1/deploy_templates/${uuid}`)).status).toBe(204);
    expect((await api.call('GET', `/v1/deploy_templates/${uuid}`)).status).toBe(404);
    expect((await api.call('DELETE', `/v1/deploy_templates/${uuid}`)).status).toBe(404);
    const again = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_PATCHED', steps: [step()] },
    });
    expect(again.status).toBe(201);
  });

  it('pages with limit and next; sorts by name', async () => {
    const all = (await api.call('GET', '/v1/deploy_templates')).body.deploy_templates.map((t: any) => t.uuid);
    const seen: string[] = [];
    let path: string | undefined = '/v1/deploy_templates?limit=1';
    for (let pages = 0; path && pages < 20; pages++) {
      const page = await api.call('GET', path);
      seen.push(...page.body.deploy_templates.map((t: any) => t.uuid));
      path = page.body.next ? (page.body.next as string).replace(api.url, '') : undefined;
    }
    expect(seen).toStrictEqual(all);
    const names = (await api.call('GET', '/v1/deploy_templates?sort_key=name')).body.deploy_templates.map(
      (t: any) => t.name,
    );
    expect(names).toStrictEqual([...names].sort());
    expect((await api.call('GET', '/v1/deploy_templates?sort_key=steps')).status).toBe(400);
  });
});

describe('no 500 from client input', () => {
  it('numbers the table cannot hold are 400 on create and patch', async () => {
    const refused = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_BIG', steps: [step({ priority: 1e300 })] },
    });
    expect(refused.status).toBe(400);
    const args = await api.call('POST', '/v1/deploy_templates', {
      body: { name: 'CUSTOM_BIG', steps: [step({ args: { size: 2 ** 64 } })] },
    });
    expect(args.status).toBe(400);
    expect((await api.call('GET', '/v1/deploy_templates/CUSTOM_BIG')).status).toBe(404);
  });
});
