/**
 * The agent channel for integration tests: the real api handler (with the sites, agents
 * and commands routes) behind the local HTTP gateway, the real agents handler behind the
 * local WebSocket gateway, both on moto, and a `ws` client playing the agent.
 *
 *   const stack = await startChannel({ visibilityTimeoutSeconds: 2 });
 *   const agent = await stack.enroll('fra1', 'fra1-agent-1');
 *   const socket = await stack.connect(agent.credential);
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import WebSocket from 'ws';
import { managementEndpointEnvVar } from '../../infra/resources.ts';
import type { ChannelLogger } from '../../lambda/adapters/command-queue.ts';
import { createAgentsHandler } from '../../lambda/agents/handler.ts';
import { registerAgentRoutes } from '../../lambda/api/routes/agents.ts';
import { registerCommandRoutes } from '../../lambda/api/routes/commands.ts';
import { registerIndicatorRoutes } from '../../lambda/api/routes/indicators.ts';
import { registerPowerRoutes } from '../../lambda/api/routes/power.ts';
import { registerProvisionRoutes } from '../../lambda/api/routes/provision.ts';
import { registerSiteRoutes } from '../../lambda/api/routes/sites.ts';
import {
  type ControlPlane as AgentRuntime,
  type ControlPlaneOptions,
  createControlPlane as createAgentRuntime,
} from '../../lambda/runtime.ts';
import {
  type GatewayLogEntry,
  startWebSocketGateway,
  type WebSocketGateway,
} from '../../local/ws-gateway.ts';
import { parseServerMessage, type ServerMessage } from '../../protocol/messages.ts';
import { type CallResult, startApi, type TestApi } from './api.ts';

export const WAIT_MS = 5000;

/**
 * Polls until `probe` answers something other than undefined or false, every `intervalMs`
 * (20 ms by default); fails after `timeoutMs`. (A `false` ended the wait at once before, so
 * a boolean probe passed without waiting; agent/testing's waitFor already waited.) A probe
 * that costs requests (an API read through moto) over a wait of minutes is better polled
 * less often: every poll takes CPU from the rest.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = WAIT_MS,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Waits for the node (as `read` answers it) to reach `state` with nothing in flight; answers it. */
export async function nodeReaches(
  read: (uuid: string) => Promise<any>,
  uuid: string,
  state: string,
  timeoutMs: number,
): Promise<any> {
  return waitFor(
    async () => {
      const current = await read(uuid);
      if (current.provision_state === state && current.reservation === null) return current;
      return undefined;
    },
    `node ${uuid} to reach ${state}`,
    timeoutMs,
  );
}

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly extra: Record<string, unknown>;
}

export interface EnrolledAgent {
  readonly hostname: string;
  readonly site: string;
  readonly credential: string;
  readonly body: Record<string, unknown>;
}

/** A `ws` client playing the agent: every message it receives, parsed. */
export class AgentSocket {
  readonly ws: WebSocket;
  readonly received: ServerMessage[] = [];
  readonly raw: string[] = [];
  closed: { code: number; reason: string } | undefined;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const text = data.toString();
      this.raw.push(text);
      this.received.push(parseServerMessage(text));
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next not yet consumed message of `type` (earlier ones of other types are skipped over, kept). */
  async next<T extends ServerMessage['type']>(
    type: T,
    timeoutMs = WAIT_MS,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    return waitFor(
      () => {
        for (let i = 0; i < this.received.length; i++) {
          const message = this.received[i] as ServerMessage;
          if (message.type === type) {
            this.received.splice(i, 1);
            return message as Extract<ServerMessage, { type: T }>;
          }
        }
        return undefined;
      },
      `a ${type} message`,
      timeoutMs,
    );
  }

  /** Sends `pull` and answers the `commands` that come back. */
  async pull(max = 10) {
    this.send({ v: 1, type: 'pull', max });
    return (await this.next('commands')).commands;
  }

  count(type: ServerMessage['type']): number {
    return this.received.filter((message) => message.type === type).length;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.terminate();
    });
  }
}

export interface ChannelStack {
  readonly api: TestApi;
  readonly gateway: WebSocketGateway;
  readonly runtime: AgentRuntime;
  /** The inventory store the runtime was built on (for a second runtime on another clock). */
  readonly store: ControlPlaneOptions['store'];
  readonly sqs: SQSClient;
  /** The SQS client the control plane's runtime uses (e.g. to see when a long poll starts). */
  readonly runtimeSqs: SQSClient;
  readonly logs: LogLine[];
  readonly gatewayLogs: GatewayLogEntry[];
  /** Creates a site through the API (admin). */
  createSite(name: string): Promise<CallResult>;
  /** Creates a fake-hardware node in `site`; answers its UUID. */
  createNode(site: string, extra?: Record<string, unknown>): Promise<string>;
  /** Mints an enrollment token and enrolls `hostname` with it. */
  enroll(site: string, hostname: string): Promise<EnrolledAgent>;
  /** Opens a socket with `Authorization: Bearer <credential>`; rejects with the HTTP status if refused. */
  connect(credential: string | undefined, options?: { query?: string }): Promise<AgentSocket>;
  /** An API call with an agent credential (no Basic credentials). */
  asAgent(
    credential: string,
    method: string,
    path: string,
    body?: unknown,
    rawBody?: string,
  ): Promise<CallResult>;
  close(): Promise<void>;
}

