/**
 * The OpenAPI 3.1 description of the API, built from the router itself (so it cannot
 * list a route that does not exist, or miss one: `test/integration/openapi.test.ts`
 * checks every route has an entry here and every entry a route) and from the JSON
 * Schemas the handlers validate with. Served at `GET /v1/openapi.json`.
 */
import { PATCH_SCHEMA } from '../domain/json-patch.ts';
import { NODE_CREATE_SCHEMA } from '../domain/nodes/node.ts';
import { formatVersion, MAX_VERSION, MIN_VERSION } from '../http/microversion.ts';
import type { Router } from '../http/router.ts';
import type { OperationDoc } from './operation-doc.ts';
import { AGENT_OPERATIONS } from './routes/agents.ts';
import { ALLOCATION_OPERATIONS } from './routes/allocations.ts';
import { AUDIT_OPERATIONS } from './routes/audit.ts';
import { BIOS_OPERATIONS } from './routes/bios.ts';
import { CHASSIS_OPERATIONS } from './routes/chassis.ts';
import { COMMAND_OPERATIONS } from './routes/commands.ts';
import { DEPLOY_TEMPLATE_OPERATIONS } from './routes/deploy-templates.ts';
import { HISTORY_OPERATIONS } from './routes/history.ts';
import { IMAGE_OPERATIONS } from './routes/images.ts';
import { INDICATOR_OPERATIONS } from './routes/indicators.ts';
import { INVENTORY_OPERATIONS } from './routes/inventory.ts';
import { validateMaintenanceBody, validateTraitsBody } from './routes/nodes.ts';
import { PORT_OPERATIONS } from './routes/ports.ts';
import { POWER_OPERATIONS } from './routes/power.ts';
import { PROVISION_OPERATIONS } from './routes/provision.ts';
import { SITE_OPERATIONS } from './routes/sites.ts';
import { USER_OPERATIONS } from './routes/users.ts';
import { VIF_OPERATIONS } from './routes/vifs.ts';
import { VOLUME_OPERATIONS } from './routes/volume.ts';
import { WEBHOOK_OPERATIONS } from './routes/webhooks.ts';

/**
 * The bodies of the users' routes, whose handlers validate without a shared schema
 * (as `routes/users.ts` validates them). Documentation only: the handlers stay the judges.
 */
const USER_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    password: { type: 'string' },
    role: { type: 'string', enum: ['admin', 'reader', 'member'] },
    project: { type: ['string', 'null'] },
  },
  required: ['name', 'password', 'role'],
  additionalProperties: false,
};
const USER_UPDATE_SCHEMA = {
  type: 'object',
  properties: {
    password: { type: 'string' },
    role: { type: 'string', enum: ['admin', 'reader', 'member'] },
    project: { type: ['string', 'null'] },
  },
  additionalProperties: false,
  minProperties: 1,
};
const TOKEN_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    description: { type: ['string', 'null'], maxLength: 255 },
    expires_in: { type: 'integer', minimum: 60, maximum: 365 * 24 * 3600 },
  },
  additionalProperties: false,
};

