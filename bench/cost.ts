/**
 * Cost and latency model (issue 16, part 5): counts the AWS requests each operation makes
 * on the local stack and prices them with the public prices of `bench/cost-prices.ts`.
 *
 *   npm run bench -- cost      (BENCH_IDLE_S=180: the idle window; BENCH_IMAGE_MIB=16;
 *                               BENCH_INIT_RUNS=7; BENCH_COST_SKIP_STACK=1: bundle only)
 *
 * How it counts, at the edges, changing nothing in the handlers:
 *  - The stack is composed here as `local/stack.ts` composes it (moto, the resources, the
 *    site `local`, an admin, the api and agents handlers behind the local HTTP and
 *    WebSocket gateways, the conductor tick), but the AWS SDK's endpoint and the
 *    WebSocket management endpoint point at counting proxies in front of moto and the
 *    WebSocket gateway. Each request is classified by its SigV4 credential scope
 *    (dynamodb, sqs, s3, kms, events, monitoring, logs) and its X-Amz-Target or method.
 *  - DynamoDB capacity: moto does not meter, so the proxy sizes items with DynamoDB's
 *    rules (attribute names + values) and applies the on-demand units: reads ⌈size/4 KB⌉
 *    (half when eventually consistent, a Query summed over its items, 0.5 minimum),
 *    writes ⌈max(before, after)/1 KB⌉ (twice in a transaction), plus one write per global
 *    secondary index the item is in before or after (two when the index key changes).
 *    The before and after images come from uncounted GetItems the proxy makes itself.
 *  - Each Lambda invocation is timed around the very handler (billed ms rounded up, at
 *    the memory of infra/stack.ts) and labelled (`api:PUT /v1/nodes/{id}/states/power`,
 *    `agents:heartbeat`, `conductor:tick`); AWS requests made inside it carry that label
 *    (an AsyncLocalStorage read at `http.client.request.created`, sent as a header the
 *    proxy strips). Log lines written inside an invocation are counted (and not shown),
 *    plus 350 bytes of Lambda's own START/END/REPORT lines per invocation.
 *  - API Gateway: one HTTP API request per api invocation (512 KB increments); WebSocket
 *    messages: each message an agent sends, each route response, each @connections POST
 *    (32 KB increments); connection minutes while the agent's socket is open.
 *  - S3 bytes a client outside AWS downloads (the agents' presigned GETs) are data
 *    transfer out; what a Lambda reads is in-region and free.
 *
 * The agent is a real `metalplane-agent` with the production defaults (heartbeat 30 s,
 * pull 5 min when idle and 30 s for 3 min after any other pull, power sync 60 s, image
 * list refresh 5 min), fake-hardware. The conductor
 * tick is invoked here once a minute, as EventBridge does. Workload requests the bench
 * makes to wait for a state (polling GETs) are labelled `bench:` and left out.
 *
 * An idle site for an hour is not waited for: the idle window (3 minutes by default) gives
 * each periodic message's cost, multiplied by its hourly rate from the agent's defaults;
 * anything else seen in the window is scaled by 3600 / window. Image sync to 10 sites is
 * the upload and verification once plus 10 times one site's sync (sites are
 * independent). Local handler durations include moto's latency, not DynamoDB's.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import {
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Context } from 'aws-lambda';
import { build } from 'esbuild';
import { managementEndpointEnvVar, webSocketUrlEnvVar } from '../infra/resources.ts';
import { bootstrapResources, createSiteCommandQueue, resourceEnvironment } from '../local/bootstrap.ts';
import { type HttpApiHandler, startHttpGateway } from '../local/http-gateway.ts';
import { lambdaContext } from '../local/lambda-context.ts';
import { emulatorEnvironment, freePort, startMoto } from '../local/moto.ts';
import { spawnOwned, stopOwned } from '../local/processes.ts';
import { startWebSocketGateway, type WebSocketEvent, type WebSocketHandler } from '../local/ws-gateway.ts';
import { PRICES, PRICES_AS_OF, type PriceName } from './cost-prices.ts';
import { printTable, summarize } from './support.ts';

const root = join(import.meta.dirname, '..');
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 180);
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 16);
const INIT_RUNS = Number(process.env.BENCH_INIT_RUNS ?? 7);
const SYNC_NODES = 100;
const SITES = 500;
const NODES_PER_SITE = 100;
const IMAGE_SITES = 10;
const HOURS_PER_MONTH = 730;
/** Memory of each function, as infra/stack.ts gives it (addFunction's memorySize). */
const MEMORY_MB = { api: 512, agents: 512, conductor: 256 } as const;
type FunctionName = keyof typeof MEMORY_MB;
/** Lambda's START, END and REPORT lines, about this many bytes per invocation. */
const PLATFORM_LOG_BYTES = 350;
const LABEL_HEADER = 'x-metalplane-cost-label';
const BENCH_HEADER = 'x-metalplane-cost-bench';

// ---------------------------------------------------------------------------------------
// Records: every counted thing is (phase, label, metric, value).

type Metric =
  | 'ddb.read'
  | 'ddb.write'
  | 'ddb.rru'
  | 'ddb.wru'
  | 'sqs.fifo'
  | 'sqs.standard'
  | 's3.tier1'
  | 's3.tier2'
  | 's3.out.bytes'
  | 'kms'
  | 'events'
  | 'cloudwatch'
  | 'other.aws'
  | 'lambda.invocations'
  | 'lambda.gbs'
  | 'http.requests'
  | 'ws.messages'
  | 'ws.connection.minutes'
  | 'logs.bytes';

interface CostRecord {
  readonly phase: string;
  readonly label: string;
  readonly metric: Metric;
  readonly value: number;
  /** For the breakdown: the AWS action, or the function. */
  readonly detail?: string;
}

const records: CostRecord[] = [];
let phase = 'setup';
const invocationStore = new AsyncLocalStorage<{ label: string }>();

function count(label: string, metric: Metric, value: number, detail?: string): void {
  records.push({ phase, label, metric, value, ...(detail ? { detail } : {}) });
}

type Tally = Record<Metric, number>;
const emptyTally = (): Tally => ({
  'ddb.read': 0,
  'ddb.write': 0,
  'ddb.rru': 0,
  'ddb.wru': 0,
  'sqs.fifo': 0,
  'sqs.standard': 0,
  's3.tier1': 0,
  's3.tier2': 0,
  's3.out.bytes': 0,
  kms: 0,
  events: 0,
  cloudwatch: 0,
  'other.aws': 0,
  'lambda.invocations': 0,
  'lambda.gbs': 0,
  'http.requests': 0,
  'ws.messages': 0,
  'ws.connection.minutes': 0,
  'logs.bytes': 0,
});

/**
 * GB-s of one invocation at its kind's median local duration: this machine's CPU is
 * shared, and a few slow outliers would otherwise decide the Lambda line.
 */
function medianGbSeconds(record: CostRecord): number {
  const ms = durations.filter((d) => d.label === record.label).map((d) => d.ms);
  const median = summarize(ms).p50;
  return Number.isNaN(median)
    ? record.value
    : (median / 1000) * (MEMORY_MB[record.detail as FunctionName] / 1024);
}

