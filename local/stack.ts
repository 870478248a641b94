/**
 * The local stack: moto server, the resources from `infra/resources.ts`, and the very
 * Lambda handlers AWS runs, served by the local HTTP gateway (Ironic's port 6385) and the
 * local WebSocket gateway. `local/start.ts` is its command line; tests and benchmarks
 * start it in-process.
 */
import { bootstrapResources, resourceEnvironment } from './bootstrap.ts';
import { type HttpGateway, startHttpGateway } from './http-gateway.ts';
import { emulatorEnvironment, type MotoServer, startMoto } from './moto.ts';
import { startWebSocketGateway, type WebSocketGateway } from './ws-gateway.ts';

export interface LocalStackOptions {
  readonly host?: string;
  readonly apiPort?: number;
  readonly webSocketPort?: number;
  /** Port of moto server; 0 picks a free one. */
  readonly motoPort?: number;
  /** Name prefix of tables, queues and bucket. */
  readonly prefix?: string;
}

export interface LocalStack {
  readonly apiUrl: string;
  readonly webSocketUrl: string;
  readonly awsEndpoint: string;
  stop(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** The local stack's one site, `local`, which nodes join by default. */
export const LOCAL_SITE = 'local';

async function ensureLocalSite(): Promise<void> {
  const { dependenciesFromEnv } = await import('../lambda/api/dependencies.ts');
  const { sites, now } = dependenciesFromEnv();
  if (!(await sites.get(LOCAL_SITE))) {
    await sites.create({
      name: LOCAL_SITE,
      description: 'the local stack',
      location: null,
      created_at: now(),
      updated_at: null,
    });
  }
  if ((await sites.defaultSite()) !== LOCAL_SITE) await sites.setDefault(LOCAL_SITE);
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const host = options.host ?? '127.0.0.1';
  if (!LOOPBACK.test(host)) throw new Error(`the local stack binds loopback addresses only, not ${host}`);
  const stoppers: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const stopOne of stoppers.reverse()) await stopOne().catch(() => undefined);
  };
  try {
    const moto: MotoServer = await startMoto(options.motoPort ? { port: options.motoPort } : {});
    stoppers.push(() => moto.stop());
    const prefix = options.prefix ?? 'metalplane-local';
    Object.assign(process.env, emulatorEnvironment(moto.endpoint), resourceEnvironment(prefix));
    await bootstrapResources(prefix);
    await ensureLocalSite();
    // Imported only now: the handlers read their configuration from the environment.
    const { handler: apiHandler } = await import('../lambda/api/handler.ts');
    const { handler: agentsHandler } = await import('../lambda/agents/handler.ts');
    const api: HttpGateway = await startHttpGateway({
      host,
      port: options.apiPort ?? 6385,
      handler: apiHandler,
    });
    stoppers.push(() => api.close());
    const webSocket: WebSocketGateway = await startWebSocketGateway({
      host,
      port: options.webSocketPort ?? 6386,
      handler: agentsHandler,
    });
    stoppers.push(() => webSocket.close());
    return { apiUrl: api.url, webSocketUrl: webSocket.url, awsEndpoint: moto.endpoint, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
