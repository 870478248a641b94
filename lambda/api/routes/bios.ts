/**
 * /v1/nodes/{node}/bios (1.40+): the BIOS settings a node's agent reported, read-only,
 * with Ironic 21.4's semantics (reference exchange 105).
 */
import { BiosRepository } from '../../adapters/dynamo/bios-repository.ts';
import { invalid, notFound } from '../../domain/errors.ts';
import {
  BIOS_DEFAULT_FIELDS,
  BIOS_REGISTRY_FIELDS,
  BIOS_REGISTRY_SINCE,
  BIOS_SINCE,
  renderBiosSetting,
} from '../../domain/inventory/bios.ts';
import { requireName } from '../../domain/inventory/common.ts';
import type { ApiRequest } from '../../http/request.ts';
import { json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { parseBoolean, parseFields } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

export const BIOS_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/bios': { summary: 'List the BIOS settings of a node (detail, fields)', tag: 'nodes' },
  'GET /v1/nodes/{node}/bios/{setting}': { summary: 'Show one BIOS setting of a node', tag: 'nodes' },
};

function gate(request: ApiRequest): void {
  if (request.version.minor < BIOS_SINCE) throw notFound('The resource could not be found.');
}

/** Ironic's `get_request_return_fields` with `allow_query_bios` (1.74) for both. */
function listFields(request: ApiRequest): readonly string[] {
  const { detail: rawDetail, fields: rawFields } = request.query;
  const registry = request.version.minor >= BIOS_REGISTRY_SINCE;
  for (const name of Object.keys(request.query)) {
    if (name !== 'detail' && name !== 'fields') throw invalid(`Unknown argument: "${name}"`);
  }
  if (rawDetail !== undefined && !registry)
    throw invalid(`Invalid query parameter ?detail=${rawDetail} received.`);
  if (rawFields !== undefined && !registry)
    throw invalid(`Invalid query parameter ?fields=${rawFields} received.`);
  const detail = parseBoolean(rawDetail, 'detail');
  if (rawFields !== undefined && detail) {
    throw invalid('Can not specify ?detail=True and fields in the same request.');
  }
  if (detail) return BIOS_REGISTRY_FIELDS;
  if (rawFields !== undefined) return parseFields(rawFields, BIOS_REGISTRY_FIELDS);
  return BIOS_DEFAULT_FIELDS;
}

export function registerBiosRoutes(router: Router, deps: Dependencies): void {
  const repo = new BiosRepository(deps.store);

  router.on('GET', '/v1/nodes/{node}/bios', async (request) => {
    gate(request);
    const ident = request.params.node as string;
    const { node } = await resolveNode(deps, ident);
    authorizeNode(request, 'node:bios:get', node);
    const fields = listFields(request);
    const settings = await repo.list(node.uuid);
    return json({
      bios: settings.map((setting) =>
        renderBiosSetting(setting, { baseUrl: request.baseUrl, nodeIdent: ident, fields }),
      ),
    });
  });

  router.on('GET', '/v1/nodes/{node}/bios/{setting}', async (request) => {
    gate(request);
    const name = requireName(request.params.setting as string, 'setting_name');
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:bios:get', node);
    const setting = await repo.get(node.uuid, name);
    if (!setting) throw notFound(`Node ${node.uuid} doesn't have a BIOS setting '${name}'`);
    const fields = request.version.minor >= BIOS_REGISTRY_SINCE ? BIOS_REGISTRY_FIELDS : BIOS_DEFAULT_FIELDS;
    return json({
      [name]: renderBiosSetting(setting, { baseUrl: request.baseUrl, nodeIdent: node.uuid, fields }),
    });
  });
}
