/**
 * The control plane's one composition root: the collaborators every Lambda works with
 * (command queue, agent credentials, connections, image catalog, the conductor and its
 * provisioning flows), built here and nowhere else. The api Lambda's routes
 * (`controlPlaneFor(deps)`, on the API's own inventory store), the agents Lambda
 * (`controlPlaneFromEnv`) and the conductor's tick (`controlPlaneFromEnv`) all take their
 * wiring from this module; none of them builds another's.
 */

import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import { SQSClient } from '@aws-sdk/client-sqs';
import { commandsTable, connectionsTable, inventoryTable, resourcePrefixEnvVar } from '../infra/resources.ts';
import { type ChannelLogger, CommandQueue } from './adapters/command-queue.ts';
import { ConnectionNotifier } from './adapters/connection-notifier.ts';
import { documentClient, tableFromEnv } from './adapters/dynamo/client.ts';
import { CommandRepository } from './adapters/dynamo/command-repository.ts';
import { ConnectionRepository } from './adapters/dynamo/connection-repository.ts';
import { ImageRepository } from './adapters/dynamo/image-repository.ts';
import { InventoryStore } from './adapters/dynamo/inventory-store.ts';
import { NodeRepository } from './adapters/dynamo/node-repository.ts';
import { PortRepository } from './adapters/dynamo/port-repository.ts';
import { SiteRepository } from './adapters/dynamo/site-repository.ts';
import { sealerFromEnv } from './adapters/kms/envelope-sealer.ts';
import { ImageObjects } from './adapters/s3/image-objects.ts';
import { AgentCredentials } from './agents/credentials.ts';
import { Conductor } from './conductor/conductor.ts';
import { registerPowerTasks } from './conductor/power.ts';
import { Provisioner } from './conductor/provision.ts';
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
  readonly logger: ChannelLogger;
  readonly now: () => Date;
  /** Seals secrets as nodes and commands are written; opens them only for the agent. */
  readonly sealer: SecretSealer;
}

/**
 * What the API's resource routes reach of the control plane: the conductor (power and
 * boot-device tasks), the provisioning flows, the command queue and records, the image
 * catalog. The agents' routes, which also serve the agent channel's HTTPS fallback, take
 * the whole `ControlPlane`.
 */
export type ConductorService = Pick<
  ControlPlane,
  'conductor' | 'provisioning' | 'queue' | 'commands' | 'images'
>;

export interface ControlPlaneOptions {
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

/** Builds the control plane's collaborators; table names and endpoints are read at first use. */
export function createControlPlane(options: ControlPlaneOptions = {}): ControlPlane {
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

let shared: ControlPlane | undefined;

/** One control plane per Lambda container, from the environment (agents Lambda, conductor tick). */
export function controlPlaneFromEnv(): ControlPlane {
  shared ??= createControlPlane();
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
}): ControlPlane {
  let runtime = byStore.get(deps.store);
  if (!runtime) {
    runtime = createControlPlane({
      store: deps.store,
      createMissingQueues: true,
      ...(deps.sealer ? { sealer: deps.sealer } : {}),
    });
    byStore.set(deps.store, runtime);
  }
  return runtime;
}
