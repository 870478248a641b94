/**
 * /v1/volume (1.32+): volume connectors and targets, also listed under
 * /v1/nodes/{node}/volume, with Ironic 21.4's semantics (reference exchange 106). A
 * node's VIFs (exchange 107) are in `vifs.ts`.
 *
 * As in Ironic, connectors and targets are created whatever the node's state, but
 * changed or deleted only while their node is powered off (the conductor's rule).
 */

import { mustExist } from '../../adapters/dynamo/node-repository.ts';
import type { Versioned } from '../../adapters/dynamo/volume-repository.ts';
import { VolumeRepository } from '../../adapters/dynamo/volume-repository.ts';
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import { requireUuid } from '../../domain/inventory/common.ts';
import {
  CONNECTOR_DEFAULT_FIELDS,
  CONNECTOR_FIELDS,
  CONNECTOR_SCHEMA,
  createConnector,
  createTarget,
  patchConnector,
  patchTarget,
  renderConnector,
  renderTarget,
  renderVolumeRoot,
  TARGET_DEFAULT_FIELDS,
  TARGET_FIELDS,
  TARGET_SCHEMA,
  VOLUME_SINCE,
  validateConnectorCreate,
  validateTargetCreate,
  volumeChangeRefusal,
} from '../../domain/inventory/volume.ts';
import { PATCH_SCHEMA } from '../../domain/json-patch.ts';
import type { Node } from '../../domain/nodes/node.ts';
import type { ApiRequest, ApiResponse } from '../../http/request.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize, authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, nextLink, parseFields, parseListParams } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

const LIST_PARAMS = ['node', 'limit', 'marker', 'sort_key', 'sort_dir', 'fields', 'detail'];

export const VOLUME_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/volume': { summary: 'Links to the volume connectors and targets', tag: 'volume' },
  'GET /v1/volume/connectors': {
    summary: 'List volume connectors (node, limit/marker, sort, fields, detail)',
    tag: 'volume',
  },
  'POST /v1/volume/connectors': {
    summary: 'Create a volume connector',
    tag: 'volume',
    requestSchema: CONNECTOR_SCHEMA,
    status: 201,
  },
  'GET /v1/volume/connectors/{connector}': { summary: 'Show a volume connector', tag: 'volume' },
  'PATCH /v1/volume/connectors/{connector}': {
    summary: 'Update a volume connector (JSON Patch; node powered off)',
    tag: 'volume',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/volume/connectors/{connector}': {
    summary: 'Delete a volume connector (node powered off)',
    tag: 'volume',
    status: 204,
  },
  'GET /v1/volume/targets': {
    summary: 'List volume targets (node, limit/marker, sort, fields, detail)',
    tag: 'volume',
  },
  'POST /v1/volume/targets': {
    summary: 'Create a volume target',
    tag: 'volume',
    requestSchema: TARGET_SCHEMA,
    status: 201,
  },
  'GET /v1/volume/targets/{target}': { summary: 'Show a volume target', tag: 'volume' },
  'PATCH /v1/volume/targets/{target}': {
    summary: 'Update a volume target (JSON Patch; node powered off)',
    tag: 'volume',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/volume/targets/{target}': {
    summary: 'Delete a volume target (node powered off)',
    tag: 'volume',
    status: 204,
  },
  'GET /v1/nodes/{node}/volume': {
    summary: "Links to a node's volume connectors and targets",
    tag: 'volume',
  },
  'GET /v1/nodes/{node}/volume/connectors': {
    summary: 'List the volume connectors of a node',
    tag: 'volume',
  },
  'GET /v1/nodes/{node}/volume/targets': { summary: 'List the volume targets of a node', tag: 'volume' },
};

function volumeGate(request: ApiRequest): void {
  if (request.version.minor < VOLUME_SINCE) throw notFound('The resource could not be found.');
}

const nodeLocked = (node: Node) =>
  conflict(
    `Node ${node.uuid} is locked by host ${node.reservation}, please retry after the current operation is completed.`,
  );