function tally(select: (record: CostRecord) => boolean): Tally {
  const sum = emptyTally();
  for (const record of records)
    if (select(record))
      sum[record.metric] += record.metric === 'lambda.gbs' ? medianGbSeconds(record) : record.value;
  return sum;
}

function add(a: Tally, b: Tally, factor = 1): Tally {
  const sum = { ...a };
  for (const key of Object.keys(b) as Metric[]) sum[key] += b[key] * factor;
  return sum;
}

const scale = (a: Tally, factor: number): Tally => add(emptyTally(), a, factor);

/** Dollars per service of a tally. */
function dollars(t: Tally): Record<string, number> {
  const p = (name: PriceName) => PRICES[name].usd;
  return {
    DynamoDB: t['ddb.rru'] * p('dynamoReadRequestUnit') + t['ddb.wru'] * p('dynamoWriteRequestUnit'),
    SQS: t['sqs.fifo'] * p('sqsFifoRequest') + t['sqs.standard'] * p('sqsStandardRequest'),
    Lambda: t['lambda.invocations'] * p('lambdaRequest') + t['lambda.gbs'] * p('lambdaArmGbSecond'),
    'API Gateway':
      t['http.requests'] * p('httpApiRequest') +
      t['ws.messages'] * p('webSocketMessage') +
      t['ws.connection.minutes'] * p('webSocketConnectionMinute'),
    S3:
      t['s3.tier1'] * p('s3Tier1Request') +
      t['s3.tier2'] * p('s3Tier2Request') +
      (t['s3.out.bytes'] / 1e9) * p('dataTransferOutGb'),
    Logs: (t['logs.bytes'] / 1e9) * p('logsIngestedGb'),
    other:
      t.kms * p('kmsRequest') + t.events * p('eventBridgeEvent') + t.cloudwatch * p('cloudWatchApiRequest'),
  };
}

const total = (t: Tally) => Object.values(dollars(t)).reduce((a, b) => a + b, 0);

function dominant(t: Tally): string {
  const parts = Object.entries(dollars(t)).sort((a, b) => b[1] - a[1]);
  const sum = total(t);
  return parts
    .filter(([, usd]) => usd > 0)
    .slice(0, 2)
    .map(([name, usd]) => `${name} ${Math.round((usd / sum) * 100)}%`)
    .join(', ');
}

// ---------------------------------------------------------------------------------------
// Labels: AWS requests made inside an invocation carry its label to the proxy.

diagnosticsChannel.subscribe('http.client.request.created', (message) => {
  const store = invocationStore.getStore();
  if (!store) return;
  try {
    (message as { request: ClientRequest }).request.setHeader(LABEL_HEADER, store.label);
  } catch {
    // headers already sent: the request goes unlabelled
  }
});

/** Log lines written inside an invocation are counted (Lambda ships them to CloudWatch Logs) and kept off the terminal. */
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  (stream as { write: (...args: unknown[]) => boolean }).write = (chunk: unknown, ...rest: unknown[]) => {
    const store = invocationStore.getStore();
    if (!store) return write(chunk, ...rest);
    count(
      store.label,
      'logs.bytes',
      typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length,
    );
    const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  };
}

const normalizePath = (path: string) =>
  path
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '{id}')
    .replace(/\/(nodes|images|sites|ports|agents|users)\/(?!\{id\}|detail|enroll)[^/]+/g, '/$1/{name}');

/** A handler, timed and labelled as one Lambda invocation of `fn`. */
function invocation<R>(fn: FunctionName, label: string, run: () => Promise<R>): Promise<R> {
  const started = performance.now();
  return invocationStore
    .run({ label }, async () => {
      try {
        return await run();
      } finally {
        const billedMs = Math.max(1, Math.ceil(performance.now() - started));
        count(label, 'lambda.invocations', 1, fn);
        count(label, 'lambda.gbs', (billedMs / 1000) * (MEMORY_MB[fn] / 1024), fn);
        count(label, 'logs.bytes', PLATFORM_LOG_BYTES);
        durations.push({ phase, label, ms: billedMs });
      }
    })
    .then((result) => result);
}
const durations: Array<{ phase: string; label: string; ms: number }> = [];

// ---------------------------------------------------------------------------------------
// DynamoDB item sizes and capacity units.

type AttributeValue = Record<string, unknown>;
type Item = Record<string, AttributeValue>;

