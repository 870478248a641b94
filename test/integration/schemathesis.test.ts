/**
 * Schemathesis (issue 12) over the served OpenAPI document: the real api handler behind
 * the local HTTP gateway, on its own moto resources, as an admin; schemathesis generates
 * requests from `GET /v1/openapi.json` (positive and negative bodies, parameters and
 * headers) and checks that no answer is a 5xx.
 *
 * The document is the served one, with one change: the path parameters of the operations
 * that do not delete are pinned (an `enum`) to real objects, so that generated bodies reach
 * the handlers' validation instead of stopping at a 404 (deletes keep free parameters).
 * The run is schemathesis's `examples` and `coverage` phases (the schema's own examples,
 * then the boundary and wrong-type values it derives from each schema: 4,000–5,500
 * requests, ≈ 40 s alone), with a seed: the same work on every run, however busy the
 * machine. It prints how many requests it made, from its HAR report. The `fuzzing` phase
 * is left out: it runs until its time limit whatever `--max-examples` says, so the work
 * it did (and whether the coverage phase even finished first) depended on the machine's
 * load; `SCHEMATHESIS_PHASES=examples,coverage,fuzzing` runs it by hand.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Router } from '../../lambda/http/router.ts';
import type { TestApi } from '../support/api.ts';
import { startFuzzTarget } from '../support/route-fixtures.ts';

const SCHEMATHESIS = join(import.meta.dirname, '../../.venv/bin/schemathesis');
const MAX_EXAMPLES = Number(process.env.SCHEMATHESIS_MAX_EXAMPLES ?? 10);
const PHASES = process.env.SCHEMATHESIS_PHASES ?? 'examples,coverage';
/** Only a guard against a hung run: the phases above end well before it, even on a loaded machine. */
const MAX_SECONDS = Number(process.env.SCHEMATHESIS_MAX_SECONDS ?? 240);
const SEED = process.env.SCHEMATHESIS_SEED ?? '20260512';
/** Operations whose path parameters stay free (see the header). */
const FREE_PARAMS = /^DELETE /;
/**
 * Left out: the boot device, inject_nmi and indicator routes wait for the node's agent (none is connected here), so
 * on an existing node they answer 503 after 20 s, by design (`routes/power.ts`).
 * `hostile-input.test.ts` sends them its bodies.
 */
const EXCLUDED_PATHS = '/management/(boot_device|inject_nmi|indicators)';

let api: TestApi;
let router: Router | undefined;
let dir: string;
let params: Record<string, () => string> = {};

beforeAll(async () => {
  ({ api, router, params } = await startFuzzTarget('fuzz', 'cc'));
  // SCHEMATHESIS_REPORT_DIR keeps the document and the reports (to replay a failure).
  dir = process.env.SCHEMATHESIS_REPORT_DIR ?? mkdtempSync(join(tmpdir(), 'schemathesis-'));
  mkdirSync(dir, { recursive: true });
}, 60_000);
afterAll(async () => {
  await api?.close();
  if (dir && !process.env.SCHEMATHESIS_REPORT_DIR) rmSync(dir, { recursive: true, force: true });
});

/** The served document, path parameters pinned to the fixtures where FREE_PARAMS allows. */
async function pinnedDocument(): Promise<Record<string, any>> {
  const served = await api.call('GET', '/v1/openapi.json');
  expect(served.status).toBe(200);
  const doc = served.body as Record<string, any>;
  for (const [pattern, operations] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (FREE_PARAMS.test(`${method.toUpperCase()} ${pattern}`)) continue;
      for (const parameter of operation.parameters ?? []) {
        const value = parameter.in === 'path' ? params[parameter.name] : undefined;
        if (value) parameter.schema = { type: 'string', enum: [value()] };
      }
    }
  }
  return doc;
}

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCHEMATHESIS, args, {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);

/** The document's operations (its `paths`, but the excluded ones) that no request in the HAR reached. */
function unexercised(
  paths: Record<string, Record<string, unknown>>,
  entries: ReadonlyArray<{ request: { method: string; url: string } }>,
): string[] {
  const excluded = new RegExp(EXCLUDED_PATHS);
  const sent = entries.map(
    ({ request }) => `${request.method.toUpperCase()} ${new URL(request.url).pathname}`,
  );
  const missing: string[] = [];
  for (const [pattern, operations] of Object.entries(paths)) {
    if (excluded.test(pattern)) continue;
    const path = pattern.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+');
    for (const method of Object.keys(operations)) {
      if (!HTTP_METHODS.has(method)) continue; // a path item's `parameters`, `summary` ...
      const operation = new RegExp(`^${method.toUpperCase()} ${path}$`);
      if (!sent.some((line) => operation.test(line))) missing.push(`${method.toUpperCase()} ${pattern}`);
    }
  }
  return missing;
}

describe('schemathesis over /v1/openapi.json', () => {
  it('finds no 5xx', async () => {
    expect(existsSync(SCHEMATHESIS), `${SCHEMATHESIS} (scripts/setup-venv.sh installs it)`).toBe(true);
    expect(router).toBeDefined();
    const schema = join(dir, 'openapi.json');
    const document = await pinnedDocument();
    writeFileSync(schema, JSON.stringify(document));
    const har = join(dir, 'requests.har');
    const { code, output } = await run([
      'run',
      schema,
      '--url',
      api.url,
      '--auth',
      `${api.admin.username}:${api.admin.password}`,
      '--header',
      'X-OpenStack-Ironic-API-Version: 1.82',
      '--phases',
      PHASES,
      '--checks',
      'not_a_server_error',
      '--max-examples',
      String(MAX_EXAMPLES),
      '--seed',
      SEED,
      '--max-time',
      String(MAX_SECONDS),
      // One worker: with two, hypothesis parses lambda sources with `ast` in two threads at
      // once, which CPython 3.11 (the venv's) can fail with "AST constructor recursion depth
      // mismatch" (cpython#106905) — a crash of the tool, not an answer of ours.
      '--workers',
      '1',
      '--request-timeout',
      '15',
      '--generation-database',
      'none',
      '--no-shrink',
      '--no-color',
      '--exclude-path-regex',
      EXCLUDED_PATHS,
      '--report',
      'har',
      '--report-har-path',
      har,
    ]);
    const entries: Array<{ request: { method: string; url: string }; response: { status: number } }> =
      existsSync(har) ? JSON.parse(readFileSync(har, 'utf8')).log.entries : [];
    const byClass: Record<string, number> = {};
    for (const { response } of entries) {
      const key = `${Math.floor(response.status / 100)}xx`;
      byClass[key] = (byClass[key] ?? 0) + 1;
    }
    const serverErrors = entries
      .filter(({ response }) => response.status >= 500)
      .map(({ request, response }) => `${response.status} ${request.method} ${request.url}`);
    process.stdout.write(`${output}\n`);
    process.stdout.write(
      `schemathesis ${PHASES}, ${MAX_EXAMPLES} examples/operation, seed ${SEED}: ${entries.length} requests ` +
        `(${Object.entries(byClass)
          .sort()
          .map(([status, n]) => `${n} ${status}`)
          .join(', ')}), exit ${code}\n`,
    );
    expect(serverErrors).toEqual([]);
    expect(code, output).toBe(0);
    // Every operation was sent requests: the phases ran to their end, whatever the load.
    expect(unexercised(document.paths, entries)).toStrictEqual([]);
  }, 300_000);
});
