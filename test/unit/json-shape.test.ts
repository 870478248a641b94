import { describe, expect, it } from 'vitest';
import { parseJsonText } from '../../lambda/api/listing.ts';
import {
  bodyShapeProblem,
  encodingProblem,
  jsonTextProblem,
  MAX_BODY_DEPTH,
  MAX_BODY_VALUES,
  textProblem,
} from '../../lambda/http/json-shape.ts';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('bodyShapeProblem', () => {
  it('accepts ordinary bodies, and non-JSON text (left to the route)', () => {
    expect(bodyShapeProblem('{"name":"n","extra":{"a":[1,2,{"b":null}]}}')).toBeUndefined();
    expect(bodyShapeProblem('[]')).toBeUndefined();
    expect(bodyShapeProblem('not json {{{')).toBeUndefined();
    expect(bodyShapeProblem('')).toBeUndefined();
  });

  it('refuses nesting deeper than 32 levels, counting only outside strings', () => {
    expect(bodyShapeProblem(nested(MAX_BODY_DEPTH))).toBeUndefined();
    expect(bodyShapeProblem(nested(MAX_BODY_DEPTH + 1))).toMatch(/nested deeper than 32/);
    expect(bodyShapeProblem(JSON.stringify({ s: '['.repeat(100) }))).toBeUndefined();
    expect(bodyShapeProblem(JSON.stringify({ s: '\\"['.repeat(100) }))).toBeUndefined();
  });

  it('refuses more than the bound of values in total', () => {
    const array = (n: number) => JSON.stringify(Array.from({ length: n }, () => 0));
    expect(bodyShapeProblem(array(MAX_BODY_VALUES))).toBeUndefined();
    expect(bodyShapeProblem(array(MAX_BODY_VALUES + 1))).toMatch(/more than 10000 values/);
    const spread = JSON.stringify(Array.from({ length: 100 }, () => Array.from({ length: 101 }, () => 1)));
    expect(bodyShapeProblem(spread)).toMatch(/more than/);
    expect(bodyShapeProblem(JSON.stringify({ s: ','.repeat(20_000) }))).toBeUndefined();
  });
});

describe('bodyShapeProblem: duplicate member names', () => {
  it('refuses a member named twice in one object, at any depth, escaped or not', () => {
    expect(bodyShapeProblem('{"name":"a","name":"b"}')).toContain('"name" twice');
    expect(bodyShapeProblem('{"extra":{"a":1,"\\u0061":2}}')).toContain('"a" twice');
    expect(bodyShapeProblem('[{"op":"add","op":"remove"}]')).toContain('"op" twice');
  });

  it('accepts the same name in different objects, and names that only appear as values', () => {
    expect(bodyShapeProblem('{"a":{"a":1},"b":{"a":2}}')).toBeUndefined();
    expect(bodyShapeProblem('[{"op":"add"},{"op":"remove"}]')).toBeUndefined();
    expect(bodyShapeProblem('{"a":"a","b":["a","a"]}')).toBeUndefined();
    expect(bodyShapeProblem('{"a":"x\\"","b":"\\\\"}')).toBeUndefined();
  });

  it('still refuses deep nesting and leaves non-JSON to the route', () => {
    expect(bodyShapeProblem(`${'['.repeat(40)}${']'.repeat(40)}`)).toContain('nested deeper');
    expect(bodyShapeProblem('{"name":')).toBeUndefined();
  });
});

describe('text guards', () => {
  it('refuses NUL, unpaired surrogates and raw U+FFFD (invalid UTF-8 decoded)', () => {
    expect(textProblem('a\u0000b')).toContain('NUL');
    expect(textProblem('\ud800')).toContain('unpaired');
    expect(textProblem('x\udc00')).toContain('unpaired');
    expect(textProblem('é☃𝄞')).toBeUndefined();
    expect(encodingProblem(Buffer.from([0x22, 0xff, 0x22]).toString('utf8'))).toContain('UTF-8');
    expect(encodingProblem('"\\ufffd"')).toBeUndefined();
  });

  it('jsonTextProblem checks member names and values of JSON only', () => {
    expect(jsonTextProblem('{"extra":{"\\ud800":1}}')).toContain('unpaired');
    expect(jsonTextProblem('{"target":"\\u0000"}')).toContain('NUL');
    expect(jsonTextProblem('{"target":')).toBeUndefined();
    expect(jsonTextProblem('{"target":"manage"}')).toBeUndefined();
  });

  it('parseJsonText answers 400 for each, and parses clean JSON', () => {
    for (const text of ['{"a":"\\u0000"}', '{"\\ud800":1}', '{"a":"\uFFFD"}', '{"a":1e400}', '{"a":']) {
      expect(() => parseJsonText(text), text).toThrow(expect.objectContaining({ kind: 'invalid' }));
    }
    expect(parseJsonText('{"a":"\\ud83d\\ude00","b":[1,{"c":null}]}')).toEqual({
      a: '😀',
      b: [1, { c: null }],
    });
  });
});