export async function startChannel(
  options: { visibilityTimeoutSeconds?: number; auth?: 'basic' | 'noauth'; syncWaitMs?: number } = {},
): Promise<ChannelStack> {
  const logs: LogLine[] = [];
  const logger: ChannelLogger = {
    info: (message, extra) => logs.push({ level: 'info', message, extra }),
    warn: (message, extra) => logs.push({ level: 'warn', message, extra }),
    error: (message, extra) => logs.push({ level: 'error', message, extra }),
  };
  let gateway: WebSocketGateway | undefined;
  let runtime: AgentRuntime | undefined;
  let store: ControlPlaneOptions['store'];
  // What createAgentRuntime would build itself, made here so that tests can watch it.
  const runtimeSqs = new SQSClient({ maxAttempts: 3 });
  const getRuntime = () => {
    if (!runtime) throw new Error('the channel runtime is not ready');
    return runtime;
  };
  const api = await startApi({
    auth: options.auth ?? 'basic',
    extend: (router, deps) => {
      store = deps.store;
      runtime = createAgentRuntime({
        store: deps.store,
        createMissingQueues: true,
        sqs: runtimeSqs,
        logger,
        managementEndpoint: () => gateway?.managementEndpoint,
        ...(options.visibilityTimeoutSeconds !== undefined
          ? { visibilityTimeoutSeconds: options.visibilityTimeoutSeconds }
          : {}),
      });
      registerSiteRoutes(router, deps, getRuntime);
      registerAgentRoutes(router, deps, getRuntime);
      registerCommandRoutes(router, deps, getRuntime);
      registerProvisionRoutes(router, deps, getRuntime);
      const wait = options.syncWaitMs ? { syncWaitMs: options.syncWaitMs } : {};
      registerPowerRoutes(router, deps, getRuntime, wait);
      registerIndicatorRoutes(router, deps, getRuntime, wait);
    },
  });
  const gatewayLogs: GatewayLogEntry[] = [];
  gateway = await startWebSocketGateway({
    handler: createAgentsHandler(getRuntime),
    log: (entry) => gatewayLogs.push(entry),
  });
  // The API's own authenticator builds its runtime from the environment: same endpoint.
  process.env[managementEndpointEnvVar] = gateway.managementEndpoint;
  const ws = gateway;
  const sqs = new SQSClient({});
  const sockets: AgentSocket[] = [];

  const stack: ChannelStack = {
    api,
    gateway: ws,
    runtime: getRuntime(),
    store,
    sqs,
    runtimeSqs,
    logs,
    gatewayLogs,
    createSite: (name) => api.call('POST', '/v1/sites', { body: { name } }),
    async createNode(site, extra = {}) {
      const created = await api.call('POST', '/v1/nodes', {
        body: { driver: 'fake-hardware', conductor_group: site, ...extra },
      });
      if (created.status !== 201)
        throw new Error(`node not created: ${created.status} ${JSON.stringify(created.body)}`);
      return created.body.uuid as string;
    },
    async enroll(site, hostname) {
      const minted = await api.call('POST', `/v1/sites/${site}/agents`);
      if (minted.status !== 201)
        throw new Error(`no enrollment token: ${minted.status} ${JSON.stringify(minted.body)}`);
      const enrolled = await api.call('POST', '/v1/agents/enroll', {
        as: null,
        body: { token: minted.body.token, hostname, drivers: ['fake-hardware'] },
      });
      if (enrolled.status !== 201)
        throw new Error(`not enrolled: ${enrolled.status} ${JSON.stringify(enrolled.body)}`);
      return { hostname, site, credential: enrolled.body.credential as string, body: enrolled.body };
    },
    connect(credential, connectOptions = {}) {
      return new Promise((resolve, reject) => {
        const client = new WebSocket(`${ws.url}${connectOptions.query ?? ''}`, {
          headers: credential === undefined ? {} : { Authorization: `Bearer ${credential}` },
          handshakeTimeout: WAIT_MS,
        });
        const socket = new AgentSocket(client);
        client.once('open', () => {
          sockets.push(socket);
          resolve(socket);
        });
        client.once('unexpected-response', (_request, response) => {
          const error = Object.assign(new Error(`refused with ${response.statusCode}`), {
            status: response.statusCode,
          });
          response.resume();
          client.terminate();
          reject(error);
        });
        client.once('error', (error) => reject(error));
      });
    },
    asAgent: (credential, method, path, body, rawBody) =>
      api.call(method, path, {
        as: null,
        headers: { Authorization: `Bearer ${credential}` },
        ...(body !== undefined ? { body } : {}),
        ...(rawBody !== undefined ? { rawBody } : {}),
      }),
    async close() {
      await Promise.all(sockets.map((socket) => socket.close()));
      await ws.close();
      await api.close();
      sqs.destroy();
    },
  };
  return stack;
}
