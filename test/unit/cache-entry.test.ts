import { spawn } from 'node:child_process';
import { once } from 'node:events';
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
import { publishCacheEntry, withBuildLock } from '../../scripts/cache-entry.ts';

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

describe('withBuildLock: one build at a time across processes', () => {
  const lockDir = () => join(root, '.build.lock');

  it('runs a second build only once the first has ended, and frees the lock', async () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = withBuildLock(lockDir(), async () => {
      order.push('first started');
      await gate;
      order.push('first ended');
      return 1;
    });
    const second = withBuildLock(lockDir(), async () => {
      order.push('second started');
      return 2;
    });
    await Promise.resolve();
    expect(order).toStrictEqual(['first started']);
    expect(readFileSync(join(lockDir(), 'owner'), 'utf8')).toBe(String(process.pid));
    release();
    expect(await Promise.all([first, second])).toStrictEqual([1, 2]);
    expect(order).toStrictEqual(['first started', 'first ended', 'second started']);
    expect(existsSync(lockDir())).toBe(false);
  });

  it('waits while another live process holds it, and goes on once that one is gone', async () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    const exited = once(holder, 'exit');
    mkdirSync(lockDir());
    writeFileSync(join(lockDir(), 'owner'), String(holder.pid));
    let ran = false;
    const waiting = withBuildLock(lockDir(), async () => {
      ran = true;
      return 'built';
    });
    // The holder is alive: the build cannot have started, however long this took.
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toBe(false);
    holder.kill();
    await exited;
    expect(await waiting).toBe('built');
    expect(existsSync(lockDir())).toBe(false);
  });

  it('takes over a lock whose owner died, and frees it when the build throws', async () => {
    root = mkdtempSync(join(tmpdir(), 'metalplane-cache-'));
    const dead = spawn('true', { stdio: 'ignore' });
    await once(dead, 'exit');
    mkdirSync(lockDir());
    writeFileSync(join(lockDir(), 'owner'), String(dead.pid));
    await expect(
      withBuildLock(lockDir(), async () => {
        throw new Error('build failed');
      }),
    ).rejects.toThrow('build failed');
    expect(existsSync(lockDir())).toBe(false);
  });
});
