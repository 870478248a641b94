/**
 * The agent bundle's precompiled validators (scripts/agent-bundle.ts: Ajv standalone code
 * generated at bundle time in place of protocol/lazy-validator.ts): one for every validator
 * the agent's modules register, each answering exactly as the Ajv-compiled one of the
 * sources (same verdict, same errors) on valid messages and on many broken ones; and
 * `errorsText` formatting as Ajv's does.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorsText, lazyValidator, registeredValidators } from '../../protocol/lazy-validator.ts';
import { bundlePrecompiledValidators, precompiledValidatorsSource } from '../../scripts/agent-bundle.ts';

interface Precompiled {
  VALIDATORS_PRECOMPILED: boolean;
  lazyValidator(name: string): ValidateFunction;
  errorsText: typeof errorsText;
}

let dir: string;
let precompiled: Precompiled;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'metalplane-validators-'));
  await bundlePrecompiledValidators(join(dir, 'validators.mjs'));
  precompiled = (await import(join(dir, 'validators.mjs'))) as Precompiled;
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const now = '2026-11-25T10:00:00.000Z';
const uuid = '7d4c9e0a-0b1f-4d3e-9a3c-1f2e3d4c5b6a';
const sha = 'a'.repeat(64);

/** Strings tried, in order, for a `pattern` (the first that matches it is used). */
const CANDIDATES = [uuid, sha, now, 'c-1', 'tok_0123456789abcdef', '52:54:00:12:34:56', 'http://x/y', 'a'];

type Schema = Record<string, unknown>;

/** A value `schema` should accept (best effort: samples, not proofs). */
function sample(schema: Schema | undefined): unknown {
  if (!schema) return 'x';
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  for (const key of ['oneOf', 'anyOf'] as const)
    if (Array.isArray(schema[key])) return sample(schema[key][0]);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'object' || schema.properties) {
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    return Object.fromEntries(Object.entries(properties).map(([k, s]) => [k, sample(s)]));
  }
  if (type === 'array') {
    const n = Math.max(1, Number(schema.minItems ?? 1));
    return Array.from({ length: Math.min(n, 3) }, () => sample(schema.items as Schema));
  }
  if (type === 'integer' || type === 'number') return Number(schema.minimum ?? 1);
  if (type === 'boolean') return true;
  if (type === 'null') return null;
  if (type === 'string') {
    if (typeof schema.pattern === 'string') {
      const re = new RegExp(schema.pattern, 'u');
      return CANDIDATES.find((c) => re.test(c)) ?? 'a';
    }
    return 'a'.repeat(Math.max(1, Number(schema.minLength ?? 1)));
  }
  return {};
}

/** `value`, then broken copies: each property removed, replaced by wrong types, one added. */
function variants(value: unknown): unknown[] {
  const out: unknown[] = [value];
  const walk = (v: unknown, replace: (w: unknown) => unknown): void => {
    for (const wrong of [null, 7, -1, 1.5, 'x', 'x'.repeat(5000), [], {}, true]) out.push(replace(wrong));
    if (Array.isArray(v)) {
      out.push(replace([...v, ...v, ...v, ...v, ...v, ...v, ...v, ...v, ...v, ...v, ...v]));
      for (const [i, item] of v.entries()) walk(item, (w) => replace(v.map((x, j) => (j === i ? w : x))));
    } else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      out.push(replace({ ...o, unexpected: 1 }));
      for (const key of Object.keys(o)) {
        const { [key]: _, ...without } = o;
        out.push(replace(without));
        walk(o[key], (w) => replace({ ...o, [key]: w }));
      }
    }
  };
  walk(value, (w) => w);
  return out;
}

