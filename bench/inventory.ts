/**
 * Inventory figures (printed, never asserted): requests per second and p50/p99 latency of
 * node create, node show, node patch and a 100-node detailed list page with BENCH_NODES
 * nodes stored, through the local stack (a child process, so that the load generator and
 * the server do not share an event loop) and through the real Ironic of
 * `../shared/anchor/`, in the same run, one target after the other, with ratios.
 *
 * Where the time goes: CPU per request of every server process (the API's Node process,
 * moto, Ironic; read from /proc around each workload), and the AWS emulator alone, timed
 * with raw DynamoDB calls equivalent to what each request makes.
 *
 *   npm run bench -- inventory
 *   BENCH_NODES=300 BENCH_SECONDS=3 npm run bench -- inventory        # about a minute
 *
 * Environment: BENCH_NODES (10000) nodes stored, BENCH_CREATE (1000, at most BENCH_NODES)
 * of them created sequentially and measured, the rest seeded at BENCH_SEED_CONCURRENCY (8);
 * BENCH_SECONDS (10) per read/patch workload at BENCH_CONCURRENCY (8);
 * BENCH_TARGETS (metalplane,ironic); BENCH_CREDENTIALS=user:password for Metalplane
 * (default: the local stack's own admin, .local/admin-password); BENCH_NOAUTH=1 runs the
 * local stack with --noauth instead; BENCH_SITE puts conductor_group on Metalplane's nodes
 * (Ironic's one conductor serves only the default group, so Ironic's nodes get none).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditTable, inventoryTable, tableName } from '../infra/resources.ts';
import { lockoutId } from '../lambda/domain/auth/lockout.ts';
import { freePort } from '../local/moto.ts';
import { ironicUnavailable, startIronicAnchor } from './ironic-anchor.ts';
import { describeFailures, type LoadRequest, type LoadResult, runLoad } from './load.ts';
import { printTable } from './support.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`${name} must be an integer ≥ ${min}, not '${raw}'\n`);
    process.exit(2);
  }
  return value;
}

const NODES = intEnv('BENCH_NODES', 10_000);
const CREATE = Math.min(intEnv('BENCH_CREATE', 1000), NODES);
const SECONDS = intEnv('BENCH_SECONDS', 10);
const CONCURRENCY = intEnv('BENCH_CONCURRENCY', 8);
const SEED_CONCURRENCY = intEnv('BENCH_SEED_CONCURRENCY', 8);
const TARGETS = (process.env.BENCH_TARGETS ?? 'metalplane,ironic')
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean);
const SITE = process.env.BENCH_SITE || undefined;
const NOAUTH = process.env.BENCH_NOAUTH === '1' || process.env.BENCH_NOAUTH === 'true';
const API_VERSION = '1.78';
/** A UUID no node has: what show/patch ask for when no node could be created. */
const MISSING_UUID = '00000000-0000-4000-8000-000000000000';

const WORKLOADS = ['create', 'show', 'patch', 'list'] as const;
type Workload = (typeof WORKLOADS)[number];
const WORKLOAD_LABEL: Record<Workload, string> = {
  create: 'node create (sequential, c=1)',
  show: `node show (c=${CONCURRENCY})`,
  patch: `node patch (c=${CONCURRENCY})`,
  list: `list 100, detail (c=${CONCURRENCY})`,
};

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

// --- cleanup on Ctrl-C --------------------------------------------------------------------

const cleanups = new Set<() => Promise<void>>();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`\n${signal}: stopping what the bench started...`);
    Promise.allSettled([...cleanups].map((cleanup) => cleanup())).then(() => process.exit(130));
  });
}

// --- CPU time of server processes, from /proc -----------------------------------------------

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // keep 100
}