/** The node a connector or target names: it must exist (400, as Ironic answers). */
async function ownerNode(deps: Dependencies, uuid: string): Promise<Node> {
  const found = await deps.nodes.get(uuid);
  if (!found) throw invalid(`Node ${uuid} could not be found.`);
  return found.node;
}

const nodeMustExist = (uuid: string) => mustExist('node', uuid, invalid(`Node ${uuid} could not be found.`));

/** The conductor's rule for changing volume records: node powered off and not locked. */
function checkChangeAllowed(node: Node, action: string): void {
  const refusal = volumeChangeRefusal(node, action);
  if (refusal) throw invalid(refusal);
  if (node.reservation) throw nodeLocked(node);
}

interface RecordKind<T, B> {
  readonly label: string;
  /** Ironic's collection key and URL segment. */
  readonly collection: 'connectors' | 'targets';
  readonly param: 'connector_uuid' | 'target_uuid';
  readonly fields: readonly string[];
  readonly defaultFields: readonly string[];
  readonly records: (repo: VolumeRepository) => {
    get(uuid: string): Promise<Versioned<T> | undefined>;
    create(doc: T, checks: ReturnType<typeof nodeMustExist>[]): Promise<void>;
    update(before: T, after: T, version: number, checks: ReturnType<typeof nodeMustExist>[]): Promise<void>;
    delete(doc: T, version: number): Promise<void>;
    list(query: {
      limit: number;
      markerUuid?: string | undefined;
      descending: boolean;
      nodeUuid?: string | undefined;
    }): Promise<{ items: T[]; more: boolean }>;
  };
  readonly validate: (body: unknown) => B;
  readonly create: (body: B, context: { uuid: string; now: string }) => T;
  readonly patch: (doc: T, body: unknown, now: string) => T;
  readonly render: (doc: T, options: { baseUrl: string; fields?: readonly string[] | undefined }) => unknown;
}