/** Hand-written valid messages, beyond what `sample` makes of the schemas. */
const MESSAGES: Record<string, unknown[]> = {
  'protocol.server-message': [
    { v: 1, type: 'wake' },
    { v: 1, type: 'wake', topic: 'images' },
    {
      v: 1,
      type: 'commands',
      commands: [
        { id: 'c-1', node: uuid, action: 'power.set', args: {}, deadline: now, attempt: 1, receipt: 'r' },
      ],
    },
    {
      v: 1,
      type: 'images',
      images: [
        {
          uuid,
          name: 'img',
          disk_format: 'qcow2',
          files: [{ role: 'disk', size: 5, sha256: sha, url: 'https://s3/x', url_expires_at: now }],
        },
      ],
      cursor: 'next',
    },
    { v: 1, type: 'result_ack', command_id: 'c-1' },
    { v: 1, type: 'welcome', protocol_version: 3, oldest_supported_protocol: 1, missing_features: ['x.y'] },
    { v: 1, type: 'error', message: 'no' },
  ],
  'protocol.agent-message': [
    { v: 1, type: 'hello', hostname: 'h1', agent_version: '0.2.0', drivers: ['ipmi'], features: ['welcome'] },
    { v: 1, type: 'heartbeat', sent_at: now },
    { v: 1, type: 'pull', max: 10 },
    { v: 1, type: 'command_ack', command_id: 'c-1', receipt: 'r' },
    {
      v: 1,
      type: 'command_result',
      command_id: 'c',
      receipt: 'r',
      status: 'failed',
      error: 'e',
      finished_at: now,
    },
    {
      v: 1,
      type: 'power_report',
      reports: [{ node: 'n', power_state: null, failures: 2, observed_at: now }],
    },
    { v: 1, type: 'deploy_callback', node: uuid, token: 'tok_0123456789abcdef' },
    { v: 1, type: 'images_pull', accepts: ['disk'] },
    {
      v: 1,
      type: 'image_report',
      reports: [
        {
          image: uuid,
          state: 'ready',
          bytes_done: 1,
          bytes_total: 1,
          observed_at: now,
          served: { path: `${uuid}/disk.raw.gz`, format: 'raw+gzip', sha256: sha, size: 1 },
        },
      ],
    },
  ],
  'boot.prepare-args': [
    { node_uuid: uuid, macs: ['52:54:00:12:34:56'], boot_mode: 'uefi', kernel: uuid, ramdisk: uuid },
  ],
  'ramdisk.root-device-hints': [{ size: 100, model: 'm', rotational: false }, { size: '>= 100' }],
};

const vectors = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../protocol/ramdisk-vectors.json'), 'utf8'),
) as {
  requests: { message: unknown }[];
  answers: { message: unknown }[];
};
MESSAGES['ramdisk.request'] = vectors.requests.map((v) => v.message);
MESSAGES['ramdisk.answer'] = vectors.answers.map((v) => v.message);

describe('the agent bundle precompiles its validators', () => {
  it('one for every validator the agent registers; none left to Ajv at run time', async () => {
    expect(precompiled.VALIDATORS_PRECOMPILED).toBe(true);
    const source = await precompiledValidatorsSource();
    const names = [...registeredValidators().keys()];
    // The agent's protocol, ramdisk, discovery and boot validators at least.
    for (const name of [
      'protocol.server-message',
      'ramdisk.request',
      'discovery.agent-site',
      'boot.prepare-args',
    ])
      expect(names).toContain(name);
    for (const name of names) {
      expect(source).toContain(JSON.stringify(name));
      expect(typeof precompiled.lazyValidator(name)).toBe('function');
    }
    expect(() => precompiled.lazyValidator('no.such')).toThrow(/was not precompiled/);
    expect(source).not.toMatch(/new Ajv|require\("ajv"\)|ajv\/dist\/(core|compile)/);
  });

  it('same verdict and errors as Ajv on valid and broken messages', () => {
    let checked = 0;
    let refused = 0;
    for (const [name, { options, schema }] of registeredValidators()) {
      const compiled = lazyValidator<unknown>(name, options, schema);
      const standalone = precompiled.lazyValidator(name);
      const seeds = [sample(schema as Schema), ...(MESSAGES[name] ?? []), undefined, 'x', 0, [], {}];
      for (const seed of seeds) {
        for (const value of variants(seed)) {
          const verdict = compiled(value);
          expect(standalone(value), `${name}: ${JSON.stringify(value)?.slice(0, 300)}`).toBe(verdict);
          expect(standalone.errors ?? null).toStrictEqual(compiled.errors ?? null);
          checked++;
          if (!verdict) refused++;
        }
      }
      // Every hand-written message is valid (the samples are a check of the test itself).
      for (const message of MESSAGES[name] ?? []) {
        if (name === 'ramdisk.request' || name === 'ramdisk.answer') continue;
        expect(compiled(message), `${name}: ${JSON.stringify(compiled.errors)}`).toBe(true);
      }
    }
    expect(checked).toBeGreaterThan(2000);
    expect(refused).toBeGreaterThan(1000);
  });
});

describe('errorsText', () => {
  const ajv = new Ajv2020();
  const errors: ErrorObject[] = [
    { instancePath: '/a/0', schemaPath: '#/x', keyword: 'type', params: {}, message: 'must be string' },
    {
      instancePath: '',
      schemaPath: '#/y',
      keyword: 'required',
      params: {},
      message: "must have required property 'b'",
    },
    { instancePath: '/c', schemaPath: '#/z', keyword: 'x', params: {} },
  ];
  it.each([
    [undefined, undefined],
    [[], undefined],
    [errors.slice(0, 1), undefined],
    [errors, undefined],
    [errors, { dataVar: 'args' }],
    [errors, { separator: '; ', dataVar: 'step_args' }],
  ] as const)('formats as Ajv does (%#)', (list, options) => {
    const mine = errorsText(list as ErrorObject[] | undefined, options);
    expect(mine).toBe(ajv.errorsText(list as ErrorObject[] | undefined, options));
    expect(precompiled.errorsText(list as ErrorObject[] | undefined, options)).toBe(mine);
  });
});
