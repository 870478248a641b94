/**
 * /v1/nodes/{node}/inventory (1.81+): the inspection data of a node, as Ironic's
 * `NodeInventoryController` serves it: `{"inventory": ..., "plugin_data": ...}`, 404
 * when the node was never inspected. Read-only: the inspection stores it.
 */
import {
  NodeInventoryRepository,
  nodeInventoryMissing,
} from '../../adapters/dynamo/node-inventory-repository.ts';
import { notFound } from '../../domain/errors.ts';
import { json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

/** Ironic's `MINOR_81_NODE_INVENTORY`. */
export const INVENTORY_SINCE = 81;

export const INVENTORY_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/inventory': {
    summary: 'Show the inventory and plugin data the last inspection of a node stored (1.81+)',
    tag: 'nodes',
  },
};

export function registerInventoryRoutes(router: Router, deps: Dependencies): void {
  const repo = new NodeInventoryRepository(deps.store);

  router.on('GET', '/v1/nodes/{node}/inventory', async (request) => {
    // Ironic's node controller answers an unknown path below 1.81, before any lookup.
    if (request.version.minor < INVENTORY_SINCE) throw notFound('The resource could not be found.');
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:inventory:get', node);
    const found = await repo.get(node.uuid);
    // Ironic names the node by its database id there; Metalplane's nodes have their UUID only.
    if (!found) throw nodeInventoryMissing(node.uuid);
    return json({ inventory: found.inventory, plugin_data: found.plugin_data });
  });
}
