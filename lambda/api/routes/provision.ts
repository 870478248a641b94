/**
 * `PUT /v1/nodes/{node}/states/provision` (Ironic's `NodeStatesController.provision`):
 * the body and the transition are checked exactly as Ironic checks them
 * (`domain/provisioning/request.ts`), a deploy's inputs (images, PXE ports) are resolved,
 * then the conductor starts the flow (`conductor/provision.ts`) and the API answers 202
 * with the node's states as `Location`. What follows shows in `provision_state`,
 * `target_provision_state`, `last_error` and the node's history.
 */
import { invalid } from '../../domain/errors.ts';
import {
  checkProvisionRequest,
  parseProvisionBody,
  provisionLocation,
} from '../../domain/provisioning/request.ts';
import { VERBS } from '../../domain/provisioning/states.ts';
import { jsonTextProblem } from '../../http/json-shape.ts';
import { noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ConductorAccess, controlPlaneFor } from '../../runtime.ts';
import { authorizeNode, type Principal } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { actOnCurrentNode } from './nodes.ts';

/**
 * The body as documented in the OpenAPI document (the checks themselves are Ironic's,
 * `parseProvisionBody`, which words its own errors).
 */
const PROVISION_SCHEMA = {
  type: 'object',
  properties: {
    target: { type: 'string', enum: [...Object.keys(VERBS), 'rebuild'] },
    configdrive: { type: ['string', 'object', 'null'] },
    clean_steps: { type: ['array', 'null'], items: { type: 'object' } },
    deploy_steps: { type: ['array', 'null'], items: { type: 'object' } },
    // Ironic's `args.string` and `args.boolean`: null is the default; 0/1 and bool words read.
    rescue_password: { type: ['string', 'null'] },
    disable_ramdisk: { type: ['boolean', 'string', 'integer', 'null'] },
  },
  required: ['target'],
  additionalProperties: false,
};

export const PROVISION_OPERATIONS: Record<string, OperationDoc> = {
  'PUT /v1/nodes/{node}/states/provision': {
    summary:
      'Change the provision state: manage, provide, inspect, deploy/active, rebuild, undeploy/deleted, clean, abort, adopt',
    tag: 'nodes',
    requestSchema: PROVISION_SCHEMA,
    status: 202,
  },
};

export function registerProvisionRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ConductorAccess | (() => ConductorAccess) = () => controlPlaneFor(deps),
): void {
  const conductor = typeof runtime === 'function' ? () => runtime().service : () => runtime.service;

  router.on('PUT', '/v1/nodes/{node}/states/provision', async (request) => {
    // Ironic reads the body before it looks for the node.
    const problem = request.body === undefined ? undefined : jsonTextProblem(request.body);
    if (problem) throw invalid(problem);
    const body = parseProvisionBody(request.body);
    const ident = request.params.node as string;
    const user = (request.principal as Principal | undefined)?.name ?? null;
    await actOnCurrentNode(deps, ident, async (found) => {
      authorizeNode(request, 'node:set_provision_state', found.node);
      const checked = checkProvisionRequest(found.node, body, { minor: request.version.minor });
      await conductor().changeProvisionState(found, checked, user);
    });
    return noContent(202, { Location: provisionLocation(request.baseUrl, ident) });
  });
}
