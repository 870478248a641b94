/**
 * No client input gets a 500, and refused input writes nothing: a deterministic
 * generator throws odd bodies, paths and query strings at every route.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRouter } from '../../lambda/api/app.ts';
import { startApi, type TestApi } from '../support/api.ts';

let api: TestApi;
let nodeUuid: string;
beforeAll(async () => {
  api = await startApi();
  nodeUuid = (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware', name: 'robust' } })).body
    .uuid;
});
afterAll(() => api.close());

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number) {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function deep(levels: number): unknown {
  let value: unknown = 'x';
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1e308,
  '',
  ' ',
  '\u0000',
  '../../etc/passwd',
  'é☃𝄞',
  'a'.repeat(5000),
  [],
  {},
  [[[]]],
  { '': '' },
  { __proto__: { polluted: true } },
  deep(40),
  { driver: 'fake-hardware', extra: { big: 'x'.repeat(500_000) } },
  { driver: 'fake-hardware', extra: deep(40) },
  { driver: 123 },
  { driver: 'fake-hardware', name: 42 },
  { driver: 'fake-hardware', maintenance: 'perhaps' },
  { driver: 'fake-hardware', uuid: 'not-a-uuid' },
  [{ op: 'add', path: '/extra/x' }],
  [{ op: 'replace', path: '/extra', value: deep(40) }],
  [{ op: 'add', path: '/', value: 1 }],
  [{ op: 'remove', path: '/driver' }],
  [{ op: 'replace', path: '/name', value: '../x' }],
  [{ op: 'replace', path: '/maintenance', value: 'x' }],
  [{ op: 'replace', path: '/conductor_group', value: 'BAD GROUP!' }],
  [{ op: 'add', path: '/extra/a~1b', value: 1 }],
];
const RAW_BODIES = [
  '{',
  '[',
  'null',
  '"x"',
  '{"driver": "fake-hardware",}',
  '\u0000',
  '{"a":1}{"b":2}',
  'x'.repeat(2_000_000),
];
const ODD_SEGMENTS = [
  '%00',
  '%2e%2e',
  '..',
  'a'.repeat(300),
  '00000000-0000-0000-0000-000000000000',
  'robust',
  '%E9',
  '%',
  'ÿ',
];
const ODD_QUERIES = [
  'limit=0',
  'limit=abc',
  'limit=1e9',
  'marker=x',
  'marker=00000000-0000-0000-0000-000000000000',
  'sort_key=__proto__',
  'sort_dir=up',
  'fields=uuid,,',
  'fields=__proto__',
  'detail=maybe',
  'maintenance=perhaps',
  'driver=%00',
  'provision_state=',
  'associated=x',
  'bogus=1',
];

describe('no 500 from client input', () => {
  it('every route, odd path segments, bodies and queries: never 5xx, refusals write nothing', async () => {
    const random = prng(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const routes = buildRouter(api.deps).patterns();
    let calls = 0;
    for (const { pattern, methods } of routes) {
      for (const method of methods) {
        for (let round = 0; round < 12; round++) {
          const path = pattern.replace(/\{(\w+)\}/g, (_m, name: string) =>
            name === 'node' && random() < 0.5 ? nodeUuid : pick(ODD_SEGMENTS),
          );
          const query = random() < 0.5 ? `?${pick(ODD_QUERIES)}` : '';
          const useRaw = random() < 0.3;
          const before = await api.deps.nodes.get(nodeUuid);
          const options =
            method === 'GET' ? {} : useRaw ? { rawBody: pick(RAW_BODIES) } : { body: pick(ODD_VALUES) };
          const result = await api.call(method, `${path}${query}`, options);
          calls++;
          expect(result.status, `${method} ${path}${query}`).toBeLessThan(500);
          if (result.status >= 400 && before) {
            const after = await api.deps.nodes.get(nodeUuid);
            if (after)
              expect(after.version, `${method} ${path}${query} wrote despite ${result.status}`).toBe(
                before.version,
              );
          }
          if (result.status >= 400) expect(result.fault?.faultstring, `${method} ${path}`).toBeTruthy();
        }
      }
    }
    expect(calls).toBeGreaterThan(100);
  }, 120_000);

  it.each([1e200, -1e200, 2 ** 60])(
    'a number that cannot be stored exactly (%d) is a 400 that writes nothing',
    async (n) => {
      const created = await api.call('POST', '/v1/nodes', {
        body: { driver: 'fake-hardware', extra: { n } },
      });
      expect(created.status).toBe(400);
      expect(created.fault?.faultstring).toContain('outside what can be stored exactly');
    },
  );

  it('an object over 400 KB is refused clearly (413), not a 500', async () => {
    const own = (await api.call('POST', '/v1/nodes', { body: { driver: 'fake-hardware' } })).body.uuid;
    const result = await api.call('PATCH', `/v1/nodes/${own}`, {
      body: [{ op: 'add', path: '/extra/big', value: 'x'.repeat(450_000) }],
    });
    expect(result.status).toBe(413);
  });
});
