/**
 * scripts/agent-bundle.ts's `builtinsWithoutImport`: in the agent's bundle, Node's built-ins
 * are read through `process.getBuiltinModule` at their first use, never linked by an ES
 * `import` (which, for node:http, loads undici: docs/agent.md, "Footprint").
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinsWithoutImport, bundleAgent } from '../../scripts/agent-bundle.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'metalplane-bundle-builtins-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bundles `source` (an ES module) with the plugin and runs it: what it printed. */
async function bundleAndRun(source: string): Promise<string> {
  writeFileSync(join(dir, 'entry.mjs'), source);
  await build({
    entryPoints: [join(dir, 'entry.mjs')],
    outfile: join(dir, 'out.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    logLevel: 'silent',
    plugins: [builtinsWithoutImport()],
  });
  return execFileSync(process.execPath, [join(dir, 'out.mjs')], { encoding: 'utf8' });
}

describe('Node built-ins in the agent bundle', () => {
  it('named, default and namespace imports of node:http work and leave undici unloaded', async () => {
    const out = await bundleAndRun(
      [
        "import http, { STATUS_CODES, createServer } from 'node:http';",
        "import * as https from 'node:https';",
        "import { join } from 'path';",
        'const loaded = (name) => process.moduleLoadList.some((m) => m.includes(name));',
        'const server = createServer((_req, res) => res.end("hi"));',
        'server.listen(0, "127.0.0.1", () => {',
        '  http.get("http://127.0.0.1:" + server.address().port + "/", (res) => {',
        '    res.setEncoding("utf8");',
        '    let body = "";',
        '    res.on("data", (c) => (body += c));',
        '    res.on("end", () => {',
        '      console.log(JSON.stringify({ body, ok: STATUS_CODES[200], agent: typeof https.Agent, join: join("a", "b"), undici: loaded("undici") }));',
        '      server.close();',
        '    });',
        '  });',
        '});',
      ].join('\n'),
    );
    expect(JSON.parse(out)).toEqual({ body: 'hi', ok: 'OK', agent: 'function', join: 'a/b', undici: false });
  });

  it('loads a built-in at the first read of one of its exports, not at start', async () => {
    const out = await bundleAndRun(
      [
        "import { execFileSync } from 'node:child_process';",
        "const loaded = () => process.moduleLoadList.includes('NativeModule child_process');",
        'const before = loaded();',
        "const echoed = execFileSync('echo', ['x'], { encoding: 'utf8' }).trim();",
        'console.log(JSON.stringify({ before, after: loaded(), echoed }));',
      ].join('\n'),
    );
    expect(JSON.parse(out)).toEqual({ before: false, after: true, echoed: 'x' });
  });

  it('a built-in that is a function (node:events) is itself, as a default import', async () => {
    const out = await bundleAndRun(
      [
        "import EventEmitter, { once } from 'node:events';",
        'class Bus extends EventEmitter {}',
        'const bus = new Bus();',
        'const got = once(bus, "hi");',
        'bus.emit("hi", 42);',
        'got.then(([value]) => console.log(JSON.stringify({ value, isEmitter: bus instanceof EventEmitter })));',
      ].join('\n'),
    );
    expect(JSON.parse(out)).toEqual({ value: 42, isEmitter: true });
  });

  it("the agent's bundle has no ES import of a built-in but node:module (its require)", async () => {
    await bundleAgent(join(dir, 'agent.mjs'));
    const text = readFileSync(join(dir, 'agent.mjs'), 'utf8');
    const specifiers = [...text.matchAll(/\b(?:from|import)\s*\(?\s*["']((?:node:)?[\w/]+)["']/g)]
      .map((m) => m[1] as string)
      .filter((specifier) => isBuiltin(specifier));
    expect(specifiers).toEqual(['node:module']);
  });
});
