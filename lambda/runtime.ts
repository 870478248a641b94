/**
 * The control plane's one composition root: the collaborators every Lambda works with
 * (command queue, agent credentials, connections, image catalog, the conductor and its
 * provisioning flows), built here and nowhere else. The api Lambda's routes
 * (`controlPlaneFor(deps)`, on the API's own inventory store), the agents Lambda
 * (`controlPlaneFromEnv`) and the conductor's tick (`controlPlaneFromEnv`) all take their
 * wiring from this module; none of them builds another's.
 *
 * Configuration: the Lambda entry points (`lambda/entrypoints/`) read it once
 * (`readConfig`) and pass it as `config`; without one (tests, the local stack's helpers)
 * the environment's is read as it is at each use (`environmentConfig`). No collaborator
 * reads the environment itself: each receives its values, or functions giving them.
 */

import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { commandsTable, connectionsTable, inventoryTable, resourcePrefixEnvVar } from '../infra/resources.ts';
import { newSqsClient, type Sender } from './adapters/aws-sdk.ts';
import { type ChannelLogger, CommandQueue } from './adapters/command-queue.ts';
import { ConnectionNotifier } from './adapters/connection-notifier.ts';
import { documentClient, tableFromEnv } from './adapters/dynamo/client.ts';
import { CommandRepository } from './adapters/dynamo/command-repository.ts';
import { ConnectionRepository } from './adapters/dynamo/connection-repository.ts';
import { DeployTemplateRepository } from './adapters/dynamo/deploy-template-repository.ts';
import { ImageRepository } from './adapters/dynamo/image-repository.ts';
import { InventoryStore } from './adapters/dynamo/inventory-store.ts';
import { NodeInventoryRepository } from './adapters/dynamo/node-inventory-repository.ts';
import { NodeRepository } from './adapters/dynamo/node-repository.ts';
import { PortRepository } from './adapters/dynamo/port-repository.ts';
import { SiteRepository } from './adapters/dynamo/site-repository.ts';
import { publishCommandFinished } from './adapters/events.ts';
import { sealerFromEnv } from './adapters/kms/envelope-sealer.ts';
import { ImageObjects } from './adapters/s3/image-objects.ts';
import { AgentCredentials } from './agents/credentials.ts';
import { Conductor } from './conductor/conductor.ts';
import { registerPowerTasks } from './conductor/power.ts';
import { Provisioner } from './conductor/provision.ts';
import { ConductorService } from './conductor/service.ts';
import { type ConfigSource, environmentConfig, required } from './config.ts';
import type { SecretSealer } from './domain/auth/sealing.ts';
import type { CommandCompletions } from './domain/commands/completions.ts';
import { ironicTimestamp } from './domain/time.ts';
import { ImageCatalog } from './images/catalog.ts';

export interface Provisioning {
  readonly provisioner: Provisioner;
  readonly nodes: NodeRepository;
  readonly images: ImageRepository;
  readonly ports: PortRepository;
}

export interface ControlPlane {
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
  /** The conductor's facade: the one door of the API's routes (`conductor/service.ts`). */
  readonly service: ConductorService;
  readonly logger: ChannelLogger;
  readonly now: () => Date;
  /** Seals secrets as nodes and commands are written; opens them only for the agent. */
  readonly sealer: SecretSealer;
}

/**
 * What the API's resource routes reach of the control plane: the conductor's facade
 * (`conductor/service.ts`: power, boot device, provision state, commands, site queues).
 * The image routes reach the image catalog (`ImageAccess`); the agents' routes, which also
 * serve the agent channel's HTTPS fallback, take the whole `ControlPlane`.
 */
export type ConductorAccess = Pick<ControlPlane, 'service'>;
export type ImageAccess = Pick<ControlPlane, 'images'>;

export interface ControlPlaneOptions {
  /**
   * The configuration (the entry points': read once per container). Default: the
   * environment's as it is at each use (`environmentConfig`).
   */
  readonly config?: ConfigSource;
  /** The inventory store (default: the table named by the environment). */
  readonly store?: InventoryStore;
  readonly sqs?: Sender<SQSClient>;
  readonly logger?: ChannelLogger;
  /** Default: the configuration's `webSocket.managementEndpoint`. */
  readonly managementEndpoint?: string | (() => string | undefined);
  /** See `CommandQueueOptions.createMissingQueues` (default false). */
  readonly createMissingQueues?: boolean;
  /** See `CommandQueueOptions.visibilityTimeoutSeconds`. */
  readonly visibilityTimeoutSeconds?: number;
  readonly now?: () => Date;
  /** Default: KMS, with the configuration's `secretsKey`. */
  readonly sealer?: SecretSealer;
}

