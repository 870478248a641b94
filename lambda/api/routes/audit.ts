/**
 * /v1/audit: the audit trail (docs/security.md, "Audit trail"), read-only, for admins and
 * readers (policy `audit:get`, as every system-wide read). Records are written by the
 * `auditTrail` middleware (`lambda/http/middlewares.ts`), never through a route.
 *
 * `GET /v1/audit` lists newest first, `limit` (default 100, at most 1000) and `marker`
 * (the id of the last record of the previous page) as Ironic's collections, and a `next`
 * link while there may be more. Filters: `actor` (a user's or agent's name),
 * `resource_type` (node, port, user ...), `resource` (a UUID, or a name or id), `since`
 * and `until` (ISO 8601 times, inclusive).
 */
import type { AuditFilter, AuditRepository } from '../../adapters/dynamo/audit-repository.ts';
import { RESOURCE_TYPES } from '../../domain/audit/audit.ts';
import { invalid, notFound } from '../../domain/errors.ts';
import { canonicalUuid, isUuidLike } from '../../domain/identifiers.ts';
import type { ApiRequest } from '../../http/request.ts';
import { json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize } from '../access.ts';
import { MAX_LIMIT } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

export const AUDIT_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/audit': {
    summary:
      'List the audit trail of changes, newest first (admin, reader; actor, resource_type, resource, since, until, limit/marker)',
    tag: 'audit',
  },
  'GET /v1/audit/{audit}': { summary: 'Show one audit record (admin, reader)', tag: 'audit' },
};

export const DEFAULT_AUDIT_LIMIT = 100;
const ARGUMENTS = ['actor', 'resource_type', 'resource', 'limit', 'marker', 'since', 'until'];
const MAX_FILTER_LENGTH = 255;

function parseAuditLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_AUDIT_LIMIT;
  if (!/^\s*\d+\s*$/.test(raw)) throw invalid(`Invalid value for limit: ${raw}. It must be an integer.`);
  const limit = Number(raw);
  if (limit <= 0) throw invalid('Limit must be positive');
  return Math.min(limit, MAX_LIMIT);
}

function parseTime(raw: string | undefined, name: string): Date | undefined {
  if (raw === undefined) return undefined;
  // A date, or a date and time (with a zone, or UTC).
  const shape = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
  const time = shape.test(raw.trim()) ? Date.parse(raw.trim()) : Number.NaN;
  if (Number.isNaN(time)) throw invalid(`Invalid value for ${name}: ${raw}. It must be an ISO 8601 time.`);
  return new Date(time);
}

function text(raw: string | undefined, name: string): string | undefined {
  if (raw === undefined) return undefined;
  if (raw === '' || raw.length > MAX_FILTER_LENGTH) throw invalid(`Invalid value for ${name}: ${raw}`);
  return raw;
}

export function parseAuditQuery(request: ApiRequest): {
  filter: AuditFilter;
  limit: number;
  marker?: string;
} {
  const { query } = request;
  const unexpected = Object.keys(query).filter((name) => !ARGUMENTS.includes(name));
  if (unexpected.length > 0) throw invalid(`Unknown argument: "${unexpected.join(', ')}"`);
  const resourceType = text(query.resource_type, 'resource_type');
  if (resourceType !== undefined && !RESOURCE_TYPES.includes(resourceType)) {
    throw invalid(
      `Invalid value for resource_type: ${resourceType}. It must be one of: ${RESOURCE_TYPES.join(', ')}`,
    );
  }
  const rawResource = text(query.resource, 'resource');
  const resourceIsUuid = isUuidLike(rawResource);
  const resource = rawResource !== undefined && resourceIsUuid ? canonicalUuid(rawResource) : rawResource;
  const actor = text(query.actor, 'actor');
  const marker = query.marker;
  if (marker !== undefined && !isUuidLike(marker))
    throw invalid(`Invalid marker ${marker}: it must be a UUID.`);
  const since = parseTime(query.since, 'since');
  const until = parseTime(query.until, 'until');
  const filter: AuditFilter = {
    ...(actor !== undefined ? { actor } : {}),
    ...(resourceType !== undefined ? { resourceType } : {}),
    ...(resource !== undefined ? { resource, resourceIsUuid } : {}),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
  };
  return {
    filter,
    limit: parseAuditLimit(query.limit),
    ...(marker !== undefined ? { marker: canonicalUuid(marker) } : {}),
  };
}

/** `audit` is the repository, or a function giving it at first use (built from the environment). */
export function registerAuditRoutes(router: Router, audit: AuditRepository | (() => AuditRepository)): void {
  const repository = typeof audit === 'function' ? audit : () => audit;

  router.on('GET', '/v1/audit', async (request) => {
    authorize(request, 'audit:get');
    const { filter, limit, marker } = parseAuditQuery(request);
    const page = await repository().list(filter, limit, marker);
    const body: Record<string, unknown> = { audit: page.records };
    if (page.next !== undefined) {
      const query = new URLSearchParams();
      for (const [name, value] of Object.entries(request.query)) {
        if (name !== 'marker' && name !== 'limit') query.set(name, value);
      }
      query.set('limit', String(limit));
      query.set('marker', page.next);
      body.next = `${request.baseUrl}/v1/audit?${query.toString()}`;
    }
    return json(body);
  });

  router.on('GET', '/v1/audit/{audit}', async (request) => {
    authorize(request, 'audit:get');
    const id = request.params.audit as string;
    const record = isUuidLike(id) ? await repository().get(canonicalUuid(id)) : undefined;
    if (!record) throw notFound(`Audit record ${id} could not be found.`);
    return json(record);
  });
}
