import { describe, expect, it } from 'vitest';
import { bodyShapeProblem, MAX_BODY_DEPTH, MAX_BODY_VALUES } from '../../lambda/http/json-shape.ts';

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
