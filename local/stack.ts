/**
 * The local stack: moto server, the resources from `infra/resources.ts`, and the very
 * Lambda handlers AWS runs, served by the local HTTP gateway (Ironic's port 6385) and the
 * local WebSocket gateway. `local/start.ts` is its command line; tests and benchmarks
 * start it in-process.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { queueName, webhookDeliveriesQueue, webhookEventsQueue } from '../infra/resources.ts';
import { type LocalAgent, startLocalAgent } from './agent.ts';
import { bootstrapResources, createSiteCommandQueue, resourceEnvironment } from './bootstrap.ts';
import { type HttpGateway, startHttpGateway } from './http-gateway.ts';
import { emulatorEnvironment, type MotoServer, startMoto } from './moto.ts';
import { assertPortFree, reapStaleChildren } from './processes.ts';
import { startWebSocketGateway, type WebSocketGateway } from './ws-gateway.ts';

export interface LocalStackOptions {
  readonly host?: string;
  readonly apiPort?: number;
  readonly webSocketPort?: number;
  /** Port of moto server; 0 picks a free one. */
  readonly motoPort?: number;
  /** Name prefix of tables, queues and bucket. */
  readonly prefix?: string;
  /** Serve without authentication (everyone is admin): loopback only, never on AWS. */
  readonly noauth?: boolean;
  /** How often the conductor tick runs (AWS: every minute; locally 10 s by default). */
  readonly tickIntervalMs?: number;
  /** Enroll and run an agent for site `local` (default true). */
  readonly agent?: boolean;
  readonly agentStatusPort?: number;
  /** Admin password, clouds.yaml, the agent's state and the children's pid files (`run/`); default `.local/`. */
  readonly stateDir?: string;
  /**
   * Aborts the start (a signal during start-up): whatever was started is stopped by its
   * PID, then the promise rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
  /** Where notices go (stale processes found and stopped); default stderr. */
  readonly log?: (line: string) => void;
}