/** Builds the control plane's collaborators; table names and endpoints are read at first use. */
export function createControlPlane(options: ControlPlaneOptions = {}): ControlPlane {
  const config = options.config ?? environmentConfig;
  const table = (envVar: string) => () => tableFromEnv(envVar, config);
  const db = documentClient();
  const store = options.store ?? new InventoryStore(db, table(inventoryTable.envVar));
  const logger = options.logger ?? new Logger({ serviceName: 'metalplane-agents' });
  const now = options.now ?? (() => new Date());
  const notifier = new ConnectionNotifier(
    options.managementEndpoint ?? (() => config().webSocket.managementEndpoint),
  );
  const connections = new ConnectionRepository(db, table(connectionsTable.envVar));
  const commands = new CommandRepository(db, table(commandsTable.envVar));
  const sealer = options.sealer ?? sealerFromEnv(config);
  const nodes = new NodeRepository(store, sealer);
  const sqs = options.sqs ?? newSqsClient();
  // The conductor queues its commands through the queue; the queue reports finished
  // commands through the `CommandCompletions` port only (it knows no conductor, writes no
  // node). The port forwards to the conductor built below, before any command exists.
  // Once its node is written, a finished command is an event (docs/events.md).
  const completions: CommandCompletions = {
    finished: (command) => conductor.finished(command).then(() => publishCommandFinished(command)),
  };
  const queue = new CommandQueue({
    sqs,
    prefix: () => required(config().resourcePrefix, resourcePrefixEnvVar),
    deadLetterQueueName: () => config().queues.commandsDeadLetter,
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
    objects: new ImageObjects({
      bucket: () => config().imagesBucket,
      forcePathStyle: () => config().images.s3ForcePathStyle,
    }),
    sites: new SiteRepository(store),
    connections,
    notifier,
    logger,
    now: () => ironicTimestamp(now()),
    sqs: () => sqs,
    localStack: () => config().localStack,
    verifyQueueName: () => config().queues.imageVerify,
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
  // Read once when the configuration is (the entry points'); with the environment's as it
  // is, the flows read theirs at each tick (`provisionSettingsFromEnv`).
  const ports = new PortRepository(store);
  // What an in-band inspection writes beside its node (its inventory, its ports).
  const inspection = {
    ports,
    inventories: new NodeInventoryRepository(store),
    warn: (message: string, extra: Record<string, unknown>) => logger.warn(message, extra),
  };
  const provisioner =
    config !== environmentConfig
      ? new Provisioner(conductor, () => randomUUID(), config().provisioning, inspection)
      : new Provisioner(conductor, () => randomUUID(), undefined, inspection);
  const provisioning = {
    provisioner,
    nodes,
    images: new ImageRepository(store),
    ports,
  };
  const service = new ConductorService({
    conductor,
    provisioner,
    queue,
    commands,
    images: provisioning.images,
    ports: provisioning.ports,
    templates: new DeployTemplateRepository(store),
    sites: new SiteRepository(store),
  });
  return {
    queue,
    credentials,
    connections,
    notifier,
    commands,
    conductor,
    provisioning,
    service,
    images,
    logger,
    now,
    sealer,
  };
}

let shared: ControlPlane | undefined;

/**
 * One control plane per Lambda container (the agents, conductor and verify Lambdas): built
 * at the first call, with that call's options (the entry point's configuration and logger).
 */
export function controlPlaneFromEnv(options: ControlPlaneOptions = {}): ControlPlane {
  shared ??= createControlPlane(options);
  return shared;
}

const byStore = new WeakMap<InventoryStore, ControlPlane>();

/**
 * The control plane on the API's own inventory store (one per store), for the API's
 * routes: it may create a legacy site's missing queue (the api Lambda has `sqs:CreateQueue`).
 */
export function controlPlaneFor(deps: {
  readonly store: InventoryStore;
  readonly sealer?: SecretSealer;
  readonly config?: ConfigSource;
}): ControlPlane {
  let runtime = byStore.get(deps.store);
  if (!runtime) {
    runtime = createControlPlane({
      store: deps.store,
      createMissingQueues: true,
      ...(deps.sealer ? { sealer: deps.sealer } : {}),
      ...(deps.config ? { config: deps.config } : {}),
    });
    byStore.set(deps.store, runtime);
  }
  return runtime;
}