function registerRecords<T extends { uuid: string; node_uuid: string }, B extends { uuid?: string | null }>(
  router: Router,
  deps: Dependencies,
  repo: VolumeRepository,
  kind: RecordKind<T, B>,
): void {
  const records = kind.records(repo);
  const base = `/v1/volume/${kind.collection}`;
  const singular = kind.collection === 'connectors' ? 'connector' : 'target';
  const render = (request: ApiRequest, doc: T, fields?: readonly string[]) =>
    kind.render(doc, { baseUrl: request.baseUrl, fields });

  const find = async (request: ApiRequest) => {
    const uuid = requireUuid(request.params[singular], kind.param);
    const found = await records.get(uuid);
    if (!found) throw notFound(`${kind.label} ${uuid} could not be found.`);
    return found;
  };

  /** The list, of everything or (`fromPath`) of the node in the path. */
  const list =
    (fromPath: boolean) =>
    async (request: ApiRequest): Promise<ApiResponse> => {
      volumeGate(request);
      authorize(request, 'volume:get');
      const { query } = request;
      for (const name of Object.keys(query)) {
        if (!LIST_PARAMS.includes(name)) throw invalid(`Unknown argument: "${name}"`);
      }
      if (
        query.fields !== undefined &&
        query.detail !== undefined &&
        query.detail.toLowerCase() !== 'false'
      ) {
        throw invalid("Can't fetch a subset of fields with 'detail' set");
      }
      // `detail` is as old as these collections (1.32), unlike the nodes' (1.43).
      const minor = request.version.minor;
      const params = parseListParams(
        { ...request, version: { ...request.version, minor: Math.max(minor, 43) } },
        {
          sortKeys: ['id', 'created_at'],
          selectable: kind.fields,
          defaultFields: kind.defaultFields,
          detailPath: false,
        },
      );
      const ident = fromPath ? request.params.node : query.node;
      let nodeUuid: string | undefined;
      if (ident !== undefined) {
        const { node } = await resolveNode(deps, ident);
        authorizeNode(request, 'node:get', node);
        nodeUuid = node.uuid;
      }
      const page = await records.list({
        limit: params.limit,
        markerUuid: params.marker,
        descending: params.descending,
        nodeUuid,
      });
      const body: Record<string, unknown> = {
        [kind.collection]: page.items.map((doc) => render(request, doc, params.fields)),
      };
      const last = page.items.at(-1);
      if (page.more && last) {
        const path = fromPath
          ? `nodes/${request.params.node}/volume/${kind.collection}`
          : `volume/${kind.collection}`;
        body.next = nextLink(request, path, params, last.uuid);
      }
      return json(body);
    };
  router.on('GET', base, list(false));
  router.on('GET', `/v1/nodes/{node}/volume/${kind.collection}`, list(true));

  router.on('POST', base, async (request) => {
    volumeGate(request);
    authorize(request, 'volume:create');
    const body = kind.validate(jsonBody(request));
    const doc = kind.create(body, { uuid: body.uuid ?? deps.newUuid(), now: deps.now() });
    await ownerNode(deps, doc.node_uuid);
    // The node's existence (and that it is not being deleted) is checked by the repository.
    await records.create(doc, []);
    return json(render(request, doc), 201, { Location: `${request.baseUrl}${base}/${doc.uuid}` });
  });

  router.on('GET', `${base}/{${singular}}`, async (request) => {
    volumeGate(request);
    authorize(request, 'volume:get');
    const fields =
      request.query.fields === undefined ? undefined : parseFields(request.query.fields, kind.fields);
    const { doc } = await find(request);
    return json(render(request, doc, fields));
  });

  router.on('PATCH', `${base}/{${singular}}`, async (request) => {
    volumeGate(request);
    authorize(request, 'volume:update');
    const { doc, version } = await find(request);
    const patched = kind.patch(doc, jsonBody(request), deps.now());
    checkChangeAllowed(await ownerNode(deps, patched.node_uuid), `volume ${singular} update`);
    // Moving to another node joins its ledger (checked by the repository); staying, the
    // node must still be there.
    const checks = patched.node_uuid === doc.node_uuid ? [nodeMustExist(patched.node_uuid)] : [];
    await records.update(doc, patched, version, checks);
    return json(render(request, patched));
  });

  router.on('DELETE', `${base}/{${singular}}`, async (request) => {
    volumeGate(request);
    authorize(request, 'volume:delete');
    const { doc, version } = await find(request);
    const node = await deps.nodes.get(doc.node_uuid);
    if (node) checkChangeAllowed(node.node, `volume ${singular} deletion`);
    await records.delete(doc, version);
    return noContent();
  });
}

export function registerVolumeRoutes(router: Router, deps: Dependencies): void {
  const repo = new VolumeRepository(deps.store);

  router.on('GET', '/v1/volume', async (request) => {
    volumeGate(request);
    authorize(request, 'volume:get');
    return json(renderVolumeRoot(request.baseUrl));
  });

  router.on('GET', '/v1/nodes/{node}/volume', async (request) => {
    volumeGate(request);
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get', node);
    return json(renderVolumeRoot(request.baseUrl, request.params.node));
  });

  registerRecords(router, deps, repo, {
    label: 'Volume connector',
    collection: 'connectors',
    param: 'connector_uuid',
    fields: CONNECTOR_FIELDS,
    defaultFields: CONNECTOR_DEFAULT_FIELDS,
    records: (volumes) => volumes.connectors,
    validate: validateConnectorCreate,
    create: createConnector,
    patch: patchConnector,
    render: renderConnector,
  });
  registerRecords(router, deps, repo, {
    label: 'Volume target',
    collection: 'targets',
    param: 'target_uuid',
    fields: TARGET_FIELDS,
    defaultFields: TARGET_DEFAULT_FIELDS,
    records: (volumes) => volumes.targets,
    validate: validateTargetCreate,
    create: createTarget,
    patch: patchTarget,
    render: renderTarget,
  });
}
