import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { publishCacheEntry } from '../../scripts/cache-entry.ts';

let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));

function staged(name: string, content: string): string {
  const dir = join(root, `.${name}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'file'), content);
  return dir;
}

describe('publishCacheEntry: builds of one key racing into a shared cache', () => {
  it('publishes the first build; a later one of the same key keeps the standing entry and drops its own', () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    const dir = join(root, 'key');
    const usable = () => existsSync(join(dir, 'file'));
    expect(publishCacheEntry(staged('a', 'first'), dir, usable)).toBe(true);
    expect(publishCacheEntry(staged('b', 'second'), dir, usable)).toBe(false);
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('first');
    expect(readdirSync(root)).toStrictEqual(['key']); // the loser's staging is gone
  });

  it('replaces an entry the caller finds unusable', () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    const dir = join(root, 'key');
    mkdirSync(dir);
    writeFileSync(join(dir, 'other'), 'a file cut short');
    expect(publishCacheEntry(staged('a', 'fresh'), dir, () => existsSync(join(dir, 'file')))).toBe(true);
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('fresh');
    expect(readdirSync(root)).toStrictEqual(['key']);
  });

  it('throws what is not a name clash (a missing staging directory)', () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    expect(() => publishCacheEntry(join(root, 'nothing'), join(root, 'key'), () => true)).toThrow(/ENOENT/);
  });
});
