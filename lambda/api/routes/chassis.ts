/**
 * /v1/chassis: create, list (and /detail), show, patch, delete, and the nodes of a
 * chassis (`/v1/chassis/{chassis}/nodes`), with Ironic 21.4's semantics and messages
 * (reference exchanges 016-018 and 108).
 */
import { ChassisRepository } from '../../adapters/dynamo/chassis-repository.ts';
import { invalid, notAcceptable, notFound } from '../../domain/errors.ts';
import {
  CHASSIS_DEFAULT_FIELDS,
  CHASSIS_FIELDS,
  CHASSIS_SCHEMA,
  type Chassis,
  createChassis,
  newChassisUuid,
  patchChassis,
  renderChassis,
  validateChassisCreate,
} from '../../domain/inventory/chassis.ts';
import { requireUuid } from '../../domain/inventory/common.ts';
import { PATCH_SCHEMA } from '../../domain/json-patch.ts';
import { defaultListFields, selectableFields } from '../../domain/nodes/fields.ts';
import { renderNode } from '../../domain/nodes/render.ts';
import type { ApiRequest, ApiResponse } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, listingProject } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseFields, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

const LIST_PARAMS = ['limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'detail'];
/** `?fields=` came with 1.8. */
const FIELDS_SINCE = 8;

/** OpenAPI entries of these routes (for `OPERATIONS` in `lambda/api/openapi.ts`). */
export const CHASSIS_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/chassis': {
    summary: 'List chassis (limit/marker, sort_key/sort_dir, fields, detail)',
    tag: 'chassis',
  },
  'GET /v1/chassis/detail': { summary: 'List chassis with every field', tag: 'chassis' },
  'POST /v1/chassis': {
    summary: 'Create a chassis',
    tag: 'chassis',
    requestSchema: CHASSIS_SCHEMA,
    status: 201,
  },
  'GET /v1/chassis/{chassis}': { summary: 'Show a chassis', tag: 'chassis' },
  'PATCH /v1/chassis/{chassis}': {
    summary: 'Update a chassis with an RFC 6902 JSON Patch',
    tag: 'chassis',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/chassis/{chassis}': {
    summary: 'Delete a chassis that holds no node',
    tag: 'chassis',
    status: 204,
  },
  'GET /v1/chassis/{chassis}/nodes': { summary: 'List the nodes of a chassis', tag: 'chassis' },
  'GET /v1/chassis/{chassis}/nodes/detail': {
    summary: 'List the nodes of a chassis with every field',
    tag: 'chassis',
  },
};

function rejectUnknownParams(request: ApiRequest, allowed: readonly string[]): void {
  for (const name of Object.keys(request.query)) {
    if (!allowed.includes(name)) throw invalid(`Unknown argument: "${name}"`);
  }
}

function checkFieldsVersion(request: ApiRequest): void {
  if (request.query.fields !== undefined && request.version.minor < FIELDS_SINCE) {
    throw notAcceptable('Request not acceptable.');
  }
}

async function findChassis(repo: ChassisRepository, request: ApiRequest) {
  const uuid = requireUuid(request.params.chassis, 'chassis_uuid');
  const found = await repo.get(uuid);
  if (!found) throw notFound(`Chassis ${uuid} could not be found.`);
  return found;
}

function render(request: ApiRequest, chassis: Chassis, fields?: readonly string[]) {
  return renderChassis(chassis, { baseUrl: request.baseUrl, fields });
}

export function registerChassisRoutes(router: Router, deps: Dependencies): void {
  const repo = new ChassisRepository(deps.store);

  const list =
    (detailPath: boolean) =>
    async (request: ApiRequest): Promise<ApiResponse> => {
      authorize(request, 'chassis:get');
      rejectUnknownParams(request, LIST_PARAMS);
      checkFieldsVersion(request);
      const params = parseListParams(request, {
        sortKeys: ['id', 'created_at'],
        selectable: CHASSIS_FIELDS,
        defaultFields: CHASSIS_DEFAULT_FIELDS,
        detailPath,
      });
      const page = await repo.list({
        limit: params.limit,
        markerUuid: params.marker,
        descending: params.descending,
      });
      const body: Record<string, unknown> = {
        chassis: page.items.map((chassis) => render(request, chassis, params.fields)),
      };
      const last = page.items.at(-1);
      if (page.more && last) {
        body.next = nextLink(request, detailPath ? 'chassis/detail' : 'chassis', params, last.uuid);
      }
      return json(body);
    };
  router.on('GET', '/v1/chassis', list(false));
  router.on('GET', '/v1/chassis/detail', list(true));

  router.on('POST', '/v1/chassis', async (request) => {
    authorize(request, 'chassis:create');
    const body = validateChassisCreate(jsonBody(request));
    const chassis = createChassis(body, { uuid: newChassisUuid(body, deps.newUuid), now: deps.now() });
    await repo.create(chassis);
    return json(render(request, chassis), 201, { Location: `${request.baseUrl}/v1/chassis/${chassis.uuid}` });
  });

  router.on('GET', '/v1/chassis/{chassis}', async (request) => {
    authorize(request, 'chassis:get');
    checkFieldsVersion(request);
    const fields =
      request.query.fields === undefined ? undefined : parseFields(request.query.fields, CHASSIS_FIELDS);
    const { chassis } = await findChassis(repo, request);
    return json(render(request, chassis, fields));
  });

  router.on('PATCH', '/v1/chassis/{chassis}', async (request) => {
    authorize(request, 'chassis:update');
    const { chassis, version } = await findChassis(repo, request);
    const patched = patchChassis(chassis, jsonBody(request), deps.now());
    await repo.update(patched, version);
    return json(render(request, patched));
  });

  router.on('DELETE', '/v1/chassis/{chassis}', async (request) => {
    authorize(request, 'chassis:delete');
    const { chassis, version } = await findChassis(repo, request);
    await repo.delete(chassis, version);
    return noContent();
  });

  const nodes =
    (detailPath: boolean) =>
    async (request: ApiRequest): Promise<ApiResponse> => {
      authorize(request, 'node:list');
      rejectUnknownParams(request, LIST_PARAMS);
      const minor = request.version.minor;
      const params = parseListParams(request, {
        sortKeys: ['id', 'created_at', 'name'],
        selectable: ['uuid', ...selectableFields(minor)],
        defaultFields: defaultListFields(minor),
        detailPath,
      });
      const { chassis } = await findChassis(repo, request);
      const project = listingProject(request);
      if (project !== undefined && params.sortKey === 'name') {
        throw invalid('sort_key=name is not available when listing by project: use the default order.');
      }
      const page = await deps.nodes.list({
        limit: params.limit,
        ...(params.marker ? { markerUuid: params.marker } : {}),
        sortKey: params.sortKey === 'name' ? 'name' : 'created_at',
        descending: params.descending,
        equals: { chassis_uuid: chassis.uuid },
        ...(project !== undefined ? { project } : {}),
      });
      const body: Record<string, unknown> = {
        nodes: page.nodes.map((node) =>
          renderNode(node, {
            minor,
            baseUrl: request.baseUrl,
            ...(params.fields ? { fields: params.fields } : {}),
          }),
        ),
      };
      const last = page.nodes.at(-1);
      if (page.more && last) {
        const path = `chassis/${chassis.uuid}/nodes${detailPath ? '/detail' : ''}`;
        body.next = nextLink(request, path, params, last.uuid);
      }
      return json(body);
    };
  router.on('GET', '/v1/chassis/{chassis}/nodes', nodes(false));
  router.on('GET', '/v1/chassis/{chassis}/nodes/detail', nodes(true));
}
