/**
 * What the route handlers need, built once per Lambda container from the configuration
 * (`lambda/config.ts`: table names, the secrets key ...). Tests build their own.
 */
import { randomUUID } from 'node:crypto';
import { inventoryTable } from '../../infra/resources.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import { SiteRepository } from '../adapters/dynamo/site-repository.ts';
import { sealerFromEnv } from '../adapters/kms/envelope-sealer.ts';
import { type ConfigSource, environmentConfig } from '../config.ts';
import type { SecretSealer } from '../domain/auth/sealing.ts';
import { ironicTimestamp } from '../domain/time.ts';

export interface Dependencies {
  readonly store: InventoryStore;
  /** Nodes, their secrets sealed as they are written. */
  readonly nodes: NodeRepository;
  readonly sites: SiteRepository;
  /** Time as Ironic writes it: ISO 8601 with microseconds and +00:00. */
  readonly now: () => string;
  readonly newUuid: () => string;
  /** Seals secrets at rest; opened only on the agent's routes (`routes/agents.ts`). */
  readonly sealer: SecretSealer;
  /** The configuration the routes read (the agents' WebSocket URL, inline verification ...). */
  readonly config: ConfigSource;
}

export function dependenciesFor(
  store: InventoryStore,
  sealer?: SecretSealer,
  config: ConfigSource = environmentConfig,
): Dependencies {
  const seals = sealer ?? sealerFromEnv(config);
  return {
    store,
    sealer: seals,
    nodes: new NodeRepository(store, seals),
    sites: new SiteRepository(store),
    now: () => ironicTimestamp(),
    newUuid: () => randomUUID(),
    config,
  };
}

/** From the configuration (default: the environment's, `environmentConfig`); tables read at first use. */
export function dependenciesFromEnv(config: ConfigSource = environmentConfig): Dependencies {
  return dependenciesFor(
    new InventoryStore(documentClient(), () => tableFromEnv(inventoryTable.envVar, config)),
    undefined,
    config,
  );
}
