/**
 * What the route handlers need, built once per Lambda container from the environment
 * (table names from `infra/resources.ts` env vars). Tests build their own.
 */
import { randomUUID } from 'node:crypto';
import { inventoryTable } from '../../infra/resources.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import { SiteRepository } from '../adapters/dynamo/site-repository.ts';

export interface Dependencies {
  readonly store: InventoryStore;
  readonly nodes: NodeRepository;
  readonly sites: SiteRepository;
  /** Time as Ironic writes it: ISO 8601 with microseconds and +00:00. */
  readonly now: () => string;
  readonly newUuid: () => string;
}

export function ironicTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000+00:00');
}

export function dependenciesFor(store: InventoryStore): Dependencies {
  return {
    store,
    nodes: new NodeRepository(store),
    sites: new SiteRepository(store),
    now: () => ironicTimestamp(),
    newUuid: () => randomUUID(),
  };
}

export function dependenciesFromEnv(): Dependencies {
  return dependenciesFor(new InventoryStore(documentClient(), () => tableFromEnv(inventoryTable.envVar)));
}