function numberSize(n: string): number {
  const digits = n.replace(/^-/, '').replace(/e.*$/i, '').replace('.', '').replace(/^0+/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function valueSize(value: AttributeValue): number {
  if ('S' in value) return Buffer.byteLength(value.S as string);
  if ('N' in value) return numberSize(value.N as string);
  if ('B' in value) return Buffer.from(value.B as string, 'base64').length;
  if ('BOOL' in value || 'NULL' in value) return 1;
  if ('SS' in value) return (value.SS as string[]).reduce((s, v) => s + Buffer.byteLength(v), 0);
  if ('NS' in value) return (value.NS as string[]).reduce((s, v) => s + numberSize(v), 0);
  if ('BS' in value) return (value.BS as string[]).reduce((s, v) => s + Buffer.from(v, 'base64').length, 0);
  if ('L' in value) return 3 + (value.L as AttributeValue[]).reduce((s, v) => s + valueSize(v) + 1, 0);
  if ('M' in value)
    return (
      3 +
      Object.entries(value.M as Item).reduce((s, [k, v]) => s + Buffer.byteLength(k) + valueSize(v) + 1, 0)
    );
  return 0;
}

const itemSize = (item: Item | undefined): number =>
  item ? Object.entries(item).reduce((s, [k, v]) => s + Buffer.byteLength(k) + valueSize(v), 0) : 0;

interface TableShape {
  readonly keys: readonly string[];
  readonly indexes: ReadonlyArray<{ readonly name: string; readonly keys: readonly string[] }>;
}

// ---------------------------------------------------------------------------------------
// The counting proxy.

interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
  readonly status: number;
  readonly response: Buffer;
}

class CountingProxy {
  readonly #upstream: URL;
  readonly #server: Server;
  readonly #kind: 'aws' | 'ws-management';
  readonly #tables = new Map<string, Promise<TableShape>>();
  url = '';

  constructor(upstream: string, kind: 'aws' | 'ws-management') {
    this.#upstream = new URL(upstream);
    this.#kind = kind;
    this.#server = createServer((req, res) => {
      this.#serve(req, res).catch((error: Error) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(error.message);
      });
    });
    this.#server.keepAliveTimeout = 5000;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  /** A request straight to the upstream, not counted. */
  #send(
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: this.#upstream.hostname,
          port: this.#upstream.port,
          method,
          path,
          headers: { ...headers, 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  #dynamo(target: string, payload: unknown): Promise<Record<string, unknown>> {
    return this.#send(
      'POST',
      '/',
      {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDB_20120810.${target}`,
        authorization:
          'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      Buffer.from(JSON.stringify(payload)),
    ).then((r) => JSON.parse(r.body.toString() || '{}') as Record<string, unknown>);
  }

  #shape(table: string): Promise<TableShape> {
    let shape = this.#tables.get(table);
    if (!shape) {
      shape = this.#dynamo('DescribeTable', { TableName: table }).then((answer) => {
        const description = answer.Table as {
          KeySchema: Array<{ AttributeName: string }>;
          GlobalSecondaryIndexes?: Array<{ IndexName: string; KeySchema: Array<{ AttributeName: string }> }>;
        };
        return {
          keys: description.KeySchema.map((k) => k.AttributeName),
          indexes: (description.GlobalSecondaryIndexes ?? []).map((index) => ({
            name: index.IndexName,
            keys: index.KeySchema.map((k) => k.AttributeName),
          })),
        };
      });
      this.#tables.set(table, shape);
    }
    return shape;
  }

  async #current(table: string, key: Item): Promise<Item | undefined> {
    const answer = await this.#dynamo('GetItem', { TableName: table, Key: key, ConsistentRead: true });
    return answer.Item as Item | undefined;
  }

  async #keyOf(table: string, item: Item): Promise<Item> {
    const shape = await this.#shape(table);
    return Object.fromEntries(shape.keys.map((k) => [k, item[k] as AttributeValue]));
  }

  /** Write units of one item write: the base table and its indexes. */
  async #writeUnits(
    table: string,
    before: Item | undefined,
    after: Item | undefined,
    transactional: boolean,
  ): Promise<number> {
    const shape = await this.#shape(table);
    const oldSize = itemSize(before);
    const newSize = itemSize(after);
    let units = Math.max(1, Math.ceil(Math.max(oldSize, newSize) / 1024)) * (transactional ? 2 : 1);
    const indexKey = (item: Item | undefined, keys: readonly string[]) =>
      item && keys.every((k) => k in item) ? JSON.stringify(keys.map((k) => item[k])) : undefined;
    for (const index of shape.indexes) {
      const was = indexKey(before, index.keys);
      const is = indexKey(after, index.keys);
      // Index entries carry the projected item (ALL) plus about 100 bytes of index keys.
      const oldUnits = Math.max(1, Math.ceil((oldSize + 100) / 1024));
      const newUnits = Math.max(1, Math.ceil((newSize + 100) / 1024));
      if (was && is) units += was === is ? newUnits : oldUnits + newUnits;
      else if (was) units += oldUnits;
      else if (is) units += newUnits;
    }
    return units;
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const label = (req.headers[LABEL_HEADER] as string | undefined) ?? undefined;
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers))
      if (value !== undefined && name !== LABEL_HEADER && name !== 'content-length') headers[name] = value;
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const target = String(req.headers['x-amz-target'] ?? '');
    const isDynamoWrite =
      this.#kind === 'aws' &&
      /^DynamoDB_\d+\.(PutItem|UpdateItem|DeleteItem|TransactWriteItems|BatchWriteItem)$/.test(target);
    const before = isDynamoWrite ? await this.#writeTargets(target, body) : [];
    const answer = await this.#send(method, path, headers, body);
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
    const exchange: Exchange = {
      method,
      path,
      headers: req.headers,
      body,
      status: answer.status,
      response: answer.body,
    };
    if (this.#kind === 'ws-management') return this.#countManagement(label, exchange);
    await this.#countAws(label, exchange, before).catch((error: Error) =>
      process.stderr.write(`cost proxy: could not size ${target || path}: ${error.message}\n`),
    );
  }

  #countManagement(label: string | undefined, exchange: Exchange): void {
    // @connections POST sends one message to the client (32 KB increments); GET and DELETE are management calls.
    if (exchange.method === 'POST')
      count(
        label ?? 'unlabelled',
        'ws.messages',
        Math.max(1, Math.ceil(exchange.body.length / 32768)),
        '@connections POST',
      );
  }

  /** The items a write names, read before it. */
  async #writeTargets(
    target: string,
    body: Buffer,
  ): Promise<Array<{ table: string; key: Item; before: Item | undefined; transactional: boolean }>> {
    const action = target.split('.')[1];
    const request = JSON.parse(body.toString() || '{}') as Record<string, unknown>;
    const named: Array<{ table: string; key: Item; transactional: boolean }> = [];
    if (action === 'PutItem')
      named.push({
        table: request.TableName as string,
        key: await this.#keyOf(request.TableName as string, request.Item as Item),
        transactional: false,
      });
    else if (action === 'UpdateItem' || action === 'DeleteItem')
      named.push({ table: request.TableName as string, key: request.Key as Item, transactional: false });
    else if (action === 'TransactWriteItems') {
      for (const entry of request.TransactItems as Array<Record<string, Record<string, unknown>>>) {
        const [kind, op] = Object.entries(entry)[0] as [string, Record<string, unknown>];
        const table = op.TableName as string;
        const key = kind === 'Put' ? await this.#keyOf(table, op.Item as Item) : (op.Key as Item);
        named.push({ table, key, transactional: true });
      }
    } else if (action === 'BatchWriteItem') {
      for (const [table, writes] of Object.entries(
        request.RequestItems as Record<string, Array<Record<string, { Item?: Item; Key?: Item }>>>,
      )) {
        for (const write of writes) {
          const put = write.PutRequest?.Item;
          const key = put ? await this.#keyOf(table, put) : (write.DeleteRequest?.Key as Item);
          named.push({ table, key, transactional: false });
        }
      }
    }
    return Promise.all(named.map(async (n) => ({ ...n, before: await this.#current(n.table, n.key) })));
  }

  async #countAws(
    label: string | undefined,
    exchange: Exchange,
    before: Array<{ table: string; key: Item; before: Item | undefined; transactional: boolean }>,
  ): Promise<void> {
    const who = label ?? 'direct';
    const authorization = String(exchange.headers.authorization ?? '');
    const scope =
      /Credential=[^/]+\/\d+\/[^/]+\/([^/]+)\//.exec(authorization)?.[1] ??
      /X-Amz-Credential=[^&]*%2F([a-z0-9-]+)%2Faws4_request/i.exec(exchange.path)?.[1] ??
      's3';
    const target = String(exchange.headers['x-amz-target'] ?? '');
    const action = target.split('.')[1] ?? exchange.method;
    switch (scope) {
      case 'dynamodb':
        return this.#countDynamo(who, action, exchange, before);
      case 'sqs': {
        const request = JSON.parse(exchange.body.toString() || '{}') as {
          QueueUrl?: string;
          QueueName?: string;
        };
        const fifo = /\.fifo$/.test(request.QueueUrl ?? request.QueueName ?? '');
        const chunks = Math.max(
          1,
          Math.ceil(Math.max(exchange.body.length, exchange.response.length) / 65536),
        );
        count(who, fifo ? 'sqs.fifo' : 'sqs.standard', chunks, `SQS ${action}`);
        return;
      }
      case 's3': {
        const [pathname = '/', query = ''] = exchange.path.split('?');
        const isObject = pathname.split('/').filter(Boolean).length >= 2;
        const s3Action =
          exchange.method === 'GET' && (!isObject || /(^|&)(list-type|uploads|uploadId)=?/.test(query))
            ? 'LIST'
            : exchange.method;
        if (s3Action === 'DELETE') count(who, 'other.aws', 0, 'S3 DELETE (free)');
        else if (s3Action === 'GET' || s3Action === 'HEAD') count(who, 's3.tier2', 1, `S3 ${s3Action}`);
        else count(who, 's3.tier1', 1, `S3 ${s3Action}`);
        // Bytes an agent (outside AWS) downloads leave AWS; a Lambda's reads stay in the region.
        if (exchange.method === 'GET' && !label && exchange.status < 300)
          count(who, 's3.out.bytes', exchange.response.length, 'S3 bytes out');
        return;
      }
      case 'kms':
        count(who, 'kms', 1, `KMS ${action}`);
        return;
      case 'events': {
        const request = JSON.parse(exchange.body.toString() || '{}') as { Entries?: unknown[] };
        count(who, 'events', Math.max(1, request.Entries?.length ?? 1), `EventBridge ${action}`);
        return;
      }
      case 'monitoring':
        count(who, 'cloudwatch', 1, `CloudWatch ${action}`);
        return;
      default:
        count(who, 'other.aws', 1, `${scope} ${action}`);
    }
  }

  async #countDynamo(
    who: string,
    action: string,
    exchange: Exchange,
    before: Array<{ table: string; key: Item; before: Item | undefined; transactional: boolean }>,
  ): Promise<void> {
    const request = JSON.parse(exchange.body.toString() || '{}') as Record<string, unknown>;
    const answer = JSON.parse(exchange.response.toString() || '{}') as Record<string, unknown>;
    const ok = exchange.status < 300;
    const readUnits = (bytes: number, consistent: boolean) =>
      Math.max(1, Math.ceil(bytes / 4096)) * (consistent ? 1 : 0.5);
    const detail = `DynamoDB ${action}`;
    switch (action) {
      case 'GetItem': {
        let item = answer.Item as Item | undefined;
        if (item && request.ProjectionExpression)
          item = await this.#current(request.TableName as string, request.Key as Item);
        count(who, 'ddb.read', 1, detail);
        count(who, 'ddb.rru', readUnits(itemSize(item), request.ConsistentRead === true), detail);
        return;
      }
      case 'Query':
      case 'Scan': {
        const bytes = ((answer.Items as Item[] | undefined) ?? []).reduce((s, i) => s + itemSize(i), 0);
        count(who, 'ddb.read', 1, detail);
        count(who, 'ddb.rru', readUnits(bytes, request.ConsistentRead === true), detail);
        return;
      }
      case 'BatchGetItem': {
        const asked = request.RequestItems as Record<string, { ConsistentRead?: boolean }>;
        let units = 0;
        for (const [table, items] of Object.entries((answer.Responses ?? {}) as Record<string, Item[]>))
          for (const item of items) units += readUnits(itemSize(item), asked[table]?.ConsistentRead === true);
        count(who, 'ddb.read', 1, detail);
        count(who, 'ddb.rru', units, detail);
        return;
      }
      case 'TransactGetItems': {
        let units = 0;
        for (const response of (answer.Responses ?? []) as Array<{ Item?: Item }>)
          units += 2 * Math.max(1, Math.ceil(itemSize(response.Item) / 4096));
        count(who, 'ddb.read', 1, detail);
        count(who, 'ddb.rru', units, detail);
        return;
      }
      case 'PutItem':
      case 'UpdateItem':
      case 'DeleteItem':
      case 'TransactWriteItems':
      case 'BatchWriteItem': {
        let units = 0;
        for (const target of before) {
          if (!ok) {
            // A refused conditional write or a cancelled transaction still consumes the base units.
            units += Math.max(1, Math.ceil(itemSize(target.before) / 1024)) * (target.transactional ? 2 : 1);
            continue;
          }
          const after = await this.#current(target.table, target.key);
          units += await this.#writeUnits(target.table, target.before, after, target.transactional);
        }
        const tables = [...new Set(before.map((b) => b.table.replace(`${PREFIX}-`, '')))].join('+');
        count(who, 'ddb.write', 1, `${detail} ${tables}`);
        count(who, 'ddb.wru', units, `${detail} ${tables}`);
        return;
      }
      default:
        count(who, 'other.aws', 1, detail);
    }
  }
}

// ---------------------------------------------------------------------------------------
// The api Lambda's bundle and cold init.

async function measureBundle(sdkBundled = false): Promise<{
  bytes: number;
  top: string;
  initMs: number[];
  sdkMs: number[];
  processMs: number[];
}> {
  const dir = join(root, '.local', sdkBundled ? 'cost-bundle-sdk' : 'cost-bundle');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, 'index.mjs');
  // As infra/stack.ts's addFunction bundles (NodejsFunction): minified ESM for node24,
  // module before main, the require banner, source map beside it; @aws-sdk/* is left to
  // the Lambda runtime (NodejsFunction's default externals for Node.js 18 and later).
  const result = await build({
    entryPoints: [join(root, 'lambda', 'entrypoints', 'api.ts')],
    bundle: true,
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    mainFields: ['module', 'main'],
    external: sdkBundled ? [] : ['@aws-sdk/*'],
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    outfile,
    metafile: true,
    logLevel: 'silent',
  });
  const bytes = statSync(outfile).size;
  const byPackage = new Map<string, number>();
  for (const [input, info] of Object.entries(
    result.metafile.outputs[outfile.replace(`${root}/`, '')]?.inputs ?? {},
  )) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    const name = match ? (match[1] as string) : 'metalplane (lambda/, protocol/, infra/)';
    byPackage.set(name, (byPackage.get(name) ?? 0) + info.bytesInOutput);
  }
  const top = [...byPackage.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([name, size]) => `${name} ${(size / 1024).toFixed(0)} KB`)
    .join(', ');
  // Cold init: a fresh node process imports the bundle (what Lambda's init phase does) and
  // the handler is ready; the import is timed inside the process, the process from spawn.
  // The AWS SDK packages the bundle imports, loaded first and timed apart (they are the runtime's on Lambda).
  const externals = [
    ...new Set(readFileSync(outfile, 'utf8').match(/(?<=from")@aws-sdk\/[a-z0-9-]+(?=")/g) ?? []),
  ];
  const script = [
    'const t0 = performance.now();',
    `for (const name of ${JSON.stringify(externals)}) await import(name);`,
    'const t1 = performance.now();',
    `const m = await import(${JSON.stringify(outfile)});`,
    "if (typeof m.handler !== 'function') process.exit(3);",
    'process.stdout.write(JSON.stringify([performance.now() - t0, t1 - t0]));',
  ].join(' ');
  const initMs: number[] = [];
  const sdkMs: number[] = [];
  const processMs: number[] = [];
  const run = promisify(execFile);
  for (let i = 0; i < INIT_RUNS; i++) {
    const started = performance.now();
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' },
    });
    processMs.push(performance.now() - started);
    const [all, sdk] = JSON.parse(stdout) as [number, number];
    initMs.push(all);
    sdkMs.push(sdk);
  }
  return { bytes, top, initMs, sdkMs, processMs };
}

// ---------------------------------------------------------------------------------------
// The stack, as local/stack.ts composes it, behind the counting proxies.

const PREFIX = 'metalplane-cost';
const SITE = 'local';

async function waitFor<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stack {
  readonly apiUrl: string;
  readonly headers: Record<string, string>;
  readonly tick: () => Promise<unknown>;
  readonly connections: () => number;
  stop(): Promise<void>;
}

async function startStack(work: string): Promise<Stack> {
  const stoppers: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const one of stoppers.splice(0).reverse()) await one().catch(() => undefined);
  };
  try {
    const moto = await startMoto({ runDir: join(work, 'run') });
    stoppers.push(() => moto.stop());
    const awsProxy = await new CountingProxy(moto.endpoint, 'aws').start();
    stoppers.push(() => awsProxy.close());
    const apiPort = await freePort();
    const wsPort = await freePort();
    const wsUrl = `ws://127.0.0.1:${wsPort}/local`;
    const wsProxy = await new CountingProxy(`http://127.0.0.1:${wsPort}`, 'ws-management').start();
    stoppers.push(() => wsProxy.close());
    Object.assign(process.env, emulatorEnvironment(awsProxy.url), resourceEnvironment(PREFIX), {
      METALPLANE_LOCAL_STACK: 'true',
      [webSocketUrlEnvVar]: wsUrl,
      [managementEndpointEnvVar]: `${wsProxy.url}/local`,
      // What a deployed function logs (Powertools' default level).
      POWERTOOLS_LOG_LEVEL: 'INFO',
    });
    await bootstrapResources(PREFIX);
    const { dependenciesFromEnv } = await import('../lambda/api/dependencies.ts');
    const { UserRepository } = await import('../lambda/adapters/dynamo/user-repository.ts');
    const { hashPassword } = await import('../lambda/domain/auth/passwords.ts');
    const { sites, store, now } = dependenciesFromEnv();
    await sites.create({
      name: SITE,
      description: 'the cost bench',
      location: null,
      created_at: now(),
      updated_at: null,
      queue_url: await createSiteCommandQueue(PREFIX, SITE),
    });
    await sites.setDefault(SITE);
    const password = randomBytes(18).toString('base64url');
    await new UserRepository(store).create({
      name: 'admin',
      role: 'admin',
      project: null,
      password_hash: await hashPassword(password),
      created_at: now(),
      updated_at: null,
    });
    const { handler: apiHandler } = await import('../lambda/entrypoints/api.ts');
    const { handler: agentsHandler } = await import('../lambda/entrypoints/agents.ts');
    const { handler: conductorHandler } = await import('../lambda/entrypoints/conductor.ts');

    const api: HttpApiHandler = (event, context) => {
      const bench = event.headers?.[BENCH_HEADER] !== undefined;
      const label = `${bench ? 'bench' : 'api'}:${event.requestContext.http.method} ${normalizePath(event.rawPath)}`;
      return invocation('api', label, async () => {
        const bytes = Buffer.byteLength(event.body ?? '');
        count(label, 'http.requests', Math.max(1, Math.ceil(bytes / (512 * 1024))));
        return (await apiHandler(event as never, context)) as Awaited<ReturnType<HttpApiHandler>>;
      });
    };
    const open = new Set<string>();
    const agents: WebSocketHandler = (event: WebSocketEvent, context: Context) => {
      const route = event.requestContext.routeKey;
      let type = route;
      if (route === '$default') {
        try {
          type = String((JSON.parse(event.body ?? '{}') as { type?: unknown }).type ?? 'unknown');
        } catch {
          type = 'malformed';
        }
      }
      const label = `agents:${type}`;
      return invocation('agents', label, async () => {
        if (route === '$default')
          count(label, 'ws.messages', Math.max(1, Math.ceil(Buffer.byteLength(event.body ?? '') / 32768)));
        const result = (await agentsHandler(event as never, context)) as {
          statusCode?: number;
          body?: string;
        };
        if (route === '$default' && typeof result?.body === 'string')
          count(label, 'ws.messages', Math.max(1, Math.ceil(Buffer.byteLength(result.body) / 32768)));
        if (route === '$connect' && (result?.statusCode ?? 200) < 300)
          open.add(event.requestContext.connectionId);
        if (route === '$disconnect') open.delete(event.requestContext.connectionId);
        return result;
      });
    };
    const http = await startHttpGateway({ port: apiPort, handler: api });
    stoppers.push(() => http.close());
    const ws = await startWebSocketGateway({ port: wsPort, handler: agents, log: () => undefined });
    stoppers.push(() => ws.close());
    const tick = () =>
      invocation('conductor', 'conductor:tick', () =>
        conductorHandler(undefined, lambdaContext('metalplane-conductor', 55_000)),
      );
    const headers = {
      Authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`,
      'X-OpenStack-Ironic-API-Version': '1.82',
      'Content-Type': 'application/json',
    };
    const agent = await startAgent(work, http.url, wsUrl, headers);
    stoppers.push(() => stopOwned(agent, 25_000));
    return { apiUrl: http.url, headers, tick, connections: () => open.size, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A real agent for site `local`, with the production defaults but for its local ports. */
async function startAgent(
  work: string,
  apiUrl: string,
  wsUrl: string,
  headers: Record<string, string>,
): Promise<ChildProcess> {
  const dir = join(work, 'agent');
  mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'http'), { recursive: true });
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `url: ${apiUrl}`,
      `websocket_url: ${wsUrl}`,
      `hostname: ${SITE}-agent-1`,
      `state_dir: ${join(dir, 'state')}`,
      'drivers: [fake-hardware]',
      'log_level: warn',
      'status:',
      `  address: 127.0.0.1:${await freePort()}`,
      'tftp:',
      '  enabled: false',
      'http:',
      '  enabled: true',
      '  address: 127.0.0.1',
      `  root: ${join(dir, 'http')}`,
      `  port: ${await freePort()}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const minted = await fetch(`${apiUrl}/v1/sites/${SITE}/agents`, {
    method: 'POST',
    headers: { ...headers, [BENCH_HEADER]: '1' },
  });
  if (minted.status !== 201) throw new Error(`enrollment token refused: ${minted.status}`);
  const { token } = (await minted.json()) as { token: string };
  const cli = join(root, 'agent', 'cli.ts');
  await promisify(execFile)(process.execPath, [cli, 'enroll', '--url', apiUrl, '--config', config], {
    env: { ...process.env, METALPLANE_ENROLL_TOKEN: token },
    timeout: 30_000,
  });
  return spawnOwned('agent', process.execPath, [cli, 'run', '--config', config], {
    stdio: ['ignore', 'ignore', 'inherit'],
    runDir: join(work, 'run'),
  });
}

// ---------------------------------------------------------------------------------------
// The workload.

async function call(stack: Stack, method: string, path: string, body?: unknown, bench = false) {
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { ...stack.headers, ...(bench ? { [BENCH_HEADER]: '1' } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const readNode = async (stack: Stack, uuid: string) =>
  (await call(stack, 'GET', `/v1/nodes/${uuid}`, undefined, true)).body;

async function settles(
  stack: Stack,
  uuid: string,
  done: (node: Record<string, unknown>) => boolean,
  ms = 60_000,
) {
  await waitFor(
    async () => {
      const node = await readNode(stack, uuid);
      return done(node) && node.reservation === null ? node : undefined;
    },
    `node ${uuid}`,
    ms,
  );
}

async function createNode(stack: Stack, name: string): Promise<string> {
  const created = await call(
    stack,
    'POST',
    '/v1/nodes',
    {
      name,
      driver: 'fake-hardware',
      conductor_group: SITE,
      instance_info: { image_source: 'http://example.invalid/img.iso' },
    },
    true,
  );
  if (created.status !== 201)
    throw new Error(`node not created: ${created.status} ${JSON.stringify(created.body)}`);
  return created.body.uuid as string;
}

async function provision(stack: Stack, uuid: string, target: string, state: string, bench = true) {
  const answer = await call(stack, 'PUT', `/v1/nodes/${uuid}/states/provision`, { target }, bench);
  if (answer.status !== 202) throw new Error(`${target}: ${answer.status} ${JSON.stringify(answer.body)}`);
  await settles(stack, uuid, (node) => node.provision_state === state);
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const invocationsOf = (label: RegExp, inPhase: string) =>
  records.filter((r) => r.phase === inPhase && r.metric === 'lambda.invocations' && label.test(r.label))
    .length;

/** Hourly rate of each periodic message of an idle site (agent/config.ts DEFAULTS, the 1-minute tick). */
const PERIODIC: ReadonlyArray<{ label: RegExp; perHour: number; what: string }> = [
  { label: /^agents:heartbeat$/, perHour: 120, what: 'heartbeat every 30 s' },
  // Idle: every 5 min (idle_pull_interval); for 3 min after a (re)connection (every 2 h)
  // every 30 s: 12 + 0.5 × (the connection's pull + 6) = 15.5.
  {
    label: /^agents:pull$/,
    perHour: 15.5,
    what: 'pull every 5 min idle, every 30 s for 3 min after a connection',
  },
  { label: /^api:GET \/v1\/agent\/nodes/, perHour: 60, what: 'power sync node list every 60 s' },
  { label: /^agents:power_report$/, perHour: 0, what: 'no power report without nodes' },
  { label: /^agents:images_pull$/, perHour: 12, what: 'image list every 5 min' },
  { label: /^agents:\$(connect|disconnect)$/, perHour: 0.5, what: 'reconnect every 2 h (API Gateway limit)' },
];

interface Row {
  readonly operation: string;
  readonly t: Tally;
  readonly note?: string;
}

async function workload(
  stack: Stack,
): Promise<{ rows: Row[]; tick: Tally; tick100: Tally; idleSite: Tally; idleByLabel: Map<string, Tally> }> {
  // Startup: the agent's connection, hello and first image list (their unit costs feed the idle rates).
  phase = 'startup';
  await waitFor(
    () => stack.connections() > 0 && invocationsOf(/^agents:images_pull$/, 'startup') > 0,
    'the agent',
    60_000,
  );
  await sleep(3000);

  // An idle site: the window's periodic messages, the tick once a minute.
  phase = 'idle';
  process.stdout.write(`idle site: ${IDLE_S} s window…\n`);
  const idleStarted = Date.now();
  while (Date.now() - idleStarted < IDLE_S * 1000) {
    const tickAt = Date.now();
    await stack.tick();
    await sleep(
      Math.max(0, Math.min(60_000, IDLE_S * 1000 - (Date.now() - idleStarted)) - (Date.now() - tickAt)),
    );
  }
  const windowS = (Date.now() - idleStarted) / 1000;
  count('agents:connection', 'ws.connection.minutes', stack.connections() * (windowS / 60));
  const inIdle = (r: CostRecord) => r.phase === 'idle';
  const tick = scale(
    tally((r) => inIdle(r) && r.label === 'conductor:tick'),
    1 / Math.max(1, invocationsOf(/^conductor:tick$/, 'idle')),
  );
  const idleByLabel = new Map<string, Tally>();
  idleByLabel.set(
    'agents:connection (open socket)',
    scale(
      tally((r) => inIdle(r) && r.label === 'agents:connection'),
      3600 / windowS,
    ),
  );
  let idleSite = idleByLabel.get('agents:connection (open socket)') as Tally;
  const periodicLabels = new Set<string>();
  const notes: string[] = [];
  for (const periodic of PERIODIC) {
    const labels = new Set(records.filter((r) => periodic.label.test(r.label)).map((r) => r.label));
    for (const label of labels) {
      periodicLabels.add(label);
      // Unit cost from the idle window, else from the startup (an image list or a connect).
      const from = invocationsOf(new RegExp(`^${escapeRegExp(label)}$`), 'idle') > 0 ? 'idle' : 'startup';
      const n = invocationsOf(new RegExp(`^${escapeRegExp(label)}$`), from);
      if (n === 0 || periodic.perHour === 0) continue;
      const hourly = scale(
        tally((r) => r.phase === from && r.label === label),
        periodic.perHour / n,
      );
      idleByLabel.set(label, hourly);
      idleSite = add(idleSite, hourly);
      notes.push(`${label} ×${periodic.perHour}/h (${periodic.what}; ${n} seen in ${from})`);
    }
  }
  // Anything else an idle site did in the window, scaled to the hour.
  const others = tally(
    (r) =>
      inIdle(r) &&
      !periodicLabels.has(r.label) &&
      r.label !== 'conductor:tick' &&
      r.label !== 'agents:connection' &&
      !r.label.startsWith('bench:'),
  );
  idleByLabel.set('other (window × 3600/s)', scale(others, 3600 / windowS));
  idleSite = add(idleSite, others, 3600 / windowS);
  process.stdout.write(`idle-site rates: ${notes.join('; ')}\n`);

  const rows: Row[] = [];
  const periodicNow = (r: CostRecord) =>
    /^agents:(heartbeat|images_pull|power_report)$|^api:GET \/v1\/agent\/nodes|^conductor:tick$|^bench:/.test(
      r.label,
    );

  // A power action on one node (manageable, fake-hardware).
  phase = 'setup';
  const one = await createNode(stack, 'cost-power');
  await provision(stack, one, 'manage', 'manageable');
  for (const target of ['power on', 'power off']) {
    phase = `power ${target}`;
    const answer = await call(stack, 'PUT', `/v1/nodes/${one}/states/power`, { target });
    if (answer.status !== 202) throw new Error(`power: ${answer.status} ${JSON.stringify(answer.body)}`);
    await settles(stack, one, (node) => node.power_state === target && node.target_power_state === null);
    await sleep(1500); // the agent's last acks and pulls
  }
  const powerOps = ['power on', 'power off'].map((p) =>
    tally((r) => r.phase === `power ${p}` && !periodicNow(r)),
  );
  rows.push({
    operation: 'power action (mean of on, off)',
    t: scale(add(powerOps[0] as Tally, powerOps[1] as Tally), 0.5),
  });

  // A deploy (fake-hardware, available → active).
  phase = 'setup';
  const deployed = await createNode(stack, 'cost-deploy');
  await provision(stack, deployed, 'manage', 'manageable');
  await provision(stack, deployed, 'provide', 'available');
  phase = 'deploy';
  await provision(stack, deployed, 'active', 'active', false);
  await sleep(1500);
  rows.push({
    operation: 'deploy (fake-hardware, available → active)',
    t: tally((r) => r.phase === 'deploy' && !periodicNow(r)),
  });

  // A 100-node power sync sweep: 100 manageable nodes, the steady-state sweep (node list + reports).
  phase = 'setup';
  process.stdout.write(`creating ${SYNC_NODES} nodes for the power sync…\n`);
  const names = Array.from({ length: SYNC_NODES - 2 }, (_, i) => `cost-sync-${i}`);
  await pool(names, 8, async (name) =>
    provision(stack, await createNode(stack, name), 'manage', 'manageable'),
  );
  const sweeps = () =>
    records.filter((r) => r.metric === 'lambda.invocations' && /^api:GET \/v1\/agent\/nodes/.test(r.label))
      .length;
  // The first sweep over the new nodes records their power states; the next one is the steady state.
  const seen = sweeps();
  await waitFor(() => sweeps() > seen, 'a power sync sweep', 90_000);
  await sleep(8000);
  phase = 'sweep';
  const before = sweeps();
  await waitFor(() => sweeps() > before, 'the next power sync sweep', 90_000);
  await sleep(8000);
  const sweepLabels = (r: CostRecord) => /^api:GET \/v1\/agent\/nodes|^agents:power_report$/.test(r.label);
  rows.push({
    operation: `power sync sweep, ${SYNC_NODES} nodes (steady state)`,
    t: tally((r) => r.phase === 'sweep' && sweepLabels(r)),
  });
  const reports = invocationsOf(/^agents:power_report$/, 'sweep');
  phase = 'tick@100';
  await stack.tick();
  const tick100 = tally((r) => r.phase === 'tick@100' && r.label === 'conductor:tick');
  process.stdout.write(
    `sweep: ${invocationsOf(/^api:GET \/v1\/agent\/nodes/, 'sweep')} node-list request(s), ${reports} power report(s)\n`,
  );

  // Image sync: register, upload (presigned PUT), complete (inline verification), then the site's agent
  // lists and downloads it (presigned GET) and reports it ready.
  phase = 'image upload';
  const size = IMAGE_MIB * 1024 * 1024;
  const bytes = randomFillSync(Buffer.allocUnsafe(size));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const image = await call(stack, 'POST', '/v1/images', {
    name: 'cost-image',
    kind: 'iso',
    files: [{ role: 'iso', size, sha256 }],
  });
  if (image.status !== 201) throw new Error(`image: ${image.status} ${JSON.stringify(image.body)}`);
  const uuid = image.body.uuid as string;
  const upload = await call(stack, 'POST', `/v1/images/${uuid}/files/iso/upload`, {});
  if (upload.status !== 201) throw new Error(`upload: ${upload.status} ${JSON.stringify(upload.body)}`);
  const put = await fetch(upload.body.url as string, {
    method: 'PUT',
    headers: upload.body.headers as Record<string, string>,
    body: bytes,
  });
  if (!put.ok) throw new Error(`PUT: ${put.status} ${await put.text()}`);
  phase = 'image sync';
  const completed = await call(stack, 'POST', `/v1/images/${uuid}/files/iso/complete`);
  if (completed.status >= 300)
    throw new Error(`complete: ${completed.status} ${JSON.stringify(completed.body)}`);
  await waitFor(
    async () => {
      const held = await call(stack, 'GET', `/v1/sites/${SITE}/images`, undefined, true);
      const entry = ((held.body.images ?? []) as Array<Record<string, unknown>>).find((i) => i.uuid === uuid);
      return entry && JSON.stringify(entry).includes('"ready"') ? entry : undefined;
    },
    'the site to hold the image',
    120_000,
  );
  await sleep(2000);
  const isSite = (r: CostRecord) => /^agents:|^direct$/.test(r.label);
  const once = tally(
    (r) => (r.phase === 'image upload' || r.phase === 'image sync') && !isSite(r) && !periodicNow(r),
  );
  const perSite = tally(
    (r) =>
      r.phase === 'image sync' &&
      (isSite(r) || r.detail === '@connections POST') &&
      !/^agents:(heartbeat|power_report)$/.test(r.label),
  );
  // The wake is one @connections POST per connected site: counted once in `once`, so 9 more.
  const wakes = tally((r) => r.phase === 'image sync' && r.detail === '@connections POST');
  rows.push({
    operation: `image sync to ${IMAGE_SITES} sites (${IMAGE_MIB} MiB)`,
    t: add(add(once, perSite, IMAGE_SITES), wakes, -1),
    note: `upload+verify once, ${IMAGE_SITES}× one site's list, download and report`,
  });
  return { rows, tick, tick100, idleSite, idleByLabel };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------

const usd = (value: number) =>
  value === 0 ? '0' : value < 0.0001 ? `$${value.toExponential(2)}` : `$${value.toFixed(value < 1 ? 6 : 2)}`;

function row(operation: string, t: Tally) {
  const gbs = t['lambda.gbs'];
  return {
    operation,
    'DDB req r/w': `${round(t['ddb.read'])}/${round(t['ddb.write'])}`,
    'RRU/WRU': `${round(t['ddb.rru'])}/${round(t['ddb.wru'])}`,
    'SQS req': round(t['sqs.fifo'] + t['sqs.standard']),
    'λ inv': round(t['lambda.invocations']),
    'λ GB-s': gbs < 10 ? gbs.toFixed(3) : String(Math.round(gbs)),
    'HTTP req': round(t['http.requests']),
    'WS msg': round(t['ws.messages']),
    'WS conn-min': round(t['ws.connection.minutes']),
    'S3 req': round(t['s3.tier1'] + t['s3.tier2']),
    'S3 out MB': Number((t['s3.out.bytes'] / 1e6).toFixed(1)),
    KMS: round(t.kms),
    'EB events': round(t.events),
    'log KB': Number((t['logs.bytes'] / 1000).toFixed(1)),
    $: usd(total(t)),
    dominant: dominant(t),
  };
}

const round = (n: number) => (Number.isInteger(n) ? n : Number(n.toFixed(n < 10 ? 2 : 0)));

const work = mkdtempSync(join(tmpdir(), 'metalplane-bench-cost-'));
let stack: Stack | undefined;
const onSignal = () => {
  void (stack?.stop() ?? Promise.resolve()).finally(() => {
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
try {
  process.stdout.write('api Lambda bundle and cold init…\n');
  const bundle = await measureBundle();
  // The alternative: the AWS SDK bundled too (tree-shaken, minified) instead of the runtime's copy.
  const bundleWithSdk = await measureBundle(true);
  if (!process.env.BENCH_COST_SKIP_STACK) {
    stack = await startStack(work);
    const { rows, tick, tick100, idleSite, idleByLabel } = await workload(stack);
    const perMonth = HOURS_PER_MONTH;
    const ticksPerMonth = perMonth * 60;
    const sweep = rows.find((r) => r.operation.startsWith('power sync'))?.t ?? emptyTally();
    // 500 sites of 100 nodes: each site idle plus one sweep of its 100 nodes a minute, and the
    // one tick a minute (measured with 100 nodes stored: its cost does not grow with them here).
    // The idle site's own (empty) node list is replaced by the 100-node sweep.
    const idleWithoutSweep = [...idleByLabel.entries()]
      .filter(([label]) => !/^api:GET \/v1\/agent\/nodes/.test(label))
      .reduce((sum, [, t]) => add(sum, t), emptyTally());
    const fleet = add(
      add(scale(idleWithoutSweep, SITES * perMonth), sweep, SITES * ticksPerMonth),
      tick100,
      ticksPerMonth,
    );
    const tableRows = [
      ...rows.map((r) => row(r.operation, r.t)),
      row('conductor tick (once a minute, per deployment)', tick),
      row('idle site, 1 hour (agent only, extrapolated)', idleSite),
    ];
    printTable(`AWS requests per operation on the local stack (prices: ${PRICES_AS_OF})`, tableRows);
    const idleMonth = total(idleSite) * perMonth;
    const tickMonth = total(tick) * ticksPerMonth;
    printTable('extrapolations (per month = 730 h)', [
      {
        what: 'idle site, per month (its agent)',
        $: usd(idleMonth),
        goal: '≤ $0.05',
        met: idleMonth <= 0.05 ? 'yes' : 'NO',
        dominant: dominant(idleSite),
      },
      {
        what: 'one-site deployment: idle site + the tick',
        $: usd(idleMonth + tickMonth),
        goal: '≤ $0.05',
        met: idleMonth + tickMonth <= 0.05 ? 'yes' : 'NO',
        dominant: dominant(add(scale(idleSite, perMonth), tick, ticksPerMonth)),
      },
      {
        what: `${SITES} sites / ${SITES * NODES_PER_SITE} nodes, 1 sync batch/site/min`,
        $: usd(total(fleet)),
        goal: '≤ $100',
        met: total(fleet) <= 100 ? 'yes' : 'NO',
        dominant: dominant(fleet),
      },
    ]);
    printTable(
      'idle site per month, by periodic message',
      [...idleByLabel.entries()]
        .sort((a, b) => total(b[1]) - total(a[1]))
        .map(([label, t]) => ({
          message: label,
          '$/month': usd(total(t) * perMonth),
          'λ inv/h': round(t['lambda.invocations']),
          'WS msg/h': round(t['ws.messages']),
          'RRU/WRU per h': `${round(t['ddb.rru'])}/${round(t['ddb.wru'])}`,
          'SQS/h': round(t['sqs.fifo'] + t['sqs.standard']),
          dominant: dominant(t),
        })),
    );
    const writes = new Map<string, { requests: number; units: number }>();
    for (const r of records.filter(
      (r) => r.phase === 'power power on' && /^ddb\.w/.test(r.metric) && !r.label.startsWith('bench:'),
    )) {
      const key = `${r.label} ${r.detail}`;
      const entry = writes.get(key) ?? { requests: 0, units: 0 };
      if (r.metric === 'ddb.write') entry.requests += r.value;
      else entry.units += r.value;
      writes.set(key, entry);
    }
    printTable(
      'DynamoDB writes of one power action (power on), with their write units (base table + indexes)',
      [...writes.entries()]
        .sort((a, b) => b[1].units - a[1].units)
        .map(([write, w]) => ({ write, requests: w.requests, WRU: w.units })),
    );
    printTable(
      `${SITES} sites / ${SITES * NODES_PER_SITE} nodes per month, by service`,
      Object.entries(dollars(fleet))
        .sort((a, b) => b[1] - a[1])
        .map(([service, value]) => ({
          service,
          $: usd(value),
          share: `${((value / total(fleet)) * 100).toFixed(1)}%`,
        })),
    );
    // What dominates the fleet: the labels (invocation kinds) behind its biggest line items.
    const byLabel = new Map<string, number>();
    const fleetWeights: Array<[string, (r: CostRecord) => boolean, number]> = [
      [
        'sweep',
        (r) => r.phase === 'sweep' && /^api:GET \/v1\/agent\/nodes|^agents:power_report$/.test(r.label),
        SITES * ticksPerMonth,
      ],
    ];
    for (const [, select, weight] of fleetWeights)
      for (const r of records.filter(select)) {
        const key = `${r.label} — ${r.detail ?? r.metric}`;
        byLabel.set(
          key,
          (byLabel.get(key) ?? 0) + total(scale({ ...emptyTally(), [r.metric]: r.value }, weight)),
        );
      }
    printTable(
      `what a ${SYNC_NODES}-node sweep costs, by call (× ${SITES} sites × ${ticksPerMonth} sweeps/month)`,
      [...byLabel.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([call, value]) => ({ call, '$/month': usd(value) })),
    );
    const lat = summarize(durations.filter((d) => d.label.startsWith('api:PUT')).map((d) => d.ms));
    process.stdout.write(
      `\nlocal handler durations (moto, not DynamoDB, behind them): api PUT p50 ${lat.p50} ms, p99 ${lat.p99} ms over ${lat.n}\n`,
    );
  }
  const bundleRow = (what: string, b: typeof bundle) => {
    const init = summarize(b.initMs);
    const proc = summarize(b.processMs);
    return {
      variant: what,
      'bundle KB': Number((b.bytes / 1024).toFixed(1)),
      'goal KB': 1024,
      met: b.bytes <= 1024 * 1024 ? 'yes' : 'NO',
      'import p50 ms': Number(init.p50.toFixed(1)),
      'import min ms': Number(init.min.toFixed(1)),
      'of which @aws-sdk p50 ms': Number(summarize(b.sdkMs).p50.toFixed(1)),
      'process p50 ms': Number(proc.p50.toFixed(1)),
      'goal ms': 150,
      'init met': init.p50 <= 150 ? 'yes' : 'NO',
      runs: init.n,
    };
  };
  printTable(
    `api Lambda bundle (esbuild as infra/stack.ts: minified ESM, node24) and cold init (fresh node, import to handler ready; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')})`,
    [
      bundleRow("as deployed: @aws-sdk/* external (the runtime's)", bundle),
      bundleRow('alternative: @aws-sdk bundled', bundleWithSdk),
    ],
  );
  process.stdout.write(`largest in the bundle: ${bundle.top}\n`);
  process.stdout.write(
    `\nprices (${PRICES_AS_OF}):\n${Object.values(PRICES)
      .map((p) => `  ${p.source}`)
      .join('\n')}\n`,
  );
} finally {
  await stack?.stop();
  rmSync(work, { recursive: true, force: true });
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
}