/** User + system CPU milliseconds a process has used so far (undefined once it is gone). */
function cpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` whose command line contains `needle`. */
function childPids(pid: number, needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

// --- targets --------------------------------------------------------------------------------

interface Target {
  readonly name: 'metalplane' | 'ironic';
  readonly baseUrl: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Server processes whose CPU time is charged to the workload, by label. */
  readonly processes: ReadonlyArray<{ readonly label: string; readonly pid: number }>;
  readonly createBody: (i: number) => Record<string, unknown>;
  /** Metalplane only: the AWS emulator behind it. */
  readonly emulator?: { readonly endpoint: string; readonly table: string; readonly auditTable: string };
  /** Metalplane only: the username every request authenticates as (one user lookup each). */
  readonly username?: string;
  /** Resolves once the target serves (again): after a pause, Ironic's conductor must heartbeat. */
  ready(): Promise<void>;
  stop(): Promise<void>;
}

async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  log(`  (${what} not seen within ${timeoutMs / 1000} s: going on)`);
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<unknown> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url} → ${response.status}`);
  return JSON.parse(text);
}

async function startMetalplane(): Promise<Target> {
  const [api, ws, moto] = [await freePort(), await freePort(), await freePort()];
  const args = [
    join(projectRoot, 'local', 'start.ts'),
    '--api-port',
    String(api),
    '--ws-port',
    String(ws),
    '--moto-port',
    String(moto),
    ...(NOAUTH ? ['--noauth'] : []),
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  // Keep draining: a full pipe would stall the server.
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-16_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let motoPid: number | undefined;
  const stop = async () => {
    cleanups.delete(stop);
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    if (motoPid !== undefined) {
      try {
        process.kill(motoPid, 0);
        process.kill(motoPid, 'SIGKILL');
      } catch {
        // already gone, as it should be
      }
    }
  };
  cleanups.add(stop);
  try {
    const deadline = Date.now() + 90_000;
    let apiUrl: string | undefined;
    let motoUrl: string | undefined;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`the local stack exited with code ${child.exitCode}`);
      apiUrl ??= /API \(Ironic v1\):\s+(\S+)\/v1/.exec(output)?.[1];
      motoUrl ??= /AWS emulator \(moto\):\s+(\S+)/.exec(output)?.[1];
      if (apiUrl && motoUrl) {
        const response = await fetch(`${apiUrl}/v1`, { signal: AbortSignal.timeout(2000) }).catch(
          () => undefined,
        );
        await response?.arrayBuffer();
        if (response?.ok) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!apiUrl || !motoUrl) throw new Error('the local stack did not print its banner within 90 s');
    const pid = child.pid as number;
    motoPid = childPids(pid, 'moto')[0];
    const credentials = NOAUTH
      ? undefined
      : (process.env.BENCH_CREDENTIALS ??
        `admin:${readFileSync(join(projectRoot, '.local', 'admin-password'), 'utf8').trim()}`);
    const headers: Record<string, string> = { 'X-OpenStack-Ironic-API-Version': API_VERSION };
    if (credentials) headers.Authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
    return {
      name: 'metalplane',
      baseUrl: apiUrl,
      headers,
      processes: [{ label: 'api', pid }, ...(motoPid !== undefined ? [{ label: 'moto', pid: motoPid }] : [])],
      createBody: (i) => ({
        driver: 'fake-hardware',
        name: `bench-${i}`,
        ...(SITE ? { conductor_group: SITE } : {}),
      }),
      emulator: {
        endpoint: motoUrl,
        table: tableName('metalplane-local', inventoryTable),
        auditTable: tableName('metalplane-local', auditTable),
      },
      ...(credentials ? { username: credentials.slice(0, credentials.indexOf(':')) } : {}),
      ready: () =>
        pollUntil('Metalplane serving /v1', async () => Boolean(await getJson(`${apiUrl}/v1`)), 30_000),
      stop,
    };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n--- local stack output (tail) ---\n${output.slice(-3000)}`);
  }
}

async function startIronic(): Promise<Target> {
  const anchor = await startIronicAnchor();
  const stop = async () => {
    cleanups.delete(stop);
    await anchor.stop();
  };
  cleanups.add(stop);
  return {
    name: 'ironic',
    baseUrl: anchor.url,
    headers: { 'X-OpenStack-Ironic-API-Version': API_VERSION },
    processes: [{ label: 'ironic', pid: anchor.pid }],
    // No conductor_group: a group no conductor serves is refused ("No valid host was found").
    createBody: (i) => ({ driver: 'fake-hardware', name: `bench-${i}` }),
    // Every conductor must be alive again (heartbeat) before nodes can be created.
    ready: () =>
      pollUntil(
        "Ironic's conductor alive",
        async () => {
          const { conductors } = (await getJson(`${anchor.url}/v1/conductors`, {
            'X-OpenStack-Ironic-API-Version': API_VERSION,
          })) as { conductors?: Array<{ alive?: boolean }> };
          return Boolean(conductors?.length) && (conductors ?? []).every((conductor) => conductor.alive);
        },
        90_000,
      ),
    stop,
  };
}

// --- workloads ------------------------------------------------------------------------------

interface Measured {
  readonly result: LoadResult;
  /** CPU milliseconds per request, per server process label, plus `loadgen` (this process). */
  readonly cpuPerRequest: Readonly<Record<string, number>>;
}

async function measure(
  target: Target,
  options: Omit<Parameters<typeof runLoad>[0], 'baseUrl'>,
): Promise<Measured> {
  const before = target.processes.map(({ pid }) => cpuMs(pid));
  const ownBefore = process.cpuUsage();
  const result = await runLoad({ ...options, baseUrl: target.baseUrl });
  const own = process.cpuUsage(ownBefore);
  const per = (ms: number) => (result.requests > 0 ? ms / result.requests : Number.NaN);
  const cpuPerRequest: Record<string, number> = { loadgen: per((own.user + own.system) / 1000) };
  target.processes.forEach(({ label, pid }, i) => {
    const start = before[i];
    const end = cpuMs(pid);
    cpuPerRequest[label] = start === undefined || end === undefined ? Number.NaN : per(end - start);
  });
  return { result, cpuPerRequest };
}

function uuidOf(body: string): string | undefined {
  try {
    const uuid = (JSON.parse(body) as { uuid?: unknown }).uuid;
    return typeof uuid === 'string' ? uuid : undefined;
  } catch {
    return undefined;
  }
}

interface TargetRun {
  readonly name: Target['name'];
  readonly phases: Partial<Record<Workload, Measured>>;
  seed?: LoadResult;
  stored: number;
  emulator?: EmulatorFigures;
  error?: string;
}

/** A started target with what the run learnt about it. */
interface Running {
  readonly target: Target;
  readonly run: TargetRun;
  readonly uuids: string[];
}

function signalAll(target: Target, signal: 'SIGSTOP' | 'SIGCONT'): void {
  for (const { pid } of target.processes) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

/**
 * Runs `step` on one target with the other targets' server processes paused (SIGSTOP),
 * so that an idle target's background work (Ironic's periodic tasks over every node) is
 * not charged to the one measured; resumed (SIGCONT) afterwards, whatever happens.
 */
async function alone(all: readonly Running[], active: Running, step: () => Promise<void>): Promise<void> {
  const others = all.filter((running) => running !== active && !running.run.error);
  for (const other of others) signalAll(other.target, 'SIGSTOP');
  try {
    await active.target.ready();
    await step();
  } catch (error) {
    active.run.error = (error as Error).message;
    log(`[${active.target.name}] failed: ${active.run.error}`);
  } finally {
    for (const other of others) signalAll(other.target, 'SIGCONT');
  }
}

const jsonHeaders = (target: Target) => ({ ...target.headers, 'Content-Type': 'application/json' });

function collector(uuids: string[]) {
  return (_i: number, status: number, body: string) => {
    const uuid = status === 201 ? uuidOf(body) : undefined;
    if (uuid) uuids.push(uuid);
  };
}

async function createPhase({ target, run, uuids }: Running): Promise<void> {
  log(`[${target.name}] creating ${CREATE} nodes sequentially (measured)...`);
  run.phases.create = await measure(target, {
    concurrency: 1,
    count: CREATE,
    maxDurationMs: 15 * 60_000,
    abortAfterFailures: 50,
    makeRequest: (i) => ({
      method: 'POST',
      path: '/v1/nodes',
      headers: jsonHeaders(target),
      body: target.createBody(i),
    }),
    onResponse: collector(uuids),
  });
  run.stored = uuids.length;
}

async function seedPhase({ target, run, uuids }: Running): Promise<void> {
  if (uuids.length === 0 || NODES <= uuids.length) return;
  const missing = NODES - uuids.length;
  log(`[${target.name}] seeding ${missing} more nodes at c=${SEED_CONCURRENCY} (not measured)...`);
  run.seed = await runLoad({
    baseUrl: target.baseUrl,
    concurrency: SEED_CONCURRENCY,
    count: missing,
    maxDurationMs: 30 * 60_000,
    abortAfterFailures: 100,
    makeRequest: (i) => ({
      method: 'POST',
      path: '/v1/nodes',
      headers: jsonHeaders(target),
      body: target.createBody(CREATE + i),
    }),
    onResponse: collector(uuids),
  });
  run.stored = uuids.length;
}

function requestFor(workload: Exclude<Workload, 'create'>, { target, uuids }: Running) {
  const pick = (i: number) => uuids[i % Math.max(1, uuids.length)] ?? MISSING_UUID;
  return (i: number): LoadRequest => {
    switch (workload) {
      case 'show':
        return { method: 'GET', path: `/v1/nodes/${pick(i)}`, headers: target.headers };
      case 'patch':
        // `add` rather than `replace`: replacing a key that is not there yet is an error in both.
        return {
          method: 'PATCH',
          path: `/v1/nodes/${pick(i)}`,
          headers: jsonHeaders(target),
          body: [{ op: 'add', path: '/extra/bench', value: String(i) }],
        };
      case 'list':
        return { method: 'GET', path: '/v1/nodes?limit=100&detail=True', headers: target.headers };
    }
  };
}

async function timedPhase(workload: Exclude<Workload, 'create'>, running: Running): Promise<void> {
  const { target, run } = running;
  const makeRequest = requestFor(workload, running);
  // Warm-up (not measured, at most 2 s of starts): JIT, connection pools, caches.
  await runLoad({
    baseUrl: target.baseUrl,
    concurrency: CONCURRENCY,
    count: CONCURRENCY * 4,
    durationMs: 2000,
    maxDurationMs: 60_000,
    makeRequest: (i) => makeRequest(1_000_000 + i),
  });
  log(`[${target.name}] ${WORKLOAD_LABEL[workload]} for ${SECONDS} s with ${run.stored} nodes stored...`);
  run.phases[workload] = await measure(target, {
    concurrency: CONCURRENCY,
    durationMs: SECONDS * 1000,
    maxDurationMs: SECONDS * 1000 + 60_000,
    abortAfterFailures: 500,
    makeRequest,
  });
}

// --- the AWS emulator alone ------------------------------------------------------------------

type RawCall = 'auth' | 'get' | 'transact' | 'put' | 'audit' | 'query';

interface EmulatorFigures {
  /** Per raw call: p50 at c=1 (ms) and throughput at BENCH_CONCURRENCY (calls/s). */
  readonly calls: Readonly<Record<RawCall, { p50: number; rps: number; failed: string }>>;
  /** The raw calls one API request makes, by workload. */
  readonly mix: Readonly<Record<Workload, readonly RawCall[]>>;
}

type AttributeValue = Record<string, unknown>;

/**
 * Raw DynamoDB JSON calls against moto, through the same load generator: no SDK in the
 * way, so this is the emulator's own time. moto does not check SigV4 signatures; it only
 * reads the region from the credential scope.
 */
async function timeEmulator(target: Target, uuids: readonly string[]): Promise<EmulatorFigures | undefined> {
  const emulator = target.emulator;
  if (!emulator || uuids.length === 0) return undefined;
  const table = emulator.table;
  const headers = (operation: string) => ({
    'Content-Type': 'application/x-amz-json-1.0',
    'X-Amz-Target': `DynamoDB_20120810.${operation}`,
    'X-Amz-Date': '20260101T000000Z',
    Authorization:
      'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
  });
  const call = async (operation: string, body: unknown) => {
    const response = await fetch(emulator.endpoint, {
      method: 'POST',
      headers: headers(operation),
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${operation} → ${response.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const key = (pk: string, sk: string) => ({ pk: { S: pk }, sk: { S: sk } });

  // Real items to replay: nodes (for put) and the site new nodes reference.
  const sample = uuids.slice(0, Math.min(uuids.length, 256));
  const items: Array<Record<string, AttributeValue>> = [];
  for (const uuid of sample) {
    const got = await call('GetItem', {
      TableName: table,
      Key: key(`node#${uuid}`, 'item'),
      ConsistentRead: true,
    });
    if (got.Item) items.push(got.Item as Record<string, AttributeValue>);
  }
  if (items.length === 0) return undefined;
  const defaultSite = await call('GetItem', {
    TableName: table,
    Key: key('unique#site-default#default', 'unique'),
    ConsistentRead: true,
  });
  const site =
    SITE ?? ((defaultSite.Item as { ownerId?: { S?: string } } | undefined)?.ownerId?.S || 'local');
  const template = items[0] as Record<string, AttributeValue>;
  /** A node-sized item no listing sees: every partition attribute of an index moved aside. */
  const probeItem = (i: number) => {
    const item: Record<string, AttributeValue> = { ...template, pk: { S: `bench-probe#${i}` } };
    for (const name of [
      'kindPk',
      'statePk',
      'sitePk',
      'driverPk',
      'ownerPk',
      'lesseePk',
      'classPk',
      'parentPk',
    ])
      if (item[name]) item[name] = { S: 'bench-probe' };
    item.kind = { S: 'bench-probe' };
    return item;
  };
  const raw = (operation: string, body: unknown): LoadRequest => ({
    method: 'POST',
    path: '/',
    headers: headers(operation),
    body: JSON.stringify(body),
  });
  const user = target.username ?? 'admin';
  const makers: Record<RawCall, (i: number) => LoadRequest> = {
    // a password check: the user and its name's failed logins, one strongly consistent read
    auth: () =>
      raw('BatchGetItem', {
        RequestItems: {
          [table]: {
            Keys: [key(`user#${user}`, 'item'), key(`login#${lockoutId(user)}`, 'item')],
            ConsistentRead: true,
          },
        },
      }),
    get: (i) =>
      raw('GetItem', {
        TableName: table,
        Key: key(`node#${sample[i % sample.length]}`, 'item'),
        ConsistentRead: true,
      }),
    // create: the node, its name claim, the site's existence, in one transaction
    transact: (i) =>
      raw('TransactWriteItems', {
        TransactItems: [
          { Put: { TableName: table, Item: probeItem(i), ConditionExpression: 'attribute_not_exists(pk)' } },
          {
            Put: {
              TableName: table,
              Item: {
                ...key(`unique#bench-probe#${i}`, 'unique'),
                ownerId: { S: `${i}` },
                scope: { S: 'x' },
              },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          {
            ConditionCheck: {
              TableName: table,
              Key: key(`site#${site}`, 'item'),
              ConditionExpression: 'attribute_exists(pk)',
            },
          },
        ],
      }),
    // patch: the node written back, conditional on the version read (unchanged here)
    put: (i) => {
      const item = items[i % items.length] as Record<string, AttributeValue>;
      return raw('PutItem', {
        TableName: table,
        Item: item,
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: { '#version': 'version' },
        ExpressionAttributeValues: { ':expected': item.version },
      });
    },
    // create and patch: the audit trail's record of the change, written before the answer
    audit: (i) =>
      raw('PutItem', {
        TableName: emulator.auditTable,
        Item: {
          pk: { S: 'audit' },
          sk: { S: `bench-probe-${String(i).padStart(10, '0')}` },
          id: { S: `bench-probe-${i}` },
          created_at: { S: '2026-12-05T00:00:00.000Z' },
          actor: { M: { name: { S: 'admin' }, project: { NULL: true }, roles: { L: [{ S: 'admin' }] } } },
          actorPk: { S: 'admin' },
          source_ip: { S: '127.0.0.1' },
          user_agent: { S: 'bench' },
          request_id: { S: `req-${i}` },
          gateway_request_id: { NULL: true },
          method: { S: 'PATCH' },
          route: { S: '/v1/nodes/{node}' },
          path: { S: `/v1/nodes/${sample[i % sample.length]}` },
          status: { N: '200' },
          resource_type: { S: 'node' },
          resource: { S: `${sample[i % sample.length]}` },
          resourcePk: { S: `node#${sample[i % sample.length]}` },
          resource_name: { NULL: true },
          change: { M: { patch: { L: [{ M: { op: { S: 'add' }, path: { S: '/extra/bench' } } }] } } },
          expiresAt: { N: '1830000000' },
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    // list: the creation-order index, one page of limit + 1
    query: () =>
      raw('Query', {
        TableName: table,
        IndexName: 'byKind',
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': 'kindPk' },
        ExpressionAttributeValues: { ':pk': { S: 'node' } },
        ScanIndexForward: true,
        Limit: 101,
      }),
  };
  const seconds = Math.max(1, Math.round(SECONDS / 3));
  const calls = {} as Record<RawCall, { p50: number; rps: number; failed: string }>;
  let offset = 0;
  for (const name of Object.keys(makers) as RawCall[]) {
    const base = offset;
    const serial = await runLoad({
      baseUrl: emulator.endpoint,
      concurrency: 1,
      durationMs: seconds * 1000,
      abortAfterFailures: 20,
      makeRequest: (i) => makers[name](base + i),
    });
    offset += serial.requests + 1;
    const base2 = offset;
    const loaded = await runLoad({
      baseUrl: emulator.endpoint,
      concurrency: CONCURRENCY,
      durationMs: seconds * 1000,
      abortAfterFailures: 20,
      makeRequest: (i) => makers[name](base2 + i),
    });
    offset += loaded.requests + 1;
    const failed = [describeFailures(serial), describeFailures(loaded)].filter(Boolean).join(' ');
    if (failed) log(`  emulator ${name}: ${failed}: ${serial.failures[0] ?? loaded.failures[0] ?? ''}`);
    calls[name] = { p50: serial.p50, rps: loaded.rps, failed };
  }
  const auth: RawCall[] = target.username ? ['auth'] : [];
  return {
    calls,
    mix: {
      // The default site (no BENCH_SITE) is remembered and checked in the transaction.
      create: [...auth, 'transact', 'audit'],
      show: [...auth, 'get'],
      patch: [...auth, 'get', 'put', 'audit'],
      list: [...auth, 'query'],
    },
  };
}

// --- report ---------------------------------------------------------------------------------

const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

function cells(measured: Measured | undefined): { rps: string; p50: string; p99: string } {
  if (!measured) return { rps: 'n/a', p50: 'n/a', p99: 'n/a' };
  const { result } = measured;
  if (result.ok === 0) return { rps: `ERR ${describeFailures(result) || 'no requests'}`, p50: '–', p99: '–' };
  const failed = result.non2xx + result.errors;
  return {
    rps: `${fmt(result.rps)}${failed ? ` (+${failed} failed)` : ''}`,
    p50: fmt(result.p50),
    p99: fmt(result.p99),
  };
}

function report(runs: TargetRun[], ironicSkipped: string | undefined, startedAt: number): void {
  const metalplane = runs.find((run) => run.name === 'metalplane');
  const ironic = runs.find((run) => run.name === 'ironic');
  const stored = runs.map((run) => `${run.name} ${run.stored}`).join(', ');
  printTable(
    `Inventory: req/s and latency (ms); nodes stored: ${stored}; ${SECONDS} s per read/patch workload`,
    WORKLOADS.map((workload) => {
      const mp = cells(metalplane?.phases[workload]);
      const ir = cells(ironic?.phases[workload]);
      const mpRps = metalplane?.phases[workload]?.result;
      const irRps = ironic?.phases[workload]?.result;
      const ratio = mpRps && irRps && mpRps.ok > 0 && irRps.ok > 0 ? mpRps.rps / irRps.rps : Number.NaN;
      return {
        workload: WORKLOAD_LABEL[workload],
        'Metalplane req/s': mp.rps,
        'p50 ': mp.p50,
        'p99 ': mp.p99,
        'Ironic req/s': ir.rps,
        p50: ir.p50,
        p99: ir.p99,
        'Metalplane/Ironic': Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : '–',
        'goal 2×': Number.isFinite(ratio) ? (ratio >= 2 ? 'met' : 'not met') : '–',
      };
    }),
  );

  const emulator = metalplane?.emulator;
  printTable(
    'Where the time goes: CPU ms per request of each process during the workload; the emulator alone (raw DynamoDB calls)',
    WORKLOADS.map((workload) => {
      const mp = metalplane?.phases[workload];
      const ir = ironic?.phases[workload];
      const mix = emulator?.mix[workload] ?? [];
      const serialMs = mix.reduce((sum, name) => sum + (emulator?.calls[name].p50 ?? Number.NaN), 0);
      const busyMs = mix.reduce((sum, name) => sum + 1000 / (emulator?.calls[name].rps ?? Number.NaN), 0);
      const ceiling = 1000 / busyMs;
      return {
        workload,
        'MP p50 ms': mp && mp.result.ok > 0 ? fmt(mp.result.p50) : '–',
        'emulator ms/req (c=1)': emulator ? fmt(serialMs, 2) : '–',
        'emulator-only max req/s': emulator ? fmt(ceiling) : '–',
        'MP api CPU ms/req': fmt(mp?.cpuPerRequest.api ?? Number.NaN, 2),
        'moto CPU ms/req': fmt(mp?.cpuPerRequest.moto ?? Number.NaN, 2),
        'Ironic CPU ms/req': fmt(ir?.cpuPerRequest.ironic ?? Number.NaN, 2),
        'load gen CPU ms/req': fmt(
          Math.max(
            ...[mp?.cpuPerRequest.loadgen, ir?.cpuPerRequest.loadgen].filter(
              (value): value is number => value !== undefined && Number.isFinite(value),
            ),
          ),
          2,
        ),
      };
    }),
  );
  if (emulator) {
    printTable(
      'The emulator alone: raw DynamoDB calls (p50 at c=1, calls/s at the workload concurrency)',
      (Object.keys(emulator.calls) as RawCall[]).map((name) => ({
        call: {
          auth: 'BatchGetItem user + failed logins (auth)',
          get: 'GetItem (node)',
          transact: 'TransactWriteItems: node + name claim + site check',
          put: 'PutItem conditional on version (patch)',
          audit: 'PutItem audit record (create, patch)',
          query: 'Query byKind, Limit 101 (list page)',
        }[name],
        'p50 ms (c=1)': fmt(emulator.calls[name].p50, 2),
        [`calls/s (c=${CONCURRENCY})`]: fmt(emulator.calls[name].rps),
        failed: emulator.calls[name].failed || '',
      })),
    );
    log(
      `\nPer request the API makes (as read from the code): ${WORKLOADS.map((w) => `${w} = ${emulator.mix[w].join(' + ')}`).join('; ')}.` +
        '\nemulator ms/req = the sum of those calls at c=1; emulator-only max req/s = what moto alone could serve of that mix at the workload concurrency.',
    );
  }

  for (const run of runs) {
    if (run.seed)
      log(
        `${run.name}: seeding (c=${SEED_CONCURRENCY}, not measured) ${run.seed.ok} nodes at ${fmt(run.seed.rps)}/s${describeFailures(run.seed) ? `, failed ${describeFailures(run.seed)}` : ''}`,
      );
    if (run.error) log(`${run.name}: did not run to the end: ${run.error}`);
    for (const workload of WORKLOADS) {
      const result = run.phases[workload]?.result;
      if (!result || (result.non2xx === 0 && result.errors === 0)) continue;
      log(`${run.name} ${workload}: ${describeFailures(result)}${result.cutShort ? ' (stopped early)' : ''}`);
      for (const failure of result.failures.slice(0, 3)) log(`    ${failure}`);
    }
  }
  if (ironicSkipped) log(`ironic: skipped: ${ironicSkipped}`);
  log(
    '\nReference (shared/anchor/README.md, Ironic on this machine): 88.6 creates/s, 215 shows/s, 21.9 list-100 pages/s with 1,000 nodes.' +
      `\nWhole run: ${fmt((performance.now() - startedAt) / 1000, 0)} s.`,
  );
}

// --- main -----------------------------------------------------------------------------------

const startedAt = performance.now();
log(
  `inventory bench: ${NODES} nodes (${CREATE} created sequentially), ${SECONDS} s per workload at c=${CONCURRENCY}, targets ${TARGETS.join(', ')}`,
);
const runs: TargetRun[] = [];
const running: Running[] = [];
let ironicSkipped: string | undefined;
try {
  for (const name of TARGETS) {
    if (name !== 'metalplane' && name !== 'ironic') {
      log(`unknown target '${name}' (metalplane, ironic): skipped`);
      continue;
    }
    if (name === 'ironic') {
      ironicSkipped = ironicUnavailable();
      if (ironicSkipped) {
        log(`\nThe Ironic column is skipped: ${ironicSkipped}`);
        continue;
      }
    }
    const run: TargetRun = { name, phases: {}, stored: 0 };
    runs.push(run);
    try {
      log(`[${name}] starting...`);
      const target = name === 'metalplane' ? await startMetalplane() : await startIronic();
      log(`[${name}] serving on ${target.baseUrl}`);
      running.push({ target, run, uuids: [] });
    } catch (error) {
      run.error = (error as Error).message;
      log(`[${name}] did not start: ${run.error}`);
    }
  }
  // Phase by phase, one target after the other: both columns see the machine as it is then.
  const live = () => running.filter((one) => !one.run.error);
  for (const one of live()) await alone(running, one, () => createPhase(one));
  for (const one of live()) await alone(running, one, () => seedPhase(one));
  for (const workload of ['show', 'patch', 'list'] as const)
    for (const one of live()) await alone(running, one, () => timedPhase(workload, one));
  for (const one of live()) {
    if (!one.target.emulator) continue;
    await alone(running, one, async () => {
      log(`[${one.target.name}] timing the AWS emulator alone (raw DynamoDB calls)...`);
      const figures = await timeEmulator(one.target, one.uuids);
      if (figures) one.run.emulator = figures;
    });
  }
} finally {
  for (const { target } of running) {
    signalAll(target, 'SIGCONT');
    await target.stop().catch((error: Error) => log(`[${target.name}] stop: ${error.message}`));
  }
}
report(runs, ironicSkipped, startedAt);
