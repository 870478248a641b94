/**
 * /v1/nodes/{node}/history (1.78+): the events recorded against a node, read-only, with
 * the semantics of Ironic 21.4's NodeHistoryController: oldest first, `detail`,
 * `limit`/`marker`, policy `baremetal:node:history:get` (readers, and members of the
 * node's owner project; not its lessee). Departures: `fields` is accepted (Ironic 21.4
 * refuses it as an unexpected argument), the `next` link is one a client can follow
 * (Ironic's repeats `marker` and carries `fields`, which it then refuses), and one event
 * is found only under its own node (Ironic finds any node's event by its uuid).
 */
import { HistoryRepository, historyEventMissing } from '../../adapters/dynamo/history-repository.ts';
import { invalid, notFound } from '../../domain/errors.ts';
import {
  HISTORY_DETAIL_FIELDS,
  HISTORY_SINCE,
  type HistoryField,
  renderHistoryEvent,
} from '../../domain/history/history.ts';
import { canonicalUuid, isUuidLike, isValidLogicalName } from '../../domain/identifiers.ts';
import type { ApiRequest } from '../../http/request.ts';
import { json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { MAX_LIMIT, parseFields } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

export const HISTORY_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/history': {
    summary: 'List the events recorded against a node, oldest first (1.78+; detail, fields, limit/marker)',
    tag: 'nodes',
  },
  'GET /v1/nodes/{node}/history/{event}': {
    summary: 'Show one event of a node with every field (1.78+)',
    tag: 'nodes',
  },
};

const LIST_ARGUMENTS = ['detail', 'marker', 'limit', 'fields'];

function gate(request: ApiRequest): void {
  // Ironic's NodesController._lookup aborts with 404 below the version.
  if (request.version.minor < HISTORY_SINCE) throw notFound('The resource could not be found.');
}

/** Ironic's `args.validate`: a query parameter the method does not take is refused. */
function rejectUnexpected(request: ApiRequest, allowed: readonly string[]): void {
  const unexpected = Object.keys(request.query).filter((name) => !allowed.includes(name));
  if (unexpected.length > 0) throw invalid(`Unexpected arguments: ${unexpected.join(', ')}`);
}

const TRUE_STRINGS = ['1', 't', 'true', 'on', 'y', 'yes'];
const FALSE_STRINGS = ['0', 'f', 'false', 'off', 'n', 'no'];

/** `args.boolean` (oslo's strict bool_from_string) and its message. */
function parseDetail(raw: string | undefined): boolean {
  if (raw === undefined) return false;
  const lowered = raw.trim().toLowerCase();
  if (TRUE_STRINGS.includes(lowered)) return true;
  if (FALSE_STRINGS.includes(lowered)) return false;
  const acceptable = [...TRUE_STRINGS, ...FALSE_STRINGS]
    .sort()
    .map((word) => `'${word}'`)
    .join(', ');
  throw invalid(`Invalid detail: Unrecognized value '${raw}', acceptable values are: ${acceptable}`);
}

/** `args.integer`, then `validate_limit` (positive, at most `[api]max_limit`). */
function parseHistoryLimit(raw: string | undefined): number {
  if (raw === undefined) return MAX_LIMIT;
  if (!/^\s*[-+]?\d+\s*$/.test(raw)) throw invalid(`Expected an integer for limit: ${raw}`);
  const limit = Number(raw);
  if (limit <= 0) throw invalid('Limit must be positive');
  return Math.min(limit, MAX_LIMIT);
}

interface HistoryListParams {
  readonly detail: boolean;
  readonly fields?: HistoryField[];
  readonly marker?: string;
  readonly limitText: string | undefined;
}

function listParams(request: ApiRequest): HistoryListParams {
  rejectUnexpected(request, LIST_ARGUMENTS);
  const detail = parseDetail(request.query.detail);
  const marker = request.query.marker;
  if (marker !== undefined && !isUuidLike(marker)) throw invalid(`Expected UUID for marker: ${marker}`);
  const limitText = request.query.limit;
  if (limitText !== undefined && !/^\s*[-+]?\d+\s*$/.test(limitText)) {
    throw invalid(`Expected an integer for limit: ${limitText}`);
  }
  let fields: HistoryField[] | undefined;
  if (request.query.fields !== undefined) {
    if (detail) throw invalid('Can not specify ?detail=True and fields in the same request.');
    fields = parseFields(request.query.fields, HISTORY_DETAIL_FIELDS) as HistoryField[];
  }
  return {
    detail,
    ...(fields ? { fields } : {}),
    ...(marker !== undefined ? { marker: canonicalUuid(marker) } : {}),
    limitText,
  };
}

function nextHistoryLink(
  request: ApiRequest,
  nodeIdent: string,
  params: HistoryListParams,
  limit: number,
  lastUuid: string,
): string {
  const query = new URLSearchParams();
  if (params.detail) query.set('detail', 'True');
  if (params.fields) query.set('fields', params.fields.join(','));
  query.set('limit', String(limit));
  query.set('marker', lastUuid);
  return `${request.baseUrl}/v1/nodes/${nodeIdent}/history?${query.toString().replaceAll('%2C', ',')}`;
}

export function registerHistoryRoutes(router: Router, deps: Dependencies): void {
  const history = new HistoryRepository(deps.store);

  router.on('GET', '/v1/nodes/{node}/history', async (request) => {
    gate(request);
    const params = listParams(request);
    const ident = request.params.node as string;
    const { node } = await resolveNode(deps, ident);
    authorizeNode(request, 'node:history:get', node);
    const limit = parseHistoryLimit(params.limitText);
    const page = await history.list(node, {
      limit,
      ...(params.marker !== undefined ? { markerUuid: params.marker } : {}),
    });
    const body: Record<string, unknown> = {
      history: page.events.map((event) =>
        renderHistoryEvent(event, {
          baseUrl: request.baseUrl,
          detail: params.detail,
          ...(params.fields ? { fields: params.fields } : {}),
        }),
      ),
    };
    const last = page.events.at(-1);
    if (page.more && last) body.next = nextHistoryLink(request, ident, params, limit, last.uuid);
    return json(body);
  });

  router.on('GET', '/v1/nodes/{node}/history/{event}', async (request) => {
    gate(request);
    rejectUnexpected(request, []);
    const ident = request.params.event as string;
    if (!isUuidLike(ident) && !isValidLogicalName(ident)) {
      throw invalid(`Expected UUID or name for event: ${ident}`);
    }
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:history:get', node);
    // Events are found by uuid only: a name is valid syntax that matches nothing.
    const event = isUuidLike(ident) ? await history.get(node, canonicalUuid(ident)) : undefined;
    if (!event) throw historyEventMissing(ident);
    return json(renderHistoryEvent(event, { baseUrl: request.baseUrl, detail: true }));
  });
}
