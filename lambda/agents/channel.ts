/**
 * The agent channel's message handling, shared by both transports: the WebSocket
 * (`handler.ts`, `$default`) and the HTTPS fallback (`POST /v1/agent/messages`,
 * `GET /v1/agent/commands` in `api/routes/agents.ts`). Same messages
 * (`protocol/messages.ts`), same checks, same effects.
 *
 * A message is parsed and validated first; a malformed one, or one naming what is not
 * the agent's (another hostname, another site's command), is refused and logged and
 * nothing is done with it.
 */

import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { SQSClient } from '@aws-sdk/client-sqs';
import {
  commandsTable,
  connectionsTable,
  inventoryTable,
  resourcePrefixEnvVar,
} from '../../infra/resources.ts';
import {
  type AgentMessage,
  ProtocolError,
  parseAgentMessage,
  type ServerMessage,
} from '../../protocol/messages.ts';
import { type ChannelLogger, ChannelRefusal, CommandQueue } from '../adapters/command-queue.ts';
import { ConnectionNotifier } from '../adapters/connection-notifier.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { CommandRepository } from '../adapters/dynamo/command-repository.ts';
import { ConnectionRepository } from '../adapters/dynamo/connection-repository.ts';
import { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import { PortRepository } from '../adapters/dynamo/port-repository.ts';
import { SiteRepository } from '../adapters/dynamo/site-repository.ts';
import { sealerFromEnv } from '../adapters/kms/envelope-sealer.ts';
import { ImageObjects } from '../adapters/s3/image-objects.ts';
import { Conductor } from '../conductor/conductor.ts';
import { resumeWaitingDeploys } from '../conductor/deploy-inputs.ts';
import { registerPowerTasks } from '../conductor/power.ts';
import { applyPowerReports } from '../conductor/power-sync.ts';
import { Provisioner } from '../conductor/provision.ts';
import type { SecretSealer } from '../domain/auth/sealing.ts';
import type { CommandCompletions } from '../domain/commands/completions.ts';
import type { AgentRecord } from '../domain/conductors.ts';
import { DomainError } from '../domain/errors.ts';
import { ironicTimestamp } from '../domain/time.ts';
import { ImageCatalog } from '../images/catalog.ts';
import { AgentCredentials, type AgentIdentity } from './credentials.ts';

export interface Provisioning {
  readonly provisioner: Provisioner;
  readonly nodes: NodeRepository;
  readonly images: ImageRepository;
  readonly ports: PortRepository;
}

export interface AgentRuntime {
  readonly queue: CommandQueue;
  readonly credentials: AgentCredentials;
  readonly connections: ConnectionRepository;
  readonly notifier: ConnectionNotifier;
  readonly commands: CommandRepository;
  /** The image catalog: what the site holds (`images_pull`), sync reports, `wake` on changes. */
  readonly images: ImageCatalog;
  /** The conductor library: tasks awaiting commands, power sync. */
  readonly conductor: Conductor;
  /** The provision state machine's flows, and what they read (images, ports). */
  readonly provisioning: Provisioning;
  readonly logger: ChannelLogger;
  readonly now: () => Date;
  /** Seals secrets as nodes and commands are written; opens them only for the agent. */
  readonly sealer: SecretSealer;
}

export interface AgentRuntimeOptions {
  /** The inventory store (default: the table named by the environment). */
  readonly store?: InventoryStore;
  readonly sqs?: SQSClient;
  readonly logger?: ChannelLogger;
  /** Default: `METALPLANE_WS_MANAGEMENT_ENDPOINT`. */
  readonly managementEndpoint?: string | (() => string | undefined);
  /** See `CommandQueueOptions.createMissingQueues` (default false). */
  readonly createMissingQueues?: boolean;
  /** See `CommandQueueOptions.visibilityTimeoutSeconds`. */
  readonly visibilityTimeoutSeconds?: number;
  readonly now?: () => Date;
  /** Default: KMS, with the key `METALPLANE_SECRETS_KEY` names. */
  readonly sealer?: SecretSealer;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** Builds the channel's collaborators; table names and endpoints are read at first use. */
export function createAgentRuntime(options: AgentRuntimeOptions = {}): AgentRuntime {
  const db = documentClient();
  const store = options.store ?? new InventoryStore(db, () => tableFromEnv(inventoryTable.envVar));
  const logger = options.logger ?? new Logger({ serviceName: 'metalplane-agents' });
  const now = options.now ?? (() => new Date());
  const notifier = new ConnectionNotifier(options.managementEndpoint);
  const connections = new ConnectionRepository(db, () => tableFromEnv(connectionsTable.envVar));
  const commands = new CommandRepository(db, () => tableFromEnv(commandsTable.envVar));
  const sealer = options.sealer ?? sealerFromEnv();
  const nodes = new NodeRepository(store, sealer);
  const sqs = options.sqs ?? new SQSClient({ maxAttempts: 3 });
  // The conductor queues its commands through the queue; the queue reports finished
  // commands through the `CommandCompletions` port only (it knows no conductor, writes no
  // node). The port forwards to the conductor built below, before any command exists.
  const completions: CommandCompletions = { finished: (command) => conductor.finished(command) };
  const queue = new CommandQueue({
    sqs,
    prefix: () => requiredEnv(resourcePrefixEnvVar),
    sites: new SiteRepository(store),
    commands,
    connections,
    notifier,
    logger,
    newId: () => randomUUID(),
    now,
    completions,
    sealer,
    createMissingQueues: options.createMissingQueues ?? false,
    ...(options.visibilityTimeoutSeconds !== undefined
      ? { visibilityTimeoutSeconds: options.visibilityTimeoutSeconds }
      : {}),
  });
  const credentials = new AgentCredentials(store, connections, notifier, now);
  const images = new ImageCatalog({
    store,
    objects: new ImageObjects(),
    sites: new SiteRepository(store),
    connections,
    notifier,
    logger,
    now: () => ironicTimestamp(now()),
    sqs: () => sqs,
  });
  const conductor = new Conductor({
    nodes,
    queue,
    agents: credentials.agents,
    commands,
    logger,
    newId: () => randomUUID(),
    now,
  });
  registerPowerTasks(conductor);
  const provisioner = new Provisioner(conductor, () => randomUUID());
  const provisioning = {
    provisioner,
    nodes,
    images: new ImageRepository(store),
    ports: new PortRepository(store),
  };
  return {
    queue,
    credentials,
    connections,
    notifier,
    commands,
    conductor,
    provisioning,
    images,
    logger,
    now,
    sealer,
  };
}

let shared: AgentRuntime | undefined;

/** One runtime per Lambda container, from the environment. */
export function agentRuntimeFromEnv(): AgentRuntime {
  shared ??= createAgentRuntime();
  return shared;
}

const byStore = new WeakMap<InventoryStore, AgentRuntime>();

/**
 * The runtime on the API's own inventory store (one per store), for the API's routes: it
 * may create a legacy site's missing queue (the api Lambda has `sqs:CreateQueue`).
 */
export function agentRuntimeFor(deps: {
  readonly store: InventoryStore;
  readonly sealer?: SecretSealer;
}): AgentRuntime {
  let runtime = byStore.get(deps.store);
  if (!runtime) {
    runtime = createAgentRuntime({
      store: deps.store,
      createMissingQueues: true,
      ...(deps.sealer ? { sealer: deps.sealer } : {}),
    });
    byStore.set(deps.store, runtime);
  }
  return runtime;
}

export type MessageOutcome =
  /** Handled; `reply` (a `commands` message) goes back to the agent if present. */
  | { readonly kind: 'handled'; readonly reply?: ServerMessage }
  /** Refused (malformed: 400; not the agent's: 403), never acted on. */
  | { readonly kind: 'refused'; readonly status: 400 | 403; readonly reply: ServerMessage };

const refuse = (status: 400 | 403, message: string): MessageOutcome => ({
  kind: 'refused',
  status,
  reply: { v: 1, type: 'error', message },
});

/** Parses, checks and handles one message from an authenticated agent. */
export async function handleAgentMessage(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  raw: string | Buffer,
  transport: 'websocket' | 'https',
): Promise<MessageOutcome> {
  let message: AgentMessage;
  try {
    message = parseAgentMessage(raw);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    runtime.logger.warn('agent message refused: malformed', {
      hostname: agent.hostname,
      site: agent.site,
      transport,
      reason: error.message,
    });
    return refuse(400, error.message);
  }
  try {
    return await dispatch(runtime, agent, message);
  } catch (error) {
    if (!(error instanceof ChannelRefusal)) throw error;
    runtime.logger.warn('agent message refused: unauthorized', {
      hostname: agent.hostname,
      site: agent.site,
      transport,
      type: message.type,
      reason: error.message,
    });
    return refuse(403, error.message);
  }
}

async function dispatch(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  message: AgentMessage,
): Promise<MessageOutcome> {
  switch (message.type) {
    case 'hello': {
      if (message.hostname !== agent.hostname) {
        throw new ChannelRefusal(`hello from ${message.hostname} on the credential of ${agent.hostname}`);
      }
      await touch(runtime, agent, (record, stamp) => ({
        ...record,
        drivers: [...new Set(message.drivers)].sort(),
        agent_version: message.agent_version,
        last_heartbeat: stamp,
        updated_at: stamp,
      }));
      return { kind: 'handled' };
    }
    case 'heartbeat':
      await touch(runtime, agent, (record, stamp) => ({ ...record, last_heartbeat: stamp }));
      return { kind: 'handled' };
    case 'pull': {
      const commands = await runtime.queue.receive(agent.site, { max: message.max });
      return { kind: 'handled', reply: { v: 1, type: 'commands', commands } };
    }
    case 'command_ack':
      await runtime.queue.acknowledge(agent.site, message.command_id);
      return { kind: 'handled' };
    case 'command_result': {
      const { stored, command } = await runtime.queue.complete(agent.site, message);
      if (!stored) {
        runtime.logger.info('result for a finished command: nothing changed', {
          commandId: command.id,
          status: command.status,
          reported: message.status,
        });
      }
      // Held (stored now, or before): the agent may forget it.
      return { kind: 'handled', reply: { v: 1, type: 'result_ack', command_id: command.id } };
    }
    case 'power_report': {
      const outcome = await applyPowerReports(runtime.conductor, agent.site, message.reports);
      runtime.logger.info('power report', {
        hostname: agent.hostname,
        site: agent.site,
        reports: message.reports.length,
        ...outcome,
      });
      if (outcome.foreign > 0) {
        runtime.logger.warn('power report named nodes of another site: ignored', {
          hostname: agent.hostname,
          site: agent.site,
          foreign: outcome.foreign,
        });
      }
      return { kind: 'handled' };
    }
    case 'images_pull': {
      // The agent's own site only, whatever it asks; a cursor it did not get from us is refused.
      let page: Awaited<ReturnType<ImageCatalog['assignments']>>;
      try {
        page = await runtime.images.assignments(agent.site, message.cursor);
      } catch (error) {
        if (error instanceof DomainError && error.kind === 'invalid') throw new ChannelRefusal(error.message);
        throw error;
      }
      return { kind: 'handled', reply: { v: 1, type: 'images', ...page } };
    }
    case 'deploy_callback': {
      const outcome = await runtime.provisioning.provisioner.callback(
        agent.site,
        message.node,
        message.token,
      );
      runtime.logger.info('deploy callback', {
        hostname: agent.hostname,
        site: agent.site,
        node: message.node,
        outcome,
      });
      if (outcome === 'refused') throw new ChannelRefusal(`callback for node ${message.node} refused`);
      return { kind: 'handled' };
    }
    case 'image_report': {
      const { stored, ignored } = await runtime.images.storeReports(agent, message.reports);
      if (message.reports.some((report) => report.state === 'ready')) {
        // Deploys of this site held for an image may go on now.
        await resumeWaitingDeploys(runtime.provisioning.provisioner, runtime.provisioning, agent.site).catch(
          (error: Error) =>
            runtime.logger.error('resuming held deploys failed', { site: agent.site, error: error.message }),
        );
      }
      runtime.logger.info('image report', {
        hostname: agent.hostname,
        site: agent.site,
        reports: message.reports.length,
        stored,
        ignored: ignored.length,
      });
      return { kind: 'handled' };
    }
  }
}

async function touch(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  change: (record: AgentRecord, stamp: string) => AgentRecord,
): Promise<void> {
  const stamp = ironicTimestamp(runtime.now());
  const updated = await runtime.credentials.agents.modify(agent.hostname, (record) => change(record, stamp));
  if (!updated) throw new ChannelRefusal(`agent ${agent.hostname} is not enrolled`);
}
