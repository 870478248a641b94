import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// `npm test` runs the Go ramdisk's tests too (ramdisk/, `npm run test:ramdisk` alone).
// Go is required, not optional: a machine without it fails here rather than skipping.
const run = promisify(execFile);
const ramdisk = fileURLToPath(new URL('../../ramdisk', import.meta.url));
const PACKAGES = [
  'cmd/metalplane-ramdisk',
  'agentclient',
  'disks',
  'image',
  'inventory',
  'protocol',
  'rescue',
  'runner',
];

function findGo(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/go/bin'];
  return dirs.map((d) => join(d, 'go')).find((p) => existsSync(p));
}

describe('ramdisk (Go)', () => {
  it('passes go vet and go test', { timeout: 300_000 }, async () => {
    const go = findGo();
    if (!go) throw new Error('go not found (on PATH or /usr/local/go/bin): the ramdisk tests need Go');
    await run(go, ['vet', './...'], { cwd: ramdisk, timeout: 300_000 });
    const { stdout } = await run(go, ['test', './...'], {
      cwd: ramdisk,
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    for (const pkg of PACKAGES) expect(stdout).toMatch(new RegExp(`^ok\\s+\\S*${pkg}\\s`, 'm'));
  });
});