/** `METHOD pattern` → its description. Keep one line per route. */
export const OPERATIONS: Record<string, OperationDoc> = {
  'GET /': { summary: 'Root version document', tag: 'versions', public: true },
  'GET /v1': { summary: 'v1 version document (microversion negotiation)', tag: 'versions', public: true },
  'GET /v1/openapi.json': { summary: 'This OpenAPI document', tag: 'versions' },
  'GET /v1/nodes': {
    summary: 'List nodes (filters, limit/marker, sort_key/sort_dir, fields, detail)',
    tag: 'nodes',
  },
  'POST /v1/nodes': {
    summary: 'Create (enroll) a node',
    tag: 'nodes',
    requestSchema: NODE_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/nodes/detail': { summary: 'List nodes with every field', tag: 'nodes' },
  'GET /v1/nodes/{node}': { summary: 'Show a node by UUID or name', tag: 'nodes' },
  'PATCH /v1/nodes/{node}': {
    summary: 'Update a node with an RFC 6902 JSON Patch',
    tag: 'nodes',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/nodes/{node}': {
    summary: 'Delete a node (and its ports, portgroups, volume records)',
    tag: 'nodes',
    status: 204,
  },
  'GET /v1/nodes/{node}/states': { summary: 'Power, provision and RAID states of a node', tag: 'nodes' },
  'PUT /v1/nodes/{node}/maintenance': {
    summary: 'Put a node in maintenance (with a reason)',
    tag: 'nodes',
    requestSchema: validateMaintenanceBody.schema,
    optionalBody: true,
    status: 202,
  },
  'DELETE /v1/nodes/{node}/maintenance': {
    summary: 'Take a node out of maintenance',
    tag: 'nodes',
    status: 202,
  },
  'GET /v1/nodes/{node}/traits': { summary: 'List the traits of a node', tag: 'nodes' },
  'PUT /v1/nodes/{node}/traits': {
    summary: 'Replace all traits of a node',
    tag: 'nodes',
    requestSchema: validateTraitsBody.schema,
    status: 204,
  },
  'DELETE /v1/nodes/{node}/traits': { summary: 'Remove all traits of a node', tag: 'nodes', status: 204 },
  'PUT /v1/nodes/{node}/traits/{trait}': { summary: 'Add one trait to a node', tag: 'nodes', status: 204 },
  'DELETE /v1/nodes/{node}/traits/{trait}': {
    summary: 'Remove one trait from a node',
    tag: 'nodes',
    status: 204,
  },
  'GET /v1/drivers': { summary: 'List hardware types and the agents serving them', tag: 'drivers' },
  'GET /v1/drivers/{driver}': { summary: 'Show a hardware type and its interfaces', tag: 'drivers' },
  'GET /v1/drivers/{driver}/properties': { summary: 'driver_info keys of a hardware type', tag: 'drivers' },
  'GET /v1/conductors': { summary: 'List agents as conductors', tag: 'conductors' },
  'GET /v1/conductors/{hostname}': { summary: 'Show an agent as a conductor', tag: 'conductors' },
  'GET /v1/users': { summary: 'List users (admin)', tag: 'users' },
  'POST /v1/users': {
    summary: 'Create a user (admin)',
    tag: 'users',
    requestSchema: USER_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/users/{user}': { summary: 'Show a user (admin, or the user itself)', tag: 'users' },
  'PATCH /v1/users/{user}': {
    summary: 'Change a user role, project or password (admin; a JSON object, not a JSON Patch)',
    tag: 'users',
    requestSchema: USER_UPDATE_SCHEMA,
  },
  'DELETE /v1/users/{user}': { summary: 'Delete a user and its tokens (admin)', tag: 'users', status: 204 },
  'GET /v1/users/{user}/tokens': { summary: "List a user's API tokens (no secrets)", tag: 'users' },
  'POST /v1/users/{user}/tokens': {
    summary: 'Create an API token; the secret is shown once',
    tag: 'users',
    requestSchema: TOKEN_CREATE_SCHEMA,
    optionalBody: true,
    status: 201,
  },
  'DELETE /v1/users/{user}/tokens/{token}': { summary: 'Revoke an API token', tag: 'users', status: 204 },
  ...PORT_OPERATIONS,
  ...POWER_OPERATIONS,
  ...INDICATOR_OPERATIONS,
  ...PROVISION_OPERATIONS,
  ...CHASSIS_OPERATIONS,
  ...ALLOCATION_OPERATIONS,
  ...DEPLOY_TEMPLATE_OPERATIONS,
  ...VOLUME_OPERATIONS,
  ...VIF_OPERATIONS,
  ...BIOS_OPERATIONS,
  ...INVENTORY_OPERATIONS,
  ...HISTORY_OPERATIONS,
  ...SITE_OPERATIONS,
  ...AGENT_OPERATIONS,
  ...COMMAND_OPERATIONS,
  ...IMAGE_OPERATIONS,
  ...AUDIT_OPERATIONS,
  ...USER_OPERATIONS,
  ...WEBHOOK_OPERATIONS,
};

const ERROR_SCHEMA = {
  type: 'object',
  properties: { error_message: { type: 'string', description: 'JSON: {faultcode, faultstring, debuginfo}' } },
  required: ['error_message'],
};

export function openApiDocument(router: Router, baseUrl: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const { pattern, methods } of router.patterns()) {
    for (const method of methods) {
      const doc = OPERATIONS[`${method} ${pattern}`];
      if (!doc) continue;
      const parameters = [...pattern.matchAll(/\{(\w+)\}/g)].map((match) => ({
        name: match[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      const status = String(doc.status ?? 200);
      paths[pattern] ??= {};
      (paths[pattern] as Record<string, unknown>)[method.toLowerCase()] = {
        summary: doc.summary,
        tags: [doc.tag],
        ...(doc.public ? { security: [] } : {}),
        parameters: [
          ...parameters,
          {
            name: 'X-OpenStack-Ironic-API-Version',
            in: 'header',
            required: false,
            description: `The microversion: ${formatVersion(MIN_VERSION)} (when absent) to ${formatVersion(MAX_VERSION)}, or latest`,
            schema: { type: 'string', pattern: '^(1\\.[0-9]{1,2}|latest)$' },
          },
        ],
        ...(doc.requestSchema
          ? {
              requestBody: {
                required: !doc.optionalBody,
                content: { 'application/json': { schema: doc.requestSchema } },
              },
            }
          : {}),
        responses: {
          [status]: { description: 'Success' },
          default: {
            description: 'Ironic error body',
            content: { 'application/json': { schema: ERROR_SCHEMA } },
          },
        },
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Metalplane API (OpenStack Ironic v1 dialect)',
      version: `${formatVersion(MIN_VERSION)}-${formatVersion(MAX_VERSION)}`,
    },
    servers: [{ url: baseUrl }],
    security: [{ basic: [] }, { bearer: [] }],
    components: {
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
    },
    paths,
  };
}