export interface LocalStack {
  /** The admin the local stack created (none with noauth). */
  readonly admin?: { readonly username: string; readonly password: string; readonly cloudsYaml: string };
  readonly agent?: LocalAgent;
  readonly apiUrl: string;
  readonly webSocketUrl: string;
  readonly awsEndpoint: string;
  stop(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** The local stack's one site, `local`, which nodes join by default. */
export const LOCAL_SITE = 'local';

async function ensureLocalSite(prefix: string): Promise<void> {
  const { dependenciesFromEnv } = await import('../lambda/api/dependencies.ts');
  const { sites, now } = dependenciesFromEnv();
  if (!(await sites.get(LOCAL_SITE))) {
    await sites.create({
      name: LOCAL_SITE,
      description: 'the local stack',
      location: null,
      created_at: now(),
      updated_at: null,
      queue_url: await createSiteCommandQueue(prefix, LOCAL_SITE),
    });
  }
  if ((await sites.defaultSite()) !== LOCAL_SITE) await sites.setDefault(LOCAL_SITE);
}

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const STATE_DIR = join(PROJECT_ROOT, '.local');

/**
 * The local admin: user `admin`, with a random password kept in `.local/` (0600) so it
 * survives restarts of the in-memory emulator. Never a fixed, guessable password.
 */
async function ensureLocalAdmin(
  stateDir: string,
): Promise<{ username: string; password: string; cloudsYaml: string }> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const passwordFile = join(stateDir, 'admin-password');
  if (!existsSync(passwordFile))
    writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();
  const { dependenciesFromEnv } = await import('../lambda/api/dependencies.ts');
  const { UserRepository } = await import('../lambda/adapters/dynamo/user-repository.ts');
  const { hashPassword } = await import('../lambda/domain/auth/passwords.ts');
  const { store, now } = dependenciesFromEnv();
  const users = new UserRepository(store);
  if (!(await users.get('admin'))) {
    await users.create({
      name: 'admin',
      role: 'admin',
      project: null,
      password_hash: await hashPassword(password),
      created_at: now(),
      updated_at: null,
    });
  }
  return { username: 'admin', password, cloudsYaml: join(stateDir, 'clouds.yaml') };
}

/** A clouds.yaml for the real `baremetal` CLI: OS_CLIENT_CONFIG_FILE=.local/clouds.yaml OS_CLOUD=metalplane-local. */
function writeCloudsYaml(
  admin: { username: string; password: string; cloudsYaml: string },
  apiUrl: string,
): void {
  const yaml = [
    'clouds:',
    '  metalplane-local:',
    '    auth_type: http_basic',
    '    auth:',
    `      username: ${admin.username}`,
    `      password: ${admin.password}`,
    `    baremetal_endpoint_override: ${apiUrl}`,
    '',
  ].join('\n');
  writeFileSync(admin.cloudsYaml, yaml, { mode: 0o600 });
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.test(host)) throw new Error(`the local stack binds loopback addresses only, not ${host}`);
  const stateDir = options.stateDir ?? STATE_DIR;
  const runDir = join(stateDir, 'run');
  const signal = options.signal;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const apiPort = options.apiPort ?? 6385;
  const webSocketPort = options.webSocketPort ?? 6386;
  const stoppers: Array<() => Promise<void>> = [];
  const stop = async () => {
    // Last started, first stopped; splice so that a second call has nothing left to do.
    for (const stopOne of stoppers.splice(0).reverse()) await stopOne().catch(() => undefined);
  };
  signal?.throwIfAborted();
  // A crashed run's children first: one of them may hold a port checked just below.
  for (const finding of await reapStaleChildren(runDir)) log(`metalplane: ${finding}`);
  // Every fixed port up front: a clear message naming the port and its holder, and
  // nothing started that would have to be stopped again.
  await assertPortFree(host, apiPort, 'the API', '--api-port');
  await assertPortFree(host, webSocketPort, 'the agent WebSocket gateway', '--ws-port');
  if (options.agent !== false)
    await assertPortFree(
      '127.0.0.1',
      options.agentStatusPort ?? 9469,
      "the agent's status",
      '--agent-status-port',
    );
  try {
    const moto: MotoServer = await startMoto({
      ...(options.motoPort ? { port: options.motoPort } : {}),
      ...(signal ? { signal } : {}),
      runDir,
    });
    stoppers.push(() => moto.stop());
    const prefix = options.prefix ?? 'metalplane-local';
    Object.assign(process.env, emulatorEnvironment(moto.endpoint), resourceEnvironment(prefix), {
      METALPLANE_LOCAL_STACK: 'true',
      // The WebSocket gateway's address is known before it starts (its port is fixed).
      METALPLANE_WS_URL: `ws://${host}:${webSocketPort}/local`,
      METALPLANE_WS_MANAGEMENT_ENDPOINT: `http://${host}:${webSocketPort}/local`,
      ...(options.noauth ? { METALPLANE_AUTH_STRATEGY: 'noauth' } : {}),
    });
    // Each step runs to its end before an abort is looked at: stopping what a step is
    // still starting would race with it.
    await bootstrapResources(prefix);
    signal?.throwIfAborted();
    await ensureLocalSite(prefix);
    const admin = options.noauth ? undefined : await ensureLocalAdmin(stateDir);
    signal?.throwIfAborted();
    // Imported only now: the handlers read their configuration from the environment.
    const { handler: apiHandler } = await import('../lambda/entrypoints/api.ts');
    const { handler: agentsHandler } = await import('../lambda/entrypoints/agents.ts');
    signal?.throwIfAborted();
    const api: HttpGateway = await startHttpGateway({ host, port: apiPort, handler: apiHandler });
    stoppers.push(() => api.close());
    signal?.throwIfAborted();
    const webSocket: WebSocketGateway = await startWebSocketGateway({
      host,
      port: webSocketPort,
      handler: agentsHandler,
    });
    stoppers.push(() => webSocket.close());
    // The conductor's periodic tick (EventBridge, once a minute, on AWS): command expiry.
    const { tick } = await import('../lambda/conductor/tick.ts');
    const { controlPlaneFromEnv } = await import('../lambda/runtime.ts');
    const ticker = setInterval(() => {
      tick(controlPlaneFromEnv()).catch((error: Error) =>
        process.stderr.write(`conductor tick failed: ${error.message}\n`),
      );
    }, options.tickIntervalMs ?? 10_000);
    ticker.unref();
    stoppers.push(async () => clearInterval(ticker));
    // The webhooks Lambda's SQS event sources (AWS): its two queues polled here.
    const { handler: webhooksHandler } = await import('../lambda/entrypoints/webhooks.ts');
    const webhooks = pollWebhookQueues(prefix, (event) => webhooksHandler(event, {} as never));
    stoppers.push(() => webhooks.stop());
    if (admin) writeCloudsYaml(admin, api.url);
    signal?.throwIfAborted();
    const agent =
      options.agent === false
        ? undefined
        : await startLocalAgent({
            projectRoot: PROJECT_ROOT,
            stateDir,
            apiUrl: api.url,
            webSocketUrl: webSocket.url,
            site: LOCAL_SITE,
            ...(admin ? { admin } : {}),
            ...(options.agentStatusPort !== undefined ? { statusPort: options.agentStatusPort } : {}),
            ...(signal ? { signal } : {}),
          });
    if (agent) stoppers.push(() => agent.stop());
    signal?.throwIfAborted();
    return {
      ...(admin ? { admin } : {}),
      ...(agent ? { agent } : {}),
      apiUrl: api.url,
      webSocketUrl: webSocket.url,
      awsEndpoint: moto.endpoint,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface QueuePoller {
  stop(): Promise<void>;
}

/**
 * The webhooks Lambda's event sources, locally: its two queues (the events the bus's rule
 * sends, the deliveries) long-polled and handed to `handle` as SQS batches, as Lambda's
 * event source mapping does; what `handle` reports failed stays for SQS to redeliver.
 */
export function pollWebhookQueues(
  prefix: string,
  handle: (event: SQSEvent) => Promise<SQSBatchResponse | undefined>,
  options: { readonly sqs?: SQSClient } = {},
): QueuePoller {
  const sqs = options.sqs ?? new SQSClient({});
  const abort = new AbortController();
  const loop = async (queue: string) => {
    let url: string | undefined;
    while (!abort.signal.aborted) {
      try {
        url ??= (await sqs.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl as string;
        const answer = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: abort.signal },
        );
        const messages = answer.Messages ?? [];
        if (messages.length === 0) continue;
        const records = messages.map(
          (message) =>
            ({
              messageId: message.MessageId as string,
              receiptHandle: message.ReceiptHandle as string,
              body: message.Body ?? '',
              attributes: { ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1' },
              messageAttributes: {},
              md5OfBody: message.MD5OfBody ?? '',
              eventSource: 'aws:sqs',
              eventSourceARN: queue,
              awsRegion: '',
            }) as unknown as SQSRecord,
        );
        const result = await handle({ Records: records });
        const failed = new Set((result?.batchItemFailures ?? []).map((failure) => failure.itemIdentifier));
        // One request for the batch's processed messages, as the event source mapping does.
        const done = records.filter((record) => !failed.has(record.messageId));
        if (done.length > 0) {
          const answer = await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: url,
              Entries: done.map((record, index) => ({
                Id: String(index),
                ReceiptHandle: record.receiptHandle,
              })),
            }),
          );
          for (const failure of answer.Failed ?? []) {
            process.stderr.write(
              `webhook queue ${queue}: a message not deleted: ${failure.Message ?? failure.Code}\n`,
            );
          }
        }
      } catch (error) {
        if (abort.signal.aborted) return;
        process.stderr.write(`webhook queue ${queue}: ${(error as Error).message}\n`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  };
  const loops = [webhookEventsQueue, webhookDeliveriesQueue].map((queue) => loop(queueName(prefix, queue)));
  return {
    stop: async () => {
      abort.abort();
      await Promise.allSettled(loops);
      if (!options.sqs) sqs.destroy();
    },
  };
}
