/**
 * /v1/nodes/{node}/vifs (1.28+): list, attach and detach a node's VIFs with Ironic 21.4's
 * semantics for the `noop` network interface (`../../domain/nodes/vifs.ts`): the requests
 * are checked as Ironic checks them (body, VIF id, node, policy, the node's lock), and then
 * nothing happens: `NoopNetwork` stores no VIF, so the list stays empty (exchange 107).
 */

import { portParent } from '../../adapters/dynamo/port-repository.ts';
import { portgroupParent } from '../../adapters/dynamo/portgroup-repository.ts';
import { notFound } from '../../domain/errors.ts';
import {
  checkVifAttachBody,
  checkVifAttachTarget,
  checkVifId,
  checkVifLock,
  checkVifNetworkInterface,
  NOOP_NETWORK,
  VIF_ATTACH_SCHEMA,
  VIFS_SINCE,
} from '../../domain/nodes/vifs.ts';
import type { ApiRequest } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

/** Where Ironic's port-based network interfaces keep the tenant VIF of a port or port group. */
const TENANT_VIF_KEY = 'tenant_vif_port_id';

export const VIF_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/vifs': { summary: 'List the VIFs attached to a node (1.28+)', tag: 'nodes' },
  'POST /v1/nodes/{node}/vifs': {
    summary: 'Attach a VIF to a node (1.28+; the noop network interface keeps nothing)',
    tag: 'nodes',
    requestSchema: VIF_ATTACH_SCHEMA,
    status: 204,
  },
  'DELETE /v1/nodes/{node}/vifs/{vif_id}': {
    summary: 'Detach a VIF from a node (1.28+; the noop network interface keeps nothing)',
    tag: 'nodes',
    status: 204,
  },
};

function vifsGate(request: ApiRequest): void {
  if (request.version.minor < VIFS_SINCE) throw notFound('The resource could not be found.');
}

export function registerVifRoutes(router: Router, deps: Dependencies): void {
  /**
   * Ironic asks the node's network interface (under a shared lock: a locked node is
   * listed). `noop` has none; a port-based interface (which only a direct write to the
   * store can give a node here) reports each port's and port group's tenant VIF.
   */
  router.on('GET', '/v1/nodes/{node}/vifs', async (request) => {
    vifsGate(request);
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:vif:list', node);
    const vifs: Array<{ id: string }> = [];
    if (node.network_interface !== NOOP_NETWORK) {
      for (const parent of [portParent(node.uuid), portgroupParent(node.uuid)]) {
        const page = await deps.store.query<{ internal_info?: Record<string, unknown> }>({
          index: 'byParent',
          partitionAttribute: 'parentPk',
          partitionValue: parent,
          sortAttribute: 'listSk',
          limit: 1000,
        });
        for (const item of page.items) {
          const vif = item.doc.internal_info?.[TENANT_VIF_KEY];
          if (typeof vif === 'string' && vif !== '') vifs.push({ id: vif });
        }
      }
    }
    return json({ vifs });
  });

  /**
   * In Ironic's order: the body (`{}` when empty), then the node and the policy, then
   * port_uuid with portgroup_uuid (1.67+), then the conductor's exclusive lock and the
   * node's interface; `NoopNetwork.vif_attach` then does nothing.
   */
  router.on('POST', '/v1/nodes/{node}/vifs', async (request) => {
    vifsGate(request);
    const vif = checkVifAttachBody(request.body?.trim() ? jsonBody(request) : {});
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:vif:attach', node);
    checkVifAttachTarget(vif, request.version.minor);
    checkVifLock(node);
    checkVifNetworkInterface(node);
    return noContent(204);
  });

  /** `NoopNetwork.vif_detach` does nothing: any well-formed VIF id is "detached". */
  router.on('DELETE', '/v1/nodes/{node}/vifs/{vif_id}', async (request) => {
    vifsGate(request);
    checkVifId(request.params.vif_id as string);
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:vif:detach', node);
    checkVifLock(node);
    checkVifNetworkInterface(node);
    return noContent(204);
  });
}
