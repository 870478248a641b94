/**
 * The 5xx and wrongly accepted values found by schemathesis and the hostile-input battery
 * (issue 12), one test each: each is now a clear 400 that writes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
let node: string;
beforeAll(async () => {
  api = await startApi();
  node = (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'fixes' } })).body
    .uuid;
});
afterAll(() => api.close());

describe('found by fuzzing, fixed', () => {
  it.each([4.7e256, 1e-300, 2 ** 60])('command args holding %d: 400 (was 500), nothing queued', async (n) => {
    const result = await api.call('POST', `/v1/nodes/${node}/commands`, {
      body: { action: 'noop', args: { n } },
    });
    expect(result.status).toBe(400);
    expect(result.fault?.faultstring).toContain('out of the range of numbers');
    expect((await api.call('GET', `/v1/nodes/${node}/commands`)).body.commands).toEqual([]);
  });

  it.each([
    ['a value', '{"driver":"fake-hardware","extra":{"a":"\\ud800"}}'],
    ['a member name', '{"driver":"fake-hardware","extra":{"\\udc00":1}}'],
  ])('an unpaired surrogate in %s: 400 (was 500)', async (_where, rawBody) => {
    const result = await api.call('POST', '/v1/nodes', { rawBody });
    expect(result.status).toBe(400);
    expect(result.fault?.faultstring).toContain('unpaired UTF-16 surrogate');
  });

  it('an unpaired surrogate in a chassis description: 400 (was 500)', async () => {
    const result = await api.call('POST', '/v1/chassis', { rawBody: '{"description":"\\ud800"}' });
    expect(result.status).toBe(400);
  });

  it('NUL in extra, duplicate member names: 400 (were accepted)', async () => {
    const nul = await api.call('POST', '/v1/nodes', {
      rawBody: '{"driver":"fake-hardware","extra":{"a":"\\u0000"}}',
    });
    expect(nul.status).toBe(400);
    expect(nul.fault?.faultstring).toContain('NUL');
    const twice = await api.call('POST', '/v1/nodes', {
      rawBody: '{"driver":"fake-hardware","extra":{"a":1},"extra":{"b":2}}',
    });
    expect(twice.status).toBe(400);
    expect(twice.fault?.faultstring).toContain('"extra" twice');
  });

  it('a provision body with a NUL: 400 before anything else', async () => {
    const result = await api.call('PUT', `/v1/nodes/${node}/states/provision`, {
      rawBody: '{"target":"manage","configdrive":"\\u0000"}',
    });
    expect(result.status).toBe(400);
    expect((await api.call('GET', `/v1/nodes/${node}`)).body.provision_state).toBe('enroll');
  });

  it('invalid UTF-8: 400 (was stored as U+FFFD)', async () => {
    const response = await fetch(`${api.url}/v1/nodes`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.82' },
      body: Buffer.concat([
        Buffer.from('{"driver":"fake-hardware","name":"a'),
        Buffer.from([0xff]),
        Buffer.from('"}'),
      ]),
    });
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('not valid UTF-8');
  });

  it('PATCH a site replacing default with null: 400 (was read as false, unsetting the default)', async () => {
    const result = await api.call('PATCH', `/v1/sites/${api.site}`, {
      body: [{ op: 'replace', path: '/default', value: null }],
    });
    expect(result.status).toBe(400);
    expect((await api.call('GET', `/v1/sites/${api.site}`)).body.default).toBe(true);
    // `remove` still clears it, as documented.
    const created = await api.call('POST', '/v1/sites', { body: { name: 'fixes-site' } });
    expect(created.status).toBe(201);
  });

  it('PATCH an image replacing labels with null: 400 (was read as {})', async () => {
    const image = (
      await api.call('POST', '/v1/images', {
        body: {
          name: 'fixes-image',
          kind: 'iso',
          files: [{ role: 'iso', size: 4, sha256: '0'.repeat(64) }],
          labels: { a: 'b' },
        },
      })
    ).body.uuid;
    const result = await api.call('PATCH', `/v1/images/${image}`, {
      body: [{ op: 'replace', path: '/labels', value: null }],
    });
    expect(result.status).toBe(400);
    expect((await api.call('GET', `/v1/images/${image}`)).body.labels).toEqual({ a: 'b' });
    const removed = await api.call('PATCH', `/v1/images/${image}`, {
      body: [{ op: 'remove', path: '/labels' }],
    });
    expect(removed.status).toBe(200);
    expect(removed.body.labels).toEqual({});
  });
});
