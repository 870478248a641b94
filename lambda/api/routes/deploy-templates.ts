/**
 * /v1/deploy_templates (1.55+): create, list, show, patch, delete, with Ironic 21.4's
 * semantics (reference exchanges 103-104).
 */
import { DeployTemplateRepository } from '../../adapters/dynamo/deploy-template-repository.ts';
import { invalid, notFound } from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike } from '../../domain/identifiers.ts';
import { requireUuidOrName } from '../../domain/inventory/common.ts';
import {
  createDeployTemplate,
  DEPLOY_TEMPLATE_DEFAULT_FIELDS,
  DEPLOY_TEMPLATE_FIELDS,
  DEPLOY_TEMPLATE_SCHEMA,
  DEPLOY_TEMPLATES_SINCE,
  type DeployTemplate,
  patchDeployTemplate,
  renderDeployTemplate,
  validateDeployTemplate,
} from '../../domain/inventory/deploy-template.ts';
import { PATCH_SCHEMA } from '../../domain/json-patch.ts';
import { ApiError } from '../../http/errors.ts';
import type { ApiRequest } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseFields, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

const LIST_PARAMS = ['limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'detail'];

export const DEPLOY_TEMPLATE_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/deploy_templates': {
    summary: 'List deploy templates (limit/marker, sort_key/sort_dir, fields, detail)',
    tag: 'deploy_templates',
  },
  'POST /v1/deploy_templates': {
    summary: 'Create a deploy template (a CUSTOM_ trait name and its deploy steps)',
    tag: 'deploy_templates',
    requestSchema: DEPLOY_TEMPLATE_SCHEMA,
    status: 201,
  },
  'GET /v1/deploy_templates/{template}': {
    summary: 'Show a deploy template by UUID or name',
    tag: 'deploy_templates',
  },
  'PATCH /v1/deploy_templates/{template}': {
    summary: 'Update a deploy template with an RFC 6902 JSON Patch',
    tag: 'deploy_templates',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/deploy_templates/{template}': {
    summary: 'Delete a deploy template',
    tag: 'deploy_templates',
    status: 204,
  },
};

/** Ironic's `_route`: below 1.55 a GET is 404 and anything else 405. */
function gate(request: ApiRequest): void {
  if (request.version.minor >= DEPLOY_TEMPLATES_SINCE) return;
  const message = 'The API version does not allow deploy templates';
  if (request.method === 'GET') throw notFound(message);
  throw new ApiError(405, message);
}

function render(request: ApiRequest, template: DeployTemplate, fields?: readonly string[]) {
  return renderDeployTemplate(template, { baseUrl: request.baseUrl, fields });
}

export function registerDeployTemplateRoutes(router: Router, deps: Dependencies): void {
  const repo = new DeployTemplateRepository(deps.store);

  const find = async (request: ApiRequest) => {
    const ident = requireUuidOrName(request.params.template as string, 'template_ident');
    const uuid = isUuidLike(ident) ? canonicalUuid(ident) : await repo.uuidForName(ident);
    const found = uuid ? await repo.get(uuid) : undefined;
    if (!found) throw notFound(`Deploy template ${ident} could not be found.`);
    return found;
  };

  router.on('GET', '/v1/deploy_templates', async (request) => {
    gate(request);
    authorize(request, 'deploy_template:get');
    for (const name of Object.keys(request.query)) {
      if (!LIST_PARAMS.includes(name)) throw invalid(`Unknown argument: "${name}"`);
    }
    const params = parseListParams(request, {
      sortKeys: ['id', 'created_at', 'name'],
      selectable: DEPLOY_TEMPLATE_FIELDS,
      defaultFields: DEPLOY_TEMPLATE_DEFAULT_FIELDS,
      detailPath: false,
    });
    const page = await repo.list({
      limit: params.limit,
      markerUuid: params.marker,
      sortKey: params.sortKey === 'name' ? 'name' : 'created_at',
      descending: params.descending,
    });
    const body: Record<string, unknown> = {
      deploy_templates: page.items.map((template) => render(request, template, params.fields)),
    };
    const last = page.items.at(-1);
    if (page.more && last) body.next = nextLink(request, 'deploy_templates', params, last.uuid);
    return json(body);
  });

  router.on('POST', '/v1/deploy_templates', async (request) => {
    gate(request);
    authorize(request, 'deploy_template:create');
    const body = validateDeployTemplate(jsonBody(request), 'template');
    const uuid = body.uuid ? canonicalUuid(body.uuid) : deps.newUuid();
    const template = createDeployTemplate(body, { uuid, now: deps.now() });
    await repo.create(template);
    return json(render(request, template), 201, {
      Location: `${request.baseUrl}/v1/deploy_templates/${template.uuid}`,
    });
  });

  router.on('GET', '/v1/deploy_templates/{template}', async (request) => {
    gate(request);
    authorize(request, 'deploy_template:get');
    const fields =
      request.query.fields === undefined
        ? undefined
        : parseFields(request.query.fields, DEPLOY_TEMPLATE_FIELDS);
    const { template } = await find(request);
    return json(render(request, template, fields));
  });

  router.on('PATCH', '/v1/deploy_templates/{template}', async (request) => {
    gate(request);
    authorize(request, 'deploy_template:update');
    const { template, version } = await find(request);
    const patched = patchDeployTemplate(template, jsonBody(request), deps.now());
    await repo.update(template, patched, version);
    return json(render(request, patched));
  });

  router.on('DELETE', '/v1/deploy_templates/{template}', async (request) => {
    gate(request);
    authorize(request, 'deploy_template:delete');
    const { template, version } = await find(request);
    await repo.delete(template, version);
    return noContent();
  });
}
