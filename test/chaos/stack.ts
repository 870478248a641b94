/**
 * The control plane for the chaos harness, in this process: the very api and agents
 * handlers behind the local HTTP and WebSocket gateways, on moto reached through the
 * fault proxy. Works outside vitest (`npm run chaos`), unlike test/support/channel.ts,
 * whose resources come from vitest's `inject`. Both gateways restart on their own ports.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { managementEndpointEnvVar } from '../../infra/resources.ts';
import { UserRepository } from '../../lambda/adapters/dynamo/user-repository.ts';
import { type AgentRuntime, createAgentRuntime } from '../../lambda/agents/channel.ts';
import { createAgentsHandler } from '../../lambda/agents/handler.ts';
import { buildRouter } from '../../lambda/api/app.ts';
import { AUTH_STRATEGY_ENV, authenticatorFromEnv, LOCAL_STACK_ENV } from '../../lambda/api/authentication.ts';
import { type Dependencies, dependenciesFromEnv } from '../../lambda/api/dependencies.ts';
import { registerAgentRoutes } from '../../lambda/api/routes/agents.ts';
import { registerCommandRoutes } from '../../lambda/api/routes/commands.ts';
import { registerPowerRoutes } from '../../lambda/api/routes/power.ts';
import { registerProvisionRoutes } from '../../lambda/api/routes/provision.ts';
import { registerSiteRoutes } from '../../lambda/api/routes/sites.ts';
import { hashPassword } from '../../lambda/domain/auth/passwords.ts';
import { createApiHandler } from '../../lambda/http/middlewares.ts';
import { bootstrapResources, resourceEnvironment } from '../../local/bootstrap.ts';
import { type HttpGateway, startHttpGateway } from '../../local/http-gateway.ts';
import { emulatorEnvironment } from '../../local/moto.ts';
import { startWebSocketGateway, type WebSocketGateway } from '../../local/ws-gateway.ts';

export interface Answer {
  readonly status: number;
  // API bodies are read field by field, as in test/support/api.ts.
  readonly body: any;
}

export interface ChaosStack {
  readonly deps: Dependencies;
  readonly runtime: AgentRuntime;
  readonly apiUrl: string;
  readonly webSocketUrl: string;
  /** An admin call; a request the API never answered (restart) rejects. */
  call(method: string, path: string, body?: unknown): Promise<Answer>;
  restartApi(downMs: number): Promise<void>;
  restartWebSocket(downMs: number): Promise<void>;
  close(): Promise<void>;
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

export async function startChaosStack(options: {
  /** The AWS endpoint the handlers use (the fault proxy). */
  awsEndpoint: string;
  prefix: string;
  visibilityTimeoutSeconds: number;
}): Promise<ChaosStack> {
  Object.assign(process.env, emulatorEnvironment(options.awsEndpoint), resourceEnvironment(options.prefix));
  delete process.env[AUTH_STRATEGY_ENV];
  process.env[LOCAL_STACK_ENV] = 'true';
  await bootstrapResources(options.prefix);
  const deps = dependenciesFromEnv();
  const admin = { username: 'chaos-admin', password: `chaos-${options.prefix}` };
  await new UserRepository(deps.store).create({
    name: admin.username,
    role: 'admin',
    project: null,
    password_hash: await hashPassword(admin.password),
    created_at: deps.now(),
    updated_at: null,
  });
  let gateway: WebSocketGateway | undefined;
  const runtime = createAgentRuntime({
    store: deps.store,
    createMissingQueues: true,
    logger: silent,
    managementEndpoint: () => gateway?.managementEndpoint,
    visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
  });
  const router = buildRouter(deps);
  registerSiteRoutes(router, deps, runtime);
  registerAgentRoutes(router, deps, runtime);
  registerCommandRoutes(router, deps, runtime);
  registerProvisionRoutes(router, deps, runtime);
  registerPowerRoutes(router, deps, runtime);
  const apiHandler = createApiHandler(router, new Logger({ logLevel: 'SILENT' }), authenticatorFromEnv(deps));
  const agentsHandler = createAgentsHandler(() => runtime);
  let api: HttpGateway = await startHttpGateway({ handler: apiHandler });
  gateway = await startWebSocketGateway({ handler: agentsHandler, log: () => undefined });
  process.env[managementEndpointEnvVar] = gateway.managementEndpoint;
  const apiPort = api.port;
  const wsPort = gateway.port;
  const authorization = `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}`;
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const send = async (method: string, path: string, body: unknown): Promise<Answer> => {
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers: {
        Authorization: authorization,
        'X-OpenStack-Ironic-API-Version': '1.82',
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
  };
  return {
    deps,
    runtime,
    apiUrl: api.url,
    webSocketUrl: gateway.url,
    async call(method, path, body) {
      // Refused connections (the API restarting) were never served: knock again, bounded.
      for (let attempt = 0; ; attempt++) {
        try {
          return await send(method, path, body);
        } catch (error) {
          const code = ((error as Error).cause as { code?: string } | undefined)?.code;
          if (code !== 'ECONNREFUSED' || attempt >= 100) throw error;
          await pause(20);
        }
      }
    },
    async restartApi(downMs) {
      await api.close();
      // The down time is the fault itself (the API is away that long), not a synchronisation.
      await pause(downMs);
      api = await startHttpGateway({ handler: apiHandler, port: apiPort });
    },
    async restartWebSocket(downMs) {
      await gateway?.close();
      await pause(downMs);
      gateway = await startWebSocketGateway({ handler: agentsHandler, port: wsPort, log: () => undefined });
    },
    async close() {
      await gateway?.close();
      await api.close();
    },
  };
}
