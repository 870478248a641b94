/**
 * The second, independent AWS emulator engines (docs/local-aws-engines.md), started
 * beside moto so that the adapters' tests also run on an engine moto's authors did not
 * write: ElasticMQ for SQS (a JVM server) and dynalite for DynamoDB (a Node server,
 * in-memory). `scripts/setup-engines.sh` installs both into `.engines/`.
 *
 * As the suite's vitest global setup (`vitest.config.ts`, `vitest.engines.config.ts`) it starts moto and every engine
 * it can, and provides `awsEndpoint` (moto) and `engines` (what runs, and why anything
 * does not). An engine that is not installed, or whose runtime is missing, is reported
 * and left out rather than failing the run: CI installs both, so a missing one there
 * shows as a named skip in the test output, never as silence.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { freePort, startMoto } from '../../local/moto.ts';
import { spawnOwned, stopOwned } from '../../local/processes.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const enginesDir = join(projectRoot, '.engines');

/** One running engine: what it emulates, where, and which version. */
export interface EngineEndpoint {
  readonly name: string;
  readonly version: string;
  readonly endpoint: string;
}

export interface Engines {
  readonly sqs?: EngineEndpoint;
  readonly dynamodb?: EngineEndpoint;
  /** Why an engine is not running (not installed, no JRE ...), by service. */
  readonly missing: Readonly<Record<string, string>>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    awsEndpoint: string;
    engines: Engines;
  }
}

interface Running extends EngineEndpoint {
  stop(): Promise<void>;
}

/** Polls `probe` until it answers true, the child exits, or the time is up. */
async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  child: { exitCode: number | null; signalCode: NodeJS.Signals | null },
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited with ${child.exitCode ?? child.signalCode}\n${output()}`);
    if (await probe().catch(() => false)) return;
    // Back-off between probes of a server still starting (not a synchronisation sleep:
    // the loop ends on the probe's answer).
    await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 250)));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms\n${output()}`);
}

function javaAvailable(): boolean {
  const path = process.env.PATH ?? '';
  return path.split(':').some((dir) => dir !== '' && existsSync(join(dir, 'java')));
}

/** ElasticMQ (SQS) on a free loopback port, in memory; undefined with the reason it cannot run. */
export async function startElasticMq(): Promise<Running | string> {
  const lib = join(enginesDir, 'elasticmq', 'lib');
  if (!existsSync(lib)) return `not installed (${lib}): run 'bash scripts/setup-engines.sh'`;
  if (!javaAvailable()) return 'no java on PATH (Debian: default-jre-headless)';
  const server = readdirSync(lib).find((jar) => jar.startsWith('elasticmq-server_'));
  const version = server?.replace(/^elasticmq-server_[^-]+-/, '').replace(/\.jar$/, '') ?? 'unknown';
  const port = await freePort();
  const configDir = mkdtempSync(join(tmpdir(), 'metalplane-elasticmq-'));
  const config = join(configDir, 'elasticmq.conf');
  // Queue URLs name 127.0.0.1 and the real port (the SDK uses them as they are); the region
  // and account are moto's, so ARNs in redrive policies look the same on both engines.
  writeFileSync(
    config,
    [
      'include classpath("application.conf")',
      `node-address { protocol = "http", host = "127.0.0.1", port = ${port}, context-path = "" }`,
      `rest-sqs { enabled = true, bind-port = ${port}, bind-hostname = "127.0.0.1", sqs-limits = strict }`,
      'rest-stats { enabled = false }',
      'aws { region = "us-east-1", accountId = "123456789012" }',
      '',
    ].join('\n'),
  );
  const child = spawnOwned(
    'elasticmq',
    'java',
    // A small heap and a quick JIT: the tests send a few hundred messages at most.
    [
      '-Xmx256m',
      '-XX:TieredStopAtLevel=1',
      `-Dconfig.file=${config}`,
      '-cp',
      `${lib}/*`,
      'org.elasticmq.server.Main',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: process.env, ports: [port] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await stopOwned(child);
    rmSync(configDir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      'ElasticMQ',
      async () => (await fetch(`${endpoint}/?Action=ListQueues`, { signal: AbortSignal.timeout(1000) })).ok,
      child,
      60_000,
      () => output,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { name: 'ElasticMQ', version, endpoint, stop };
}

/** dynalite (DynamoDB) on a free loopback port, in memory; or the reason it cannot run. */
export async function startDynalite(): Promise<Running | string> {
  const packageDir = join(enginesDir, 'dynalite', 'node_modules', 'dynalite');
  if (!existsSync(packageDir)) return `not installed (${packageDir}): run 'bash scripts/setup-engines.sh'`;
  const { version } = (await import(join(packageDir, 'package.json'), { with: { type: 'json' } }))
    .default as {
    version: string;
  };
  const port = await freePort();
  // Tables are ACTIVE at once (its default keeps them CREATING for 500 ms), as on moto.
  const child = spawnOwned(
    'dynalite',
    process.execPath,
    [
      join(packageDir, 'cli.js'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--createTableMs',
      '0',
      '--deleteTableMs',
      '0',
      '--updateTableMs',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: process.env, ports: [port] },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'dynalite',
      async () => output.includes('listening'),
      child,
      30_000,
      () => output,
    );
  } catch (error) {
    await stopOwned(child);
    throw error;
  }
  return { name: 'dynalite', version, endpoint, stop: () => stopOwned(child) };
}

/** Global setup: moto, plus every second engine that can run. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started: Array<{ stop(): Promise<void> }> = [];
  const missing: Record<string, string> = {};
  try {
    // Started together (ElasticMQ's JVM takes seconds); whatever did start is stopped if
    // another failed.
    const outcomes = await Promise.allSettled([startMoto(), startElasticMq(), startDynalite()]);
    for (const outcome of outcomes)
      if (outcome.status === 'fulfilled' && typeof outcome.value !== 'string') started.push(outcome.value);
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    const [moto, sqs, dynamodb] = outcomes.map(
      (outcome) => (outcome as PromiseFulfilledResult<unknown>).value,
    ) as [Awaited<ReturnType<typeof startMoto>>, Running | string, Running | string];
    const engines: { sqs?: EngineEndpoint; dynamodb?: EngineEndpoint; missing: Record<string, string> } = {
      missing,
    };
    if (typeof sqs === 'string') missing.sqs = `ElasticMQ: ${sqs}`;
    else {
      engines.sqs = { name: sqs.name, version: sqs.version, endpoint: sqs.endpoint };
    }
    if (typeof dynamodb === 'string') missing.dynamodb = `dynalite: ${dynamodb}`;
    else {
      engines.dynamodb = { name: dynamodb.name, version: dynamodb.version, endpoint: dynamodb.endpoint };
    }
    for (const [service, reason] of Object.entries(missing))
      console.warn(`metalplane: no second ${service} engine: ${reason}`);
    project.provide('awsEndpoint', moto.endpoint);
    project.provide('engines', engines);
  } catch (error) {
    await Promise.all(started.map((engine) => engine.stop()));
    throw error;
  }
  return async () => {
    await Promise.all(started.map((engine) => engine.stop()));
  };
}
