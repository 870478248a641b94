/**
 * Foundation figures (printed, never asserted):
 *  - time for `npm start`'s stack (node local/start.ts) to serve /v1, from process spawn;
 *  - the api Lambda bundled as CDK bundles it (esbuild, minified, ESM): size, and cold
 *    init (module load + first invocation of GET /v1) in a fresh Node process each time;
 *    then, in the same process, what the first request needing DynamoDB adds: the AWS SDK's
 *    DynamoDB packages, loaded at first use since issue 18 (0 when already loaded).
 *
 *   npm run bench -- foundation
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { freePort } from '../local/moto.ts';
import { printTable, summarize } from './support.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

async function timeStackStartup(): Promise<number> {
  const [api, ws, moto] = [await freePort(), await freePort(), await freePort()];
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ['local/start.ts', '--api-port', String(api), '--ws-port', String(ws), '--moto-port', String(moto)],
    {
      stdio: 'ignore',
    },
  );
  try {
    for (let attempt = 0; attempt < 600; attempt++) {
      try {
        const response = await fetch(`http://127.0.0.1:${api}/v1`, { signal: AbortSignal.timeout(500) });
        if (response.ok) return performance.now() - started;
      } catch {
        // not yet
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error('stack did not serve /v1 within the bound');
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    await exited;
  }
}

async function bundleApi(dir: string): Promise<string> {
  const outfile = join(dir, 'index.mjs');
  await build({
    entryPoints: ['lambda/entrypoints/api.ts'],
    bundle: true,
    minify: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    outfile,
    // As CDK bundles it: the Node.js 24 Lambda runtime provides the AWS SDK v3.
    external: ['@aws-sdk/*'],
    banner: { js: "import{createRequire as __cr}from'module';const require=__cr(import.meta.url);" },
    logLevel: 'silent',
  });
  return outfile;
}

interface ColdInit {
  readonly loadMs: number;
  readonly firstMs: number;
  readonly dynamoMs: number;
}

/** Module load + first GET /v1, measured inside a fresh Node process (what a cold start pays). */
async function timeColdInit(bundle: string, dir: string): Promise<ColdInit> {
  const probe = join(dir, 'probe.mjs');
  writeFileSync(
    probe,
    `const t0 = performance.now();
const { handler } = await import(${JSON.stringify(bundle)});
const t1 = performance.now();
await handler({ version: '2.0', routeKey: '$default', rawPath: '/v1', rawQueryString: '', headers: { host: 'x' },
  requestContext: { http: { method: 'GET', path: '/v1' }, domainName: 'x', requestId: 'r' }, isBase64Encoded: false },
  { getRemainingTimeInMillis: () => 29000, awsRequestId: 'r', functionName: 'api' });
const t2 = performance.now();
await Promise.all([import('@aws-sdk/client-dynamodb'), import('@aws-sdk/lib-dynamodb')]);
const t3 = performance.now();
process.stdout.write(JSON.stringify({ loadMs: t1 - t0, firstMs: t2 - t1, dynamoMs: t3 - t2 }));`,
  );
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [probe], {
      env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`probe exited ${code}`))));
  });
  return JSON.parse(output) as ColdInit;
}

// Inside the project, so the externalized AWS SDK resolves from node_modules as it
// resolves from the runtime on Lambda.
mkdirSync(join('.local'), { recursive: true });
const dir = resolve(mkdtempSync(join('.local', 'bench-')));
try {
  const startups: number[] = [];
  for (let round = 0; round < ROUNDS; round++) startups.push(await timeStackStartup());
  const bundle = await bundleApi(dir);
  const loads: number[] = [];
  const firsts: number[] = [];
  const dynamos: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const { loadMs, firstMs, dynamoMs } = await timeColdInit(bundle, dir);
    loads.push(loadMs);
    firsts.push(firstMs);
    dynamos.push(dynamoMs);
  }
  const row = (name: string, samples: number[]) => {
    const s = summarize(samples);
    return { figure: name, rounds: s.n, 'min ms': s.min, 'p50 ms': s.p50, 'max ms': s.max };
  };
  printTable('Foundation', [
    row('local stack start → /v1 served', startups),
    row('api bundle: module load (cold)', loads),
    row('api bundle: first GET /v1', firsts),
    row('api bundle: then DynamoDB SDK load (1st use)', dynamos),
  ]);
  process.stdout.write(
    `\napi bundle size (esbuild, minified, ESM, AWS SDK external as on Lambda): ${(statSync(bundle).size / 1024).toFixed(1)} KiB\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
